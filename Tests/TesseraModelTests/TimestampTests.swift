import Foundation
import Testing

@testable import TesseraModel

@Suite("Timestamp ISO 8601")
struct TimestampTests {
  /// 2024-05-01T00:00:00Z in seconds since the epoch.
  static let may1: Int64 = 1_714_521_600

  @Test("a date alone is midnight UTC")
  func dateOnly() throws {
    let t = try #require(Timestamp(iso8601: "2024-05-01"))
    #expect(t.microseconds == Self.may1 * 1_000_000)
    #expect(t.iso8601 == "2024-05-01T00:00:00Z")
  }

  @Test("the epoch and the day before it")
  func epochAndBefore() throws {
    #expect(Timestamp(iso8601: "1970-01-01")?.microseconds == 0)
    #expect(Timestamp(iso8601: "1969-12-31T23:59:59Z")?.microseconds == -1_000_000)
    #expect(Timestamp(microseconds: 0).iso8601 == "1970-01-01T00:00:00Z")
    #expect(Timestamp(microseconds: -1).iso8601 == "1969-12-31T23:59:59.999999Z")
    #expect(Timestamp(microseconds: -86_400_000_000).iso8601 == "1969-12-31T00:00:00Z")
  }

  @Test(
    "dates with times, fractions and offsets",
    arguments: [
      ("2024-05-01T10:20:30Z", may1 + 37_230, Int64(0)),
      ("2024-05-01t10:20:30z", may1 + 37_230, 0),
      ("2024-05-01 10:20:30", may1 + 37_230, 0),
      ("2024-05-01T10:20Z", may1 + 37_200, 0),
      ("2024-05-01T10:20", may1 + 37_200, 0),
      ("2024-05-01T10:20:30.5Z", may1 + 37_230, 500_000),
      ("2024-05-01T10:20:30,25Z", may1 + 37_230, 250_000),
      ("2024-05-01T10:20:30.123456Z", may1 + 37_230, 123_456),
      ("2024-05-01T10:20:30.1234569Z", may1 + 37_230, 123_456),
      ("2024-05-01 10:20:30.123+02:00", may1 + 37_230 - 7_200, 123_000),
      ("2024-05-01T10:20:30-05:30", may1 + 37_230 + 19_800, 0),
      ("2024-05-01T10:20:30+0200", may1 + 37_230 - 7_200, 0),
      ("2024-05-01T10:20:30+02", may1 + 37_230 - 7_200, 0),
      ("2024-05-01T00:30:00+01:00", may1 - 1_800, 0),
    ])
  func parsesTimes(text: String, seconds: Int64, micros: Int64) throws {
    let t = try #require(Timestamp(iso8601: text))
    #expect(t.microseconds == seconds * 1_000_000 + micros)
  }

  @Test("leap days exist only in leap years")
  func leapDays() {
    #expect(Timestamp(iso8601: "2024-02-29")?.iso8601 == "2024-02-29T00:00:00Z")
    #expect(Timestamp(iso8601: "2000-02-29")?.iso8601 == "2000-02-29T00:00:00Z")
    #expect(Timestamp(iso8601: "2023-02-29") == nil)
    #expect(Timestamp(iso8601: "1900-02-29") == nil)
  }

  @Test(
    "invalid dates, times and garbage are rejected",
    arguments: [
      "", "garbage", "2024", "2024-05", "2024-5-1", "2024-02-30", "2024-13-01", "2024-00-10", "2024-04-31",
      "2024-05-00", "2024-05-32", "2024-05-01T", "2024-05-01T10", "2024-05-01T1:20", "2024-05-01T24:00:00Z",
      "2024-05-01T10:60:00Z", "2024-05-01T10:20:61Z", "2024-05-01T10:20:30.Z", "2024-05-01T10:20:30Zjunk",
      "2024-05-01T10:20:30+", "2024-05-01T10:20:30+2", "2024-05-01T10:20:30+02:", "2024-05-01T10:20:30+021",
      "2024-05-01T10:20:30+25:00", "2024-05-01T10:20:30+02:60", " 2024-05-01", "2024-05-01 ", "2024-05-01X10:20",
      "２０２４-05-01",
    ])
  func rejectsInvalid(text: String) {
    #expect(Timestamp(iso8601: text) == nil)
  }

