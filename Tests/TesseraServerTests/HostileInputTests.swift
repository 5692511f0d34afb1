import Foundation
import TesseraFuzz
import Testing

/// Seeded fuzzing with small counts, so CI runs it on every change: the tracking API, the record readers, the
/// compiler and the record formats under mutated input (`Tests/TesseraFuzz`). The million-input runs are
/// `tessera-fuzz` in the Benchmarks package (docs/BENCHMARKS.md); a failure here names the seed and input,
/// which `tessera-fuzz TARGET --seed S --first N --count 1` makes again.
@Suite("Hostile input")
struct HostileInputTests {
  static let seed: UInt64 = 0x7E55_E4A2_2022

  static func scratch() -> String {
    FileManager.default.temporaryDirectory.appendingPathComponent("tessera-fuzz-\(UUID().uuidString)").path
  }

  @Test("mutated SDK requests get 200, 400, 401, 413 or 415 with JSON, and the store holds what 200s said")
  func trackingAPI() async throws {
    let dir = Self.scratch()
    defer { try? FileManager.default.removeItem(atPath: dir) }
    let report = try await TrackingFuzz.run(
      seed: Self.seed, first: 0, count: 1_000, clients: 4, fixtures: Paths.sdkFixtures, dir: dir)
    #expect(report.failures.isEmpty, "\(report)")
    #expect(report.inputs == 1_000)
    // The generator reaches every kind of answer, so the check is not vacuous.
    for outcome in ["200", "400 malformed_json", "401 unauthorized", "413 request_too_large"] {
      #expect(report.outcomes[outcome, default: 0] > 0, "no `\(outcome)` in \(report)")
    }
    #expect(report.outcomes["events stored", default: 0] > 500, "\(report)")
    #expect(report.outcomes["messages rejected", default: 0] > 100, "\(report)")
  }

  @Test("mutated CSV and NDJSON files: every record stored, a duplicate, or rejected with file:line: reason")
  func recordFiles() async throws {
    let dir = Self.scratch()
    defer { try? FileManager.default.removeItem(atPath: dir) }
    let report = try await FileFuzz.run(
      seed: Self.seed, first: 0, count: 6, records: 100, root: Paths.packageRoot, dir: dir)
    #expect(report.failures.isEmpty, "\(report)")
    #expect(report.inputs > 1_500)
    #expect(report.outcomes["records stored", default: 0] > 500, "\(report)")
    #expect(report.outcomes["records rejected", default: 0] > 100, "\(report)")
  }

  @Test("mutated pipelines compile to a plan or to diagnostics inside their files, in bounded time")
  func compiler() throws {
    let report = try YAMLFuzz.run(seed: Self.seed, first: 0, count: 250, root: Paths.packageRoot)
    #expect(report.failures.isEmpty, "\(report)")
    #expect(report.outcomes["errors", default: 0] > 50, "\(report)")
    #expect(report.outcomes["compiled", default: 0] > 3, "\(report)")
  }

  @Test("mutated JSON and CSV: parsed values round-trip, records do not depend on chunk ends")
  func formats() throws {
    let report = try FormatFuzz.run(seed: Self.seed, first: 0, count: 2_000, root: Paths.packageRoot)
    #expect(report.failures.isEmpty, "\(report)")
    #expect(report.outcomes["json parsed", default: 0] > 100, "\(report)")
    #expect(report.outcomes["json refused", default: 0] > 100, "\(report)")
  }

  // Bugs the fuzzing found, each as the request that showed it.

