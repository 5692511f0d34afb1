import Foundation
import TesseraCompiler
import TesseraLanguage
import TesseraMatching
import TesseraModel

/// Compiles rules from memory: `files` maps paths to YAML, `root` is the rules file.
func compileRules(_ files: [String: String], root: String = "rules.yaml") -> CompileResult {
  Compiler(environment: [:], readFile: { files[$0] }).compile(rules: root)
}

/// The one probabilistic rule of compiled rules, with its config; fails the test when they do not compile.
func rule(_ yaml: String, extra: [String: String] = [:]) throws -> (PipelineConfig, ProbabilisticRule) {
  let result = compileRules(extra.merging(["rules.yaml": yaml]) { a, _ in a })
  guard let plan = result.plan, let rule = plan.config.probabilistic.first else {
    throw TestFailure(result.rendered())
  }
  return (plan.config, rule)
}

struct TestFailure: Error, CustomStringConvertible {
  var description: String
  init(_ d: String) { description = d }
}

/// Records from rows of field values (nil: absent); ids `r0`, `r1`, ….
func recordSet(
  _ config: PipelineConfig, _ rule: ProbabilisticRule, model: MatchModel? = nil, rows: [[String: String]],
  truth: [String]? = nil, origins: [UInt16]? = nil
) -> RecordSet {
  var builder = RecordSetBuilder(model: model ?? MatchModel(rule: rule), rule: rule, config: config)
  for (i, row) in rows.enumerated() {
    builder.append(id: row["id"] ?? "r\(i)", origin: origins?[i] ?? 0, truth: truth?[i]) { row[$0] }
  }
  return builder.finish()
}

/// Package paths, found from this file.
enum TestPaths {
  static let packageRoot = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
    .deletingLastPathComponent().path
}
