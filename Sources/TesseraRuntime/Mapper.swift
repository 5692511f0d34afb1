import Crypto
import Foundation
import TesseraCompiler
import TesseraLanguage
import TesseraModel
import TesseraStore

/// What decode & map made of one batch: events in record order and the records it had to reject.
public struct MappedBatch: Sendable {
  public var seq: Int
  public var events: [Event]
  public var rejected: [RejectedRecord]
  /// Identifier values dropped because they did not normalize (a malformed email, say).
  public var invalidIdentifiers: Int
  /// Each event's device signals (`signals.*`), derived by the decode stage when some rule reads them; empty
  /// otherwise (the identity stage derives them then).
  public var signals: [[String: String]] = []
  /// Of each event's signals, `StreamingMatcher.combination` (what tells a profile's sightings apart).
  public var signalCombinations: [UInt64] = []
  /// How many records of the batch were rejected (they travel to the store apart from the events).
  public var rejectedCount = 0
  /// Answered once the batch is stored (a request of the tracking API waits for it).
  public var ticket: Ticket?
  /// The journal entries these events come from: they leave the journal in the transaction that stores them.
  public var journal: [Int64] = []
  /// Those values and where they were read, records kept without an identifier, mapped fields' presence.
  public var notes = MappingNotes()
  /// Numbered by the graph's source stage (`seq`): the identity stage resolves such batches in that order.
  public var numbered = false
  /// How far the source has read once this batch is stored (`RawBatch.cursor`).
  public var cursor: SourceCursor?

  public init(
    seq: Int, events: [Event], rejected: [RejectedRecord], invalidIdentifiers: Int, ticket: Ticket? = nil
  ) {
    self.seq = seq
    self.events = events
    self.rejected = rejected
    self.invalidIdentifiers = invalidIdentifiers
    self.ticket = ticket
  }
}

/// What the stages after decoding read of an event's properties and context: computed traits' filters and
/// values, and the `where` and payload of `on: events` destinations. (Traits are always read whole: every
/// trait is unified.) The decoder maps nothing else, since the event log keeps the record as received.
public struct EventDemand: Sendable {
  public enum Part: Sendable, Equatable {
    case none
    case some(Set<String>)
    case all

    func contains(_ key: String) -> Bool {
      switch self {
      case .none: return false
      case .some(let keys): return keys.contains(key)
      case .all: return true
      }
    }

    mutating func add(_ key: String?) {
      guard let key else {
        self = .all
        return
      }
      switch self {
      case .none: self = .some([key])
      case .some(let keys): self = .some(keys.union([key]))
      case .all: break
      }
    }
  }

  public var properties: Part = .none
  public var context: Part = .none

  /// Everything: what a run that shows events (a dry run) decodes.
  public static let everything = EventDemand(properties: .all, context: .all)

  public init(properties: Part, context: Part) {
    self.properties = properties
    self.context = context
  }

  public init(config: PipelineConfig) {
    var exprs: [CompiledExpr] = []
    for c in config.computed { exprs += [c.filter, c.of].compactMap { $0 } }
    for d in config.destinations where d.trigger == .events {
      exprs += [d.filter].compactMap { $0 } + d.payload.map(\.expr)
    }
    self.init(reading: exprs)
    // The mapping reads a mapped context's consent (`context.consent.categoryPreferences`) for the profile.
    if !config.consentPurposes.isEmpty, context != .all { context.add("consent") }
    // Rules on device signals read them from the context (`context.ip`, `context.userAgent`, …).
    if config.probabilistic.contains(where: { $0.signals != nil }) {
      for key in DeviceSignals.contextKeys { context.add(key) }
    }
  }

  /// The properties and context members `exprs` (in the event scope) read.
  public init(reading exprs: [CompiledExpr]) {
    for e in exprs {
      for r in e.references {
        let parts = r.split(separator: ".", maxSplits: 2).map(String.init)
        guard parts.first == "properties" || parts.first == "context" else { continue }
        let key = parts.count > 1 ? parts[1] : nil
        if parts[0] == "properties" { properties.add(key) } else { context.add(key) }
      }
    }
  }
}

