import TesseraModel

/// The static type of an expression. `dyn` is a value whose type is only known at run time (raw JSON
/// fields, event properties); it type-checks against anything and is checked when evaluated.
public indirect enum ExprType: Sendable, Hashable, CustomStringConvertible {
  case dyn, null, bool, int, double, string, timestamp, duration, map
  case list(ExprType)

  public var description: String {
    switch self {
    case .dyn: return "dyn"
    case .null: return "null"
    case .bool: return "bool"
    case .int: return "int"
    case .double: return "double"
    case .string: return "string"
    case .timestamp: return "timestamp"
    case .duration: return "duration"
    case .map: return "map"
    case .list(let e): return e == .dyn ? "list" : "list<\(e)>"
    }
  }

  /// Reads a type name as written in configuration (`string`, `int`, `double`, `bool`, `timestamp`,
  /// `duration`, `list`, `map`, `any`).
  public init?(name: String) {
    switch name {
    case "string": self = .string
    case "int", "integer": self = .int
    case "double", "number", "float": self = .double
    case "bool", "boolean": self = .bool
    case "timestamp": self = .timestamp
    case "duration": self = .duration
    case "list": self = .list(.dyn)
    case "map": self = .map
    case "any", "dyn": self = .dyn
    default: return nil
    }
  }
  public static let typeNames = ["string", "int", "double", "bool", "timestamp", "duration", "list", "map", "any"]

  public var isNumeric: Bool { self == .int || self == .double }
  var isDynOrNull: Bool { self == .dyn || self == .null }

  /// Whether a value of this type may be stored where `other` is expected.
  public func isAssignable(to other: ExprType) -> Bool {
    if self == other || other == .dyn || self == .dyn || self == .null { return true }
    if self == .int && other == .double { return true }
    if case .list(let a) = self, case .list(let b) = other { return a.isAssignable(to: b) }
    return false
  }

  /// The type both branches of `?:` (or several mapped values) fit into.
  public static func unify(_ a: ExprType, _ b: ExprType) -> ExprType? {
    if a == b { return a }
    if a == .null { return b }
    if b == .null { return a }
    if a == .dyn || b == .dyn { return .dyn }
    if a.isNumeric && b.isNumeric { return .double }
    if case .list(let x) = a, case .list(let y) = b { return .list(unify(x, y) ?? .dyn) }
    return nil
  }
}

/// Everything an expression evaluates against: slots filled by the runtime in the order the scope gave
/// them out, and the current time (injected, never read from the wall clock inside the engine).
public struct Env: Sendable {
  public var slots: [Value]
  public var now: Timestamp
  public init(slots: [Value], now: Timestamp = Timestamp(microseconds: 0)) {
    self.slots = slots
    self.now = now
  }
}

/// The names an expression may use in one place of the configuration, and where their values live.
///
/// - a *variable* is one named value in a slot (`event`, `timestamp`);
/// - a *namespace* groups fields: closed ones (`traits` in a segment) know every field and its type, each in
///   its own slot; open ones (`properties`) hold a map in one slot and accept any field as `dyn`;
/// - an optional *raw record* slot makes any other name a field of the source record (source mappings).
public struct Scope: Sendable {
  public struct Variable: Sendable {
    public var type: ExprType
    public var slot: Int
    public init(type: ExprType, slot: Int) {
      self.type = type
      self.slot = slot
    }
  }
  public struct Namespace: Sendable {
    public var fields: [String: Variable]
    /// For an open namespace: the slot holding its map.
    public var openSlot: Int?
    public init(fields: [String: Variable] = [:], openSlot: Int? = nil) {
      self.fields = fields
      self.openSlot = openSlot
    }
  }

  /// How the place is named in messages: "a segment condition".
  public var place: String
  public var variables: [String: Variable] = [:]
  public var namespaces: [String: Namespace] = [:]
  public var rawSlot: Int?
  /// Declared types of raw record fields by dotted path; undeclared raw fields have `rawDefault`.
  public var rawTypes: [String: ExprType] = [:]
  public var rawDefault: ExprType = .dyn
  public private(set) var slotCount = 0

  public init(place: String) { self.place = place }

  /// Adds a variable and returns its slot.
  @discardableResult
  public mutating func addVariable(_ name: String, _ type: ExprType) -> Int {
    defer { slotCount += 1 }
    variables[name] = Variable(type: type, slot: slotCount)
    return slotCount
  }

  /// Adds a closed namespace field (`traits.city`) and returns its slot.
  @discardableResult
  public mutating func addField(_ namespace: String, _ name: String, _ type: ExprType) -> Int {
    defer { slotCount += 1 }
    namespaces[namespace, default: Namespace()].fields[name] = Variable(type: type, slot: slotCount)
    return slotCount
  }

  /// Adds an open namespace (`properties`) whose map lives in one slot, and returns the slot.
  @discardableResult
  public mutating func addOpenNamespace(_ name: String) -> Int {
    defer { slotCount += 1 }
    namespaces[name, default: Namespace()].openSlot = slotCount
    return slotCount
  }

  /// Makes unknown root names read fields of the raw record, held in a new slot.
  @discardableResult
  public mutating func addRawRecord(default type: ExprType = .dyn) -> Int {
    defer { slotCount += 1 }
    rawSlot = slotCount
    rawDefault = type
    return slotCount
  }

  /// Every name this scope knows, for "did you mean".
  public var knownNames: [String] {
    var names = Array(variables.keys)
    for (ns, n) in namespaces {
      names.append(ns)
      names += n.fields.keys.map { "\(ns).\($0)" }
    }
    return names
  }
}
