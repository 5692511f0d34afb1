import Foundation
import PostgresNIO
import Synchronization
import TesseraCompiler
import TesseraModel
import TesseraPostgres
import TesseraPostgresCluster
import TesseraRuntime
import TesseraSQLite
import TesseraStore
import TesseraWarehouse
import Testing

/// `kind: postgres` sources against a throwaway cluster: the rows past the stored cursor are read, mapped and
/// committed with the cursor; nothing is skipped or read twice.
@Suite(
  .serialized,
  .enabled(if: PostgresCluster.available, "PostgreSQL server binaries not found; skipping (set TESSERA_PG_BIN)"))
struct PostgresSourceTests {
  static let now = Timestamp(iso8601: "2026-06-30T00:00:00Z") ?? Timestamp(microseconds: 0)

  /// A pipeline reading `crm_contacts` at `url` in pages of `pageRows` rows.
  static func pipeline(url: String, in dir: String, pageRows: Int = 3, poll: String = "10s") throws -> PipelinePlan {
    let path = dir + "/crm.yaml"
    try """
    pipeline: crm
    identifiers:
      user_id: { normalize: trim, max_per_profile: 1, priority: 1 }
      email: { normalize: email, priority: 2 }
    deterministic:
      ids: { link_on: [user_id, email] }
    sources:
      crm:
        kind: postgres
        url: ${CRM_URL}
        table: public.crm_contacts
        cursor: updated_at
        poll: \(poll)
        batch_rows: \(pageRows)
        timestamp: updated_at
        schema:
          required: [customer_no]
          types: { lifetime_value: double }
        map:
          user_id: customer_no
          email: email
          traits.first_name: first_name
          traits.lifetime_value: lifetime_value
    """.write(toFile: path, atomically: true, encoding: .utf8)
    let result = Compiler(environment: ["CRM_URL": url]).compile(pipeline: path)
    return try #require(result.plan, "\(result.rendered())")
  }

  static let createTable = """
    CREATE TABLE crm_contacts (customer_no TEXT PRIMARY KEY, email TEXT, first_name TEXT, lifetime_value TEXT,
      updated_at TIMESTAMPTZ NOT NULL)
    """

  /// `n` contacts; every two share an `updated_at`, so pages of 3 end inside a run of equal cursor values.
  static func contacts(_ range: Range<Int>, day: Int = 1) -> String {
    let values = range.map { i in
      "('C\(i)', 'c\(i)@example.com', 'Name\(i)', '\(i * 10).5', '2026-01-0\(day) 00:00:\(String(format: "%02d", i / 2))+00')"
    }
    return "INSERT INTO crm_contacts VALUES " + values.joined(separator: ", ")
  }

  static func run(_ plan: PipelinePlan, _ store: any Store, commitEvents: Int = 65_536) async throws -> (
    RunSummary, [RejectedRecord]
  ) {
    var runner = PipelineRunner(
      plan: plan, store: store, readers: try TableSources.readers(plan.config, store: store, batchSize: 2),
      workers: 2, now: now)
    runner.commitEvents = commitEvents
    let rejected = Rejected()
    runner.onRejected = { rejected.add($0) }
    let summary = try await runner.run()
    return (summary, rejected.all)
  }

  final class Rejected: Sendable {
    let state = Mutex<[RejectedRecord]>([])
    func add(_ r: [RejectedRecord]) { state.withLock { $0 += r } }
    var all: [RejectedRecord] { state.withLock { $0 } }
  }

