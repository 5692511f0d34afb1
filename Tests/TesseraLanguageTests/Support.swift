import Testing

@testable import TesseraLanguage
@testable import TesseraModel

/// The scope most expression tests compile against, and helpers to fill its slots by name.
enum Fixture {
  static let place = "a test"

  static let scope: Scope = {
    var s = Scope(place: place)
    s.addVariable("a", .bool)
    s.addVariable("b", .bool)
    s.addVariable("c", .bool)
    s.addVariable("n", .int)
    s.addVariable("x", .double)
    s.addVariable("name", .string)
    s.addVariable("d", .dyn)
    s.addVariable("tags", .list(.string))
    s.addVariable("m", .map)
    s.addVariable("ts", .timestamp)
    s.addVariable("span", .duration)
    s.addField("traits", "city", .string)
    s.addField("traits", "age", .int)
    s.addField("traits", "email", .string)
    s.addOpenNamespace("properties")
    return s
  }()

  /// A source-mapping scope: unknown names read fields of a raw record.
  static let rawScope: Scope = {
    var s = Scope(place: "a source mapping")
    s.addVariable("event", .map)
    s.rawTypes["amount"] = .double
    s.rawTypes["customer.id"] = .int
    s.addRawRecord()
    return s
  }()

  /// 2024-05-01T00:00:00Z.
  static let now = Timestamp(microseconds: 1_714_521_600_000_000)

  /// Slots for `scope` with the named values set and everything else null. Keys are variable names,
  /// `namespace.field` for closed fields and a bare namespace name for an open namespace's map.
  static func env(_ values: [String: Value] = [:], in scope: Scope = scope, now: Timestamp = now) -> Env {
    var slots = [Value](repeating: .null, count: scope.slotCount)
    for (key, value) in values {
      if let v = scope.variables[key] {
        slots[v.slot] = value
      } else if let open = scope.namespaces[key]?.openSlot {
        slots[open] = value
      } else if let dot = key.firstIndex(of: "."), let ns = scope.namespaces[String(key[..<dot])],
        let f = ns.fields[String(key[key.index(after: dot)...])]
      {
        slots[f.slot] = value
      } else if key == "$raw", let raw = scope.rawSlot {
        slots[raw] = value
      } else {
        Issue.record("no slot for `\(key)`")
      }
    }
    return Env(slots: slots, now: now)
  }

  /// Compiles `text`, requiring success.
  static func compile(
    _ text: String, in scope: Scope = scope, expecting: ExprType? = nil,
    sourceLocation: Testing.SourceLocation = #_sourceLocation
  ) throws -> CompiledExpr {
    let (expr, errors) = ExprCompiler.compile(text, in: scope, expecting: expecting)
    #expect(errors.isEmpty, "\(text): \(errors.map(\.message))", sourceLocation: sourceLocation)
    return try #require(expr, "`\(text)` did not compile", sourceLocation: sourceLocation)
  }

  /// Compiles and evaluates `text`.
  static func eval(
    _ text: String, _ values: [String: Value] = [:], in scope: Scope = scope, now: Timestamp = now,
    sourceLocation: Testing.SourceLocation = #_sourceLocation
  ) throws -> Value {
    try compile(text, in: scope, sourceLocation: sourceLocation).evaluate(env(values, in: scope, now: now))
  }

  /// Compiles `text`, requiring failure, and returns the errors.
  static func errors(
    _ text: String, in scope: Scope = scope, expecting: ExprType? = nil,
    sourceLocation: Testing.SourceLocation = #_sourceLocation
  ) -> [ExprError] {
    let (expr, errors) = ExprCompiler.compile(text, in: scope, expecting: expecting)
    #expect(expr == nil, "`\(text)` compiled but should not have", sourceLocation: sourceLocation)
    #expect(!errors.isEmpty, sourceLocation: sourceLocation)
    return errors
  }

  /// The single error of `text`.
  static func error(
    _ text: String, in scope: Scope = scope, expecting: ExprType? = nil,
    sourceLocation: Testing.SourceLocation = #_sourceLocation
  ) throws -> ExprError {
    let all = errors(text, in: scope, expecting: expecting, sourceLocation: sourceLocation)
    #expect(all.count == 1, "\(all.map(\.message))", sourceLocation: sourceLocation)
    return try #require(all.first, sourceLocation: sourceLocation)
  }

  static func ts(_ text: String) -> Value {
    Timestamp(iso8601: text).map(Value.timestamp) ?? .null
  }

  static func span(_ text: String) -> Value {
    TimeSpan(parsing: text).map(Value.duration) ?? .null
  }
}

/// The language's source location (Swift Testing has a type of the same name).
typealias Loc = TesseraLanguage.SourceLocation
