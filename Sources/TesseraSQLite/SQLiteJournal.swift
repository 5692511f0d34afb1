import Foundation
import GRDB
import TesseraModel
import TesseraStore

extension SQLiteStore {
  /// An event from a row whose first columns are `source, id, type, name, timestamp, received_at` and whose
  /// column `body` holds the encoded body.
  static func event(_ row: Row, body: Int) throws -> Event {
    let b = try StoredValue.decodeBody(row[body])
    return Event(
      id: row[1], source: row[0], type: row[2], name: row[3], timestamp: Timestamp(microseconds: row[4]),
      receivedAt: Timestamp(microseconds: row[5]), identifiers: b.identifiers, traits: b.traits,
      properties: b.properties, context: b.context)
  }

  static func epoch(_ db: Database) throws -> Int64 {
    try Int64.fetchOne(db, sql: "SELECT value FROM meta WHERE key = 'epoch'") ?? 0
  }

  static func advanceEpoch(_ db: Database) throws {
    try db.execute(sql: "UPDATE meta SET value = value + 1 WHERE key = 'epoch'")
  }

  /// The writer role of a SQLite file: an exclusive `flock` on `<path>-writer`, held until the store is closed
  /// or the process ends (the kernel releases it then, `kill -9` included). Another process on the same file
  /// — a second `tessera serve`, or a `tessera run` while one serves — is refused the role. Taking it moves
  /// the epoch on, as on PostgreSQL.
  public func acquireWriter() async throws -> Bool {
    if writerLock.withLock({ $0 != nil }) { return true }
    let fd = open(path + "-writer", O_RDWR | O_CREAT | O_CLOEXEC, 0o644)
    guard fd >= 0 else {
      throw StoreError.corrupt("cannot open the writer lock \(path)-writer: \(String(cString: strerror(errno)))")
    }
    guard flock(fd, LOCK_EX | LOCK_NB) == 0 else {
      closeDescriptor(fd)
      return false
    }
    writerLock.withLock { $0 = fd }
    try await pool.write { db in try Self.advanceEpoch(db) }
    return true
  }

  /// Gives the writer role up (closing the descriptor releases the lock).
  func releaseWriter() {
    if let fd = writerLock.withLock({ l in
      defer { l = nil }
      return l
    }) {
      closeDescriptor(fd)
    }
  }

  public func epoch() async throws -> Int64 {
    try await pool.read { db in try Self.epoch(db) }
  }

  public func appendJournal(_ events: [Event], rejected: [RejectedRecord]) async throws -> JournalReceipt {
    try await pool.write { db in
      let insert = try db.cachedStatement(
        sql: """
          INSERT OR IGNORE INTO journal (source, id, type, name, timestamp, received_at, body)
          SELECT ?1, ?2, ?3, ?4, ?5, ?6, ?7
          WHERE NOT EXISTS (SELECT 1 FROM events WHERE source = ?1 AND id = ?2)
          """)
      var appended = Set<EventKey>()
      for e in events {
        try insert.execute(arguments: [
          e.source, e.id, e.type, e.name, e.timestamp.microseconds, e.receivedAt.microseconds,
          StoredValue.encodeBody(e),
        ])
        if db.changesCount > 0 { appended.insert(EventKey(source: e.source, id: e.id)) }
      }
      var batch = CommitBatch()
      batch.rejected = rejected
      try Self.write(batch, db)
      return JournalReceipt(appended: appended)
    }
  }

  public func readJournal(limit: Int) async throws -> [JournalEntry] {
    if limit <= 0 { return [] }
    return try await pool.read { db in
      try Row.fetchAll(
        db, sql: "SELECT source, id, type, name, timestamp, received_at, body, seq FROM journal ORDER BY seq LIMIT ?",
        arguments: [limit]
      ).map { row in JournalEntry(seq: row[7], event: try Self.event(row, body: 6)) }
    }
  }
}

/// `close(2)`, out of the store's scope (where `close` names the store's own method).
private func closeDescriptor(_ fd: Int32) {
  _ = close(fd)
}
