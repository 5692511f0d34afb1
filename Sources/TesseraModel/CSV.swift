import Foundation

/// RFC 4180 fields: quoted fields may hold delimiters, newlines and doubled quotes.
public enum CSV {
  /// A field as written: quoted (quotes doubled) when it holds a comma, a quote or a line break.
  public static func quote(_ s: String) -> String {
    guard s.contains(where: { $0 == "," || $0 == "\"" || $0 == "\n" || $0 == "\r" }) else { return s }
    return "\"" + s.replacingOccurrences(of: "\"", with: "\"\"") + "\""
  }

  /// The names of a header record: each field trimmed of spaces and tabs, a byte order mark before the first
  /// removed (spreadsheet exports).
  public static func header(_ record: ArraySlice<UInt8>, delimiter: UInt8) -> [String] {
    let names = record.withUnsafeBufferPointer { fields($0, delimiter: delimiter) }
    return names.enumerated().map { i, name in
      var n = name.trimmingCharacters(in: .whitespaces)
      if i == 0, n.hasPrefix("\u{FEFF}") { n.removeFirst() }
      return n
    }
  }

  public static func fields(_ bytes: UnsafeBufferPointer<UInt8>, delimiter: UInt8) -> [String] {
    var out: [String] = []
    var i = 0
    let n = bytes.count
    var end = n
    while end > 0, bytes[end - 1] == 0x0D || bytes[end - 1] == 0x0A { end -= 1 }
    if end == 0 { return [""] }
    while i <= end {
      if i < end, bytes[i] == 0x22 {
        var field: [UInt8] = []
        i += 1
        while i < end {
          if bytes[i] == 0x22 {
            if i + 1 < end, bytes[i + 1] == 0x22 {
              field.append(0x22)
              i += 2
              continue
            }
            i += 1
            break
          }
          field.append(bytes[i])
          i += 1
        }
        // Anything between the closing quote and the delimiter is kept, as most readers do.
        while i < end, bytes[i] != delimiter {
          field.append(bytes[i])
          i += 1
        }
        out.append(String(decoding: field, as: UTF8.self))
      } else {
        let start = i
        while i < end, bytes[i] != delimiter { i += 1 }
        out.append(String(decoding: UnsafeBufferPointer(rebasing: bytes[start..<i]), as: UTF8.self))
      }
      i += 1  // past the delimiter (or past the end)
    }
    return out
  }
}
