import Foundation
import Testing

/// `tessera run --deliver`, `tessera deliver` and `tessera deliveries [retry]` on the example pipeline, with the
/// ad audience's webhook pointed at a port nobody listens on.
@Suite(
  "End to end: deliver",
  .enabled(if: E2E.CLI.binary != nil, "no built `tessera`; run `swift build --build-tests` first"))
struct DeliverCLITests {
  typealias CLI = E2E.CLI

  @Test("the file export is written; the unreachable webhook is dead-lettered, listed, re-queued and kept")
  func deliverAndDeadLetters() async throws {
    let dir = try E2E.TempDir()
    defer { dir.remove() }
    let pipeline =
      try String(contentsOfFile: E2E.retailPipeline, encoding: .utf8)
      .replacingOccurrences(
        of: "${ADS_WEBHOOK_URL:-http://127.0.0.1:9000/audiences/high_value}", with: "http://127.0.0.1:9/ads"
      )
      .replacingOccurrences(
        of: "retry: { attempts: 10, backoff: 1s..5m, max_age: 24h }", with: "retry: { attempts: 1 }"
      )
      .replacingOccurrences(of: "../out/profiles.ndjson", with: dir.file("out/profiles.ndjson"))
      .replacingOccurrences(of: "../", with: E2E.packageRoot + "/")
    let copy = try dir.write("retail.yaml", pipeline)
    let store = dir.file("d.sqlite")
    let run = try await CLI.tessera([
      "run", copy, "--store", store, "--now", DryRunCLITests.now, "--deliver", "--deliver-wait", "2s",
    ])
    // Something is left (the dead letter): exit 3, and the summary says what was queued and withheld.
    #expect(run.status == 3, "\(run.stderr)")
    #expect(run.stdout.contains("changes for destinations"))
    #expect(run.stdout.contains("withheld without consent to advertising"))
    // One row per changed profile per store transaction (34 profiles, one transaction), and one per profile
    // whose computed values the end-of-run tick changed (8). It was 71 while rows were made per read batch.
    #expect(run.stdout.contains("profile_export: 42 delivered in 1 batch"), "\(run.stdout)")
    #expect(run.stdout.contains("ads_audience: 0 delivered"))
    let files = try FileManager.default.contentsOfDirectory(atPath: dir.file("out"))
    #expect(files.count == 1 && files[0].hasPrefix("profiles-") && files[0].hasSuffix(".ndjson"), "\(files)")
    let lines = try String(contentsOfFile: dir.file("out/" + files[0]), encoding: .utf8).split(separator: "\n")
    #expect(lines.count == 42)
    let ids = lines.compactMap { line in
      (try? JSONSerialization.jsonObject(with: Data(line.utf8)) as? [String: Any])?["profile_id"] as? String
    }
    #expect(ids.count == 42 && Set(ids).count == 34, "\(ids)")
    #expect(lines.contains { $0.contains("\"email\":\"ada.whitfield@example.com\"") })

    let list = try await CLI.tessera(["deliveries", "--store", store, "--format", "json"])
    #expect(list.status == 0, "\(list.stderr)")
    let report = try DryRunCLITests.json(list.stdout)
    let dead = report["dead_letters"] as? [[String: Any]] ?? []
    #expect(dead.count == 1)
    #expect(dead.first?["destination"] as? String == "ads_audience")
    #expect((dead.first?["last_error"] as? String)?.contains("gave up after 1 attempts") == true)
    let queues = report["destinations"] as? [String: [String: Any]]
    #expect(queues?["ads_audience"]?["dead_items"] as? Int == 6)
    #expect(queues?["profile_export"]?["delivered_items"] as? Int == 42)

    let retry = try await CLI.tessera(["deliveries", "retry", "--store", store, "--destination", "ads_audience"])
    #expect(retry.stdout.hasPrefix("re-queued 1 dead-lettered batch"))
    let text = try await CLI.tessera(["deliveries", "--store", store])
    #expect(text.stdout.contains("ads_audience: 0 queued, 1 pending"), "\(text.stdout)")
    // Still unreachable: dead again, nothing lost.
    let again = try await CLI.tessera(["deliver", copy, "--store", store, "--wait", "1s"])
    #expect(again.status == 3)
    #expect(again.stdout.contains("1 dead-lettered (6 changes; tessera deliveries)"), "\(again.stdout)")
  }
}
