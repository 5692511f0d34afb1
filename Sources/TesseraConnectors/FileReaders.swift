import Foundation
import TesseraCompiler
import TesseraModel
import TesseraRuntime

/// Reads the files of a `csv` or `ndjson` source in chunks and cuts them into batches of records.
/// Parsing happens later, in the decode & map workers.
public struct FileSourceReader: SourceReader {
  public var source: SourceDecl
  /// Records per batch handed to the workers.
  public var batchSize: Int
  /// Bytes read from the file at a time.
  public var chunkSize: Int

  public init(source: SourceDecl, batchSize: Int = 1024, chunkSize: Int = 1 << 20) {
    self.source = source
    self.batchSize = max(1, batchSize)
    self.chunkSize = max(1024, chunkSize)
  }

  /// The files this source names, relative paths read from the folder of the file that declares it.
  public var files: [String] {
    guard let path = source.path else { return [] }
    return Paths.expandGlob(Paths.resolve(path, from: source.location.file))
  }

  public func read(source index: Int, emit: @Sendable (RawBatch) async throws -> Void) async throws {
    let files = self.files
    guard !files.isEmpty else {
      throw SourceError(source: source.name, message: "no file matches `\(source.path ?? "")`")
    }
    for file in files {
      guard let handle = FileHandle(forReadingAtPath: file) else {
        throw SourceError(source: source.name, message: "cannot open `\(file)`")
      }
      defer { try? handle.close() }
      var splitter = RecordSplitter(csv: source.kind == .csv, delimiter: delimiter)
      var format: RawBatch.Format = .ndjson
      var header: [String]?
      var batch = Batcher(size: batchSize)
      var first = true
      while true {
        try Task.checkCancellation()
        let chunk = try handle.read(upToCount: chunkSize) ?? Data()
        let atEnd = chunk.isEmpty
        var bytes = Array(chunk)
        // A UTF-8 byte order mark (spreadsheet exports) is not part of the first record.
        if first, bytes.starts(with: [0xEF, 0xBB, 0xBF]) { bytes.removeFirst(3) }
        first = false
        for record in splitter.feed(bytes, final: atEnd) {
          if source.kind == .csv, header == nil {
            header = CSV.header(record.bytes, delimiter: delimiter)
            format = .csv(header: header ?? [], delimiter: delimiter)
            continue
          }
          if let full = batch.add(record) {
            try await emit(
              RawBatch(seq: 0, source: index, format: format, bytes: full.bytes, records: full.ranges, file: file))
          }
        }
        if atEnd { break }
      }
      if let rest = batch.flush() {
        try await emit(
          RawBatch(seq: 0, source: index, format: format, bytes: rest.bytes, records: rest.ranges, file: file))
      }
    }
  }

  var delimiter: UInt8 { source.delimiter.asciiValue ?? UInt8(ascii: ",") }
}

/// Collects records into one byte buffer with their ranges.
struct Batcher {
  let size: Int
  var bytes: [UInt8] = []
  var ranges: [(start: Int, end: Int, line: Int)] = []

  init(size: Int) { self.size = size }

  mutating func add(_ r: RecordSplitter.Record) -> (bytes: [UInt8], ranges: [(start: Int, end: Int, line: Int)])? {
    let start = bytes.count
    bytes.append(contentsOf: r.bytes)
    ranges.append((start, bytes.count, r.line))
    return ranges.count >= size ? flush() : nil
  }

  mutating func flush() -> (bytes: [UInt8], ranges: [(start: Int, end: Int, line: Int)])? {
    guard !ranges.isEmpty else { return nil }
    defer {
      bytes = []
      ranges = []
      bytes.reserveCapacity(size * 256)
    }
    return (bytes, ranges)
  }
}
