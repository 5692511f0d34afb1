import TesseraCompiler
import TesseraLanguage
import TesseraModel
import TesseraStore

/// Turns Segment/RudderStack tracking messages (`identify`, `track`, `page`, `screen`, `group`, `alias`)
/// received by an `http` source into events, the way a file source's `Mapper` turns records into events.
///
/// Identifiers come from the fields `HTTPDefaults.identifierFields` names (`userId`, `anonymousId`,
/// `traits.email`, `context.traits.email`, …) for the kinds the pipeline declares, normalized as declared; an
/// alias's `previousId` is an `anonymous_id`. Traits are the message's `traits` over its `context.traits`
/// (RudderStack sends identify traits only there); a group's `traits` describe the group and go to the
/// properties. Every other top-level field — `channel`, `integrations`, `category`, `groupId`, `previousId`,
/// the client's original `timestamp` and `sentAt`, and fields we do not know — is kept in the event's
/// context under `tracking`, so nothing the client sent is lost.
public struct TrackingMapper: Sendable {
  public let source: SourceDecl
  let identifiers: [String: IdentifierDecl]

  /// Why a message was rejected: a short code (the metrics label) and a sentence.
  public struct Rejection: Error, Sendable, Hashable {
    public var code: String
    public var message: String
    public init(code: String, message: String) {
      self.code = code
      self.message = message
    }
  }

  public init(source: SourceDecl, config: PipelineConfig) {
    self.source = source
    self.identifiers = Dictionary(config.identifiers.map { ($0.name, $0) }, uniquingKeysWith: { a, _ in a })
  }

  /// Fields that become parts of the event itself; every other field is kept under `context.tracking`.
  static let modelled: Set<String> = [
    "type", "messageId", "userId", "anonymousId", "traits", "properties", "context", "event", "name", "timestamp",
    "writeKey",
  ]

