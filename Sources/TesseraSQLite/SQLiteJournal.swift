import Foundation
import GRDB
import TesseraModel
import TesseraStore

extension SQLiteStore {
  /// The columns of `events` (as `e`) that `storedEvent` reads, in its order.
  static let eventColumns =
    "e.source, e.id, e.type, e.name, e.timestamp, e.received_at, e.profile_id, e.identifiers, e.format, e.body"

  /// A logged event from a row of `eventColumns`, its record decompressed by `records` when it is stored
  /// compressed.
  static func storedEvent(_ row: Row, _ records: RecordDecompressor, _ db: Database) throws -> StoredEvent {
    let stored: Int = row[8]
    let (format, body) = try row.withUnsafeData(atIndex: 9) { data in
      try data.map { d in try d.withUnsafeBytes { try records.body(format: stored, $0, db) } }
        ?? (RecordDecompressor.format(stored), [])
    }
    let event = try EventLogFormat.event(
      id: row[1], source: row[0], type: row[2], name: row[3], timestamp: row[4], receivedAt: row[5],
      identifiers: row[7], format: format, body: body)
    return StoredEvent(event: event, profile: ProfileID(row[6]))
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
    if writerLock.withLock({ $0 != nil }) {
      // This process already writes; a bulk run of it that stopped early may have left events to index.
      try await writing { [logTail] db in
        try Self.indexTail(db, tail: logTail)
        try Self.catchUpLastSeen(db)
      }
      return true
    }
    let fd = open(path + "-writer", O_RDWR | O_CREAT | O_CLOEXEC, 0o644)
    guard fd >= 0 else {
      throw StoreError.corrupt("cannot open the writer lock \(path)-writer: \(String(cString: strerror(errno)))")
    }
    guard flock(fd, LOCK_EX | LOCK_NB) == 0 else {
      closeDescriptor(fd)
      return false
    }
    writerLock.withLock { $0 = fd }
    try await writing { [logTail] db in
      try Self.advanceEpoch(db)
      // A bulk writer that stopped before it was done (killed), or a server that crashed, left events to index;
      // a bulk writer, last-seen times too.
      try Self.indexTail(db, tail: logTail)
      try Self.catchUpLastSeen(db)
    }
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
    try await reading { db in try Self.epoch(db) }
  }

  /// The journal lives in a file of its own, `<path>-intake`, so that appending to it never waits for the
  /// writer's transactions on the main file: a server acknowledging after the journal (or a follower) takes
  /// only the intake's write lock, and the writer's resolution — which may run at a lower priority, see
  /// `BackgroundLane` — takes only the main file's. Each intake connection attaches the main file as
  /// `store`, to skip events already stored and to read the writer's cursor.
  ///
  /// The writer resolves the journal in order of `seq` (one SQLite writer appends, so a reader never sees a
  /// later entry without the earlier ones) and records how far it got as `journal_done` in the main file's
  /// `meta`, in the transaction that stores the events: the cursor and the effects are one commit. Entries at
  /// or below the cursor are done; the next append deletes them from the intake. A crash between the two
  /// only leaves done entries a little longer.
  static func openIntake(_ path: String, _ base: Configuration) throws -> DatabasePool {
    var config = base
    config.label = "tessera.intake"
    config.prepareDatabase { db in
      try db.execute(sql: "PRAGMA synchronous = NORMAL")
      try db.execute(sql: "PRAGMA temp_store = MEMORY")
      // Appends never checkpoint (copying the WAL into the file and its fsync took the slowest
      // acknowledgements from ~30 to ~70 ms); `Checkpointer` does it on a connection of its own.
      if !db.configuration.readonly { try db.execute(sql: "PRAGMA wal_autocheckpoint = 0") }
      try db.execute(sql: "ATTACH DATABASE ? AS store", arguments: [path])
    }
    let intake = try DatabasePool(path: path + "-intake", configuration: config)
    var m = DatabaseMigrator()
    m.registerMigration("intake-v1") { db in
      try db.execute(
        sql: """
          CREATE TABLE journal (
            seq INTEGER PRIMARY KEY AUTOINCREMENT,
            source TEXT NOT NULL,
            id TEXT NOT NULL,
            type TEXT NOT NULL,
            name TEXT,
            timestamp INTEGER NOT NULL,
            received_at INTEGER NOT NULL,
            body TEXT NOT NULL,
            UNIQUE (source, id)
          )
          """)
    }
    // intake-v2: the record as received travels with the mapped event, for the writer's event log.
    m.registerMigration("intake-v2") { db in
      try db.execute(sql: "ALTER TABLE journal ADD COLUMN record BLOB")
    }
    try m.migrate(intake)
    return intake
  }

