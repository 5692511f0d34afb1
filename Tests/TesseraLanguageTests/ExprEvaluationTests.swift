import Testing

@testable import TesseraLanguage
@testable import TesseraModel

@Suite("Expression evaluation")
struct ExprEvaluationTests {
  typealias F = Fixture

  @Test(
    "arithmetic precedence and associativity",
    arguments: [
      ("1 + 2 * 3", Value.int(7)), ("(1 + 2) * 3", .int(9)), ("10 - 4 - 3", .int(3)), ("2 * 3 % 4", .int(2)),
      ("7 % 3", .int(1)), ("-7 % 3", .int(-1)), ("7 / 2", .double(3.5)), ("1 + 2.5", .double(3.5)),
      ("-2 * 3", .int(-6)), ("- -2", .int(2)), ("2 - -2", .int(4)), ("1.5e2 + 1", .double(151)),
      ("\"ab\" + \"cd\"", .string("abcd")), ("1 + 2 == 3", .bool(true)), ("2 * 3 > 5", .bool(true)),
      ("[1] + [2, 3]", .list([.int(1), .int(2), .int(3)])),
    ])
  func arithmeticPrecedence(text: String, expected: Value) throws {
    #expect(try F.eval(text) == expected)
  }

  @Test("`!` binds tighter than `&&`, and `&&` tighter than `||`")
  func booleanPrecedence() throws {
    // `!a && b` is `(!a) && b`, not `!(a && b)`.
    #expect(try F.eval("!a && b", ["a": .bool(true), "b": .bool(false)]) == .bool(false))
    #expect(try F.eval("!(a && b)", ["a": .bool(true), "b": .bool(false)]) == .bool(true))
    #expect(try F.eval("!a && b", ["a": .bool(false), "b": .bool(true)]) == .bool(true))
    // `a || b && c` is `a || (b && c)`, not `(a || b) && c`.
    #expect(try F.eval("a || b && c", ["a": .bool(true), "b": .bool(false), "c": .bool(false)]) == .bool(true))
    #expect(try F.eval("(a || b) && c", ["a": .bool(true), "b": .bool(false), "c": .bool(false)]) == .bool(false))
    #expect(try F.eval("a && b || c", ["a": .bool(false), "b": .bool(true), "c": .bool(true)]) == .bool(true))
    #expect(try F.eval("!!a", ["a": .bool(true)]) == .bool(true))
    #expect(try F.eval("n > 1 && n < 5", ["n": .int(3)]) == .bool(true))
    #expect(try F.eval("n > 1 && n < 5", ["n": .int(5)]) == .bool(false))
  }

  @Test("`?:` is the loosest operator and nests to the right")
  func conditionalPrecedence() throws {
    #expect(try F.eval("a ? 1 : 2", ["a": .bool(true)]) == .int(1))
    #expect(try F.eval("a ? 1 : 2", ["a": .bool(false)]) == .int(2))
    #expect(try F.eval("a ? 1 : 2", [:]) == .int(2))
    #expect(try F.eval("a || b ? \"yes\" : \"no\"", ["a": .bool(false), "b": .bool(true)]) == .string("yes"))
    let nested = "a ? 1 : b ? 2 : 3"
    #expect(try F.eval(nested, ["a": .bool(false), "b": .bool(true)]) == .int(2))
    #expect(try F.eval(nested, ["a": .bool(false), "b": .bool(false)]) == .int(3))
    #expect(try F.eval("a ? b ? 1 : 2 : 3", ["a": .bool(true), "b": .bool(false)]) == .int(2))
    #expect(try F.eval("1 + (a ? 10 : 20) * 2", ["a": .bool(true)]) == .int(21))
    #expect(try F.compile("a ? 1 : 2.5").type == .double)
    #expect(try F.compile("a ? null : \"x\"").type == .string)
  }

