import Foundation
import TesseraCompiler
import TesseraConnectors
import TesseraModel
import TesseraRuntime
import TesseraStore
import Testing

/// The stage graph: what runs is what the plan says, and the result of every stage after identity does not
/// depend on how many partitions the profile stage has.
@Suite("Stage graph")
struct StageGraphTests {
  /// The generated pipeline with every stage after identity at work: computed traits (windowed and all-time),
  /// segments reading them, traits and identifiers, and destinations on segment changes (with consent),
  /// profile changes (a table) and events.
  static let activation = """

    computed:
      orders_90d: { aggregate: count, where: 'event == "Order Completed"', window: 90d }
      orders: { aggregate: count, where: 'event == "Order Completed"' }
      pages_30d: { aggregate: count, where: 'type == "page"', window: 30d }
      best_score: { aggregate: max, of: 'properties.score', where: 'exists(properties.score)' }
      last_city: { aggregate: last, of: 'properties.city', where: 'exists(properties.city)' }
    segments:
      buyers: 'traits.orders >= 2'
      recent_buyers: 'traits.orders_90d >= 1 && segments.buyers'
      browsers: 'traits.pages_30d >= 2 && !segments.buyers'
      teal: 'traits.color == "teal"'
      reachable: 'exists(identifiers.email) && traits.best_score > 500'
    consent_purposes: [advertising]
    destinations:
      audience:
        kind: webhook
        url: http://127.0.0.1:9/audience
        on: segment_changes
        segments: [buyers, recent_buyers, reachable]
        consent: advertising
        payload: { email: identifiers.email, segment: change.segment, entered: change.entered, orders: traits.orders }
      people:
        kind: table
        database: people.sqlite
        table: people
        on: profile_changes
        payload: { profile_id: profile.id, city: traits.city, orders: traits.orders, changed: changed }
      orders:
        kind: webhook
        url: http://127.0.0.1:9/orders
        on: events
        where: 'event == "Order Completed"'
        payload: { id: message_id, profile: profile.id, user: identifiers.user_id }

    """

  /// The app source also maps its properties (for the computed traits) and a consent from the color.
  static func pipeline(into dir: E2E.TempDir, people: Int, events: Int) throws -> PipelinePlan {
    let path = try E2E.writeGenerated(into: dir, seed: 7, people: people, events: events)
    var text = try String(contentsOfFile: path, encoding: .utf8)
    let color = "      traits.color: color\n"
    #expect(text.contains(color))
    text = text.replacingOccurrences(
      of: color,
      with: color + "      consent.advertising: 'color == \"teal\" || color == \"green\"'\n"
        + "      properties.score: score\n      properties.city: city\n")
    text += activation
    try text.write(toFile: path, atomically: true, encoding: .utf8)
    return try E2E.compile(path)
  }

  /// Everything a run left in a store that the stages after identity wrote, as text, in the store's order.
  static func derived(_ store: any Store) async throws -> [String: [String]] {
    var out: [String: [String]] = [:]
    out["traits"] = try await store.loadTraits().map {
      "\($0.profile) \($0.trait)=\($0.value.literal) from \($0.source)/\($0.eventID) at \($0.timestamp.microseconds) \(StoredValue.encode($0.state))"
    }.sorted()
    out["computed"] = try await store.loadComputed().map {
      "\($0.profile) \($0.trait)=\($0.value.literal) \($0.storedState ?? "-")"
    }.sorted()
    out["memberships"] = try await store.loadMemberships().map {
      "\($0.segment) \($0.profile) \($0.since.microseconds)"
    }
    for s in ["buyers", "recent_buyers", "browsers", "teal", "reachable"] {
      out["log " + s] = try await store.segmentChanges(of: s, limit: .max).map {
        let values = $0.values.sorted { $0.key < $1.key }.map { "\($0.key)=\($0.value.literal)" }
        return
          "\($0.profile) \($0.entered ? "in" : "out") \($0.at.microseconds) \($0.mergedInto?.description ?? "") \(values)"
      }
    }
    for d in ["audience", "people", "orders"] {
      let claim = BatchClaim(
        destination: d, maxItems: 10_000_000, maxBytes: 1 << 40, maxWait: TimeSpan(microseconds: 0),
        now: Timestamp(iso8601: "2100-01-01T00:00:00Z") ?? Timestamp(microseconds: 0),
        lease: TimeSpan(microseconds: 3_600_000_000), flush: true)
      let rows = try await store.claimBatch(claim)?.1 ?? []
      out["outbox " + d] = rows.map {
        "\($0.op.rawValue) \($0.profile) \($0.key) \($0.at.microseconds) \(StoredValue.encode($0.payload))"
      }
    }
    return out
  }