  /// Numbers new journal entries above the main file's cursor (`journal_done`) when the intake is younger
  /// than the main file (lost, or restored from an older backup than it): numbered from 1 again, new entries
  /// would count as done and be deleted by the next append without ever being resolved.
  static func numberJournalAfterCursor(main pool: DatabasePool, intake: DatabasePool) throws {
    let done = try pool.read { db in
      try Int64.fetchOne(db, sql: "SELECT value FROM meta WHERE key = 'journal_done'")
    }
    guard let done, done > 0 else { return }
    try intake.write { db in
      let next = try Int64.fetchOne(db, sql: "SELECT seq FROM sqlite_sequence WHERE name = 'journal'")
      if let next, next >= done { return }
      try db.execute(sql: "DELETE FROM sqlite_sequence WHERE name = 'journal'")
      try db.execute(sql: "INSERT INTO sqlite_sequence (name, seq) VALUES ('journal', ?)", arguments: [done])
    }
  }

  /// Moves a schema-8 store's journal (a table of the main file) into the intake file, before the v9
  /// migration drops the table. Copied first and committed, so a crash in between copies again (the intake's
  /// keys make that a no-op) rather than losing an accepted event.
  static func moveJournal(from pool: DatabasePool, to intake: DatabasePool) throws {
    let rows = try pool.read { db -> [Row] in
      guard try db.tableExists("journal") else { return [] }
      return try Row.fetchAll(
        db, sql: "SELECT seq, source, id, type, name, timestamp, received_at, body FROM journal ORDER BY seq")
    }
    if rows.isEmpty { return }
    try intake.writeWithoutTransaction { db in
      try db.inTransaction(.deferred) {
        let insert = try db.cachedStatement(
          sql: """
            INSERT OR IGNORE INTO journal (seq, source, id, type, name, timestamp, received_at, body)
            VALUES (?, ?, ?, ?, ?, ?, ?, ?)
            """)
        for r in rows {
          try insert.execute(arguments: [r[0], r[1], r[2], r[3], r[4], r[5], r[6], r[7]] as StatementArguments)
        }
        return .commit
      }
    }
  }

  public func appendJournal(_ events: [Event], rejected: [RejectedRecord]) async throws -> JournalReceipt {
    // Repeats of events logged behind their index rows (`LogTail`: this process's, or past where it ends) are
    // repeats the statement below cannot see.
    let keys = Set(events.map { EventKey(source: $0.source, id: $0.id) })
    let (inTail, through) = logTail.find(keys)
    // DEFERRED: an IMMEDIATE transaction would take the write lock of the attached main file as well.
    let (appended, backlog) = try await SQLiteFault.classifying {
      try await intake.writeWithoutTransaction { db in
        var appended = Set<EventKey>()
        var backlog = 0
        try db.inTransaction(.deferred) {
          let done = try Int64.fetchOne(db, sql: "SELECT value FROM store.meta WHERE key = 'log_indexed'") ?? 0
          let unindexed = try Self.unindexedKeys(past: max(done, through), db, keys, schema: "store")
          try db.execute(
            sql: "DELETE FROM journal WHERE seq <= (SELECT value FROM store.meta WHERE key = 'journal_done')")
          let insert = try db.cachedStatement(
            sql: """
              INSERT OR IGNORE INTO journal (source, id, type, name, timestamp, received_at, body, record)
              SELECT ?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8
              WHERE NOT EXISTS (
                SELECT 1 FROM store.event_keys AS k JOIN store.events AS e ON e.seq = k.seq
                WHERE k.key = ?9 AND e.source = ?1 AND e.id = ?2)
              """)
          for e in events {
            let key = EventKey(source: e.source, id: e.id)
            if let seq = inTail[key], seq > done { continue }
            if unindexed.contains(key) { continue }
            try insert.execute(arguments: [
              e.source, e.id, e.type, e.name, e.timestamp.microseconds, e.receivedAt.microseconds,
              StoredValue.encodeBody(e), e.record.map { Data($0.bytes) }, key.logKey,
            ])
            if db.changesCount > 0 { appended.insert(key) }
          }
          backlog = try Int.fetchOne(db, sql: Self.backlogSQL) ?? 0
          return .commit
        }
        return (appended, backlog)
      }
    }
    intakeCheckpointer.wrote(events.count)
    if !rejected.isEmpty {
      // Rare, and in the main file: its own transaction, after the events (a crash in between fails the
      // request, whose retry journals nothing twice).
      var batch = CommitBatch()
      batch.rejected = rejected
      try await commit(batch)
    }
    return JournalReceipt(appended: appended, backlog: backlog)
  }

