import Testing

@testable import TesseraModel

@Suite("Value")
struct ValueTests {
  @Test("equality compares ints and doubles by numeric value")
  func numericEquality() {
    #expect(Value.equal(.int(1), .double(1.0)))
    #expect(Value.equal(.double(2.0), .int(2)))
    #expect(!Value.equal(.int(1), .double(1.5)))
    #expect(Value.equal(.int(7), .int(7)))
    #expect(!Value.equal(.double(.nan), .double(.nan)))
  }

  @Test("values of different kinds are unequal; null equals only null")
  func kindsAndNull() {
    #expect(Value.equal(.null, .null))
    #expect(!Value.equal(.null, .int(0)))
    #expect(!Value.equal(.string(""), .null))
    #expect(!Value.equal(.int(1), .string("1")))
    #expect(!Value.equal(.bool(true), .int(1)))
    #expect(Value.equal(.string("a"), .string("a")))
    #expect(!Value.equal(.string("a"), .string("A")))
  }

  @Test("lists and maps compare their elements with the same numeric rules")
  func nestedEquality() {
    #expect(Value.equal(.list([.int(1), .int(2)]), .list([.double(1), .double(2)])))
    #expect(!Value.equal(.list([.int(1)]), .list([.int(1), .int(2)])))
    #expect(Value.equal(.map(["a": .int(1)]), .map(["a": .double(1)])))
    #expect(Value.equal(.map(["a": .list([.int(1)])]), .map(["a": .list([.double(1)])])))
    #expect(!Value.equal(.map(["a": .int(1)]), .map(["b": .int(1)])))
    #expect(!Value.equal(.map(["a": .int(1)]), .map(["a": .int(1), "b": .null])))
    #expect(Value.equal(.map([:]), .map([:])))
  }

  @Test("ordering of numbers mixes ints and doubles")
  func numericOrdering() {
    #expect(Value.compare(.int(1), .double(1.5)) == -1)
    #expect(Value.compare(.double(2.0), .int(2)) == 0)
    #expect(Value.compare(.int(3), .int(2)) == 1)
    #expect(Value.compare(.double(-1), .double(1)) == -1)
    #expect(Value.compare(.double(.nan), .int(1)) == nil)
    #expect(Value.compare(.int(1), .double(.nan)) == nil)
  }

  @Test("null and mismatched kinds are incomparable")
  func incomparable() {
    #expect(Value.compare(.null, .int(3)) == nil)
    #expect(Value.compare(.int(3), .null) == nil)
    #expect(Value.compare(.null, .null) == nil)
    #expect(Value.compare(.string("3"), .int(3)) == nil)
    #expect(Value.compare(.list([]), .list([])) == nil)
    #expect(Value.compare(.map([:]), .map([:])) == nil)
  }

  @Test("strings, timestamps, durations and bools order within their kind")
  func otherOrderings() {
    #expect(Value.compare(.string("a"), .string("b")) == -1)
    #expect(Value.compare(.string("b"), .string("b")) == 0)
    #expect(Value.compare(.timestamp(Timestamp(microseconds: 5)), .timestamp(Timestamp(microseconds: 1))) == 1)
    #expect(Value.compare(.duration(TimeSpan(microseconds: 1)), .duration(TimeSpan(microseconds: 2))) == -1)
    #expect(Value.compare(.bool(false), .bool(true)) == -1)
    #expect(Value.compare(.bool(true), .bool(true)) == 0)
    #expect(
      Value.compare(.timestamp(Timestamp(microseconds: 1)), .duration(TimeSpan(microseconds: 1))) == nil)
  }

  @Test("descriptions and literals")
  func rendering() {
    #expect(Value.double(3).description == "3.0")
    #expect(Value.double(2.5).description == "2.5")
    #expect(Value.int(-4).description == "-4")
    #expect(Value.string("a\"b").description == "a\"b")
    #expect(Value.string("a\"b").literal == "\"a\\\"b\"")
    #expect(Value.null.description == "null")
    #expect(Value.bool(true).description == "true")
    #expect(Value.duration(TimeSpan(microseconds: 5_400_000_000)).description == "1h30m")
    #expect(Value.timestamp(Timestamp(microseconds: 0)).description == "1970-01-01T00:00:00Z")
    #expect(Value.list([.int(1), .string("x")]).description == "[1, \"x\"]")
    #expect(Value.map(["b": .int(2), "a": .string("x")]).description == "{a: \"x\", b: 2}")
  }

  @Test("lookup follows dotted paths through maps and yields null otherwise")
  func lookup() {
    let v = Value.map(["customer": .map(["id": .int(7), "tags": .list([])])])
    #expect(v.lookup(["customer", "id"]) == .int(7))
    #expect(v.lookup(["customer", "missing"]) == .null)
    #expect(v.lookup(["customer", "id", "deeper"]) == .null)
    #expect(v.lookup([String]()) == v)
  }

  @Test("truthiness, type names and accessors")
  func accessors() {
    #expect(Value.bool(true).isTrue)
    #expect(!Value.bool(false).isTrue)
    #expect(!Value.null.isTrue)
    #expect(!Value.int(1).isTrue)
    #expect(Value.null.isNull)
    #expect(!Value.int(0).isNull)
    #expect(Value.int(2).doubleValue == 2.0)
    #expect(Value.string("2").doubleValue == nil)
    #expect(Value.string("s").stringValue == "s")
    #expect(Value.int(1).stringValue == nil)
    let names = [Value.null, .bool(true), .int(1), .double(1), .string(""), .list([]), .map([:])].map(\.typeName)
    #expect(names == ["null", "bool", "int", "double", "string", "list", "map"])
    #expect(Value.timestamp(Timestamp(microseconds: 0)).typeName == "timestamp")
    #expect(Value.duration(TimeSpan(microseconds: 0)).typeName == "duration")
  }
}
