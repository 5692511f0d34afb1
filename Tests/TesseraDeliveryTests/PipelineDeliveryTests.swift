import AsyncHTTPClient
import Foundation
import GRDB
import TesseraCompiler
import TesseraDelivery
import TesseraModel
import TesseraReceiver
import TesseraRuntime
import TesseraSQLite
import TesseraStore
import Testing

/// The whole path: events → resolver → outbox rows committed with the state → delivery to a real receiver.
@Suite("Pipeline to destinations") struct PipelineDeliveryTests {
  static func pipeline(port: Int, events: String) -> String {
    """
    pipeline: shop
    identifiers:
      user_id: { max_per_profile: 1, priority: 1 }
      email: { normalize: email, max_per_profile: 3, priority: 2 }
    deterministic:
      ids: { link_on: [user_id, email] }
    sources:
      events:
        kind: ndjson
        path: \(events)
        emit: track
        id: id
        timestamp: at
        map:
          type: type
          event: 'coalesce(event, "")'
          user_id: user
          email: email
          traits.name: name
          properties: properties
          context: context
    computed:
      spend:
        aggregate: sum
        of: double(properties.amount)
        where: event == "Order Completed"
    segments:
      big: traits.spend >= 100
    destinations:
      ads:
        kind: webhook
        url: http://127.0.0.1:\(port)/ads
        deletion_url: http://127.0.0.1:\(port)/forget
        on: segment_changes
        segments: [big]
        consent: advertising
        payload:
          email_sha256: sha256(identifiers.email)
          action: 'change.entered ? "add" : "remove"'
        batch: { max_events: 100, max_wait: 1s }
        retry: { attempts: 5, backoff: 10ms..50ms }
      crm:
        kind: table
        table: crm_sync
        on: profile_changes
        payload: { email: identifiers.email, name: traits.name, spend: traits.spend }
    """
  }

  static func event(
    _ id: String, user: String, email: String, at: String, event: String = "Order Completed", amount: Double? = nil,
    name: String? = nil, advertising: Bool? = nil
  ) -> String {
    var o: [String: Any] = ["id": id, "type": "track", "user": user, "email": email, "at": at, "event": event]
    if let amount { o["properties"] = ["amount": amount] }
    if let name { o["name"] = name }
    if let advertising { o["context"] = ["consent": ["categoryPreferences": ["advertising": advertising]]] }
    let d = (try? JSONSerialization.data(withJSONObject: o, options: [.sortedKeys])) ?? Data()
    return String(decoding: d, as: UTF8.self)
  }

  /// Items a receiver accepted on a path, decoded.
  static func items(_ r: WebhookReceiver, _ path: String) -> [[String: Any]] {
    let keys = Set(r.requests.filter { $0.path == path }.map(\.key))
    return r.accepted.filter { keys.contains($0.key) }.sorted { $0.key < $1.key }.flatMap { $0.value }.compactMap {
      try? JSONSerialization.jsonObject(with: Data($0.utf8)) as? [String: Any]
    }
  }

  /// Delivers the pipeline's queues (only those named in `only`, when given) until drained.
  func deliver(_ plan: PipelinePlan, _ store: SQLiteStore, _ path: String, only: Set<String>? = nil) async throws
    -> [String: DeliveryCounts]
  {
    try await HTTPClient.withHTTPClient { client in
      let queues = try DeliveryQueue.plan(plan.config, storePath: path, client: client, clock: wall)
        .filter { only?.contains($0.name) ?? true }
      return try await DeliveryEngine(store: store, queues: queues, clock: wall).run(
        .drain(deadline: wall() + TimeSpan(seconds: 5)))
    }
  }

