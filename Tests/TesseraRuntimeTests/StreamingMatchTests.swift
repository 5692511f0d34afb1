import Foundation
import TesseraCompiler
import TesseraIdentity
import TesseraMatching
import TesseraModel
import TesseraRuntime
import TesseraStore
import Testing

/// Probabilistic matching inside a run: events without a known identifier join, wait for review, or are
/// refused, and give the clusters batch linking gives.
@Suite("Streaming probabilistic matching")
struct StreamingMatchTests {
  static let yaml = """
    pipeline: t
    sources:
      s:
        kind: ndjson
        path: none.ndjson
        emit: track
        event: e
        map: { user_id: u, traits.first_name: f, traits.last_name: l, traits.dob: d }
    identifiers:
      user_id: { max_per_profile: 1, priority: 1 }
    deterministic:
      ids: { link_on: [user_id] }
    profile:
      traits:
        first_name: { type: string }
        last_name: { type: string }
        dob: { type: string }
    probabilistic:
      person:
        blocking:
          - [soundex(traits.last_name)]
          - [traits.dob]
        compare:
          first_name:
            - { level: exact, m: 0.9, u: 0.01 }
            - { level: jaro_winkler >= 0.85, m: 0.06, u: 0.02 }
            - { level: else, m: 0.04, u: 0.97 }
          last_name:
            - { level: exact, m: 0.9, u: 0.005 }
            - { level: else, m: 0.1, u: 0.995 }
          dob:
            - { level: exact, m: 0.9, u: 0.001 }
            - { level: else, m: 0.1, u: 0.999 }
        thresholds: { merge: 0.99, review: 0.9 }
        prior: 0.001
        max_cluster_size: 3
    """

  static func config() throws -> PipelineConfig {
    let files = ["p.yaml": yaml]
    let result = Compiler(environment: [:], readFile: { files[$0] }).compile(pipeline: "p.yaml")
    return try #require(result.plan, "\(result.rendered())").config
  }

  static func event(_ n: Int, _ traits: [String: String], user: String? = nil) -> Event {
    Event(
      id: "m\(n)", source: "s", type: "track", name: "e", timestamp: Timestamp(microseconds: Int64(n) * 1_000_000),
      receivedAt: Timestamp(microseconds: 0), identifiers: user.map { [Identifier("user_id", $0)] } ?? [],
      traits: traits.mapValues(Value.string))
  }

  static func batch(_ events: [Event]) -> MappedBatch {
    MappedBatch(seq: 0, events: events, rejected: [], invalidIdentifiers: 0)
  }

  @Test("an event joins the best profile at or above merge and the join is logged")
  func joins() throws {
    var resolver = Resolver(config: try Self.config())
    let (commit, stats) = resolver.apply(
      Self.batch([
        Self.event(1, ["first_name": "Katherine", "last_name": "Lindqvist", "dob": "1990-07-21"], user: "u1"),
        Self.event(2, ["first_name": "Kathrine", "last_name": "Lindqvist", "dob": "1990-07-21"]),
      ]), stored: [])
    #expect(stats.probabilisticJoins == 1)
    #expect(stats.profilesCreated == 1)
    #expect(commit.events.map(\.profile) == [ProfileID(1), ProfileID(1)])
    let link = try #require(commit.matchLinks.first)
    #expect(link.status == .joined && link.profile == ProfileID(1) && link.candidate == ProfileID(1))
    #expect(link.eventID == "m2" && link.rule == "person")
    // first name JW ≥ 0.85, last name and dob exact, over the prior.
    let parts: [Double] = [log2(0.001 / 0.999), log2(0.06 / 0.02), log2(0.9 / 0.005), log2(0.9 / 0.001)]
    let w = parts.reduce(0, +)
    #expect(abs(link.weight - w) < 1e-9)
  }

