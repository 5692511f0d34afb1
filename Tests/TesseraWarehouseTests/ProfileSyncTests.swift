import Foundation
import PostgresNIO
import TesseraCompiler
import TesseraConnectors
import TesseraModel
import TesseraPostgres
import TesseraPostgresCluster
import TesseraRuntime
import TesseraSQLite
import TesseraStore
import TesseraWarehouse
import Testing

/// `tessera sync` against a throwaway cluster: the synced tables say what the store says, and after a merge,
/// an unmerge and an erasure an incremental sync leaves them equal to a fresh one.
@Suite(
  .serialized,
  .enabled(if: PostgresCluster.available, "PostgreSQL server binaries not found; skipping (set TESSERA_PG_BIN)"))
struct ProfileSyncTests {
  static let now = Timestamp(iso8601: "2026-06-30T00:00:00Z") ?? Timestamp(microseconds: 0)

  static let events = [
    #"{"id":"e1","ts":"2026-01-01T00:00:00Z","anon":"a1","name":"Ann","revenue":50}"#,
    #"{"id":"e2","ts":"2026-01-02T00:00:00Z","anon":"a1","email":"ann@example.com","revenue":100}"#,
    #"{"id":"e3","ts":"2026-01-03T00:00:00Z","uid":"u1","email":"ann@example.com","revenue":200}"#,
    #"{"id":"e4","ts":"2026-01-04T00:00:00Z","anon":"a2","name":"Bob","revenue":10}"#,
    #"{"id":"e5","ts":"2026-01-05T00:00:00Z","anon":"a2","email":"bob@example.com","revenue":150}"#,
    #"{"id":"e6","ts":"2026-01-06T00:00:00Z","anon":"a4","email":"carl@example.com","name":"Carl","revenue":70}"#,
    #"{"id":"e7","ts":"2026-01-07T00:00:00Z","anon":"a5","uid":"u3","revenue":80}"#,
    #"{"id":"e8","ts":"2026-01-08T00:00:00Z","email":"carl@example.com","uid":"u3"}"#,
  ]

  static func setUp(warehouse: String, in dir: String, events: [String] = events) throws -> PipelinePlan {
    try (events.joined(separator: "\n") + "\n").write(toFile: dir + "/events.ndjson", atomically: true, encoding: .utf8)
    try """
    pipeline: shop
    identifiers:
      user_id: { normalize: trim, max_per_profile: 1, priority: 1 }
      email: { normalize: email, priority: 2 }
      anonymous_id: { normalize: trim, priority: 9 }
    deterministic:
      ids: { link_on: [user_id, email, anonymous_id] }
    profile:
      traits:
        name: { type: string, policy: most_recent }
    computed:
      revenue_total:
        aggregate: sum
        of: double(properties.revenue)
        where: event == "Order Completed"
    segments:
      buyers:
        when: traits.revenue_total >= 100
    sources:
      web:
        kind: ndjson
        path: events.ndjson
        emit: track
        event: Order Completed
        id: id
        timestamp: ts
        map:
          anonymous_id: anon
          email: email
          user_id: uid
          traits.name: name
          properties.revenue: revenue
    sync:
      warehouse:
        database: ${WH_URL}
        schema: analytics
      fresh:
        database: ${WH_URL}
        schema: fresh
    """.write(toFile: dir + "/shop.yaml", atomically: true, encoding: .utf8)
    let result = Compiler(environment: ["WH_URL": warehouse]).compile(pipeline: dir + "/shop.yaml")
    return try #require(result.plan, "\(result.rendered())")
  }

  static let tables = [
    "profiles", "profile_traits", "identifiers", "profile_aliases", "segment_memberships", "segment_changes",
    "merge_log", "events",
  ]

