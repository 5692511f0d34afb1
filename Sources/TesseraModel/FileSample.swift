import Foundation

/// The first records of a CSV or NDJSON file, read without reading the rest of it: what the compiler checks
/// a source's field names against, and what `tessera source infer` guesses a declaration from.
public struct FileSample: Sendable {
  public var isCSV: Bool
  /// CSV: the header's names, as `CSV.header` reads them; NDJSON: empty.
  public var header: [String]
  /// The records after the header, at most the `limit` asked for, each with the line it starts on.
  public var records: [RecordSplitter.Record]
  /// Whether the file ended within the sample (every record of the file is in `records`).
  public var complete: Bool

  /// Whether a file is NDJSON by its name: `.ndjson`, `.jsonl` or `.json`.
  public static func isNDJSON(_ path: String) -> Bool {
    let lower = path.lowercased()
    return lower.hasSuffix(".ndjson") || lower.hasSuffix(".jsonl") || lower.hasSuffix(".json")
  }

  /// Reads the header (CSV) and up to `limit` records of `path`; nil when the file cannot be opened.
  public static func read(_ path: String, csv: Bool, delimiter: UInt8 = UInt8(ascii: ","), limit: Int)
    -> FileSample?
  {
    guard let handle = FileHandle(forReadingAtPath: path) else { return nil }
    defer { try? handle.close() }
    var splitter = RecordSplitter(csv: csv, delimiter: delimiter)
    var sample = FileSample(isCSV: csv, header: [], records: [], complete: false)
    var needsHeader = csv
    var first = true
    while true {
      // `read` gives nil at the end of the file, and throws when the file cannot be read.
      guard let chunk = try? (handle.read(upToCount: 1 << 16) ?? Data()) else { return nil }
      let atEnd = chunk.isEmpty
      var bytes = Array(chunk)
      // A UTF-8 byte order mark is not part of the first record.
      if first, bytes.starts(with: [0xEF, 0xBB, 0xBF]) { bytes.removeFirst(3) }
      first = false
      for record in splitter.feed(bytes, final: atEnd) {
        if needsHeader {
          sample.header = CSV.header(record.bytes, delimiter: delimiter)
          needsHeader = false
          continue
        }
        // A record past the limit: the sample is full and the file goes on.
        guard sample.records.count < limit else { return sample }
        sample.records.append(record)
      }
      if atEnd {
        sample.complete = true
        return sample
      }
    }
  }

  /// The fields of one record as the source's expressions name them, in name order: CSV columns by header
  /// name (empty values left out, as the reader leaves them out), NDJSON fields by dotted path, every nested
  /// object both as itself and through its fields. Nil for a record that does not read (malformed JSON, a
  /// CSV line with another number of fields than the header).
  public func fields(of record: RecordSplitter.Record, delimiter: UInt8 = UInt8(ascii: ",")) -> [(
    path: String, value: Value
  )]? {
    if isCSV {
      let values = record.bytes.withUnsafeBufferPointer { CSV.fields($0, delimiter: delimiter) }
      guard values.count == header.count else { return nil }
      return zip(header, values).filter { !$0.1.isEmpty }.map { ($0.0, Value.string($0.1)) }
    }
    guard let value = try? record.bytes.withUnsafeBufferPointer({ try JSON.parse($0) }), case .map = value else {
      return nil
    }
    var out: [(path: String, value: Value)] = []
    Self.flatten(value, prefix: "", into: &out)
    return out
  }

  /// Appends every field of `value` (a map) and of the maps inside it, by dotted path, keys sorted.
  public static func flatten(_ value: Value, prefix: String, into out: inout [(path: String, value: Value)]) {
    guard case .map(let fields) = value else { return }
    for (key, inner) in fields.sorted(by: { $0.key < $1.key }) {
      out.append((prefix + key, inner))
      flatten(inner, prefix: prefix + key + ".", into: &out)
    }
  }
}