  @Test func runReadsPastTheCursorAndUpdatedRowsArriveAsNewEvents() async throws {
    try await withCluster { cluster in
      let url = try await cluster.newDatabase("crm")
      try await WH.execute(url, [Self.createTable, Self.contacts(0..<7)])
      let dir = try WH.tempDir()
      defer { try? FileManager.default.removeItem(atPath: dir) }
      let plan = try Self.pipeline(url: url, in: dir)
      let store = try SQLiteStore(path: dir + "/store.sqlite")

      let (first, _) = try await Self.run(plan, store)
      #expect(first.recordsRead == 7)
      #expect(first.stats.events == 7)
      #expect(try await store.stats().events == 7)
      #expect(try await store.loadSourceCursors()["crm"] == "timestamp with time zone:2026-01-01 00:00:03+00")

      // Nothing new: nothing read.
      let (again, _) = try await Self.run(plan, store)
      #expect(again.recordsRead == 0)
      #expect(again.stats.events == 0)

      // Two new rows and one updated (same key, newer cursor): three records, three new events.
      try await WH.execute(
        url,
        [
          Self.contacts(7..<9, day: 2),
          "UPDATE crm_contacts SET first_name = 'Renamed', updated_at = '2026-01-02 00:00:00+00' WHERE customer_no = 'C2'",
        ])
      let (third, _) = try await Self.run(plan, store)
      #expect(third.recordsRead == 3)
      #expect(third.stats.events == 3)
      #expect(try await store.stats().events == 10)
      let profile = try #require(try await store.profile(for: Identifier("user_id", "C2")))
      let traits = Dictionary(uniqueKeysWithValues: try await store.traits(of: profile).map { ($0.trait, $0.value) })
      #expect(traits["first_name"] == .string("Renamed"))
      #expect(traits["lifetime_value"] == .double(20.5))
      #expect(try await store.events(of: profile, limit: 10).count == 2)
    }
  }