  @Test("the right side of `&&` and `||` decides only when the left side does not")
  func logicalTruthTables() throws {
    for l in [true, false] {
      for r in [true, false] {
        let values: [String: Value] = ["a": .bool(l), "b": .bool(r)]
        #expect(try F.eval("a && b", values) == .bool(l && r))
        #expect(try F.eval("a || b", values) == .bool(l || r))
      }
    }
    // Null is not true.
    #expect(try F.eval("a || b", ["b": .bool(true)]) == .bool(true))
    #expect(try F.eval("a && b", ["a": .bool(true)]) == .bool(false))
    #expect(try F.eval("!a", [:]) == .bool(true))
  }

  /// The right operand below reads a slot the environment does not have; evaluating it would trap. Each
  /// evaluation runs in a child process, so a missing short circuit fails the test instead of the run.
  @Test("`&&` and `||` do not evaluate their right side when the left side decides")
  func shortCircuit() async {
    await #expect(processExitsWith: .success) {
      var scope = Scope(place: "a test")
      scope.addVariable("left", .bool)
      scope.addVariable("right", .bool)
      let and = ExprCompiler.compile("left && right", in: scope).expr
      let or = ExprCompiler.compile("left || right", in: scope).expr
      let cond = ExprCompiler.compile("left ? 1 : (right ? 2 : 3)", in: scope).expr
      // Only the `left` slot exists.
      guard and?.evaluate(Env(slots: [.bool(false)])) == .bool(false),
        or?.evaluate(Env(slots: [.bool(true)])) == .bool(true),
        cond?.evaluate(Env(slots: [.bool(true)])) == .int(1)
      else { fatalError("wrong result") }
    }
    // Control: when the left side does not decide, the right side is read, and reading the missing slot traps.
    await #expect(processExitsWith: .failure) {
      var scope = Scope(place: "a test")
      scope.addVariable("left", .bool)
      scope.addVariable("right", .bool)
      _ = ExprCompiler.compile("left && right", in: scope).expr?.evaluate(Env(slots: [.bool(true)]))
    }
  }

  @Test("the right side of `&&` would have produced null, but is not needed")
  func shortCircuitWithNullProducingRight() throws {
    let values: [String: Value] = ["n": .int(0), "name": .string("x")]
    #expect(try F.eval("n == 0 || 10 / n > 1", values) == .bool(true))
    #expect(try F.eval("n != 0 && 10 / n > 1", values) == .bool(false))
    #expect(try F.eval("10 / n", values) == .null)
    #expect(try F.eval("false && normalize_email(name) == \"x\"", values) == .bool(false))
  }

  @Test("a missing raw field reads as null")
  func missingRawField() throws {
    let record: Value = .map(["first_name": .string("Ada")])
    #expect(try F.eval("last_name", ["$raw": record], in: F.rawScope) == .null)
    #expect(try F.eval("first_name", ["$raw": record], in: F.rawScope) == .string("Ada"))
    #expect(try F.eval("customer.id", ["$raw": record], in: F.rawScope) == .null)
    #expect(try F.eval("last_name", [:], in: F.rawScope) == .null)
  }

  @Test("ordering comparisons with a missing dyn field are false, not errors")
  func nullOrderingIsFalse() throws {
    for op in ["<", "<=", ">", ">="] {
      #expect(try F.eval("amount \(op) 3", [:], in: F.rawScope) == .bool(false))
      #expect(try F.eval("d \(op) 3", [:]) == .bool(false))
      #expect(try F.eval("d \(op) 3.5", [:]) == .bool(false))
      #expect(try F.eval("3 \(op) d", [:]) == .bool(false))
      #expect(try F.eval("d \(op) name", ["name": .string("x")]) == .bool(false))
      #expect(try F.eval("properties.score \(op) 1", [:]) == .bool(false))
    }
    #expect(try F.eval("!(amount > 3)", [:], in: F.rawScope) == .bool(true))
    #expect(try F.eval("amount > 3", ["$raw": .map(["amount": .double(3.5)])], in: F.rawScope) == .bool(true))
    // A dyn value of the wrong kind is not comparable either.
    #expect(try F.eval("d > 3", ["d": .string("4")]) == .bool(false))
    #expect(try F.eval("d < \"b\"", ["d": .string("a")]) == .bool(true))
  }

  @Test("`==` and `!=` treat null as a value equal only to null")
  func nullEquality() throws {
    #expect(try F.eval("d == null", [:]) == .bool(true))
    #expect(try F.eval("d != null", [:]) == .bool(false))
    #expect(try F.eval("d == null", ["d": .int(0)]) == .bool(false))
    #expect(try F.eval("null == null") == .bool(true))
    #expect(try F.eval("d == 3", [:]) == .bool(false))
    #expect(try F.eval("d != 3", [:]) == .bool(true))
    #expect(try F.eval("d == \"x\"", [:]) == .bool(false))
    #expect(try F.eval("d != \"x\"", [:]) == .bool(true))
    #expect(try F.eval("properties.plan == \"pro\"", ["properties": .map([:])]) == .bool(false))
    #expect(try F.eval("properties.plan != \"pro\"", ["properties": .map([:])]) == .bool(true))
    #expect(try F.eval("traits.city == null", [:]) == .bool(true))
  }

  @Test("`==` compares ints with doubles by value, and kinds strictly")
  func equalitySemantics() throws {
    #expect(try F.eval("1 == 1.0") == .bool(true))
    #expect(try F.eval("n == 2.0", ["n": .int(2)]) == .bool(true))
    #expect(try F.eval("d == 1", ["d": .string("1")]) == .bool(false))
    #expect(try F.eval("d != 1", ["d": .string("1")]) == .bool(true))
    #expect(try F.eval("name == \"Ada\"", ["name": .string("Ada")]) == .bool(true))
    #expect(try F.eval("name != \"Ada\"", ["name": .string("Ada")]) == .bool(false))
    #expect(try F.eval("\"Ada\" == name", ["name": .string("Ada")]) == .bool(true))
    #expect(try F.eval("d == m", ["d": .map(["a": .int(1)]), "m": .map(["a": .double(1)])]) == .bool(true))
    #expect(try F.eval("[1, 2] == [1.0, 2.0]") == .bool(true))
  }

  @Test("arithmetic with null gives null")
  func nullArithmetic() throws {
    for text in ["d + 1", "1 + d", "d - 1", "d * 2", "d / 2", "d % 2", "-d", "n + d", "d + d", "null + 1"] {
      #expect(try F.eval(text, ["n": .int(1)]) == .null, "\(text)")
    }
    #expect(try F.eval("amount * 2", [:], in: F.rawScope) == .null)
    #expect(try F.eval("n + 1", [:]) == .null)
    #expect(try F.eval("name + \"!\"", [:]) == .null)
    #expect(try F.eval("ts + 1d", [:]) == .null)
  }

  @Test("dyn arithmetic follows the runtime kinds")
  func dynArithmetic() throws {
    #expect(try F.eval("d + 1", ["d": .int(2)]) == .int(3))
    #expect(try F.eval("d + 1", ["d": .double(2.5)]) == .double(3.5))
    #expect(try F.eval("d + \"b\"", ["d": .string("a")]) == .string("ab"))
    #expect(try F.eval("d + 1", ["d": .string("a")]) == .null)
    #expect(try F.eval("d % n", ["d": .int(5), "n": .int(0)]) == .null)
    #expect(try F.eval("d / n", ["d": .int(5), "n": .int(0)]) == .null)
    #expect(try F.eval("x / n", ["x": .double(1), "n": .int(0)]) == .null)
    #expect(try F.eval("d - 1h", ["d": F.ts("2024-05-01T10:00:00Z")]) == F.ts("2024-05-01T09:00:00Z"))
  }

  @Test("functions propagate null arguments, except `exists` and `coalesce`")
  func functionNullPropagation() throws {
    for text in [
      "lower(d)", "upper(d)", "trim(d)", "contains(d, \"a\")", "contains(\"a\", d)", "starts_with(d, \"a\")",
      "ends_with(d, \"a\")", "matches(d, \"a\")", "sha256(d)", "normalize_email(d)", "phone_e164(d)",
      "phone_e164(\"4155550123\", d)", "double(d)", "int(d)", "string(d)", "timestamp(d)", "duration(d)",
      "size(d)", "soundex(d)", "lower(traits.city)",
    ] {
      #expect(try F.eval(text, [:]) == .null, "\(text)")
    }
    #expect(try F.eval("exists(d)", [:]) == .bool(false))
    #expect(try F.eval("exists(d)", ["d": .bool(false)]) == .bool(true))
    #expect(try F.eval("exists(traits.city)", ["traits.city": .string("")]) == .bool(true))
    #expect(try F.eval("coalesce(d, traits.city, \"fallback\")", [:]) == .string("fallback"))
    #expect(try F.eval("coalesce(d, traits.city, \"fallback\")", ["traits.city": .string("Oslo")]) == .string("Oslo"))
    #expect(try F.eval("coalesce(d)", [:]) == .null)
    #expect(try F.eval("coalesce(null, 0)") == .int(0))
  }

  @Test("variables, closed namespace fields and open namespaces read their slots")
  func scopeKinds() throws {
    let values: [String: Value] = [
      "n": .int(4), "traits.city": .string("Oslo"), "traits.age": .int(40),
      "properties": .map(["plan": .string("pro"), "billing": .map(["cycle": .string("year")])]),
    ]
    #expect(try F.eval("n * 2", values) == .int(8))
    #expect(try F.eval("traits.city", values) == .string("Oslo"))
    #expect(try F.eval("traits.age >= 18", values) == .bool(true))
    #expect(try F.eval("properties.plan", values) == .string("pro"))
    #expect(try F.eval("properties.billing.cycle", values) == .string("year"))
    #expect(try F.eval("properties.billing.missing", values) == .null)
    #expect(try F.eval("properties.unknown", values) == .null)
    #expect(try F.eval("properties[\"plan\"]", values) == .string("pro"))
    #expect(try F.eval("size(properties)", values) == .int(2))
    #expect(try F.compile("traits.city").type == .string)
    #expect(try F.compile("traits.age").type == .int)
    #expect(try F.compile("properties.plan").type == .dyn)
    #expect(try F.compile("properties").type == .map)
  }

  @Test("a raw record reads nested fields, with declared types and a default type")
  func rawRecordScope() throws {
    let record: Value = .map([
      "amount": .double(12.5), "customer": .map(["id": .int(7), "name": .string("Ada")]), "sku": .string("GIFT-1"),
    ])
    #expect(try F.eval("amount * 2", ["$raw": record], in: F.rawScope) == .double(25))
    #expect(try F.eval("customer.id + 1", ["$raw": record], in: F.rawScope) == .int(8))
    #expect(try F.eval("customer.name", ["$raw": record], in: F.rawScope) == .string("Ada"))
    #expect(try F.eval("starts_with(sku, \"GIFT-\")", ["$raw": record], in: F.rawScope) == .bool(true))
    #expect(try F.eval("event", ["event": .map([:]), "$raw": record], in: F.rawScope) == .map([:]))
    #expect(try F.compile("amount", in: F.rawScope).type == .double)
    #expect(try F.compile("customer.id", in: F.rawScope).type == .int)
    #expect(try F.compile("customer.name", in: F.rawScope).type == .dyn)

    var typed = Scope(place: "a source mapping")
    typed.addRawRecord(default: .string)
    typed.rawTypes["qty"] = .int
    #expect(try F.compile("anything", in: typed).type == .string)
    #expect(try F.compile("qty", in: typed).type == .int)
    let error = try F.error("qty + \"x\"", in: typed)
    #expect(error.message == "operator `+` cannot be applied to int and string")
    // A raw field may be named like a function; only calls are functions.
    #expect(try F.eval("lower", ["$raw": .map(["lower": .string("v")])], in: typed) == .string("v"))
  }

  @Test("references list the dotted names an expression reads")
  func references() throws {
    let e = try F.compile("traits.city == \"x\" && properties.plan == \"y\" || n > 1 || exists(properties)")
    #expect(e.references == ["traits.city", "properties.plan", "n", "properties"])
    let raw = try F.compile("amount > 1 && customer.id == 2", in: F.rawScope)
    #expect(raw.references == ["amount", "customer.id"])
    #expect(try F.compile("1 + 2").references.isEmpty)
  }

  @Test("`in` looks for values in lists and keys in maps")
  func inOperator() throws {
    #expect(try F.eval("\"b\" in [\"a\", \"b\"]") == .bool(true))
    #expect(try F.eval("\"c\" in [\"a\", \"b\"]") == .bool(false))
    #expect(try F.eval("name in [\"a\", \"b\"]", ["name": .string("a")]) == .bool(true))
    #expect(try F.eval("name in [\"a\", \"b\"]", [:]) == .bool(false))
    #expect(try F.eval("d in [\"a\", \"b\"]", ["d": .int(1)]) == .bool(false))
    #expect(try F.eval("2 in [1, 2.0]") == .bool(true))
    #expect(try F.eval("n in [1, 2, 3]", ["n": .int(3)]) == .bool(true))
    #expect(
      try F.eval("name in tags", ["name": .string("vip"), "tags": .list([.string("new"), .string("vip")])])
        == .bool(true))
    #expect(try F.eval("name in tags", ["name": .string("old"), "tags": .list([.string("vip")])]) == .bool(false))
    #expect(try F.eval("name in tags", ["name": .string("vip")]) == .bool(false))
    #expect(try F.eval("\"k\" in m", ["m": .map(["k": .int(1)])]) == .bool(true))
    #expect(try F.eval("\"z\" in m", ["m": .map(["k": .int(1)])]) == .bool(false))
    #expect(try F.eval("d in m", ["m": .map(["k": .int(1)])]) == .bool(false))
    #expect(try F.eval("\"k\" in d", ["d": .map(["k": .null])]) == .bool(true))
    #expect(try F.eval("1 in d", ["d": .list([.int(1)])]) == .bool(true))
    #expect(try F.eval("1 in d", ["d": .string("1")]) == .bool(false))
    #expect(try F.eval("null in [1, null]") == .bool(true))
    #expect(try F.eval("\"a\" in []") == .bool(false))
    #expect(try F.eval("!(\"a\" in tags)", ["tags": .list([.string("a")])]) == .bool(false))
  }

  @Test("indexing lists by position and maps by key")
  func indexExpressions() throws {
    let tags: Value = .list([.string("a"), .string("b"), .string("c")])
    #expect(try F.eval("tags[0]", ["tags": tags]) == .string("a"))
    #expect(try F.eval("tags[2]", ["tags": tags]) == .string("c"))
    #expect(try F.eval("tags[-1]", ["tags": tags]) == .string("c"))
    #expect(try F.eval("tags[-3]", ["tags": tags]) == .string("a"))
    #expect(try F.eval("tags[3]", ["tags": tags]) == .null)
    #expect(try F.eval("tags[-4]", ["tags": tags]) == .null)
    #expect(try F.eval("tags[n]", ["tags": tags, "n": .int(1)]) == .string("b"))
    #expect(try F.eval("tags[d]", ["tags": tags]) == .null)
    #expect(try F.eval("tags[0]", [:]) == .null)
    #expect(try F.compile("tags[0]").type == .string)
    #expect(try F.eval("[10, 20, 30][1 + 1]") == .int(30))
    let m: Value = .map(["k": .int(1), "nested": .map(["deep": .bool(true)])])
    #expect(try F.eval("m[\"k\"]", ["m": m]) == .int(1))
    #expect(try F.eval("m[\"missing\"]", ["m": m]) == .null)
    #expect(try F.eval("m[\"nested\"][\"deep\"]", ["m": m]) == .bool(true))
    #expect(try F.eval("m.nested.deep", ["m": m]) == .bool(true))
    #expect(try F.eval("m[0]", ["m": m]) == .null)
    #expect(try F.eval("d[1]", ["d": .list([.int(5), .int(6)])]) == .int(6))
    #expect(try F.eval("d[\"k\"]", ["d": .list([.int(5)])]) == .null)
    #expect(try F.eval("d.k", ["d": .string("not a map")]) == .null)
  }

  @Test("timestamps and durations combine with arithmetic")
  func timeArithmetic() throws {
    #expect(try F.eval("now() - 30d") == F.ts("2024-04-01T00:00:00Z"))
    #expect(try F.eval("now() + 1h30m") == F.ts("2024-05-01T01:30:00Z"))
    #expect(try F.eval("1h + now()") == F.ts("2024-05-01T01:00:00Z"))
    #expect(try F.eval("now() - ts", ["ts": F.ts("2024-04-30T00:00:00Z")]) == F.span("1d"))
    #expect(try F.eval("now() - ts < 30d", ["ts": F.ts("2024-04-30T00:00:00Z")]) == .bool(true))
    #expect(try F.eval("now() - ts < 30d", ["ts": F.ts("2024-01-01T00:00:00Z")]) == .bool(false))
    #expect(try F.eval("ts > now() - 7d", ["ts": F.ts("2024-04-28T00:00:00Z")]) == .bool(true))
    #expect(try F.eval("ts < now()", ["ts": F.ts("2024-04-28T00:00:00Z")]) == .bool(true))
    #expect(try F.eval("1h + 30m") == F.span("1h30m"))
    #expect(try F.eval("1h - 90m") == F.span("-30m"))
    #expect(try F.eval("90d / 2") == F.span("45d"))
    #expect(try F.eval("2 * 1h") == F.span("2h"))
    #expect(try F.eval("1h * 1.5") == F.span("90m"))
    #expect(try F.eval("-1h") == F.span("-1h"))
    #expect(try F.eval("2w == 14d") == .bool(true))
    #expect(try F.eval("250ms < 1s") == .bool(true))
    #expect(try F.eval("span >= 1h", ["span": F.span("90m")]) == .bool(true))
    #expect(try F.compile("now() - 30d").type == .timestamp)
    #expect(try F.compile("now() - ts").type == .duration)
  }

  @Test("duration and timestamp arithmetic that leaves the representable range gives null, not a trap")
  func timeArithmeticOverflow() throws {
    #expect(try F.eval("90d * 1e300") == .null)
    #expect(try F.eval("1d / 1e-300") == .null)
    #expect(try F.eval("1d * d", ["d": .double(.nan)]) == .null)
    #expect(try F.eval("timestamp(1e300)") == .null)
    #expect(try F.eval("timestamp(9223372036854775807)") == .null)
    #expect(try F.eval("timestamp(\"nan\")") == .null)
    #expect(try F.eval("timestamp(d)", ["d": .double(.infinity)]) == .null)
    #expect(try F.eval("-(-9223372036854775807us - 1us)") == .duration(TimeSpan(microseconds: .min)))
    #expect(try F.eval("string(-9223372036854775807us - 1us)") == .string("-106751991d4h54s775ms808us"))
    #expect(try F.eval("-9223372036854775807 - 1 % -1") == .int(-9_223_372_036_854_775_807))
    #expect(try F.eval("(-9223372036854775807 - 1) % -1") == .int(0))
    #expect(try F.eval("d % -1", ["d": .int(.min)]) == .int(0))
  }

  @Test("constant expressions are folded at compile time")
  func constantFolding() throws {
    let cases: [(String, Value)] = [
      ("1 + 2 * 3", .int(7)), ("-5", .int(-5)), ("!true", .bool(false)), ("true && false", .bool(false)),
      ("1 < 2", .bool(true)), ("1 == 1.0", .bool(true)), ("\"a\" == \"a\"", .bool(true)),
      ("\"a\" != \"b\"", .bool(true)), ("\"b\" in [\"a\", \"b\"]", .bool(true)), ("2 in [1, 2]", .bool(true)),
      ("[1, 2]", .list([.int(1), .int(2)])), ("lower(\"AB\")", .string("ab")), ("size(\"abc\")", .int(3)),
      ("duration(\"90d\")", F.span("90d")), ("true ? 1 : 2", .int(1)), ("false ? 1 : 2", .int(2)),
      ("[1, 2][0]", .int(1)), ("1h + 30m", F.span("1h30m")), ("coalesce(null, 3)", .int(3)),
      ("sha256(\"\")", .string("e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855")),
    ]
    for (text, value) in cases {
      let e = try F.compile(text)
      #expect(e.constant == value, "\(text)")
      #expect(e.evaluate(Env(slots: [])) == value, "\(text)")
    }
  }

  @Test("expressions that read slots or the clock are not constant")
  func notConstant() throws {
    for text in ["n + 1", "now()", "now() - 1d", "a && true", "lower(name)", "n in [1, 2]", "a ? 1 : 2", "[n, 1]"] {
      #expect(try F.compile(text).constant == nil, "\(text)")
    }
  }

  @Test("literals: strings with escapes, numbers, durations, booleans and null")
  func literals() throws {
    #expect(try F.eval(#""a\"b""#) == .string("a\"b"))
    #expect(try F.eval(#"'it\'s'"#) == .string("it's"))
    #expect(try F.eval(#"'say "hi"'"#) == .string("say \"hi\""))
    #expect(try F.eval(#""tab\there\nline\\""#) == .string("tab\there\nline\\"))
    #expect(try F.eval("42") == .int(42))
    #expect(try F.eval("9223372036854775807") == .int(.max))
    #expect(try F.eval("0.25") == .double(0.25))
    #expect(try F.eval("1e3") == .double(1000))
    #expect(try F.eval("2.5E-1") == .double(0.25))
    #expect(try F.eval("1h30m") == F.span("1h30m"))
    #expect(try F.eval("true") == .bool(true))
    #expect(try F.eval("null") == .null)
    #expect(try F.eval("[]") == .list([]))
    #expect(try F.compile("[1, 2.5]").type == .list(.double))
    #expect(try F.compile("[\"a\", null]").type == .list(.string))
    #expect(try F.compile("[1, \"a\"]").type == .list(.dyn))
  }

  @Test("`expecting:` accepts assignable types")
  func expectingAssignable() throws {
    #expect(try F.compile("n > 1", expecting: .bool).type == .bool)
    #expect(try F.compile("d", expecting: .bool).type == .dyn)
    #expect(try F.compile("n", expecting: .double).type == .int)
    #expect(try F.compile("null", expecting: .string).type == .null)
    #expect(try F.compile("tags", expecting: .list(.dyn)).type == .list(.string))
  }

  @Test("a compiled expression can be evaluated many times with different environments")
  func reuse() throws {
    let e = try F.compile("traits.age >= 18 && traits.city == \"Oslo\"")
    #expect(e.evaluate(F.env(["traits.age": .int(20), "traits.city": .string("Oslo")])) == .bool(true))
    #expect(e.evaluate(F.env(["traits.age": .int(17), "traits.city": .string("Oslo")])) == .bool(false))
    #expect(e.evaluate(F.env(["traits.age": .int(30), "traits.city": .string("Bergen")])) == .bool(false))
    #expect(e.evaluate(F.env([:])) == .bool(false))
    #expect(e.text == "traits.age >= 18 && traits.city == \"Oslo\"")
    #expect(e.type == .bool)
  }
}
