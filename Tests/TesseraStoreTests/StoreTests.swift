import Foundation
import GRDB
import Synchronization
import TesseraIdentity
import TesseraModel
import TesseraStore
import TesseraStoreSuite
import Testing

@testable import TesseraSQLite

/// A directory under the temporary directory, removed when the test is done with it.
final class TempDir: Sendable {
  let url: URL
  init() throws {
    url = FileManager.default.temporaryDirectory.appendingPathComponent("tessera-store-\(UUID().uuidString)")
    try FileManager.default.createDirectory(at: url, withIntermediateDirectories: true)
  }
  func path(_ name: String) -> String { url.appendingPathComponent(name).path }
  deinit { try? FileManager.default.removeItem(at: url) }
}

func report(_ failures: [String]) {
  for f in failures { print("FAIL \(f)") }
}

@Suite struct MemoryStoreTests {
  @Test func behaviourSuite() async throws {
    let failures = try await StoreSuite.run { MemoryStore() }
    report(failures)
    #expect(failures == [])
  }

  @Test func sightingsSurviveARestart() async throws {
    let store = MemoryStore()
    let failures = try await SightingRestart.run { store }
    report(failures)
    #expect(failures == [])
  }
}

@Suite struct ComputedRecordTests {
  /// Records compare by the state they read back, not its text; texts that do not read back are never equal.
  @Test func equalityReadsTheStates() throws {
    let p = ProfileID(1)
    func record(_ text: String?) -> ComputedRecord {
      ComputedRecord(profile: p, trait: "orders", storedState: text, value: .int(2))
    }
    #expect(record(#"{"a":"count","w":0}"#) == record(#"{"w":0,"a":"count"}"#))
    #expect(record(#"{"a":"count","w":0}"#) != record(#"{"a":"count","w":1}"#))
    #expect(record("{junk") != record("[junk"))
    #expect(record(nil) == ComputedRecord(profile: p, trait: "orders", state: .null, value: .int(2)))
    #expect(throws: StoreError.self) { try record("{junk").state() }
    #expect(try record(nil).state() == .null)
  }
}

@Suite struct SQLiteStoreTests {
  @Test func behaviourSuite() async throws {
    let dir = try TempDir()
    var n = 0
    let failures = try await StoreSuite.run {
      n += 1
      return try SQLiteStore(path: dir.path("suite-\(n).sqlite"))
    }
    report(failures)
    #expect(failures == [])
  }

  /// A batch that fails partway (a profile merged into itself, refused by a CHECK after the batch's profiles,
  /// events, releases and a first merge were written) leaves nothing behind.
  @Test func refusedBatchIsRolledBack() async throws {
    let dir = try TempDir()
    let store = try SQLiteStore(path: dir.path("atomic.sqlite"))
    let failures = try await StoreSuite.checkAtomicity(of: store) { b in
      b.merges.append(
        MergeRecord(
          survivor: ProfileID(3), absorbed: ProfileID(3), rule: "bad", evidence: [], eventID: "z1",
          at: Timestamp(microseconds: 0)))
    }
    report(failures)
    #expect(failures == [])
  }

