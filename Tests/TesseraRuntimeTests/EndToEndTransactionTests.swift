import Foundation
import TesseraCompiler
import TesseraConnectors
import TesseraIdentity
import TesseraModel
import TesseraRuntime
import TesseraSQLite
import TesseraStore
import Testing

/// What one store transaction holds: identifiers attached, merged away and expired within the same commit must end
/// where they would with one event per transaction (each case next to that control), so the store a later run
/// starts from does not depend on how events were grouped into transactions.
@Suite("End to end: store transactions")
struct TransactionEndToEndTests {
  typealias StoreKind = E2E.StoreKind

  static let pipeline = """
    pipeline: known_issues
    identifiers:
      email: { normalize: email, max_per_profile: 3, priority: 2, blocked: [test@example.com] }
      phone: { normalize: phone_e164, default_region: US, max_per_profile: 3, priority: 3 }
      anonymous_id: { normalize: trim, max_per_profile: 50, expires_after: 30d, priority: 9 }
    deterministic:
      strong_ids:
        link_on: [email, phone, anonymous_id]
    sources:
      people:
        kind: csv
        path: people.csv
        emit: identify
        timestamp: timestamp(seen_at)
        map:
          email: email
          phone: phone
          anonymous_id: anon
          traits.name: name
    """

  /// Runs `rows` (CSV lines after the header) through the pipeline into a new store.
  static func run(
    _ kind: StoreKind, _ dir: E2E.TempDir, _ rows: [String], batchSize: Int, commitEvents: Int? = nil
  ) async throws -> (any Store, PipelinePlan) {
    let path = try dir.write("known.yaml", Self.pipeline)
    try dir.write("people.csv", (["email,phone,anon,name,seen_at"] + rows).joined(separator: "\n") + "\n")
    let plan = try E2E.compile(path)
    let store = try E2E.makeStore(kind, in: dir, name: "store-\(batchSize).sqlite")
    _ = try await E2E.run(plan, store, batchSize: batchSize, commitEvents: commitEvents)
    return (store, plan)
  }

  /// An identifier attached to a profile and the profile merged away later in the same store transaction.
  static let attachThenMerge = [
    "a@example.com,,,Ann,2026-01-01T00:00:00Z",  // profile 1: email a
    ",(206) 555-0100,,,2026-01-02T00:00:00Z",  // profile 2: the phone
    "a@example.com,(206) 555-0100,,,2026-01-03T00:00:00Z",  // merges 2 into 1
  ]

  static func expectPhoneOnTheSurvivor(_ store: any Store, _ dir: E2E.TempDir, _ plan: PipelinePlan) async throws {
    let ann = try await E2E.profile(store, "email", "a@example.com")
    #expect(try await store.profile(for: Identifier("phone", "+12065550100")) == ann)
    #expect(try await E2E.identifiers(store, ann) == ["email:a@example.com", "phone:+12065550100"])
    let restored = try await store.loadIdentity().profiles.first { $0.0 == ann }?.1.map(\.0.description)
    #expect(restored?.sorted() == ["email:a@example.com", "phone:+12065550100"])
    // A later run sees the phone on its own: it must reach Ann's profile.
    try dir.write("people.csv", "email,phone,anon,name,seen_at\n,(206) 555-0100,,,2026-01-04T00:00:00Z\n")
    _ = try await E2E.run(plan, store)
    #expect(try await store.stats().profiles == 1)
    #expect(try await store.profile(for: Identifier("phone", "+12065550100")) == ann)
  }

  @Test("control: one event per transaction keeps a merged profile's identifiers", arguments: StoreKind.allCases)
  func attachThenMergeControl(kind: StoreKind) async throws {
    let dir = try E2E.TempDir()
    defer { dir.remove() }
    let (store, plan) = try await Self.run(kind, dir, Self.attachThenMerge, batchSize: 1, commitEvents: 1)
    try await Self.expectPhoneOnTheSurvivor(store, dir, plan)
  }

  /// The stores apply a batch's merges before its identifier rows; an identifier attached to a profile that a
  /// later event of the same transaction merges away must still end on the survivor (and survive a restart).
  @Test(
    "an identifier attached and merged away in one transaction stays with the survivor", arguments: StoreKind.allCases)
  func attachThenMerge(kind: StoreKind) async throws {
    let dir = try E2E.TempDir()
    defer { dir.remove() }
    let (store, plan) = try await Self.run(kind, dir, Self.attachThenMerge, batchSize: 1024)
    try await Self.expectPhoneOnTheSurvivor(store, dir, plan)
  }