  /// The last `seq` less the cursor: what was appended after the writer's progress (with the numbers skipped
  /// repeats used up; see `Store.journalBacklog`).
  public func journalBacklog() async throws -> Int {
    try await readingIntake { db in try Int.fetchOne(db, sql: Self.backlogSQL) ?? 0 }
  }

  static let backlogSQL = """
    SELECT max(0, coalesce((SELECT max(seq) FROM journal), 0)
      - (SELECT value FROM store.meta WHERE key = 'journal_done'))
    """

  public func readJournal(limit: Int, after: Int64?) async throws -> [JournalEntry] {
    if limit <= 0 { return [] }
    return try await readingIntake { db in
      try Row.fetchAll(
        db,
        sql: """
          SELECT source, id, type, name, timestamp, received_at, body, seq, record FROM journal
          WHERE seq > max(?, (SELECT value FROM store.meta WHERE key = 'journal_done'))
          ORDER BY seq LIMIT ?
          """,
        arguments: [after ?? 0, limit]
      ).map { row in
        var event = try StoredValue.event(
          id: row[1], source: row[0], type: row[2], name: row[3], timestamp: row[4], receivedAt: row[5], body: row[6])
        let record: Data? = row[8]
        event.record = record.map { RecordBytes(Array($0)) }
        return JournalEntry(seq: row[7], event: event)
      }
    }
  }
}

/// `close(2)`, out of the store's scope (where `close` names the store's own method).
private func closeDescriptor(_ fd: Int32) {
  _ = close(fd)
}

extension SQLiteStore {
  /// A write transaction: on a `BackgroundLane` it runs on the lane's own thread (GRDB's synchronous
  /// `write` executes the closure on the calling thread), so the transaction keeps the lane's lower priority;
  /// elsewhere it runs on GRDB's writer queue without blocking the caller's thread. `units` counts towards
  /// the next checkpoint (`Checkpointer`; a commit counts its events).
  func writing<T: Sendable>(units: Int = 1, _ body: @escaping @Sendable (Database) throws -> T) async throws -> T {
    defer { checkpointer.wrote(units) }
    return try await SQLiteFault.classifying {
      if BackgroundLane.isCurrent { return try blockingWrite(body) }
      return try await pool.write(body)
    }
  }

  /// A read, on the lane's thread when called from a `BackgroundLane` (see `writing`).
  func reading<T: Sendable>(_ body: @escaping @Sendable (Database) throws -> T) async throws -> T {
    try await read(pool, body)
  }

  /// A read of the intake file, the same way.
  func readingIntake<T: Sendable>(_ body: @escaping @Sendable (Database) throws -> T) async throws -> T {
    try await read(intake, body)
  }

  private func read<T: Sendable>(_ from: DatabasePool, _ body: @escaping @Sendable (Database) throws -> T)
    async throws -> T
  {
    if BackgroundLane.isCurrent { return try blockingRead(from, body) }
    return try await from.read(body)
  }

  private func blockingWrite<T>(_ body: (Database) throws -> T) throws -> T { try pool.write(body) }
  private func blockingRead<T>(_ from: DatabasePool, _ body: (Database) throws -> T) throws -> T {
    try from.read(body)
  }
}

/// SQLite's errors that mean the store cannot write (rather than a mistake in what was written), as
/// `StoreUnavailable`: what `tessera run` stops on and `tessera serve` degrades on.
enum SQLiteFault {
  static func classify(_ error: any Error) -> any Error {
    guard let e = error as? DatabaseError else { return error }
    switch e.resultCode {
    // SQLite reports ENOSPC, and a file past `max_page_count`, as SQLITE_FULL.
    case .SQLITE_FULL: return StoreUnavailable(.diskFull, e.description)
    case .SQLITE_IOERR, .SQLITE_CANTOPEN: return StoreUnavailable(.ioError, e.description)
    case .SQLITE_READONLY: return StoreUnavailable(.readOnly, e.description)
    default: return error
    }
  }

  /// An error opening the store at `path`: a file system mounted read-only refuses even the opening (SQLite
  /// cannot create the `-shm` and `-wal` files beside the store), as SQLITE_CANTOPEN.
  static func opening(_ path: String, _ error: any Error) -> any Error {
    guard error is DatabaseError else { return error }
    var fs = statvfs()
    let directory = (path as NSString).deletingLastPathComponent
    if statvfs(directory.isEmpty ? "." : directory, &fs) == 0, fs.f_flag & UInt(ST_RDONLY) != 0 {
      return StoreUnavailable(.readOnly, "`\(path)` is on a read-only file system (\(error))")
    }
    return classify(error)
  }

  static func classifying<T>(_ body: () async throws -> T) async throws -> T {
    do { return try await body() } catch { throw classify(error) }
  }
}