  /// The same at the GRDB level: a transaction that throws after writing is rolled back by `write`.
  @Test func grdbWriteRollsBackOnError() async throws {
    struct Boom: Error {}
    let dir = try TempDir()
    let path = dir.path("raw.sqlite")
    _ = try SQLiteStore(path: path)
    let pool = try DatabasePool(path: path)
    await #expect(throws: Boom.self) {
      try await pool.write { db in
        try db.execute(sql: "INSERT INTO profiles (id, created_at) VALUES (1, 0)")
        throw Boom()
      }
    }
    let count = try await pool.read { db in try Int.fetchOne(db, sql: "SELECT count(*) FROM profiles") }
    #expect(count == 0)
  }

  @Test func dataSurvivesReopening() async throws {
    let dir = try TempDir()
    let path = dir.path("reopen.sqlite")
    let first = try SQLiteStore(path: path)
    var f = StoreSuite.Failures()
    var b = CommitBatch()
    b.newProfiles = [
      NewProfile(ProfileID(1), createdAt: StoreSuite.t(0)), NewProfile(ProfileID(2), createdAt: StoreSuite.t(1)),
    ]
    b.events = [
      StoreSuite.event(
        "e1", at: StoreSuite.t(5), ids: [Identifier("email", "a@x")], traits: StoreSuite.tricky,
        profile: ProfileID(1)),
      StoreSuite.event("e2", at: StoreSuite.t(6), ids: [Identifier("email", "b@x")], profile: ProfileID(2)),
    ]
    b.identifiers = [
      IdentifierRow(Identifier("email", "a@x"), of: ProfileID(1), seen: StoreSuite.t(5)),
      IdentifierRow(Identifier("email", "b@x"), of: ProfileID(2), seen: StoreSuite.t(6)),
    ]
    b.traits = StoreSuite.tricky.map { StoreSuite.trait(ProfileID(1), $0.key, $0.value) }
    b.rejected = [RejectedRecord(source: "csv", line: 2, record: "x", reason: "bad", at: StoreSuite.t(7))]
    try await first.commit(b)
    var m = CommitBatch()
    m.merges = [
      MergeRecord(
        survivor: ProfileID(1), absorbed: ProfileID(2), rule: "email", evidence: [Identifier("email", "a@x")],
        eventID: "e3", at: StoreSuite.t(8), score: 0.75)
    ]
    m.conflicts = [
      StoreSuite.conflict(
        kept: ProfileID(1), other: nil, kind: "email", identifiers: [], eventID: "e3", at: StoreSuite.t(8))
    ]
    try await first.commit(m)
    let before = try await StoreSuite.snapshot(of: first, upTo: 3)
    try first.close()

    let second = try SQLiteStore(path: path)
    let after = try await StoreSuite.snapshot(of: second, upTo: 3)
    #expect(after == before)
    #expect(try await second.stats().merges == 1)
    f.expect(after.count, before.count, "snapshot size")
    report(f.messages)
    try second.close()
  }

  @Test func walModeIsOn() async throws {
    let dir = try TempDir()
    let path = dir.path("wal.sqlite")
    let store = try SQLiteStore(path: path)
    let queue = try DatabaseQueue(path: path)
    let mode = try await queue.read { db in try String.fetchOne(db, sql: "PRAGMA journal_mode") }
    #expect(mode == "wal")
    try queue.close()
    try store.close()
  }

  @Test func schemaVersionIsRecordedAndNewerIsRefused() async throws {
    let dir = try TempDir()
    let path = dir.path("version.sqlite")
    try SQLiteStore(path: path).close()
    let queue = try DatabaseQueue(path: path)
    let version = try await queue.read { db in
      try Int.fetchOne(db, sql: "SELECT value FROM meta WHERE key = 'schema_version'")
    }
    #expect(version == SQLiteStore.schemaVersion)
    let migrations = try await queue.read { db in try String.fetchAll(db, sql: "SELECT identifier FROM grdb_migrations")
    }
    #expect(
      migrations == ["v1", "v2", "v3", "v4", "v5", "v6", "v7", "v8", "v9", "v10", "v11", "v12", "v13", "v14", "v15"])
    #expect(SQLiteStore.schemaVersion == 15)
    // Opening again is fine and changes nothing.
    try SQLiteStore(path: path).close()
    try await queue.write { db in try db.execute(sql: "UPDATE meta SET value = 99 WHERE key = 'schema_version'") }
    try queue.close()

    var refused: StoreError?
    do { _ = try SQLiteStore(path: path) } catch let e as StoreError { refused = e }
    guard case .schemaTooNew(let found, let supported)? = refused else {
      Issue.record("expected StoreError.schemaTooNew, got \(String(describing: refused))")
      return
    }
    #expect(found == 99)
    #expect(supported == SQLiteStore.schemaVersion)
    #expect(refused?.description.contains("newer") == true)
  }

  /// v9 moves the journal out of the main file: entries a schema-8 store held are read back from the intake.
  /// The writer's direct binding (`RowStatement`) stores each type as `execute(arguments:)` did, binds the empty
  /// string as '' (not NULL), and reports a failed row as a `DatabaseError` without spoiling the next one.
  @Test func rowStatementBindsAndFails() throws {
    let queue = try DatabaseQueue()
    try queue.write { db in
      try db.execute(sql: "CREATE TABLE t (i INTEGER, s TEXT NOT NULL UNIQUE, d REAL, b INTEGER, n TEXT)")
      let insert = RowStatement(try db.makeStatement(sql: "INSERT INTO t VALUES (?, ?, ?, ?, ?)"))
      try insert.run(Int64.min, "", 1.5, true, String?.none)
      try insert.run(42, "Zoë – 東京", -0.25, false, Optional("n"))
      #expect(throws: DatabaseError.self) { try insert.run(1, "", 0.0, false, String?.none) }
      do {
        try insert.run(Int64(2), "", 0.0, false, String?.none)
      } catch let e as DatabaseError {
        #expect(e.resultCode == .SQLITE_CONSTRAINT)
        #expect(e.message?.contains("UNIQUE constraint failed: t.s") == true)
      }
      try insert.run(Int64(7), "after", Double.greatestFiniteMagnitude, false, Int64?.none)
      let rows = try Row.fetchAll(
        db, sql: "SELECT i, s, typeof(s) AS ts, d, b, n, typeof(n) AS tn FROM t ORDER BY rowid")
      #expect(rows.count == 3)
      #expect(rows.map { $0["i"] as Int64 } == [Int64.min, 42, 7])
      #expect(rows.map { $0["s"] as String } == ["", "Zoë – 東京", "after"])
      #expect(rows.map { $0["ts"] as String } == ["text", "text", "text"])
      #expect(rows.map { $0["d"] as Double } == [1.5, -0.25, Double.greatestFiniteMagnitude])
      #expect(rows.map { $0["b"] as Int64 } == [1, 0, 0])
      #expect(rows.map { $0["tn"] as String } == ["null", "text", "null"])
      #expect(rows[1]["n"] as String == "n")
    }
  }

  /// A store of schema 11 gains the sightings table, empty, and the review indexes, and keeps its data.
  @Test func migrationToV12AddsSightings() async throws {
    let dir = try TempDir()
    let path = dir.path("v11.sqlite")
    let old = try SQLiteStore(path: path)
    try await old.commit(StoreSuite.twoProfiles())
    try old.close()
    let queue = try DatabaseQueue(path: path)
    try await queue.write { db in
      try db.execute(
        sql: """
          DROP TABLE sightings;
          DROP INDEX match_links_by_probability;
          DROP INDEX match_links_rule_probability;
          DROP TABLE record_dictionaries;
          DELETE FROM grdb_migrations WHERE identifier IN ('v12', 'v13', 'v14', 'v15');
          UPDATE meta SET value = 11 WHERE key = 'schema_version';
          """)
    }
    try queue.close()
    let store = try SQLiteStore(path: path)
    #expect(try await store.loadSightings().isEmpty)
    #expect(try await store.canonical(ProfileID(2)) == ProfileID(2))
    var batch = CommitBatch()
    batch.sightings = [
      SightingRecord(
        profile: ProfileID(1), sightings: [StoredSighting(signals: ["signals.ip": "192.0.2.1"], last: StoreSuite.t(9))],
        expires: StoreSuite.t(99))
    ]
    try await store.commit(batch)
    #expect(try await store.loadSightings().map(\.profile) == [ProfileID(1)])
    try store.close()
    let after = try DatabaseQueue(path: path)
    let version = try await after.read { db in
      try Int.fetchOne(db, sql: "SELECT value FROM meta WHERE key = 'schema_version'")
    }
    let indexes = try await after.read { db in
      try String.fetchAll(db, sql: "SELECT name FROM sqlite_master WHERE type = 'index' AND name LIKE 'match_links_%'")
    }
    try after.close()
    #expect(version == 15)
    #expect(Set(indexes).isSuperset(of: ["match_links_by_probability", "match_links_rule_probability"]))
  }

  /// A writer restarted on the file links a browser to a device seen before the restart; an erased person's
  /// sightings are gone (`SightingRestart`).
  @Test func sightingsSurviveARestart() async throws {
    let dir = try TempDir()
    let path = dir.path("restart.sqlite")
    var opened: [SQLiteStore] = []
    let failures = try await SightingRestart.run {
      if let last = opened.last { try last.close() }
      let store = try SQLiteStore(path: path)
      opened.append(store)
      return store
    }
    try opened.last?.close()
    report(failures)
    #expect(failures == [])
  }

  @Test func migrationToV9MovesTheJournal() async throws {
    let email = Identifier("email", "ada@example.com")
    let dir = try TempDir()
    let path = dir.path("v8.sqlite")
    try SQLiteStore(path: path).close()
    // Back to what schema 8 looked like: the journal a table of the main file, holding one accepted event.
    let body = StoredValue.encodeBody(
      StoreSuite.event("m1", at: StoreSuite.t(1), ids: [email], profile: ProfileID(1)).event)
    let queue = try DatabaseQueue(path: path)
    try await queue.write { db in
      try db.execute(
        sql: """
          CREATE TABLE journal (seq INTEGER PRIMARY KEY AUTOINCREMENT, source TEXT NOT NULL, id TEXT NOT NULL,
            type TEXT NOT NULL, name TEXT, timestamp INTEGER NOT NULL, received_at INTEGER NOT NULL,
            body TEXT NOT NULL, UNIQUE (source, id));
          INSERT INTO journal (seq, source, id, type, name, timestamp, received_at, body)
            VALUES (7, 'web', 'm1', 'track', 'Signed Up', 1, 1, ?);
          DELETE FROM grdb_migrations WHERE identifier = 'v9';
          DELETE FROM meta WHERE key = 'journal_done';
          UPDATE meta SET value = 8 WHERE key = 'schema_version';
          """, arguments: [body])
    }
    try queue.close()
    try FileManager.default.removeItem(atPath: path + "-intake")

    let store = try SQLiteStore(path: path)
    let entries = try await store.readJournal(limit: 10)
    #expect(entries.map(\.seq) == [7])
    #expect(entries.map(\.event.id) == ["m1"])
    #expect(entries.first?.event.identifiers == [email])
    try store.close()
    let after = try DatabaseQueue(path: path)
    let (tables, version) = try await after.read { db in
      (
        try db.tableExists("journal"),
        try Int.fetchOne(db, sql: "SELECT value FROM meta WHERE key = 'schema_version'")
      )
    }
    try after.close()
    #expect(tables == false)
    #expect(version == 9)
  }

  /// The journal's own file: an append does not wait for a transaction holding the main file's write lock
  /// (the writer's resolution). With the journal in the main file it waited the busy timeout and failed.
  @Test func journalAppendsDoNotWaitForTheMainFile() async throws {
    let email = Identifier("email", "ada@example.com")
    let dir = try TempDir()
    let path = dir.path("intake.sqlite")
    let store = try SQLiteStore(path: path)
    let other = try DatabaseQueue(path: path)
    let receipt = try await other.writeWithoutTransaction { db -> JournalReceipt in
      try db.execute(sql: "BEGIN IMMEDIATE")
      try db.execute(sql: "UPDATE meta SET value = value WHERE key = 'epoch'")
      defer { try? db.execute(sql: "ROLLBACK") }
      // Another thread appends while this one holds the lock (the closure blocks this connection's queue).
      let result = Mutex<Result<JournalReceipt, any Error>?>(nil)
      let done = DispatchSemaphore(value: 0)
      Task {
        do {
          let r = try await store.appendJournal(
            [StoreSuite.event("j1", at: StoreSuite.t(1), ids: [email], profile: ProfileID(1)).event], rejected: [])
          result.withLock { $0 = .success(r) }
        } catch {
          result.withLock { $0 = .failure(error) }
        }
        done.signal()
      }
      done.wait()
      return try result.withLock { $0 }!.get()
    }
    #expect(receipt.appended.map(\.id) == ["j1"])
    #expect(try await store.readJournal(limit: 10).map(\.event.id) == ["j1"])
    try other.close()
    try store.close()
  }

  /// v10 moves a v9 log (mapped bodies, a primary key on source and id) into the new layout: the events read
  /// back as they were, are found by key and by profile, and a repeat of one is still ignored.
  @Test func migrationToV10KeepsTheLog() async throws {
    let dir = try TempDir()
    let path = dir.path("v9.sqlite")
    let queue = try DatabaseQueue(path: path)
    try SQLiteStore.migrator.migrate(queue, upTo: "v9")
    let old = StoreSuite.event(
      "m1", at: StoreSuite.t(5), ids: [Identifier("email", "ada@example.com")], traits: ["plan": .string("pro")],
      properties: ["price": .double(9.5)], profile: ProfileID(1))
    try await queue.write { db in
      try db.execute(sql: "INSERT INTO profiles (id, created_at) VALUES (1, 0)")
      try db.execute(
        sql: """
          INSERT INTO events (source, id, type, name, timestamp, received_at, profile_id, body)
          VALUES ('web', 'm1', 'track', 'Clicked', ?, ?, 1, ?)
          """,
        arguments: [
          old.event.timestamp.microseconds, old.event.receivedAt.microseconds, StoredValue.encodeBody(old.event),
        ])
    }
    try queue.close()
    let store = try SQLiteStore(path: path)
    #expect(try await store.loadEvents() == [old])
    #expect(try await store.events(of: ProfileID(1), limit: 5) == [old])
    #expect(try await store.existingEvents([EventKey(source: "web", id: "m1")]) == [EventKey(source: "web", id: "m1")])
    var again = CommitBatch()
    again.events = [StoreSuite.event("m1", at: StoreSuite.t(9), profile: ProfileID(1))]
    try await store.commit(again)
    #expect(try await store.stats().events == 1)
    try store.close()
  }

  /// A bulk writer's events are appended without their indexes, which `finishWriting` builds in one pass
  /// (and a writer taking over from one that was killed): in between they are still listed for their profile,
  /// and afterwards found by key; repeats of events indexed before are left out of a bulk batch as well.
  @Test func bulkWritesIndexAtTheEnd() async throws {
    let dir = try TempDir()
    let path = dir.path("bulk.sqlite")
    let store = try SQLiteStore(path: path)
    var first = CommitBatch()
    first.newProfiles = [NewProfile(ProfileID(1), createdAt: StoreSuite.t(0))]
    first.events = [StoreSuite.event("old", at: StoreSuite.t(1), profile: ProfileID(1))]
    try await store.commit(first)
    var bulk = Self.paddedEvents(round: 0)
    bulk.events.append(StoreSuite.event("old", at: StoreSuite.t(2), profile: ProfileID(1)))
    try await store.commit(bulk)
    #expect(try await store.stats().events == 1001, "the repeat of an indexed event is left out")
    let key = EventKey(source: "web", id: "r0-5")
    #expect(try await store.existingEvents([key]).isEmpty, "not indexed yet")
    #expect(try await store.events(of: ProfileID(1), limit: 2000).count == 1001, "listed from the tail")
    // A writer that takes over indexes what the last one left.
    let next = try SQLiteStore(path: path)
    #expect(try await next.acquireWriter())
    #expect(try await next.existingEvents([key]) == [key])
    try next.close()
    try await store.commit(Self.paddedEvents(round: 1))
    try await store.finishWriting()
    #expect(try await store.existingEvents([EventKey(source: "web", id: "r1-999"), key]).count == 2)
    #expect(try await store.events(of: ProfileID(2), limit: 2000).count == 1000)
    #expect(Self.size(path + "-wal") == 0, "the WAL is folded into the file and emptied")
    try store.close()
  }

  /// `finishWriting` builds the two indexes from the rows the store kept when it appended the events: the
  /// same rows, in both tables, as reading them back from the log gives.
  @Test func bulkIndexesFromKeptRowsAreTheLogs() async throws {
    let dir = try TempDir()
    let path = dir.path("kept.sqlite")
    let store = try SQLiteStore(path: path)
    for round in 0..<3 { try await store.commit(Self.paddedEvents(round: round)) }
    #expect(store.deferredIndex.withLock { $0.keys.count } == 3000)
    try await store.finishWriting()
    #expect(store.deferredIndex.withLock { $0.keys.isEmpty })
    try store.close()
    let db = try DatabaseQueue(path: path)
    try await db.read { db in
      let events = try Row.fetchAll(db, sql: "SELECT seq, source, id, profile_id, timestamp FROM events")
      #expect(events.count == 3000)
      let wantKeys = Set(events.map { "\(EventKey(source: $0[1], id: $0[2]).logKey) \($0[0] as Int64)" })
      let keys = try Row.fetchAll(db, sql: "SELECT key, seq FROM event_keys")
      #expect(Set(keys.map { "\($0[0] as Int64) \($0[1] as Int64)" }) == wantKeys)
      let wantTimeline = Set(events.map { "\($0[3] as Int64) \($0[4] as Int64) \($0[0] as Int64)" })
      let timeline = try Row.fetchAll(db, sql: "SELECT profile_id, timestamp, seq FROM profile_events")
      #expect(Set(timeline.map { "\($0[0] as Int64) \($0[1] as Int64) \($0[2] as Int64)" }) == wantTimeline)
      #expect(try Int64.fetchOne(db, sql: "SELECT value FROM meta WHERE key = 'log_indexed'") == 3000)
    }
  }

  /// Erasing the newest events lets SQLite hand their positions out again (`seq` is the rowid): the next bulk
  /// writer's events took positions at or below `log_indexed` and were never indexed — not found by key, not
  /// on their profile's timeline.
  @Test func eventsAppendedAfterErasingTheNewestAreIndexed() async throws {
    let dir = try TempDir()
    let store = try SQLiteStore(path: dir.path("erase.sqlite"))
    try await store.commit(Self.paddedEvents(round: 0))
    try await store.commit(Self.paddedEvents(round: 1))
    try await store.finishWriting()
    _ = try await store.erase(profile: ProfileID(2), values: [], suppress: [], notices: [])
    #expect(try await store.stats().events == 1000)
    try await store.commit(Self.paddedEvents(round: 2))
    try await store.finishWriting()
    let key = EventKey(source: "web", id: "r2-5")
    #expect(try await store.existingEvents([key]) == [key])
    #expect(try await store.events(of: ProfileID(3), limit: 2000).count == 1000)
    // And without a bulk writer's kept rows (a server's erase, then a run in another process).
    try await store.commit(Self.paddedEvents(round: 3))
    store.deferredIndex.withLock { $0 = IndexRows() }
    try await store.finishWriting()
    #expect(try await store.events(of: ProfileID(4), limit: 2000).count == 1000)
    try store.close()
  }

  /// A server's commits (`CommitBatch.indexesBehind`) append events without their key and timeline rows until
  /// the tail holds `flushAt` of them, then write them all in one go; meanwhile the tail's events are found by
  /// key (repeats left out, in the log and in the journal) and listed on their profile's timeline.
  @Test func serverCommitsWriteTheLogsIndexesBehind() async throws {
    let dir = try TempDir()
    let store = try Self.server(dir.path("behind.sqlite"), flushAt: 250)
    for round in 0..<2 { try await store.commit(Self.behindEvents(round: round, count: 100)) }
    #expect(try await Self.indexed(store) == [0, 0], "nothing indexed yet")
    let key = EventKey(source: "web", id: "b1-5")
    #expect(try await store.existingEvents([key, EventKey(source: "web", id: "b9-0")]) == [key])
    #expect(try await store.events(of: ProfileID(1), limit: 500).count == 100)
    #expect(try await store.events(of: ProfileID(2), limit: 500).count == 100)
    // Repeats of the tail's events, and a repeat within the batch, are left out.
    var again = Self.behindEvents(round: 1, count: 10)
    again.events.append(StoreSuite.event("new-1", at: StoreSuite.t(1), profile: ProfileID(2)))
    again.events.append(StoreSuite.event("new-1", at: StoreSuite.t(2), profile: ProfileID(2)))
    try await store.commit(again)
    #expect(try await store.stats().events == 201)
    // The journal takes no repeat of a tail's event either.
    let receipt = try await store.appendJournal(
      [
        StoreSuite.event("b0-7", at: StoreSuite.t(7), profile: ProfileID(1)).event,
        StoreSuite.event("j-1", at: StoreSuite.t(7), profile: ProfileID(1)).event,
      ], rejected: [])
    #expect(receipt.appended == [EventKey(source: "web", id: "j-1")])
    // The batch that brings the tail to 250 writes every row: the same as reading the log back gives.
    try await store.commit(Self.behindEvents(round: 2, count: 100))
    #expect(try await Self.indexed(store) == [301, 301])
    #expect(store.logTail.state.withLock { $0.rows.keys.isEmpty && $0.positions.isEmpty })
    try await Self.expectIndexesAreTheLogs(store, events: 301)
    #expect(try await store.existingEvents([key]) == [key])
    #expect(try await store.events(of: ProfileID(3), limit: 500).count == 100)
    try store.close()
  }

  /// A server that dies loses the rows it kept, not the events: the next process lists them from the log's
  /// unindexed tail, and its first commit (or taking the writer role) indexes them from the log, so repeats of
  /// them are still left out.
  @Test func aCrashedServersTailIsIndexedFromTheLog() async throws {
    let dir = try TempDir()
    let path = dir.path("crash.sqlite")
    let first = try Self.server(path, flushAt: 10_000)
    for round in 0..<2 { try await first.commit(Self.behindEvents(round: round, count: 100)) }
    // Another process does not know the tail: it reads it from the log.
    let other = try SQLiteStore(path: path)
    let repeated = StoreSuite.event("b1-8", at: StoreSuite.t(8), profile: ProfileID(2)).event
    #expect(try await other.appendJournal([repeated], rejected: []).appended.isEmpty)
    #expect(try await other.existingEvents([EventKey(source: "web", id: "b1-8")]).count == 1)
    try other.close()
    try first.close()
    let next = try SQLiteStore(path: path)
    #expect(try await Self.indexed(next) == [0, 0])
    #expect(try await next.existingEvents([EventKey(source: "web", id: "b0-3")]).count == 1, "read from the log")
    #expect(try await next.events(of: ProfileID(2), limit: 500).count == 100, "listed from the log's tail")
    try await next.commit(Self.behindEvents(round: 1, count: 10))
    #expect(try await next.stats().events == 200, "repeats of the lost tail left out")
    #expect(try await Self.indexed(next) == [200, 200])
    try await Self.expectIndexesAreTheLogs(next, events: 200)
    #expect(try await next.existingEvents([EventKey(source: "web", id: "b0-3")]).count == 1)
    try next.close()
    // Taking the writer role indexes the tail as well.
    let third = try Self.server(path, flushAt: 10_000)
    try await third.commit(Self.behindEvents(round: 2, count: 50))
    try third.close()
    let fourth = try SQLiteStore(path: path)
    #expect(try await fourth.acquireWriter())
    #expect(try await Self.indexed(fourth) == [250, 250])
    try fourth.close()
  }

  /// The tail takes a transaction's rows only once it commits: a commit refused (stale) leaves nothing behind
  /// that would make its events look stored; an erase writes the tail first and the tail starts over.
  @Test func theLogTailFollowsCommitsAndErasures() async throws {
    let dir = try TempDir()
    let store = try Self.server(dir.path("tail.sqlite"), flushAt: 10_000)
    try await store.commit(Self.behindEvents(round: 0, count: 100))
    var refused = Self.behindEvents(round: 1, count: 100)
    refused.epoch = 12_345
    await #expect(throws: StoreError.self) { try await store.commit(refused) }
    let key = EventKey(source: "web", id: "b1-5")
    #expect(try await store.existingEvents([key]).isEmpty)
    try await store.commit(Self.behindEvents(round: 1, count: 100))
    #expect(try await store.existingEvents([key]) == [key])
    #expect(try await store.stats().events == 200)
    _ = try await store.erase(profile: ProfileID(2), values: [], suppress: [], notices: [])
    #expect(store.logTail.state.withLock { $0.rows.keys.isEmpty })
    #expect(try await store.existingEvents([key]).isEmpty, "erased")
    #expect(try await store.existingEvents([EventKey(source: "web", id: "b0-5")]).count == 1)
    try await store.commit(Self.behindEvents(round: 2, count: 100))
    #expect(try await store.events(of: ProfileID(3), limit: 500).count == 100)
    #expect(try await Self.indexed(store) == [100, 100], "the erase indexed the tail; round 2 waits")
    try store.close()
  }

  /// A store whose log tail is written once it holds `flushAt` events (`LogTail`).
  static func server(_ path: String, flushAt: Int) throws -> SQLiteStore {
    try SQLiteStore(path: path, walRestartFrames: Checkpointer.restartFrames, logTailFlush: flushAt)
  }

  /// `count` events of a new profile (`round + 1`), as a server commits them (`CommitBatch.indexesBehind`).
  static func behindEvents(round: Int, count: Int) -> CommitBatch {
    var b = CommitBatch()
    b.indexesBehind = true
    b.newProfiles = [NewProfile(ProfileID(Int64(round + 1)), createdAt: StoreSuite.t(0))]
    for n in 0..<count {
      b.events.append(
        StoreSuite.event(
          "b\(round)-\(n)", at: StoreSuite.t(Int64(n)), properties: ["n": .int(Int64(n))],
          profile: ProfileID(Int64(round + 1))))
    }
    return b
  }

  /// Rows in `event_keys` and `log_indexed`.
  static func indexed(_ store: SQLiteStore) async throws -> [Int64] {
    try await store.pool.read { db in
      [
        try Int64.fetchOne(db, sql: "SELECT count(*) FROM event_keys") ?? -1,
        try Int64.fetchOne(db, sql: "SELECT value FROM meta WHERE key = 'log_indexed'") ?? -1,
      ]
    }
  }

  /// Both indexes hold exactly the log's rows, one per event.
  static func expectIndexesAreTheLogs(_ store: SQLiteStore, events count: Int) async throws {
    try await store.pool.read { db in
      let events = try Row.fetchAll(db, sql: "SELECT seq, source, id, profile_id, timestamp FROM events")
      #expect(events.count == count)
      let wantKeys = Set(events.map { "\(EventKey(source: $0[1], id: $0[2]).logKey) \($0[0] as Int64)" })
      let keys = try Row.fetchAll(db, sql: "SELECT key, seq FROM event_keys")
      #expect(keys.count == count)
      #expect(Set(keys.map { "\($0[0] as Int64) \($0[1] as Int64)" }) == wantKeys)
      let wantTimeline = Set(events.map { "\($0[3] as Int64) \($0[4] as Int64) \($0[0] as Int64)" })
      let timeline = try Row.fetchAll(db, sql: "SELECT profile_id, timestamp, seq FROM profile_events")
      #expect(timeline.count == count)
      #expect(Set(timeline.map { "\($0[0] as Int64) \($0[1] as Int64) \($0[2] as Int64)" }) == wantTimeline)
    }
  }

  /// Kept rows are used only when they are one per position past `log_indexed`.
  @Test func keptIndexRowsMustCoverTheTail() {
    func kept(_ seqs: [Int64]) -> IndexRows {
      var d = IndexRows()
      d.keys = seqs.map { IndexRows.Key(key: 100 - $0, seq: $0) }
      d.timeline = seqs.map { IndexRows.Timeline(profile: $0 % 2, timestamp: $0, seq: $0) }
      return d
    }
    let all = kept([3, 1, 2, 4])
    let rows = all.rows(after: 0, through: 4)
    #expect(rows?.keys.map(\.seq) == [4, 3, 2, 1], "sorted by key")
    #expect(rows?.timeline.map(\.seq) == [2, 4, 1, 3], "sorted by profile, time, position")
    #expect(all.rows(after: 1, through: 4)?.keys.count == 3, "positions at or below the indexed one are left out")
    #expect(kept([1, 2, 4]).rows(after: 0, through: 4) == nil, "a position missing")
    #expect(kept([1, 2, 2, 4]).rows(after: 0, through: 4) == nil, "a position twice, one missing")
    var grown = IndexRows()
    grown.add(kept([1, 2]))
    var huge = IndexRows()
    huge.keys = Array(repeating: IndexRows.Key(key: 0, seq: 0), count: IndexRows.limit)
    grown.add(huge)
    #expect(grown.overflowed && grown.keys.isEmpty)
    grown.add(kept([3]))
    #expect(grown.rows(after: 0, through: 3) == nil, "an overflow is never taken for complete")
  }

  /// The end of a bulk run empties the WAL while the background checkpointer may be copying it: SQLite refuses
  /// a second concurrent checkpoint at once (no busy handler), which ended a 1M-event benchmark run with
  /// "database is locked" after every event was committed.
  @Test func finishingWaitsForABackgroundCheckpoint() async throws {
    let dir = try TempDir()
    let path = dir.path("finish.sqlite")
    let store = try SQLiteStore(path: path)
    for round in 0..<20 {
      try await store.commit(Self.paddedEvents(round: round))
      // A PASSIVE checkpoint starts on its own task, as after any large transaction...
      store.checkpointer.wrote(store.checkpointer.every)
      // ...and the run ends at once.
      try await store.finishWriting()
      #expect(Self.size(path + "-wal") == 0)
    }
    #expect(try await store.stats().events == 20_000)
    try store.close()
  }

  /// v2 keeps a record that is rejected again on a later run once; a v1 file with repeats is cleaned up.
  @Test func migrationToV2KeepsRejectedRecordsOnce() async throws {
    let dir = try TempDir()
    let path = dir.path("v1.sqlite")
    // A v1 file holding the same rejected record twice, as v1 stores wrote after two runs.
    var migrator = DatabaseMigrator()
    migrator.registerMigration("v1") { db in
      try db.execute(
        sql: """
          CREATE TABLE meta (key TEXT PRIMARY KEY NOT NULL, value NOT NULL);
          INSERT INTO meta (key, value) VALUES ('schema_version', 1);
          CREATE TABLE rejected (id INTEGER PRIMARY KEY, source TEXT NOT NULL, line INTEGER, record TEXT NOT NULL,
            reason TEXT NOT NULL, at INTEGER NOT NULL);
          INSERT INTO rejected (source, line, record, reason, at) VALUES ('crm', 3, 'x,y', 'bad', 1), ('crm', 3, 'x,y', 'bad', 2);
          """)
    }
    let queue = try DatabaseQueue(path: path)
    try migrator.migrate(queue)
    try queue.close()
    // Opening with this build runs v2 (the v1 identifier is already recorded, so v1 does not run again).
    let store = try SQLiteStore(path: path)
    #expect(try await store.rejected(limit: 10).count == 1)
    let r = RejectedRecord(source: "crm", line: 3, record: "x,y", reason: "bad", at: Timestamp(microseconds: 3))
    var batch = CommitBatch()
    batch.rejected = [r]
    try await store.commit(batch)
    #expect(try await store.rejected(limit: 10).count == 1)
    try store.close()
  }

  /// A new profile (`round + 1`) with 1,000 events of ~250 bytes each.
  /// 1,000 events of about 350 bytes, as a bulk writer commits them (`tessera run`).
  static func paddedEvents(round: Int) -> CommitBatch {
    var b = CommitBatch()
    b.deferIndexes = true
    b.newProfiles = [NewProfile(ProfileID(Int64(round + 1)), createdAt: StoreSuite.t(0))]
    for n in 0..<1000 {
      let id = "r\(round)-\(n)"
      b.events.append(
        StoreSuite.event(
          id, at: StoreSuite.t(Int64(n)), ids: [Identifier("anonymous_id", id)],
          properties: ["n": .int(Int64(n)), "pad": .string(String(repeating: "x", count: 200))],
          profile: ProfileID(Int64(round + 1))))
    }
    return b
  }

  static func size(_ path: String) -> Int {
    ((try? FileManager.default.attributesOfItem(atPath: path))?[.size] as? Int) ?? 0
  }

  /// The main file is checkpointed in the background (its connections do not auto-checkpoint): after many
  /// commits most pages are in the file already. Without it the WAL would hold every page until the close.
  @Test func backgroundCheckpointsCopyTheWALIntoTheFile() async throws {
    let dir = try TempDir()
    let path = dir.path("ckpt.sqlite")
    let store = try SQLiteStore(path: path)
    for round in 0..<40 { try await store.commit(Self.paddedEvents(round: round)) }
    // Most of the database is in the file itself, not only in the WAL.
    let reader = try DatabaseQueue(path: path)
    let logical = try await reader.read { db in
      try Int.fetchOne(db, sql: "SELECT page_count * page_size FROM pragma_page_count(), pragma_page_size()") ?? 0
    }
    try reader.close()
    var inFile = 0
    for _ in 0..<200 {
      inFile = Self.size(path)
      if inFile * 2 > logical { break }
      try await Task.sleep(for: .milliseconds(20))
    }
    #expect(inFile * 2 > logical, "\(inFile) bytes in the file of a \(logical)-byte database")
    #expect(try await store.stats().events == 40_000)
    try store.close()
  }

  /// Past the restart threshold the checkpointer makes the WAL start over, and the file is cut back: a writer
  /// that never pauses does not leave a WAL larger than the database (it left 1.3 GB next to 0.4 GB).
  @Test func theWALStartsOverAndShrinks() async throws {
    let dir = try TempDir()
    let path = dir.path("wal.sqlite")
    // Small transactions: restarted past 8 × 64 frames (2 MiB).
    let store = try SQLiteStore(path: path, walRestartFrames: 64)
    #expect(store.checkpointer.restartLimit(bulk: false) == 512)
    #expect(store.checkpointer.restartLimit(bulk: true) == 64)
    var written = 0
    func commit(_ round: Int) async throws {
      try await store.commit(Self.paddedEvents(round: round))
      written += 1000
    }
    // Commits back to back, as `tessera run` does: the WAL never has a pause in which a passive checkpoint
    // catches up, so only the restart makes it start over.
    var largest = 0
    for round in 0..<60 {
      try await commit(round)
      largest = max(largest, Self.size(path + "-wal"))
    }
    let file = Self.size(path)
    #expect(largest * 2 < file, "a WAL of up to \(largest) bytes for a database file of \(file)")
    #expect(try await store.stats().events == written)
    try store.close()
  }

  @Test func largeBatch() async throws {
    let dir = try TempDir()
    let store = try SQLiteStore(path: dir.path("large.sqlite"))
    let count = 50_000
    let profiles = 10_000
    var b = CommitBatch()
    b.newProfiles = (1...profiles).map { NewProfile(ProfileID(Int64($0)), createdAt: StoreSuite.t(0)) }
    b.events.reserveCapacity(count)
    b.identifiers.reserveCapacity(count * 2)
    b.traits.reserveCapacity(count)
    for n in 0..<count {
      let p = ProfileID(Int64(n % profiles + 1))
      let at = StoreSuite.t(Int64(n))
      let ids = [Identifier("user_id", "u\(p.raw)"), Identifier("anonymous_id", "a\(n)")]
      b.events.append(
        StoreSuite.event(
          "evt-\(n)", at: at, ids: ids, traits: ["plan": .string("pro"), "n": .int(Int64(n))],
          properties: ["price": .double(Double(n) / 4), "sku": .string("sku-\(n % 97)")],
          context: ["ip": .string("10.0.\(n % 256).1")], profile: p))
      for i in ids { b.identifiers.append(IdentifierRow(i, of: p, seen: at)) }
      b.traits.append(StoreSuite.trait(p, "plan", .string("pro"), event: "evt-\(n)", at: at))
      b.traits.append(StoreSuite.trait(p, "last_n", .int(Int64(n)), event: "evt-\(n)", at: at))
    }
    let clock = ContinuousClock()
    let took = try await clock.measure { try await store.commit(b) }
    print(
      "committed \(count) events, \(b.identifiers.count) identifier rows, \(b.traits.count) trait upserts in \(took)")

    let stats = try await store.stats()
    #expect(stats.events == count)
    #expect(stats.profiles == profiles)
    #expect(stats.identifiers == profiles + count)
    let keys = (0..<count).map { EventKey(source: "web", id: "evt-\($0)") }
    let lookup = try await clock.measure {
      let existing = try await store.existingEvents(keys + [EventKey(source: "web", id: "nope")])
      #expect(existing.count == count)
    }
    print("existingEvents of \(count + 1) keys in \(lookup)")
    let traits = try await store.loadTraits()
    #expect(traits.count == profiles * 2)
    #expect(traits.first(where: { $0.profile == ProfileID(1) && $0.trait == "last_n" })?.value == .int(40_000))
    let snap = try await store.loadIdentity()
    #expect(snap.profiles.count == profiles)
    #expect(snap.profiles.reduce(0) { $0 + $1.1.count } == profiles + count)
    let events = try await store.events(of: ProfileID(7), limit: 3)
    #expect(events.map(\.event.id) == ["evt-40006", "evt-30006", "evt-20006"])
    try store.close()
  }
}
