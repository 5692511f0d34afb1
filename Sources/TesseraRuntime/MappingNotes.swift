import TesseraCompiler
import TesseraModel

/// An identifier value a normalizer refused, and where it was read. The event keeps its other identifiers.
public struct DroppedValue: Sendable, Hashable {
  public var source: String
  public var file: String
  public var line: Int
  /// The identifier kind the value was mapped to.
  public var kind: String
  public var value: String
  /// Why it is no identifier: `is not an email`.
  public var reason: String

  /// `email `bad-email` is not an email; dropped`
  public var what: String { "\(kind) `\(value)` \(reason); dropped" }
}

/// A record mapped to an event with no identifier that was kept because a probabilistic rule can still
/// compare it with profiles (it has the traits one of the rule's blocking keys reads).
public struct UnidentifiedRecord: Sendable, Hashable {
  public var source: String
  public var file: String
  public var line: Int
  public var eventID: String
  /// The probabilistic rules that can place it.
  public var rules: [String]
  /// The identifier values it had before the normalizers dropped them.
  public var dropped: [DroppedValue]
}

/// How many records of a source gave each mapped field a value.
public struct FieldPresence: Sendable, Hashable {
  /// Records that reached the mapping.
  public var records = 0
  /// Per mapping target (`traits.first_name`), the records whose value was not null.
  public var nonNull: [String: Int] = [:]

  public init() {}
}

/// A mapped field that was null on every record its source mapped.
public struct NullField: Sendable, Hashable {
  public var source: String
  /// The mapping target, `traits.nickname`.
  public var target: String
  public var records: Int
}

/// What decode & map noticed while mapping, beyond the events and rejections: identifier values dropped
/// by normalizers, records kept without an identifier, and which mapped fields ever had a value. It flows
/// with the batch into `ResolveStats`, so `tessera run` and `tessera dry-run` report it.
public struct MappingNotes: Sendable, Hashable {
  /// At most this many dropped values and unidentified records are kept for listing; all are counted.
  public static let listed = 1_000

  /// The first `listed` dropped values, in read order.
  public var dropped: [DroppedValue] = []
  public var droppedCount = 0
  /// The first `listed` records kept without an identifier, in read order.
  public var unidentified: [UnidentifiedRecord] = []
  public var unidentifiedCount = 0
  /// By source name.
  public var presence: [String: FieldPresence] = [:]

  public init() {}

  public var isEmpty: Bool { droppedCount == 0 && unidentifiedCount == 0 && presence.isEmpty }

  public mutating func add(_ o: MappingNotes) {
    dropped += o.dropped.prefix(max(0, Self.listed - dropped.count))
    droppedCount += o.droppedCount
    unidentified += o.unidentified.prefix(max(0, Self.listed - unidentified.count))
    unidentifiedCount += o.unidentifiedCount
    for (source, p) in o.presence {
      presence[source, default: FieldPresence()].records += p.records
      presence[source, default: FieldPresence()].nonNull.merge(p.nonNull, uniquingKeysWith: +)
    }
  }

  mutating func drop(_ value: DroppedValue) {
    droppedCount += 1
    if dropped.count < Self.listed { dropped.append(value) }
  }

  mutating func keep(_ record: UnidentifiedRecord) {
    unidentifiedCount += 1
    if unidentified.count < Self.listed { unidentified.append(record) }
  }

  /// Mapped fields that were null on every record of their source, by source then target.
  public var alwaysNull: [NullField] {
    presence.sorted { $0.key < $1.key }.flatMap { source, p in
      p.nonNull.filter { $0.value == 0 }.keys.sorted().map { NullField(source: source, target: $0, records: p.records) }
    }
  }
}

/// What the mapper learns about one record while mapping it.
struct RecordTally {
  /// Identifier values the normalizers refused.
  var dropped: [(kind: String, value: String, reason: String)] = []
  /// The probabilistic rules that can place a record without identifiers (empty when it has some).
  var placedBy: [String] = []
}

/// The probabilistic rules' blocking inputs, to tell whether a record without identifiers can still be
/// compared with profiles.
struct Placement: Sendable {
  let rules: [(name: String, inputs: [Set<String>])]

  init(_ config: PipelineConfig) {
    rules = config.probabilistic.map { ($0.name, $0.blockingInputs) }
  }

  /// The rules with a blocking rule all of whose names the traits hold (not null, not empty).
  func rules(placing traits: [String: Value]) -> [String] {
    func has(_ name: String) -> Bool {
      guard let v = traits[name], !v.isNull else { return false }
      return v != .string("")
    }
    return rules.filter { $0.inputs.contains { $0.allSatisfy(has) } }.map(\.name)
  }

  /// Why no rule can place a record: `` `person` needs last_name and postcode, or date_of_birth ``.
  var needs: String {
    rules.map { rule in
      "`\(rule.name)` needs "
        + rule.inputs.map { $0.sorted().joined(separator: " and ") }.joined(separator: ", or ")
    }.joined(separator: "; ")
  }
}
