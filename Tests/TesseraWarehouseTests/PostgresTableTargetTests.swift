import Foundation
import PostgresNIO
import TesseraCompiler
import TesseraDelivery
import TesseraModel
import TesseraPostgres
import TesseraPostgresCluster
import TesseraStore
import Testing

/// `table` destinations in PostgreSQL: batched upserts by key, the table created on first use, new payload
/// keys added as columns, deletion notices and exits applied as deletes.
@Suite(
  .serialized,
  .enabled(if: PostgresCluster.available, "PostgreSQL server binaries not found; skipping (set TESSERA_PG_BIN)"))
struct PostgresTableTargetTests {
  static let at = Timestamp(microseconds: 1_790_000_000_000_000)
  static let clock: @Sendable () -> Timestamp = { at }

  static func batch(_ id: Int64) -> DeliveryBatchRecord {
    DeliveryBatchRecord(
      id: id, destination: "t", key: "k\(id)", status: .sending, attempts: 0, items: 1, bytes: 1, createdAt: at,
      nextAttemptAt: at)
  }

  static func row(_ op: OutboxOp, _ profile: Int64, _ payload: [String: Value], key: String = "") -> OutboxRecord {
    OutboxRecord(destination: "t", op: op, profile: ProfileID(profile), key: key, payload: .map(payload), at: at)
  }

  @Test func profileTableUpsertsAddsColumnsAndDeletes() async throws {
    try await withCluster { cluster in
      let url = try await cluster.newDatabase("tables")
      let target = try PostgresTableTarget(
        url: url, table: "customers", trigger: .profile_changes,
        payload: [("email", .string), ("spend", .double)], clock: Self.clock)
      let first = await target.send(
        Self.batch(1),
        [
          Self.row(.upsert, 1, ["email": .string("a@x.com"), "spend": .double(10)]),
          Self.row(.upsert, 2, ["email": .string("b@x.com"), "spend": .double(5)]),
          // The same key twice in one batch: the last row wins.
          Self.row(.upsert, 1, ["email": .string("a@x.com"), "spend": .double(30.5)]),
        ])
      #expect(first == .delivered)
      try await target.close()
      let wider = try PostgresTableTarget(
        url: url, table: "customers", trigger: .profile_changes,
        payload: [("email", .string), ("spend", .double), ("vip", .bool), ("since", .timestamp)], clock: Self.clock)
      #expect(
        await wider.send(
          Self.batch(2),
          [
            Self.row(
              .upsert, 2,
              ["email": .string("b@x.com"), "spend": .int(7), "vip": .bool(true), "since": .timestamp(Self.at)])
          ]) == .delivered)
      #expect(
        await wider.send(Self.batch(3), [Self.row(.delete, 3, ["profiles": .list([.string("prf_1")])])]) == .delivered)
      try await wider.close()
      let rows = try await WH.rows(
        url, "SELECT profile_id, email, spend, vip, since = to_timestamp(1790000000) AS since_ok FROM customers")
      #expect(rows == [#"{"profile_id":"prf_2","email":"b@x.com","spend":7,"vip":true,"since_ok":true}"#])
      let types = try await WH.rows(
        url,
        "SELECT column_name, data_type FROM information_schema.columns WHERE table_name = 'customers' AND column_name IN ('spend', 'vip', 'since')"
      )
      #expect(
        types == [
          #"{"column_name":"since","data_type":"timestamp with time zone"}"#,
          #"{"column_name":"spend","data_type":"numeric"}"#, #"{"column_name":"vip","data_type":"boolean"}"#,
        ])
    }
  }

  @Test func membershipTableEntersAndExits() async throws {
    try await withCluster { cluster in
      let url = try await cluster.newDatabase("tables")
      let target = try PostgresTableTarget(
        url: url, table: "audience", trigger: .segment_changes, payload: [("email", .string)], clock: Self.clock)
      let outcome = await target.send(
        Self.batch(1),
        [
          Self.row(.enter, 1, ["email": .string("a@x.com")], key: "big"),
          Self.row(.enter, 2, ["email": .string("b@x.com")], key: "big"),
          Self.row(.enter, 1, ["email": .string("a@x.com")], key: "lapsed"),
          Self.row(.exit, 1, ["email": .string("a@x.com")], key: "big"),
          Self.row(.enter, 3, ["email": .string("c@x.com")], key: "big"),
        ])
      #expect(outcome == .delivered)
      try await target.close()
      #expect(
        try await WH.rows(url, "SELECT segment, profile_id FROM audience") == [
          #"{"segment":"big","profile_id":"prf_2"}"#, #"{"segment":"big","profile_id":"prf_3"}"#,
          #"{"segment":"lapsed","profile_id":"prf_1"}"#,
        ])
    }
  }

  /// A `database: postgres://…` table destination is delivered by the PostgreSQL target.
  @Test func aPostgresDatabaseMakesAPostgresTarget() async throws {
    let dir = FileManager.default.temporaryDirectory.appendingPathComponent("tessera-tt-\(UUID().uuidString)").path
    try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
    defer { try? FileManager.default.removeItem(atPath: dir) }
    try """
    pipeline: t
    identifiers:
      email: { normalize: email }
    sources:
      f:
        kind: ndjson
        path: f.ndjson
        emit: identify
        map: { email: email }
    destinations:
      warehouse:
        kind: table
        on: profile_changes
        database: postgres://tessera@127.0.0.1:5432/analytics
        table: customers
        payload: { email: identifiers.email }
    """.write(toFile: dir + "/t.yaml", atomically: true, encoding: .utf8)
    let result = Compiler(environment: [:]).compile(pipeline: dir + "/t.yaml")
    let plan = try #require(result.plan, "\(result.rendered())")
    let client = DeliveryQueue.makeClient()
    let queues = try DeliveryQueue.plan(plan.config, storePath: dir + "/s.sqlite", client: client, clock: Self.clock)
    #expect(queues.count == 1)
    #expect(queues.first?.target is PostgresTableTarget)
    try await client.shutdown()
  }

}
