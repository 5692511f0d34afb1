import Foundation
import PostgresNIO
import TesseraModel
import TesseraStore

/// The writer role of a process: the task that holds the session advisory lock on one pooled connection,
/// and that connection's backend pid (what `pg_locks` names the holder by).
struct WriterLease: Sendable {
  var holder: Task<Void, Never>?
  var pid: Int32?
}

extension PostgresStore {
  /// The session advisory lock of the writer role ("tesswrit"; both halves below 2³¹, so `pg_locks` shows
  /// them as they are).
  static let writerLock: Int64 = 0x7465_7373_7772_6974

  /// Becomes the database's writer when no other process is: takes the session advisory lock `writerLock` on a
  /// pooled connection that a task holds for as long as the store is open (PostgreSQL releases the lock when
  /// that session ends, so a killed writer's role is free at once), then moves the epoch on, so a writer that
  /// lost its session and has not noticed gets its next commit refused (`StoreError.stale`).
  public func acquireWriter() async throws -> Bool {
    if let pid = lease.withLock({ $0.pid }) {
      if try await holdsWriterLock(pid) { return true }
      // The session that held it is gone (a lost connection): start over.
      lease.withLock { l in
        l.holder?.cancel()
        l = WriterLease()
      }
    }
    let (answers, answer) = AsyncStream.makeStream(of: Result<Int32?, any Error>.self)
    let holder = Task { [logger] in
      do {
        // Leased as every operation is: a wait for the connection fails when the watcher sees the server gone.
        try await self.leased { conn in
          var got = (false, Int32(0))
          let rows = try await conn.query(
            "SELECT pg_try_advisory_lock(\(Self.writerLock)), pg_backend_pid()", logger: logger)
          for try await r in rows.decode((Bool, Int32).self) { got = r }
          answer.yield(.success(got.0 ? got.1 : nil))
          answer.finish()
          guard got.0 else { return }
          // Held while this task runs: until `close()` (or a lost connection, which releases it anyway).
          while !Task.isCancelled { try? await Task.sleep(for: .seconds(3600)) }
          _ = try? await conn.query("SELECT pg_advisory_unlock(\(Self.writerLock))", logger: logger)
        }
      } catch {
        answer.yield(.failure(error))
        answer.finish()
      }
    }
    var result: Result<Int32?, any Error> = .success(nil)
    for await r in answers {
      result = r
      break
    }
    guard let pid = try result.get() else {
      holder.cancel()
      return false
    }
    lease.withLock { $0 = WriterLease(holder: holder, pid: pid) }
    try await transaction { conn in try await self.advanceEpoch(conn) }
    return true
  }

  /// Whether the backend `pid` holds the writer lock now.
  func holdsWriterLock(_ pid: Int32) async throws -> Bool {
    try await read { conn in
      let rows = try await conn.query(
        """
        SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND granted AND pid = \(pid) AND objsubid = 1
          AND ((classid::int8 << 32) | objid::int8) = \(Self.writerLock)
        """, logger: self.logger)
      var n: Int64 = 0
      for try await c in rows.decode(Int64.self) { n = c }
      return n > 0
    }
  }

  public func journalBacklog() async throws -> Int {
    try await read { conn in try await self.backlog(conn) }
  }

  /// From the primary key's ends, not a count (which would scan a large backlog).
  func backlog(_ conn: PostgresConnection) async throws -> Int {
    let rows = try await conn.query("SELECT coalesce(max(seq) - min(seq) + 1, 0) FROM journal", logger: logger)
    var found: Int64 = 0
    for try await v in rows.decode(Int64.self) { found = v }
    return Int(found)
  }

  public func epoch() async throws -> Int64 {
    try await read { conn in try await self.epoch(conn, lock: false) }
  }

  func epoch(_ conn: PostgresConnection, lock: Bool) async throws -> Int64 {
    let rows = try await conn.query(
      PostgresQuery(unsafeSQL: "SELECT value FROM meta WHERE key = 'epoch'" + (lock ? " FOR SHARE" : "")),
      logger: logger)
    var found: Int64 = 0
    for try await v in rows.decode(Int64.self) { found = v }
    return found
  }

  func advanceEpoch(_ conn: PostgresConnection) async throws {
    try await conn.query("UPDATE meta SET value = value + 1 WHERE key = 'epoch'", logger: logger)
  }

  /// Appends in one statement: an event already stored (`events`) or journaled (the unique key) is skipped; the
  /// rows that went in come back from `RETURNING`.
  public func appendJournal(_ events: [Event], rejected: [RejectedRecord]) async throws -> JournalReceipt {
    try await transaction { conn in
      var appended = Set<EventKey>()
      if !events.isEmpty {
        let c = EventColumns(events, mapped: true)
        let rows = try await conn.query(
          """
          INSERT INTO journal (source, id, type, name, timestamp, received_at, body, record)
          SELECT s, i, t, CASE WHEN h THEN n END, ts, r, b, CASE WHEN f = 1 THEN rec END
          FROM unnest(\(c.sources)::text[], \(c.ids)::text[], \(c.types)::text[], \(c.names)::text[],
            \(c.hasName)::bool[], \(c.timestamps)::int8[], \(c.received)::int8[], \(c.bodies)::text[],
            \(c.formats)::int8[], \(c.records)::bytea[])
            WITH ORDINALITY AS u(s, i, t, n, h, ts, r, b, f, rec, o)
          WHERE NOT EXISTS (SELECT 1 FROM events AS e WHERE e.source = u.s AND e.id = u.i)
          ORDER BY o
          ON CONFLICT (source, id) DO NOTHING
          RETURNING source, id
          """, logger: self.logger)
        for try await (s, i) in rows.decode((String, String).self) { appended.insert(EventKey(source: s, id: i)) }
      }
      if !rejected.isEmpty {
        var batch = CommitBatch()
        batch.rejected = rejected
        try await self.write(batch, conn)
      }
      return JournalReceipt(appended: appended, backlog: try await self.backlog(conn))
    }
  }

  /// Entries are deleted as they are resolved. Concurrent appends may commit out of `seq` order, so an entry
  /// below `after` can still appear later: the writer reads from the start again once it holds nothing.
  public func readJournal(limit: Int, after: Int64?) async throws -> [JournalEntry] {
    if limit <= 0 { return [] }
    return try await read { conn in
      let rows = try await conn.query(
        """
        SELECT source, id, type, name, timestamp, received_at, body, seq, record FROM journal
        WHERE seq > \(after ?? 0) ORDER BY seq LIMIT \(Int64(limit))
        """, logger: self.logger)
      var out: [JournalEntry] = []
      for try await r in rows.decode((String, String, String, String?, Int64, Int64, String, Int64, ByteBuffer?).self) {
        var event = try StoredValue.event(
          id: r.1, source: r.0, type: r.2, name: r.3, timestamp: r.4, receivedAt: r.5, body: r.6)
        event.record = r.8.map { RecordBytes(Array($0.readableBytesView)) }
        out.append(JournalEntry(seq: r.7, event: event))
      }
      return out
    }
  }
}
