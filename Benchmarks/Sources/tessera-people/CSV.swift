import Foundation

/// RFC 4180 output into byte buffers, and a small reader for the self-check.
enum CSV {
  static let comma = UInt8(ascii: ",")
  static let quote = UInt8(ascii: "\"")
  static let newline = UInt8(ascii: "\n")
  static let carriageReturn = UInt8(ascii: "\r")
  static let space = UInt8(ascii: " ")

  /// Appends `value` in decimal, left-padded with zeros to `width` digits.
  static func appendPadded(_ value: Int, width: Int, to buffer: inout [UInt8]) {
    var digits = 1
    var rest = value / 10
    while rest > 0 {
      digits += 1
      rest /= 10
    }
    let count = max(width, digits)
    let start = buffer.count
    buffer.append(contentsOf: repeatElement(UInt8(ascii: "0"), count: count))
    var remaining = value
    var index = start + count - 1
    while remaining > 0 {
      buffer[index] = UInt8(ascii: "0") + UInt8(remaining % 10)
      remaining /= 10
      index -= 1
    }
  }

  /// Appends one field, quoted when it holds a comma, quote or line break, or starts or ends with a space (so
  /// readers that trim unquoted fields keep the spaces).
  static func appendField(_ value: String, to buffer: inout [UInt8], comma separator: Bool = false) {
    if separator { buffer.append(comma) }
    var value = value
    value.makeContiguousUTF8()
    let plain = value.utf8.withContiguousStorageIfAvailable { bytes -> Bool in
      guard bytes.first != space && bytes.last != space else { return false }
      for byte in bytes where byte == comma || byte == quote || byte == newline || byte == carriageReturn {
        return false
      }
      buffer.append(contentsOf: bytes)
      return true
    }
    if plain == true { return }
    let utf8 = value.utf8
    var needsQuotes = utf8.first == space || utf8.last == space
    if !needsQuotes {
      for byte in utf8 where byte == comma || byte == quote || byte == newline || byte == carriageReturn {
        needsQuotes = true
        break
      }
    }
    guard needsQuotes else {
      buffer.append(contentsOf: utf8)
      return
    }
    buffer.append(quote)
    for byte in utf8 {
      if byte == quote { buffer.append(quote) }
      buffer.append(byte)
    }
    buffer.append(quote)
  }

  /// Parses RFC 4180 text into rows of fields.
  static func parse(_ bytes: [UInt8]) -> [[String]] {
    var rows: [[String]] = []
    var row: [String] = []
    var field: [UInt8] = []
    var inQuotes = false
    var index = 0
    while index < bytes.count {
      let byte = bytes[index]
      index += 1
      if inQuotes {
        if byte == quote {
          if index < bytes.count && bytes[index] == quote {
            field.append(quote)
            index += 1
          } else {
            inQuotes = false
          }
        } else {
          field.append(byte)
        }
        continue
      }
      switch byte {
      case quote: inQuotes = true
      case comma:
        row.append(String(decoding: field, as: UTF8.self))
        field.removeAll(keepingCapacity: true)
      case newline:
        row.append(String(decoding: field, as: UTF8.self))
        field.removeAll(keepingCapacity: true)
        rows.append(row)
        row.removeAll(keepingCapacity: true)
      case carriageReturn: break
      default: field.append(byte)
      }
    }
    if !field.isEmpty || !row.isEmpty {
      row.append(String(decoding: field, as: UTF8.self))
      rows.append(row)
    }
    return rows
  }
}

/// Collects output in a large byte buffer and hands it to a `FileHandle` in chunks of a few MiB.
struct ChunkedWriter {
  static let chunkSize = 4 << 20

  private let handle: FileHandle
  var buffer: [UInt8] = []
  private(set) var bytesWritten = 0

  init(path: String) throws {
    guard FileManager.default.createFile(atPath: path, contents: nil),
      let handle = FileHandle(forWritingAtPath: path)
    else { throw GeneratorError.cannotWrite(path) }
    self.handle = handle
    buffer.reserveCapacity(ChunkedWriter.chunkSize + 4096)
  }

  mutating func append(_ text: String) { buffer.append(contentsOf: text.utf8) }

  /// Writes the buffer out once it holds a chunk's worth of bytes.
  mutating func flushIfFull() throws {
    if buffer.count >= ChunkedWriter.chunkSize { try flush() }
  }

  mutating func flush() throws {
    guard !buffer.isEmpty else { return }
    try buffer.withUnsafeBytes { try handle.write(contentsOf: $0) }
    bytesWritten += buffer.count
    buffer.removeAll(keepingCapacity: true)
  }

  mutating func close() throws {
    try flush()
    try handle.close()
  }
}

enum GeneratorError: Error, CustomStringConvertible {
  case cannotWrite(String)
  case usage(String)

  var description: String {
    switch self {
    case .cannotWrite(let path): return "cannot write \(path)"
    case .usage(let message): return message
    }
  }
}
