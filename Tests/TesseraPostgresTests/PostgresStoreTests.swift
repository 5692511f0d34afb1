import Foundation
import PostgresNIO
import TesseraIdentity
import TesseraModel
import TesseraPostgresCluster
import TesseraStore
import TesseraStoreSuite
import Testing

@testable import TesseraPostgres

func report(_ failures: [String]) {
  for f in failures { print("FAIL \(f)") }
}

func at(_ seconds: Int64) -> Timestamp { Timestamp(microseconds: 1_700_000_000_000_000 + seconds * 1_000_000) }

/// Every test starts its own cluster (stopped and removed afterwards, also on failure). Serialized: the
/// machine is small, and each test already runs work concurrently inside.
@Suite(
  .serialized,
  .enabled(if: PostgresCluster.available, "PostgreSQL server binaries not found; skipping (set TESSERA_PG_BIN)"))
struct PostgresStoreTests {
  @Test func behaviourSuite() async throws {
    try await withCluster { cluster in
      var n = 0
      var stores: [PostgresStore] = []
      let failures = try await StoreSuite.run {
        n += 1
        let store = try await PostgresStore(url: try await cluster.newDatabase("suite\(n)"), maximumConnections: 2)
        stores.append(store)
        return store
      }
      for s in stores { await s.close() }
      report(failures)
      #expect(n == StoreSuite.checks.count)
      #expect(failures == [])
    }
  }

  /// A writer restarted on the database (a new pool, as a new process) links a browser to a device seen
  /// before the restart; an erased person's sightings are gone (`SightingRestart`). Schema 11 holds them.
  @Test func sightingsSurviveARestart() async throws {
    try await withCluster { cluster in
      let url = try await cluster.newDatabase("sightings")
      var opened: [PostgresStore] = []
      let failures = try await SightingRestart.run {
        if let last = opened.last { await last.close() }
        let store = try await PostgresStore(url: url, maximumConnections: 2)
        opened.append(store)
        return store
      }
      #expect(PostgresStore.schemaVersion == 14)
      // Left: the third browser's own sighting (the erased person's were gone before it came).
      #expect(try await Self.scalar(url, "SELECT count(*) FROM sightings") == 1)
      if let last = opened.last { await last.close() }
      report(failures)
      #expect(failures == [])
    }
  }

  /// A batch refused partway (a profile merged into itself, refused by the CHECK after the batch's profiles,
  /// events, releases and a first merge were written) leaves nothing behind.
  @Test func refusedBatchIsRolledBack() async throws {
    try await withCluster { cluster in
      let store = try await PostgresStore(url: try await cluster.newDatabase("atomic"))
      let failures = try await StoreSuite.checkAtomicity(of: store) { b in
        b.merges.append(
          MergeRecord(
            survivor: ProfileID(3), absorbed: ProfileID(3), rule: "bad", evidence: [], eventID: "z1",
            at: Timestamp(microseconds: 0)))
      }
      await store.close()
      report(failures)
      #expect(failures == [])
    }
  }

  /// The schema is versioned in `meta`; opening again (two processes at once) migrates once and keeps data.
  @Test func migrationsRunOnceAndDataSurvivesReopening() async throws {
    try await withCluster { cluster in
      let url = try await cluster.newDatabase("reopen")
      async let a = PostgresStore(url: url)
      async let b = PostgresStore(url: url)
      let (first, second) = try await (a, b)
      var batch = CommitBatch()
      batch.newProfiles = [NewProfile(ProfileID(1), createdAt: at(0))]
      batch.identifiers = [IdentifierRow(Identifier("email", "ada@example.com"), of: ProfileID(1), seen: at(0))]
      try await first.commit(batch)
      await first.close()
      await second.close()
      let again = try await PostgresStore(url: url)
      #expect(try await again.profile(for: Identifier("email", "ada@example.com")) == ProfileID(1))
      let version = try await Self.scalar(url, "SELECT value FROM meta WHERE key = 'schema_version'")
      #expect(version == Int64(PostgresStore.schemaVersion))
      await again.close()
    }
  }