/// What a source's mapping makes of a record besides its id and time: name, type, identifiers, traits,
/// properties and context.
public struct MappedFields: Sendable {
  public var name: String?
  public var type: String
  public var identifiers: [Identifier]
  public var traits: [String: Value]
  public var properties: [String: Value]
  public var context: [String: Value]

  public init(
    name: String?, type: String, identifiers: [Identifier], traits: [String: Value], properties: [String: Value],
    context: [String: Value]
  ) {
    (self.name, self.type, self.identifiers) = (name, type, identifiers)
    (self.traits, self.properties, self.context) = (traits, properties, context)
  }

  /// An event's.
  public init(_ e: Event) {
    self.init(
      name: e.name, type: e.type, identifiers: e.identifiers, traits: e.traits, properties: e.properties,
      context: e.context)
  }
}

/// One mapping a `Mapper` evaluates (`evaluated`): a class, so the per-record loop over them copies a
/// reference rather than each mapping's expression.
final class Applied: Sendable {
  /// Its index in `source.mappings`.
  let index: Int
  let target: MappingTarget
  let expr: CompiledExpr
  /// A whole map narrowed to these members.
  let narrowed: Set<String>?

  init(_ m: (index: Int, target: MappingTarget, expr: CompiledExpr, narrowed: Set<String>?)) {
    (index, target, expr, narrowed) = m
  }
}

/// Decodes, maps and validates records of one source with the expressions the compiler built.
/// Stateless after construction, so any number of workers can share one.
public struct Mapper: Sendable {
  let source: SourceDecl
  let identifiers: [String: IdentifierDecl]
  let receivedAt: Timestamp
  let typedFields: [(path: [String], type: ExprType, name: String)]
  let required: [(path: [String], name: String)]
  /// Which probabilistic rules could still place an event without any identifier: such an event is kept
  /// when one can (it starts a profile they may join to others), else rejected (nothing could find it again).
  let placement: Placement
  /// The fields of a JSON record that the source's expressions and schema read; the decoder builds only
  /// these (and of a whole map mapped into properties or context, only the members later stages read).
  let selection: JSON.Selection
  /// The mappings evaluated, by index into `source.mappings`: those whose values some stage reads
  /// (`EventDemand`). With a whole map narrowed to the members read, unless the decoder already built only
  /// those (a record field mapped as it is).
  let evaluated: [Applied]
  /// The declared consent purposes, read from `context.consent.categoryPreferences`.
  let consentPurposes: [String]
  /// Made to read logged records for a report (`fields`): the log keeps the event's identifiers, id and time,
  /// so the mappings into identifiers (and their normalisation) and the id and timestamp expressions are not
  /// evaluated, nor the record fields only they read decoded.
  let logged: Bool

