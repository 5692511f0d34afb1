import TesseraModel
import Testing

@Suite("JSON reader and writer")
struct JSONTests {
  func parse(_ s: String) throws -> Value {
    var text = s
    return try text.withUTF8 { try JSON.parse($0) }
  }

  func parseObject(_ s: String, keeping keys: [String]) throws -> Value {
    var text = s
    return try text.withUTF8 { try JSON.parseObject($0, keeping: keys.map { Array($0.utf8) }) }
  }

  @Test("values of every kind, ints kept apart from doubles")
  func kinds() throws {
    let v = try parse(#"{"a": 1, "b": 1.5, "c": "x\"y\u00e9\n", "d": [true, false, null], "e": {"f": -2e3}}"#)
    #expect(
      v
        == .map([
          "a": .int(1), "b": .double(1.5), "c": .string("x\"yé\n"), "d": .list([.bool(true), .bool(false), .null]),
          "e": .map(["f": .double(-2000)]),
        ]))
  }

  @Test("encoding sorts keys and reads back to the same value")
  func roundTrip() throws {
    let v: Value = .map(["b": .list([.int(2), .string("q\"\\\u{1}")]), "a": .double(0.25), "c": .null])
    let text = JSON.encode(v)
    #expect(text == #"{"a":0.25,"b":[2,"q\"\\\u0001"],"c":null}"#)
    #expect(try parse(text) == v)
  }

  @Test("the byte writer spells numbers, escapes and non-ASCII text exactly")
  func writerText() throws {
    let cases: [(Value, String)] = [
      (.int(0), "0"), (.int(7), "7"), (.int(-7), "-7"), (.int(1_234_567_890), "1234567890"),
      (.int(Int64.max), "9223372036854775807"), (.int(Int64.min + 1), "-9223372036854775807"),
      (.double(3), "3.0"), (.double(-2), "-2.0"), (.double(0.1), "0.1"), (.double(1e20), "1e+20"),
      (.double(.nan), "null"), (.string("plain"), #""plain""#),
      (.string("tab\there \"q\" \\ \r\n\u{1f}é✓😀"), #""tab\there \"q\" \\ \r\n\u001fé✓😀""#),
      (.map(["z": .bool(true), "a": .list([])]), #"{"a":[],"z":true}"#),
    ]
    for (v, text) in cases {
      #expect(JSON.encode(v) == text, "\(v)")
      if case .double(let d) = v, !d.isFinite { continue }
      #expect(try parse(JSON.encode(v)) == v, "\(v) reads back")
    }
  }

  @Test("errors name the byte where the JSON goes wrong")
  func errors() {
    for (text, offset) in [(#"{"a": }"#, 6), (#"{"a": 1"#, 7), (#"[1, 2,]"#, 6), ("tru", 0), (#"{"a": 1} x"#, 9)] {
      #expect(throws: JSON.ParseError.self, "\(text)") { try parse(text) }
      do {
        _ = try parse(text)
      } catch let error as JSON.ParseError {
        #expect(error.offset == offset, "\(text): \(error)")
      } catch {
        Issue.record("unexpected error \(error)")
      }
    }
  }

  @Test("a projected object builds only the kept members and equals the full parse restricted to them")
  func projection() throws {
    let text =
      #"{"keep": {"x": [1, {"y": "z"}]}, "skip": {"deep": [[["\"]}{"]], {"e": "\\"}], "n": 3}, "id": "m-1", "t": null}"#
    let full = try parse(text)
    let projected = try parseObject(text, keeping: ["keep", "id", "t", "absent"])
    guard case .map(let all) = full else {
      Issue.record("not a map")
      return
    }
    #expect(projected == .map(all.filter { ["keep", "id", "t"].contains($0.key) }))
    #expect(try parseObject(#"{"a\u0062": 1, "c": 2}"#, keeping: ["ab"]) == .map(["ab": .int(1)]))
  }

  @Test("skipped members are still checked for structure")
  func projectionErrors() throws {
    for text in [#"{"skip": [1, 2, "id": 1}"#, #"{"skip": "unterminated}"#, #"{"skip": {"a" 1}, "id": 1}"#] {
      #expect(throws: JSON.ParseError.self, "\(text)") { try parseObject(text, keeping: ["id"]) }
    }
    #expect(throws: JSON.ParseError.self) { try parseObject(#"{"id": 1} trailing"#, keeping: ["id"]) }
    // Skipped values may nest past the 512 levels a built value may: they are stepped over without recursion.
    let deep = String(repeating: #"{"a": ["#, count: 50_000) + "1" + String(repeating: "]}", count: 50_000)
    #expect(try parseObject(#"{"skip": "# + deep + #", "id": 1}"#, keeping: ["id"]) == .map(["id": .int(1)]))
    #expect(throws: JSON.ParseError.self) {
      try parseObject(#"{"skip": "# + deep.dropLast() + #", "id": 1}"#, keeping: ["id"])
    }
    #expect(throws: JSON.ParseError.self) { try parse(deep) }
  }

  @Test("a non-object top level comes back as it is, for the caller to reject")
  func nonObject() throws {
    #expect(try parseObject("[1]", keeping: ["a"]) == .list([.int(1)]))
  }

  /// A high surrogate escape followed by an escape that is not a low surrogate used to overflow a UInt32
  /// and trap: one tracking message (`"userId": "\uD800\u0000"`) stopped the whole server.
  @Test("surrogate escapes: pairs join, a lone or broken half becomes U+FFFD")
  func surrogates() throws {
    #expect(try parse(#""\uD83D\uDE00""#) == .string("😀"))
    #expect(try parse(#""\uD800\u0041""#) == .string("\u{FFFD}A"))
    #expect(try parse(#""\uD800\u0000""#) == .string("\u{FFFD}\u{0}"))
    #expect(try parse(#""\uDBFF\uDBFF\uDFFF""#) == .string("\u{FFFD}\u{10FFFF}"))
    #expect(try parse(#""\uDC00x""#) == .string("\u{FFFD}x"))
    #expect(try parse(#""a\uD800""#) == .string("a\u{FFFD}"))
    #expect(throws: JSON.ParseError.self) { try parse(#""\uD800\u00""#) }
  }

  /// `1e400` used to read as infinity, which the writer spells `null`: the stored event said something the
  /// client never sent. A number no double holds is an error, like any other malformed number.
  @Test("a number past the range of a double is refused, not read as infinity")
  func outOfRange() throws {
    for text in ["1e400", "-1e400", "[1, 2e999]", #"{"a": 1.8e308}"#] {
      #expect(throws: JSON.ParseError.self, "\(text)") { try parse(text) }
    }
    #expect(try parse("1e-400") == .double(0))
    // Members a projection steps over are checked for syntax only: the value is never read.
    #expect(try parseObject(#"{"skip": [1e400], "id": 1}"#, keeping: ["id"]) == .map(["id": .int(1)]))
    #expect(try parse("1.7976931348623157e308") == .double(.greatestFiniteMagnitude))
  }
}
