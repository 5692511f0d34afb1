import Foundation

/// A point in time with microsecond precision (UTC, microseconds since the Unix epoch).
public struct Timestamp: Sendable, Hashable, Comparable {
  public var microseconds: Int64

  public init(microseconds: Int64) { self.microseconds = microseconds }
  public init(seconds: Double) { self.microseconds = Int64((seconds * 1_000_000).rounded()) }
  public init(_ date: Date) { self.init(seconds: date.timeIntervalSince1970) }

  public var date: Date { Date(timeIntervalSince1970: Double(microseconds) / 1_000_000) }
  public var seconds: Double { Double(microseconds) / 1_000_000 }

  public static func < (a: Timestamp, b: Timestamp) -> Bool { a.microseconds < b.microseconds }
  public static func + (a: Timestamp, b: TimeSpan) -> Timestamp {
    Timestamp(microseconds: a.microseconds &+ b.microseconds)
  }
  public static func - (a: Timestamp, b: TimeSpan) -> Timestamp {
    Timestamp(microseconds: a.microseconds &- b.microseconds)
  }
  public static func - (a: Timestamp, b: Timestamp) -> TimeSpan {
    TimeSpan(microseconds: a.microseconds &- b.microseconds)
  }

  /// Parses ISO 8601 / RFC 3339: `2024-05-01`, `2024-05-01T10:20:30Z`, `2024-05-01 10:20:30.123+02:00`.
  /// A date and time without an offset is read as UTC. Returns nil on anything else.
  public init?(iso8601 text: some StringProtocol) {
    var p = DigitScanner(Array(text.utf8))
    guard let year = p.digits(4), p.expect(UInt8(ascii: "-")), let month = p.digits(2),
      p.expect(UInt8(ascii: "-")), let day = p.digits(2),
      (1...12).contains(month), day >= 1, day <= Timestamp.daysIn(month: month, year: year)
    else { return nil }
    var seconds = Timestamp.daysFromCivil(year: year, month: month, day: day) * 86_400
    var micros: Int64 = 0
    if p.atEnd {
      self.microseconds = seconds * 1_000_000
      return
    }
    guard p.expect(UInt8(ascii: "T")) || p.expect(UInt8(ascii: "t")) || p.expect(UInt8(ascii: " ")),
      let hour = p.digits(2), p.expect(UInt8(ascii: ":")), let minute = p.digits(2),
      hour < 24, minute < 60
    else { return nil }
    var second: Int64 = 0
    if p.expect(UInt8(ascii: ":")) {
      guard let s = p.digits(2), s <= 60 else { return nil }
      second = s
      if p.expect(UInt8(ascii: ".")) || p.expect(UInt8(ascii: ",")) {
        var scale: Int64 = 100_000
        var any = false
        while let d = p.digit() {
          any = true
          micros += d * scale
          scale /= 10
        }
        guard any else { return nil }
      }
    }
    seconds += hour * 3600 + minute * 60 + second
    if p.expect(UInt8(ascii: "Z")) || p.expect(UInt8(ascii: "z")) {
    } else if let sign = p.peek, sign == UInt8(ascii: "+") || sign == UInt8(ascii: "-") {
      p.advance()
      guard let oh = p.digits(2) else { return nil }
      var om: Int64 = 0
      if p.expect(UInt8(ascii: ":")) || !p.atEnd {
        guard let m = p.digits(2) else { return nil }
        om = m
      }
      guard oh < 24, om < 60 else { return nil }
      let offset = oh * 3600 + om * 60
      seconds += sign == UInt8(ascii: "+") ? -offset : offset
    }
    guard p.atEnd else { return nil }
    self.microseconds = seconds * 1_000_000 + micros
  }

  /// `2024-05-01T10:20:30Z`, with `.ffffff` when there are fractional seconds.
  public var iso8601: String {
    // Floor division without overflow near Int64.min.
    let r = microseconds % 1_000_000
    let secs = microseconds / 1_000_000 - (r < 0 ? 1 : 0)
    let frac = r < 0 ? r + 1_000_000 : r
    let days = secs >= 0 ? secs / 86_400 : (secs - 86_399) / 86_400
    let rem = secs - days * 86_400
    let (y, m, d) = Timestamp.civilFromDays(days)
    if (0...9999).contains(y) {
      // Written byte by byte: this text is in every trait explanation and stored timestamp, and the
      // interpolated form below made eight strings per call.
      let length = frac != 0 ? 27 : 20
      return String(unsafeUninitializedCapacity: length) { buf in
        func put(_ v: Int64, _ n: Int, at i: Int) {
          var v = v
          for k in stride(from: i + n - 1, through: i, by: -1) {
            buf[k] = UInt8(truncatingIfNeeded: 48 + v % 10)
            v /= 10
          }
        }
        put(y, 4, at: 0)
        buf[4] = UInt8(ascii: "-")
        put(m, 2, at: 5)
        buf[7] = UInt8(ascii: "-")
        put(d, 2, at: 8)
        buf[10] = UInt8(ascii: "T")
        put(rem / 3600, 2, at: 11)
        buf[13] = UInt8(ascii: ":")
        put(rem / 60 % 60, 2, at: 14)
        buf[16] = UInt8(ascii: ":")
        put(rem % 60, 2, at: 17)
        if frac != 0 {
          buf[19] = UInt8(ascii: ".")
          put(frac, 6, at: 20)
        }
        buf[length - 1] = UInt8(ascii: "Z")
        return length
      }
    }
    func pad(_ v: Int64, _ n: Int) -> String {
      let s = String(v)
      return String(repeating: "0", count: max(0, n - s.count)) + s
    }
    var out =
      "\(pad(y, 4))-\(pad(m, 2))-\(pad(d, 2))T\(pad(rem / 3600, 2)):\(pad(rem / 60 % 60, 2)):\(pad(rem % 60, 2))"
    if frac != 0 { out += "." + pad(frac, 6) }
    return out + "Z"
  }