  /// Maps one message. `type` is the endpoint's type (`/v1/track`) or nil for `/v1/batch`, where each message
  /// names its own; `sentAt` is the request's when the message has none; `bytes` is the message as received
  /// (its hash is the event id when there is no `messageId`).
  public func map(
    _ message: Value, bytes: UnsafeBufferPointer<UInt8>, type endpointType: EventType?, sentAt batchSentAt: Value,
    receivedAt: Timestamp
  ) -> Result<(Event, Int), Rejection> {
    guard case .map(let m) = message else {
      return .failure(
        Rejection(code: "not_an_object", message: "a message must be a JSON object, found \(message.typeName)"))
    }
    // The type.
    let type: EventType
    if let endpointType {
      type = endpointType
    } else {
      guard case .string(let t)? = m["type"] else {
        return .failure(
          Rejection(
            code: "wrong_type",
            message: m["type"].map { "`type` must be a string, found \($0.typeName)" } ?? "the message has no `type`"))
      }
      guard let parsed = EventType(rawValue: t.lowercased()) else {
        return .failure(
          Rejection(
            code: "unknown_type",
            message:
              "unknown message type \"\(t)\"; expected one of \(EventType.allCases.map(\.rawValue).joined(separator: ", "))"
          ))
      }
      type = parsed
    }
    // Ids: strings, or numbers sent as numbers (kept as their decimal text); null is absence.
    func id(_ field: String) -> Result<String?, Rejection> {
      switch m[field] {
      case nil, .null?: return .success(nil)
      case .string(let s)?: return .success(s.isEmpty ? nil : s)
      case .int(let i)?: return .success(String(i))
      case .double(let d)? where d.isFinite && d == d.rounded() && abs(d) < 1e15: return .success(String(Int64(d)))
      case let v?:
        return .failure(Rejection(code: "wrong_type", message: "`\(field)` must be a string, found \(v.typeName)"))
      }
    }
    func object(_ field: String) -> Result<[String: Value], Rejection> {
      switch m[field] {
      case nil, .null?: return .success([:])
      case .map(let o)?: return .success(o)
      case let v?:
        return .failure(Rejection(code: "wrong_type", message: "`\(field)` must be an object, found \(v.typeName)"))
      }
    }
    let userId: String?
    let anonymousId: String?
    let messageId: String?
    let traitsIn: [String: Value]
    let properties: [String: Value]
    var context: [String: Value]
    do {
      userId = try id("userId").get()
      anonymousId = try id("anonymousId").get()
      messageId = try id("messageId").get()
      traitsIn = try object("traits").get()
      properties = try object("properties").get()
      context = try object("context").get()
      _ = try object("integrations").get()
    } catch {
      return .failure(error)
    }
    guard userId != nil || anonymousId != nil else {
      return .failure(Rejection(code: "no_identifier", message: "the message has no `userId` and no `anonymousId`"))
    }
    var name: String?
    switch type {
    case .track:
      switch m["event"] {
      case .string(let e)? where !e.isEmpty: name = e
      case nil, .null?, .string?:
        return .failure(Rejection(code: "missing_field", message: "a track message needs an `event` name"))
      case let v?:
        return .failure(Rejection(code: "wrong_type", message: "`event` must be a string, found \(v.typeName)"))
      }
    case .page, .screen:
      switch m["name"] {
      case nil, .null?: name = nil
      case .string(let s)?: name = s
      case let v?:
        return .failure(Rejection(code: "wrong_type", message: "`name` must be a string, found \(v.typeName)"))
      }
    case .alias:
      guard (try? id("previousId").get()) != nil else {
        return .failure(Rejection(code: "missing_field", message: "an alias message needs a `previousId` string"))
      }
    case .group:
      guard (try? id("groupId").get()) != nil else {
        return .failure(Rejection(code: "missing_field", message: "a group message needs a `groupId` string"))
      }
    case .identify: break
    }
    // Time: the client's clock corrected by how far it is off ours (Segment's rule):
    // timestamp = receivedAt - (sentAt - originalTimestamp).
    func time(_ v: Value?, _ field: String) -> Result<Timestamp?, Rejection> {
      switch v {
      case nil, .null?: return .success(nil)
      case .string(let s)?:
        guard let t = Timestamp(iso8601: s) else {
          return .failure(Rejection(code: "bad_timestamp", message: "`\(field)` is not an ISO 8601 time: \"\(s)\""))
        }
        return .success(t)
      case let x?:
        return .failure(
          Rejection(code: "wrong_type", message: "`\(field)` must be an ISO 8601 string, found \(x.typeName)"))
      }
    }
    let original: Timestamp?
    let sentAt: Timestamp?
    do {
      original = try time(m["timestamp"], "timestamp").get()
      sentAt = try time(m["sentAt"] ?? batchSentAt, "sentAt").get()
    } catch {
      return .failure(error)
    }
    var timestamp = receivedAt
    if let original {
      timestamp = original
      if let sentAt { timestamp = Timestamp(microseconds: receivedAt.microseconds - (sentAt - original).microseconds) }
    }
    // Traits: the message's over context.traits; a group's traits are the group's, not the person's.
    let contextTraits: [String: Value]
    if case .map(let ct)? = context["traits"] { contextTraits = ct } else { contextTraits = [:] }
    var traits = contextTraits
    var props = properties
    if type == .group {
      if !traitsIn.isEmpty { props["traits"] = .map(traitsIn) }
    } else {
      for (k, v) in traitsIn { traits[k] = v }
    }
    // Identifiers of the kinds the pipeline declares.
    var ids: [Identifier] = []
    var invalid = 0
    func add(_ kind: String, _ raw: String?) {
      guard let raw, let decl = identifiers[kind] else { return }
      if let n = decl.normalize(raw) {
        if !ids.contains(Identifier(kind, n)) { ids.append(Identifier(kind, n)) }
      } else if !Normalize.trim(raw).isEmpty {
        invalid += 1
      }
    }
    add("user_id", userId)
    add("anonymous_id", anonymousId)
    if type == .alias { add("anonymous_id", try? id("previousId").get()) }
    for kind in ["email", "phone"] {
      let v = traits[kind] ?? .null
      switch v {
      case .string(let s): add(kind, s)
      case .int(let i): add(kind, String(i))
      default: break
      }
    }
    // The source's own `map` adds to these defaults: its fields win, its identifiers are added.
    if !source.mappings.isEmpty {
      let env = Env(slots: [message], now: receivedAt)
      for mapping in source.mappings {
        let v = mapping.expr.evaluate(env)
        if v.isNull { continue }
        switch mapping.target {
        case .identifier(let kind):
          switch v {
          case .string(let text): add(kind, text)
          case .int(let i): add(kind, String(i))
          default: add(kind, v.description)
          }
        case .trait(let t): traits[t] = v
        case .property(let p): props[p] = v
        case .context(let c): context[c] = v
        case .event: name = v.stringValue ?? v.description
        case .allTraits, .allProperties, .allContext:
          guard case .map(let fields) = v else { continue }
          for (k, x) in fields where !x.isNull {
            switch mapping.target {
            case .allTraits: traits[k] = x
            case .allProperties: props[k] = x
            default: context[k] = x
            }
          }
        case .type: continue  // the message's own type (or the route's) decides
        }
      }
    }
    guard !ids.isEmpty else {
      return .failure(
        Rejection(
          code: "no_identifier",
          message:
            "no valid identifier: the pipeline declares none of user_id, anonymous_id, email, phone that the message carries"
        ))
    }
    // Everything else the client sent is kept.
    var tracking: [String: Value] = [:]
    for (k, v) in m where !Self.modelled.contains(k) && !v.isNull { tracking[k] = v }
    if let original { tracking["originalTimestamp"] = .timestamp(original) }
    if let sentAt { tracking["sentAt"] = .timestamp(sentAt) }
    if !tracking.isEmpty { context["tracking"] = .map(tracking) }
    if let field = Mapper.nulField(id: messageId, name: name, traits: traits) {
      return .failure(Rejection(code: "nul_character", message: "\(field) contains a NUL character (U+0000)"))
    }
    let eventID = messageId ?? Mapper.contentID(source: source.name, bytes: bytes)
    let event = Event(
      id: eventID, source: source.name, type: type.rawValue, name: name, timestamp: timestamp, receivedAt: receivedAt,
      identifiers: ids, traits: traits, properties: props, context: context)
    return .success((event, invalid))
  }

