import Testing

@testable import TesseraLanguage

@Suite("YAML reader")
struct YAMLReaderTests {
  static func read(_ text: String, path: String = "p.yaml") -> (node: YNode?, diagnostics: [Diagnostic]) {
    YAMLReader.read(SourceFile(path: path, text: text))
  }

  static func at(_ node: YNode?) -> String {
    guard let node else { return "nil" }
    return "\(node.location.line):\(node.location.column)"
  }

  static func value(_ node: YNode?, _ key: String) -> YNode? {
    node?.mapping?.first { $0.key.scalar == key }?.value
  }

  static func key(_ node: YNode?, _ key: String) -> YNode? {
    node?.mapping?.first { $0.key.scalar == key }?.key
  }

  static let pipeline = """
    name: orders
    source:
      path: "data.csv"
      fields:
        - id
        - amount: double
    note: 'single'
    text: |
      line one
      line two
    folded: >
      a
      b
    empty:
    tilde: ~
    tagged: !!str 42
    """

  @Test("reads a document with the positions of keys and values")
  func positions() throws {
    let (node, diagnostics) = Self.read(Self.pipeline)
    #expect(diagnostics.isEmpty)
    let root = try #require(node)
    #expect(Self.at(root) == "1:1")
    #expect(root.location.file == "p.yaml")
    #expect(
      root.mapping?.map(\.key.scalar) == ["name", "source", "note", "text", "folded", "empty", "tilde", "tagged"])
    #expect(Self.at(Self.key(root, "name")) == "1:1")
    #expect(Self.at(Self.value(root, "name")) == "1:7")
    #expect(Self.value(root, "name")?.scalar == "orders")
    let source = Self.value(root, "source")
    #expect(Self.at(Self.key(root, "source")) == "2:1")
    #expect(Self.at(source) == "3:3")
    #expect(Self.at(Self.key(source, "path")) == "3:3")
    #expect(Self.at(Self.value(source, "path")) == "3:9")
    #expect(Self.value(source, "path")?.scalar == "data.csv")
    let fields = try #require(Self.value(source, "fields")?.sequence)
    #expect(Self.at(Self.value(source, "fields")) == "5:5")
    #expect(fields.count == 2)
    #expect(Self.at(fields[0]) == "5:7")
    #expect(fields[0].scalar == "id")
    #expect(Self.at(fields[1]) == "6:7")
    #expect(Self.at(Self.value(fields[1], "amount")) == "6:15")
    #expect(Self.at(Self.key(root, "note")) == "7:1")
    #expect(Self.at(Self.value(root, "note")) == "7:7")
  }

  @Test("scalar styles, nulls and explicit tags")
  func scalarStyles() throws {
    let root = try #require(Self.read(Self.pipeline).node)
    let name = try #require(Self.value(root, "name"))
    #expect(name.isPlainScalar)
    #expect(!name.isNull)
    #expect(name.kindDescription == "`orders`")
    let path = try #require(Self.value(Self.value(root, "source"), "path"))
    guard case .scalar(_, .doubleQuoted) = path.kind else {
      Issue.record("expected a double-quoted scalar, found \(path.kind)")
      return
    }
    #expect(!path.isPlainScalar)
    let note = try #require(Self.value(root, "note"))
    guard case .scalar("single", .singleQuoted) = note.kind else {
      Issue.record("expected a single-quoted scalar, found \(note.kind)")
      return
    }
    let text = try #require(Self.value(root, "text"))
    guard case .scalar("line one\nline two\n", .literal) = text.kind else {
      Issue.record("expected a literal block scalar, found \(text.kind)")
      return
    }
    let folded = try #require(Self.value(root, "folded"))
    guard case .scalar("a b\n", .folded) = folded.kind else {
      Issue.record("expected a folded block scalar, found \(folded.kind)")
      return
    }
    #expect(Self.value(root, "empty")?.isNull == true)
    #expect(Self.value(root, "empty")?.kindDescription == "null")
    #expect(Self.value(root, "tilde")?.isNull == true)
    let tagged = try #require(Self.value(root, "tagged"))
    #expect(tagged.scalar == "42")
    #expect(tagged.explicitTag == "tag:yaml.org,2002:str")
    #expect(!tagged.isPlainScalar)
    #expect(Self.value(root, "source")?.kindDescription == "a mapping")
    #expect(Self.value(Self.value(root, "source"), "fields")?.kindDescription == "a list")
    #expect(root.sequence == nil)
    #expect(root.scalar == nil)
  }

  @Test("long scalars are shortened in descriptions")
  func longDescription() throws {
    let long = String(repeating: "x", count: 50)
    let root = try #require(Self.read("k: \(long)").node)
    #expect(Self.value(root, "k")?.kindDescription == "`" + String(repeating: "x", count: 40) + "…`")
  }

  @Test("offsets inside scalars map to file positions")
  func locationOfOffset() throws {
    let root = try #require(Self.read("where: traits.cty == 1\nq: \"a > b\"\n").node)
    let plain = try #require(Self.value(root, "where"))
    #expect(plain.location(ofOffset: 0) == Loc(file: "p.yaml", line: 1, column: 8))
    #expect(plain.location(ofOffset: 7) == Loc(file: "p.yaml", line: 1, column: 15))
    let quoted = try #require(Self.value(root, "q"))
    #expect(quoted.location(ofOffset: 2) == Loc(file: "p.yaml", line: 2, column: 7))
    #expect(root.location(ofOffset: 5) == root.location)
  }

  @Test("an empty document reads as an empty mapping")
  func emptyDocument() throws {
    for text in ["", "\n", "# only a comment\n"] {
      let (node, diagnostics) = Self.read(text)
      #expect(diagnostics.isEmpty)
      #expect(node?.mapping?.isEmpty == true)
    }
  }

  @Test("aliases resolve to their anchor's value")
  func aliases() throws {
    let root = try #require(Self.read("a: &x hello\nb: *x\n").node)
    #expect(Self.value(root, "b")?.scalar == "hello")
  }

  @Test("a tab in indentation is reported at the tab")
  func tabInIndentation() throws {
    let (node, diagnostics) = Self.read("a:\n\tb: 1\n")
    #expect(node == nil)
    let d = try #require(diagnostics.first)
    #expect(diagnostics.count == 1)
    #expect(d.severity == .error)
    #expect(d.message == "tab character in indentation; YAML indents with spaces only")
    #expect(d.location == Loc(file: "p.yaml", line: 2, column: 1))

    let (_, more) = Self.read("a:\n  b: 1\n  \tc: 2\n\t\td: 3\n")
    #expect(more.map(\.location.description) == ["p.yaml:3:3", "p.yaml:4:1"])
  }

  @Test("a tab after the indentation is not an indentation error")
  func tabInsideLine() throws {
    let (node, diagnostics) = Self.read("a:\t1\nb: \"x\ty\"\n")
    #expect(diagnostics.isEmpty)
    #expect(Self.value(node, "a")?.scalar == "1")
    #expect(Self.value(node, "b")?.scalar == "x\ty")
  }

  @Test("a duplicate key is reported at its second occurrence")
  func duplicateKey() throws {
    let (node, diagnostics) = Self.read("a: 1\nb: 2\na: 3\n")
    #expect(node == nil)
    let d = try #require(diagnostics.first)
    #expect(diagnostics.count == 1)
    #expect(d.message == "duplicate key `a` (first defined at line 1); remove or rename one of them")
    #expect(d.location == Loc(file: "p.yaml", line: 3, column: 1))
    #expect(d.length == 1)
  }

  @Test("duplicate keys in nested, quoted and flow mappings")
  func duplicateKeyVariants() throws {
    let nested = try #require(Self.read("top:\n  key: 1\n  other: 2\n  key: 3\n").diagnostics.first)
    #expect(nested.location.description == "p.yaml:4:3")
    #expect(nested.message.hasPrefix("duplicate key `key` (first defined at line 2)"))
    #expect(nested.length == 3)

    let quoted = try #require(Self.read("\"name\": 1\nname: 2\n").diagnostics.first)
    #expect(quoted.location.description == "p.yaml:2:1")

    let flow = try #require(Self.read("m: {a: 1, b: 2, a: 3}\n").diagnostics.first)
    #expect(flow.location.description == "p.yaml:1:17")
    #expect(flow.message.hasPrefix("duplicate key `a`"))
  }

  @Test("a syntax error has a position")
  func syntaxError() throws {
    let (node, diagnostics) = Self.read("a: [1, 2\nb: 3\n")
    #expect(node == nil)
    let d = try #require(diagnostics.first)
    #expect(d.message.hasPrefix("invalid YAML: "))
    #expect(d.location.file == "p.yaml")
    #expect(d.location.line >= 1 && d.location.line <= 3)
    #expect(d.location.column >= 1)

    let (_, bad) = Self.read("key: value\n  nested: oops\n")
    let b = try #require(bad.first)
    #expect(b.message.hasPrefix("invalid YAML: mapping values are not allowed"))
    #expect(b.location.description == "p.yaml:2:9")

    let (_, unterminated) = Self.read("a: \"open\n")
    #expect(unterminated.first?.message.hasPrefix("invalid YAML: ") == true)
  }
}