  /// `demand`: what later stages read of properties and context (by default, what `config`'s stages read);
  /// mappings into what nobody reads are not evaluated, and the record fields only they read not decoded.
  /// The event log keeps the record as received either way. `logged`: the mapper only reads logged records'
  /// fields for a report (`fields`), without identifiers, id or time.
  public init(
    source: SourceDecl, config: PipelineConfig, receivedAt: Timestamp, demand: EventDemand? = nil,
    logged: Bool = false
  ) {
    self.logged = logged
    self.placement = Placement(config)
    self.consentPurposes = config.consentPurposes
    let demand = demand ?? EventDemand(config: config)
    var evaluated: [(index: Int, target: MappingTarget, expr: CompiledExpr, narrowed: Set<String>?)] = []
    // Of the mappings of a record field as it is, the root field read.
    var asItIs: [Int: String] = [:]
    // Per root field of the record: nil when all of it is read, else the members read.
    var roots: [String: Set<String>?] = [:]
    func read(_ root: String, _ members: Set<String>?) {
      if let existing = roots[root] {
        if let e = existing, let members { roots[root] = e.union(members) } else { roots[root] = .some(nil) }
      } else {
        roots[root] = .some(members)
      }
    }
    func readAll(_ e: CompiledExpr) {
      for r in e.references { read(String(r.split(separator: ".", maxSplits: 1).first ?? Substring(r)), nil) }
    }
    for (n, m) in source.mappings.enumerated() {
      if logged, case .identifier = m.target { continue }
      let part: EventDemand.Part
      switch m.target {
      case .property(let p): part = demand.properties.contains(p) ? .all : .none
      case .context(let c): part = demand.context.contains(c) ? .all : .none
      case .allProperties: part = demand.properties
      case .allContext: part = demand.context
      default: part = .all
      }
      switch part {
      case .none: continue
      case .all:
        evaluated.append((n, m.target, m.expr, nil))
        readAll(m.expr)
      case .some(let keys):
        evaluated.append((n, m.target, m.expr, keys))
        // A record field mapped as it is (`properties: properties`) is decoded only in the members read.
        if m.expr.references.count == 1, let r = m.expr.references.first, !r.contains("."),
          m.expr.text.trimmingCharacters(in: .whitespaces) == r
        {
          asItIs[evaluated.count - 1] = r
          read(r, keys)
        } else {
          readAll(m.expr)
        }
      }
    }
    if !logged { for e in [source.messageId, source.timestamp].compactMap({ $0 }) { readAll(e) } }
    for f in source.schema.required + Array(source.schema.types.keys) {
      read(String(f.split(separator: ".", maxSplits: 1).first ?? Substring(f)), nil)
    }
    // When the decoder builds no member of such a field beyond those read, narrowing its map again is a copy.
    for (k, root) in asItIs {
      if let keys = evaluated[k].narrowed, case .some(.some(let built)) = roots[root], built.isSubset(of: keys) {
        evaluated[k].narrowed = nil
      }
    }
    self.evaluated = evaluated.map(Applied.init)
    self.selection = JSON.Selection(
      names: roots.keys.sorted().map { root in
        (root, (roots[root] ?? nil).map { keys in JSON.Selection(names: keys.sorted().map { ($0, nil) }) })
      })
    self.source = source
    self.identifiers = Dictionary(config.identifiers.map { ($0.name, $0) }, uniquingKeysWith: { a, _ in a })
    self.receivedAt = receivedAt
    self.typedFields = source.schema.types.sorted { $0.key < $1.key }.map {
      ($0.key.split(separator: ".").map(String.init), $0.value, $0.key)
    }
    self.required = source.schema.required.map { ($0.split(separator: ".").map(String.init), $0) }
  }

  public func map(_ batch: RawBatch) -> MappedBatch {
    var out = MappedBatch(seq: batch.seq, events: [], rejected: [], invalidIdentifiers: 0)
    out.cursor = batch.cursor
    out.events.reserveCapacity(batch.records.count)
    var presence = [Int](repeating: 0, count: source.mappings.count)
    var mapped = 0
    batch.bytes.withUnsafeBufferPointer { all in
      for (k, r) in batch.records.enumerated() {
        let bytes = UnsafeBufferPointer(rebasing: all[r.start..<r.end])
        switch decode(bytes, batch.format) {
        case .failure(let reason):
          out.rejected.append(reject(bytes, r.line, reason, batch.positions?[k] ?? "\(batch.file):\(r.line)"))
        case .success(let record):
          var tally = RecordTally()
          mapped += 1
          let result = map(record, bytes, &tally, &presence)
          let dropped = tally.dropped.map {
            DroppedValue(
              source: source.name, file: batch.file, line: r.line, kind: $0.kind, value: $0.value, reason: $0.reason)
          }
          for d in dropped { out.notes.drop(d) }
          out.invalidIdentifiers += dropped.count
          switch result {
          case .failure(let reason):
            out.rejected.append(reject(bytes, r.line, reason, batch.positions?[k] ?? "\(batch.file):\(r.line)"))
          case .success(var event):
            // The record as received, for the event log: the line itself, or a CSV record's fields as the JSON
            // object the mapping read.
            switch batch.format {
            case .ndjson: event.record = RecordBytes(batch.bytes, r.start..<r.end)
            case .csv: event.record = RecordBytes(Array(JSON.encode(record).utf8))
            }
            out.events.append(event)
            if !tally.placedBy.isEmpty {
              out.notes.keep(
                UnidentifiedRecord(
                  source: source.name, file: batch.file, line: r.line, eventID: event.id, rules: tally.placedBy,
                  dropped: dropped))
            }
          }
        }
      }
    }
    if mapped > 0 {
      var p = FieldPresence()
      p.records = mapped
      // Mappings not evaluated (nobody reads their values) are not reported as empty.
      for a in evaluated { p.nonNull[a.target.description, default: 0] += presence[a.index] }
      out.notes.presence[source.name] = p
    }
    return out
  }

