import GRDB
import TesseraIdentity
import TesseraModel
import TesseraStore

extension SQLiteStore {
  // MARK: - Reading

  /// Keys per `existingEvents` query; far below SQLite's limit on parameters.
  static let existingChunk = 256

  /// The chunk query joins a VALUES list of `EventKey.logKey`s to `event_keys`, then to the events (a key
  /// shared by two events is told apart by source and id). `CROSS JOIN` fixes the loop order: the list
  /// outside, an index probe per key inside. Short chunks are padded with their last key so one cached
  /// statement serves every call.
  static let existingSQL: String = {
    let rows = Array(repeating: "(?)", count: existingChunk).joined(separator: ", ")
    return """
      SELECT e.source, e.id FROM (VALUES \(rows)) AS v
      CROSS JOIN event_keys AS k ON k.key = v.column1
      JOIN events AS e ON e.seq = k.seq
      """
  }()

  public func existingEvents(_ keys: [EventKey]) async throws -> Set<EventKey> {
    if keys.isEmpty { return [] }
    let wanted = Set(keys)
    let hashes = Array(Set(keys.map(\.logKey))).sorted()
    // Looked up before the read begins, so the read sees at least what the tail held (a transaction that
    // writes the tail's rows commits before the tail forgets them).
    let (inTail, through) = logTail.find(wanted)
    // A bulk writer vouches for the events it appended without indexes (`CommitBatch.deferIndexes`).
    let bulk = !deferredIndex.withLock { $0.isEmpty }
    return try await reading { db in
      let statement = try db.cachedStatement(sql: Self.existingSQL)
      var found = Set<EventKey>()
      var values: [(any DatabaseValueConvertible)?] = []
      values.reserveCapacity(Self.existingChunk)
      var start = 0
      while start < hashes.count {
        let end = min(start + Self.existingChunk, hashes.count)
        values.removeAll(keepingCapacity: true)
        for h in hashes[start..<end] { values.append(h) }
        for _ in end..<(start + Self.existingChunk) { values.append(hashes[end - 1]) }
        let rows = try Row.fetchCursor(statement, arguments: StatementArguments(values))
        while let row = try rows.next() {
          let key = EventKey(source: row[0], id: row[1])
          if wanted.contains(key) { found.insert(key) }
        }
        start = end
      }
      // The events past `log_indexed`: those this process appended behind (`LogTail`), and the rest read from
      // the log (`unindexedKeys`: committed since the tail was looked at, or by another process or one that
      // crashed).
      let done = try Int64.fetchOne(db, sql: "SELECT value FROM meta WHERE key = 'log_indexed'") ?? 0
      for (key, seq) in inTail where seq > done { found.insert(key) }
      if through > 0 || !bulk {
        for key in try Self.unindexedKeys(past: max(done, through), db, wanted) { found.insert(key) }
      }
      return found
    }
  }

  /// Those of `wanted` among the log's events past `position` (`schema`: the main file's name on the connection),
  /// read from the log: a few when `position` is where this process's `LogTail` ends, at most one tail's worth
  /// when another process (or one that crashed) appended behind. A tail longer than two of those is a bulk
  /// writer's, which vouches for its events (`CommitBatch.deferIndexes`): not read.
  static func unindexedKeys(
    past position: Int64, _ db: Database, _ wanted: Set<EventKey>, schema: String = "main"
  ) throws -> Set<EventKey> {
    var found = Set<EventKey>()
    let last = try Int64.fetchOne(db, sql: "SELECT max(seq) FROM \(schema).events") ?? 0
    guard last > position, last - position <= Int64(2 * LogTail.flushAt) else { return found }
    let rows = try Row.fetchCursor(
      db.cachedStatement(sql: "SELECT source, id FROM \(schema).events WHERE seq > ?"), arguments: [position])
    while let row = try rows.next() {
      let key = EventKey(source: row[0], id: row[1])
      if wanted.contains(key) { found.insert(key) }
    }
    return found
  }