  /// The synced tables hold what the store's queries (`tessera profile`, `tessera segments`) answer.
  static func expectMatchesStore(_ url: String, _ schema: String, _ store: any Store) async throws {
    let identity = try await store.loadIdentity()
    let live = identity.profiles.map { $0.0.description }.sorted()
    let synced = try await WH.rows(url, "SELECT profile_id FROM \(schema).profiles").map {
      String($0.dropFirst(#"{"profile_id":""#.count).dropLast(2))
    }
    #expect(synced == live)
    for (p, ids) in identity.profiles {
      let traits =
        try await store.traits(of: p).filter { !$0.value.isNull }.map {
          "\($0.trait)=\(JSON.encode($0.value))@\($0.source)"
        } + store.computed(of: p).filter { !$0.value.isNull }.map { "\($0.trait)=\(JSON.encode($0.value))@computed" }
      let syncedTraits = try await WH.rows(
        url,
        "SELECT trait || '=' || value::text || '@' || source AS t FROM \(schema).profile_traits WHERE profile_id = '\(p)'"
      )
      #expect(syncedTraits == traits.sorted().map { JSON.encode(.map(["t": .string($0)])) }, "traits of \(p)")
      let syncedIDs = try await WH.rows(
        url, "SELECT kind || ':' || value AS i FROM \(schema).identifiers WHERE profile_id = '\(p)'")
      #expect(syncedIDs == ids.map { JSON.encode(.map(["i": .string("\($0.0.kind):\($0.0.value)")])) }.sorted())
    }
    let members = try await store.members(of: "buyers").map(\.profile.description).sorted()
    let syncedMembers = try await WH.rows(
      url, "SELECT profile_id FROM \(schema).segment_memberships WHERE segment = 'buyers'")
    #expect(syncedMembers == members.map { JSON.encode(.map(["profile_id": .string($0)])) })
    let events = try await store.stats().events
    #expect(try await WH.rows(url, "SELECT source, event_id FROM \(schema).events").count == events)
  }

  @Test func syncFollowsMergesUnmergesAndErasures() async throws {
    try await withCluster { cluster in
      let url = try await cluster.newDatabase("warehouse")
      let dir = FileManager.default.temporaryDirectory.appendingPathComponent("tessera-sync-\(UUID().uuidString)").path
      try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
      defer { try? FileManager.default.removeItem(atPath: dir) }
      let plan = try Self.setUp(warehouse: url, in: dir)
      let store = try SQLiteStore(path: dir + "/store.sqlite")
      var readers: [Int: any SourceReader] = [:]
      for (i, s) in plan.config.sources.enumerated() { readers[i] = FileSourceReader(source: s) }
      _ = try await PipelineRunner(plan: plan, store: store, readers: readers, workers: 2, now: Self.now).run()
      let warehouse = try #require(plan.config.syncs.first { $0.name == "warehouse" })
      let fresh = try #require(plan.config.syncs.first { $0.name == "fresh" })

      let first = try await ProfileSync(sync: warehouse, config: plan.config, store: store).run()
      #expect(first.tables.map(\.table) == Self.tables)
      #expect(first.rowsWritten == first.rows)
      try await Self.expectMatchesStore(url, "analytics", store)
      // Carl's two profiles merged (e8): one merge with its evidence, the absorbed id resolves to the survivor.
      let merges = try await WH.rows(url, "SELECT kind, survivor_id, absorbed_id, profile_id FROM analytics.merge_log")
      #expect(merges.count == 1)
      let carl = try #require(try await store.profile(for: Identifier("email", "carl@example.com")))
      #expect(merges.first?.contains(#""profile_id":"\#(carl)""#) == true)
      #expect(try await WH.rows(url, "SELECT * FROM analytics.profile_aliases").count == 1)

      // A second sync with nothing new writes nothing.
      let again = try await ProfileSync(sync: warehouse, config: plan.config, store: store).run()
      #expect(again.rowsWritten == 0)
      #expect(again.tables.allSatisfy { $0.deleted == 0 })

      // Unmerge Carl's profiles (as `tessera unmerge` does), then erase Bob.
      let m = try #require(try await store.merges(involving: carl).first)
      var separation = CommitBatch()
      separation.separations = [Separation(m.evidence[0], m.evidence[1])]
      try await store.commit(separation)
      _ = try await ReplayReport.apply(plan: plan, store: store, now: Self.now)
      let bob = try #require(try await store.profile(for: Identifier("email", "bob@example.com")))
      _ = try await Deletion.erase(bob, in: store, config: plan.config, at: Self.now)

      let incremental = try await ProfileSync(sync: warehouse, config: plan.config, store: store).run()
      #expect(incremental.tables.contains { $0.deleted > 0 })
      try await Self.expectMatchesStore(url, "analytics", store)
      #expect(
        try await WH.rows(url, "SELECT kind FROM analytics.merge_log").contains(#"{"kind":"unmerge"}"#))
      // The erased person is in no synced table.
      for t in Self.tables {
        let left = try await WH.rows(
          url,
          "SELECT 1 AS x FROM analytics.\(t) t WHERE t::text LIKE '%bob@example.com%' OR t::text LIKE '%\(bob)\"%' OR t::text LIKE '%Bob%'"
        )
        #expect(left.isEmpty, "\(t) still holds the erased person")
      }
      // Equal, table by table and row by row, to a fresh sync of the same store.
      _ = try await ProfileSync(sync: fresh, config: plan.config, store: store).run()
      for t in Self.tables {
        let a = try await WH.rows(url, "SELECT * FROM analytics.\(t)")
        let b = try await WH.rows(url, "SELECT * FROM fresh.\(t)")
        #expect(a == b, "table \(t)")
        #expect(!a.isEmpty || t == "profile_aliases", "table \(t) is empty")
      }
    }
  }

  /// Rows go out with `COPY`: text with tabs, newlines, backslashes and quotes arrives as the store has it, and
  /// rows whose stored hash no longer matches (changed by hand, or written by an older sync) are rewritten
  /// through the merge of a later sync, leaving every table equal to a fresh sync.
  @Test func copiedRowsKeepAwkwardTextAndChangedRowsAreRewritten() async throws {
    try await withCluster { cluster in
      let url = try await cluster.newDatabase("warehouse")
      let dir = try WH.tempDir()
      defer { try? FileManager.default.removeItem(atPath: dir) }
      let awkward = [
        #"{"id":"x1","ts":"2026-01-01T00:00:00Z","anon":"a\tb","name":"tab\there, line\nbreak, back\\slash \"q\" \\N é","revenue":120}"#,
        #"{"id":"x2","ts":"2026-01-02T00:00:00Z","anon":"a9","name":"\\","revenue":5}"#,
      ]
      let plan = try Self.setUp(warehouse: url, in: dir, events: Self.events + awkward)
      let store = MemoryStore()
      var readers: [Int: any SourceReader] = [:]
      for (i, s) in plan.config.sources.enumerated() { readers[i] = FileSourceReader(source: s) }
      _ = try await PipelineRunner(plan: plan, store: store, readers: readers, workers: 2, now: Self.now).run()
      let warehouse = try #require(plan.config.syncs.first { $0.name == "warehouse" })
      let fresh = try #require(plan.config.syncs.first { $0.name == "fresh" })

      _ = try await ProfileSync(sync: warehouse, config: plan.config, store: store).run()
      try await Self.expectMatchesStore(url, "analytics", store)
      let names = try await WH.rows(url, "SELECT value_text FROM analytics.profile_traits WHERE trait = 'name'")
      #expect(
        names.contains(JSON.encode(.map(["value_text": .string("tab\there, line\nbreak, back\\slash \"q\" \\N é")]))))
      #expect(names.contains(JSON.encode(.map(["value_text": .string("\\")]))))
      #expect(try await WH.rows(url, "SELECT 1 FROM analytics.identifiers WHERE value = E'a\\tb'").count == 1)

      // Two profiles' rows changed behind the sync's back, one identifier's hash from an older sync.
      try await WH.execute(
        url,
        [
          "UPDATE analytics.profiles SET traits = '{}', sync_hash = 'x' WHERE profile_id IN (SELECT profile_id FROM analytics.profiles ORDER BY 1 LIMIT 2)",
          "UPDATE analytics.identifiers SET sync_hash = 'abc' WHERE value = 'a9'",
        ])
      let again = try await ProfileSync(sync: warehouse, config: plan.config, store: store).run()
      #expect(again.tables.first { $0.table == "profiles" }?.written == 2)
      #expect(again.tables.first { $0.table == "identifiers" }?.written == 1)
      #expect(again.rowsWritten == 3)
      _ = try await ProfileSync(sync: fresh, config: plan.config, store: store).run()
      for t in Self.tables {
        let a = try await WH.rows(url, "SELECT * FROM analytics.\(t)")
        let b = try await WH.rows(url, "SELECT * FROM fresh.\(t)")
        #expect(a == b, "table \(t)")
      }
    }
  }

  /// The README's two queries, on a sync of the example pipeline: the audience size of the last week is the
  /// segment's size, and each customer's revenue is their `revenue_total`.
  @Test func theReadmeQueriesAnswerFromTheExample() async throws {
    try await withCluster { cluster in
      let url = try await cluster.newDatabase("analytics")
      let root = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
        .deletingLastPathComponent().path
      let dir = try WH.tempDir()
      defer { try? FileManager.default.removeItem(atPath: dir) }
      // The example pipeline with a `sync:`, beside links to the rules and data it reads.
      for d in ["rules", "examples"] {
        try FileManager.default.createSymbolicLink(atPath: dir + "/" + d, withDestinationPath: root + "/" + d)
      }
      try FileManager.default.createDirectory(atPath: dir + "/pipelines", withIntermediateDirectories: true)
      let retail = try String(contentsOfFile: root + "/pipelines/retail.yaml", encoding: .utf8)
      try (retail + "\nsync:\n  analytics:\n    database: ${WH_URL}\n    schema: tessera\n").write(
        toFile: dir + "/pipelines/retail.yaml", atomically: true, encoding: .utf8)
      let result = Compiler(environment: ["WH_URL": url]).compile(pipeline: dir + "/pipelines/retail.yaml")
      let plan = try #require(result.plan, "\(result.rendered())")
      let store = MemoryStore()
      var readers: [Int: any SourceReader] = [:]
      for (i, s) in plan.config.sources.enumerated() where s.kind.readsFiles {
        readers[i] = FileSourceReader(source: s)
      }
      _ = try await PipelineRunner(plan: plan, store: store, readers: readers, workers: 2, now: Self.now).run()
      let sync = try #require(plan.config.syncs.first)
      _ = try await ProfileSync(sync: sync, config: plan.config, store: store).run()

      let readme = try String(contentsOfFile: root + "/README.md", encoding: .utf8)
      let queries = readme.components(separatedBy: "```sql\n").dropFirst().map {
        $0.components(separatedBy: "```")[0].trimmingCharacters(in: .whitespacesAndNewlines)
          .trimmingCharacters(in: CharacterSet(charactersIn: ";"))
      }
      try #require(queries.count == 2)
      let weeks = try await WH.rows(url, queries[0])
      let members = await store.members(of: "high_value").count
      #expect(!weeks.isEmpty)
      #expect(weeks.last?.hasSuffix(#""audience_size":\#(members)}"#) == true, "\(weeks)")
      let revenue = try await WH.rows(url, "SELECT profile_id, revenue::float8 AS revenue FROM (\(queries[1])) q")
      #expect(!revenue.isEmpty)
      for row in revenue {
        let fields = try JSON.parse(row)
        guard case .map(let m) = fields, let p = m["profile_id"]?.stringValue.flatMap(ProfileID.init(parsing:)) else {
          Issue.record("unexpected row \(row)")
          continue
        }
        let total = await store.computed(of: p).first { $0.trait == "revenue_total" }?.value
        #expect(total?.doubleValue.map { abs($0 - (m["revenue"]?.doubleValue ?? 0)) < 1e-6 } == true, "\(row)")
      }
    }
  }
}
