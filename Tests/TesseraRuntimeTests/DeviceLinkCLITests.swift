import Foundation
import Testing

/// A device link end to end: `tessera run` joins a second browser to its person, `review list` and `explain`
/// show the evidence, `unmerge --link` gives the browser its own profile back, `link` and `explain --records`
/// read a file of sightings, and a second `run` over the store knows the first one's sightings.
@Suite(
  "End to end: device links",
  .enabled(if: E2E.CLI.binary != nil, "no built `tessera`; run `swift build --build-tests` first"))
struct DeviceLinkCLITests {
  typealias CLI = E2E.CLI

  static let pipeline = """
    pipeline: devices
    sources:
      web:
        kind: ndjson
        path: events.ndjson
        emit: page
        id: messageId
        timestamp: timestamp
        map: { type: type, user_id: userId, anonymous_id: anonymousId, context: context }
    identifiers:
      user_id: { max_per_profile: 1, priority: 1 }
      anonymous_id: { max_per_profile: 50, expires_after: 730d, priority: 9 }
    deterministic:
      ids: { link_on: [user_id, anonymous_id] }
    probabilistic:
      device:
        blocking: [[signals.ip]]
        compare:
          signals.ip:
            - { level: within 30 minutes, m: 0.7, u: 0.0005 }
            - { level: else, m: 0.3, u: 0.9995 }
          signals.os:
            - { level: exact, m: 0.95, u: 0.1 }
            - { level: else, m: 0.05, u: 0.9 }
          signals.timezone:
            - { level: exact, m: 0.98, u: 0.3 }
            - { level: else, m: 0.02, u: 0.7 }
        prior: 0.001
        thresholds: { merge: 0.95, review: 0.9 }
    """

  static func line(_ id: String, _ type: String, anon: String, user: String?, at: String, ua: String) -> String {
    #"{"messageId": "\#(id)", "type": "\#(type)", "anonymousId": "\#(anon)", "userId": "#
      + (user.map { "\"\($0)\"" } ?? "null")
      + #", "timestamp": "\#(at)", "context": {"ip": "198.51.100.7", "userAgent": "\#(ua)", "timezone": "Europe/Berlin"}}"#
  }

  @Test("run joins the second browser; review and explain show why; unmerge --link splits it off again")
  func deviceLink() async throws {
    let dir = try E2E.TempDir()
    defer { dir.remove() }
    let chrome =
      "Mozilla/5.0 (Macintosh; Intel Mac OS X 10_15_7) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/120.0.0.0 Safari/537.36"
    let safari =
      "Mozilla/5.0 (Macintosh; Intel Mac OS X 10_15_7) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/17.2 Safari/605.1.15"
    _ = try dir.write(
      "events.ndjson",
      [
        Self.line("e1", "identify", anon: "chrome-1", user: "ada", at: "2026-06-01T10:00:00Z", ua: chrome),
        Self.line("e2", "page", anon: "safari-1", user: nil, at: "2026-06-01T10:20:00Z", ua: safari),
        Self.line("e3", "page", anon: "safari-1", user: nil, at: "2026-06-01T11:00:00Z", ua: safari),
      ].joined(separator: "\n") + "\n")
    let pipeline = try dir.write("devices.yaml", Self.pipeline)
    let store = dir.file("d.sqlite")
    let now = "2026-06-30T00:00:00Z"
    let run = try await CLI.tessera(["run", pipeline, "--store", store, "--now", now])
    #expect(run.status == 0, "\(run.stderr)")
    let ada = try DryRunCLITests.json(
      try await CLI.tessera(["profile", "user_id:ada", "--store", store, "--format", "json"]).stdout)
    let adaID = try #require(ada["id"] as? String)
    let joined = try await CLI.tessera(["profile", "anonymous_id:safari-1", "--store", store])
    #expect(joined.stdout.hasPrefix("profile \(adaID)"), "\(joined.stdout)")

    let review = try await CLI.tessera(["review", "list", "--status", "all", "--store", store, "--format", "json"])
    let links = try #require(try JSONSerialization.jsonObject(with: Data(review.stdout.utf8)) as? [[String: Any]])
    #expect(links.count == 1)
    let link = try #require(links.first)
    #expect(link["status"] as? String == "joined" && link["event_id"] as? String == "e2")
    let reason = try #require(link["reason"] as? String)
    #expect(reason.contains("signals.ip within 30 minutes +10.45"), "\(reason)")
    let linkID = try #require(link["id"] as? Int)

    let explain = try await CLI.tessera([
      "explain", "user_id:ada", "anonymous_id:safari-1", "--store", store, "--rules", pipeline, "--rule", "device",
    ])
    #expect(explain.status == 0, "\(explain.stderr)")
    #expect(explain.stdout.contains("link \(linkID) (joined): event e2"), "\(explain.stdout)")
    #expect(explain.stdout.contains("  signals.os exact +3.25"), "\(explain.stdout)")
    try await Self.batch(dir, pipeline: pipeline, chrome: chrome, safari: safari)

    let undo = try await CLI.tessera([
      "unmerge", "user_id:ada", "--link", "\(linkID)", "--pipeline", pipeline, "--store", store, "--now", now,
    ])
    #expect(undo.status == 0, "\(undo.stderr)")
    #expect(undo.stdout.hasPrefix("undid link \(linkID) (rule device, event e2)"), "\(undo.stdout)")
    let adaAfter = try await CLI.tessera(["profile", "user_id:ada", "--store", store])
    #expect(adaAfter.stdout.hasPrefix("profile \(adaID)"))
    #expect(!adaAfter.stdout.contains("safari-1"), "\(adaAfter.stdout)")
    let browser = try await CLI.tessera(["profile", "anonymous_id:safari-1", "--store", store])
    #expect(browser.status == 0 && !browser.stdout.hasPrefix("profile \(adaID)"), "\(browser.stdout)")
    // Both browsers' events are back where they belong: Ada's one, the browser's two.
    #expect(adaAfter.stdout.contains("chrome-1"))

    // A second run over the same store knows the sightings of the first (and of the replay the unmerge ran):
    // a third browser 15 minutes after the Safari browser's last view joins that browser's profile.
    let browserID = try #require(browser.stdout.split(whereSeparator: \.isWhitespace).dropFirst().first)
    _ = try dir.write(
      "events.ndjson",
      Self.line("e4", "page", anon: "edge-1", user: nil, at: "2026-06-01T11:15:00Z", ua: Self.edge) + "\n")
    let second = try await CLI.tessera(["run", pipeline, "--store", store, "--now", now])
    #expect(second.status == 0, "\(second.stderr)")
    let edge = try await CLI.tessera(["profile", "anonymous_id:edge-1", "--store", store])
    #expect(edge.stdout.hasPrefix("profile \(browserID)"), "\(edge.stdout)")
  }