  @Test("between review and merge: a profile of its own and a candidate link")
  func review() throws {
    var resolver = Resolver(config: try Self.config())
    let (commit, stats) = resolver.apply(
      Self.batch([
        Self.event(1, ["first_name": "Katherine", "last_name": "Lindqvist", "dob": "1990-07-21"]),
        // No last name: first name and dob exact over the prior, weight 6.49 + 9.81 − 9.96 = 6.34, p ≈ 0.988.
        Self.event(2, ["first_name": "Katherine", "dob": "1990-07-21"]),
      ]), stored: [])
    #expect(stats.profilesCreated == 2)
    #expect(stats.reviewLinks == 1 && stats.probabilisticJoins == 0)
    let link = try #require(commit.matchLinks.first)
    #expect(link.status == .review && link.profile == ProfileID(2) && link.candidate == ProfileID(1))
    #expect(abs(link.probability - 0.98784) < 1e-4, "\(link.probability)")
  }

  @Test("of two profiles above review, the event goes to the one with the higher weight, whatever their order")
  func strongestCandidateWins() throws {
    let config = try Self.config()
    let exact = ["first_name": "Katherine", "last_name": "Lindqvist", "dob": "1990-07-21"]
    // One typo in the first name: the Jaro–Winkler level instead of exact, still above merge.
    let typo = ["first_name": "Kathrine", "last_name": "Lindqvist", "dob": "1990-07-21"]
    let prior = log2(0.001 / 0.999)
    let strong = prior + log2(0.9 / 0.01) + log2(0.9 / 0.005) + log2(0.9 / 0.001)
    let weak = prior + log2(0.06 / 0.02) + log2(0.9 / 0.005) + log2(0.9 / 0.001)
    for (strongID, weakID) in [(ProfileID(1), ProfileID(2)), (ProfileID(2), ProfileID(1))] {
      var matcher = StreamingMatcher(config: config)
      let profiles = [strongID: exact, weakID: typo]
      for id in profiles.keys.sorted() { matcher.index(id, values: profiles[id] ?? [:]) }
      // Each alone is a candidate above review, with its own weight.
      let alone = try #require(matcher.best(event: exact) { $0 == weakID ? typo : [:] })
      #expect(alone.profile == weakID && abs(alone.weight - weak) < 1e-9 && alone.probability >= 0.9)
      let best = try #require(matcher.best(event: exact) { profiles[$0] ?? [:] })
      #expect(best.profile == strongID, "profile \(strongID.description) should win over \(weakID.description)")
      #expect(abs(best.weight - strong) < 1e-9)
      #expect(best.merge && best.rule == "person")
    }
  }

  @Test("a join that would give a profile a second user id is refused and recorded")
  func refusedByLimit() throws {
    var resolver = Resolver(config: try Self.config())
    let (commit, stats) = resolver.apply(
      Self.batch([
        Self.event(1, ["first_name": "Ann", "last_name": "Smith", "dob": "1990-01-01"], user: "u1"),
        Self.event(2, ["first_name": "Ann", "last_name": "Smith", "dob": "1990-01-01"], user: "u2"),
      ]), stored: [])
    #expect(stats.profilesCreated == 2)
    let link = try #require(commit.matchLinks.first)
    #expect(link.status == .refused)
    #expect(link.reason == "joining would give the profile more than 1 user_id value")
    let conflict = try #require(commit.conflicts.first)
    #expect(conflict.kept == ProfileID(2) && conflict.other == ProfileID(1))
    #expect(conflict.reason.hasPrefix("probabilistic match (0.99"))
  }

  @Test("max_cluster_size stops a profile from absorbing records without end")
  func clusterSize() throws {
    var resolver = Resolver(config: try Self.config())
    let events = (1...5).map { Self.event($0, ["first_name": "Ann", "last_name": "Smith", "dob": "1990-01-01"]) }
    let (commit, stats) = resolver.apply(Self.batch(events), stored: [])
    // The first record starts the profile, two more join (3 records), the rest are refused.
    #expect(stats.probabilisticJoins == 2)
    #expect(commit.matchLinks.map(\.status) == [.joined, .joined, .refused, .refused])
    #expect(commit.matchLinks[2].reason.contains("max_cluster_size"))
    #expect(Set(commit.events.map(\.profile)).count == 3)
  }

