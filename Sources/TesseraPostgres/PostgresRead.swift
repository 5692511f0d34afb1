import PostgresNIO
import TesseraIdentity
import TesseraModel
import TesseraStore

extension PostgresStore {
  public func existingEvents(_ keys: [EventKey]) async throws -> Set<EventKey> {
    if keys.isEmpty { return [] }
    let sources = keys.map(\.source)
    let ids = keys.map(\.id)
    return try await read { conn in
      let rows = try await conn.query(
        """
        SELECT e.source, e.id FROM unnest(\(sources)::text[], \(ids)::text[]) AS k(s, i)
        JOIN events AS e ON e.source = k.s AND e.id = k.i
        """, logger: logger)
      var found = Set<EventKey>()
      for try await (s, i) in rows.decode((String, String).self) { found.insert(EventKey(source: s, id: i)) }
      return found
    }
  }

  /// Follows merges from `id` to the live profile; nil when `id` is not a known profile. A chain may run
  /// through a profile the store never registered; it ends there.
  func live(_ id: ProfileID, _ conn: PostgresConnection) async throws -> ProfileID? {
    let rows = try await conn.query(
      """
      WITH RECURSIVE chain (id, next, depth) AS (
        SELECT id, merged_into, 0 FROM profiles WHERE id = \(id.raw)
        UNION ALL
        SELECT c.next, p.merged_into, c.depth + 1 FROM chain AS c LEFT JOIN profiles AS p ON p.id = c.next
        WHERE c.next IS NOT NULL AND c.depth < 1000000
      )
      SELECT id, next IS NULL FROM chain ORDER BY depth DESC LIMIT 1
      """, logger: logger)
    for try await (last, ended) in rows.decode((Int64, Bool).self) {
      guard ended else { throw StoreError.corrupt("the merges of \(id) form a cycle") }
      return ProfileID(last)
    }
    return nil
  }

  func liveOrSelf(_ id: ProfileID, _ conn: PostgresConnection) async throws -> ProfileID {
    try await live(id, conn) ?? id
  }

  /// `fam`: every profile whose live profile is `$1` (bound as the first parameter), which must be live.
  static let familyCTE = """
    WITH RECURSIVE fam (id) AS (
      SELECT id FROM profiles WHERE id = $1
      UNION SELECT p.id FROM profiles AS p JOIN fam ON p.merged_into = fam.id
    )
    """

  public func canonical(_ id: ProfileID) async throws -> ProfileID? {
    try await read { conn in try await self.live(id, conn) }
  }

  public func profile(for identifier: Identifier) async throws -> ProfileID? {
    try await read { conn in
      let rows = try await conn.query(
        """
        SELECT profile_id FROM identifiers WHERE kind = \(identifier.kind) AND value = \(identifier.value)
        ORDER BY profile_id LIMIT 1
        """, logger: logger)
      for try await p in rows.decode(Int64.self) { return try await self.liveOrSelf(ProfileID(p), conn) }
      return nil
    }
  }

  public func identifiers(of profile: ProfileID) async throws -> [(Identifier, Timestamp)] {
    let rows: [Identified] = try await read { conn in
      let p = try await self.liveOrSelf(profile, conn)
      let rows = try await conn.query(
        "SELECT kind, value, last_seen FROM identifiers WHERE profile_id = \(p.raw) ORDER BY kind, value",
        logger: logger)
      var out: [Identified] = []
      for try await (k, v, s) in rows.decode((String, String, Int64).self) {
        out.append(Identified(identifier: Identifier(k, v), seen: Timestamp(microseconds: s)))
      }
      return out
    }
    return rows.map { ($0.identifier, $0.seen) }
  }

  static let traitColumns = "profile_id, trait, value, source, event_id, timestamp, state"
  typealias TraitRow = (Int64, String, String, String, String, Int64, String)

  static func trait(_ r: TraitRow) throws -> TraitRecord {
    TraitRecord(
      profile: ProfileID(r.0), trait: r.1, value: try StoredValue.decode(r.2), source: r.3, eventID: r.4,
      timestamp: Timestamp(microseconds: r.5), state: try StoredValue.decode(r.6))
  }

  public func traitPolicies() async throws -> TraitPolicies? {
    try await read { conn in
      let rows = try await conn.query("SELECT value FROM settings WHERE key = 'trait_policies'", logger: logger)
      for try await text in rows.decode(String.self) { return TraitPolicies(encoded: text) }
      return nil
    }
  }

