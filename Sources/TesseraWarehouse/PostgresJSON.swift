import NIOCore
import PostgresNIO
import TesseraModel

/// Writes a column PostgreSQL sent in its binary format as the JSON `row_to_json` would give it, and a cursor
/// column's value as the text `::text` would give it (with the type's name, as `pg_typeof` says it). Times are
/// written in UTC (`+00:00`), whatever the session's time zone: the same instants.
enum PostgresJSON {
  /// Whether `write` can write this cell (else the query asks for it as `to_json(…)`).
  static func writes(_ cell: PostgresCell) -> Bool {
    cell.format == .binary && written.contains(cell.dataType.rawValue)
  }

  static let written: Set<UInt32> = [16, 19, 20, 21, 23, 25, 114, 700, 701, 1042, 1043, 1082, 1114, 1184, 2950, 3802]

  /// The cursor types printed here, with their names.
  static let cursorTypes: [UInt32: String] = [
    20: "bigint", 21: "smallint", 23: "integer", 25: "text", 1043: "character varying", 1082: "date",
    1114: "timestamp without time zone", 1184: "timestamp with time zone",
  ]

  static func write(_ cell: PostgresCell, to json: inout JSONWriter) {
    guard var buffer = cell.bytes else { return json.raw("null") }
    switch cell.dataType.rawValue {
    case 16: buffer.readInteger(as: UInt8.self) == 0 ? json.raw("false") : json.raw("true")
    case 21: json.int(Int64(buffer.readInteger(as: Int16.self) ?? 0))
    case 23: json.int(Int64(buffer.readInteger(as: Int32.self) ?? 0))
    case 20: json.int(buffer.readInteger(as: Int64.self) ?? 0)
    case 700:
      let f = Float(bitPattern: buffer.readInteger(as: UInt32.self) ?? 0)
      number(Double(f), String(f), whole: 1e6, &json)
    case 701:
      let d = Double(bitPattern: buffer.readInteger(as: UInt64.self) ?? 0)
      number(d, String(d), whole: 1e15, &json)
    case 114: buffer.withUnsafeReadableBytes { json.bytes.append(contentsOf: $0) }
    case 3802:
      // jsonb: a version byte (1), then the text.
      buffer.moveReaderIndex(forwardBy: 1)
      buffer.withUnsafeReadableBytes { json.bytes.append(contentsOf: $0) }
    // Dates and times are digits and punctuation: quoted, nothing to escape.
    case 1082:
      json.raw("\"")
      date(buffer.readInteger(as: Int32.self) ?? 0, into: &json.bytes)
      json.raw("\"")
    case 1114, 1184:
      json.raw("\"")
      let us = buffer.readInteger(as: Int64.self) ?? 0
      timestamp(us, zone: cell.dataType.rawValue == 1184, iso: true, into: &json.bytes)
      json.raw("\"")
    case 2950: json.string(uuid(buffer))
    default:
      buffer.withUnsafeReadableBytes { raw in
        raw.withMemoryRebound(to: UInt8.self) { json.string(utf8: $0) }
      }
    }
  }

  /// A float as PostgreSQL writes it in JSON: the shortest text that reads back as it (`text`, of the column's
  /// own precision), a whole number below `whole` (where PostgreSQL turns to an exponent: 10^15 for `float8`,
  /// 10^6 for `float4`) without `.0`, NaN and the infinities as strings.
  static func number(_ d: Double, _ text: @autoclosure () -> String, whole: Double, _ json: inout JSONWriter) {
    if d.isNaN { return json.string("NaN") }
    if d.isInfinite { return json.string(d < 0 ? "-Infinity" : "Infinity") }
    if d == d.rounded() && abs(d) < whole { return json.int(Int64(d)) }
    json.bytes.append(contentsOf: text().utf8)
  }

  /// The cursor's value as `::text` prints it, and its type's name; nil for a type not printed here.
  static func cursor(_ cell: PostgresCell) -> (text: String, type: String)? {
    guard cell.format == .binary, let type = cursorTypes[cell.dataType.rawValue], var buffer = cell.bytes else {
      return nil
    }
    let text: String
    switch cell.dataType.rawValue {
    case 21: text = String(buffer.readInteger(as: Int16.self) ?? 0)
    case 23: text = String(buffer.readInteger(as: Int32.self) ?? 0)
    case 20: text = String(buffer.readInteger(as: Int64.self) ?? 0)
    case 1082: text = date(buffer.readInteger(as: Int32.self) ?? 0)
    case 1114: text = timestamp(buffer.readInteger(as: Int64.self) ?? 0, zone: false, iso: false)
    case 1184: text = timestamp(buffer.readInteger(as: Int64.self) ?? 0, zone: true, iso: false)
    default: text = buffer.readString(length: buffer.readableBytes) ?? ""
    }
    return (text, type)
  }

