import GRDB
import Synchronization
import TesseraIdentity
import TesseraModel
import TesseraStore

/// The embedded default store: one SQLite file in WAL mode, through GRDB.
///
/// One writer (the pipeline's commit stage) and any number of readers: a `DatabasePool` lets queries run
/// while a batch is being written. Every `CommitBatch` is one transaction (group commit); with
/// `synchronous = NORMAL` in WAL mode a committed batch survives a crash of the process, and the last batches
/// before a power loss may be lost but the file stays consistent.
///
/// Schema notes:
/// - Timestamps are INTEGER microseconds since the epoch, profile ids INTEGER.
/// - Values (event bodies, trait values and states) are JSON text in the typed form of `StoredValue`, which
///   round-trips every `Value` exactly.
/// - There are no foreign keys: every row is written by the single writer from a consistent batch, and
///   checking them would cost an index probe per row on the hot path. `PRAGMA foreign_keys` stays at GRDB's
///   default (on) so a later migration may add some.
/// - `profiles` refuses a profile merged into itself (a CHECK): such a row would make the alias chain loop.
public final class SQLiteStore: Store {
  /// The schema version this build writes and understands.
  public static let schemaVersion = 9

  let pool: DatabasePool
  /// The journal's own file, `<path>-intake` (see `SQLiteJournal.swift`).
  let intake: DatabasePool
  /// Background checkpoints of the main file (units: events committed, one per other write) and of the
  /// intake (events appended).
  let checkpointer: Checkpointer
  let intakeCheckpointer: Checkpointer
  public let path: String
  /// The writer lock's file descriptor while this store holds the writer role (see `acquireWriter`).
  let writerLock = Mutex<Int32?>(nil)

  /// Opens the store at `path`, creating the file and its schema when missing.
  ///
  /// Throws `StoreError.schemaTooNew` when the file was written by a newer Tessera, and `NotATesseraStore` when
  /// it is no Tessera store at all, leaving the file as it was either way (`StoreFileCheck`).
  public convenience init(path: String) throws {
    try self.init(path: path, walRestartFrames: Checkpointer.restartFrames)
  }

  /// `walRestartFrames`: see `Checkpointer.restartFrames` (tests use a small WAL).
  init(path: String, walRestartFrames: Int) throws {
    try StoreFileCheck.verify(path, supportedVersion: Self.schemaVersion)
    var config = Configuration()
    config.label = "tessera.store"
    // Other connections write to the same file (a table destination, a second `tessera` command): wait for
    // their transactions instead of failing at once.
    config.busyMode = .timeout(30)
    config.prepareDatabase { db in
      // WAL itself is set by DatabasePool. NORMAL is the usual pairing with WAL: durable against process
      // crashes, no fsync per commit. The page cache is per connection; the writer gets the larger one.
      try db.execute(sql: "PRAGMA synchronous = NORMAL")
      try db.execute(sql: db.configuration.readonly ? "PRAGMA cache_size = -16384" : "PRAGMA cache_size = -524288")
      try db.execute(sql: "PRAGMA temp_store = MEMORY")
      // A WAL that starts over is cut back to the largest size at which the checkpointer restarts it (a
      // writer of small transactions; below that the file is reused from its start). Cutting it back to the
      // bulk writer's 128 MiB put a truncation of a large file into some commit: 400–570 ms instead of ~140.
      try db.execute(sql: "PRAGMA journal_size_limit = \(8 * walRestartFrames * 4096)")
      // No auto-checkpoint: `Checkpointer` does it in the background (see there).
      if !db.configuration.readonly { try db.execute(sql: "PRAGMA wal_autocheckpoint = 0") }
    }
    let pool = try DatabasePool(path: path, configuration: config)
    // Refuse a newer schema before the migrator gets a chance to touch it.
    try pool.read { db in
      guard try db.tableExists("meta") else { return }
      let found = try Int.fetchOne(db, sql: "SELECT value FROM meta WHERE key = 'schema_version'") ?? 0
      if found > Self.schemaVersion { throw StoreError.schemaTooNew(found: found, supported: Self.schemaVersion) }
    }
    let intake = try Self.openIntake(path, config)
    try Self.moveJournal(from: pool, to: intake)
    try Self.migrator.migrate(pool)
    try Self.numberJournalAfterCursor(main: pool, intake: intake)
    self.pool = pool
    self.intake = intake
    self.checkpointer = try Checkpointer(
      path: path, configuration: config, every: 8192, restartFrames: walRestartFrames)
    self.intakeCheckpointer = try Checkpointer(path: path + "-intake", configuration: config, every: 4096)
    self.path = path
  }