  public func traits(of profile: ProfileID) async throws -> [TraitRecord] {
    try await read { conn in
      let p = try await self.liveOrSelf(profile, conn)
      let rows = try await conn.query(
        "SELECT \(unescaped: Self.traitColumns) FROM traits WHERE profile_id = \(p.raw) ORDER BY trait",
        logger: logger)
      var out: [TraitRecord] = []
      for try await r in rows.decode(TraitRow.self) { out.append(try Self.trait(r)) }
      return out
    }
  }

  public func loadTraits() async throws -> [TraitRecord] {
    try await read { conn in
      let rows = try await conn.query(
        "SELECT \(unescaped: Self.traitColumns) FROM traits ORDER BY profile_id, trait", logger: logger)
      var out: [TraitRecord] = []
      for try await r in rows.decode(TraitRow.self) { out.append(try Self.trait(r)) }
      return out
    }
  }

  static func computedRows(_ rows: PostgresRowSequence) async throws -> [ComputedRecord] {
    var out: [ComputedRecord] = []
    for try await (p, t, v, s) in rows.decode((Int64, String, String, String).self) {
      out.append(
        ComputedRecord(
          profile: ProfileID(p), trait: t, storedState: s, value: try StoredValue.decode(v)))
    }
    return out
  }

  public func loadComputed() async throws -> [ComputedRecord] {
    try await read { conn in
      try await Self.computedRows(
        try await conn.query(
          "SELECT profile_id, trait, value, state FROM computed_traits ORDER BY profile_id, trait", logger: logger))
    }
  }

  public func computed(of profile: ProfileID) async throws -> [ComputedRecord] {
    try await read { conn in
      let p = try await self.liveOrSelf(profile, conn)
      return try await Self.computedRows(
        try await conn.query(
          "SELECT profile_id, trait, value, state FROM computed_traits WHERE profile_id = \(p.raw) ORDER BY trait",
          logger: logger))
    }
  }

  static func membershipRows(_ rows: PostgresRowSequence) async throws -> [MembershipRecord] {
    var out: [MembershipRecord] = []
    for try await (s, p, since) in rows.decode((String, Int64, Int64).self) {
      out.append(MembershipRecord(segment: s, profile: ProfileID(p), since: Timestamp(microseconds: since)))
    }
    return out
  }

  public func loadMemberships() async throws -> [MembershipRecord] {
    try await read { conn in
      try await Self.membershipRows(
        try await conn.query(
          "SELECT segment, profile_id, since FROM memberships ORDER BY segment, profile_id", logger: logger))
    }
  }

  public func members(of segment: String) async throws -> [MembershipRecord] {
    try await read { conn in
      try await Self.membershipRows(
        try await conn.query(
          "SELECT segment, profile_id, since FROM memberships WHERE segment = \(segment) ORDER BY profile_id",
          logger: logger))
    }
  }

  public func memberships(of profile: ProfileID) async throws -> [MembershipRecord] {
    try await read { conn in
      let p = try await self.liveOrSelf(profile, conn)
      return try await Self.membershipRows(
        try await conn.query(
          "SELECT segment, profile_id, since FROM memberships WHERE profile_id = \(p.raw) ORDER BY segment",
          logger: logger))
    }
  }

  public func segmentCounts() async throws -> [String: Int] {
    try await read { conn in
      var out: [String: Int] = [:]
      let rows = try await conn.query("SELECT segment, count(*) FROM memberships GROUP BY segment", logger: logger)
      for try await (s, n) in rows.decode((String, Int64).self) { out[s] = Int(n) }
      return out
    }
  }

  public func segmentChanges(of segment: String, limit: Int) async throws -> [SegmentChangeRecord] {
    if limit <= 0 { return [] }
    return try await read { conn in
      let rows = try await conn.query(
        """
        SELECT segment, profile_id, entered, at, "values", merged_into FROM segment_changes
        WHERE segment = \(segment) ORDER BY id LIMIT \(Int64(limit))
        """, logger: logger)
      var out: [SegmentChangeRecord] = []
      for try await (s, p, e, at, v, m) in rows.decode((String, Int64, Bool, Int64, String, Int64?).self) {
        var values: [String: Value] = [:]
        if case .map(let x) = try StoredValue.decode(v) { values = x }
        out.append(
          SegmentChangeRecord(
            segment: s, profile: ProfileID(p), entered: e, at: Timestamp(microseconds: at), values: values,
            mergedInto: m.map(ProfileID.init)))
      }
      return out
    }
  }

