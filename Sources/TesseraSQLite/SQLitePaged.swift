import GRDB
import TesseraModel
import TesseraStore

extension SQLiteStore {
  // MARK: - Pages for the console (`PagedQueries`): each a bounded walk of an index

  /// The page's events: picked from `profile_events` (the index on profile, time and log position; with a filter,
  /// the events' source and type beside it) and only then read whole. The events past `log_indexed` (a bulk
  /// run's tail, not yet in `profile_events`) are looked through as `events(of:)` does. Parameters: ?1 the live
  /// profile, ?2 ?3 the cursor, ?4 the limit, ?5 the source, ?6 the type.
  static func timelineSQL(filtered: Bool, after: Bool) -> String {
    let join = filtered ? "JOIN events AS f ON f.seq = pe.seq" : ""
    let headFilter = filtered ? "AND (?5 IS NULL OR f.source = ?5) AND (?6 IS NULL OR f.type = ?6)" : ""
    let headAfter = after ? "AND (pe.timestamp, pe.seq) < (?2, ?3)" : ""
    let tailAfter = after ? "AND (e.timestamp, e.seq) < (?2, ?3)" : "AND ?2 IS NULL AND ?3 IS NULL"
    return """
      \(familyCTE),
      page (seq, ts) AS (
        SELECT pe.seq, pe.timestamp FROM profile_events AS pe \(join)
        WHERE pe.profile_id IN fam \(headAfter) \(headFilter)
        UNION ALL
        SELECT e.seq, e.timestamp FROM events AS e
        WHERE e.seq > (SELECT value FROM meta WHERE key = 'log_indexed') AND e.profile_id IN fam \(tailAfter)
          AND (?5 IS NULL OR e.source = ?5) AND (?6 IS NULL OR e.type = ?6)
        ORDER BY 2 DESC, 1 DESC LIMIT ?4
      )
      SELECT \(eventColumns), e.seq FROM page JOIN events AS e ON e.seq = page.seq ORDER BY page.ts DESC, page.seq DESC
      """
  }

  public func timeline(of profile: ProfileID, source: String?, type: String?, cursor: TimelineCursor?, limit: Int)
    async throws -> TimelinePage
  {
    if limit <= 0 { return TimelinePage(events: [], next: cursor) }
    return try await reading { db in
      let reader = RecordDecompressor(self.records)
      let p = try Self.liveOrSelf(profile, db)
      let statement = try db.cachedStatement(
        sql: Self.timelineSQL(filtered: source != nil || type != nil, after: cursor != nil))
      let rows = try Row.fetchAll(
        statement,
        arguments: [p.raw, cursor?.timestamp.microseconds, cursor?.position, limit + 1, source, type])
      var events: [StoredEvent] = []
      var last: TimelineCursor?
      for row in rows.prefix(limit) {
        let e = try Self.storedEvent(row, reader, db)
        events.append(e)
        last = TimelineCursor(timestamp: e.event.timestamp, position: row[10])
      }
      return TimelinePage(events: events, next: rows.count > limit ? last : nil)
    }
  }

  public func ownEvents(of profile: ProfileID, limit: Int) async throws -> [StoredEvent] {
    if limit <= 0 { return [] }
    return try await reading { db in
      let reader = RecordDecompressor(self.records)
      let statement = try db.cachedStatement(
        sql: """
          WITH page (seq, ts) AS (
            SELECT seq, timestamp FROM profile_events WHERE profile_id = ?1
            UNION ALL
            SELECT seq, timestamp FROM events
            WHERE seq > (SELECT value FROM meta WHERE key = 'log_indexed') AND profile_id = ?1
            ORDER BY 2 DESC, 1 DESC LIMIT ?2
          )
          SELECT \(Self.eventColumns) FROM page JOIN events AS e ON e.seq = page.seq
          ORDER BY page.ts DESC, page.seq DESC
          """)
      return try Row.fetchAll(statement, arguments: [profile.raw, limit]).map { try Self.storedEvent($0, reader, db) }
    }
  }

