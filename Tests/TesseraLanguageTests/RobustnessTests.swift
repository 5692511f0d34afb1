import Testing

@testable import TesseraLanguage
@testable import TesseraModel

/// Random input must never crash the expression compiler or the YAML reader, and every failure must come
/// back as errors positioned inside the text.
@Suite("Robustness on random input")
struct RobustnessTests {
  static let printable: [Character] = (32...126).compactMap { UnicodeScalar($0).map(Character.init) } + ["\t", "\n"]

  static let exprTokens: [String] = [
    "a", "b", "n", "x", "d", "name", "tags", "m", "ts", "span", "traits", "traits.city", "traits.age", "properties",
    "properties.plan", "amount", "customer.id", "lower", "upper", "trim", "contains", "starts_with", "matches",
    "sha256", "normalize_email", "phone_e164", "double", "int", "string", "timestamp", "duration", "now", "size",
    "exists", "coalesce", "soundex", "true", "false", "null", "in", "0", "1", "-1", "42", "3.5", "1e3", "2.5e-1",
    "9223372036854775807", "99999999999999999999", "90d", "1h30m", "250ms", "5x", "-9223372036854775807us", "1e300",
    "\"a\"", "\"\"", "'x'", "\"(\"", "\"^[0-9]+$\"", "\"90d\"", "\"GB\"", "\"\\n\"", "\"\\q\"", "\"", "'", "\\",
    "+", "-", "*", "/", "%", "==", "!=", "<", "<=", ">", ">=", "&&", "||", "!", "?", ":", ".", ",", "(", ")", "[",
    "]", "=", "&", "|", "#", ";", "@", "$", "é", "😀", " ", " ", " ",
  ]

  static let yamlTokens: [String] = [
    "a", "key", "name", "- ", "-", ": ", ":", "\n", "\n  ", "\n    ", "  ", " ", "\t", "\"", "'", "[", "]", "{", "}",
    ",", "#", "&x ", "*x", "!!str ", "!!int ", "|", ">", "? ", "---", "...", "%YAML 1.2", "\\", "null", "~", "42",
    "é", "@", "`", "\r\n", "\u{FEFF}",
  ]

  static func randomText(_ rng: inout SplitMix64) -> String {
    let length = Int.random(in: 0...40, using: &rng)
    return String((0..<length).map { _ in printable[Int.random(in: 0..<printable.count, using: &rng)] })
  }

  static func soup(_ tokens: [String], _ rng: inout SplitMix64, maxTokens: Int = 24) -> String {
    let count = Int.random(in: 0...maxTokens, using: &rng)
    return (0..<count).map { _ in tokens[Int.random(in: 0..<tokens.count, using: &rng)] }.joined()
  }

  /// Compiles `text` in a scope and checks the result is consistent; evaluates it when it compiles.
  static func checkExpression(_ text: String, in scope: Scope, env: Env) {
    let (expr, errors) = ExprCompiler.compile(text, in: scope)
    let count = text.count
    if let expr {
      #expect(errors.allSatisfy { $0.severity != .error }, "\(text)")
      let value = expr.evaluate(env)
      if expr.constant != nil {
        #expect(Value.equal(expr.constant ?? .null, value) || value.description == expr.constant?.description)
      }
      #expect(expr.text == text)
    } else {
      #expect(errors.contains { $0.severity == .error }, "no error for `\(text)`")
    }
    for e in errors {
      #expect((0...count).contains(e.offset), "offset \(e.offset) outside `\(text)` (\(count)): \(e.message)")
      #expect(e.length >= 1)
      #expect(e.offset + e.length <= count + 1, "span past the end of `\(text)`: \(e.message)")
      #expect(!e.message.isEmpty)
    }
  }

  static let scopes: [(Scope, Env)] = [
    (Fixture.scope, Fixture.env()),
    (
      Fixture.scope,
      Fixture.env([
        "a": .bool(true), "b": .bool(false), "c": .bool(true), "n": .int(.min), "x": .double(.nan),
        "name": .string("(415) 555-0123"), "d": .double(-.infinity), "tags": .list([.string("a")]),
        "m": .map(["a": .int(1)]), "ts": .timestamp(Timestamp(microseconds: .min)),
        "span": .duration(TimeSpan(microseconds: .min)), "traits.city": .string(""), "traits.age": .int(-1),
        "properties": .map(["plan": .list([])]),
      ])
    ),
    (
      Fixture.rawScope,
      Fixture.env(["$raw": .map(["amount": .int(.max), "customer": .string("c")])], in: Fixture.rawScope)
    ),
  ]

