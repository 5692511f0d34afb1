import Foundation
import TesseraModel
import TesseraRuntime

/// Reads a whole CSV (with a header line) or NDJSON file record by record, for batch commands such as
/// `tessera link` and `tessera tune` that take records rather than a pipeline's sources.
public enum RecordFile {
  public struct ReadError: Error, CustomStringConvertible {
    public var description: String
  }

  /// NDJSON when the name ends in `.ndjson`, `.jsonl` or `.json`; CSV otherwise.
  public static func isNDJSON(_ path: String) -> Bool { FileSample.isNDJSON(path) }

  /// The header of a CSV file (empty for NDJSON).
  public static func header(_ path: String, delimiter: UInt8 = UInt8(ascii: ",")) throws -> [String] {
    guard !isNDJSON(path) else { return [] }
    guard let sample = FileSample.read(path, csv: true, delimiter: delimiter, limit: 0) else {
      throw ReadError(description: "cannot open `\(path)`")
    }
    return sample.header
  }

  /// Calls `body` with each record's line number and a lookup of its fields by name (nil or "" when absent;
  /// NDJSON values that are not strings are given as their JSON text, nested objects by dotted path).
  public static func forEach(
    _ path: String, delimiter: UInt8 = UInt8(ascii: ","),
    _ body: (_ line: Int, _ field: (String) -> String?) throws -> Void
  ) throws {
    for chunk in try chunks(path, parts: 1, delimiter: delimiter) { try chunk.forEach(body) }
  }

  /// A part of a file's records, to be read on its own (in parallel with the other parts).
  public struct Chunk: Sendable {
    public let header: [String]
    let records: [ArraySlice<UInt8>]
    let lines: [Int]
    let ndjson: Bool
    let delimiter: UInt8
    let path: String

    public var count: Int { records.count }

    /// Calls `body` with each record's line number and a lookup of its fields by name (see `forEach`).
    public func forEach(_ body: (_ line: Int, _ field: (String) -> String?) throws -> Void) throws {
      for (k, bytes) in records.enumerated() {
        if ndjson {
          let value: Value
          do {
            value = try bytes.withUnsafeBufferPointer { try JSON.parse($0) }
          } catch {
            throw ReadError(description: "\(path):\(lines[k]): not a JSON object: \(error)")
          }
          guard case .map(let object) = value else {
            throw ReadError(description: "\(path):\(lines[k]): expected a JSON object per line")
          }
          var names: [String] = []
          var fields: [String] = []
          RecordFile.flatten(object, prefix: "", names: &names, fields: &fields)
          try body(lines[k]) { name in names.firstIndex(of: name).map { fields[$0] } }
          continue
        }
        let fields = bytes.withUnsafeBufferPointer { CSV.fields($0, delimiter: delimiter) }
        try body(lines[k]) { name in
          // A search of the few names of the header costs less than hashing the name.
          guard let i = header.firstIndex(of: name), i < fields.count else { return nil }
          return fields[i]
        }
      }
    }
  }

  /// Reads a whole file and cuts its records into `parts` chunks of about equal size, in file order.
  public static func chunks(_ path: String, parts: Int, delimiter: UInt8 = UInt8(ascii: ",")) throws -> [Chunk] {
    guard let data = FileManager.default.contents(atPath: path) else {
      throw ReadError(description: "cannot open `\(path)`")
    }
    var bytes = [UInt8](data)
    if bytes.starts(with: [0xEF, 0xBB, 0xBF]) { bytes.removeFirst(3) }
    let ndjson = isNDJSON(path)
    var splitter = RecordSplitter(csv: !ndjson, delimiter: delimiter)
    var records = splitter.feed(bytes, final: true)
    var header: [String] = []
    if !ndjson, let first = records.first {
      header = CSV.header(first.bytes, delimiter: delimiter)
      records.removeFirst()
    }
    let size = max(1, (records.count + max(parts, 1) - 1) / max(parts, 1))
    return stride(from: 0, to: max(records.count, 1), by: size).map { start in
      let part = records[start..<min(start + size, records.count)]
      return Chunk(
        header: header, records: part.map(\.bytes), lines: part.map(\.line), ndjson: ndjson,
        delimiter: delimiter, path: path)
    }
  }

  /// The leaf fields of an object by dotted path, keys sorted; nulls left out, values other than strings as
  /// their JSON text.
  static func flatten(_ object: [String: Value], prefix: String, names: inout [String], fields: inout [String]) {
    var all: [(path: String, value: Value)] = []
    FileSample.flatten(.map(object), prefix: prefix, into: &all)
    for (path, value) in all {
      switch value {
      case .null, .map: continue
      case .string(let s):
        names.append(path)
        fields.append(s)
      default:
        names.append(path)
        fields.append(JSON.encode(value))
      }
    }
  }
}