  public func loadIdentity() async throws -> IdentitySnapshot {
    try await read { conn in
      var snap = IdentitySnapshot()
      var index: [ProfileID: Int] = [:]
      let live = try await conn.query(
        "SELECT id FROM profiles WHERE merged_into IS NULL ORDER BY id", logger: logger)
      for try await id in live.decode(Int64.self) {
        index[ProfileID(id)] = snap.profiles.count
        snap.profiles.append((ProfileID(id), []))
      }
      // Identifiers of profiles that are not live (or not registered) are left out, as in MemoryStore.
      let ids = try await conn.query(
        "SELECT profile_id, kind, value, last_seen FROM identifiers ORDER BY profile_id, kind, value",
        logger: logger)
      for try await (p, k, v, s) in ids.decode((Int64, String, String, Int64).self) {
        guard let n = index[ProfileID(p)] else { continue }
        snap.profiles[n].1.append((Identifier(k, v), Timestamp(microseconds: s)))
      }
      snap.aliases = try await self.aliases(conn).map { (absorbed: $0.absorbed, survivor: $0.survivor) }
      return Snapshot(snap)
    }.value
  }

  public func aliases() async throws -> [ProfileAlias] {
    try await read { conn in try await self.aliases(conn) }
  }

  func aliases(_ conn: PostgresConnection) async throws -> [ProfileAlias] {
    var out: [ProfileAlias] = []
    let rows = try await conn.query(
      "SELECT id, merged_into FROM profiles WHERE merged_into IS NOT NULL ORDER BY id", logger: logger)
    for try await (a, s) in rows.decode((Int64, Int64).self) {
      out.append(ProfileAlias(absorbed: ProfileID(a), survivor: ProfileID(s)))
    }
    return out
  }

  public func merges(involving profile: ProfileID) async throws -> [MergeRecord] {
    try await read { conn in
      let p = try await self.liveOrSelf(profile, conn)
      let rows = try await conn.query(
        PostgresQuery(
          unsafeSQL: Self.familyCTE + """
             SELECT survivor, absorbed, rule, evidence, event_id, at, score FROM merges
            WHERE survivor IN (SELECT id FROM fam) OR absorbed IN (SELECT id FROM fam) ORDER BY id
            """, binds: Self.binds(p.raw)), logger: logger)
      return try await Self.merges(rows)
    }
  }

  public func loadMerges() async throws -> [MergeRecord] {
    try await read { conn in
      let rows = try await conn.query(
        "SELECT survivor, absorbed, rule, evidence, event_id, at, score FROM merges ORDER BY id", logger: logger)
      return try await Self.merges(rows)
    }
  }

  /// Merge records from rows of `survivor, absorbed, rule, evidence, event_id, at, score`.
  static func merges(_ rows: PostgresRowSequence) async throws -> [MergeRecord] {
    var out: [MergeRecord] = []
    for try await (s, a, r, e, ev, at, sc) in rows.decode((Int64, Int64, String, String, String, Int64, Double).self) {
      out.append(
        MergeRecord(
          survivor: ProfileID(s), absorbed: ProfileID(a), rule: r, evidence: try StoredValue.decodeIdentifiers(e),
          eventID: ev, at: Timestamp(microseconds: at), score: sc))
    }
    return out
  }

  static func binds(_ values: Int64...) -> PostgresBindings {
    var b = PostgresBindings()
    for v in values { b.append(v) }
    return b
  }

  public func conflicts(involving profile: ProfileID) async throws -> [ConflictRecord] {
    try await read { conn in
      let p = try await self.liveOrSelf(profile, conn)
      let rows = try await conn.query(
        PostgresQuery(
          unsafeSQL: Self.familyCTE + """
             SELECT kept, other, kind, reason, identifiers, event_id, at FROM conflicts
            WHERE kept IN (SELECT id FROM fam) OR other IN (SELECT id FROM fam) ORDER BY id
            """, binds: Self.binds(p.raw)), logger: logger)
      var out: [ConflictRecord] = []
      for try await (k, o, kind, r, ids, e, at) in rows.decode(
        (Int64, Int64?, String, String, String, String, Int64).self)
      {
        out.append(
          ConflictRecord(
            kept: ProfileID(k), other: o.map(ProfileID.init), kind: kind, reason: r,
            identifiers: try StoredValue.decodeIdentifiers(ids), eventID: e, at: Timestamp(microseconds: at)))
      }
      return out
    }
  }

  typealias EventRow = (String, String, String, String?, Int64, Int64, Int64, String?, Int64, String?, ByteBuffer?)
  static let eventColumns =
    "source, id, type, name, timestamp, received_at, profile_id, identifiers, format::int8, body, record"