  /// Follows merges from `id` to the live profile; nil when `id` is not a known profile.
  static func live(_ id: ProfileID, _ db: Database) throws -> ProfileID? {
    let statement = try db.cachedStatement(sql: "SELECT merged_into FROM profiles WHERE id = ?")
    guard let first = try Row.fetchOne(statement, arguments: [id.raw]) else { return nil }
    var next: Int64? = first[0]
    var current = id
    var hops = 0
    while let n = next {
      current = ProfileID(n)
      hops += 1
      if hops > 1_000_000 { throw StoreError.corrupt("the merges of \(id) form a cycle") }
      // A chain may run through a profile the store never registered; it ends there.
      next = try Row.fetchOne(statement, arguments: [n]).flatMap { $0[0] }
    }
    return current
  }

  /// The live profile of `id`, or `id` itself when it is unknown (as `MemoryStore` resolves).
  static func liveOrSelf(_ id: ProfileID, _ db: Database) throws -> ProfileID { try live(id, db) ?? id }

  /// `fam`: every profile whose live profile is `?1`, which must already be live.
  static let familyCTE = """
    WITH RECURSIVE fam (id) AS (
      SELECT id FROM profiles WHERE id = ?1
      UNION SELECT p.id FROM profiles AS p JOIN fam ON p.merged_into = fam.id
    )
    """

  public func canonical(_ id: ProfileID) async throws -> ProfileID? {
    try await reading { db in try Self.live(id, db) }
  }

  public func profile(for identifier: Identifier) async throws -> ProfileID? {
    try await reading { db in
      let statement = try db.cachedStatement(
        sql: "SELECT profile_id FROM identifiers WHERE kind = ? AND value = ? ORDER BY profile_id LIMIT 1")
      guard let p = try Int64.fetchOne(statement, arguments: [identifier.kind, identifier.value]) else {
        return nil
      }
      return try Self.liveOrSelf(ProfileID(p), db)
    }
  }

  public func identifiers(of profile: ProfileID) async throws -> [(Identifier, Timestamp)] {
    // Rows are not Sendable: everything is decoded inside the read.
    try await reading { db in
      let p = try Self.liveOrSelf(profile, db)
      let statement = try db.cachedStatement(
        sql: "SELECT kind, value, last_seen FROM identifiers WHERE profile_id = ? ORDER BY kind, value")
      return try Row.fetchAll(statement, arguments: [p.raw]).map {
        (Identifier($0[0], $0[1]), Timestamp(microseconds: $0[2]))
      }
    }
  }

  static let traitColumns = "profile_id, trait, value, source, event_id, timestamp, state"

  static func trait(_ row: Row) throws -> TraitRecord {
    TraitRecord(
      profile: ProfileID(row[0]), trait: row[1], value: try StoredValue.decode(row[2]), source: row[3],
      eventID: row[4], timestamp: Timestamp(microseconds: row[5]), state: try StoredValue.decode(row[6]))
  }

  public func traitPolicies() async throws -> TraitPolicies? {
    try await reading { db in
      try String.fetchOne(db, sql: "SELECT value FROM meta WHERE key = 'trait_policies'").flatMap {
        TraitPolicies(encoded: $0)
      }
    }
  }

  public func traits(of profile: ProfileID) async throws -> [TraitRecord] {
    try await reading { db in
      let p = try Self.liveOrSelf(profile, db)
      let statement = try db.cachedStatement(
        sql: "SELECT \(Self.traitColumns) FROM traits WHERE profile_id = ? ORDER BY trait")
      return try Row.fetchAll(statement, arguments: [p.raw]).map(Self.trait)
    }
  }

  public func loadTraits() async throws -> [TraitRecord] {
    try await reading { db in
      var out: [TraitRecord] = []
      let rows = try Row.fetchCursor(db, sql: "SELECT \(Self.traitColumns) FROM traits ORDER BY profile_id, trait")
      while let row = try rows.next() { out.append(try Self.trait(row)) }
      return out
    }
  }

  static func computed(_ row: Row) throws -> ComputedRecord {
    ComputedRecord(
      profile: ProfileID(row[0]), trait: row[1], storedState: row[3] as String, value: try StoredValue.decode(row[2]))
  }

  static func membership(_ row: Row) -> MembershipRecord {
    MembershipRecord(segment: row[0], profile: ProfileID(row[1]), since: Timestamp(microseconds: row[2]))
  }

  public func loadComputed() async throws -> [ComputedRecord] {
    try await reading { db in
      var out: [ComputedRecord] = []
      let rows = try Row.fetchCursor(
        db, sql: "SELECT profile_id, trait, value, state FROM computed_traits ORDER BY profile_id, trait")
      while let row = try rows.next() { out.append(try Self.computed(row)) }
      return out
    }
  }