  /// Two stores (two pools, as two processes) commit batches concurrently. Each gives every person a
  /// profile of its own (disjoint ids: odd and even) holding the person's `user_id` and one identifier only
  /// it knows; the second goes through the people in reverse order so the two collide everywhere. In the end
  /// every identifier has exactly one live owner, each person is one live profile holding all three
  /// identifiers, and every commit went through (no deadlock escaped the retries).
  @Test func concurrentWritersKeepOneOwnerPerIdentifier() async throws {
    try await withCluster { cluster in
      let url = try await cluster.newDatabase("writers")
      let a = try await PostgresStore(url: url, maximumConnections: 4)
      let b = try await PostgresStore(url: url, maximumConnections: 4)
      let people = 600
      let perBatch = 40
      func batches(odd: Bool) -> [CommitBatch] {
        let order = odd ? Array(0..<people) : Array((0..<people).reversed())
        return stride(from: 0, to: people, by: perBatch).map { start in
          var batch = CommitBatch()
          for k in order[start..<min(start + perBatch, people)] {
            let p = ProfileID(Int64(2 * k + (odd ? 1 : 2)))
            let own = odd ? Identifier("email", "p\(k)@example.com") : Identifier("phone", "+1555\(k)")
            batch.newProfiles.append(NewProfile(p, createdAt: at(Int64(k))))
            batch.identifiers.append(IdentifierRow(Identifier("user_id", "u\(k)"), of: p, seen: at(Int64(k))))
            batch.identifiers.append(IdentifierRow(own, of: p, seen: at(Int64(k))))
            batch.events.append(
              StoredEvent(
                event: Event(
                  id: "\(odd ? "a" : "b")\(k)", source: "web", type: "identify", name: nil, timestamp: at(Int64(k)),
                  receivedAt: at(Int64(k)), identifiers: [Identifier("user_id", "u\(k)"), own]),
                profile: p))
          }
          return batch
        }
      }
      try await withThrowingTaskGroup(of: Void.self) { group in
        group.addTask { for x in batches(odd: true) { try await a.commit(x) } }
        group.addTask { for x in batches(odd: false) { try await b.commit(x) } }
        try await group.waitForAll()
      }
      let snap = try await a.loadIdentity()
      var owners: [Identifier: Int] = [:]
      for (_, ids) in snap.profiles { for (i, _) in ids { owners[i, default: 0] += 1 } }
      #expect(owners.count == 3 * people)
      #expect(owners.values.filter { $0 != 1 }.count == 0)
      #expect(snap.profiles.count == people)
      var whole = 0
      for k in 0..<people {
        let u = try await a.profile(for: Identifier("user_id", "u\(k)"))
        let e = try await b.profile(for: Identifier("email", "p\(k)@example.com"))
        let ph = try await a.profile(for: Identifier("phone", "+1555\(k)"))
        if u != nil && u == e && e == ph && u == ProfileID(Int64(2 * k + 1)) { whole += 1 }
      }
      // The smaller id (the odd writer's) survives every merge.
      #expect(whole == people)
      let merges = try await a.stats().merges
      #expect(merges == people)
      #expect(try await a.stats().events == 2 * people)
      // Each person's events are reachable from the live profile, whichever writer stored them.
      let events = try await b.events(of: ProfileID(2), limit: 10).map(\.event.id).sorted()
      #expect(events == ["a0", "b0"])
      await a.close()
      await b.close()
    }
  }

  /// An operation already waiting for a pooled connection when the server goes away fails with
  /// `connectionLost` as soon as the store's watcher notices, not when the pool gives up (about a minute; a
  /// request to `tessera serve` waited that long before it got its 503); once the server is back, the store
  /// works again. The only connection is held by a long query, so the second operation is in the pool's queue
  /// before the server stops.
  @Test func anOperationWaitingForThePoolFailsWhenTheServerGoes() async throws {
    try await withCluster { cluster in
      let url = try await cluster.newDatabase("waiting")
      let store = try await PostgresStore(url: url, maximumConnections: 1)
      let holding = Task {
        try await store.read { conn in
          for try await _ in try await conn.query("SELECT pg_sleep(120)", logger: store.logger) {}
        }
      }
      try await Task.sleep(for: .milliseconds(500))
      let waiting = Task { try await store.stats() }
      // Asking for the writer role holds a pooled connection for as long as the role is held; it waits the same.
      let role = Task { try await store.acquireWriter() }
      try await Task.sleep(for: .milliseconds(500))
      let stopped = ContinuousClock.now
      try cluster.stopServer()
      let result = await waiting.result
      let roleResult = await role.result
      let waited = ContinuousClock.now - stopped
      var kind: StoreUnavailable.Kind?
      if case .failure(let error) = result { kind = (error as? StoreUnavailable)?.kind }
      #expect(kind == .connectionLost, "\(result)")
      var roleKind: StoreUnavailable.Kind?
      if case .failure(let error) = roleResult { roleKind = (error as? StoreUnavailable)?.kind }
      #expect(roleKind == .connectionLost, "\(roleResult)")
      #expect(waited < .seconds(20), "the waiting operations failed only after \(waited)")
      #expect((try? await holding.value) == nil, "the held connection's query ended with the server")
      try cluster.startServer()
      var stats: StoreStats?
      for _ in 0..<100 where stats == nil {
        stats = try? await store.stats()
        if stats == nil { try await Task.sleep(for: .milliseconds(200)) }
      }
      #expect(stats?.profiles == 0, "the store answers again once the server is back")
      await store.close()
    }
  }