  @Test(
    "consent on and off: only the consenting person reaches the ad audience; a withdrawal sends a removal; the table follows"
  )
  func consent() async throws {
    let dir = try TempDir()
    let receiver = WebhookReceiver()
    let port = try await receiver.start()
    defer { receiver.stop() }
    let events = [
      Self.event(
        "e1", user: "u1", email: "ada@x.com", at: "2026-06-01T00:00:00Z", event: "Signed Up", name: "Ada",
        advertising: true),
      Self.event(
        "e2", user: "u2", email: "bob@x.com", at: "2026-06-01T00:00:00Z", event: "Signed Up", name: "Bob",
        advertising: false),
      Self.event("e3", user: "u1", email: "ada@x.com", at: "2026-06-02T00:00:00Z", amount: 150),
      Self.event("e4", user: "u2", email: "bob@x.com", at: "2026-06-02T00:00:00Z", amount: 150),
    ]
    try dir.write("events.ndjson", events.joined(separator: "\n") + "\n")
    let plan = try compile(try dir.write("shop.yaml", Self.pipeline(port: port, events: "events.ndjson")))
    let path = dir.file("s.sqlite")
    let store = try SQLiteStore(path: path)
    let summary = try await runPipeline(plan, store: store)
    #expect(summary.stats.withheld == ["advertising": 1])
    // Outbox rows were committed with the run: ads for Ada only; the table for both people's changes.
    let queued = try await store.outboxSummary()
    #expect(queued["ads"]?.queued == 1)
    #expect((queued["crm"]?.queued ?? 0) >= 2)
    _ = try await deliver(plan, store, path)
    let ads = Self.items(receiver, "/ads")
    #expect(ads.count == 1)
    #expect(ads.first?["action"] as? String == "add")
    #expect((ads.first?["email_sha256"] as? String)?.count == 64)
    let table = try DatabaseQueue(path: path).read { db in
      try Row.fetchAll(db, sql: "SELECT profile_id, email, name, spend FROM crm_sync ORDER BY email")
    }
    #expect(table.map { $0["email"] as String? } == ["ada@x.com", "bob@x.com"])
    #expect(table.map { $0["spend"] as Double? } == [150, 150])

    // Ada withdraws: the audience gets her removal.
    try dir.write(
      "events.ndjson",
      Self.event(
        "e5", user: "u1", email: "ada@x.com", at: "2026-06-03T00:00:00Z", event: "Consent Changed",
        advertising: false) + "\n")
    _ = try await runPipeline(plan, store: store)
    _ = try await deliver(plan, store, path)
    let after = Self.items(receiver, "/ads")
    #expect(after.count == 2)
    #expect(after.map { $0["action"] as? String } == ["add", "remove"])
    #expect(after.last?["email_sha256"] as? String == ads.first?["email_sha256"] as? String)
    #expect(receiver.duplicates == 0)
  }

  @Test("deleting a person: notices delivered (hashes only), table rows gone, and no table of the store holds them")
  func deletion() async throws {
    let dir = try TempDir()
    let receiver = WebhookReceiver()
    let port = try await receiver.start()
    defer { receiver.stop() }
    let events = [
      Self.event(
        "e1", user: "u1", email: "ada@x.com", at: "2026-06-01T00:00:00Z", event: "Signed Up", name: "Ada",
        advertising: true),
      Self.event("e2", user: "u1", email: "ada@x.com", at: "2026-06-02T00:00:00Z", amount: 150),
      Self.event("e3", user: "u2", email: "bob@x.com", at: "2026-06-02T00:00:00Z", amount: 20, name: "Bob"),
    ]
    try dir.write("events.ndjson", events.joined(separator: "\n") + "\n")
    let plan = try compile(try dir.write("shop.yaml", Self.pipeline(port: port, events: "events.ndjson")))
    let path = dir.file("s.sqlite")
    let store = try SQLiteStore(path: path)
    _ = try await runPipeline(plan, store: store)
    // Deliver the table only, so some of Ada's changes still wait for the ads destination.
    _ = try await deliver(plan, store, path, only: ["crm"])
    #expect(try await store.outboxSummary()["ads"]?.queued == 1)
    let ada = try #require(try await store.profile(for: Identifier("email", "ada@x.com")))
    let ids = try await store.identifiers(of: ada).map(\.0)
    let notices = DeletionNotices.rows(plan.config, profile: ada, family: [ada], identifiers: ids, at: wall())
    let report = try await store.erase(
      profile: ada, values: ids.map(\.value), suppress: ids.map(Suppression.hash), notices: notices)
    #expect(report.deliveries == 1)
    _ = try await deliver(plan, store, path)
    // The ad platform got no audience change for her (erased before delivery), only the deletion notice.
    #expect(Self.items(receiver, "/ads").isEmpty)
    let forget = Self.items(receiver, "/forget")
    #expect(forget.count == 1)
    #expect(forget.first?["type"] as? String == "deletion")
    let hashes = forget.first?["identifiers_sha256"] as? [String: [String]]
    #expect(hashes?["email"]?.first?.count == 64)
    #expect(!(receiver.requests.first { $0.path == "/forget" }?.body.contains("ada@x.com") ?? true))
    // Scan every table and column of the store file for her email, user id and name.
    let found = try await DatabaseQueue(path: path).read { db -> [String] in
      var hits: [String] = []
      let tables = try String.fetchAll(db, sql: "SELECT name FROM sqlite_master WHERE type = 'table'")
      for t in tables {
        for row in try Row.fetchAll(db, sql: "SELECT * FROM \"\(t)\"") {
          for (column, value) in row {
            let text = value.description
            if text.contains("ada@x.com") || text.contains("\"u1\"") || text.contains("Ada") {
              hits.append("\(t).\(column)")
            }
          }
        }
      }
      return hits
    }
    #expect(found.isEmpty, "\(found)")
    // Bob is untouched.
    let rows = try await DatabaseQueue(path: path).read { db in
      try String.fetchAll(db, sql: "SELECT email FROM crm_sync")
    }
    #expect(rows == ["bob@x.com"])
  }
}