  @Test("formats fractional seconds with six digits")
  func formatsFractions() throws {
    let t = try #require(Timestamp(iso8601: "2024-05-01T10:20:30.5Z"))
    #expect(t.iso8601 == "2024-05-01T10:20:30.500000Z")
    #expect(Timestamp(microseconds: 1).iso8601 == "1970-01-01T00:00:00.000001Z")
  }

  @Test("an offset is folded into UTC when formatting")
  func offsetsFormatAsUTC() throws {
    let t = try #require(Timestamp(iso8601: "2024-01-01T01:30:00+02:00"))
    #expect(t.iso8601 == "2023-12-31T23:30:00Z")
  }

  @Test("formatting and parsing round-trip and agree with Foundation's calendar")
  func roundTripAgainstFoundation() throws {
    var rng = SplitMix64(seed: 0x7E55_E4A0)
    var calendar = Calendar(identifier: .gregorian)
    calendar.timeZone = try #require(TimeZone(identifier: "UTC"))
    // Years 1600 through 9999 (Foundation's Gregorian calendar switches to Julian dates before 1582).
    let lo: Int64 = -11_676_096_000_000_000
    let hi: Int64 = 253_402_300_799_999_999
    for _ in 0..<3_000 {
      let micros = Int64.random(in: lo...hi, using: &rng)
      let t = Timestamp(microseconds: micros)
      let text = t.iso8601
      #expect(Timestamp(iso8601: text) == t, "\(text)")
      let parts = calendar.dateComponents([.year, .month, .day, .hour, .minute, .second], from: t.date)
      let y = try #require(parts.year)
      let expectedPrefix = String(format: "%04d-%02d-%02dT", y, parts.month ?? 0, parts.day ?? 0)
      #expect(text.hasPrefix(expectedPrefix), "\(text) vs \(expectedPrefix)")
    }
  }

  @Test("formatting never overflows at the extremes of the range")
  func extremesDoNotTrap() {
    #expect(Timestamp(microseconds: .min).iso8601.hasSuffix("Z"))
    #expect(Timestamp(microseconds: .max).iso8601.hasSuffix("Z"))
    #expect(Timestamp(microseconds: -9_223_372_036_854_000_000).iso8601.hasSuffix("Z"))
  }

  @Test("arithmetic with spans and other timestamps")
  func arithmetic() throws {
    let t = try #require(Timestamp(iso8601: "2024-05-01T00:00:00Z"))
    let day = TimeSpan(microseconds: 86_400_000_000)
    #expect((t + day).iso8601 == "2024-05-02T00:00:00Z")
    #expect((t - day).iso8601 == "2024-04-30T00:00:00Z")
    #expect(t - (t - day) == day)
    #expect(t - day < t)
    #expect(Timestamp(seconds: 1.5).microseconds == 1_500_000)
    #expect(Timestamp(seconds: 1.5).seconds == 1.5)
  }

  /// The byte-by-byte formatting gives what Foundation's formatter gives, with microseconds when there are
  /// any, over years 1600–9999 (Foundation's calendar is Julian before 1582; ours is proleptic Gregorian), seeded
  /// so that a failure repeats.
  @Test("iso8601 agrees with Foundation's formatter")
  func formattingAgreesWithFoundation() {
    let f = ISO8601DateFormatter()
    f.timeZone = TimeZone(identifier: "UTC")
    f.formatOptions = [.withInternetDateTime]
    var state: UInt64 = 0x9E37_79B9_7F4A_7C15
    let low: Int64 = -11_676_096_000  // 1600-01-01T00:00:00Z
    let high: Int64 = 253_402_300_799  // 9999-12-31T23:59:59Z
    for n in 0..<20_000 {
      state = state &* 6_364_136_223_846_793_005 &+ 1_442_695_040_888_963_407
      let secs = low + Int64(bitPattern: state >> 1) % (high - low)
      let micros: Int64 = n % 2 == 0 ? 0 : Int64(bitPattern: (state >> 20) % 1_000_000)
      let t = Timestamp(microseconds: secs * 1_000_000 + micros)
      let whole = f.string(from: Date(timeIntervalSince1970: TimeInterval(secs)))
      let expected = micros == 0 ? whole : String(whole.dropLast()) + "." + String(format: "%06d", micros) + "Z"
      #expect(t.iso8601 == expected)
      if t.iso8601 != expected { return }
    }
  }
}