@Suite("YAML reader positions at the edges")
struct YAMLEdgeTests {
  @Test("an error at the end of the stream points at the end of the text, not past it")
  func endOfStream() throws {
    let d = try #require(YAMLReaderTests.read("a: [1, 2").diagnostics.first)
    #expect(d.message.hasPrefix("invalid YAML: did not find expected ',' or ']'"))
    #expect(d.location.description == "p.yaml:1:9")
    let source = SourceFile(path: "p.yaml", text: "a: [1, 2")
    #expect(d.rendered(source: source).hasSuffix("\na: [1, 2\n        ^"))
  }

  @Test("CRLF files report the same lines as LF files")
  func crlfLines() throws {
    let lf = YAMLReaderTests.read("a: 1\nb:\n\tc: 2\n").diagnostics.first
    let crlf = YAMLReaderTests.read("a: 1\r\nb:\r\n\tc: 2\r\n").diagnostics.first
    #expect(crlf?.location.description == "p.yaml:3:1")
    #expect(crlf?.location == lf?.location)
    let dup = try #require(YAMLReaderTests.read("a: 1\r\nb: 2\r\na: 3\r\n").diagnostics.first)
    #expect(dup.location.description == "p.yaml:3:1")
    let root = try #require(YAMLReaderTests.read("a: 1\r\nb: two\r\n").node)
    #expect(YAMLReaderTests.at(YAMLReaderTests.value(root, "b")) == "2:4")
  }
}