  static let edge =
    "Mozilla/5.0 (Macintosh; Intel Mac OS X 10_15_7) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/120.0.0.0 Safari/537.36 Edg/120.0.0.0"

  /// `link`, `explain --records` and `tune` on a record file of sightings: each row's context columns and time.
  static func batch(_ dir: E2E.TempDir, pipeline: String, chrome: String, safari: String) async throws {
    _ = try dir.write(
      "records.csv",
      """
      record_id,timestamp,ip,user_agent,timezone,person
      a,2026-06-01T10:00:00Z,198.51.100.7,"\(chrome)",Europe/Berlin,ada
      b,2026-06-01T10:20:00Z,198.51.100.7,"\(safari)",Europe/Berlin,ada
      c,2026-06-04T10:20:00Z,198.51.100.7,"\(safari)",Europe/Berlin,bob

      """)
    let out = dir.file("clusters.csv")
    let link = try await CLI.tessera(["link", dir.file("records.csv"), "--rules", pipeline, "--out", out])
    #expect(link.status == 0, "\(link.stderr)")
    let clusters = try String(contentsOfFile: out, encoding: .utf8).split(separator: "\n").dropFirst().map {
      $0.split(separator: ",").map(String.init)
    }
    let of = Dictionary(clusters.map { ($0[0], $0[1]) }, uniquingKeysWith: { a, _ in a })
    #expect(of["a"] == of["b"] && of["c"] != of["a"], "\(clusters)")
    let explain = try await CLI.tessera([
      "explain", "a", "b", "--records", dir.file("records.csv"), "--rules", pipeline, "--rule", "device",
    ])
    #expect(explain.status == 0, "\(explain.stderr)")
    #expect(explain.stdout.contains("within 30 minutes"), "\(explain.stdout)")
    let tune = try await CLI.tessera([
      "tune", "--rules", pipeline, "--labels", dir.file("records.csv"), "--truth-column", "person",
      "--chart", dir.file("tune.svg"),
    ])
    #expect(tune.status == 0, "\(tune.stderr)")
    #expect(tune.stdout.contains("rule `device` on 3 labelled records; 3 candidate pairs scored"), "\(tune.stdout)")
    // A time that does not read is refused with its place; a rule that measures time needs the records' times.
    _ = try dir.write("badtime.csv", "record_id,timestamp,ip\na,yesterday,198.51.100.7\n")
    let bad = try await CLI.tessera(["link", dir.file("badtime.csv"), "--rules", pipeline])
    #expect(
      bad.status != 0 && bad.stderr.contains("badtime.csv:2: `yesterday` in column `timestamp` is not a time"),
      "\(bad.stderr)")
    _ = try dir.write("untimed.csv", "record_id,ip\na,198.51.100.7\n")
    let untimed = try await CLI.tessera(["link", dir.file("untimed.csv"), "--rules", pipeline])
    #expect(
      untimed.status != 0
        && untimed.stderr.contains("has no time column `timestamp`; name the column with --time-column"),
      "\(untimed.stderr)")
  }
}
