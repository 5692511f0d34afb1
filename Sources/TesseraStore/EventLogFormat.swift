import TesseraModel

/// How every store writes an event into its log, beside the columns it keeps apart (source, id, type, name,
/// timestamp, received at, profile): the event's identifiers (`StoredValue.encode`, what erasure and the profile
/// views read without the pipeline's configuration) and a body in one of two formats.
///
/// - `record` (1): the record as the source received it (`Event.record`), byte for byte. The traits, properties
///   and context the mapping made of it are not stored: a replay maps the record again (`EventReader` in
///   TesseraRuntime), and the pipeline never decodes or encodes what no stage reads.
/// - `mapped` (0): the mapped fields, `{"i": identifiers, "t": traits, "p": properties, "c": context}`
///   (`StoredValue.encodeBody`): for events made without a record, and for every event logged before records
///   were kept.
///
/// The SQLite store keeps `record` bodies compressed (its own format 2, `SQLiteStore.compressedRecordFormat`)
/// and decompresses them as it reads: every store answers only these two formats.
public enum EventLogFormat {
  public static let mapped = 0
  public static let record = 1

  /// The format an event is logged in.
  public static func format(of e: Event) -> Int { e.record == nil ? mapped : record }

  /// The body of a `mapped` event (`record` events log `e.record` itself).
  public static func mappedBody(_ e: Event) -> String { StoredValue.encodeBody(e) }

  /// The event a log row holds. A `record` row gives an event whose `record` is set and whose traits,
  /// properties and context are empty until it is mapped again.
  public static func event(
    id: String, source: String, type: String, name: String?, timestamp: Int64, receivedAt: Int64,
    identifiers: String?, format: Int, body: [UInt8]
  ) throws -> Event {
    switch format {
    case mapped:
      return try StoredValue.event(
        id: id, source: source, type: type, name: name, timestamp: timestamp, receivedAt: receivedAt,
        body: String(decoding: body, as: UTF8.self))
    case record:
      return Event(
        id: id, source: source, type: type, name: name, timestamp: Timestamp(microseconds: timestamp),
        receivedAt: Timestamp(microseconds: receivedAt),
        identifiers: try identifiers.map(StoredValue.decodeIdentifiers) ?? [], record: RecordBytes(body))
    default:
      throw StoreError.corrupt("event \(source)/\(id) is logged in an unknown format \(format)")
    }
  }
}

/// One logged event as the log keeps it (`EventLog.logRows`): the columns every store keeps apart, and — when
/// asked for — the identifiers and the body in their stored forms, not yet decoded. A reader that decides most
/// events by their columns builds an `Event` (`event()`) only for the few it keeps, on its own task.
public struct LogRow: Sendable, Hashable {
  /// The parts of a row beyond its columns that a page reads.
  public struct Parts: OptionSet, Sendable, Hashable {
    public let rawValue: Int
    public init(rawValue: Int) { self.rawValue = rawValue }
    /// The identifiers (`identifiers`).
    public static let identifiers = Parts(rawValue: 1)
    /// The body (`body`), what `event()` needs.
    public static let body = Parts(rawValue: 2)
  }

  public var source: String
  public var id: String
  public var type: String
  public var name: String?
  public var timestamp: Int64
  public var receivedAt: Int64
  /// The profile the event was resolved to when it arrived.
  public var profile: ProfileID
  /// `EventLogFormat.record` or `.mapped`.
  public var format: Int
  /// The identifiers as `StoredValue.encode` wrote them; nil when not read, or when a `mapped` row keeps them
  /// only in its body (which is then read with them).
  public var identifiers: String?
  /// The record as received (`record`) or the encoded fields (`mapped`); nil when not read.
  public var body: [UInt8]?

  public init(
    source: String, id: String, type: String, name: String?, timestamp: Int64, receivedAt: Int64,
    profile: ProfileID, format: Int, identifiers: String?, body: [UInt8]?
  ) {
    (self.source, self.id, self.type, self.name) = (source, id, type, name)
    (self.timestamp, self.receivedAt, self.profile, self.format) = (timestamp, receivedAt, profile, format)
    (self.identifiers, self.body) = (identifiers, body)
  }

  /// The event's identifiers, strongest first (empty when the row was read without them).
  public func decodedIdentifiers() throws -> [Identifier] {
    if let identifiers { return try StoredValue.decodeIdentifiers(identifiers) }
    if format == EventLogFormat.mapped, body != nil { return try event().identifiers }
    return []
  }

  /// The event the row holds, as `eventPage` gives it; the row must have been read with its body. A `record`
  /// row read without its identifiers gives an event without identifiers (mapping its record again gives them).
  public func event() throws -> Event {
    guard let body else { throw StoreError.corrupt("event \(source)/\(id) was read without its body") }
    return try EventLogFormat.event(
      id: id, source: source, type: type, name: name, timestamp: timestamp, receivedAt: receivedAt,
      identifiers: identifiers, format: format, body: body)
  }

  /// The event with the profile it was resolved to (`StoredEvent`).
  public func stored() throws -> StoredEvent { StoredEvent(event: try event(), profile: profile) }
}

extension EventKey {
  /// A stable 64-bit hash of source and id, the same in every process: the SQLite log finds events by it (and
  /// compares source and id on a match, so two keys with one hash stay two events).
  public var logKey: Int64 {
    var h: UInt64 = 0xcbf2_9ce4_8422_2325
    for b in source.utf8 {
      h ^= UInt64(b)
      h = h &* 0x100_0000_01b3
    }
    h ^= 0xff
    h = h &* 0x100_0000_01b3
    for b in id.utf8 {
      h ^= UInt64(b)
      h = h &* 0x100_0000_01b3
    }
    // The SplitMix64 finaliser, so keys that differ in a few bytes spread over the whole range.
    var z = h &+ 0x9e37_79b9_7f4a_7c15
    z = (z ^ (z >> 30)) &* 0xbf58_476d_1ce4_e5b9
    z = (z ^ (z >> 27)) &* 0x94d0_49bb_1331_11eb
    return Int64(bitPattern: z ^ (z >> 31))
  }
}