  /// A pipeline-sized batch (20,000 identifiers) commits: identifier locks are striped, so a batch never asks
  /// for more locks than PostgreSQL's lock table holds, and all of it is written.
  @Test func largeBatchCommits() async throws {
    try await withCluster { cluster in
      let store = try await PostgresStore(url: try await cluster.newDatabase("large"))
      var batch = CommitBatch()
      for k in 0..<10_000 {
        let p = ProfileID(Int64(k + 1))
        batch.newProfiles.append(NewProfile(p, createdAt: at(0)))
        batch.identifiers.append(IdentifierRow(Identifier("email", "p\(k)@example.com"), of: p, seen: at(1)))
        batch.identifiers.append(IdentifierRow(Identifier("user_id", "u\(k)"), of: p, seen: at(1)))
      }
      try await store.commit(batch)
      let stats = try await store.stats()
      #expect(stats.identifiers == 20_000)
      #expect(stats.profiles == 10_000)
      #expect(try await store.profile(for: Identifier("user_id", "u9999")) == ProfileID(10_000))
      await store.close()
    }
  }

  /// A bulk writer's events go in without the conflict check; when one repeats an event stored before the
  /// writing began, the plain insert fails on the key and the transaction runs again with the check: the
  /// repeat is left out (the stored event keeps its fields), the batch's other events are stored in the
  /// batch's order, and the check stays on until `finishWriting`.
  @Test func bulkAppendLeavesOutRepeatsOfStoredEvents() async throws {
    try await withCluster { cluster in
      let store = try await PostgresStore(url: try await cluster.newDatabase("bulk"), maximumConnections: 2)
      var first = CommitBatch()
      first.newProfiles = [NewProfile(ProfileID(1), createdAt: at(0))]
      first.events = [StoreSuite.event("old", at: at(1), profile: ProfileID(1))]
      try await store.commit(first)
      func bulk(_ round: Int, repeating: Bool) -> CommitBatch {
        var b = CommitBatch()
        b.deferIndexes = true
        // Ids that sort against their order in the batch, so the order read back is `seq`'s, not the key's.
        for n in 0..<300 {
          var e = StoreSuite.event("r\(round)-\(999 - n)", at: at(Int64(n)), profile: ProfileID(1))
          if n % 2 == 0 { e.event.record = RecordBytes([UInt8]("{\"n\":\(n),\"tab\":\"a\\tb\"}\n".utf8)) }
          b.events.append(e)
        }
        if repeating { b.events.insert(StoreSuite.event("old", at: at(99), profile: ProfileID(1)), at: 150) }
        return b
      }
      try await store.commit(bulk(0, repeating: false))
      #expect(store.bulkAppend.withLock { $0 }, "no repeat: still appending unchecked")
      try await store.commit(bulk(1, repeating: true))
      #expect(!store.bulkAppend.withLock { $0 }, "the repeat switched the check on")
      try await store.commit(bulk(2, repeating: true))
      let events = try await store.loadEvents()
      #expect(events.count == 901)
      #expect(
        events.map(\.event.id)
          == ["old"] + (0..<3).flatMap { r in (0..<300).map { "r\(r)-\(999 - $0)" } })
      #expect(events[0].event.timestamp == at(1), "the stored event is kept, not replaced")
      #expect(events[1].event.record.map { Array($0.bytes) } == [UInt8]("{\"n\":0,\"tab\":\"a\\tb\"}\n".utf8))
      #expect(events[2].event.record == nil)
      try await store.finishWriting()
      #expect(store.bulkAppend.withLock { $0 }, "the next writing starts unchecked again")
      try await store.commit(bulk(3, repeating: true))
      #expect(try await store.stats().events == 1201)
      await store.close()
    }
  }

  /// Identifiers and traits come back in bytewise order (SQLite's) also from a database whose locale sorts
  /// otherwise: schema v13 made the key columns `COLLATE "C"`. Under ICU's en-US, "apple" sorts before "Zed"
  /// and "email" before "Email"; bytewise, capitals come first.
  @Test func keysSortBytewiseWhateverTheDatabaseLocale() async throws {
    try await withCluster { cluster in
      _ = try await Self.scalar(
        cluster.url,
        "CREATE DATABASE icu TEMPLATE template0 LOCALE_PROVIDER icu ICU_LOCALE 'en-US' LOCALE 'C.UTF-8'")
      let url = "postgres://\(cluster.user)@127.0.0.1:\(cluster.port)/icu"
      let store = try await PostgresStore(url: url, maximumConnections: 2)
      let p = ProfileID(1)
      var batch = CommitBatch()
      batch.newProfiles = [NewProfile(p, createdAt: at(0))]
      for (kind, value) in [("email", "apple@x.org"), ("email", "Zed@x.org"), ("Email", "b"), ("email", "Ärger@x.org")]
      {
        batch.identifiers.append(IdentifierRow(Identifier(kind, value), of: p, seen: at(1)))
      }
      batch.traits = ["plan", "Plan", "age"].map { StoreSuite.trait(p, $0, .string("x")) }
      try await store.commit(batch)
      let ids = try await store.identifiers(of: p).map { "\($0.0.kind):\($0.0.value)" }
      #expect(ids == ["Email:b", "email:Zed@x.org", "email:apple@x.org", "email:Ärger@x.org"])
      #expect(try await store.traits(of: p).map(\.trait) == ["Plan", "age", "plan"])
      await store.close()
    }
  }

  /// The same events committed by two stores at once are stored once (the primary key, not a cache).
  @Test func messageIdDeduplicationAcrossStores() async throws {
    try await withCluster { cluster in
      let url = try await cluster.newDatabase("dedup")
      let a = try await PostgresStore(url: url, maximumConnections: 2)
      let b = try await PostgresStore(url: url, maximumConnections: 2)
      var batch = CommitBatch()
      batch.newProfiles = [NewProfile(ProfileID(1), createdAt: at(0))]
      for n in 0..<500 {
        batch.events.append(
          StoredEvent(
            event: Event(
              id: "m\(n)", source: "web", type: "track", name: "Clicked", timestamp: at(Int64(n)),
              receivedAt: at(Int64(n)), identifiers: [], properties: ["n": .int(Int64(n))]),
            profile: ProfileID(1)))
      }
      let same = batch
      try await withThrowingTaskGroup(of: Void.self) { group in
        for store in [a, b, a, b] { group.addTask { try await store.commit(same) } }
        try await group.waitForAll()
      }
      #expect(try await a.stats().events == 500)
      let ids = try await b.loadEvents().map(\.event.id)
      #expect(Set(ids).count == 500)
      #expect(ids.count == 500)
      let keys = (0..<500).map { EventKey(source: "web", id: "m\($0)") }
      #expect(try await b.existingEvents(keys).count == 500)
      await a.close()
      await b.close()
    }
  }

  /// Four workers over two stores claim batches of one destination at once until the outbox is empty:
  /// every row is delivered exactly once, and no two claims got the same row.
  @Test func concurrentClaimsNeverShareRows() async throws {
    try await withCluster { cluster in
      let url = try await cluster.newDatabase("claims")
      let a = try await PostgresStore(url: url, maximumConnections: 4)
      let b = try await PostgresStore(url: url, maximumConnections: 4)
      let total = 1000
      try await a.enqueue(
        (0..<total).map { n in
          OutboxRecord(
            destination: "hook", op: .upsert, profile: ProfileID(Int64(n)), payload: .map(["n": .int(Int64(n))]),
            at: at(0))
        })
      let claimed = try await withThrowingTaskGroup(of: [Int64].self) { group in
        for store in [a, b, a, b] {
          group.addTask {
            var mine: [Int64] = []
            while true {
              let claim = BatchClaim(
                destination: "hook", maxItems: 7, maxBytes: 1 << 20, maxWait: TimeSpan(seconds: 0), now: at(10),
                lease: TimeSpan(seconds: 300), flush: true)
              guard let (batch, rows) = try await store.claimBatch(claim) else { break }
              mine += rows.map(\.id)
              try await store.finishBatch(batch.id, .delivered(at: at(11)))
            }
            return mine
          }
        }
        var all: [[Int64]] = []
        for try await ids in group { all.append(ids) }
        return all
      }
      let flat = claimed.flatMap { $0 }
      #expect(flat.count == total)
      #expect(Set(flat).count == total)
      // More than one worker took part (the claims really were concurrent).
      #expect(claimed.filter { !$0.isEmpty }.count >= 2)
      let summary = try await b.outboxSummary()["hook"]
      #expect(summary?.deliveredItems == total)
      #expect(summary?.queued == 0)
      await a.close()
      await b.close()
    }
  }

  static func scalar(_ url: String, _ sql: String) async throws -> Int64? {
    let client = PostgresClient(configuration: try PostgresStore.configuration(url: url, maximumConnections: 1))
    return try await withThrowingTaskGroup(of: Int64?.self) { group in
      group.addTask {
        await client.run()
        return nil
      }
      var value: Int64?
      for try await v in try await client.query(PostgresQuery(unsafeSQL: sql)).decode(Int64.self) { value = v }
      group.cancelAll()
      return value
    }
  }
}