  public func computed(of profile: ProfileID) async throws -> [ComputedRecord] {
    try await reading { db in
      let p = try Self.liveOrSelf(profile, db)
      return try Row.fetchAll(
        db, sql: "SELECT profile_id, trait, value, state FROM computed_traits WHERE profile_id = ? ORDER BY trait",
        arguments: [p.raw]
      ).map(Self.computed)
    }
  }

  public func loadMemberships() async throws -> [MembershipRecord] {
    try await reading { db in
      try Row.fetchAll(db, sql: "SELECT segment, profile_id, since FROM memberships ORDER BY segment, profile_id")
        .map(Self.membership)
    }
  }

  public func members(of segment: String) async throws -> [MembershipRecord] {
    try await reading { db in
      try Row.fetchAll(
        db, sql: "SELECT segment, profile_id, since FROM memberships WHERE segment = ? ORDER BY profile_id",
        arguments: [segment]
      ).map(Self.membership)
    }
  }

  public func memberships(of profile: ProfileID) async throws -> [MembershipRecord] {
    try await reading { db in
      let p = try Self.liveOrSelf(profile, db)
      return try Row.fetchAll(
        db, sql: "SELECT segment, profile_id, since FROM memberships WHERE profile_id = ? ORDER BY segment",
        arguments: [p.raw]
      ).map(Self.membership)
    }
  }

  public func segmentCounts() async throws -> [String: Int] {
    try await reading { db in
      var out: [String: Int] = [:]
      for row in try Row.fetchAll(db, sql: "SELECT segment, count(*) FROM memberships GROUP BY segment") {
        out[row[0]] = row[1]
      }
      return out
    }
  }

  public func segmentChanges(of segment: String, limit: Int) async throws -> [SegmentChangeRecord] {
    if limit <= 0 { return [] }
    return try await reading { db in
      try Row.fetchAll(
        db,
        sql: """
          SELECT segment, profile_id, entered, at, "values", merged_into FROM segment_changes
          WHERE segment = ? ORDER BY id LIMIT ?
          """, arguments: [segment, limit]
      ).map { row in
        let merged: Int64? = row[5]
        var values: [String: Value] = [:]
        if case .map(let m) = try StoredValue.decode(row[4]) { values = m }
        return SegmentChangeRecord(
          segment: row[0], profile: ProfileID(row[1]), entered: row[2], at: Timestamp(microseconds: row[3]),
          values: values, mergedInto: merged.map(ProfileID.init))
      }
    }
  }

  public func loadIdentity() async throws -> IdentitySnapshot {
    try await reading { db in
      var snap = IdentitySnapshot()
      var index: [ProfileID: Int] = [:]
      let live = try Int64.fetchCursor(db, sql: "SELECT id FROM profiles WHERE merged_into IS NULL ORDER BY id")
      while let id = try live.next() {
        index[ProfileID(id)] = snap.profiles.count
        snap.profiles.append((ProfileID(id), []))
      }
      // Identifiers of profiles that are not live (or not registered) are left out, as in MemoryStore.
      let ids = try Row.fetchCursor(
        db, sql: "SELECT profile_id, kind, value, last_seen FROM identifiers ORDER BY profile_id, kind, value")
      while let row = try ids.next() {
        guard let n = index[ProfileID(row[0])] else { continue }
        snap.profiles[n].1.append((Identifier(row[1], row[2]), Timestamp(microseconds: row[3])))
      }
      snap.aliases = try Self.aliases(db).map { (absorbed: $0.absorbed, survivor: $0.survivor) }
      return snap
    }
  }

  public func aliases() async throws -> [ProfileAlias] {
    try await reading { db in try Self.aliases(db) }
  }

  static func aliases(_ db: Database) throws -> [ProfileAlias] {
    var out: [ProfileAlias] = []
    let rows = try Row.fetchCursor(
      db, sql: "SELECT id, merged_into FROM profiles WHERE merged_into IS NOT NULL ORDER BY id")
    while let row = try rows.next() {
      out.append(ProfileAlias(absorbed: ProfileID(row[0]), survivor: ProfileID(row[1])))
    }
    return out
  }

