import Foundation
import TesseraIdentity
import TesseraModel
import TesseraStore
import Testing

@testable import TesseraSQLite

/// A bulk run holds expiring identifiers' last-seen moves back (`CommitBatch.seenDeferred`) and writes them at
/// its end; a run that ends before that leaves the store to catch them up from its log.
@Suite("SQLite: held-back last-seen times")
struct DeferredLastSeenTests {
  static func day(_ d: Int) -> Timestamp { Timestamp(microseconds: Int64(d) * 86_400_000_000) }

  static func event(_ id: String, day d: Int, _ ids: [Identifier], profile: Int64) -> StoredEvent {
    StoredEvent(
      event: Event(
        id: id, source: "s", type: "track", name: "e", timestamp: day(d), receivedAt: day(0), identifiers: ids),
      profile: ProfileID(profile))
  }

  static func lastSeen(_ store: SQLiteStore) async throws -> [String: (Int64, Timestamp)] {
    var out: [String: (Int64, Timestamp)] = [:]
    for (p, ids) in try await store.loadIdentity().profiles {
      for (i, seen) in ids { out[i.description] = (p.raw, seen) }
    }
    return out
  }

  static func marked(_ path: String) throws -> Bool {
    let store = try SQLiteStore(path: path)
    defer { try? store.close() }
    return try store.pool.read { db in
      try Bool.fetchOne(db, sql: "SELECT EXISTS (SELECT 1 FROM meta WHERE key = 'seen_from')") ?? true
    }
  }

  /// Three transactions of a run that is killed before its end: anonymous id `a` seen again on day 5, `b` seen
  /// on day 7 by profile 2, which a later transaction merges into profile 1.
  static func killedRun(_ path: String) async throws {
    let store = try SQLiteStore(path: path)
    let (a, b, u) = (Identifier("anonymous_id", "a"), Identifier("anonymous_id", "b"), Identifier("user_id", "u"))
    var first = CommitBatch()
    first.deferIndexes = true
    first.seenDeferred = ["anonymous_id"]
    first.newProfiles = [NewProfile(ProfileID(1), createdAt: day(1))]
    first.events = [event("e1", day: 1, [a], profile: 1)]
    first.identifiers = [IdentifierRow(a, of: ProfileID(1), seen: day(1))]
    try await store.commit(first)
    var second = CommitBatch()
    second.deferIndexes = true
    second.seenDeferred = ["anonymous_id"]
    second.newProfiles = [NewProfile(ProfileID(2), createdAt: day(2))]
    second.events = [
      event("e2", day: 2, [b, u], profile: 2), event("e3", day: 5, [a], profile: 1),
      event("e4", day: 7, [b], profile: 2),
    ]
    second.identifiers = [
      IdentifierRow(b, of: ProfileID(2), seen: day(2)), IdentifierRow(u, of: ProfileID(2), seen: day(2)),
    ]
    try await store.commit(second)
    var third = CommitBatch()
    third.deferIndexes = true
    third.merges = [
      MergeRecord(survivor: ProfileID(1), absorbed: ProfileID(2), rule: "ids", evidence: [], eventID: "r", at: day(8))
    ]
    try await store.commit(third)
    // Killed here: neither the run's last transaction (seenFlushed) nor finishWriting.
    let before = try await lastSeen(store)
    #expect(before["anonymous_id:a"]?.1 == day(1), "held back: the store still has the first sighting")
    try store.close()
  }

  @Test("the next writer catches the held-back times up from the log, on the profiles that hold them now")
  func nextWriterCatchesUp() async throws {
    let dir = try TempDir()
    let path = dir.path("killed.sqlite")
    try await Self.killedRun(path)
    #expect(try Self.marked(path))
    let store = try SQLiteStore(path: path)
    #expect(try await store.acquireWriter())
    let seen = try await Self.lastSeen(store)
    #expect(seen["anonymous_id:a"]?.0 == 1 && seen["anonymous_id:a"]?.1 == Self.day(5))
    #expect(seen["anonymous_id:b"]?.0 == 1 && seen["anonymous_id:b"]?.1 == Self.day(7), "b moved to the survivor")
    // Kinds that do not expire keep the time they were attached, as without holding back.
    #expect(seen["user_id:u"]?.1 == Self.day(2))
    try store.close()
    #expect(try !Self.marked(path))
  }

  @Test("a run's own finishWriting catches up what it held back when it stopped early")
  func finishWritingCatchesUp() async throws {
    let dir = try TempDir()
    let path = dir.path("stopped.sqlite")
    try await Self.killedRun(path)
    let store = try SQLiteStore(path: path)
    try await store.finishWriting()
    let seen = try await Self.lastSeen(store)
    #expect(seen["anonymous_id:a"]?.1 == Self.day(5) && seen["anonymous_id:b"]?.1 == Self.day(7))
    try store.close()
    #expect(try !Self.marked(path))
  }

  @Test("the run's last transaction writes the held-back times and clears the mark")
  func flushClearsTheMark() async throws {
    let dir = try TempDir()
    let path = dir.path("flushed.sqlite")
    try await Self.killedRun(path)
    let store = try SQLiteStore(path: path)
    var last = CommitBatch()
    last.deferIndexes = true
    last.seenFlushed = true
    // What the graph holds at the end (a later time than the log shows, to tell the two apart).
    last.identifiers = [IdentifierRow(Identifier("anonymous_id", "a"), of: ProfileID(1), seen: Self.day(6))]
    try await store.commit(last)
    try store.close()
    #expect(try !Self.marked(path))
    let reopened = try SQLiteStore(path: path)
    #expect(try await reopened.acquireWriter())
    let seen = try await Self.lastSeen(reopened)
    #expect(seen["anonymous_id:a"]?.1 == Self.day(6))
    #expect(seen["anonymous_id:b"]?.1 == Self.day(2), "nothing caught up once the mark is gone")
    try reopened.close()
  }
}
