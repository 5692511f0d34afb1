import TesseraModel

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
