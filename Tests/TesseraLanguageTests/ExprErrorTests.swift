import Testing

@testable import TesseraLanguage
@testable import TesseraModel

@Suite("Expression errors")
struct ExprErrorTests {
  typealias F = Fixture

  /// `offset+length: message`, so one expectation shows everything that matters.
  static func show(_ e: ExprError) -> String { "\(e.offset)+\(e.length): \(e.message)" }

  @Test(
    "type errors carry exact messages and spans",
    arguments: [
      (#""a" > 3"#, "0+7: operator `>` cannot compare string with int"),
      ("name < 3", "0+8: operator `<` cannot compare string with int"),
      ("a >= 1", "0+6: operator `>=` cannot compare bool with int"),
      ("a < b", "0+5: operator `<` cannot compare bool with bool"),
      ("d < a", "0+5: operator `<` cannot compare dyn with bool"),
      ("null > 3", "0+8: comparison with null is always false; test presence with `exists(…)`"),
      (#""a" == 1"#, "0+8: operator `==` cannot compare string with int"),
      ("ts != 1h", "0+8: operator `!=` cannot compare timestamp with duration"),
      ("lowr(name)", "0+4: unknown function `lowr`; did you mean `lower`?"),
      ("frobnicate(1)", "0+10: unknown function `frobnicate`"),
      ("lower()", "0+7: function `lower` takes 1 argument, found 0"),
      (#"lower("a", "b")"#, "0+15: function `lower` takes 1 argument, found 2"),
      (#"contains("a")"#, "0+13: function `contains` takes 2 arguments, found 1"),
      ("phone_e164()", "0+12: function `phone_e164` takes 1 to 2 arguments, found 0"),
      (#"phone_e164("1", "US", "x")"#, "0+26: function `phone_e164` takes 1 to 2 arguments, found 3"),
      ("coalesce()", "0+10: function `coalesce` takes at least 1 argument, found 0"),
      ("now(1)", "0+6: function `now` takes 0 arguments, found 1"),
      ("lower(42)", "6+2: argument 1 of `lower` must be string, found int"),
      (#"contains("abc", n)"#, "16+1: argument 2 of `contains` must be string, found int"),
      ("duration(5)", "9+1: argument 1 of `duration` must be string, found int"),
      ("sha256(tags)", "7+4: argument 1 of `sha256` must be string, found list<string>"),
      (#"traits.cty == "x""#, "0+10: unknown field `traits.cty` in a test; did you mean `traits.city`?"),
      ("traits.zzzzzz", "0+13: unknown field `traits.zzzzzz` in a test"),
      ("nmae", "0+4: unknown name `nmae` in a test; did you mean `name`?"),
      ("nme.first", "0+3: unknown name `nme` in a test; did you mean `name`?"),
      ("traits", "0+6: `traits` is a namespace; name one of its fields, like `traits.age`"),
      ("lower", "0+5: `lower` is a function; call it as `lower(…)`"),
      ("!n", "0+2: operator `!` needs a bool operand, found int"),
      (#"-"a""#, "0+4: operator `-` needs a number or duration, found string"),
      ("n && a", "0+1: operator `&&` needs bool operands, found int"),
      ("a || name", "5+4: operator `||` needs bool operands, found string"),
      ("a + 1", "0+5: operator `+` cannot be applied to bool and int"),
      (#"n - "x""#, "0+7: operator `-` cannot be applied to int and string"),
      ("ts + ts", "0+7: operator `+` cannot be applied to timestamp and timestamp"),
      ("1.5 % 2", "0+7: operator `%` cannot be applied to double and int"),
      ("1 / 0", "4+1: division by zero"),
      ("n % 0", "4+1: division by zero"),
      ("90d / 0.0", "6+3: division by zero"),
      ("n ? 1 : 2", "0+1: condition of `?:` must be bool, found int"),
      (#"a ? 1 : "x""#, "0+11: branches of `?:` have different types: int and string"),
      ("name.first", "0+10: a value of type string has no field `first`"),
      ("traits.city.x", "0+13: a value of type string has no field `x`"),
      ("n[0]", "0+4: a value of type int cannot be indexed"),
      (#"tags["a"]"#, "5+3: a list index must be int, found string"),
      ("m[1.5]", "2+3: an index must be a string key or an int position, found double"),
      ("1 in 5", "5+1: operator `in` needs a list or map on its right, found int"),
      ("1 in m", "0+1: map keys are strings; found int"),
      (#"1 in ["a"]"#, "0+10: operator `in` cannot look for int in list<string>"),
      (
        "matches(name, name)",
        "14+4: the pattern of `matches` must be a string literal, so it can be checked before the pipeline runs"
      ),
      (#"matches(name, "(")"#, "14+3: invalid regular expression `(`"),
      (
        #"duration("soon")"#,
        #"9+6: invalid duration `soon`; write a number with a unit: w, d, h, m, s, ms, us (e.g. 90d)"#
      ),
      (
        #"phone_e164(name, "XX")"#,
        "17+4: unknown phone region `XX`; use an ISO 3166 code such as AT, AU, BE, BR, CA, CH"
      ),
    ])
  func typeErrors(text: String, expected: String) throws {
    #expect(Self.show(try F.error(text)) == expected)
  }

  @Test("errors point into the middle of larger expressions")
  func nestedOffsets() throws {
    let text = #"traits.age > 18 && lower(traits.cty) == "oslo""#
    #expect(Self.show(try F.error(text)) == "25+10: unknown field `traits.cty` in a test; did you mean `traits.city`?")
    let t2 = "n > 1 && (name > 3 || a)"
    #expect(Self.show(try F.error(t2)) == "10+8: operator `>` cannot compare string with int")
  }

  @Test("independent errors are all reported")
  func multipleErrors() {
    let errors = F.errors("lowr(nmae) && traits.cty")
    #expect(
      errors.map(Self.show) == [
        "5+4: unknown name `nmae` in a test; did you mean `name`?",
        "0+4: unknown function `lowr`; did you mean `lower`?",
        "14+10: unknown field `traits.cty` in a test; did you mean `traits.city`?",
      ])
  }

  @Test("`expecting:` reports the place and the type found")
  func expectingMismatch() throws {
    #expect(Self.show(try F.error("1 + 2", expecting: .bool)) == "0+5: expected a bool expression in a test, found int")
    #expect(Self.show(try F.error("n", expecting: .string)) == "0+1: expected a string expression in a test, found int")
    #expect(
      Self.show(try F.error("name", expecting: .int)) == "0+4: expected an int expression in a test, found string")
    #expect(Self.show(try F.error("1.5", expecting: .int)) == "0+3: expected an int expression in a test, found double")
    #expect(
      Self.show(try F.error("tags", expecting: .list(.int)))
        == "0+4: expected a list<int> expression in a test, found list<string>")
    // A type error inside is reported instead of the mismatch.
    #expect(
      Self.show(try F.error("lowr(name)", expecting: .bool)) == "0+4: unknown function `lowr`; did you mean `lower`?")
  }

  @Test(
    "lexer and parser errors carry exact messages and offsets",
    arguments: [
      (#""abc"#, #"0+4: unterminated string; close it with ""#),
      (#"name == 'abc"#, "8+4: unterminated string; close it with '"),
      (#""abc\"#, #"0+5: unterminated string; close it with ""#),
      (#""a\qb""#, #"2+2: unknown escape `\q` in string"#),
      ("a = b", "2+1: unexpected `=`; compare with `==`"),
      ("a & b", "2+1: unexpected `&`; use `&&` for logical and"),
      ("a | b", "2+1: unexpected `|`; use `||` for logical or"),
      ("a b", "2+1: unexpected `b` after the end of the expression"),
      ("1 2", "2+1: unexpected `2` after the end of the expression"),
      ("a)", "1+1: unexpected `)` after the end of the expression"),
      ("", "0+1: empty expression"),
      ("   ", "0+1: empty expression"),
      ("a < b < c", "6+1: comparisons do not chain; combine them with `&&`"),
      ("n == 1 == a", "7+2: comparisons do not chain; combine them with `&&`"),
      ("(1 + 2", "6+1: expected `)` to close `(`, found end of expression"),
      ("1 +", "3+1: expression ends too early; expected a value"),
      ("a ? b", "5+1: expected `:` between the branches of `?:`, found end of expression"),
      ("[1, 2", "5+1: expected `]` to close the list, found end of expression"),
      ("tags[0", "6+1: expected `]` to close the index, found end of expression"),
      ("lower(name", "10+1: expected `)` to close the call of `lower`, found end of expression"),
      ("lower(name; 1)", "10+1: unexpected character `;`"),
      ("a.1", "2+1: expected a field name after `.`, found `1`"),
      ("a.", "2+1: expected a field name after `.`, found end of expression"),
      ("a.b(1)", "3+1: only functions can be called"),
      ("tags[0](1)", "7+1: only functions can be called"),
      ("5x", "0+2: invalid duration `5x`; write a number with a unit: w, d, h, m, s, ms, us (e.g. 90d, 1h30m)"),
      ("1h30", "0+4: invalid duration `1h30`; write a number with a unit: w, d, h, m, s, ms, us (e.g. 90d, 1h30m)"),
      ("99999999999999999999", "0+20: integer `99999999999999999999` is too large"),
      ("#", "0+1: unexpected character `#`"),
      ("* 2", "0+1: expected a value, found `*`"),
      ("1 + )", "4+1: expected a value, found `)`"),
      ("a ? : b", "4+1: expected a value, found `:`"),
      ("lower(,)", "6+1: expected a value, found `,`"),
    ])
  func syntaxErrors(text: String, expected: String) throws {
    #expect(Self.show(try F.error(text)) == expected)
  }

  @Test("offsets count characters, not bytes")
  func offsetsInCharacters() throws {
    #expect(Self.show(try F.error(#""héllo" = 1"#)) == "8+1: unexpected `=`; compare with `==`")
    #expect(Self.show(try F.error(#""😀😀" > 3"#)) == "0+8: operator `>` cannot compare string with int")
  }

  @Test("the parser accepts `in` only between values")
  func inKeyword() throws {
    #expect(Self.show(try F.error("1 in")) == "4+1: expression ends too early; expected a value")
  }
}
