import Testing

@testable import TesseraLanguage

@Suite("Diagnostics and suggestions")
struct DiagnosticsTests {
  static let source = SourceFile(path: "rules/segments.yaml", text: "name: vip\nwhere: traits.cty == 1\n")

  static func loc(_ line: Int, _ column: Int) -> Loc {
    Loc(file: "rules/segments.yaml", line: line, column: column)
  }

  @Test("rendering shows the header, the source line and a caret under the span")
  func rendered() {
    let d = Diagnostic.error("unknown field `traits.cty`", at: Self.loc(2, 8), length: 10)
    let caret = String(repeating: " ", count: 7) + "^" + String(repeating: "~", count: 9)
    #expect(
      d.rendered(source: Self.source)
        == "rules/segments.yaml:2:8: error: unknown field `traits.cty`\nwhere: traits.cty == 1\n" + caret)
  }

  @Test("a one-character span is a lone caret, warnings say so")
  func renderedSingleCaret() {
    let d = Diagnostic.warning("odd", at: Self.loc(1, 1))
    #expect(d.rendered(source: Self.source) == "rules/segments.yaml:1:1: warning: odd\nname: vip\n^")
    #expect(d.description == "rules/segments.yaml:1:1: warning: odd")
  }

  @Test("the caret span is clipped at the end of the line")
  func renderedClipped() {
    let d = Diagnostic.error("too long", at: Self.loc(1, 7), length: 50)
    #expect(d.rendered(source: Self.source) == "rules/segments.yaml:1:7: error: too long\nname: vip\n      ^~~")
  }

  @Test("without a source, or outside it, only the header is rendered")
  func renderedHeaderOnly() {
    let d = Diagnostic.error("gone", at: Self.loc(9, 1))
    #expect(d.rendered(source: Self.source) == "rules/segments.yaml:9:1: error: gone")
    #expect(d.rendered(source: SourceFile?.none) == "rules/segments.yaml:9:1: error: gone")
  }

  @Test("tabs in the quoted line render as spaces so the caret lines up")
  func renderedTabs() {
    let source = SourceFile(path: "t.yaml", text: "a:\tb\r\nnext")
    #expect(source.lines == ["a:\tb", "next"])
    let d = Diagnostic.error("here", at: Loc(file: "t.yaml", line: 1, column: 4), length: 1)
    #expect(d.rendered(source: source) == "t.yaml:1:4: error: here\na: b\n   ^")
  }

  @Test("lines break at LF, CRLF and CR")
  func lineBreaks() {
    #expect(SourceFile(path: "x", text: "a\r\nb\rc\nd").lines == ["a", "b", "c", "d"])
    #expect(SourceFile(path: "x", text: "a\r\n").lines == ["a", ""])
    #expect(SourceFile(path: "x", text: "").lines == [""])
    // Line ends next to characters of several bytes, a combining mark after a line end, "\n\r" as two ends.
    let mixed = "ü\n\r\nß\r\r\u{301}x\n\r👩‍👩‍👧"
    #expect(SourceFile(path: "x", text: mixed).lines == ["ü", "", "ß", "", "\u{301}x", "", "👩‍👩‍👧"])
    #expect(
      SourceFile(path: "x", text: mixed).lines
        == mixed.split(omittingEmptySubsequences: false) { $0 == "\n" || $0 == "\r\n" || $0 == "\r" })
  }

  @Test("lengths below one are raised to one")
  func minimumLength() {
    #expect(Diagnostic.error("x", at: Self.loc(1, 1), length: 0).length == 1)
    #expect(ExprError("x", offset: 0, length: -3).length == 1)
  }

  @Test("source files split lines and answer line lookups")
  func sourceFileLines() {
    #expect(Self.source.lines.count == 3)
    #expect(Self.source.line(1) == "name: vip")
    #expect(Self.source.line(3) == "")
    #expect(Self.source.line(0) == nil)
    #expect(Self.source.line(4) == nil)
    #expect(Self.loc(2, 3).advanced(by: 4) == Self.loc(2, 7))
    #expect(Self.loc(1, 9) < Self.loc(2, 1))
    #expect(Loc(file: "a", line: 9, column: 9) < Loc(file: "b", line: 1, column: 1))
  }

  @Test("a collection of diagnostics counts, sorts and removes duplicates")
  func collection() {
    var ds = Diagnostics()
    #expect(!ds.hasErrors)
    ds.warning("w", at: Self.loc(2, 1))
    #expect(!ds.hasErrors)
    ds.error("e2", at: Self.loc(1, 5))
    ds.error("e1", at: Self.loc(1, 5))
    ds.error("e1", at: Self.loc(1, 5))
    ds.append(.warning("early", at: Self.loc(1, 1)))
    ds.append(contentsOf: [.error("other file", at: Loc(file: "a.yaml", line: 3, column: 1))])
    #expect(ds.hasErrors)
    #expect(ds.errorCount == 4)
    #expect(ds.warningCount == 2)
    #expect(ds.all.count == 6)
    #expect(ds.sorted.map(\.message) == ["other file", "early", "e1", "e2", "w"])
    #expect(Severity.error < Severity.warning && Severity.warning < Severity.note)
  }

  @Test("closest suggests the nearest known name within a small distance")
  func closest() {
    #expect(Suggest.closest(to: "lowr", in: ["lower", "upper", "trim"]) == "lower")
    #expect(Suggest.closest(to: "nmae", in: ["name", "email"]) == "name")
    #expect(Suggest.closest(to: "xyz", in: ["lower", "upper"]) == nil)
    #expect(Suggest.closest(to: "name", in: ["name"]) == nil)
    #expect(Suggest.closest(to: "Name", in: ["name"]) == "name")
    #expect(Suggest.closest(to: "cat", in: ["hat", "bat"]) == "bat")
    #expect(Suggest.closest(to: "traits.cty", in: ["traits.city", "traits.age"]) == "traits.city")
    // The limit grows with the name (a third of it) up to three edits.
    #expect(Suggest.closest(to: "ab", in: ["abcd"]) == nil)
    #expect(Suggest.closest(to: "abcdef", in: ["abcdxy"]) == "abcdxy")
    #expect(Suggest.closest(to: "abcdefghijkl", in: ["abcdefghixyz"]) == "abcdefghixyz")
    #expect(Suggest.closest(to: "abcdefghijkl", in: ["abcdefghwxyz"]) == nil)
    #expect(Suggest.closest(to: "anything", in: [String]()) == nil)
  }

  @Test("didYouMean formats the suggestion or nothing")
  func didYouMean() {
    #expect(Suggest.didYouMean("lowr", in: ["lower"]) == "; did you mean `lower`?")
    #expect(Suggest.didYouMean("zzz", in: ["lower"]) == "")
  }

  @Test(
    "edit distance counts insertions, deletions, substitutions and adjacent transpositions",
    arguments: [
      ("kitten", "sitting", 3), ("", "abc", 3), ("abc", "", 3), ("", "", 0), ("same", "same", 0), ("ab", "ba", 1),
      ("abcd", "acbd", 1), ("ca", "abc", 3), ("flaw", "lawn", 2), ("é", "e", 1), ("lowr", "lower", 1),
    ])
  func editDistance(a: String, b: String, distance: Int) {
    #expect(Suggest.editDistance(a, b) == distance)
    #expect(Suggest.editDistance(b, a) == distance)
  }

  @Test("expression type names and assignability")
  func exprTypes() {
    #expect(ExprType(name: "integer") == .int)
    #expect(ExprType(name: "number") == .double)
    #expect(ExprType(name: "any") == .dyn)
    #expect(ExprType(name: "list") == .list(.dyn))
    #expect(ExprType(name: "text") == nil)
    for name in ExprType.typeNames { #expect(ExprType(name: name) != nil, "\(name)") }
    #expect(ExprType.list(.string).description == "list<string>")
    #expect(ExprType.list(.dyn).description == "list")
    #expect(ExprType.int.isAssignable(to: .double))
    #expect(!ExprType.double.isAssignable(to: .int))
    #expect(ExprType.null.isAssignable(to: .string))
    #expect(ExprType.list(.int).isAssignable(to: .list(.double)))
    #expect(!ExprType.list(.string).isAssignable(to: .list(.int)))
    #expect(ExprType.unify(.int, .double) == .double)
    #expect(ExprType.unify(.null, .string) == .string)
    #expect(ExprType.unify(.string, .int) == nil)
    #expect(ExprType.unify(.list(.int), .list(.string)) == .list(.dyn))
  }

  @Test("scopes hand out slots in order and list their names")
  func scopeSlots() {
    var s = Scope(place: "p")
    #expect(s.addVariable("event", .map) == 0)
    #expect(s.addField("traits", "city", .string) == 1)
    #expect(s.addOpenNamespace("properties") == 2)
    #expect(s.addRawRecord(default: .string) == 3)
    #expect(s.slotCount == 4)
    #expect(s.rawSlot == 3)
    #expect(s.rawDefault == .string)
    #expect(Set(s.knownNames) == ["event", "traits", "traits.city", "properties"])
  }
}