  static func isLeap(_ y: Int64) -> Bool { (y % 4 == 0 && y % 100 != 0) || y % 400 == 0 }
  static func daysIn(month: Int64, year: Int64) -> Int64 {
    switch month {
    case 2: return isLeap(year) ? 29 : 28
    case 4, 6, 9, 11: return 30
    default: return 31
    }
  }

  /// Days since 1970-01-01 of a proleptic Gregorian date (Howard Hinnant's algorithm).
  static func daysFromCivil(year: Int64, month: Int64, day: Int64) -> Int64 {
    let y = month <= 2 ? year - 1 : year
    let era = (y >= 0 ? y : y - 399) / 400
    let yoe = y - era * 400
    let mp = (month + 9) % 12
    let doy = (153 * mp + 2) / 5 + day - 1
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy
    return era * 146_097 + doe - 719_468
  }

  /// The proleptic Gregorian year, month and day of the day `z0` days after 1970-01-01.
  public static func civilFromDays(_ z0: Int64) -> (Int64, Int64, Int64) {
    let z = z0 + 719_468
    let era = (z >= 0 ? z : z - 146_096) / 146_097
    let doe = z - era * 146_097
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100)
    let mp = (5 * doy + 2) / 153
    let d = doy - (153 * mp + 2) / 5 + 1
    let m = mp < 10 ? mp + 3 : mp - 9
    return (yoe + era * 400 + (m <= 2 ? 1 : 0), m, d)
  }
}

/// A length of time with microsecond precision, written in configuration as `90d`, `24h`, `5m`, `30s`,
/// `250ms`, `2w` or a sum of them (`1h30m`).
public struct TimeSpan: Sendable, Hashable, Comparable, CustomStringConvertible {
  public var microseconds: Int64
  public init(microseconds: Int64) { self.microseconds = microseconds }
  public init(seconds: Double) { self.microseconds = Int64((seconds * 1_000_000).rounded()) }

  public var seconds: Double { Double(microseconds) / 1_000_000 }
  public static func < (a: TimeSpan, b: TimeSpan) -> Bool { a.microseconds < b.microseconds }

  static let units: [(String, Int64)] = [
    ("w", 604_800_000_000), ("d", 86_400_000_000), ("h", 3_600_000_000), ("ms", 1000),
    ("m", 60_000_000), ("s", 1_000_000), ("us", 1),
  ]

  /// Parses `90d`, `1h30m`, `250ms`. Returns nil for anything else (including a bare number).
  public init?(parsing text: some StringProtocol) {
    let bytes = Array(text.utf8)
    guard !bytes.isEmpty else { return nil }
    var i = 0
    var total: Int64 = 0
    var negative = false
    if bytes[0] == UInt8(ascii: "-") {
      negative = true
      i = 1
    }
    var sawPart = false
    while i < bytes.count {
      var n: Int64 = 0
      let start = i
      while i < bytes.count, bytes[i] >= 48, bytes[i] <= 57 {
        let (m, o1) = n.multipliedReportingOverflow(by: 10)
        let (a, o2) = m.addingReportingOverflow(Int64(bytes[i] - 48))
        if o1 || o2 { return nil }
        n = a
        i += 1
      }
      guard i > start else { return nil }
      let unitStart = i
      while i < bytes.count, bytes[i] >= UInt8(ascii: "a"), bytes[i] <= UInt8(ascii: "z") { i += 1 }
      let unit = String(decoding: bytes[unitStart..<i], as: UTF8.self)
      guard let factor = TimeSpan.units.first(where: { $0.0 == unit })?.1 else { return nil }
      let (v, o) = n.multipliedReportingOverflow(by: factor)
      if o { return nil }
      let (t, o2) = total.addingReportingOverflow(v)
      if o2 { return nil }
      total = t
      sawPart = true
    }
    guard sawPart else { return nil }
    self.microseconds = negative ? -total : total
  }

  public var description: String {
    if microseconds == 0 { return "0s" }
    var rest = microseconds.magnitude
    var out = microseconds < 0 ? "-" : ""
    for (name, factor) in [
      ("d", UInt64(86_400_000_000)), ("h", 3_600_000_000), ("m", 60_000_000), ("s", 1_000_000), ("ms", 1000),
      ("us", 1),
    ] where rest >= factor {
      out += "\(rest / factor)\(name)"
      rest %= factor
    }
    return out
  }
}

struct DigitScanner {
  let bytes: [UInt8]
  var index = 0
  init(_ bytes: [UInt8]) { self.bytes = bytes }
  var atEnd: Bool { index >= bytes.count }
  var peek: UInt8? { index < bytes.count ? bytes[index] : nil }
  mutating func advance() { index += 1 }
  mutating func expect(_ b: UInt8) -> Bool {
    if index < bytes.count, bytes[index] == b {
      index += 1
      return true
    }
    return false
  }
  mutating func digit() -> Int64? {
    guard index < bytes.count, bytes[index] >= 48, bytes[index] <= 57 else { return nil }
    defer { index += 1 }
    return Int64(bytes[index] - 48)
  }
  mutating func digits(_ n: Int) -> Int64? {
    var v: Int64 = 0
    for _ in 0..<n {
      guard let d = digit() else { return nil }
      v = v * 10 + d
    }
    return v
  }
}