  /// An anonymous id seen again after `expires_after` starts a new profile.
  static let attachThenExpire = [
    ",,x,,2026-01-01T00:00:00Z",  // profile 1: anonymous x
    ",,x,,2026-03-01T00:00:00Z",  // x expired (30 days): profile 2
  ]

  static func expectExpiredOnlyOnTheNewProfile(_ store: any Store) async throws {
    let snapshot = try await store.loadIdentity()
    #expect(snapshot.profiles.count == 2)
    let holders = snapshot.profiles.filter { $0.1.contains { $0.0 == Identifier("anonymous_id", "x") } }.map(\.0)
    #expect(holders == [ProfileID(2)], "x belongs to the newer profile only")
    #expect(try await store.profile(for: Identifier("anonymous_id", "x")) == ProfileID(2))
  }

  @Test("control: one event per transaction releases an expired identifier", arguments: StoreKind.allCases)
  func attachThenExpireControl(kind: StoreKind) async throws {
    let dir = try E2E.TempDir()
    defer { dir.remove() }
    let (store, _) = try await Self.run(kind, dir, Self.attachThenExpire, batchSize: 1, commitEvents: 1)
    try await Self.expectExpiredOnlyOnTheNewProfile(store)
  }

  /// Releases are applied before identifier rows: an identifier attached and then expired within one transaction
  /// must not stay on its old profile (two live holders, `profile(for:)` answering with the older one).
  @Test("an identifier attached and expired in one transaction leaves its old profile", arguments: StoreKind.allCases)
  func attachThenExpire(kind: StoreKind) async throws {
    let dir = try E2E.TempDir()
    defer { dir.remove() }
    let (store, _) = try await Self.run(kind, dir, Self.attachThenExpire, batchSize: 1024)
    try await Self.expectExpiredOnlyOnTheNewProfile(store)
  }

  /// The same at the scale of a run (anonymous ids expiring): the runner's default transaction size
  /// (`commitEvents`) stores the same profiles as one event per transaction.
  @Test("the size of a store transaction does not change the stored profiles", arguments: StoreKind.allCases)
  func transactionSize(kind: StoreKind) async throws {
    let dir = try E2E.TempDir()
    defer { dir.remove() }
    let pipeline = try E2E.writeGenerated(into: dir, seed: 42, people: 300, events: 3000)
    let plan = try E2E.compile(pipeline)
    let single = try E2E.makeStore(kind, in: dir, name: "single.sqlite")
    let one = try await E2E.run(plan, single, batchSize: 1, commitEvents: 1)
    let gathered = try E2E.makeStore(kind, in: dir, name: "gathered.sqlite")
    let many = try await E2E.run(plan, gathered)
    #expect(one.summary.stats == many.summary.stats)
    E2E.expectSameCanonical(
      try await E2E.canonical(single), try await E2E.canonical(gathered), "one event per transaction vs the default")
    try await E2E.expectConsistent(single, blocked: ["test@example.com"])
    try await E2E.expectConsistent(gathered, blocked: ["test@example.com"])
  }

  /// A run into SQLite holds expiring identifiers' last-seen moves back and writes them once at its end
  /// (`CommitBatch.seenDeferred`); the memory store takes them with every transaction. Both end the same.
  @Test("a run that holds last-seen times back stores the times a run that writes them each transaction does")
  func heldBackLastSeen() async throws {
    let dir = try E2E.TempDir()
    defer { dir.remove() }
    let plan = try E2E.compile(try E2E.writeGenerated(into: dir, seed: 7, people: 300, events: 3000))
    let memory = try E2E.makeStore(.memory, in: dir, name: "memory")
    _ = try await E2E.run(plan, memory, batchSize: 50, commitEvents: 100)
    let sqlite = try E2E.makeStore(.sqlite, in: dir, name: "held.sqlite")
    var runner = E2E.runner(plan, sqlite, batchSize: 50, commitEvents: 100)
    let batches = E2E.Collector<CommitBatch>()
    runner.onCommit = { batches.append([$0]) }
    _ = try await runner.run()
    let committed = batches.items
    #expect(committed.count > 10)
    #expect(committed.dropLast().filter { !$0.seenDeferred.isEmpty }.count > 5, "transactions held times back")
    #expect(committed.last?.seenFlushed == true)
    #expect(committed.dropLast().allSatisfy { !$0.seenFlushed })
    func seen(_ store: any Store) async throws -> [String: String] {
      var out: [String: String] = [:]
      for (p, ids) in try await store.loadIdentity().profiles {
        for (i, at) in ids { out[i.description] = "\(p) \(at.microseconds)" }
      }
      return out
    }
    let expected = try await seen(memory)
    #expect(expected.keys.contains { $0.hasPrefix("anonymous_id:") })
    #expect(try await seen(sqlite) == expected)
  }
}