  /// A logged event from a row of `eventColumns` (`EventLogFormat`).
  static func event(_ r: EventRow) throws -> StoredEvent {
    let event = try EventLogFormat.event(
      id: r.1, source: r.0, type: r.2, name: r.3, timestamp: r.4, receivedAt: r.5, identifiers: r.7,
      format: Int(r.8), body: body(format: r.8, text: r.9, record: r.10) ?? [])
    return StoredEvent(event: event, profile: ProfileID(r.6))
  }

  /// A logged event's body: the record (`record` format) or the mapped fields' text; nil when not read.
  static func body(format: Int64, text: String?, record: ByteBuffer?) -> [UInt8]? {
    format == Int64(EventLogFormat.record) ? record.map { Array($0.readableBytesView) } : text.map { Array($0.utf8) }
  }

  /// An event from its columns `source, id, type, name, timestamp, received_at` and its encoded body.
  static func event(_ r: (String, String, String, String?, Int64, Int64), body text: String) throws -> Event {
    try StoredValue.event(
      id: r.1, source: r.0, type: r.2, name: r.3, timestamp: r.4, receivedAt: r.5, body: text)
  }

  public func events(of profile: ProfileID, limit: Int) async throws -> [StoredEvent] {
    if limit <= 0 { return [] }
    return try await read { conn in
      let p = try await self.liveOrSelf(profile, conn)
      let rows = try await conn.query(
        PostgresQuery(
          unsafeSQL: Self.familyCTE + """
             SELECT \(Self.eventColumns) FROM events WHERE profile_id IN (SELECT id FROM fam)
            ORDER BY timestamp DESC, id DESC LIMIT $2
            """, binds: Self.binds(p.raw, Int64(limit))), logger: logger)
      var out: [StoredEvent] = []
      for try await r in rows.decode(EventRow.self) { out.append(try Self.event(r)) }
      return out
    }
  }

  public func loadEvents() async throws -> [StoredEvent] {
    try await read { conn in
      let rows = try await conn.query(
        "SELECT \(unescaped: Self.eventColumns) FROM events ORDER BY seq", logger: logger)
      var out: [StoredEvent] = []
      for try await r in rows.decode(EventRow.self) { out.append(try Self.event(r)) }
      return out
    }
  }

  public func loadSourceCursors() async throws -> [String: String] {
    try await read { conn in
      let rows = try await conn.query("SELECT source, value FROM source_cursors", logger: logger)
      var out: [String: String] = [:]
      for try await (s, v) in rows.decode((String, String).self) { out[s] = v }
      return out
    }
  }

  public func eventPage(after: Int64, limit: Int) async throws -> EventPage {
    typealias PagedRow = (
      Int64, String, String, String, String?, Int64, Int64, Int64, String?, Int64, String?, ByteBuffer?
    )
    let limit = max(limit, 1)
    return try await read { conn in
      let rows = try await conn.query(
        "SELECT seq, \(unescaped: Self.eventColumns) FROM events WHERE seq > \(after) ORDER BY seq LIMIT \(Int64(limit))",
        logger: logger)
      var out: [StoredEvent] = []
      var last = after
      for try await r in rows.decode(PagedRow.self) {
        last = r.0
        out.append(try Self.event((r.1, r.2, r.3, r.4, r.5, r.6, r.7, r.8, r.9, r.10, r.11)))
      }
      return EventPage(events: out, next: out.count < limit ? nil : last)
    }
  }

  public func logEnd() async throws -> Int64 {
    try await read { conn in
      let rows = try await conn.query("SELECT coalesce(max(seq), 0)::int8 FROM events", logger: logger)
      for try await (end) in rows.decode(Int64.self) { return end }
      return 0
    }
  }

  public func logRows(after: Int64, through: Int64, parts: LogRow.Parts) async throws -> [LogRow] {
    typealias Columns = (String, String, String, String?, Int64, Int64, Int64, Int64, String?, String?, ByteBuffer?)
    // Parts not asked for are NULLs, never sent. A mapped event logged before identifiers were kept apart
    // has them only in its body, which is then read with them.
    let ids = parts.contains(.identifiers) ? "identifiers" : "NULL::text"
    let text =
      parts.contains(.body)
      ? "body" : parts.contains(.identifiers) ? "CASE WHEN identifiers IS NULL THEN body END" : "NULL::text"
    let record = parts.contains(.body) ? "record" : "NULL::bytea"
    return try await read { conn in
      let rows = try await conn.query(
        PostgresQuery(
          unsafeSQL: """
            SELECT source, id, type, name, timestamp, received_at, profile_id, format::int8, \(ids), \(text),
              \(record) FROM events WHERE seq > $1 AND seq <= $2 ORDER BY seq
            """, binds: Self.binds(after, through)), logger: logger)
      var out: [LogRow] = []
      for try await r in rows.decode(Columns.self) {
        out.append(
          LogRow(
            source: r.0, id: r.1, type: r.2, name: r.3, timestamp: r.4, receivedAt: r.5, profile: ProfileID(r.6),
            format: Int(r.7), identifiers: r.8, body: Self.body(format: r.7, text: r.9, record: r.10)))
      }
      return out
    }
  }

