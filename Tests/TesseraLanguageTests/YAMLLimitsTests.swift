import TesseraLanguage
import Testing

/// YAML that describes more than any configuration could mean — aliases expanding exponentially, nesting deeper
/// than the reader's stack — is refused with a diagnostic, in bounded time and memory.
@Suite("YAML reader limits")
struct YAMLLimitsTests {
  static func read(_ text: String) -> (node: YNode?, diagnostics: [Diagnostic], seconds: Double) {
    let started = ContinuousClock.now
    let (node, diagnostics) = YAMLReader.read(SourceFile(path: "limits.yaml", text: text))
    let d = ContinuousClock.now - started
    return (node, diagnostics, Double(d.components.seconds) + Double(d.components.attoseconds) / 1e18)
  }

  /// "Billion laughs": nine levels of ten aliases each describe 10^9 scalars in under a kilobyte. Reading it
  /// used to build every one of them, until the machine ran out of memory (24 GB, then the kernel's OOM killer).
  @Test("aliases that expand past the value limit are refused quickly")
  func aliasBomb() {
    var text = "l0: &l0 [lol, lol, lol, lol, lol, lol, lol, lol, lol, lol]"
    for l in 1..<9 {
      text += "\nl\(l): &l\(l) [" + Array(repeating: "*l\(l - 1)", count: 10).joined(separator: ", ") + "]"
    }
    let (node, diagnostics, seconds) = Self.read(text)
    #expect(node == nil)
    #expect(
      diagnostics.map(\.description) == [
        "limits.yaml:1:1: error: the document holds more than 250000 values once its aliases are expanded; "
          + "a configuration needs far fewer"
      ])
    #expect(seconds < 10)
  }

  @Test("aliases used the ordinary way still read")
  func ordinaryAliases() throws {
    let (node, diagnostics, _) = Self.read(
      "base: &base { kind: csv, path: a.csv }\ncopy: *base\nmerged: { <<: *base, kind: ndjson }")
    #expect(diagnostics.isEmpty)
    let copy = try #require(node?.mapping?.first { $0.key.scalar == "copy" }?.value.mapping)
    #expect(copy.map { $0.key.scalar } == ["kind", "path"])
  }

  static let deep = [
    "deep: " + String(repeating: "[", count: 100_000) + String(repeating: "]", count: 100_000),
    "deep: " + String(repeating: "{a: ", count: 50_000) + "x" + String(repeating: "}", count: 50_000),
    "deep:\n  " + String(repeating: "- ", count: 50_000) + "x",
    (0..<3_000).map { String(repeating: " ", count: $0) + "k\($0):" }.joined(separator: "\n") + " x",
  ]

  /// Flow brackets, compact block sequences and indentation, each far past the limit libyaml keeps (1000
  /// levels): a diagnostic in our words, not the name of libyaml's C function.
  @Test("nesting deeper than 1000 levels is a diagnostic", arguments: 0..<4)
  func deepNesting(_ index: Int) {
    let (node, diagnostics, seconds) = Self.read(Self.deep[index])
    #expect(node == nil)
    #expect(diagnostics.count == 1)
    #expect(diagnostics.first?.message == "invalid YAML: the document nests values more than 1000 levels deep")
    #expect(seconds < 10)
  }

  @Test("nesting within the limit still reads")
  func nestingWithinTheLimit() {
    let (node, diagnostics, _) = Self.read(
      "deep: " + String(repeating: "[", count: 990) + String(repeating: "]", count: 990))
    #expect(diagnostics.isEmpty)
    #expect(node != nil)
  }
}