  struct Reason: Error { var message: String }

  /// `position`: where the record was read (`file:line`, or a table source's table and cursor value).
  func reject(_ bytes: UnsafeBufferPointer<UInt8>, _ line: Int, _ reason: Reason, _ position: String)
    -> RejectedRecord
  {
    RejectedRecord(
      source: source.name, line: line, record: String(decoding: bytes, as: UTF8.self),
      reason: "\(position): \(reason.message)", at: receivedAt)
  }

  func decode(_ bytes: UnsafeBufferPointer<UInt8>, _ format: RawBatch.Format) -> Result<Value, Reason> {
    switch format {
    case .ndjson:
      do {
        let v = try JSON.parseObject(bytes, selecting: selection)
        guard case .map = v else { return .failure(Reason(message: "expected a JSON object, found \(v.typeName)")) }
        return .success(v)
      } catch {
        return .failure(Reason(message: "malformed JSON: \(error.description)"))
      }
    case .csv(let header, let delimiter):
      let fields = CSV.fields(bytes, delimiter: delimiter)
      guard fields.count == header.count else {
        return .failure(Reason(message: "expected \(header.count) CSV fields as in the header, found \(fields.count)"))
      }
      var m: [String: Value] = [:]
      m.reserveCapacity(header.count)
      for (k, v) in zip(header, fields) where !v.isEmpty { m[k] = .string(v) }
      return .success(.map(m))
    }
  }

  /// Applies the schema, the mapping expressions and the identifier normalizers; `tally` learns what was
  /// dropped, `presence` counts per mapping the records where it gave a value.
  func map(
    _ raw: Value, _ bytes: UnsafeBufferPointer<UInt8>, _ tally: inout RecordTally, _ presence: inout [Int]
  ) -> Result<Event, Reason> {
    let fields: MappedFields
    let env: Env
    switch mapFields(raw, &tally, &presence) {
    case .failure(let reason): return .failure(reason)
    case .success(let mapped): (fields, env) = mapped
    }
    let (ids, traits) = (fields.identifiers, fields.traits)
    if ids.isEmpty {
      tally.placedBy = placement.rules(placing: traits)
      if tally.placedBy.isEmpty { return .failure(Reason(message: unidentified(tally))) }
    }
    var timestamp = receivedAt
    if let te = source.timestamp {
      let tv = te.evaluate(env)
      guard case .timestamp(let t) = Convert.toTimestamp(tv) else {
        return .failure(
          Reason(
            message: tv.isNull
              ? "no timestamp: the timestamp expression gave null" : "cannot read \(tv.literal) as a timestamp"))
      }
      timestamp = t
    }
    var id: String?
    if let ie = source.messageId {
      let v = ie.evaluate(env)
      if !v.isNull { id = v.stringValue ?? v.description }
    }
    if let field = Mapper.nulField(id: id, name: fields.name, traits: traits) {
      return .failure(Reason(message: "\(field) contains a NUL character (U+0000)"))
    }
    let eventID = id ?? Mapper.contentID(source: source.name, bytes: bytes)
    let event = Event(
      id: eventID, source: source.name, type: fields.type, name: fields.name, timestamp: timestamp,
      receivedAt: receivedAt, identifiers: ids, traits: traits, properties: fields.properties, context: fields.context)
    return .success(event)
  }