  @Test func aRowThatFailsTheSchemaIsRejectedWithTableAndCursor() async throws {
    try await withCluster { cluster in
      let url = try await cluster.newDatabase("crm")
      try await WH.execute(
        url,
        [
          Self.createTable, Self.contacts(0..<2),
          "INSERT INTO crm_contacts VALUES ('C9', 'c9@example.com', 'Bad', 'lots', '2026-01-01 00:00:09+00')",
          "INSERT INTO crm_contacts VALUES ('', 'nobody@example.com', 'Blank', '1', '2026-01-01 00:00:10+00')",
        ])
      let dir = try WH.tempDir()
      defer { try? FileManager.default.removeItem(atPath: dir) }
      let plan = try Self.pipeline(url: url, in: dir)
      let store = MemoryStore()
      let (summary, rejected) = try await Self.run(plan, store)
      #expect(summary.stats.events == 2)
      #expect(summary.stats.rejected == 2)
      let reasons = rejected.map(\.reason).sorted()
      #expect(
        reasons == [
          "public.crm_contacts at updated_at = 2026-01-01 00:00:09+00: field `lifetime_value`: expected double, found \"lots\"",
          "public.crm_contacts at updated_at = 2026-01-01 00:00:10+00: missing required field `customer_no`",
        ])
      #expect(rejected.allSatisfy { $0.source == "crm" && $0.record.hasPrefix("{\"customer_no\"") })
      // The rejected rows are behind the cursor too: a rerun does not reject them again.
      #expect(await store.loadSourceCursors()["crm"] == "timestamp with time zone:2026-01-01 00:00:10+00")
      let (again, _) = try await Self.run(plan, store)
      #expect(again.recordsRead == 0)
    }
  }

  /// Each row reaches the mapping as the object `row_to_json` makes of it, whatever its columns' types: the ones
  /// the reader writes from the binary rows itself (integers, floats, text with quotes and control characters,
  /// times, dates, uuid, json) and the ones it asks PostgreSQL for as `to_json` (numeric, arrays). An integer
  /// cursor is printed by the reader, a numeric one (from a `query:`) by PostgreSQL; both read on from where
  /// they stopped.
  @Test func rowsReadAsRowToJSONWritesThemAndOtherCursorTypesResume() async throws {
    try await withCluster { cluster in
      let url = try await cluster.newDatabase("crm")
      let create = """
        CREATE TABLE typed (id integer, t text, n bigint, s smallint, f float8, whole float8, big float8, g float4,
          gw float4, b boolean, v varchar(20), c char(3), ts timestamptz, tn timestamp, d date, u uuid, j jsonb,
          js json, num numeric(10,2), arr text[], nothing text, nan float8)
        """
      func rows(_ ids: ClosedRange<Int>) -> String {
        "INSERT INTO typed SELECT i, 'a\"b\\\\c' || chr(10) || chr(9) || 'é ' || i, 9007199254740993 + i, -i, 1.5 + i,"
          + " 3, 1e300, 0.1, 2e6, i % 2 = 0, 'v' || i, 'c', '2026-01-01 00:00:01.25+00'::timestamptz + i * interval '1 day',"
          + " '1999-12-31 23:59:59', '0044-03-15', 'a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11', '{\"a\": [1, 2.5, {\"b\": null}]}',"
          + " '{ \"x\" : 1 }', 12.50 + i, '{a,b}', NULL, CASE WHEN i = 1 THEN 'NaN'::float8 ELSE '-Infinity' END"
          + " FROM generate_series(\(ids.lowerBound), \(ids.upperBound)) AS i"
      }
      try await WH.execute(url, [create, rows(1...3)])
      let dir = try WH.tempDir()
      defer { try? FileManager.default.removeItem(atPath: dir) }
      try """
      pipeline: typed
      identifiers:
        user_id: { normalize: trim }
      deterministic:
        ids: { link_on: [user_id] }
      sources:
        typed:
          kind: postgres
          url: ${CRM_URL}
          table: typed
          cursor: id
          batch_rows: 2
          emit: track
          event: Row
          map:
            user_id: t
        numbered:
          kind: postgres
          url: ${CRM_URL}
          query: SELECT id::numeric AS k, t FROM typed
          cursor: k
          batch_rows: 2
          emit: track
          event: Row
          map:
            user_id: t
      """.write(toFile: dir + "/typed.yaml", atomically: true, encoding: .utf8)
      let result = Compiler(environment: ["CRM_URL": url]).compile(pipeline: dir + "/typed.yaml")
      let plan = try #require(result.plan, "\(result.rendered())")
      let store = MemoryStore()

      let (first, rejected) = try await Self.run(plan, store)
      #expect(rejected.isEmpty)
      #expect(first.recordsRead == 6)
      let expected = try await WH.rows(url, "SELECT * FROM typed").map { try JSON.parse($0) }
      let records = try await store.loadEvents().filter { $0.event.source == "typed" }.map {
        try JSON.parse(try #require($0.event.record).description)
      }
      #expect(records.count == 3)
      #expect(Set(records) == Set(expected))
      #expect(await store.loadSourceCursors()["typed"] == "integer:3")
      #expect(await store.loadSourceCursors()["numbered"] == "numeric:3")

      try await WH.execute(url, [rows(4...5)])
      let (second, _) = try await Self.run(plan, store)
      #expect(second.recordsRead == 4)
      #expect(await store.loadSourceCursors()["typed"] == "integer:5")
      #expect(await store.loadSourceCursors()["numbered"] == "numeric:5")
      #expect(try await store.loadEvents().count == 10)
    }
  }

  /// A run stopped after its first transactions resumes from the cursor those transactions committed: the
  /// second run reads exactly the rows the first did not store, and the store ends with every row once.
  @Test func aRunStoppedPartwayResumesWithoutSkippingOrRepeating() async throws {
    try await withCluster { cluster in
      let url = try await cluster.newDatabase("crm")
      try await WH.execute(url, [Self.createTable, Self.contacts(0..<60)])
      let dir = try WH.tempDir()
      defer { try? FileManager.default.removeItem(atPath: dir) }
      let plan = try Self.pipeline(url: url, in: dir, pageRows: 4)
      let store = try SQLiteStore(path: dir + "/store.sqlite")
      let first = Task { try await Self.run(plan, store, commitEvents: 4) }
      while try await store.stats().events < 8 { try await Task.sleep(for: .milliseconds(1)) }
      first.cancel()
      _ = try? await first.value
      let stored = try await store.stats().events
      #expect(stored < 60, "the run finished before it was stopped")
      let (second, _) = try await Self.run(plan, store)
      #expect(second.recordsRead == 60 - stored)
      #expect(second.stats.duplicates == 0)
      #expect(try await store.stats().events == 60)
    }
  }

  /// `tessera run` killed with SIGKILL in the middle of a table: the cursor it committed covers exactly the
  /// events it committed, and the next run stores the rest, each row once.
  @Test(.enabled(if: Self.binary != nil, "no built `tessera`; run `swift build --build-tests` first"))
  func killedRunResumesAtItsCommittedCursor() async throws {
    try await withCluster { cluster in
      let url = try await cluster.newDatabase("crm")
      let storeURL = try await cluster.newDatabase("store")
      let n = 8000
      try await WH.execute(
        url,
        [
          Self.createTable,
          """
          INSERT INTO crm_contacts SELECT 'C' || i, 'c' || i || '@example.com', 'Name' || i, i::text,
            timestamptz '2026-01-01' + (i / 3) * interval '1 second' FROM generate_series(1, \(n)) AS i
          """,
        ])
      let dir = try WH.tempDir()
      defer { try? FileManager.default.removeItem(atPath: dir) }
      _ = try Self.pipeline(url: url, in: dir, pageRows: 500)
      let arguments = [
        "run", dir + "/crm.yaml", "--store", storeURL, "--commit-events", "200", "--workers", "1", "--progress", "none",
      ]
      let process = try Self.start(arguments, environment: ["CRM_URL": url])
      // Once some transactions are in, kill it without warning.
      let deadline = ContinuousClock.now + .seconds(60)
      // (The store's tables appear when the run has migrated it.)
      while (try? await Self.count(storeURL, "SELECT count(*) FROM events")) ?? 0 < 200, ContinuousClock.now < deadline
      {
        try await Task.sleep(for: .milliseconds(5))
      }
      process.signal(SIGKILL)
      _ = await process.wait(atMost: .seconds(30))
      let stored = try await Self.count(storeURL, "SELECT count(*) FROM events")
      #expect(stored > 0 && stored < n, "stored \(stored) of \(n) before the kill")
      let cursor = try #require(
        try await WH.rows(storeURL, "SELECT value FROM source_cursors WHERE source = 'crm'").first)
      let value = String(cursor.dropFirst(#"{"value":"timestamp with time zone:"#.count).dropLast(2))
      #expect(
        try await Self.count(url, "SELECT count(*) FROM crm_contacts WHERE updated_at <= '\(value)'") == stored,
        "the cursor \(value) and the \(stored) events stored are not the same rows")

      let again = try Self.start(arguments, environment: ["CRM_URL": url])
      #expect(await again.wait(atMost: .seconds(300)) == 0)
      #expect(try await Self.count(storeURL, "SELECT count(*) FROM events") == n)
      #expect(try await Self.count(storeURL, "SELECT count(DISTINCT profile_id) FROM events") == n)
    }
  }

  /// The `tessera` executable built with the tests.
  static let binary: String? = {
    let beside = URL(fileURLWithPath: CommandLine.arguments.first ?? "").deletingLastPathComponent()
      .appendingPathComponent("tessera").path
    let root = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
      .deletingLastPathComponent().path
    return [beside, root + "/.build/debug/tessera"].first { FileManager.default.isExecutableFile(atPath: $0) }
  }()

  static func start(_ arguments: [String], environment: [String: String]) throws -> ChildProcess {
    try ChildProcess.spawn(
      try #require(binary), arguments,
      environment: ProcessInfo.processInfo.environment.merging(environment) { $1 })
  }

  static func count(_ url: String, _ sql: String) async throws -> Int {
    let row = try await WH.rows(url, "SELECT (\(sql)) AS n").first ?? ""
    return Int(row.dropFirst(#"{"n":"#.count).dropLast()) ?? -1
  }

  /// Under `tessera serve` the writer's graph polls the table: rows inserted while it runs arrive.
  @Test func servePollsForNewRows() async throws {
    try await withCluster { cluster in
      let url = try await cluster.newDatabase("crm")
      try await WH.execute(url, [Self.createTable, Self.contacts(0..<5)])
      let dir = try WH.tempDir()
      defer { try? FileManager.default.removeItem(atPath: dir) }
      let plan = try Self.pipeline(url: url, in: dir, poll: "50ms")
      let store = try SQLiteStore(path: dir + "/store.sqlite")
      let pipeline = LivePipeline(
        plan: plan, store: store, tickEvery: nil, workers: 2,
        sourceReaders: TableSources.polling(plan.config, store: store))
      let running = Task { try await pipeline.run() }
      try await Self.waitFor(events: 5, in: store)
      try await WH.execute(url, [Self.contacts(5..<8, day: 2)])
      try await Self.waitFor(events: 8, in: store)
      pipeline.close()
      try await running.value
      #expect(try await store.stats().events == 8)
      #expect(try await store.loadSourceCursors()["crm"] == "timestamp with time zone:2026-01-02 00:00:03+00")
      #expect(try await store.profile(for: Identifier("user_id", "C7")) != nil)
    }
  }

  static func waitFor(events n: Int, in store: any Store) async throws {
    let deadline = ContinuousClock.now + .seconds(30)
    while try await store.stats().events < n {
      guard ContinuousClock.now < deadline else {
        Issue.record("waited 30 s for \(n) events; the store has \(try await store.stats().events)")
        return
      }
      try await Task.sleep(for: .milliseconds(20))
    }
  }
}