  /// Closes the files; the store must not be used afterwards.
  public func close() throws {
    releaseWriter()
    try intakeCheckpointer.close()
    try checkpointer.close()
    try intake.close()
    try pool.close()
  }

  deinit { releaseWriter() }

  static var migrator: DatabaseMigrator {
    var m = DatabaseMigrator()
    m.registerMigration("v1") { db in
      try db.execute(
        sql: """
          CREATE TABLE meta (key TEXT PRIMARY KEY NOT NULL, value NOT NULL);
          INSERT INTO meta (key, value) VALUES ('schema_version', 1);

          CREATE TABLE profiles (
            id INTEGER PRIMARY KEY NOT NULL,
            created_at INTEGER NOT NULL,
            merged_into INTEGER CHECK (merged_into IS NULL OR merged_into <> id)
          );
          CREATE INDEX profiles_merged_into ON profiles (merged_into) WHERE merged_into IS NOT NULL;

          -- A rowid table with a separate primary-key index: bodies are too large for WITHOUT ROWID, and
          -- appends to the rowid b-tree are cheap.
          CREATE TABLE events (
            source TEXT NOT NULL,
            id TEXT NOT NULL,
            type TEXT NOT NULL,
            name TEXT,
            timestamp INTEGER NOT NULL,
            received_at INTEGER NOT NULL,
            profile_id INTEGER NOT NULL,
            body TEXT NOT NULL,
            PRIMARY KEY (source, id)
          );
          CREATE INDEX events_profile ON events (profile_id, timestamp);

          CREATE TABLE identifiers (
            kind TEXT NOT NULL,
            value TEXT NOT NULL,
            profile_id INTEGER NOT NULL,
            last_seen INTEGER NOT NULL,
            PRIMARY KEY (kind, value, profile_id)
          ) WITHOUT ROWID;
          CREATE INDEX identifiers_profile ON identifiers (profile_id);

          CREATE TABLE traits (
            profile_id INTEGER NOT NULL,
            trait TEXT NOT NULL,
            value TEXT NOT NULL,
            source TEXT NOT NULL,
            event_id TEXT NOT NULL,
            timestamp INTEGER NOT NULL,
            state TEXT NOT NULL,
            PRIMARY KEY (profile_id, trait)
          ) WITHOUT ROWID;

          CREATE TABLE merges (
            id INTEGER PRIMARY KEY AUTOINCREMENT,
            survivor INTEGER NOT NULL,
            absorbed INTEGER NOT NULL,
            rule TEXT NOT NULL,
            evidence TEXT NOT NULL,
            event_id TEXT NOT NULL,
            at INTEGER NOT NULL,
            score REAL -- NULL stands for NaN, which SQLite cannot store
          );
          CREATE INDEX merges_survivor ON merges (survivor);
          CREATE INDEX merges_absorbed ON merges (absorbed);

          CREATE TABLE conflicts (
            id INTEGER PRIMARY KEY,
            kept INTEGER NOT NULL,
            other INTEGER,
            kind TEXT NOT NULL,
            reason TEXT NOT NULL,
            identifiers TEXT NOT NULL,
            event_id TEXT NOT NULL,
            at INTEGER NOT NULL
          );
          CREATE INDEX conflicts_kept ON conflicts (kept);
          CREATE INDEX conflicts_other ON conflicts (other) WHERE other IS NOT NULL;

          CREATE TABLE rejected (
            id INTEGER PRIMARY KEY,
            source TEXT NOT NULL,
            line INTEGER,
            record TEXT NOT NULL,
            reason TEXT NOT NULL,
            at INTEGER NOT NULL
          );
          """)
    }
    // v2: a record rejected again on a later run over the same files is kept once.
    m.registerMigration("v2") { db in
      try db.execute(
        sql: """
          DELETE FROM rejected WHERE id NOT IN (SELECT min(id) FROM rejected GROUP BY source, reason, record);
          CREATE UNIQUE INDEX rejected_once ON rejected (source, reason, record);
          UPDATE meta SET value = 2 WHERE key = 'schema_version';
          """)
    }
    // v3: computed-trait states, segment memberships and the log of segment changes.
    m.registerMigration("v3") { db in
      try db.execute(
        sql: """
          CREATE TABLE computed_traits (
            profile_id INTEGER NOT NULL,
            trait TEXT NOT NULL,
            value TEXT NOT NULL,
            state TEXT NOT NULL,
            PRIMARY KEY (profile_id, trait)
          ) WITHOUT ROWID;

          CREATE TABLE memberships (
            segment TEXT NOT NULL,
            profile_id INTEGER NOT NULL,
            since INTEGER NOT NULL,
            PRIMARY KEY (segment, profile_id)
          ) WITHOUT ROWID;
          CREATE INDEX memberships_profile ON memberships (profile_id);

          CREATE TABLE segment_changes (
            id INTEGER PRIMARY KEY,
            segment TEXT NOT NULL,
            profile_id INTEGER NOT NULL,
            entered INTEGER NOT NULL,
            at INTEGER NOT NULL,
            "values" TEXT NOT NULL,
            merged_into INTEGER
          );
          CREATE INDEX segment_changes_segment ON segment_changes (segment, id);
          UPDATE meta SET value = 3 WHERE key = 'schema_version';
          """)
    }
    // v4: the log of probabilistic decisions (joins, candidate links for review, refusals).
    m.registerMigration("v4") { db in
      try db.execute(
        sql: """
          CREATE TABLE match_links (
            id INTEGER PRIMARY KEY,
            rule TEXT NOT NULL,
            profile_id INTEGER NOT NULL,
            candidate_id INTEGER NOT NULL,
            event_id TEXT NOT NULL,
            probability REAL NOT NULL,
            weight REAL NOT NULL,
            status TEXT NOT NULL,
            reason TEXT NOT NULL,
            at INTEGER NOT NULL
          );
          CREATE INDEX match_links_status ON match_links (status, id);
          UPDATE meta SET value = 4 WHERE key = 'schema_version';
          """)
    }
    // v5: identifier pairs people separated (tessera unmerge).
    m.registerMigration("v5") { db in
      try db.execute(
        sql: """
          CREATE TABLE separations (
            kind_a TEXT NOT NULL, value_a TEXT NOT NULL, kind_b TEXT NOT NULL, value_b TEXT NOT NULL,
            PRIMARY KEY (kind_a, value_a, kind_b, value_b)
          ) WITHOUT ROWID;
          UPDATE meta SET value = 5 WHERE key = 'schema_version';
          """)
    }
    // v6: hashes of deleted people's identifiers; events carrying them are dropped at the door.
    m.registerMigration("v6") { db in
      try db.execute(
        sql: """
          CREATE TABLE suppressions (hash TEXT PRIMARY KEY NOT NULL) WITHOUT ROWID;
          UPDATE meta SET value = 6 WHERE key = 'schema_version';
          """)
    }
    // v7: the outbox of changes for destinations, and their delivery batches (dead letters among them).
    m.registerMigration("v7") { db in
      try db.execute(
        sql: """
          CREATE TABLE delivery_batches (
            id INTEGER PRIMARY KEY AUTOINCREMENT,
            destination TEXT NOT NULL,
            key TEXT NOT NULL,
            status TEXT NOT NULL,
            attempts INTEGER NOT NULL,
            items INTEGER NOT NULL,
            bytes INTEGER NOT NULL,
            created_at INTEGER NOT NULL,
            next_attempt_at INTEGER NOT NULL,
            lease_until INTEGER,
            last_status INTEGER,
            last_error TEXT NOT NULL,
            finished_at INTEGER
          );
          CREATE INDEX delivery_batches_due ON delivery_batches (destination, status, next_attempt_at);

          CREATE TABLE outbox (
            id INTEGER PRIMARY KEY AUTOINCREMENT,
            destination TEXT NOT NULL,
            op TEXT NOT NULL,
            profile_id INTEGER NOT NULL,
            key TEXT NOT NULL,
            payload TEXT NOT NULL,
            at INTEGER NOT NULL,
            batch_id INTEGER REFERENCES delivery_batches (id)
          );
          CREATE INDEX outbox_waiting ON outbox (destination, id) WHERE batch_id IS NULL;
          CREATE INDEX outbox_batch ON outbox (batch_id) WHERE batch_id IS NOT NULL;
          CREATE INDEX outbox_profile ON outbox (profile_id);

          -- Batches that gave up, with the last status and response: what `tessera deliveries` lists.
          CREATE VIEW dead_letters AS
            SELECT id, destination, key, attempts, items, last_status, last_error, created_at, finished_at
            FROM delivery_batches WHERE status = 'dead';
          UPDATE meta SET value = 7 WHERE key = 'schema_version';
          """)
    }
    // v8: the journal (events a process that is not the writer accepted, waiting to be resolved) and the
    // epoch of the derived state (see `Store.epoch()`).
    m.registerMigration("v8") { db in
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
          );
          INSERT INTO meta (key, value) VALUES ('epoch', 0);
          UPDATE meta SET value = 8 WHERE key = 'schema_version';
          """)
    }
    // v9: the journal moved to its own file (`<path>-intake`, see `moveJournal`); the writer's progress
    // through it is a cursor here, advanced in the transaction that stores the resolved events.
    m.registerMigration("v9") { db in
      try db.execute(
        sql: """
          DROP TABLE IF EXISTS journal;
          INSERT INTO meta (key, value) VALUES ('journal_done', 0);
          UPDATE meta SET value = 9 WHERE key = 'schema_version';
          """)
    }
    // A later migration ends with `UPDATE meta SET value = N WHERE key = 'schema_version'`.
    return m
  }

  // MARK: - Writing

  public func commit(_ batch: CommitBatch) async throws {
    if batch.isEmpty { return }
    try await writing(units: max(1, batch.events.count)) { db in try Self.write(batch, db) }
  }

  /// Writes the batch inside the caller's transaction, in the order `MemoryStore` applies it.
  ///
  /// Each statement is looked up once per batch and re-bound per row; the hot ones bind through
  /// `RowStatement`, the rest through `execute(arguments:)`, which binds strings
  /// without copying them.
  static func write(_ batch: CommitBatch, _ db: Database) throws {
    if let expected = batch.epoch {
      let found = try epoch(db)
      if found != expected { throw StoreError.stale(expected: expected, found: found) }
    }
    if let done = batch.journalDone.max() {
      // The journal is resolved in order: everything up to `done` is stored with this transaction. The
      // entries themselves leave the intake file with a later append (`appendJournal`).
      try db.execute(
        sql: "UPDATE meta SET value = max(value, ?) WHERE key = 'journal_done'", arguments: [done])
    }
    if !batch.newProfiles.isEmpty {
      let insert = RowStatement(
        try db.cachedStatement(sql: "INSERT OR IGNORE INTO profiles (id, created_at) VALUES (?, ?)"))
      for (p, at) in batch.newProfiles { try insert.run(p.raw, at.microseconds) }
    }
    if !batch.events.isEmpty {
      let insert = RowStatement(
        try db.cachedStatement(
          sql: """
            INSERT OR IGNORE INTO events (source, id, type, name, timestamp, received_at, profile_id, body)
            VALUES (?, ?, ?, ?, ?, ?, ?, ?)
            """))
      for (i, s) in batch.events.enumerated() {
        let e = s.event
        try insert.run(
          e.source, e.id, e.type, e.name, e.timestamp.microseconds, e.receivedAt.microseconds, s.profile.raw,
          batch.body(i))
      }
    }
    if !batch.merges.isEmpty {
      let alias = try db.cachedStatement(sql: "UPDATE profiles SET merged_into = ? WHERE id = ?")
      // Upsert from a SELECT needs the WHERE (SQLite's parsing rule for `ON CONFLICT` after a SELECT).
      let moveIdentifiers = try db.cachedStatement(
        sql: """
          INSERT INTO identifiers (kind, value, profile_id, last_seen)
          SELECT kind, value, ?, last_seen FROM identifiers WHERE profile_id = ?
          ON CONFLICT (kind, value, profile_id) DO UPDATE SET last_seen = max(last_seen, excluded.last_seen)
          """)
      let dropIdentifiers = try db.cachedStatement(sql: "DELETE FROM identifiers WHERE profile_id = ?")
      let dropTraits = try db.cachedStatement(sql: "DELETE FROM traits WHERE profile_id = ?")
      let dropComputed = try db.cachedStatement(sql: "DELETE FROM computed_traits WHERE profile_id = ?")
      let dropMemberships = try db.cachedStatement(sql: "DELETE FROM memberships WHERE profile_id = ?")
      let record = try db.cachedStatement(
        sql: """
          INSERT INTO merges (survivor, absorbed, rule, evidence, event_id, at, score)
          VALUES (?, ?, ?, ?, ?, ?, ?)
          """)
      for m in batch.merges {
        // A self-merge of a known profile fails on the CHECK (and the whole batch rolls back); for an unknown
        // one, moving its identifiers onto itself would delete them, so that part is skipped.
        try alias.execute(arguments: [m.survivor.raw, m.absorbed.raw])
        if m.survivor != m.absorbed {
          try moveIdentifiers.execute(arguments: [m.survivor.raw, m.absorbed.raw])
          try dropIdentifiers.execute(arguments: [m.absorbed.raw])
          try dropTraits.execute(arguments: [m.absorbed.raw])
          try dropComputed.execute(arguments: [m.absorbed.raw])
          try dropMemberships.execute(arguments: [m.absorbed.raw])
        }
        try record.execute(arguments: [
          m.survivor.raw, m.absorbed.raw, m.rule, StoredValue.encode(m.evidence), m.eventID, m.at.microseconds,
          m.score.isNaN ? nil : m.score,
        ])
      }
    }
    // Releases after merges: an identifier a merge moved to the survivor is released from the survivor.
    if !batch.released.isEmpty {
      let delete = try db.cachedStatement(
        sql: "DELETE FROM identifiers WHERE kind = ? AND value = ? AND profile_id = ?")
      for (i, p) in batch.released { try delete.execute(arguments: [i.kind, i.value, p.raw]) }
    }
    if !batch.identifiers.isEmpty {
      let upsert = RowStatement(
        try db.cachedStatement(
          sql: """
            INSERT INTO identifiers (kind, value, profile_id, last_seen) VALUES (?, ?, ?, ?)
            ON CONFLICT (kind, value, profile_id) DO UPDATE SET last_seen = max(last_seen, excluded.last_seen)
            """))
      for (i, p, seen) in batch.identifiers { try upsert.run(i.kind, i.value, p.raw, seen.microseconds) }
    }
    if !batch.conflicts.isEmpty {
      let insert = try db.cachedStatement(
        sql: """
          INSERT INTO conflicts (kept, other, kind, reason, identifiers, event_id, at)
          VALUES (?, ?, ?, ?, ?, ?, ?)
          """)
      for c in batch.conflicts {
        try insert.execute(arguments: [
          c.kept.raw, c.other?.raw, c.kind, c.reason, StoredValue.encode(c.identifiers), c.eventID, c.at.microseconds,
        ])
      }
    }
    if !batch.matchLinks.isEmpty {
      let insert = try db.cachedStatement(
        sql: """
          INSERT INTO match_links (rule, profile_id, candidate_id, event_id, probability, weight, status, reason, at)
          VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)
          """)
      for l in batch.matchLinks {
        try insert.execute(arguments: [
          l.rule, l.profile.raw, l.candidate.raw, l.eventID, l.probability, l.weight, l.status.rawValue, l.reason,
          l.at.microseconds,
        ])
      }
    }
    if !batch.separations.isEmpty {
      let insert = try db.cachedStatement(
        sql: "INSERT OR IGNORE INTO separations (kind_a, value_a, kind_b, value_b) VALUES (?, ?, ?, ?)")
      for pair in batch.separations where pair.count == 2 {
        let p = pair.sorted()
        try insert.execute(arguments: [p[0].kind, p[0].value, p[1].kind, p[1].value])
      }
    }
    if !batch.linkStatus.isEmpty {
      let update = try db.cachedStatement(sql: "UPDATE match_links SET status = ? WHERE id = ?")
      for (id, status) in batch.linkStatus { try update.execute(arguments: [status.rawValue, id]) }
    }
    if !batch.traits.isEmpty {
      let upsert = RowStatement(
        try db.cachedStatement(
          sql: """
            INSERT INTO traits (profile_id, trait, value, source, event_id, timestamp, state)
            VALUES (?, ?, ?, ?, ?, ?, ?)
            ON CONFLICT (profile_id, trait) DO UPDATE SET
              value = excluded.value, source = excluded.source, event_id = excluded.event_id,
              timestamp = excluded.timestamp, state = excluded.state
            """))
      for t in batch.traits {
        try upsert.run(
          t.profile.raw, t.trait, StoredValue.encode(t.value), t.source, t.eventID, t.timestamp.microseconds,
          StoredValue.encode(t.state))
      }
    }
    if !batch.computed.isEmpty {
      let upsert = RowStatement(
        try db.cachedStatement(
          sql: """
            INSERT INTO computed_traits (profile_id, trait, value, state) VALUES (?, ?, ?, ?)
            ON CONFLICT (profile_id, trait) DO UPDATE SET value = excluded.value, state = excluded.state
            """))
      let delete = RowStatement(
        try db.cachedStatement(sql: "DELETE FROM computed_traits WHERE profile_id = ? AND trait = ?"))
      for c in batch.computed {
        if let state = c.storedState {
          try upsert.run(c.profile.raw, c.trait, StoredValue.encode(c.value), state)
        } else {
          try delete.run(c.profile.raw, c.trait)
        }
      }
    }
    if !batch.segmentChanges.isEmpty {
      let enter = RowStatement(
        try db.cachedStatement(
          sql: "INSERT OR REPLACE INTO memberships (segment, profile_id, since) VALUES (?, ?, ?)"))
      let exit = RowStatement(
        try db.cachedStatement(sql: "DELETE FROM memberships WHERE segment = ? AND profile_id = ?"))
      let log = RowStatement(
        try db.cachedStatement(
          sql: """
            INSERT INTO segment_changes (segment, profile_id, entered, at, "values", merged_into)
            VALUES (?, ?, ?, ?, ?, ?)
            """))
      for c in batch.segmentChanges {
        if c.entered {
          try enter.run(c.segment, c.profile.raw, c.at.microseconds)
        } else {
          try exit.run(c.segment, c.profile.raw)
        }
        try log.run(
          c.segment, c.profile.raw, c.entered, c.at.microseconds, StoredValue.encode(.map(c.values)),
          c.mergedInto?.raw)
      }
    }
    if !batch.outbox.isEmpty { try Self.enqueue(batch.outbox, db) }
    if !batch.rejected.isEmpty {
      let insert = try db.cachedStatement(
        sql: "INSERT OR IGNORE INTO rejected (source, line, record, reason, at) VALUES (?, ?, ?, ?, ?)")
      for r in batch.rejected {
        try insert.execute(arguments: [r.source, r.line, r.record, r.reason, r.at.microseconds])
      }
    }
  }

  // MARK: - Reading

  /// Keys per `existingEvents` query; twice this many parameters stay far below SQLite's limit.
  static let existingChunk = 256

  /// The chunk query joins a VALUES list to the events' primary key. `CROSS JOIN` fixes the loop order (the
  /// list outside, an index probe per key inside); the tempting `WHERE (source, id) IN (VALUES ...)` makes
  /// SQLite scan the whole events index instead. Short chunks are padded with their last key so one cached
  /// statement serves every call.
  static let existingSQL: String = {
    let rows = Array(repeating: "(?, ?)", count: existingChunk).joined(separator: ", ")
    return """
      SELECT e.source, e.id FROM (VALUES \(rows)) AS k
      CROSS JOIN events AS e ON e.source = k.column1 AND e.id = k.column2
      """
  }()

  public func existingEvents(_ keys: [EventKey]) async throws -> Set<EventKey> {
    if keys.isEmpty { return [] }
    return try await reading { db in
      let statement = try db.cachedStatement(sql: Self.existingSQL)
      var found = Set<EventKey>()
      var values: [(any DatabaseValueConvertible)?] = []
      values.reserveCapacity(2 * Self.existingChunk)
      var start = 0
      while start < keys.count {
        let end = min(start + Self.existingChunk, keys.count)
        values.removeAll(keepingCapacity: true)
        for k in keys[start..<end] {
          values.append(k.source)
          values.append(k.id)
        }
        let last = keys[end - 1]
        for _ in end..<(start + Self.existingChunk) {
          values.append(last.source)
          values.append(last.id)
        }
        let rows = try Row.fetchCursor(statement, arguments: StatementArguments(values))
        while let row = try rows.next() { found.insert(EventKey(source: row[0], id: row[1])) }
        start = end
      }
      return found
    }
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
      let aliases = try Row.fetchCursor(
        db, sql: "SELECT id, merged_into FROM profiles WHERE merged_into IS NOT NULL ORDER BY id")
      while let row = try aliases.next() {
        snap.aliases.append((absorbed: ProfileID(row[0]), survivor: ProfileID(row[1])))
      }
      return snap
    }
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
      let p = try Self.liveOrSelf(profile, db)
      let statement = try db.cachedStatement(
        sql: """
          \(Self.familyCTE)
          SELECT source, id, type, name, timestamp, received_at, profile_id, body FROM events
          WHERE profile_id IN fam ORDER BY timestamp DESC, id DESC LIMIT ?2
          """)
      return try Row.fetchAll(statement, arguments: [p.raw, limit]).map { row in
        StoredEvent(event: try Self.event(row, body: 7), profile: ProfileID(row[6]))
      }
    }
  }

  public func replaceDerivedState(_ s: DerivedState) async throws {
    try await writing { db in
      try Self.advanceEpoch(db)
      try db.execute(sql: "DELETE FROM profiles; DELETE FROM identifiers; DELETE FROM traits;")
      try db.execute(sql: "DELETE FROM computed_traits; DELETE FROM memberships;")
      let profile = try db.cachedStatement(
        sql: "INSERT INTO profiles (id, created_at, merged_into) VALUES (?, ?, NULL)")
      for (p, at) in s.profiles { try profile.execute(arguments: [p.raw, at.microseconds]) }
      let alias = try db.cachedStatement(sql: "UPDATE profiles SET merged_into = ? WHERE id = ?")
      for a in s.aliases { try alias.execute(arguments: [a.survivor.raw, a.absorbed.raw]) }
      let identifier = try db.cachedStatement(
        sql: "INSERT INTO identifiers (kind, value, profile_id, last_seen) VALUES (?, ?, ?, ?)")
      for (i, p, seen) in s.identifiers {
        try identifier.execute(arguments: [i.kind, i.value, p.raw, seen.microseconds])
      }
      let event = try db.cachedStatement(sql: "UPDATE events SET profile_id = ? WHERE source = ? AND id = ?")
      for (key, p) in s.eventProfiles { try event.execute(arguments: [p.raw, key.source, key.id]) }
      let membership = try db.cachedStatement(
        sql: "INSERT INTO memberships (segment, profile_id, since) VALUES (?, ?, ?)")
      for m in s.memberships { try membership.execute(arguments: [m.segment, m.profile.raw, m.since.microseconds]) }
      // Traits, computed traits, merges and conflicts go through the ordinary batch writer.
      var batch = CommitBatch()
      batch.traits = s.traits
      batch.computed = s.computed
      batch.conflicts = s.conflicts
      try Self.write(batch, db)
      let merge = try db.cachedStatement(
        sql: "INSERT INTO merges (survivor, absorbed, rule, evidence, event_id, at, score) VALUES (?, ?, ?, ?, ?, ?, ?)"
      )
      for m in s.merges {
        try merge.execute(arguments: [
          m.survivor.raw, m.absorbed.raw, m.rule, StoredValue.encode(m.evidence), m.eventID, m.at.microseconds,
          m.score.isNaN ? nil : m.score,
        ])
      }
    }
  }

  public func loadSuppressions() async throws -> Set<String> {
    try await reading { db in Set(try String.fetchAll(db, sql: "SELECT hash FROM suppressions")) }
  }

  public func erase(profile: ProfileID, values: [String], suppress: [String], notices: [OutboxRecord]) async throws
    -> DeletionReport
  {
    let report = try await writing { db in
      // Deleted content is overwritten with zeros, not left in free pages.
      try db.execute(sql: "PRAGMA secure_delete = ON")
      try Self.advanceEpoch(db)
      var r = DeletionReport()
      let live = try Self.live(profile, db) ?? profile
      let family = try Int64.fetchAll(
        db, sql: Self.familyCTE + " SELECT id FROM fam", arguments: [live.raw])
      guard !family.isEmpty else { return r }
      try db.execute(sql: "CREATE TEMP TABLE IF NOT EXISTS erase_fam (id INTEGER PRIMARY KEY)")
      try db.execute(sql: "DELETE FROM erase_fam")
      for id in family { try db.execute(sql: "INSERT INTO erase_fam (id) VALUES (?)", arguments: [id]) }
      func run(_ sql: String, _ arguments: StatementArguments = []) throws -> Int {
        try db.execute(sql: sql, arguments: arguments)
        return db.changesCount
      }
      let inFam = "IN (SELECT id FROM erase_fam)"
      r.events = try run("DELETE FROM events WHERE profile_id \(inFam)")
      r.identifiers = try run("DELETE FROM identifiers WHERE profile_id \(inFam)")
      r.traits = try run("DELETE FROM traits WHERE profile_id \(inFam)")
      r.computed = try run("DELETE FROM computed_traits WHERE profile_id \(inFam)")
      r.memberships = try run("DELETE FROM memberships WHERE profile_id \(inFam)")
      r.segmentChanges = try run(
        "DELETE FROM segment_changes WHERE profile_id \(inFam) OR merged_into \(inFam)")
      r.merges = try run("DELETE FROM merges WHERE survivor \(inFam) OR absorbed \(inFam)")
      r.conflicts = try run("DELETE FROM conflicts WHERE kept \(inFam) OR other \(inFam)")
      r.matchLinks = try run("DELETE FROM match_links WHERE profile_id \(inFam) OR candidate_id \(inFam)")
      // Pending deliveries: their rows, and the batches left without rows (delivered batches hold none).
      r.deliveries = try run("DELETE FROM outbox WHERE profile_id \(inFam)")
      _ = try run(
        "DELETE FROM delivery_batches WHERE status <> 'delivered' AND id NOT IN "
          + "(SELECT batch_id FROM outbox WHERE batch_id IS NOT NULL)")
      for v in values where !v.isEmpty {
        r.rejected += try run("DELETE FROM rejected WHERE instr(record, ?) > 0", [v])
        _ = try run("DELETE FROM separations WHERE value_a = ? OR value_b = ?", [v, v])
      }
      r.profiles = try run("DELETE FROM profiles WHERE id \(inFam)")
      try db.execute(sql: "DELETE FROM erase_fam")
      for h in suppress { try db.execute(sql: "INSERT OR IGNORE INTO suppressions (hash) VALUES (?)", arguments: [h]) }
      if !notices.isEmpty { try Self.enqueue(notices, db) }
      return r
    }
    // The write-ahead log still holds the pages as they were: fold it into the file and empty it.
    _ = try await pool.writeWithoutTransaction { db in try db.checkpoint(.truncate) }
    return report
  }

  public func loadSeparations() async throws -> [[Identifier]] {
    try await reading { db in
      try Row.fetchAll(db, sql: "SELECT kind_a, value_a, kind_b, value_b FROM separations ORDER BY 1, 2, 3, 4").map {
        [Identifier($0[0], $0[1]), Identifier($0[2], $0[3])]
      }
    }
  }

  public func loadEvents() async throws -> [StoredEvent] {
    try await reading { db in
      let rows = try Row.fetchCursor(
        db, sql: "SELECT source, id, type, name, timestamp, received_at, profile_id, body FROM events ORDER BY rowid")
      var out: [StoredEvent] = []
      while let row = try rows.next() {
        out.append(StoredEvent(event: try Self.event(row, body: 7), profile: ProfileID(row[6])))
      }
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
