import Synchronization
import TesseraModel
import TesseraStore

/// A run of records read from one source: the bytes and where each record starts and ends.
/// Readers cut files into these; decode & map workers parse them in parallel.
public struct RawBatch: Sendable {
  public enum Format: Sendable { case csv(header: [String], delimiter: UInt8), ndjson }
  /// Order of the batch in the run; the resolver restores this order after the parallel stage.
  public var seq: Int
  /// Index of the source in the plan.
  public var source: Int
  public var format: Format
  public var bytes: [UInt8]
  /// Byte range and 1-based line number of each record.
  public var records: [(start: Int, end: Int, line: Int)]
  /// The file the records came from, for rejected-record reports.
  public var file: String
  /// Where each record was read, when `file:line` does not say it (a table source: the table and the row's
  /// cursor value); rejected records name it.
  public var positions: [String]?
  /// How far the source has read once this batch is stored (a table source's cursor): committed in the same
  /// transaction as the batch's events and rejected records.
  public var cursor: SourceCursor?

  public init(
    seq: Int, source: Int, format: Format, bytes: [UInt8], records: [(start: Int, end: Int, line: Int)], file: String
  ) {
    self.seq = seq
    self.source = source
    self.format = format
    self.bytes = bytes
    self.records = records
    self.file = file
  }
}

/// Reads one declared source and hands batches of records to `emit`, in file order.
public protocol SourceReader: Sendable {
  /// Reads everything; `emit` suspends while the pipeline is busy (back-pressure).
  func read(source: Int, emit: @Sendable (RawBatch) async throws -> Void) async throws
}

/// Tells a source that polls (a table source under `tessera serve`) when to stop: it ends its read at the
/// next poll, so the graph can drain and commit what it holds.
public final class SourceStop: Sendable {
  struct State {
    var stopped = false
    var next = 0
    var waiters: [Int: CheckedContinuation<Void, Never>] = [:]
    /// Waits whose time ran out before they started waiting.
    var elapsed: Set<Int> = []
  }
  let state = Mutex(State())
  public init() {}

  public var isStopped: Bool { state.withLock { $0.stopped } }

  /// Stops every reader that watches this (wakes those waiting for their next poll).
  public func stop() {
    let waiters = state.withLock { s -> [CheckedContinuation<Void, Never>] in
      s.stopped = true
      defer { s.waiters = [:] }
      return Array(s.waiters.values)
    }
    for w in waiters { w.resume() }
  }

  /// Waits `interval`, or less when stopped meanwhile; true when stopped.
  public func wait(_ interval: Duration) async -> Bool {
    let id = state.withLock { s in
      defer { s.next += 1 }
      return s.next
    }
    let timer = Task { [self] in
      try? await Task.sleep(for: interval)
      let w = state.withLock { s in
        let w = s.waiters.removeValue(forKey: id)
        if w == nil { s.elapsed.insert(id) }
        return w
      }
      w?.resume()
    }
    defer {
      timer.cancel()
      _ = state.withLock { $0.elapsed.remove(id) }
    }
    await withCheckedContinuation { (c: CheckedContinuation<Void, Never>) in
      let now = state.withLock { s -> Bool in
        if s.stopped || s.elapsed.remove(id) != nil { return true }
        s.waiters[id] = c
        return false
      }
      if now { c.resume() }
    }
    return isStopped
  }
}

/// A source problem that stops the run (a missing file), as opposed to a bad record, which is rejected.
public struct SourceError: Error, Sendable, CustomStringConvertible {
  public var source: String
  public var message: String
  public init(source: String, message: String) {
    self.source = source
    self.message = message
  }
  public var description: String { "source `\(source)`: \(message)" }
}
