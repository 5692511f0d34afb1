import ArgumentParser
import Foundation
import TesseraCompiler
import TesseraConnectors
import TesseraLanguage
import TesseraModel

struct TestCommand: AsyncParsableCommand {
  static let configuration = CommandConfiguration(
    commandName: "test",
    abstract: "Run the configuration tests: named cases of input records and what must hold afterwards.",
    discussion: """
      Cases live in a `tests:` block of any file of a pipeline, or in `NAME_test.yaml` beside `NAME.yaml`. \
      Each runs the pipeline over its records in a throwaway store (nothing is written or sent) and checks \
      its expectations: same_profile, apart, trait, segment, not_segment, payload, rejected, match. A PATH is \
      a pipeline, a test file or a folder of them (default: pipelines).

      Exit status: 0 when every case passes, 1 otherwise.
      """)

  @Argument(help: "Pipelines, *_test.yaml files or folders (default: pipelines).")
  var paths: [String] = ["pipelines"]

  func run() async throws {
    var pipelines: [String: [String]] = [:]  // pipeline → test files
    for path in paths {
      var isDirectory: ObjCBool = false
      guard FileManager.default.fileExists(atPath: path, isDirectory: &isDirectory) else {
        throw ValidationError("no file or folder `\(path)`")
      }
      let files =
        isDirectory.boolValue
        ? (try FileManager.default.contentsOfDirectory(atPath: path)).filter { $0.hasSuffix(".yaml") }.sorted().map {
          path + "/" + $0
        }
        : [path]
      for f in files {
        if f.hasSuffix("_test.yaml") {
          pipelines[String(f.dropLast("_test.yaml".count)) + ".yaml", default: []].append(f)
        } else if isDirectory.boolValue == false || Self.isPipeline(f) {
          pipelines[f, default: []] += []
        }
      }
    }
    var passed = 0
    var failed = 0
    var broken = false
    for pipeline in pipelines.keys.sorted() {
      let compiled = Compiler().compile(pipeline: pipeline)
      guard let plan = compiled.plan else {
        print(compiled.rendered())
        broken = true
        continue
      }
      var files = plan.config.files + (pipelines[pipeline] ?? [])
      let beside = String(pipeline.dropLast(".yaml".count)) + "_test.yaml"
      if FileManager.default.fileExists(atPath: beside), !files.contains(beside) { files.append(beside) }
      var tests: [ConfigTest] = []
      for file in files {
        guard let text = try? String(contentsOfFile: file, encoding: .utf8) else { continue }
        let source = SourceFile(path: file, text: text)
        let (found, diagnostics) = ConfigTestReader.read(source, config: plan.config)
        for d in diagnostics { print(d.rendered(source: source)) }
        if diagnostics.contains(where: { $0.severity == .error }) { broken = true }
        tests += found
      }
      guard !tests.isEmpty else { continue }
      print(pipeline)
      let runner = ConfigTestRunner(pipeline: pipeline)
      for test in tests {
        let result = try await runner.run(test)
        if result.passed {
          passed += 1
          print("  PASS \(test.name)")
        } else {
          failed += 1
          print("  FAIL \(test.name)")
          for f in result.failures {
            print(
              f.split(separator: "\n", omittingEmptySubsequences: false).map { "       " + $0 }.joined(separator: "\n"))
          }
        }
      }
    }
    print("\(passed) passed, \(failed) failed")
    if failed > 0 || broken { throw ExitCode(1) }
  }

  /// A YAML file with a top-level `pipeline:` key.
  static func isPipeline(_ path: String) -> Bool {
    guard let text = try? String(contentsOfFile: path, encoding: .utf8) else { return false }
    return text.split(separator: "\n").contains { $0.hasPrefix("pipeline:") }
  }
}