  static func merge(_ row: Row) throws -> MergeRecord {
    let score: Double? = row[6]
    return MergeRecord(
      survivor: ProfileID(row[0]), absorbed: ProfileID(row[1]), rule: row[2],
      evidence: try StoredValue.decodeIdentifiers(row[3]), eventID: row[4], at: Timestamp(microseconds: row[5]),
      score: score ?? .nan)
  }

  public func merges(involving profile: ProfileID) async throws -> [MergeRecord] {
    try await reading { db in
      let p = try Self.liveOrSelf(profile, db)
      let statement = try db.cachedStatement(
        sql: """
          \(Self.familyCTE)
          SELECT survivor, absorbed, rule, evidence, event_id, at, score FROM merges
          WHERE survivor IN fam OR absorbed IN fam ORDER BY id
          """)
      return try Row.fetchAll(statement, arguments: [p.raw]).map(Self.merge)
    }
  }

  public func loadMerges() async throws -> [MergeRecord] {
    try await reading { db in
      try Row.fetchAll(
        db, sql: "SELECT survivor, absorbed, rule, evidence, event_id, at, score FROM merges ORDER BY id"
      )
      .map(Self.merge)
    }
  }

  public func matchLinks(status: MatchLinkRecord.Status?, limit: Int) async throws -> [MatchLinkRecord] {
    try await reading { db in
      let statement = try db.cachedStatement(
        sql: """
          SELECT id, rule, profile_id, candidate_id, event_id, probability, weight, status, reason, at
          FROM match_links WHERE ?1 IS NULL OR status = ?1 ORDER BY id LIMIT ?2
          """)
      return try Row.fetchAll(statement, arguments: [status?.rawValue, limit]).map { row in
        let status: String = row[7]
        return MatchLinkRecord(
          id: row[0], rule: row[1], profile: ProfileID(row[2]), candidate: ProfileID(row[3]), eventID: row[4],
          probability: row[5], weight: row[6], status: MatchLinkRecord.Status(rawValue: status) ?? .review,
          reason: row[8], at: Timestamp(microseconds: row[9]))
      }
    }
  }

  public func conflicts(involving profile: ProfileID) async throws -> [ConflictRecord] {
    try await reading { db in
      let p = try Self.liveOrSelf(profile, db)
      let statement = try db.cachedStatement(
        sql: """
          \(Self.familyCTE)
          SELECT kept, other, kind, reason, identifiers, event_id, at FROM conflicts
          WHERE kept IN fam OR other IN fam ORDER BY id
          """)
      return try Row.fetchAll(statement, arguments: [p.raw]).map { row in
        let other: Int64? = row[1]
        return ConflictRecord(
          kept: ProfileID(row[0]), other: other.map(ProfileID.init), kind: row[2], reason: row[3],
          identifiers: try StoredValue.decodeIdentifiers(row[4]), eventID: row[5],
          at: Timestamp(microseconds: row[6]))
      }
    }
  }

  public func events(of profile: ProfileID, limit: Int) async throws -> [StoredEvent] {
    if limit <= 0 { return [] }
    return try await reading { db in
      let reader = RecordDecompressor(self.records)
      let p = try Self.liveOrSelf(profile, db)
      let statement = try db.cachedStatement(
        sql: """
          \(Self.familyCTE)
          SELECT \(Self.eventColumns) FROM profile_events AS pe JOIN events AS e ON e.seq = pe.seq
          WHERE pe.profile_id IN fam
          UNION ALL
          SELECT \(Self.eventColumns) FROM events AS e
          WHERE e.seq > (SELECT value FROM meta WHERE key = 'log_indexed') AND e.profile_id IN fam
          ORDER BY 5 DESC, 2 DESC LIMIT ?2
          """)
      return try Row.fetchAll(statement, arguments: [p.raw, limit]).map { try Self.storedEvent($0, reader, db) }
    }
  }

  public func loadSuppressions() async throws -> Set<String> {
    try await reading { db in Set(try String.fetchAll(db, sql: "SELECT hash FROM suppressions")) }
  }

  public func loadSightings() async throws -> [SightingRecord] {
    try await reading { db in
      try Row.fetchAll(db, sql: "SELECT profile_id, expires, sightings FROM sightings ORDER BY profile_id").map {
        SightingRecord(
          profile: ProfileID($0[0]), sightings: try SightingRecord.decode($0[2]),
          expires: Timestamp(microseconds: $0[1]))
      }
    }
  }