  /// Days from 2000-01-01 (PostgreSQL's epoch) to 1970-01-01.
  static let epochDays: Int64 = 10_957

  static func date(_ days: Int32) -> String {
    var out: [UInt8] = []
    date(days, into: &out)
    return String(decoding: out, as: UTF8.self)
  }

  static func date(_ days: Int32, into out: inout [UInt8]) {
    if days == .max { return out.append(contentsOf: "infinity".utf8) }
    if days == .min { return out.append(contentsOf: "-infinity".utf8) }
    let bc = day(Int64(days) + epochDays, into: &out)
    if bc { out.append(contentsOf: " BC".utf8) }
  }

  /// Writes `YYYY-MM-DD`; true for a year before 1 (written as PostgreSQL does, `0001-01-01 BC` for year 0),
  /// whose ` BC` the caller writes last.
  static func day(_ days: Int64, into out: inout [UInt8]) -> Bool {
    let (y, m, d) = Timestamp.civilFromDays(days)
    digits(y > 0 ? y : 1 - y, 4, &out)
    out.append(UInt8(ascii: "-"))
    digits(m, 2, &out)
    out.append(UInt8(ascii: "-"))
    digits(d, 2, &out)
    return y <= 0
  }

  /// Microseconds from 2000-01-01 as `2026-01-01T00:00:01.5+00:00` (JSON) or `2026-01-01 00:00:01.5+00`
  /// (`::text`); `zone` for `timestamptz`. Written byte by byte: a table read prints one or two per row.
  static func timestamp(_ us: Int64, zone: Bool, iso: Bool) -> String {
    var out: [UInt8] = []
    out.reserveCapacity(32)
    timestamp(us, zone: zone, iso: iso, into: &out)
    return String(decoding: out, as: UTF8.self)
  }

  static func timestamp(_ us: Int64, zone: Bool, iso: Bool, into out: inout [UInt8]) {
    if us == .max { return out.append(contentsOf: "infinity".utf8) }
    if us == .min { return out.append(contentsOf: "-infinity".utf8) }
    let r = us % 1_000_000
    let secs = us / 1_000_000 - (r < 0 ? 1 : 0)
    var frac = r < 0 ? r + 1_000_000 : r
    let days = secs >= 0 ? secs / 86_400 : (secs - 86_399) / 86_400
    let rem = secs - days * 86_400
    let bc = day(days + epochDays, into: &out)
    out.append(UInt8(ascii: iso ? "T" : " "))
    digits(rem / 3600, 2, &out)
    out.append(UInt8(ascii: ":"))
    digits(rem / 60 % 60, 2, &out)
    out.append(UInt8(ascii: ":"))
    digits(rem % 60, 2, &out)
    if frac != 0 {
      var width = 6
      while frac % 10 == 0 {
        frac /= 10
        width -= 1
      }
      out.append(UInt8(ascii: "."))
      digits(frac, width, &out)
    }
    if zone { out.append(contentsOf: iso ? "+00:00".utf8 : "+00".utf8) }
    if bc { out.append(contentsOf: " BC".utf8) }
  }

  /// `v` (not negative) in decimal, zero-padded to at least `width` digits.
  static func digits(_ v: Int64, _ width: Int, _ out: inout [UInt8]) {
    var v = v
    var n = 0
    withUnsafeTemporaryAllocation(of: UInt8.self, capacity: 20) { buf in
      repeat {
        buf[19 - n] = UInt8(ascii: "0") + UInt8(v % 10)
        v /= 10
        n += 1
      } while v > 0 && n < 20
      while n < width && n < 20 {
        buf[19 - n] = UInt8(ascii: "0")
        n += 1
      }
      out.append(contentsOf: UnsafeBufferPointer(rebasing: buf[(20 - n)...]))
    }
  }

  static func uuid(_ buffer: ByteBuffer) -> String {
    let hex = Array("0123456789abcdef".utf8)
    var out: [UInt8] = []
    out.reserveCapacity(36)
    for (i, b) in buffer.readableBytesView.enumerated() {
      if i == 4 || i == 6 || i == 8 || i == 10 { out.append(UInt8(ascii: "-")) }
      out.append(hex[Int(b >> 4)])
      out.append(hex[Int(b & 15)])
    }
    return String(decoding: out, as: UTF8.self)
  }
}
