import Foundation
import TesseraCompiler
import TesseraLanguage
import Testing

@Suite("Diagnostics order and completeness")
struct DiagnosticOrderTests {
  static func isSorted(_ ds: [Diagnostic]) -> Bool {
    zip(ds, ds.dropFirst()).allSatisfy { a, b in !(b.location < a.location) }
  }

  @Test("every independent problem of a file is reported in one run, in file order")
  func allProblemsAtOnce() throws {
    let path = TestPaths.brokenFixtures + "/55-several-errors.yaml"
    let result = Compiler(environment: fixtureEnvironment).compile(pipeline: path)
    #expect(result.plan == nil)
    let errors = result.diagnostics.filter { $0.severity == .error }
    #expect(errors.count == 4)
    #expect(errors.allSatisfy { $0.location.file == path })
    #expect(errors.map(\.location.line) == [9, 18, 20, 25])
    // The CSV source's file does not exist: a note, not a problem.
    #expect(result.diagnostics.filter { $0.severity == .note }.map(\.location.line) == [13])
    #expect(result.diagnostics.count == 5)
    #expect(Self.isSorted(result.diagnostics))
  }

  @Test("diagnostics across files are sorted by file, line and column")
  func sortedAcrossFiles() throws {
    let files = [
      "p.yaml": """
      pipeline: p
      include: [rules/b.yaml, rules/a.yaml]
      sources:
        app: { kind: http, write_key: k }
      identifiers:
        user_id: { max_per_profile: 0 }
      segments:
        x: traits.nope == 1
      sorces: {}
      """,
      "rules/a.yaml": """
      segments:
        y: segments.z
        w: exists(profile.idd)
      """,
      "rules/b.yaml": """
      destinations:
        d: { kind: webhook, on: profile_changes, url: "https://x.example", consent: marketing }
      identifiers:
        email: { normalize: emails }
      """,
    ]
    let result = compileInMemory(files)
    #expect(result.plan == nil)
    let ds = result.diagnostics
    #expect(Self.isSorted(ds))
    #expect(Set(ds.map(\.location.file)) == ["p.yaml", "rules/a.yaml", "rules/b.yaml"])
    // Sorted also means grouped: each file's diagnostics are contiguous.
    var seen: [String] = []
    for d in ds where seen.last != d.location.file {
      #expect(!seen.contains(d.location.file))
      seen.append(d.location.file)
    }
    #expect(seen == ["p.yaml", "rules/a.yaml", "rules/b.yaml"])
    #expect(ds.filter { $0.location.file == "p.yaml" }.count == 3)
    #expect(ds.filter { $0.location.file == "rules/a.yaml" }.count == 2)
    #expect(ds.filter { $0.location.file == "rules/b.yaml" }.count == 2)
    // Compiling twice gives the same diagnostics.
    #expect(compileInMemory(files).diagnostics == ds)
  }

  @Test("a syntax error in an included file stops before the semantic checks")
  func syntaxErrorStops() {
    let result = compileInMemory([
      "p.yaml": "pipeline: p\ninclude: [r.yaml]\nsegments:\n  x: nope.nope\n",
      "r.yaml": "identifiers:\n  a: [1, 2\n",
    ])
    #expect(result.plan == nil)
    #expect(result.diagnostics.count == 1)
    #expect(result.diagnostics.first?.location.file == "r.yaml")
    #expect(result.diagnostics.first?.message.hasPrefix("invalid YAML: ") == true)
  }

  @Test("a pipeline file that cannot be read is one error")
  func unreadableRoot() {
    let result = compileInMemory([:], root: "missing.yaml")
    #expect(result.plan == nil)
    #expect(
      result.diagnostics.map(\.description) == ["missing.yaml:1:1: error: cannot read pipeline file `missing.yaml`"])
  }
}
