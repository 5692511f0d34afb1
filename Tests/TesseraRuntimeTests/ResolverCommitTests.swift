import TesseraCompiler
import TesseraIdentity
import TesseraModel
import TesseraRuntime
import TesseraStore
import Testing

/// What the resolver hands the store must match the identity graph at the end of the batch.
@Suite("Resolver commits")
struct ResolverCommitTests {
  static let yaml = """
    pipeline: t
    sources:
      s:
        kind: ndjson
        path: none.ndjson
        emit: track
        event: e
        map: { user_id: u, anonymous_id: a }
    identifiers:
      user_id: { max_per_profile: 1, priority: 1 }
      anonymous_id: { max_per_profile: 50, priority: 9, expires_after: 30d }
    deterministic:
      ids: { link_on: [user_id, anonymous_id] }
    """

  static func plan() throws -> PipelinePlan {
    let files = ["p.yaml": yaml]
    let result = Compiler(environment: [:], readFile: { files[$0] }).compile(pipeline: "p.yaml")
    return try #require(result.plan, "\(result.rendered())")
  }

  static func config() throws -> PipelineConfig { try plan().config }

  static func event(_ n: Int, day: Int, _ ids: [(String, String)]) -> Event {
    Event(
      id: "m\(n)", source: "s", type: "track", name: "e",
      timestamp: Timestamp(microseconds: Int64(day) * 86_400_000_000), receivedAt: Timestamp(microseconds: 0),
      identifiers: ids.map { Identifier($0.0, $0.1) })
  }

  @Test("identifiers attached to a profile merged away later in the same batch are written for the survivor")
  func mergeWithinBatch() async throws {
    var resolver = Resolver(config: try Self.config())
    let batch = MappedBatch(
      seq: 0,
      events: [
        Self.event(1, day: 1, [("anonymous_id", "a2")]),
        Self.event(2, day: 2, [("anonymous_id", "a1"), ("user_id", "u1")]),
        Self.event(3, day: 3, [("anonymous_id", "a2"), ("user_id", "u1")]),
      ], rejected: [], invalidIdentifiers: 0)
    let (commit, stats) = resolver.apply(batch, stored: [])
    #expect(stats.merges == 1)
    let survivor = try #require(commit.merges.first?.survivor)
    for row in commit.identifiers {
      #expect(row.profile == survivor, "\(row.identifier) written for \(row.profile), merged into \(survivor)")
    }
    #expect(
      Set(commit.identifiers.map(\.identifier)) == [
        Identifier("anonymous_id", "a1"), Identifier("anonymous_id", "a2"), Identifier("user_id", "u1"),
      ])
    let store = MemoryStore()
    try await store.commit(commit)
    let snapshot = await store.loadIdentity()
    #expect(snapshot.profiles.count == 1)
    #expect(snapshot.profiles.first?.1.count == 3)
  }

  @Test("an identifier attached and then expired within one batch is written only where it ends")
  func expiryWithinBatch() throws {
    var resolver = Resolver(config: try Self.config())
    let batch = MappedBatch(
      seq: 0,
      events: [
        Self.event(1, day: 1, [("anonymous_id", "shared"), ("user_id", "u1")]),
        Self.event(2, day: 100, [("anonymous_id", "shared"), ("user_id", "u2")]),
      ], rejected: [], invalidIdentifiers: 0)
    let (commit, _) = resolver.apply(batch, stored: [])
    let rows = commit.identifiers.filter { $0.identifier == Identifier("anonymous_id", "shared") }
    #expect(rows.count == 1)
    #expect(rows.first?.profile == resolver.graph.profile(of: Identifier("user_id", "u2")))
  }

  @Test("after every transaction the store holds the graph's identifiers, one row each, with its last-seen times")
  func rowsMatchTheGraph() async throws {
    // Random traffic over small pools, so events merge profiles, repeat identifiers within and across
    // transactions, and (with days far apart) let anonymous ids expire and be attached again elsewhere.
    var rng = SplitMix64(seed: 18)
    var resolver = Resolver(config: try Self.config())
    let store = MemoryStore()
    var n = 0
    var day = 0
    var merges = 0
    for cut in 0..<40 {
      var events: [Event] = []
      for _ in 0..<rng.int(1..<60) {
        n += 1
        day += rng.chance(0.02) ? 40 : rng.int(0..<2)
        // New devices keep arriving (a sliding window of ids); people sign in on some of them.
        var ids = [("anonymous_id", "a\(n / 4 + rng.int(0..<40))")]
        if rng.chance(0.4) { ids.append(("user_id", "u\(rng.int(0..<25))")) }
        if rng.chance(0.2) { ids.append(("anonymous_id", "a\(n / 4 + rng.int(0..<40))")) }
        events.append(Self.event(n, day: day, ids))
      }
      let (commit, _) = resolver.apply(
        MappedBatch(seq: cut, events: events, rejected: [], invalidIdentifiers: 0), stored: [])
      #expect(
        Set(commit.identifiers.map(\.identifier)).count == commit.identifiers.count,
        "transaction \(cut) writes an identifier twice")
      let graph = resolver.graph
      for row in commit.identifiers {
        #expect(
          graph.canonical(row.profile) == row.profile && graph.holds(row.profile, row.identifier),
          "transaction \(cut): \(row.identifier) written for \(row.profile)")
      }
      merges += commit.merges.count
      try await store.commit(commit)
      var stored: [Identifier: (ProfileID, Timestamp)] = [:]
      for (p, ids) in await store.loadIdentity().profiles {
        for (i, seen) in ids { stored[i] = (p, seen) }
      }
      for (i, member) in graph.owner {
        #expect(stored[i]?.0 == member.profile, "transaction \(cut): \(i)")
        if i.kind == "anonymous_id" {
          #expect(stored[i]?.1 == member.lastSeen, "transaction \(cut): last seen of \(i)")
        }
      }
      #expect(stored.count == graph.owner.count, "transaction \(cut)")
    }
    #expect(resolver.graph.owner.count > 20)
    #expect(merges > 10)
  }
}
