/// Compact JSON written as UTF-8 bytes, for the hot paths that encode one value after another (the stores'
/// event bodies and trait states). Appending to a `String` piece by piece spent most of its time in
/// `_StringGuts.append` growing and re-checking the string; bytes are appended with `memcpy` and turned into a
/// `String` once. The text is the same as `JSON.encode`'s for the same value and key order.
public struct JSONWriter {
  public var bytes: [UInt8] = []

  public init(capacity: Int = 64) {
    bytes.reserveCapacity(capacity)
  }

  /// The text written so far.
  public var text: String { String(decoding: bytes, as: UTF8.self) }

  /// Literal text, written as is (punctuation, keywords, pre-escaped keys).
  @inlinable public mutating func raw(_ s: StaticString) {
    s.withUTF8Buffer { bytes.append(contentsOf: $0) }
  }

  public mutating func int(_ i: Int64) {
    if i < 0 { bytes.append(UInt8(ascii: "-")) }
    var magnitude = i.magnitude
    if magnitude < 10 {
      bytes.append(UInt8(ascii: "0") + UInt8(magnitude))
      return
    }
    // At most 20 digits; written backwards into a fixed buffer, then copied.
    withUnsafeTemporaryAllocation(of: UInt8.self, capacity: 20) { digits in
      var n = 20
      while magnitude > 0 {
        n -= 1
        digits[n] = UInt8(ascii: "0") + UInt8(magnitude % 10)
        magnitude /= 10
      }
      bytes.append(contentsOf: UnsafeBufferPointer(rebasing: digits[n...]))
    }
  }

  /// A finite double as `JSON.encode` spells it (a whole number keeps `.0`), `null` otherwise.
  public mutating func double(_ d: Double) {
    guard d.isFinite else { return raw("null") }
    if d == d.rounded() && abs(d) < 1e15 {
      int(Int64(d))
      raw(".0")
    } else {
      bytes.append(contentsOf: String(d).utf8)
    }
  }

  /// A quoted, escaped string: `"`, `\`, and control characters escaped; everything else (UTF-8 included)
  /// copied byte for byte.
  public mutating func string(_ s: String) {
    var s = s
    s.withUTF8 { string(utf8: $0) }
  }

  /// A string given as its UTF-8 bytes, quoted and escaped as `string(_:)` does.
  public mutating func string(utf8: UnsafeBufferPointer<UInt8>) {
    bytes.append(UInt8(ascii: "\""))
    var clean = true
    for b in utf8 where b < 0x20 || b == 0x22 || b == 0x5C {
      clean = false
      break
    }
    if clean {
      bytes.append(contentsOf: utf8)
    } else {
      for b in utf8 {
        switch b {
        case 0x22: raw("\\\"")
        case 0x5C: raw("\\\\")
        case 0x0A: raw("\\n")
        case 0x0D: raw("\\r")
        case 0x09: raw("\\t")
        case ..<0x20:
          raw("\\u00")
          bytes.append(Self.hex[Int(b >> 4)])
          bytes.append(Self.hex[Int(b & 15)])
        default: bytes.append(b)
        }
      }
    }
    bytes.append(UInt8(ascii: "\""))
  }

  static let hex: [UInt8] = Array("0123456789abcdef".utf8)

  /// A value as `JSON.encode` writes it (map keys sorted, timestamps and durations as strings).
  public mutating func value(_ v: Value) {
    switch v {
    case .null: raw("null")
    case .bool(let b): b ? raw("true") : raw("false")
    case .int(let i): int(i)
    case .double(let d): double(d)
    case .string(let s): string(s)
    case .timestamp(let t): string(t.iso8601)
    case .duration(let d): string(d.description)
    case .list(let l):
      raw("[")
      for (i, x) in l.enumerated() {
        if i > 0 { raw(",") }
        value(x)
      }
      raw("]")
    case .map(let m):
      raw("{")
      for (i, k) in m.keys.sorted().enumerated() {
        if i > 0 { raw(",") }
        string(k)
        raw(":")
        value(m[k] ?? .null)
      }
      raw("}")
    }
  }
}
