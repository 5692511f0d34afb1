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
  let state = Mutex<(written: Int, running: Bool)>((0, false))
  /// WAL frames (4 KiB pages) past which a checkpoint restarts the WAL.
  static let restartFrames = 262_144

  init(path: String, configuration: Configuration, every: Int) throws {
    connection = try DatabaseQueue(path: path, configuration: configuration)
    self.every = every
  }

  /// Counts what was written and starts a checkpoint when enough was since the last (unless one runs).
  func wrote(_ units: Int) {
    let due = state.withLock { s -> Bool in
      s.written += units
      guard s.written >= every, !s.running else { return false }
      s.written = 0
      s.running = true
      return true
    }
    guard due else { return }
    if BackgroundLane.isCurrent {
      // Written from a background lane (the journaled writer): checkpoint there, blocking the lane's own
      // thread at its priority, rather than in a task that competes with the requests.
      try? connection.writeWithoutTransaction(Self.checkpoint)
      state.withLock { $0.running = false }
    } else {
      // Elsewhere on GRDB's queue, so that no thread of the cooperative pool waits for the copy and fsync.
      Task.detached { [self] in
        try? await connection.writeWithoutTransaction(Self.checkpoint)
        state.withLock { $0.running = false }
      }
    }
  }

  /// A passive checkpoint that keeps finding new frames behind it (writers never pausing) would let the WAL
  /// grow without end; past 1 GiB of it, RESTART waits for the writer once and starts it over.
  @Sendable static func checkpoint(_ db: Database) throws {
    let (frames, _) = try db.checkpoint(.passive)
    if frames > restartFrames { try db.checkpoint(.restart) }
  }

  func close() throws { try connection.close() }
}
