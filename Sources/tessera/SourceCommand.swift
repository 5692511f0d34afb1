import ArgumentParser
import Foundation
import TesseraCompiler
import TesseraLanguage

/// `tessera source …`: help with declaring sources.
struct SourceCommand: ParsableCommand {
  static let configuration = CommandConfiguration(
    commandName: "source", abstract: "Help with declaring sources.", subcommands: [Infer.self])

  struct Infer: ParsableCommand {
    static let configuration = CommandConfiguration(
      abstract: "Print a source declaration guessed from sample records of a CSV or NDJSON file.",
      discussion: """
        Reads up to --sample records and prints a `sources:` declaration: each field with its inferred type \
        (integers, decimals, booleans, ISO 8601 times), `required` for the fields never empty, identifier \
        mappings for fields whose values normalize as emails or phone numbers or whose names say so \
        (`customer_no`, `user_id`), the timestamp and message id, and traits for the rest. Every guess has a \
        comment saying why. With --pipeline the pipeline's identifier kinds and trait names are used, `path` is \
        written relative to the pipeline's folder, and the declaration is compiled with the pipeline before it \
        is printed (as if saved beside it as NAME.yaml and included).

        Exit status: 0; 1 when the pipeline or the inferred declaration does not compile; 2 when a file \
        cannot be read.
        """)

    @Argument(help: "The file(s) of one source; several files become a glob of their common name.")
    var files: [String]

    @Option(help: "The source's name (default: from the file name).")
    var name: String?

    @Option(help: "csv or ndjson (default: from the file name, else its first byte).")
    var kind: SourceKind?

    @Option(help: "The pipeline the source is for: its identifier kinds and traits are used, and the result checked.")
    var pipeline: String?

    @Option(help: "Records to read, across the files.")
    var sample: Int = 1_000

    func run() throws {
      var inference = SourceInference(files: files, name: name, kind: kind)
      inference.sampleSize = max(1, sample)
      if let pipeline {
        inference.pipeline = try PipelineOptions.compile(pipeline).config
        inference.declaringFolder = Paths.directory(of: pipeline)
      }
      let declaration: SourceInference.Declaration
      do {
        declaration = try inference.infer()
      } catch let e as SourceInference.InferenceError {
        FileHandle.standardError.write(Data("error: \(e)\n".utf8))
        throw ExitCode(2)
      }
      let command = (["tessera source infer"] + CommandLine.arguments.dropFirst(3)).joined(separator: " ")
      var header = [
        "Source `\(declaration.name)`, inferred by `\(command)`.", "Each comment says why; check the guesses.",
      ]
      if let pipeline {
        header.append(
          "Then save this as \(Self.file(for: declaration, pipeline: pipeline)) and add it to the `include:` of \(pipeline)."
        )
      } else {
        header += [
          "Then paste the source under a pipeline's `sources:`; `path` is relative to the file that declares it",
          "(written here relative to the current folder).",
        ]
      }
      let yaml = declaration.yaml(header: header)
      if let pipeline {
        let file = Self.file(for: declaration, pipeline: pipeline)
        var compiler = Compiler()
        compiler.extraFiles = [SourceFile(path: file, text: yaml)]
        let result = compiler.compile(pipeline: pipeline)
        // The pipeline's own diagnostics were shown when it was compiled above; show what the source adds.
        let own = Set(Compiler().compile(pipeline: pipeline).diagnostics)
        let added = result.diagnostics.filter { !own.contains($0) }
        if !added.isEmpty {
          FileHandle.standardError.write(
            Data(
              (added.map { $0.rendered(source: result.sources[$0.location.file]) }.joined(separator: "\n") + "\n").utf8)
          )
        }
        print(yaml, terminator: "")
        if result.hasErrors { throw ExitCode(1) }
        FileHandle.standardError.write(
          Data("checked: \(pipeline) compiles with this source (as \(file), included)\n".utf8))
        return
      }
      print(yaml, terminator: "")
    }

    /// Where the declaration is meant to be saved: beside the pipeline, named after the source.
    static func file(for d: SourceInference.Declaration, pipeline: String) -> String {
      Paths.normalize(Paths.directory(of: pipeline) + "/" + d.name + ".yaml")
    }
  }
}

extension SourceKind: ExpressibleByArgument {}
