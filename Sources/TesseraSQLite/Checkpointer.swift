import GRDB
import Synchronization
import TesseraStore

/// Checkpoints one WAL file in the background, on a connection of its own, instead of in the transaction that
/// happens to fill the WAL (SQLite's auto-checkpoint, which the store's connections turn off).
///
/// An auto-checkpoint copies the WAL into the file and fsyncs it inside a commit: with a large WAL that commit —
/// and every request waiting for it — took ~200 ms longer (the slowest acknowledgements); with a small one the
/// same index pages were copied back after every transaction. A PASSIVE checkpoint takes no write lock, so
/// writers go on while it copies, and the first writer after a complete one starts the WAL over.
final class Checkpointer: Sendable {
  let connection: DatabaseQueue
  /// Written units (events committed, or one per other write transaction) between two checkpoints.
  let every: Int
  /// `bulk`: the last write transaction alone was a checkpoint's worth (`every` units or more).
  let state = Mutex<(written: Int, running: Bool, bulk: Bool)>((0, false, false))
  /// WAL frames (4 KiB pages) past which a checkpoint restarts the WAL of a bulk writer: 128 MiB, about two of
  /// `tessera run`'s transactions. With 1 GiB, a 1M-event run left a WAL of 1.3–1.5 GB next to a 0.4–0.65 GB
  /// database, and every frame went to a newly allocated block of the file (the kernel zeroing it first).
  static let restartFrames = 32_768
  let restartFrames: Int
  /// A writer of small transactions (the server) restarts its WAL only past 8 times that (1 GiB): the RESTART
  /// holds the write lock while it copies, and at 128 MiB the default mode's p99 went from 59–63 ms to
  /// 111–143 ms. Under load its WAL does not start over by itself either (the writer commits back to back, so
  /// no PASSIVE checkpoint completes before the next commit): it grows to this cap.
  var smallRestartFrames: Int { 8 * restartFrames }

  /// The WAL size past which `checkpoint` restarts it, by the size of the last write transaction.
  func restartLimit(bulk: Bool) -> Int { bulk ? restartFrames : smallRestartFrames }

  init(path: String, configuration: Configuration, every: Int, restartFrames: Int = Checkpointer.restartFrames) throws {
    connection = try DatabaseQueue(path: path, configuration: configuration)
    self.every = every
    self.restartFrames = restartFrames
  }

  /// Counts what was written and starts a checkpoint when enough was since the last (unless one runs).
  func wrote(_ units: Int) {
    let due = state.withLock { s -> Bool in
      s.written += units
      s.bulk = units >= every
      guard s.written >= every, !s.running else { return false }
      s.written = 0
      s.running = true
      return true
    }
    guard due else { return }
    if BackgroundLane.isCurrent {
      // Written from a background lane (the journaled writer): checkpoint there, blocking the lane's own
      // thread at its priority, rather than in a task that competes with the requests.
      try? connection.writeWithoutTransaction(checkpoint)
      state.withLock { $0.running = false }
    } else {
      // Elsewhere on GRDB's queue, so that no thread of the cooperative pool waits for the copy and fsync.
      Task.detached { [self] in
        try? await connection.writeWithoutTransaction(checkpoint)
        state.withLock { $0.running = false }
      }
    }
  }

  /// A passive checkpoint that keeps finding new frames behind it (writers never pausing) would let the WAL
  /// grow without end; past `restartLimit` of it, RESTART waits for the writer's transaction, copies what is
  /// left and makes the next transaction start the WAL over, which truncates the file to the connections'
  /// `journal_size_limit` when it is larger (otherwise the file is reused from its start).
  @Sendable func checkpoint(_ db: Database) throws {
    let (frames, _) = try db.checkpoint(.passive)
    if frames > restartLimit(bulk: state.withLock { $0.bulk }) { try db.checkpoint(.restart) }
  }

  /// Folds the whole WAL into the file and empties it (the end of a bulk writer's work). On the checkpointer's
  /// own connection, so it waits for a PASSIVE checkpoint in progress instead of failing on it: SQLite answers
  /// a second concurrent checkpoint with SQLITE_BUSY without calling the busy handler.
  func truncate() async throws {
    _ = try await connection.writeWithoutTransaction { db in try db.checkpoint(.truncate) }
  }

  func close() throws { try connection.close() }
}