  public func loadSeparations() async throws -> [Separation] {
    try await read { conn in
      let rows = try await conn.query(
        "SELECT kind_a, value_a, kind_b, value_b FROM separations ORDER BY 1, 2, 3, 4", logger: logger)
      var out: [Separation] = []
      for try await (ka, va, kb, vb) in rows.decode((String, String, String, String).self) {
        out.append(Separation(Identifier(ka, va), Identifier(kb, vb)))
      }
      return out
    }
  }

  public func loadSightings() async throws -> [SightingRecord] {
    try await read { conn in
      var out: [SightingRecord] = []
      let rows = try await conn.query(
        "SELECT profile_id, expires, sightings FROM sightings ORDER BY profile_id", logger: logger)
      for try await (p, expires, text) in rows.decode((Int64, Int64, String).self) {
        out.append(
          SightingRecord(
            profile: ProfileID(p), sightings: try SightingRecord.decode(text),
            expires: Timestamp(microseconds: expires)))
      }
      return out
    }
  }

  public func loadSuppressions() async throws -> Set<String> {
    try await read { conn in
      var out = Set<String>()
      for try await h in try await conn.query("SELECT hash FROM suppressions", logger: logger).decode(String.self) {
        out.insert(h)
      }
      return out
    }
  }

  public func rejected(limit: Int) async throws -> [RejectedRecord] {
    if limit <= 0 { return [] }
    return try await read { conn in
      let rows = try await conn.query(
        "SELECT source, line, record, reason, at FROM rejected ORDER BY id LIMIT \(Int64(limit))", logger: logger)
      var out: [RejectedRecord] = []
      for try await (s, l, rec, r, at) in rows.decode((String, Int64?, String, String, Int64).self) {
        out.append(
          RejectedRecord(source: s, line: l.map { Int($0) }, record: rec, reason: r, at: Timestamp(microseconds: at)))
      }
      return out
    }
  }

  public func matchLinks(status: MatchLinkRecord.Status?, limit: Int) async throws -> [MatchLinkRecord] {
    try await read { conn in
      let rows = try await conn.query(
        """
        SELECT id, rule, profile_id, candidate_id, event_id, probability, weight, status, reason, at
        FROM match_links WHERE \(status?.rawValue)::text IS NULL OR status = \(status?.rawValue)
        ORDER BY id LIMIT \(Int64(max(0, limit)))
        """, logger: logger)
      var out: [MatchLinkRecord] = []
      for try await (id, rule, p, c, e, prob, w, s, reason, at) in rows.decode(
        (Int64, String, Int64, Int64, String, Double, Double, String, String, Int64).self)
      {
        out.append(
          MatchLinkRecord(
            id: id, rule: rule, profile: ProfileID(p), candidate: ProfileID(c), eventID: e, probability: prob,
            weight: w, status: MatchLinkRecord.Status(rawValue: s) ?? .review, reason: reason,
            at: Timestamp(microseconds: at)))
      }
      return out
    }
  }

  public func stats() async throws -> StoreStats {
    try await read { conn in
      let rows = try await conn.query(
        """
        SELECT (SELECT count(*) FROM events), (SELECT count(*) FROM profiles WHERE merged_into IS NULL),
          (SELECT count(*) FROM identifiers), (SELECT count(*) FROM merges), (SELECT count(*) FROM conflicts),
          (SELECT count(*) FROM rejected)
        """, logger: logger)
      for try await (e, p, i, m, c, r) in rows.decode((Int64, Int64, Int64, Int64, Int64, Int64).self) {
        var s = StoreStats()
        s.events = Int(e)
        s.profiles = Int(p)
        s.identifiers = Int(i)
        s.merges = Int(m)
        s.conflicts = Int(c)
        s.rejected = Int(r)
        return s
      }
      throw StoreError.corrupt("stats query returned no row")
    }
  }
}

/// An identifier with when it was last seen (a Sendable stand-in for the protocol's tuple).
struct Identified: Sendable {
  var identifier: Identifier
  var seen: Timestamp
}

/// `IdentitySnapshot` holds tuples, which Swift does not see as Sendable through a generic; this box carries
/// it out of the connection closure.
struct Snapshot: Sendable {
  var value: IdentitySnapshot
  init(_ value: IdentitySnapshot) { self.value = value }
}