  @Test("every stage after identity gives the same rows, segment changes and outbox with 1 and 8 partitions")
  func partitionsDoNotChangeTheResult() async throws {
    let dir = try E2E.TempDir()
    defer { dir.remove() }
    let plan = try Self.pipeline(into: dir, people: 1500, events: 12_000)
    var results: [[String: [String]]] = []
    var summaries: [ResolveStats] = []
    for workers in [1, 8] {
      let store = try E2E.makeStore(.sqlite, in: dir, name: "w\(workers).sqlite")
      // Small transactions, so merges cross partitions within and across them.
      let outcome = try await E2E.run(plan, store, workers: workers, batchSize: 50, commitEvents: 700)
      summaries.append(outcome.summary.stats)
      results.append(try await Self.derived(store))
      try await E2E.expectConsistent(store, blocked: ["test@example.com"], unchecked: [])
    }
    // The data exercises what it must.
    let s = summaries[0]
    #expect(s.merges > 50 && s.queued > 500)
    #expect(results[0]["memberships"]?.count ?? 0 > 100)
    #expect(results[0]["outbox audience"]?.count ?? 0 > 50)
    #expect(s.withheld["advertising"] ?? 0 > 50)
    #expect(results[0]["outbox people"]?.count ?? 0 > 500)
    #expect(results[0]["outbox orders"]?.count ?? 0 > 500)
    #expect(summaries[1] == s)
    for key in results[0].keys.sorted() {
      let (a, b) = (results[0][key] ?? [], results[1][key] ?? [])
      #expect(a.count == b.count, "\(key): \(a.count) vs \(b.count)")
      if let i = zip(a, b).enumerated().first(where: { $0.element.0 != $0.element.1 })?.offset {
        Issue.record("\(key) differs at row \(i):\n  1: \(a[i])\n  8: \(b[i])")
      }
    }
  }

  @Test("the stages and edges that ran are the plan's: task counts and items through each edge")
  func whatRanIsThePlan() async throws {
    let plan = try E2E.compile(E2E.packageRoot + "/pipelines/retail.yaml")
    let store = MemoryStore()
    var readers: [Int: any SourceReader] = [:]
    for (i, s) in plan.config.sources.enumerated() where s.kind != .http {
      readers[i] = FileSourceReader(source: s, batchSize: 16)
    }
    let workers = 3
    let runner = PipelineRunner(
      plan: plan, store: store, readers: readers, workers: workers,
      now: Timestamp(iso8601: "2026-06-30T00:00:00Z") ?? Timestamp(microseconds: 0))
    let summary = try await runner.run()
    let metrics = try #require(runner.monitor.metrics)
    let figures = Dictionary(uniqueKeysWithValues: metrics.figures().map { ($0.id, $0) })
    #expect(Set(figures.keys) == Set(plan.stages.map(\.id)))
    // Tasks: what the plan's parallelism says, for the sources this command reads.
    for stage in plan.stages {
      let tasks = figures[stage.id]?.tasks ?? -1
      let http = stage.id.hasSuffix("_web")
      let expected: Int
      switch stage.parallelism {
      case .single: expected = stage.kind == .source && http ? 0 : 1
      case .singleWriter: expected = 1
      case .workers, .partitions: expected = workers
      case .perRequest: expected = 0  // no requests in a run
      case .tasks: expected = 0  // destinations deliver from the outbox in `serve` and `deliver`
      }
      #expect(tasks == expected, "\(stage.id) (\(stage.parallelism)): \(tasks) tasks")
    }
    // Items: every edge of the plan, and nothing that is not one.
    #expect(metrics.unplanned.isEmpty, "\(metrics.unplanned)")
    let items = metrics.edgeItems()
    #expect(Set(items.keys) == Set(plan.edges.map { "\($0.from)->\($0.to)" }))
    let files = ["crm", "pos", "web_history"]
    let read = files.reduce(0) { $0 + (items["source_\($1)->decode_\($1)"] ?? 0) }
    #expect(read == summary.recordsRead)
    let mapped = files.reduce(0) { $0 + (items["decode_\($1)->resolve"] ?? 0) }
    let rejected = files.reduce(0) { $0 + (items["decode_\($1)->commit"] ?? 0) }
    #expect(rejected == summary.stats.rejected)
    #expect(mapped + rejected == summary.recordsRead)
    // The identity stage hands on every event it did not skip, to the profile stage and to the commit stage.
    #expect(items["resolve->commit"] == summary.stats.events)
    #expect(items["resolve->profile"] == summary.stats.events)
    #expect(mapped == summary.stats.events + summary.stats.duplicates + summary.stats.suppressed)
    #expect((items["profile->commit"] ?? 0) > 0)
    #expect(items["decode_web->resolve"] == 0 && items["commit->destination_ads_audience"] == 0)
  }
}
