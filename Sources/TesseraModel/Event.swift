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
  /// The record as its source received it, which the event log keeps: the mapping made the fields above
  /// from it, and replays make them again. Nil for events made otherwise (and for events logged before
  /// the log kept records), whose log entry keeps the fields themselves.
  public var record: RecordBytes?

  public init(
    id: String, source: String, type: String, name: String? = nil, timestamp: Timestamp, receivedAt: Timestamp,
    identifiers: [Identifier], traits: [String: Value] = [:], properties: [String: Value] = [:],
    context: [String: Value] = [:], record: RecordBytes? = nil
  ) {
    self.record = record
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

/// The bytes of one record as a source received it — an NDJSON line, a tracking message, a CSV record's
/// fields as a JSON object — without copying them out of the buffer they were read into.
public struct RecordBytes: Sendable, Hashable, CustomStringConvertible {
  public let buffer: [UInt8]
  public let range: Range<Int>

  /// `range` of `buffer` (shared, not copied).
  public init(_ buffer: [UInt8], _ range: Range<Int>) {
    self.buffer = buffer
    self.range = range.clamped(to: 0..<buffer.count)
  }

  /// All of `bytes`.
  public init(_ bytes: [UInt8]) {
    buffer = bytes
    range = 0..<bytes.count
  }

  public var count: Int { range.count }

  /// The bytes on their own: a store keeping the record for long copies it out, so that the record does not
  /// keep the whole buffer it was read in alive.
  public var compacted: RecordBytes { range.count == buffer.count ? self : RecordBytes(Array(buffer[range])) }

  public var bytes: ArraySlice<UInt8> { buffer[range] }

  public func withUnsafeBytes<R>(_ body: (UnsafeBufferPointer<UInt8>) throws -> R) rethrows -> R {
    try buffer.withUnsafeBufferPointer { try body(UnsafeBufferPointer(rebasing: $0[range])) }
  }

  public var description: String { String(decoding: buffer[range], as: UTF8.self) }

  public static func == (a: RecordBytes, b: RecordBytes) -> Bool { a.bytes.elementsEqual(b.bytes) }
  public func hash(into h: inout Hasher) { withUnsafeBytes { h.combine(bytes: UnsafeRawBufferPointer($0)) } }
}
