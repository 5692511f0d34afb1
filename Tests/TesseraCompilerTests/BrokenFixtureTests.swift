import Foundation
import TesseraCompiler
import TesseraLanguage
import Testing

/// Every file in `Fixtures/broken` is a small configuration with one kind of mistake; its leading
/// `# expect:` lines list exactly the diagnostics the compiler must give for it.
@Suite("Broken configurations")
struct BrokenFixtureTests {
  @Test("there are enough broken fixtures and each states its diagnostics")
  func fixturesArePresent() throws {
    let names = TestPaths.brokenFixtureNames()
    #expect(names.count >= 45)
    for name in names {
      #expect(name.range(of: #"^[0-9]{2}-[a-z0-9-]+\.yaml$"#, options: .regularExpression) != nil, "\(name)")
      let path = TestPaths.brokenFixtures + "/" + name
      let text = try String(contentsOfFile: path, encoding: .utf8)
      let expected = ExpectedDiagnostic.parse(fixture: text, path: path, directory: TestPaths.brokenFixtures)
      #expect(expected?.isEmpty == false, "\(name) states no `# expect:` line")
    }
  }

  @Test("the diagnostics are exactly the expected ones", arguments: TestPaths.brokenFixtureNames())
  func fixture(_ name: String) throws {
    let directory = TestPaths.brokenFixtures
    let path = directory + "/" + name
    let text = try String(contentsOfFile: path, encoding: .utf8)
    let expected = try #require(ExpectedDiagnostic.parse(fixture: text, path: path, directory: directory))
    let result = Compiler(environment: fixtureEnvironment).compile(pipeline: path)
    let actual = result.diagnostics.map(ExpectedDiagnostic.init)
    let missing = expected.filter { !actual.contains($0) }
    let extra = actual.filter { !expected.contains($0) }
    #expect(missing.isEmpty, "missing:\n\(missing.map(\.description).joined(separator: "\n"))")
    #expect(extra.isEmpty, "unexpected:\n\(extra.map(\.description).joined(separator: "\n"))")
    #expect(actual.count == expected.count, "\(actual.map(\.description).joined(separator: "\n"))")
    if expected.contains(where: { $0.severity == .error }) {
      #expect(result.plan == nil)
      #expect(result.hasErrors)
    } else {
      #expect(result.plan != nil)
    }
    // Every diagnostic can be rendered with its source line.
    for d in result.diagnostics {
      #expect(result.sources[d.location.file]?.line(d.location.line) != nil, "\(d)")
    }
  }
}
