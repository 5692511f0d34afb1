import ArgumentParser
import Foundation
import TesseraCompiler
import TesseraLanguage

@main
struct Tessera: AsyncParsableCommand {
  static let configuration = CommandConfiguration(
    commandName: "tessera",
    abstract: "Tessera, a customer data platform: collect events, resolve identities, unify profiles, activate.",
    discussion: """
      Everything is declared in YAML (see docs/LANGUAGE.md) and compiled before it runs.

      Exit status: 0 on success, 1 when the configuration has errors, 64 on a usage error.
      """,
    subcommands: [
      Validate.self, Graph.self, Run.self, ProfileCommand.self, SegmentsCommand.self, LinkCommand.self,
      TuneCommand.self, ReviewCommand.self, DryRunCommand.self, TestCommand.self, ReplayCommand.self,
      UnmergeCommand.self, DeleteCommand.self, Deliver.self, DeliveriesCommand.self, ServeCommand.self,
      ExplainCommand.self, SourceCommand.self, SyncCommand.self, ReportCommand.self,
    ]
  )
}

enum OutputFormat: String, ExpressibleByArgument, CaseIterable {
  case text, json
}

struct Validate: ParsableCommand {
  static let configuration = CommandConfiguration(
    abstract: "Compile pipelines and report every problem with file:line:column.",
    discussion: """
      Reads each pipeline file and the rule files it includes, checks keys, types, names, references and \
      expressions, and prints all diagnostics sorted by file and position, each with the offending line and \
      a caret. Without errors it prints a one-line summary per pipeline.

      Exit status: 0 when no pipeline has errors (warnings allowed), 1 otherwise.
      """)

  @Argument(help: "Pipeline files (e.g. pipelines/retail.yaml).")
  var pipelines: [String]

  @Option(help: "Output format: text (for people) or json (for editors and CI).")
  var format: OutputFormat = .text

  @Flag(help: "The files are rules for `tessera link` and `tessera tune`: no pipeline name or sources needed.")
  var rules = false

  func run() throws {
    let compiler = Compiler()
    var failed = false
    var json: [[String: Any]] = []
    for path in pipelines {
      let result = rules ? compiler.compile(rules: path) : compiler.compile(pipeline: path)
      failed = failed || result.hasErrors
      switch format {
      case .text:
        if !result.diagnostics.isEmpty { print(result.rendered()) }
        print(Summary.line(path: path, result: result))
      case .json:
        json.append(Summary.json(path: path, result: result))
      }
    }
    if format == .json {
      let data = try JSONSerialization.data(
        withJSONObject: ["pipelines": json], options: [.prettyPrinted, .sortedKeys, .withoutEscapingSlashes])
      print(String(decoding: data, as: UTF8.self))
    }
    if failed { throw ExitCode(1) }
  }
}

struct Graph: ParsableCommand {
  static let configuration = CommandConfiguration(
    abstract: "Print a pipeline's compiled plan as a Mermaid flowchart or a Graphviz digraph.",
    discussion: """
      Each node is a stage (sources, decode & map, validate, resolve identity, unify profile, computed traits, \
      segments, route, destinations) with how it runs; each edge is labelled with the data type it carries. \
      Render Mermaid in any Markdown viewer that supports it, or DOT with `dot -Tsvg`.
      """)

  @Argument(help: "The pipeline file.")
  var pipeline: String

  @Option(help: "mermaid or dot.")
  var format: PipelinePlan.GraphFormat = .mermaid

  func run() throws {
    let result = Compiler().compile(pipeline: pipeline)
    guard let plan = result.plan else {
      FileHandle.standardError.write(Data((result.rendered() + "\n").utf8))
      throw ExitCode(1)
    }
    if !result.diagnostics.isEmpty { FileHandle.standardError.write(Data((result.rendered() + "\n").utf8)) }
    print(plan.graph(format), terminator: "")
  }
}

extension PipelinePlan.GraphFormat: ExpressibleByArgument {}

enum Summary {
  static func line(path: String, result: CompileResult) -> String {
    let errors = result.diagnostics.filter { $0.severity == .error }.count
    let warnings = result.diagnostics.filter { $0.severity == .warning }.count
    let counts = "\(errors) error\(errors == 1 ? "" : "s"), \(warnings) warning\(warnings == 1 ? "" : "s")"
    guard let c = result.plan?.config else { return "\(path): \(counts)" }
    func n(_ k: Int, _ w: String) -> String { "\(k) \(w)\(k == 1 ? "" : "s")" }
    // Only a rules file (validate --rules) compiles without sources.
    let what = c.sources.isEmpty ? "rules" : "pipeline `\(c.name)`"
    return "\(path): \(what) — \(n(c.sources.count, "source")), \(n(c.identifiers.count, "identifier")), "
      + "\(n(c.deterministic.count + c.probabilistic.count, "match rule")), \(n(c.traits.count, "trait")), "
      + "\(n(c.computed.count, "computed trait")), \(n(c.segments.count, "segment")), "
      + "\(n(c.destinations.count, "destination")); \(counts)"
  }

  static func json(path: String, result: CompileResult) -> [String: Any] {
    var out: [String: Any] = [
      "file": path,
      "ok": !result.hasErrors,
      "errors": result.diagnostics.filter { $0.severity == .error }.count,
      "warnings": result.diagnostics.filter { $0.severity == .warning }.count,
      "diagnostics": result.diagnostics.map {
        [
          "file": $0.location.file, "line": $0.location.line, "column": $0.location.column,
          "length": $0.length, "severity": $0.severity.rawValue, "message": $0.message,
        ] as [String: Any]
      },
    ]
    if let c = result.plan?.config {
      out["summary"] = [
        "pipeline": c.name, "sources": c.sources.count, "identifiers": c.identifiers.count,
        "match_rules": c.deterministic.count + c.probabilistic.count, "traits": c.traits.count,
        "computed_traits": c.computed.count, "segments": c.segments.count, "destinations": c.destinations.count,
      ]
    }
    return out
  }
}
