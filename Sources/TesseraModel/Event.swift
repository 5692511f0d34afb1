/// An identifier of a person: its kind (`email`, `user_id`, …) and its normalized value.
public struct Identifier: Sendable, Hashable, Comparable, CustomStringConvertible {
  public var kind: String
  public var value: String
  public init(_ kind: String, _ value: String) {
    self.kind = kind
    self.value = value
  }
  public static func < (a: Identifier, b: Identifier) -> Bool { (a.kind, a.value) < (b.kind, b.value) }
  public var description: String { "\(kind):\(value)" }

  /// Reads `kind:value` (the value may itself contain colons).
  public init?(parsing text: String) {
    guard let colon = text.firstIndex(of: ":"), colon != text.startIndex else { return nil }
    let value = text[text.index(after: colon)...]
    guard !value.isEmpty else { return nil }
    self.init(String(text[..<colon]), String(value))
  }
}

/// A profile's stable id. Ids are handed out in increasing order, so the smaller of two ids is the older
/// profile, which is the one that survives a merge.
public struct ProfileID: Sendable, Hashable, Comparable, CustomStringConvertible {
  public var raw: Int64
  public init(_ raw: Int64) { self.raw = raw }
  public static func < (a: ProfileID, b: ProfileID) -> Bool { a.raw < b.raw }
  /// `prf_` followed by the number, e.g. `prf_42`.
  public var description: String { "prf_\(raw)" }
  public init?(parsing text: String) {
    guard text.hasPrefix("prf_"), let n = Int64(text.dropFirst(4)), n > 0 else { return nil }
    self.raw = n
  }
}

/// One event after mapping and validation: what happened, when, to whom, with which attributes.
public struct Event: Sendable, Hashable {
  /// The `messageId` when the source has one, else a hash of source and record content.
  public var id: String
  public var source: String
  /// identify, track, page, screen, group or alias.
  public var type: String
  /// The track event name or the page/screen name.
  public var name: String?
  public var timestamp: Timestamp
  public var receivedAt: Timestamp
  /// Normalized identifiers, strongest first after resolution.
  public var identifiers: [Identifier]
  public var traits: [String: Value]
  public var properties: [String: Value]
  public var context: [String: Value]

  public init(
    id: String, source: String, type: String, name: String? = nil, timestamp: Timestamp, receivedAt: Timestamp,
    identifiers: [Identifier], traits: [String: Value] = [:], properties: [String: Value] = [:],
    context: [String: Value] = [:]
  ) {
    self.id = id
    self.source = source
    self.type = type
    self.name = name
    self.timestamp = timestamp
    self.receivedAt = receivedAt
    self.identifiers = identifiers
    self.traits = traits
    self.properties = properties
    self.context = context
  }
}
