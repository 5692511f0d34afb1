import Foundation
import TesseraCompiler
import TesseraIdentity
import TesseraModel
import TesseraRuntime
import TesseraStore
import Testing

/// The resolver maintains computed traits and segments: once per changed profile per batch, windows on a
/// driven clock, merges, and restored state after a restart.
@Suite("Resolver: computed traits and segments")
struct ResolverSegmentsTests {
  enum Fixture {
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
        anonymous_id: { max_per_profile: 50, priority: 9 }
      deterministic:
        ids: { link_on: [user_id, anonymous_id] }
      computed:
        orders_90d: { aggregate: count, where: event == "Order Completed", window: 90d }
      segments:
        repeat_buyer: { when: traits.orders_90d >= 2 }
      """

    /// `extra` adds computed traits (lines under `computed:`).
    static func config(extra: String = "") throws -> PipelineConfig {
      let text = yaml.replacingOccurrences(of: "computed:\n", with: "computed:\n" + extra)
      let files = ["p.yaml": text]
      let result = Compiler(environment: [:], readFile: { files[$0] }).compile(pipeline: "p.yaml")
      return try #require(result.plan, "\(result.rendered())").config
    }

    static func day(_ d: Int) -> Timestamp { Timestamp(microseconds: Int64(d) * 86_400_000_000) }

    static func order(_ n: Int, day d: Int, _ ids: [(String, String)]) -> Event {
      Event(
        id: "m\(n)", source: "s", type: "track", name: "Order Completed", timestamp: day(d),
        receivedAt: Timestamp(microseconds: 0), identifiers: ids.map { Identifier($0.0, $0.1) })
    }

    static func batch(_ seq: Int, _ events: [Event]) -> MappedBatch {
      MappedBatch(seq: seq, events: events, rejected: [], invalidIdentifiers: 0)
    }

    /// A resolver restarted from what `store` holds, its clock at day `d`.
    static func restart(_ config: PipelineConfig, from store: MemoryStore, at d: Int) async -> Resolver {
      Resolver(
        config: config, identity: await store.loadIdentity(), computed: await store.loadComputed(),
        memberships: await store.loadMemberships(), now: day(d))
    }

    static func describe(_ c: [SegmentChangeRecord]) -> [String] {
      c.map { "\($0.profile) \($0.entered ? "entered" : "exited") \($0.segment)" }
    }
  }

  @Test("enters on the second order within 90 days, once per batch; exits at the tick when the first ages out")
  func windowOnDrivenClock() async throws {
    let config = try Fixture.config()
    var resolver = Resolver(config: config, now: Fixture.day(100))
    // Three orders of one person in one batch: one `entered`, not one per event.
    let (first, _) = resolver.apply(
      Fixture.batch(
        0,
        [
          Fixture.order(1, day: 20, [("user_id", "u1")]), Fixture.order(2, day: 60, [("user_id", "u1")]),
          Fixture.order(3, day: 61, [("user_id", "u1")]),
        ]), stored: [])
    #expect(Fixture.describe(first.segmentChanges) == ["prf_1 entered repeat_buyer"])
    #expect(first.segmentChanges.first?.values["traits.orders_90d"] == .int(3))
    #expect(first.computed.map(\.value) == [.int(3)])
    #expect(resolver.tick().isEmpty, "nothing has left the window at day 100")
    let store = MemoryStore()
    try await store.commit(first)

    // A restart at day 115: the order of day 20 is out of the window, two remain: still a member, nothing new.
    var later = await Fixture.restart(config, from: store, at: 115)
    let tick = later.tick()
    #expect(tick.segmentChanges.isEmpty)
    #expect(tick.computed.map(\.value) == [.int(2)])
    try await store.commit(tick)

    // At day 155 the orders of days 60 and 61 have aged out too: the member exits.
    var end = await Fixture.restart(config, from: store, at: 155)
    let exit = end.tick()
    #expect(Fixture.describe(exit.segmentChanges) == ["prf_1 exited repeat_buyer"])
    #expect(exit.segmentChanges.first?.at == Fixture.day(155))
    try await store.commit(exit)
    #expect(await store.members(of: "repeat_buyer").isEmpty)
    #expect(await store.loadComputed().isEmpty, "every bucket expired: the rows are deleted")
  }

  @Test("settled once per store transaction: what settling per batch leaves, without the flips in between")
  func settlesPerTransaction() async throws {
    let yaml =
      Fixture.yaml.replacingOccurrences(
        of: "computed:\n",
        with: "profile:\n  traits:\n    plan: { type: string, policy: most_recent }\ncomputed:\n"
      ) + "\n  pro: { when: traits.plan == \"pro\" }\n"
    let files = ["p.yaml": yaml]
    let compiled = Compiler(environment: [:], readFile: { files[$0] }).compile(pipeline: "p.yaml")
    let config = try #require(compiled.plan, "\(compiled.rendered())").config
    func plan(_ n: Int, day d: Int, _ ids: [(String, String)], _ plan: String) -> Event {
      var e = Fixture.order(n, day: d, ids)
      e.type = "identify"
      e.name = nil
      e.traits = ["plan": .string(plan)]
      return e
    }
    let batches = [
      // u1 turns pro, then free again in the next batch: in and out within one transaction.
      Fixture.batch(0, [plan(1, day: 10, [("user_id", "u1")], "pro"), Fixture.order(2, day: 50, [("user_id", "u2")])]),
      Fixture.batch(
        1,
        [
          plan(3, day: 11, [("user_id", "u1")], "free"), Fixture.order(4, day: 51, [("anonymous_id", "a9")]),
          plan(5, day: 12, [("user_id", "u3")], "pro"),
        ]),
      // a9's order joins u2's: the merged profile qualifies.
      Fixture.batch(2, [Fixture.order(6, day: 52, [("user_id", "u2"), ("anonymous_id", "a9")])]),
    ]

    var perBatch = Resolver(config: config, now: Fixture.day(100))
    let a = MemoryStore()
    for b in batches { try await a.commit(perBatch.apply(b, stored: []).0) }

    var settling = Resolver(config: config, now: Fixture.day(100))
    for b in batches { settling.resolve(b, stored: []) }
    let b = MemoryStore()
    try await b.commit(settling.cut())

    #expect(await b.loadMemberships() == a.loadMemberships())
    #expect(await b.loadComputed() == a.loadComputed())
    #expect(await b.loadTraits().map(\.value) == a.loadTraits().map(\.value))
    #expect(
      await b.loadMemberships().map { "\($0.profile) \($0.segment)" }.sorted() == ["prf_2 repeat_buyer", "prf_4 pro"])
    // Per batch, u1 entered and exited `pro`; per transaction it never did.
    #expect(
      Fixture.describe(await a.segmentChanges(of: "pro", limit: 10)) == [
        "prf_1 entered pro", "prf_1 exited pro", "prf_4 entered pro",
      ])
    #expect(Fixture.describe(await b.segmentChanges(of: "pro", limit: 10)) == ["prf_4 entered pro"])
    #expect(Fixture.describe(await b.segmentChanges(of: "repeat_buyer", limit: 10)) == ["prf_2 entered repeat_buyer"])
    #expect(await b.segmentChanges(of: "repeat_buyer", limit: 10).first?.values["traits.orders_90d"] == .int(3))
    // Nothing is left to settle.
    settling.resolve(Fixture.batch(3, []), stored: [])
    #expect(settling.cut().isEmpty)
  }

  @Test("batches gathered into one transaction write the latest row of each trait, none of an absorbed profile")
  func gatheredBatchesKeepTheLatestRows() async throws {
    let config = try Fixture.config()
    var resolver = Resolver(config: config, now: Fixture.day(100))
    // One batch alone: its rows as they are.
    var alone = resolver
    alone.resolve(
      Fixture.batch(
        0, [Fixture.order(1, day: 50, [("user_id", "u1")]), Fixture.order(2, day: 51, [("anonymous_id", "a1")])]),
      stored: [])
    #expect(alone.cut().computed.map { "\($0.profile) \($0.value)" } == ["prf_1 1", "prf_2 1"])
    // With a second batch in the same transaction that merges prf_2 into prf_1 and adds an order.
    resolver.resolve(
      Fixture.batch(
        0, [Fixture.order(1, day: 50, [("user_id", "u1")]), Fixture.order(2, day: 51, [("anonymous_id", "a1")])]),
      stored: [])
    resolver.resolve(
      Fixture.batch(1, [Fixture.order(3, day: 52, [("user_id", "u1"), ("anonymous_id", "a1")])]), stored: [])
    let commit = resolver.cut()
    #expect(commit.computed.map { "\($0.profile) \($0.value)" } == ["prf_1 3"])
    let store = MemoryStore()
    try await store.commit(commit)
    #expect(await store.loadComputed().map { "\($0.profile) \($0.value)" } == ["prf_1 3"])
    #expect(await store.members(of: "repeat_buyer").map(\.profile) == [ProfileID(1)])
  }

  @Test("the tick writes the rows of the traits that dropped buckets, not every trait of the profile")
  func tickWritesChangedTraitsOnly() throws {
    let config = try Fixture.config(
      extra: "  n_orders: { aggregate: count, where: event == \"Order Completed\" }\n")
    var resolver = Resolver(config: config, now: Fixture.day(100))
    let (first, _) = resolver.apply(
      Fixture.batch(
        0, [Fixture.order(1, day: 20, [("user_id", "u1")]), Fixture.order(2, day: 60, [("user_id", "u1")])]),
      stored: [])
    #expect(first.computed.map { "\($0.trait) \($0.value)" } == ["n_orders 2", "orders_90d 2"])
    // A restart at day 115 from the stored rows: the day-20 order leaves the 90-day window.
    var later = Resolver(config: config, computed: first.computed, now: Fixture.day(115))
    let tick = later.tick()
    // Only the windowed trait's row is rewritten; the all-time count's stored row stays as it is.
    #expect(tick.computed.map { "\($0.trait) \($0.value)" } == ["orders_90d 1"])
    #expect(later.computed.values(of: ProfileID(1), at: Fixture.day(115))["n_orders"] == .int(2))
  }

  @Test("a late event lands in its own bucket and does not count when outside the window")
  func lateEvent() throws {
    var resolver = Resolver(config: try Fixture.config(), now: Fixture.day(100))
    _ = resolver.apply(Fixture.batch(0, [Fixture.order(1, day: 90, [("user_id", "u1")])]), stored: [])
    let (late, _) = resolver.apply(Fixture.batch(1, [Fixture.order(2, day: 5, [("user_id", "u1")])]), stored: [])
    #expect(late.segmentChanges.isEmpty)
    // The day-5 order is outside the 90-day window at day 100: the state does not change, so its row (value 1,
    // written by the first batch) is not rewritten.
    #expect(late.computed.isEmpty)
    #expect(resolver.computed.values(of: ProfileID(1), at: Fixture.day(100))["orders_90d"] == .int(1))
  }

  @Test("a merge makes the merged profile qualify; the absorbed profile's state moves with it")
  func mergeQualifies() async throws {
    var resolver = Resolver(config: try Fixture.config(), now: Fixture.day(100))
    let (one, _) = resolver.apply(
      Fixture.batch(
        0, [Fixture.order(1, day: 50, [("user_id", "u1")]), Fixture.order(2, day: 51, [("anonymous_id", "a1")])]),
      stored: [])
    #expect(one.segmentChanges.isEmpty)
    let (two, _) = resolver.apply(
      Fixture.batch(1, [Fixture.order(3, day: 52, [("user_id", "u1"), ("anonymous_id", "a1")])]), stored: [])
    #expect(two.merges.count == 1)
    #expect(Fixture.describe(two.segmentChanges) == ["prf_1 entered repeat_buyer"])
    #expect(two.computed.map { "\($0.profile) \($0.value)" } == ["prf_1 3"])
    let store = MemoryStore()
    try await store.commit(one)
    try await store.commit(two)
    #expect(await store.loadComputed().map(\.profile) == [ProfileID(1)])
    #expect(await store.members(of: "repeat_buyer").map(\.profile) == [ProfileID(1)])
  }
}
