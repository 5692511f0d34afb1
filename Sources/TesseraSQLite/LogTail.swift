import GRDB
import Synchronization
import TesseraStore

/// The events this process appended to the log without their index rows (`CommitBatch.indexesBehind`, the
/// server's commits): the rows waiting to be written, and each event's key with its position, so that repeats
/// are found before the rows reach `event_keys`.
///
/// A small transaction that writes its events' key and timeline rows dirties pages all over the two index
/// b-trees (a few hundred scattered keys touch most of their leaves), and SQLite's COMMIT writes every dirty
/// page to the WAL: that was the largest part of a server transaction. Kept here and written
/// `flushAt` events at a time in key order, the same pages are written once per many transactions.
///
/// The log stays the truth: `log_indexed` says how far the indexes reach, and every reader of the SQLite file
/// (another process too) adds the events past it (`events(of:)`, the console's timeline); a process that
/// finds rows past it it did not append itself (a crash, another writer) indexes them from the log first
/// (`SQLiteStore.indexTail`). An acknowledged event is in `events` with its transaction; only the way to
/// find it quickly comes later.
struct LogTail: Sendable {
  /// The rows are written once the tail holds this many events (the server's default).
  static let flushAt = 8192

  /// The rows not written yet, in the order of their positions (one per position in `indexed + 1 ... through`).
  var rows = IndexRows()
  /// The events of `rows` by key, with their positions.
  var positions: [EventKey: Int64] = [:]
  /// The log's last position as this process last left it: every event up to it is indexed or in `rows`.
  /// 0 while unknown (nothing appended behind yet, or since another way of writing the indexes ran).
  var through: Int64 = 0

  init(through: Int64 = 0) { self.through = through }

  /// Whether the rows are exactly the log's unindexed events, `log_indexed` being `done` and the log
  /// ending at `last`. Positions within the tail are consecutive (one writer appends them in order; another
  /// process's append or an erase shows as a different end), so the count and the end say it.
  func covers(done: Int64, last: Int64) -> Bool {
    (through == last || last == 0) && Int64(rows.keys.count) == last - done
  }

  /// Adds the rows of events appended in one committed transaction.
  mutating func add(_ added: Added) {
    rows.keys += added.rows.keys
    rows.timeline += added.rows.timeline
    for (key, seq) in added.positions { positions[key] = seq }
    through = max(through, added.through)
  }

  /// What one transaction appended behind, and what it did to the tail before: applied when it commits.
  struct Added: Sendable {
    /// The tail was written (or found stale and rebuilt from the log) in the transaction: it starts over.
    var restart = false
    var rows = IndexRows()
    var positions: [(EventKey, Int64)] = []
    var through: Int64 = 0
  }
}

/// The tail of one store, shared by its writer and its readers.
final class LogTailBox: Sendable {
  let state = Mutex(LogTail())
  /// See `LogTail.flushAt` (tests use a small tail).
  let flushAt: Int

  init(flushAt: Int = LogTail.flushAt) { self.flushAt = flushAt }

  /// The positions of those of `keys` the tail holds, and how far the tail reaches (`LogTail.through`).
  func find(_ keys: some Sequence<EventKey>) -> (found: [EventKey: Int64], through: Int64) {
    state.withLock { t in
      var found: [EventKey: Int64] = [:]
      if !t.positions.isEmpty {
        for k in keys { if let seq = t.positions[k] { found[k] = seq } }
      }
      return (found, t.through)
    }
  }

  /// Forgets the tail once the current transaction commits: something wrote the indexes in another way
  /// (`indexTail`), so the log is read afresh by the next append.
  func resetOnCommit(_ db: Database) {
    db.afterNextTransaction(onCommit: { [self] _ in state.withLock { $0 = LogTail() } })
  }

  /// Applies `added` once the current transaction commits (not at all when it rolls back).
  func applyOnCommit(_ added: LogTail.Added, _ db: Database) {
    db.afterNextTransaction(onCommit: { [self] _ in
      state.withLock { t in
        if added.restart { t = LogTail(through: added.through) }
        t.add(added)
      }
    })
  }
}