  /// A logged record's fields as this source maps it now, for a report (a mapper made `logged`): the schema and
  /// the mappings into the name, type, traits, properties and context the report reads; no identifiers (the
  /// log's are the event's: `identifiers` is empty), id or time. Fails when the record does not parse or map.
  func fields(_ bytes: UnsafeBufferPointer<UInt8>) -> Result<MappedFields, Reason> {
    let value: Value
    do {
      value = try JSON.parseObject(bytes, selecting: selection)
    } catch {
      return .failure(Reason(message: "malformed JSON: \(error)"))
    }
    var tally = RecordTally()
    var uncounted: [Int] = []
    return mapFields(value, &tally, &uncounted).map(\.fields)
  }

  /// The schema and the mappings `evaluated` applied to a record: its fields, and the scope of the record as
  /// the schema's types converted it (what the timestamp and id expressions read). `presence` empty: not
  /// counted.
  func mapFields(_ raw: Value, _ tally: inout RecordTally, _ presence: inout [Int]) -> Result<
    (fields: MappedFields, env: Env), Reason
  > {
    var record = raw
    for (path, name) in required {
      let v = record.lookup(path)
      if v.isNull || v == .string("") { return .failure(Reason(message: "missing required field `\(name)`")) }
    }
    for (path, type, name) in typedFields {
      let v = record.lookup(path)
      if v.isNull { continue }
      guard let converted = Convert.to(type, v) else {
        return .failure(Reason(message: "field `\(name)`: expected \(type), found \(v.literal)"))
      }
      if converted != v { record = record.setting(path, converted) }
    }
    let env = Env(slots: [record], now: receivedAt)
    var ids: [Identifier] = []
    var traits: [String: Value] = [:]
    var properties: [String: Value] = [:]
    var context: [String: Value] = [:]
    var name = source.event
    var type = source.emit.rawValue
    for a in evaluated {
      var v = a.expr.evaluate(env)
      if v.isNull { continue }
      if !presence.isEmpty { presence[a.index] += 1 }
      if let narrowed = a.narrowed, case .map(let fields) = v {
        v = .map(fields.filter { narrowed.contains($0.key) })
      }
      switch a.target {
      case .identifier(let kind):
        let text: String
        switch v {
        case .string(let s): text = s
        case .int(let i): text = String(i)
        default: text = v.description
        }
        guard let decl = identifiers[kind] else { continue }
        let normalized = decl.normalization(of: text)
        if case .valid(let n) = normalized {
          ids.append(Identifier(kind, n))
        } else if !Normalize.trim(text).isEmpty {
          tally.dropped.append((kind, text, decl.reason(normalized)))
        }
      case .trait(let t): traits[t] = v
      case .property(let p): properties[p] = v
      case .context(let c): context[c] = v
      case .event: name = v.stringValue ?? v.description
      case .allTraits, .allProperties, .allContext:
        // A whole map at once; fields mapped one by one take precedence over it.
        guard case .map(let fields) = v else { continue }
        func merge(into map: inout [String: Value]) {
          // Into nothing yet, the map itself when it holds no null (not rebuilt key by key).
          if map.isEmpty, !fields.values.contains(where: \.isNull) {
            map = fields
            return
          }
          for (key, x) in fields where !x.isNull && map[key] == nil { map[key] = x }
        }
        switch a.target {
        case .allTraits: merge(into: &traits)
        case .allProperties: merge(into: &properties)
        default: merge(into: &context)
        }
      case .type:
        let t = (v.stringValue ?? v.description).lowercased()
        guard EventType(rawValue: t) != nil else {
          return .failure(
            Reason(
              message:
                "unknown event type \(v.literal); expected one of \(EventType.allCases.map(\.rawValue).joined(separator: ", "))"
            ))
        }
        type = t
      }
    }
    // The Segment consent convention: `context.consent.categoryPreferences` maps purposes to booleans; each
    // declared purpose becomes the profile state `consent.PURPOSE` (a field mapped to it wins).
    if case .map(let consent)? = context["consent"], case .map(let prefs)? = consent["categoryPreferences"] {
      for purpose in consentPurposes {
        guard traits["consent." + purpose] == nil, let v = prefs[purpose] else { continue }
        if case .bool = v { traits["consent." + purpose] = v }
      }
    }
    let fields = MappedFields(
      name: name, type: type, identifiers: ids, traits: traits, properties: properties, context: context)
    return .success((fields, env))
  }

