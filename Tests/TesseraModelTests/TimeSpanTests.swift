import Testing

@testable import TesseraModel

@Suite("TimeSpan")
struct TimeSpanTests {
  static let second: Int64 = 1_000_000
  static let minute: Int64 = 60 * second
  static let hour: Int64 = 60 * minute
  static let day: Int64 = 24 * hour

  @Test(
    "parses units and sums of units",
    arguments: [
      ("90d", 90 * day), ("24h", 24 * hour), ("5m", 5 * minute), ("30s", 30 * second), ("250ms", 250_000),
      ("2w", 14 * day), ("100us", 100), ("1h30m", hour + 30 * minute), ("1d12h", day + 12 * hour),
      ("1m1s1ms1us", minute + second + 1_001), ("0s", 0), ("-5m", -5 * minute), ("-1h30m", -(hour + 30 * minute)),
      ("007s", 7 * second),
    ])
  func parses(text: String, micros: Int64) throws {
    let span = try #require(TimeSpan(parsing: text))
    #expect(span.microseconds == micros)
  }

  @Test(
    "rejects bare numbers, unknown units and malformed text",
    arguments: [
      "5x", "d", "", "10", "-", "-d", "1.5h", "5M", "5 m", " 5m", "5m ", "1h-30m", "h1", "5mm", "5min",
      "99999999999999999999s", "9999999999999w", "9223372036854775807d",
    ])
  func rejects(text: String) {
    #expect(TimeSpan(parsing: text) == nil)
  }

  @Test(
    "describes itself in the largest units, weeks as days",
    arguments: [
      (90 * day, "90d"), (hour + 30 * minute, "1h30m"), (250_000, "250ms"), (14 * day, "14d"), (0, "0s"),
      (-5 * minute, "-5m"), (day + 1, "1d1us"), (61 * second, "1m1s"), (1_500, "1ms500us"),
    ])
  func describes(micros: Int64, text: String) {
    #expect(TimeSpan(microseconds: micros).description == text)
  }

  @Test("description of the most negative span does not trap")
  func mostNegativeDescription() {
    #expect(TimeSpan(microseconds: .min).description == "-106751991d4h54s775ms808us")
    #expect(TimeSpan(microseconds: .max).description == "106751991d4h54s775ms807us")
  }

  @Test("descriptions parse back to the same span")
  func descriptionRoundTrip() throws {
    var rng = SplitMix64(seed: 42)
    for _ in 0..<2_000 {
      let micros = Int64.random(in: -(1 << 50)...(1 << 50), using: &rng)
      let span = TimeSpan(microseconds: micros)
      let parsed = try #require(TimeSpan(parsing: span.description), "\(span.description)")
      #expect(parsed == span)
    }
  }

  @Test("seconds and ordering")
  func secondsAndOrdering() {
    #expect(TimeSpan(seconds: 1.25).microseconds == 1_250_000)
    #expect(TimeSpan(microseconds: 2_500_000).seconds == 2.5)
  }

  @Test("spans order by length")
  func ordering() throws {
    let short = try #require(TimeSpan(parsing: "59m"))
    let long = try #require(TimeSpan(parsing: "1h"))
    #expect(short < long)
    #expect(TimeSpan(parsing: "60m") == long)
  }
}
