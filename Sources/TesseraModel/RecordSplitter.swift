/// Cuts a byte stream into records at line ends; for CSV, line ends inside quotes belong to the field.
/// Blank lines are not records. Each record keeps the number of the line it starts on.
public struct RecordSplitter: Sendable {
  public struct Record: Sendable {
    public var bytes: ArraySlice<UInt8>
    public var line: Int
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

  public init(csv: Bool, delimiter: UInt8 = UInt8(ascii: ",")) {
    self.csv = csv
    self.delimiter = delimiter
  }

  public mutating func feed(_ chunk: [UInt8], final: Bool) -> [Record] {
    // The carried bytes are appended to in place, never copied: a record spanning many chunks (a quote never
    // closed) costs time in proportion to its length, not to its square.
    var buf = carry
    carry = []
    buf.append(contentsOf: chunk)
    var out: [Record] = []
    var start = 0
    var recordLine = carryLine
    var inside = carryNewlines
    var i = buf.count - chunk.count
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
      // No record ended in this chunk: the whole buffer is the carry. Else what follows the last record end
      // came with this chunk, and is at most its length.
      carry = start == 0 ? buf : Array(buf[start...])
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