  @Test("random printable text never crashes the expression compiler")
  func randomExpressionText() {
    var rng = SplitMix64(seed: 0xC0FFEE)
    for _ in 0..<3_000 {
      let text = Self.randomText(&rng)
      for (scope, env) in Self.scopes { Self.checkExpression(text, in: scope, env: env) }
    }
  }

  @Test("random token soups never crash the expression compiler")
  func randomExpressionTokens() {
    var rng = SplitMix64(seed: 0x5EED_0001)
    var compiled = 0
    for _ in 0..<6_000 {
      let text = Self.soup(Self.exprTokens, &rng, maxTokens: Int.random(in: 1...12, using: &rng))
      for (scope, env) in Self.scopes { Self.checkExpression(text, in: scope, env: env) }
      if ExprCompiler.compile(text, in: Fixture.scope).expr != nil { compiled += 1 }
    }
    // The soup must exercise the checker and evaluator, not only the lexer.
    #expect(compiled > 200)
  }

  /// Token soups with the spaces between tokens that real expressions have.
  @Test("random spaced token soups never crash the expression compiler")
  func randomSpacedTokens() {
    var rng = SplitMix64(seed: 0x5EED_0002)
    var compiled = 0
    for _ in 0..<4_000 {
      let count = Int.random(in: 1...9, using: &rng)
      let text = (0..<count).map { _ in Self.exprTokens[Int.random(in: 0..<Self.exprTokens.count, using: &rng)] }
        .joined(separator: " ")
      for (scope, env) in Self.scopes { Self.checkExpression(text, in: scope, env: env) }
      if ExprCompiler.compile(text, in: Fixture.scope).expr != nil { compiled += 1 }
    }
    #expect(compiled > 100)
  }

  static func checkYAML(_ text: String) {
    let source = SourceFile(path: "fuzz.yaml", text: text)
    let (node, diagnostics) = YAMLReader.read(source)
    #expect((node == nil) != diagnostics.isEmpty, "`\(text.debugDescription)`")
    for d in diagnostics {
      #expect(d.severity == .error)
      #expect(d.location.file == "fuzz.yaml")
      #expect(
        (1...max(1, source.lines.count)).contains(d.location.line),
        "line \(d.location.line) outside \(text.debugDescription): \(d.message)")
      let lineLength = source.line(d.location.line)?.unicodeScalars.count ?? 0
      #expect(
        (1...lineLength + 1).contains(d.location.column),
        "column \(d.location.column) outside line \(d.location.line) of \(text.debugDescription): \(d.message)")
      #expect(d.rendered(source: source).hasPrefix(d.description))
    }
  }

  @Test("random printable text never crashes the YAML reader")
  func randomYAMLText() {
    var rng = SplitMix64(seed: 0xFEED)
    for _ in 0..<3_000 { Self.checkYAML(Self.randomText(&rng)) }
  }

  @Test("random YAML token soups never crash the YAML reader")
  func randomYAMLTokens() {
    var rng = SplitMix64(seed: 0xBEEF)
    var parsed = 0
    for _ in 0..<3_000 {
      let text = Self.soup(Self.yamlTokens, &rng, maxTokens: 30)
      Self.checkYAML(text)
      if YAMLReader.read(SourceFile(path: "fuzz.yaml", text: text)).node != nil { parsed += 1 }
    }
    #expect(parsed > 100)
  }

  @Test("the generator is deterministic for a seed")
  func generatorDeterminism() {
    var a = SplitMix64(seed: 1)
    var b = SplitMix64(seed: 1)
    let first = (0..<4).map { _ in a.next() }
    #expect(first == (0..<4).map { _ in b.next() })
    // Reference values of SplitMix64 for seed 1.
    #expect(first[0] == 0x910A_2DEC_8902_5CC1)
  }
}
