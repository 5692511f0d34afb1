import Foundation
import TesseraCompiler
import TesseraRuntime

#if canImport(Glibc)
  import Glibc
#endif

/// Expands a path with `*`, `?` or `[…]` into the files it names, sorted; a plain path is returned as is.
public func expandGlob(_ pattern: String) -> [String] {
  guard pattern.contains(where: { "*?[".contains($0) }) else { return [pattern] }
  var g = glob_t()
  defer { globfree(&g) }
  guard glob(pattern, 0, nil, &g) == 0 else { return [] }
  var out: [String] = []
  for i in 0..<Int(g.gl_pathc) {
    if let p = g.gl_pathv[i] { out.append(String(cString: p)) }
  }
  return out.sorted()
}

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
    return expandGlob(Paths.resolve(path, from: source.location.file))
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
            let h = record.bytes.withUnsafeBufferPointer { CSV.fields($0, delimiter: delimiter) }
            header = h.enumerated().map { i, name in
              var n = name.trimmingCharacters(in: .whitespaces)
              if i == 0, n.hasPrefix("\u{FEFF}") { n.removeFirst() }
              return n
            }
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

/// Cuts a byte stream into records at line ends; for CSV, line ends inside quotes belong to the field.
/// Blank lines are not records. Each record keeps the number of the line it starts on.
struct RecordSplitter {
  struct Record {
    var bytes: ArraySlice<UInt8>
    var line: Int
  }
  let csv: Bool
  let delimiter: UInt8
  /// The start of a record not yet ended, already scanned.
  var carry: [UInt8] = []
  /// The line the carried record starts on, and the line ends inside it (quoted CSV fields).
  var carryLine = 1
  var carryNewlines = 0
  var inQuotes = false
  /// As `CSV.fields` reads a record: only a quote that starts a field opens a quoted field (a quote inside an
  /// unquoted field, as in `5" screen`, is data), and a quote right after a closing one (`""`) re-opens it.
  var atFieldStart = true
  var justClosed = false

  init(csv: Bool, delimiter: UInt8 = UInt8(ascii: ",")) {
    self.csv = csv
    self.delimiter = delimiter
  }

  mutating func feed(_ chunk: [UInt8], final: Bool) -> [Record] {
    var buf = carry
    buf.append(contentsOf: chunk)
    var out: [Record] = []
    var start = 0
    var recordLine = carryLine
    var inside = carryNewlines
    var i = carry.count
    while i < buf.count {
      let b = buf[i]
      if csv && b == 0x22 {
        if inQuotes {
          inQuotes = false
          justClosed = true
        } else if atFieldStart || justClosed {
          inQuotes = true
          justClosed = false
        }
        atFieldStart = false
      } else {
        justClosed = false
        if b == 0x0A {
          if inQuotes {
            inside += 1
          } else {
            append(buf[start..<i], recordLine, &out)
            start = i + 1
            recordLine += inside + 1
            inside = 0
            atFieldStart = true
          }
        } else if !inQuotes {
          atFieldStart = b == delimiter
        }
      }
      i += 1
    }
    if final {
      append(buf[start..<buf.count], recordLine, &out)
      carry = []
      carryLine = recordLine + inside
      carryNewlines = 0
    } else {
      carry = Array(buf[start...])
      carryLine = recordLine
      carryNewlines = inside
    }
    return out
  }

  func append(_ slice: ArraySlice<UInt8>, _ line: Int, _ out: inout [Record]) {
    var s = slice
    while let last = s.last, last == 0x0D || last == 0x0A { s.removeLast() }
    if s.allSatisfy({ $0 == 0x20 || $0 == 0x09 }) { return }
    out.append(Record(bytes: s, line: line))
  }
}