  /// `"\uD800\u0000"` (a high surrogate, then an escape that is not its low half) overflowed the JSON reader's
  /// code point arithmetic and trapped: one message stopped the server, and every client with it.
  @Test("a broken surrogate pair is read as U+FFFD; the server stays up")
  func brokenSurrogatePair() async throws {
    let h = try await Harness.start()
    let answer = try await h.track(
      #"{"batch":[{"type":"identify","messageId":"s-1","userId":"u\uD800\u0041","traits":{"plan":"\uDC00"}}]}"#)
    #expect(answer.status == 200, "\(answer.text)")
    #expect(answer["stored"] == .int(1))
    let profile = try await h.admin(.GET, "/v1/profiles?identifier=user_id:u%EF%BF%BDA")
    #expect(profile.status == 200, "\(profile.text)")
    #expect(profile["traits.plan.value"] == .string("\u{FFFD}"))
    #expect(try await h.request(.GET, "/health").status == 200)
    try await h.stop()
  }

  /// `1e400` read as infinity and was stored as `null`; now the message is rejected for it, the others stored.
  @Test("a number past a double's range rejects its message only")
  func numberOutOfRange() async throws {
    let h = try await Harness.start()
    let answer = try await h.track(
      #"{"batch":[{"type":"track","messageId":"n-1","userId":"u1","event":"E","properties":{"n":1e400}},"#
        + #"{"type":"track","messageId":"n-2","userId":"u1","event":"E","properties":{"n":1e300}}]}"#)
    #expect(answer.status == 200, "\(answer.text)")
    #expect(answer["stored"] == .int(1))
    let rejected = answer["rejected"].list
    #expect(rejected.count == 1)
    #expect(rejected.first?.lookup(["index"]) == .int(0))
    #expect(rejected.first?.lookup(["reason"]).stringValue?.contains("number out of range") == true, "\(answer.text)")
    try await h.stop()
  }

  /// A message nested past the reader's 512 levels made the whole batch a 400 (the reader of the request's
  /// own fields stepped over `batch` with the same limit), and the SDK dropped the good messages with it.
  @Test("a message nested too deeply is rejected alone; the batch is answered 200")
  func deepMessage() async throws {
    let h = try await Harness.start()
    let deep = String(repeating: "[", count: 600) + String(repeating: "]", count: 600)
    let answer = try await h.track(
      #"{"batch":[{"type":"track","messageId":"d-1","userId":"u1","event":"E"},"#
        + #"{"type":"track","messageId":"d-2","userId":"u1","event":"E","properties":{"x":"# + deep + "}}]}")
    #expect(answer.status == 200, "\(answer.text.prefix(300))")
    #expect(answer["stored"] == .int(1))
    let rejected = answer["rejected"].list
    #expect(rejected.count == 1)
    #expect(rejected.first?.lookup(["index"]) == .int(1))
    #expect(rejected.first?.lookup(["reason"]).stringValue?.contains("nested too deeply") == true, "\(rejected)")
    try await h.stop()
  }
}

extension HostileInputTests {
  /// SQLite was handed each string up to its first NUL (GRDB binds text as a C string), so two message ids that
  /// differed only after a NUL were both answered stored and kept as one event: the million-input run found 3
  /// of 161,833 events answered stored missing from the store, and `u\0x` and `u\0y` were the same user_id. A
  /// NUL in a message id, an event name or a trait name now rejects the message with the reason, and an
  /// identifier value holding one is dropped as invalid.
  @Test("a NUL in a message id, an event name or an identifier is refused, never stored cut short")
  func nulCharacters() async throws {
    let h = try await Harness.start()
    let messages = [
      #"{"type":"track","messageId":"nul\u0000a","userId":"u1","event":"E"}"#,
      #"{"type":"track","messageId":"nul\u0000b","userId":"u1","event":"E"}"#,
      #"{"type":"track","messageId":"n-3","userId":"u1","event":"E\u0000vil"}"#,
      #"{"type":"track","messageId":"n-4","userId":"u\u0000x","anonymousId":"a1","event":"E"}"#,
      #"{"type":"track","messageId":"n-5","userId":"u\u0000y","event":"E"}"#,
      #"{"type":"identify","messageId":"n-6","userId":"u1","traits":{"pl\u0000an":"pro"}}"#,
    ]
    let answer = try await h.track(#"{"batch":["# + messages.joined(separator: ",") + "]}")
    #expect(answer.status == 200, "\(answer.text)")
    #expect(answer["stored"] == .int(1), "\(answer.text)")
    let rejected = answer["rejected"].list
    #expect(rejected.map { $0.lookup(["index"]) } == [.int(0), .int(1), .int(2), .int(4), .int(5)], "\(answer.text)")
    for r in rejected where r.lookup(["index"]) != .int(4) {
      #expect(r.lookup(["reason"]).stringValue?.contains("NUL character") == true, "\(r)")
    }
    #expect(try await h.store.stats().events == 1)
    let profile = try await h.admin(.GET, "/v1/profiles?identifier=anonymous_id:a1")
    #expect(profile.status == 200, "\(profile.text)")
    #expect(!profile.text.contains("user_id"), "\(profile.text)")
    try await h.stop()
  }
}