  /// A logged event as this source maps its record now (`EventReader`): the mapping applied again to the record
  /// as received (a CSV record's fields as JSON), keeping the logged id, time and reception time, which name
  /// the event in the log whatever the mapping says today.
  func remap(_ logged: Event) throws -> Event {
    guard let record = logged.record else { return logged }
    return try record.withUnsafeBytes { bytes in
      let value: Value
      do {
        value = try JSON.parseObject(bytes, selecting: selection)
      } catch {
        throw EventReader.Unreadable(event: logged, reason: "malformed JSON: \(error)")
      }
      var tally = RecordTally()
      var presence = [Int](repeating: 0, count: source.mappings.count)
      switch map(value, bytes, &tally, &presence) {
      case .failure(let reason): throw EventReader.Unreadable(event: logged, reason: reason.message)
      case .success(var e):
        e.id = logged.id
        e.timestamp = logged.timestamp
        e.receivedAt = logged.receivedAt
        e.record = record
        return e
      }
    }
  }

  /// Why a record without identifiers is rejected: what was dropped or missing, and what a probabilistic
  /// rule would have needed to place it.
  func unidentified(_ tally: RecordTally) -> String {
    let why =
      tally.dropped.isEmpty
      ? "no identifier: none of \(source.identifierKinds.sorted().joined(separator: ", ")) is present"
      : "no valid identifier: " + tally.dropped.map { "\($0.kind) `\($0.value)` \($0.reason)" }.joined(separator: ", ")
    guard !placement.rules.isEmpty else { return why }
    return why + "; no probabilistic rule can place the record (\(placement.needs))"
  }

  /// Which of an event's id, name and trait names holds a NUL character, if one does: the stores keep them as
  /// text, and SQLite would keep them only up to the NUL, so two ids that differ after it would be one event.
  static func nulField(id: String?, name: String?, traits: [String: Value]) -> String? {
    if let id, id.utf8.contains(0) { return "the message id" }
    if let name, name.utf8.contains(0) { return "the event name" }
    if traits.keys.contains(where: { $0.utf8.contains(0) }) { return "a trait name" }
    return nil
  }

  /// A stable id for a record without one: the first 128 bits of SHA-256 over source name and record bytes,
  /// so the same record read again is recognised as a duplicate.
  static func contentID(source: String, bytes: UnsafeBufferPointer<UInt8>) -> String {
    var h = SHA256()
    h.update(data: Array(source.utf8) + [0])
    h.update(bufferPointer: UnsafeRawBufferPointer(bytes))
    let digest = h.finalize()
    var out = "h_"
    out.reserveCapacity(34)
    for b in digest.prefix(16) {
      out.append(Mapper.hex[Int(b >> 4)])
      out.append(Mapper.hex[Int(b & 15)])
    }
    return out
  }
  static let hex: [Character] = Array("0123456789abcdef")
}

extension Value {
  /// A copy with the value at a dotted path replaced (maps created as needed).
  func setting(_ path: [String], _ new: Value) -> Value {
    guard let first = path.first else { return new }
    var m: [String: Value] = [:]
    if case .map(let existing) = self { m = existing }
    m[first] = (m[first] ?? .null).setting(Array(path.dropFirst()), new)
    return .map(m)
  }
}
