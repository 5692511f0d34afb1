import AsyncHTTPClient
import Foundation
import Synchronization
import TesseraModel
import TesseraRuntime
import TesseraSQLite
import TesseraStore
import Testing

@Suite("Profile and admin API, health, metrics, shutdown")
struct AdminTests {
  @Test("the admin API needs the bearer token")
  func token() async throws {
    let h = try await Harness.start()
    for token in [nil, "wrong", ""] as [String?] {
      let answer = try await h.admin(.GET, "/v1/segments", token: token)
      #expect(answer.status == 401)
      #expect(answer["code"] == .string("unauthorized"))
      #expect(answer["message"].stringValue?.isEmpty == false)
    }
    #expect(try await h.admin(.GET, "/v1/segments").status == 200)
    try await h.stop()
    // Without a configured token the API is off and says how to turn it on.
    let off = try await Harness.start(token: nil)
    let answer = try await off.admin(.GET, "/v1/segments")
    #expect(answer.status == 401)
    #expect(answer["message"].stringValue?.contains("TESSERA_ADMIN_TOKEN") == true)
    try await off.stop()
  }

  @Test("profiles by id and identifier, paginated events, segments and members")
  func profiles() async throws {
    let h = try await Harness.start()
    _ = try await h.track(
      "/v1/identify", #"{"userId": "u1", "traits": {"email": "ada@example.com", "plan": "pro"}, "messageId": "i-1"}"#)
    _ = try await h.track(trackBatch(ids: (0..<5).map { "t-\($0)" }, user: "u1"))
    _ = try await h.track(
      "/v1/identify", #"{"userId": "u2", "traits": {"plan": "pro"}, "messageId": "i-2"}"#)
    _ = try await h.track("/v1/identify", #"{"userId": "u3", "traits": {"plan": "free"}, "messageId": "i-3"}"#)

    let byEmail = try await h.admin(.GET, "/v1/profiles?identifier=email:ADA@example.com")
    #expect(byEmail.status == 200)
    let id = try #require(byEmail["id"].stringValue)
    let byID = try await h.admin(.GET, "/v1/profiles/\(id)")
    #expect(byID.status == 200)
    #expect(byID.json == byEmail.json)
    #expect(byID["traits.plan.event_id"] == .string("i-1"))
    #expect(try await h.admin(.GET, "/v1/profiles/prf_999999").status == 404)
    let missing = try await h.admin(.GET, "/v1/profiles?identifier=email:nobody@example.com")
    #expect(missing.status == 404)
    #expect(missing["code"] == .string("profile_not_found"))
    #expect(try await h.admin(.GET, "/v1/profiles?identifier=nonsense").status == 400)
    #expect(try await h.admin(.GET, "/v1/profiles").status == 400)

    // Events, newest first, two per page.
    var seen: [String] = []
    var cursor: String? = ""
    var pages = 0
    while let c = cursor {
      let page = try await h.admin(.GET, "/v1/profiles/\(id)/events?limit=2" + (c.isEmpty ? "" : "&cursor=\(c)"))
      #expect(page.status == 200)
      seen += page["items"].list.compactMap { $0.lookup(["id"]).stringValue }
      cursor = page["next_cursor"].stringValue
      pages += 1
    }
    #expect(pages == 3)
    #expect(Set(seen) == Set(["i-1"] + (0..<5).map { "t-\($0)" }))
    #expect(seen.count == 6)

    let segments = try await h.admin(.GET, "/v1/segments")
    let counts = Dictionary(
      uniqueKeysWithValues: segments["items"].list.compactMap { s -> (String, Value)? in
        guard let n = s.lookup(["name"]).stringValue else { return nil }
        return (n, s.lookup(["members"]))
      })
    #expect(counts == ["pro": .int(2), "buyers": .int(0)])
    let first = try await h.admin(.GET, "/v1/segments/pro/members?limit=1")
    #expect(first["total"] == .int(2))
    #expect(first["items"].listCount == 1)
    let next = try #require(first["next_cursor"].stringValue)
    let second = try await h.admin(.GET, "/v1/segments/pro/members?limit=1&cursor=\(next)")
    #expect(second["items"].listCount == 1)
    #expect(second["next_cursor"] == .null)
    #expect(first["items"].list.first != second["items"].list.first)
    #expect(try await h.admin(.GET, "/v1/segments/nope/members").status == 404)
    try await h.stop()
  }

  @Test("DELETE erases the person (202 with a deletion id) and later events with their identifiers are dropped")
  func deletion() async throws {
    let h = try await Harness.start()
    _ = try await h.track(
      "/v1/identify",
      #"{"userId": "u1", "anonymousId": "a1", "traits": {"email": "ada@example.com"}, "messageId": "x-1"}"#)
    _ = try await h.track("/v1/identify", #"{"userId": "u2", "messageId": "x-2"}"#)
    let answer = try await h.admin(.DELETE, "/v1/profiles?identifier=email:ada@example.com")
    #expect(answer.status == 202)
    #expect(answer["deletion_id"].stringValue?.hasPrefix("del_") == true)
    #expect(answer["erased.events"] == .int(1))
    #expect(answer["suppressed_identifiers"] == .int(3))
    #expect(try await h.admin(.GET, "/v1/profiles?identifier=email:ada@example.com").status == 404)
    #expect(try await h.admin(.DELETE, "/v1/profiles?identifier=email:ada@example.com").status == 404)
    // The live pipeline forgot the person and drops their identifiers at the door.
    let again = try await h.track("/v1/track", #"{"anonymousId": "a1", "event": "Back", "messageId": "x-3"}"#)
    #expect(again.status == 200)
    #expect(again["stored"] == .int(0))
    #expect(try await h.store.stats().events == 1)
    #expect(try await h.admin(.GET, "/v1/profiles?identifier=user_id:u2").status == 200)
    try await h.stop()
  }

  /// Regression: the server kept the person in memory after another process (`tessera delete`) erased them,
  /// and the next event for them wrote their profile back. Now the store's epoch refuses that commit, the
  /// server re-reads its state (with the new suppressions) and resolves the request again.
  @Test("a person erased by another process while the server runs stays erased")
  func erasedElsewhere() async throws {
    let h = try await Harness.start()
    let first = try await h.track(
      "/v1/identify", #"{"userId": "gone", "traits": {"plan": "pro"}, "messageId": "g-1"}"#)
    #expect(first["stored"] == .int(1))
    let other = try SQLiteStore(path: h.storePath)
    let profile = try #require(try await other.profile(for: Identifier("user_id", "gone")))
    _ = try await Deletion.erase(profile, in: other, config: nil, at: Timestamp(microseconds: 0))
    try other.close()
    let again = try await h.track(
      "/v1/identify", #"{"userId": "gone", "traits": {"plan": "team"}, "messageId": "g-2"}"#)
    #expect(again.status == 200)
    #expect(again["stored"] == .int(0))
    #expect(try await h.store.profile(for: Identifier("user_id", "gone")) == nil)
    #expect(try await h.store.stats().events == 0)
    #expect(try await h.store.loadTraits().isEmpty)
    // The server goes on with everyone else.
    let someone = try await h.track("/v1/identify", #"{"userId": "stays", "messageId": "g-3"}"#)
    #expect(someone["stored"] == .int(1))
    #expect(try await h.store.profile(for: Identifier("user_id", "stays")) != nil)
    try await h.stop()
  }

  @Test("tracked events reach destinations through the outbox; a deletion queues the notices")
  func destinations() async throws {
    let pipeline =
      testPipeline + "\n"
      + [
        "destinations:", "  ads:", "    kind: webhook", "    url: http://127.0.0.1:9/ads",
        "    deletion_url: http://127.0.0.1:9/forget", "    on: segment_changes", "    segments: [pro]",
        "    payload: { user: identifiers.user_id }",
      ].joined(separator: "\n")
    let h = try await Harness.start(pipeline: pipeline)
    let answer = try await h.track(
      "/v1/identify", #"{"userId": "u1", "traits": {"plan": "pro"}, "messageId": "o-1"}"#)
    #expect(answer["stored"] == .int(1))
    // The segment change was written to the outbox in the same transaction as the event.
    #expect(try await h.store.outboxSummary()["ads"]?.queued == 1)
    let deletion = try await h.admin(.DELETE, "/v1/profiles?identifier=user_id:u1")
    #expect(deletion.status == 202)
    #expect(deletion["deletion_notices"] == .int(1))
    #expect(try await h.store.outboxSummary()["ads"]?.queued ?? 0 == 0)
    try await h.stop()
  }

  @Test("health checks the store; metrics are Prometheus text with counters and histograms")
  func healthAndMetrics() async throws {
    let h = try await Harness.start()
    let health = try await h.request(.GET, "/health")
    #expect(health.status == 200)
    #expect(health["status"] == .string("ok"))
    #expect(health["store"] == .string("ok"))
    _ = try await h.track(trackBatch(ids: ["m-1", "m-2"], user: "u1"))
    let metrics = try await h.request(.GET, "/metrics")
    #expect(metrics.status == 200)
    #expect(metrics.headers.contains { $0.0.lowercased() == "content-type" && $0.1.hasPrefix("text/plain") })
    let text = metrics.text
    #expect(text.contains("# TYPE tessera_http_requests_total counter"))
    #expect(text.contains(#"tessera_http_requests_total{method="POST",route="/v1/batch",status="200"} 1"#))
    #expect(text.contains(#"tessera_http_request_duration_seconds_bucket{route="/v1/batch",le="+Inf"} 1"#))
    #expect(text.contains("tessera_commit_duration_seconds_count 1"))
    #expect(text.contains(#"tessera_events_accepted_total{source="web"} 2"#))
    #expect(text.contains("tessera_pipeline_queue_events 0"))
    #expect(text.contains("# TYPE tessera_journal_backlog gauge"))
    #expect(text.contains("tessera_journal_backlog 0"))
    #expect(text.contains("tessera_profiles_created_total 1"))
    // Every stage of the plan reports through swift-metrics: items through each edge, tasks, queues, busy time.
    #expect(text.contains(#"tessera_edge_items_total{from="decode_web",to="resolve"} 2"#))
    #expect(text.contains(#"tessera_edge_items_total{from="resolve",to="commit"} 2"#))
    #expect(text.contains(#"tessera_stage_tasks{stage="resolve"} 1"#))
    #expect(text.contains(#"tessera_stage_queue_batches{stage="resolve"} 0"#))
    #expect(text.contains("# TYPE tessera_stage_busy_seconds_total counter"))
    try await h.stop()
  }

  @Test("shutdown while requests are in flight: every acknowledged event is in the store afterwards")
  func shutdownInFlight() async throws {
    let h = try await Harness.start()
    let answered = Counter()
    let acknowledged = try await withThrowingTaskGroup(of: [String].self) { group in
      for c in 0..<8 {
        group.addTask {
          var acked: [String] = []
          for r in 0..<100_000 {
            // Once the server is stopping, no new request: a connection refused is retried by the client
            // until its timeout.
            if answered.stopping { break }
            let ids = (0..<20).map { "s\(c)-\(r)-\($0)" }
            let answer: HTTPAnswer
            do {
              answer = try await h.track(trackBatch(ids: ids, user: "u\(c)"), timeout: .seconds(30))
            } catch {
              // On a keep-alive connection the server just closed as idle the request fails at once; before the
              // shutdown a busy machine may time it out. Not acknowledged either way.
              if answered.stopping { break } else { continue }
            }
            if answer.status == 200 {
              acked += ids
              answered.add()
            } else {
              #expect(answer.status == 503)
              #expect(answer["code"] == .string("shutting_down"))
              break
            }
          }
          return acked
        }
      }
      // Let the clients get going (however busy the machine is), then stop the server under them.
      for _ in 0..<6000 where answered.value < 16 { try await Task.sleep(for: .milliseconds(20)) }
      // Start the graceful shutdown with requests in flight; only then do the clients stop sending.
      await h.server?.shutdown()
      answered.stop()
      try await h.stop()
      return try await group.reduce(into: [String]()) { $0 += $1 }
    }
    #expect(!acknowledged.isEmpty)
    // A fresh connection to the store, as after a restart.
    let reopened = try SQLiteStore(path: h.storePath)
    let keys = acknowledged.map { EventKey(source: "web", id: $0) }
    let stored = try await reopened.existingEvents(keys)
    #expect(stored.count == keys.count)
  }
}

/// Answers counted across client tasks.
final class Counter: Sendable {
  let count = Mutex(0)
  let stopped = Mutex(false)
  func add() { count.withLock { $0 += 1 } }
  var value: Int { count.withLock { $0 } }
  func stop() { stopped.withLock { $0 = true } }
  var stopping: Bool { stopped.withLock { $0 } }
}
