import Foundation
import TesseraCompiler
import TesseraLanguage

/// Where the test sources, fixtures and the example pipeline are, found from this file's path.
enum TestPaths {
  /// `Tests/TesseraCompilerTests`
  static let testDirectory = URL(fileURLWithPath: #filePath).deletingLastPathComponent().path
  /// The package root, three levels up from this file.
  static let packageRoot = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
    .deletingLastPathComponent().path
  static let brokenFixtures = testDirectory + "/Fixtures/broken"
  static let retailPipeline = packageRoot + "/pipelines/retail.yaml"

  /// The names of the broken fixtures (`NN-what.yaml`), sorted.
  static func brokenFixtureNames() -> [String] {
    let names = (try? FileManager.default.contentsOfDirectory(atPath: brokenFixtures)) ?? []
    return names.filter { $0.hasSuffix(".yaml") }.sorted()
  }
}

/// The fixed environment fixtures compile with, so no variable of the machine running the tests leaks in.
let fixtureEnvironment = ["TESSERA_FIXTURE_TOKEN": "fixture-token"]

/// A diagnostic reduced to what the fixtures state: file, line, column, severity and message.
struct ExpectedDiagnostic: Hashable, CustomStringConvertible {
  var file: String
  var line: Int
  var column: Int
  var severity: Severity
  var message: String

  init(file: String, line: Int, column: Int, severity: Severity, message: String) {
    self.file = file
    self.line = line
    self.column = column
    self.severity = severity
    self.message = message
  }

  init(_ d: Diagnostic) {
    self.init(
      file: d.location.file, line: d.location.line, column: d.location.column, severity: d.severity,
      message: d.message)
  }

  var description: String { "\(file):\(line):\(column): \(severity.rawValue): \(message)" }

  /// Reads the leading `# expect: [FILE:]LINE:COLUMN: severity: message` lines of a fixture (severity error,
  /// warning or note). FILE is relative
  /// to the fixture's folder; `$DIR` in a message stands for that folder.
  static func parse(fixture text: String, path: String, directory: String) -> [ExpectedDiagnostic]? {
    var out: [ExpectedDiagnostic] = []
    let prefix = "# expect: "
    for line in text.split(separator: "\n", omittingEmptySubsequences: false) {
      guard line.hasPrefix("#") else { break }
      guard line.hasPrefix(prefix) else { continue }
      let rest = line.dropFirst(prefix.count)
      let severity: Severity
      let head: Substring
      let message: Substring
      if let r = rest.range(of: ": error: ") {
        severity = .error
        head = rest[..<r.lowerBound]
        message = rest[r.upperBound...]
      } else if let r = rest.range(of: ": warning: ") {
        severity = .warning
        head = rest[..<r.lowerBound]
        message = rest[r.upperBound...]
      } else if let r = rest.range(of: ": note: ") {
        severity = .note
        head = rest[..<r.lowerBound]
        message = rest[r.upperBound...]
      } else {
        return nil
      }
      let parts = head.split(separator: ":").map(String.init)
      guard parts.count == 2 || parts.count == 3, let l = Int(parts[parts.count - 2]),
        let c = Int(parts[parts.count - 1])
      else { return nil }
      let file = parts.count == 3 ? directory + "/" + parts[0] : path
      out.append(
        ExpectedDiagnostic(
          file: file, line: l, column: c, severity: severity,
          message: message.replacingOccurrences(of: "$DIR", with: directory)))
    }
    return out
  }
}

/// Compiles pipelines held in memory: `files` maps a path to its text.
func compileInMemory(_ files: [String: String], root: String = "p.yaml", environment: [String: String] = [:])
  -> CompileResult
{
  Compiler(environment: environment, readFile: { files[$0] }).compile(pipeline: root)
}
