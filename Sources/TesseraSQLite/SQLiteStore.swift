import Foundation
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
  public static let schemaVersion = 15
  /// The page size of a new store file. 16 KiB pages made a 1M-event `tessera run` cheaper (~1.2 s less system
  /// time, 2–13 % faster in four of six rounds) but the server's small transactions 5–18 % slower (each
  /// scattered row they change writes a whole page to the WAL), and a file keeps its page size for life
  /// (docs/BENCHMARKS.md, "Writer CPU (helper-22)").
  static let pageSize = 4096
  /// The `format` of a logged record compressed with one of the store's dictionaries (`RecordCodec`). Reads of
  /// the log decompress it and answer `EventLogFormat.record`: no other part of Tessera sees this format.
  static let compressedRecordFormat = 2
  /// The dictionaries logged records are compressed with.
  let records = RecordCodec()

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
  /// The index rows of the events this process appended as a bulk writer and did not index
  /// (`CommitBatch.deferIndexes`), kept from the append so `finishWriting` builds the indexes from them
  /// instead of reading the log back (see `IndexRows`).
  let deferredIndex = Mutex(IndexRows())
  /// The events a long-running writer appended without their index rows (`CommitBatch.indexesBehind`), written
  /// behind the commits (see `LogTail`).
  let logTail: LogTailBox

  /// Opens the store at `path`, creating the file and its schema when missing.
  ///
  /// Throws `StoreError.schemaTooNew` when the file was written by a newer Tessera, and `NotATesseraStore` when
  /// it is no Tessera store at all, leaving the file as it was either way (`StoreFileCheck`).
  public convenience init(path: String) throws {
    try self.init(path: path, walRestartFrames: Checkpointer.restartFrames)
  }

  /// `walRestartFrames`: see `Checkpointer.restartFrames` (tests use a small WAL); `logTailFlush`: see
  /// `LogTail.flushAt`.
  init(path: String, walRestartFrames: Int, logTailFlush: Int = LogTail.flushAt) throws {
    logTail = LogTailBox(flushAt: logTailFlush)
    try StoreFileCheck.verify(path, supportedVersion: Self.schemaVersion)
    var config = Configuration()
    config.label = "tessera.store"
    // Other connections write to the same file (a table destination, a second `tessera` command): wait for
    // their transactions instead of failing at once.
    config.busyMode = .timeout(30)
    config.prepareDatabase { db in
      // WAL itself is set by DatabasePool. NORMAL is the usual pairing with WAL: durable against process
      // crashes, no fsync per commit. The page cache is per connection; the writer gets the larger one, 64 MiB:
      // at 512 MiB it kept most of the file in the process, and 512 → 128 → 64 MiB took a 1M-event run's peak
      // RSS from 1.50 to ~1.02 and ~0.93 GiB at the same rate (docs/BENCHMARKS.md); the pages it drops (of
      // ~150 MB of profiles, identifiers and traits its upserts come back to) are read again from the OS's
      // cache, ~1 s more system time per 1M events.
      try db.execute(sql: "PRAGMA synchronous = NORMAL")
      try db.execute(sql: db.configuration.readonly ? "PRAGMA cache_size = -16384" : "PRAGMA cache_size = -65536")
      try db.execute(sql: "PRAGMA temp_store = MEMORY")
      // A WAL that starts over is cut back to the largest size at which the checkpointer restarts it (a
      // writer of small transactions; below that the file is reused from its start). Cutting it back to the
      // bulk writer's 128 MiB put a truncation of a large file into some commit: 400–570 ms instead of ~140.
      try db.execute(sql: "PRAGMA journal_size_limit = \(8 * walRestartFrames * 4096)")
      // No auto-checkpoint: `Checkpointer` does it in the background (see there).
      if !db.configuration.readonly { try db.execute(sql: "PRAGMA wal_autocheckpoint = 0") }
      // `tessera_log_key`, for indexing the events a bulk writer appended.
      db.add(function: SQLiteStore.logKeyFunction)
    }
    if Self.pageSize != 4096, !FileManager.default.fileExists(atPath: path) {
      // The page size is fixed when the file is created, before WAL mode (which keeps it) is set.
      let fresh = try DatabaseQueue(path: path)
      try fresh.writeWithoutTransaction { db in
        try db.execute(sql: "PRAGMA page_size = \(Self.pageSize)")
        try db.execute(sql: "PRAGMA journal_mode = WAL")
      }
      try fresh.close()
    }
    do {
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
      let records = self.records
      try pool.read { db in try records.load(db) }
      self.pool = pool
      self.intake = intake
      self.checkpointer = try Checkpointer(
        path: path, configuration: config, every: 8192, restartFrames: walRestartFrames)
      self.intakeCheckpointer = try Checkpointer(path: path + "-intake", configuration: config, every: 4096)
    } catch {
      throw SQLiteFault.opening(path, error)
    }
    self.path = path
  }

  /// Caps each of the store's files (the main file and the intake) at `bytes`, in whole pages; nil lifts the cap.
  /// A transaction that would grow a file past it fails as on a full disk (`StoreUnavailable.diskFull`) and
  /// stores nothing: a quota for the store, and how the tests fill a disk without a file system of their own.
  public func limitSize(toBytes bytes: Int?) async throws {
    // SQLite clamps the count to what the file holds already, and to its own largest.
    let pages = bytes.map { max(1, $0 / Self.pageSize) } ?? Int(UInt32.max - 1)
    for file in [pool, intake] {
      try await file.writeWithoutTransaction { db in try db.execute(sql: "PRAGMA max_page_count = \(pages)") }
    }
  }

  /// Pages in the main file (4 KiB each), the write-ahead log's included.
  public func pageCount() async throws -> Int {
    try await pool.read { db in try Int.fetchOne(db, sql: "PRAGMA page_count") ?? 0 }
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
}