  @Test("streaming and batch linking give the same clusters on the same records")
  func streamingEqualsBatch() async throws {
    let config = try Self.config()
    var rng = SplitMix64(seed: 99)
    func word(_ n: Int) -> String {
      String((0..<n).map { _ in Character(Unicode.Scalar(UInt8(97 + rng.int(0..<26)))) })
    }
    var rows: [[String: String]] = []
    var truth: [String] = []
    for p in 0..<150 {
      let first = word(7)
      let last = word(8)
      let dob = "19\(50 + rng.int(0..<49))-0\(1 + rng.int(0..<9))-1\(rng.int(0..<9))"
      for _ in 0..<(1 + rng.int(0..<3)) {
        var f = Array(first)
        if rng.chance(0.3) { f[3 + rng.int(0..<3)] = "x" }  // a typo late in the name
        rows.append(["first_name": String(f), "last_name": last, "dob": dob])
        truth.append("p\(p)")
      }
    }
    // Batch.
    let rule = try #require(config.probabilistic.first)
    var builder = RecordSetBuilder(model: MatchModel(rule: rule), rule: rule, config: config)
    for (i, row) in rows.enumerated() { builder.append(id: "m\(i)") { row[$0] } }
    let batch = await Linker(model: MatchModel(rule: rule)).run(builder.finish())
    var batchGroups: [Int: Set<Int>] = [:]
    for (i, c) in batch.cluster.enumerated() { batchGroups[c, default: []].insert(i) }
    // Streaming, one event per record in file order.
    var resolver = Resolver(config: config)
    let (commit, _) = resolver.apply(Self.batch(rows.enumerated().map { Self.event($0, $1) }), stored: [])
    var streamGroups: [ProfileID: Set<Int>] = [:]
    for (i, e) in commit.events.enumerated() {
      streamGroups[resolver.graph.canonical(e.profile), default: []].insert(i)
    }
    #expect(Set(streamGroups.values) == Set(batchGroups.values))
    // And both find the people.
    #expect(ClusterEvaluation.pairwise(predicted: batch.cluster, truth: truth).f1 > 0.99)
  }

  @Test("a confirmed link merges the two profiles at the next run; a rejected one is remembered")
  func confirmedLinksMerge() async throws {
    let config = try Self.config()
    let store: any Store = MemoryStore()
    var first = Resolver(config: config)
    let (commit, _) = first.apply(
      Self.batch([
        Self.event(1, ["first_name": "Katherine", "last_name": "Lindqvist", "dob": "1990-07-21"]),
        Self.event(2, ["first_name": "Katherine", "dob": "1990-07-21"]),
      ]), stored: [])
    try await store.commit(commit)
    let link = try #require(try await store.matchLinks(status: .review, limit: 10).first)
    var decision = CommitBatch()
    decision.linkStatus = [LinkStatusChange(link.id, to: .confirmed)]
    try await store.commit(decision)
    // The next run starts from the store and applies the decision before any event.
    var next = Resolver(
      config: config, identity: try await store.loadIdentity(), traits: try await store.loadTraits())
    let applied = next.applyConfirmed(
      try await store.matchLinks(status: .confirmed, limit: 10), at: Timestamp(microseconds: 9))
    let merge = try #require(applied.merges.first)
    #expect(merge.survivor == ProfileID(1) && merge.absorbed == ProfileID(2))
    #expect(merge.rule == "person" && merge.score == link.probability)
    try await store.commit(applied)
    #expect(try await store.matchLinks(status: .merged, limit: 10).map(\.id) == [link.id])
    #expect(try await store.canonical(ProfileID(2)) == ProfileID(1))
    #expect(try await store.stats().profiles == 1)
  }
}