  public func loadSourceCursors() async throws -> [String: String] {
    try await reading { db in
      var out: [String: String] = [:]
      for r in try Row.fetchAll(db, sql: "SELECT source, value FROM source_cursors") { out[r[0]] = r[1] }
      return out
    }
  }

  public func loadSeparations() async throws -> [Separation] {
    try await reading { db in
      try Row.fetchAll(db, sql: "SELECT kind_a, value_a, kind_b, value_b FROM separations ORDER BY 1, 2, 3, 4").map {
        Separation(Identifier($0[0], $0[1]), Identifier($0[2], $0[3]))
      }
    }
  }

  public func loadEvents() async throws -> [StoredEvent] {
    try await reading { db in
      let reader = RecordDecompressor(self.records)
      let rows = try Row.fetchCursor(db, sql: "SELECT \(Self.eventColumns) FROM events AS e ORDER BY e.seq")
      var out: [StoredEvent] = []
      while let row = try rows.next() { out.append(try Self.storedEvent(row, reader, db)) }
      return out
    }
  }

  public func eventPage(after: Int64, limit: Int) async throws -> EventPage {
    try await reading { db in
      let reader = RecordDecompressor(self.records)
      let rows = try Row.fetchCursor(
        db, sql: "SELECT \(Self.eventColumns), e.seq FROM events AS e WHERE e.seq > ? ORDER BY e.seq LIMIT ?",
        arguments: [after, max(limit, 1)])
      var out: [StoredEvent] = []
      var last = after
      while let row = try rows.next() {
        out.append(try Self.storedEvent(row, reader, db))
        last = row[10]
      }
      return EventPage(events: out, next: out.count < max(limit, 1) ? nil : last)
    }
  }

  public func logEnd() async throws -> Int64 {
    try await reading { db in try Int64.fetchOne(db, sql: "SELECT coalesce(max(seq), 0) FROM events") ?? 0 }
  }

  public func logRows(after: Int64, through: Int64, parts: LogRow.Parts) async throws -> [LogRow] {
    // A part not asked for is a NULL in the query, so SQLite never copies it out of the row.
    let sql = """
      SELECT e.source, e.id, e.type, e.name, e.timestamp, e.received_at, e.profile_id, e.format,
        \(parts.contains(.identifiers) ? "e.identifiers" : "NULL"), \(parts.contains(.body) ? "e.body" : "NULL")
      FROM events AS e WHERE e.seq > ? AND e.seq <= ? ORDER BY e.seq
      """
    return try await reading { db in
      // Stepped through SQLite's C API (`LogRowCursor`): GRDB's rows cost a `Data` and a copy through its
      // iterator per body, a fifth of the reader's time over a million rows.
      var cursor = try LogRowCursor(
        db.cachedStatement(sql: sql), after: after, through: through, records: RecordDecompressor(self.records), db)
      var out: [LogRow] = []
      out.reserveCapacity(Int(clamping: max(0, min(through - after, 1 << 16))))
      while let row = try cursor.next() { out.append(row) }
      return out
    }
  }

  public func rejected(limit: Int) async throws -> [RejectedRecord] {
    if limit <= 0 { return [] }
    return try await reading { db in
      try Row.fetchAll(
        db, sql: "SELECT source, line, record, reason, at FROM rejected ORDER BY id LIMIT ?", arguments: [limit]
      ).map { row in
        let line: Int? = row[1]
        return RejectedRecord(
          source: row[0], line: line, record: row[2], reason: row[3], at: Timestamp(microseconds: row[4]))
      }
    }
  }

  public func stats() async throws -> StoreStats {
    try await reading { db in
      let row = try Row.fetchOne(
        db,
        sql: """
          SELECT (SELECT count(*) FROM events), (SELECT count(*) FROM profiles WHERE merged_into IS NULL),
            (SELECT count(*) FROM identifiers), (SELECT count(*) FROM merges), (SELECT count(*) FROM conflicts),
            (SELECT count(*) FROM rejected)
          """)
      guard let row else { throw StoreError.corrupt("stats query returned no row") }
      var s = StoreStats()
      s.events = row[0]
      s.profiles = row[1]
      s.identifiers = row[2]
      s.merges = row[3]
      s.conflicts = row[4]
      s.rejected = row[5]
      return s
    }
  }
}