  /// A logged message as this source maps it now (`EventReader`): the message mapped again with its logged
  /// type, keeping the logged id, time (clock skew was corrected against the request's `sentAt`, which the
  /// message alone may not carry) and reception time.
  func remap(_ logged: Event) throws -> Event {
    guard let record = logged.record else { return logged }
    return try record.withUnsafeBytes { bytes in
      let message: Value
      do {
        message = try JSON.parse(bytes)
      } catch {
        throw EventReader.Unreadable(event: logged, reason: "malformed JSON: \(error)")
      }
      switch map(
        message, bytes: bytes, type: EventType(rawValue: logged.type), sentAt: .null, receivedAt: logged.receivedAt)
      {
      case .failure(let r): throw EventReader.Unreadable(event: logged, reason: r.message)
      case .success(let (mapped, _)):
        var e = mapped
        e.id = logged.id
        e.timestamp = logged.timestamp
        e.record = record
        return e
      }
    }
  }
}

/// Reads logged events back as the pipeline's sources map them: an event logged with its record as received
/// (`EventLogFormat`) has its traits, properties and context made again by its source's mapping (a replay,
/// the profile API); an event logged with its mapped fields is read as it is.
public struct EventReader: Sendable {
  let files: [String: Mapper]
  let http: [String: TrackingMapper]

  /// `demand`: what of properties and context the events are mapped with; everything by default (an event
  /// shown to a person), what the stages read for a replay.
  public init(config: PipelineConfig, demand: EventDemand = .everything) {
    var files: [String: Mapper] = [:]
    var http: [String: TrackingMapper] = [:]
    for s in config.sources {
      if s.kind == .http {
        http[s.name] = TrackingMapper(source: s, config: config)
      } else {
        files[s.name] = Mapper(source: s, config: config, receivedAt: Timestamp(microseconds: 0), demand: demand)
      }
    }
    self.files = files
    self.http = http
  }

  /// A logged event its source's mapping cannot read.
  public struct Unreadable: Error, CustomStringConvertible {
    public var event: Event
    public var reason: String
    public var description: String { "logged event \(event.source)/\(event.id) does not map: \(reason)" }
  }

  /// A logged event of a source the pipeline no longer declares.
  public struct UnknownSource: Error, CustomStringConvertible {
    public var source: String
    public var description: String {
      "the event log holds events of source `\(source)`, which the pipeline does not declare; declare it again "
        + "(its mapping reads the records the log kept)"
    }
  }

  /// The event with the fields its source's mapping makes of its record.
  public func mapped(_ e: Event) throws -> Event {
    guard e.record != nil else { return e }
    if let m = files[e.source] { return try m.remap(e) }
    if let t = http[e.source] { return try t.remap(e) }
    throw UnknownSource(source: e.source)
  }
}

/// Reads what a report reads of logged events (`LogRow`): the name, type, traits, properties and context their
/// sources make of their records now. The log's columns hold the event's id and time, and its identifiers as
/// they were resolved, so a file source's record is mapped without its mappings into identifiers (no
/// normalisation), its id and timestamp expressions (no time parsed), and the record fields only those read are
/// stepped over, not built. Events of tracking API sources, and events logged with their mapped fields, are
/// read as `EventReader` reads them.
public struct LoggedFieldsReader: Sendable {
  let files: [String: Mapper]
  let events: EventReader

  /// `demand`: what of properties and context the report reads.
  public init(config: PipelineConfig, demand: EventDemand) {
    var files: [String: Mapper] = [:]
    for s in config.sources where s.kind != .http {
      files[s.name] = Mapper(
        source: s, config: config, receivedAt: Timestamp(microseconds: 0), demand: demand, logged: true)
    }
    self.files = files
    self.events = EventReader(config: config, demand: demand)
  }

  /// The fields of a row read with its body; of a logged record, without identifiers (the row's are the
  /// event's). Throws `EventReader.Unreadable` when the source's mapping cannot read the record,
  /// `EventReader.UnknownSource` when the pipeline no longer declares its source.
  public func fields(_ row: LogRow) throws -> MappedFields {
    guard row.format == EventLogFormat.record, let body = row.body, let mapper = files[row.source] else {
      return MappedFields(try events.mapped(try row.event()))
    }
    switch body.withUnsafeBufferPointer({ mapper.fields($0) }) {
    case .success(let fields): return fields
    case .failure(let reason): throw EventReader.Unreadable(event: try row.event(), reason: reason.message)
    }
  }
}
