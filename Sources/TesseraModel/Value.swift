/// A dynamically typed value as it flows through Tessera: event fields, traits, expression results.
///
/// `null` stands for "absent": a missing field reads as `null`, and the expression language treats
/// comparisons with `null` as false instead of failing.
public enum Value: Sendable, Hashable {
  case null
  case bool(Bool)
  case int(Int64)
  case double(Double)
  case string(String)
  case timestamp(Timestamp)
  case duration(TimeSpan)
  case list([Value])
  case map([String: Value])

  public var isNull: Bool {
    if case .null = self { return true }
    return false
  }

  /// Truthiness used by boolean operators: only `true` is true; `null` and everything else is false.
  @inlinable public var isTrue: Bool {
    if case .bool(true) = self { return true }
    return false
  }

  public var stringValue: String? {
    if case .string(let s) = self { return s }
    return nil
  }

  /// The numeric value of an int or a double.
  @inlinable public var doubleValue: Double? {
    switch self {
    case .int(let i): return Double(i)
    case .double(let d): return d
    default: return nil
    }
  }

  /// Looks up a dotted path in nested maps; anything missing is `null`.
  public func lookup<S: Sequence>(_ path: S) -> Value where S.Element == String {
    var current = self
    for key in path {
      guard case .map(let m) = current, let next = m[key] else { return .null }
      current = next
    }
    return current
  }

  /// The name of this value's type, as the expression language spells it.
  public var typeName: String {
    switch self {
    case .null: return "null"
    case .bool: return "bool"
    case .int: return "int"
    case .double: return "double"
    case .string: return "string"
    case .timestamp: return "timestamp"
    case .duration: return "duration"
    case .list: return "list"
    case .map: return "map"
    }
  }
}

extension Value: CustomStringConvertible {
  /// A plain rendering: strings without quotes, timestamps in ISO 8601, durations like `90d`.
  public var description: String {
    switch self {
    case .null: return "null"
    case .bool(let b): return b ? "true" : "false"
    case .int(let i): return String(i)
    case .double(let d): return Value.format(d)
    case .string(let s): return s
    case .timestamp(let t): return t.iso8601
    case .duration(let d): return d.description
    case .list(let l): return "[" + l.map(\.literal).joined(separator: ", ") + "]"
    case .map(let m):
      return "{" + m.keys.sorted().map { "\($0): \(m[$0]?.literal ?? "null")" }.joined(separator: ", ") + "}"
    }
  }

  /// A rendering that reads back as the same literal: strings quoted.
  public var literal: String {
    switch self {
    case .string(let s): return "\"" + s.replacingOccurrences(of: "\"", with: "\\\"") + "\""
    default: return description
    }
  }

  static func format(_ d: Double) -> String {
    if d.isFinite, d == d.rounded(), abs(d) < 1e15 { return String(Int64(d)) + ".0" }
    return String(d)
  }
}