  public func members(of segment: String, after: ProfileID?, limit: Int) async throws -> [MembershipRecord] {
    if limit <= 0 { return [] }
    return try await reading { db in
      try Row.fetchAll(
        db,
        sql: """
          SELECT segment, profile_id, since FROM memberships WHERE segment = ?1 AND profile_id > ?2
          ORDER BY profile_id LIMIT ?3
          """, arguments: [segment, after?.raw ?? Int64.min, limit]
      ).map(Self.membership)
    }
  }

  public func memberCount(of segment: String) async throws -> Int {
    try await reading { db in
      try Int.fetchOne(db, sql: "SELECT count(*) FROM memberships WHERE segment = ?", arguments: [segment]) ?? 0
    }
  }

  static let linkColumns = "id, rule, profile_id, candidate_id, event_id, probability, weight, status, reason, at"

  static func link(_ row: Row) -> MatchLinkRecord {
    let status: String = row[7]
    return MatchLinkRecord(
      id: row[0], rule: row[1], profile: ProfileID(row[2]), candidate: ProfileID(row[3]), eventID: row[4],
      probability: row[5], weight: row[6], status: MatchLinkRecord.Status(rawValue: status) ?? .review,
      reason: row[8], at: Timestamp(microseconds: row[9]))
  }

  /// With a status, a walk of the index `match_links_by_probability` (status, probability, id) from the cursor
  /// that stops at the limit; every status at once is sorted.
  public func matchLinks(status: MatchLinkRecord.Status?, descending: Bool, after: LinkCursor?, limit: Int)
    async throws -> [MatchLinkRecord]
  {
    if limit <= 0 { return [] }
    let order = descending ? "DESC" : "ASC"
    let conditions = [
      status == nil ? "?1 IS NULL" : "status = ?1",
      after == nil ? "?2 IS NULL AND ?3 IS NULL" : "(probability, id) \(descending ? "<" : ">") (?2, ?3)",
    ].joined(separator: " AND ")
    return try await reading { db in
      let statement = try db.cachedStatement(
        sql: """
          SELECT \(Self.linkColumns) FROM match_links WHERE \(conditions)
          ORDER BY probability \(order), id \(order) LIMIT ?4
          """)
      return try Row.fetchAll(
        statement, arguments: [status?.rawValue, after?.probability, after?.id, limit]
      ).map(Self.link)
    }
  }

  public func matchLinkCount(status: MatchLinkRecord.Status?) async throws -> Int {
    try await reading { db in
      try Int.fetchOne(
        db, sql: "SELECT count(*) FROM match_links" + (status == nil ? "" : " WHERE status = ?"),
        arguments: StatementArguments(status.map { [$0.rawValue] } ?? [])) ?? 0
    }
  }

  public func matchLink(id: Int64) async throws -> MatchLinkRecord? {
    try await reading { db in
      try Row.fetchOne(db, sql: "SELECT \(Self.linkColumns) FROM match_links WHERE id = ?", arguments: [id])
        .map(Self.link)
    }
  }

  /// One pass over the index on (rule, probability); the bucket is `MatchLinkHistogram.bucket` in SQL (the
  /// same IEEE product, truncated: probabilities are not negative).
  public func matchLinkHistogram(buckets: Int) async throws -> [String: [Int: Int]] {
    try await reading { db in
      var out: [String: [Int: Int]] = [:]
      let rows = try Row.fetchCursor(
        db,
        sql: """
          SELECT rule, min(?1, max(0, CAST(probability * ?1 AS INTEGER))) AS b, count(*)
          FROM match_links INDEXED BY match_links_rule_probability GROUP BY rule, b
          """, arguments: [buckets])
      while let row = try rows.next() { out[row[0], default: [:]][row[1]] = row[2] }
      return out
    }
  }
}
