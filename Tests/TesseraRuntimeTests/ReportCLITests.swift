import Foundation
import Testing

/// `tessera report` through the built executable, on the retail example (README "Measuring by people").
@Suite(
  "End to end: report",
  .enabled(if: E2E.CLI.binary != nil, "no built `tessera`; run `swift build --build-tests` first"))
struct ReportCLITests {
  typealias CLI = E2E.CLI

  static func json(_ stdout: String) throws -> [String: Any] {
    try #require(try JSONSerialization.jsonObject(with: Data(stdout.utf8)) as? [String: Any])
  }

  @Test("attribution and funnel on the example: people credit the store purchases to web visits, devices cannot")
  func example() async throws {
    let dir = try E2E.TempDir()
    defer { dir.remove() }
    let store = dir.file("retail.sqlite")
    let run = try await CLI.tessera(["run", "pipelines/retail.yaml", "--store", store, "--now", "2026-06-30T00:00:00Z"])
    #expect(run.status == 0, "\(run.stderr)")

    let chart = dir.file("purchases.svg")
    let r = try await CLI.tessera([
      "report", "pipelines/retail.yaml", "purchases", "--store", store, "--by", "people,devices", "--format", "json",
      "--chart", chart,
    ])
    #expect(r.status == 0, "\(r.stderr)")
    let report = try Self.json(r.stdout)
    let by = try #require(report["by"] as? [String: [String: Any]])
    let people = try #require(by["people"])
    let devices = try #require(by["devices"])
    #expect(people["conversions"] as? Int == 36)
    #expect(devices["conversions"] as? Int == 36)
    #expect(people["unattributed"] as? Int == 34)
    #expect(devices["unattributed"] as? Int == 36)
    let models = try #require(people["models"] as? [String: [[String: Any]]])
    let lastTouch = try #require(models["last_touch"])
    #expect(lastTouch.map { $0["key"] as? String } == ["email", "google.com"])
    #expect(lastTouch.map { $0["value"] as? Double } == [135.5, 95])
    let paths = try #require(people["paths"] as? [[String: Any]])
    #expect(paths.map { $0["path"] as? [String] } == [[], ["email"], ["google.com"]])
    let svg = try String(contentsOfFile: chart, encoding: .utf8)
    #expect(svg.hasPrefix("<svg"))
    #expect(svg.contains("last_non_direct · value credited by people"))

    let funnel = try await CLI.tessera([
      "report", "pipelines/retail.yaml", "browse_to_buy", "--store", store, "--by", "all", "--format", "csv",
    ])
    #expect(funnel.status == 0, "\(funnel.stderr)")
    let rows = funnel.stdout.split(separator: "\n").map { $0.split(separator: ",", omittingEmptySubsequences: false) }
    #expect(
      rows.first?.joined(separator: ",")
        == "by,step,units,conversion_pct,from_previous_pct,median_seconds_from_previous")
    // The app user who viewed and added a product bought in the store the next day: one person, no device.
    #expect(
      rows.dropFirst().map { "\($0[0]) \($0[1]) \($0[2])" } == [
        "people viewed 4", "people added 1", "people ordered 1", "devices viewed 4", "devices added 1",
        "devices ordered 0", "sessions viewed 4", "sessions added 1", "sessions ordered 0",
      ])
  }

  @Test("dry-run --report measures the samples: by people the store purchase is the email visitor's")
  func dryRun() async throws {
    let dir = try E2E.TempDir()
    defer { dir.remove() }
    let web = try dir.write(
      "web.ndjson",
      #"{"type": "page", "messageId": "w1", "anonymousId": "laptop-1", "timestamp": "2026-06-01T09:00:00Z", "#
        + #""context": {"page": {"referrer": ""}, "campaign": {"medium": "email", "name": "june"}}}"# + "\n"
        + #"{"type": "identify", "messageId": "w2", "anonymousId": "laptop-1", "userId": "200010", "#
        + #""timestamp": "2026-06-01T09:05:00Z"}"# + "\n")
    let pos = try dir.write(
      "pos.ndjson",
      #"{"order": {"id": "ORD-D-1", "completed_at": "2026-06-03T12:00:00Z", "total": 80.0}, "#
        + #""customer": {"loyalty_no": 200010}, "store": {"id": "S-BOS-01", "postcode": "02134"}}"# + "\n")
    let r = try await CLI.tessera([
      "dry-run", "pipelines/retail.yaml", "--sample", "web_history=\(web)", "pos=\(pos)", "--report", "purchases",
      "--format", "json", "--now", "2026-06-30T00:00:00Z",
    ])
    #expect(r.status == 0, "\(r.stderr)")
    let reports = try #require(try Self.json(r.stdout)["reports"] as? [[String: Any]])
    let by = try #require(reports.first?["by"] as? [String: [String: Any]])
    #expect(by["people"]?["unattributed"] as? Int == 0)
    #expect(by["devices"]?["unattributed"] as? Int == 1)
    let paths = try #require(by["people"]?["paths"] as? [[String: Any]])
    #expect(paths.map { $0["path"] as? [String] } == [["email"]])
  }

  @Test("an unknown report or counting unit is refused with what there is")
  func refusals() async throws {
    let dir = try E2E.TempDir()
    defer { dir.remove() }
    let store = dir.file("retail.sqlite")
    #expect(
      try await CLI.tessera(["run", "pipelines/retail.yaml", "--store", store, "--now", "2026-06-30T00:00:00Z"]).status
        == 0)
    let unknown = try await CLI.tessera(["report", "pipelines/retail.yaml", "purchase", "--store", store])
    #expect(unknown.status != 0)
    #expect(
      unknown.stderr.contains(
        "no report `purchase`; did you mean `purchases`?; the pipeline declares: browse_to_buy, purchases, campaigns"))
    let by = try await CLI.tessera(["report", "pipelines/retail.yaml", "purchases", "--store", store, "--by", "visits"])
    #expect(by.status != 0)
    #expect(by.stderr.contains("--by `visits`: use people, devices, sessions"))
  }
}
