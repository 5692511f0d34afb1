import Foundation
import TesseraCompiler
import TesseraModel
import Testing

@testable import TesseraRuntime

/// Helpers for the segment engine tests, in one namespace so other files of the target can't collide.
enum SegmentFixture {
  typealias F = ComputedFixture

  static let pipeline = """
    computed:
      orders_90d: { aggregate: count, where: event == "Order Completed", window: 90d }
      revenue_total: { aggregate: sum, of: double(properties.revenue), where: event == "Order Completed" }
    segments:
      vip_newsletter:
        description: declared before the segment it reads, so evaluation order matters.
        when: segments.high_value && traits.marketing_opt_in == true && exists(identifiers.email)
      high_value:
        when: traits.revenue_total > 500 && traits.orders_90d >= 2
      lapsed: traits.revenue_total > 0 && traits.orders_90d == 0
      pro_three: traits.plan == "pro" && profile.id == "prf_3"

    """

  /// A small driver standing in for the pipeline: computed traits, declared traits (last value wins) and
  /// identifiers per profile, and the engine. The clock is whatever the test passes.
  final class World {
    var config: PipelineConfig
    var table: ComputedTraitTable
    var engine: SegmentEngine
    var declared: [ProfileID: [String: Value]] = [:]
    var identifiers: [ProfileID: [Identifier]] = [:]

    init(_ config: PipelineConfig, memberships: [ProfileID: Set<String>] = [:]) {
      self.config = config
      self.table = ComputedTraitTable(config: config)
      self.engine = SegmentEngine(config: config, memberships: memberships)
    }

    func inputs(_ p: ProfileID, at now: Timestamp) -> ProfileInputs {
      var traits = declared[p] ?? [:]
      for (k, v) in table.values(of: p, at: now) { traits[k] = v }
      return ProfileInputs(traits: traits, identifiers: identifiers[p] ?? [])
    }

    func ingest(_ e: Event, _ p: ProfileID, now: Timestamp? = nil) -> [SegmentChange] {
      let now = now ?? e.timestamp
      table.add(e, to: p, now: now)
      for (k, v) in e.traits { declared[p, default: [:]][k] = v }
      for i in e.identifiers where !(identifiers[p] ?? []).contains(i) { identifiers[p, default: []].append(i) }
      return engine.evaluate(p, inputs: inputs(p, at: now), now: now)
    }

    func tick(_ now: Timestamp) -> [SegmentChange] {
      let changed = table.expire(now: now)
      let snapshot = self
      return engine.evaluate(changed, now: now) { snapshot.inputs($0, at: now) }
    }

    func merge(_ absorbed: ProfileID, into survivor: ProfileID, now: Timestamp) -> [SegmentChange] {
      table.merge(absorbed: absorbed, into: survivor)
      if let d = declared.removeValue(forKey: absorbed) {
        for (k, v) in d where declared[survivor]?[k] == nil { declared[survivor, default: [:]][k] = v }
      }
      identifiers[survivor, default: []] += identifiers.removeValue(forKey: absorbed) ?? []
      return engine.merge(absorbed: absorbed, into: survivor, survivorInputs: inputs(survivor, at: now), now: now)
    }
  }

  static func world(sourceLocation: SourceLocation = #_sourceLocation) throws -> World {
    World(try #require(F.compile(pipeline, sourceLocation: sourceLocation), sourceLocation: sourceLocation))
  }

  static func summary(_ changes: [SegmentChange]) -> [String] {
    changes.map { "\($0.profile) \($0.kind.rawValue) \($0.segment)" }
  }

  static func identify(_ id: String, at t: Timestamp, traits: [String: Value], email: String? = nil) -> Event {
    Event(
      id: id, source: "web", type: "identify", timestamp: t, receivedAt: t,
      identifiers: email.map { [Identifier("email", $0)] } ?? [], traits: traits)
  }
}

@Suite("Segment engine")
struct SegmentEngineTests {
  typealias F = ComputedFixture
  typealias S = SegmentFixture

  @Test("index sets past the 64 kept inline behave as below them")
  func indexBitsPastTheInlineWord() {
    for count in [1, 20, 64, 65, 130, 200] {
      var a = IndexBits(count: count)
      var b = IndexBits(count: count)
      #expect(a.isEmpty && a.indexes.isEmpty)
      let picked = Array(stride(from: 0, to: count, by: 3)) + [count - 1]
      for i in picked { a.set(i, true) }
      #expect(a.indexes == Array(Set(picked)).sorted(), "\(count)")
      #expect((0..<count).allSatisfy { a.contains($0) == picked.contains($0) }, "\(count)")
      #expect(!a.contains(count + 64) && !a.contains(-1))
      #expect(!a.intersects(b))
      b.set(count - 1, true)
      #expect(a.intersects(b) && b.intersects(a))
      a.set(count - 1, false)
      #expect(!a.contains(count - 1) && !a.intersects(b), "\(count)")
      b.formUnion(a)
      #expect(b.indexes == (Array(Set(picked)).sorted().dropLast() + [count - 1]).sorted(), "\(count)")
      var c = IndexBits(count: count)
      for i in b.indexes { c.set(i, true) }
      #expect(c == b && c.hashValue == b.hashValue)
      b.clear()
      #expect(b.isEmpty && b == IndexBits(count: count))
    }
  }

  @Test("segments are evaluated after the segments they read")
  func evaluationOrder() throws {
    let w = try S.world()
    #expect(w.engine.names == ["vip_newsletter", "high_value", "lapsed", "pro_three"])
    #expect(w.engine.evaluationOrder == ["high_value", "vip_newsletter", "lapsed", "pro_three"])
  }

  @Test("a profile enters on its second order within 90 days and exits when the first order ages out")
  func windowEnterAndExit() throws {
    let w = try S.world()
    let p = ProfileID(1)
    #expect(w.ingest(F.order("o1", at: F.day(0.25), revenue: .double(300)), p).isEmpty)
    let entered = w.ingest(F.order("o2", at: F.day(30), revenue: .double(250)), p)
    #expect(S.summary(entered) == ["prf_1 entered high_value"])
    #expect(
      entered.first?.values == ["traits.revenue_total": .double(550), "traits.orders_90d": .int(2)])
    #expect(entered.first?.time == F.day(30))
    #expect(w.engine.members(of: "high_value") == [p])

    #expect(w.tick(F.day(60)).isEmpty)
    #expect(w.tick(F.day(90.9)).isEmpty)  // the day-0 bucket is inside the window until day 91
    let exited = w.tick(F.day(91))
    #expect(S.summary(exited) == ["prf_1 exited high_value"])
    #expect(exited.first?.values["traits.orders_90d"] == .int(1))
    #expect(exited.first?.time == F.day(91))
    #expect(w.engine.memberCount(of: "high_value") == 0)
    #expect(w.tick(F.day(100)).isEmpty)
    // The second order ages out at day 121: nothing bought within 90 days any more.
    #expect(S.summary(w.tick(F.day(121))) == ["prf_1 entered lapsed"])
  }

  @Test("a late order inside the window counts; one older than the window does not")
  func lateOrders() throws {
    let w = try S.world()
    let p = ProfileID(1)
    #expect(w.ingest(F.order("o1", at: F.day(100), revenue: .double(400)), p, now: F.day(100)).isEmpty)
    // Arrives on day 101 but happened on day 5: outside 90 days, so revenue counts and orders_90d does not.
    #expect(w.ingest(F.order("o0", at: F.day(5), revenue: .double(400)), p, now: F.day(101)).isEmpty)
    #expect(w.table.values(of: p, at: F.day(101))["orders_90d"] == .int(1))
    // Happened on day 60: inside the window, so the profile qualifies.
    let changes = w.ingest(F.order("o2", at: F.day(60), revenue: .double(10)), p, now: F.day(102))
    #expect(S.summary(changes) == ["prf_1 entered high_value"])
    #expect(S.summary(w.tick(F.day(151))) == ["prf_1 exited high_value"])
  }

  @Test("re-evaluating an unchanged profile, or after a restart, announces nothing")
  func noDuplicateEnter() throws {
    let w = try S.world()
    let p = ProfileID(1)
    _ = w.ingest(F.order("o1", at: F.day(1), revenue: .double(300)), p)
    #expect(S.summary(w.ingest(F.order("o2", at: F.day(2), revenue: .double(300)), p)) == ["prf_1 entered high_value"])
    #expect(w.engine.evaluate(p, inputs: w.inputs(p, at: F.day(3)), now: F.day(3)).isEmpty)
    #expect(w.ingest(F.order("o3", at: F.day(4), revenue: .double(300)), p).isEmpty)
    #expect(w.engine.evaluate([p, p], now: F.day(5)) { w.inputs($0, at: F.day(5)) }.isEmpty)

    // A restart restores the stored memberships: no second `entered`.
    var restarted = SegmentEngine(config: w.config, memberships: w.engine.memberships)
    #expect(restarted.memberships == [p: ["high_value"]])
    #expect(restarted.memberCount(of: "high_value") == 1)
    let again = restarted.evaluate(p, inputs: w.inputs(p, at: F.day(6)), now: F.day(6))
    #expect(again.isEmpty)
    // Without them, the same evaluation would announce the member again.
    var fresh = SegmentEngine(config: w.config)
    let announced = fresh.evaluate(p, inputs: w.inputs(p, at: F.day(6)), now: F.day(6))
    #expect(S.summary(announced) == ["prf_1 entered high_value"])
  }

  @Test("a merge that makes the merged profile qualify enters it")
  func mergeQualifies() throws {
    let w = try S.world()
    let (a, b) = (ProfileID(1), ProfileID(2))
    #expect(w.ingest(F.order("a1", at: F.day(10), revenue: .double(300)), a).isEmpty)
    #expect(w.ingest(F.order("b1", at: F.day(20), revenue: .double(300)), b).isEmpty)
    let changes = w.merge(b, into: a, now: F.day(21))
    #expect(S.summary(changes) == ["prf_1 entered high_value"])
    #expect(changes.first?.values["traits.orders_90d"] == .int(2))
    #expect(w.engine.members(of: "high_value") == [a])
  }

  @Test("the absorbed profile exits its segments; the survivor enters them only if it qualifies")
  func mergeEndsAbsorbed() throws {
    let w = try S.world()
    let (a, b) = (ProfileID(1), ProfileID(2))
    _ = w.ingest(S.identify("a0", at: F.day(0), traits: ["plan": .string("free")]), a)
    _ = w.ingest(F.order("b1", at: F.day(1), revenue: .double(300)), b)
    #expect(S.summary(w.ingest(F.order("b2", at: F.day(2), revenue: .double(300)), b)) == ["prf_2 entered high_value"])
    let changes = w.merge(b, into: a, now: F.day(3))
    #expect(S.summary(changes) == ["prf_2 exited high_value", "prf_1 entered high_value"])
    #expect(changes.first?.mergedInto == a)
    #expect(changes.first?.values.isEmpty == true)
    #expect(changes.last?.mergedInto == nil)
    #expect(w.engine.members(of: "high_value") == [a])
    #expect(w.engine.memberCount(of: "high_value") == 1)
    #expect(w.engine.segments(of: b).isEmpty)
    // Removing a profile ends its memberships too.
    #expect(S.summary(w.engine.remove(a, now: F.day(4))) == ["prf_1 exited high_value"])
    #expect(w.engine.memberCount(of: "high_value") == 0)
  }

  @Test("a segment that reads another follows it in and out, in the same evaluation")
  func dependentSegments() throws {
    let w = try S.world()
    let p = ProfileID(3)
    let id = S.identify("i1", at: F.day(0), traits: ["marketing_opt_in": .bool(true)], email: "a@example.com")
    #expect(w.ingest(id, p).isEmpty)
    _ = w.ingest(F.order("o1", at: F.day(1), revenue: .double(300)), p)
    let enter = w.ingest(F.order("o2", at: F.day(2), revenue: .double(300)), p)
    #expect(S.summary(enter) == ["prf_3 entered high_value", "prf_3 entered vip_newsletter"])
    #expect(
      enter.last?.values == [
        "segments.high_value": .bool(true), "traits.marketing_opt_in": .bool(true),
        "identifiers.email": .string("a@example.com"),
      ])
    #expect(w.engine.segments(of: p) == ["vip_newsletter", "high_value"])
    let exit = w.tick(F.day(92))
    #expect(S.summary(exit) == ["prf_3 exited high_value", "prf_3 exited vip_newsletter"])
    #expect(exit.last?.values["segments.high_value"] == .bool(false))
  }

  @Test("conditions read declared traits and the profile id from their slots")
  func declaredTraitsAndProfileID() throws {
    let w = try S.world()
    let pro = ["plan": Value.string("pro")]
    #expect(w.ingest(S.identify("x", at: F.day(0), traits: pro), ProfileID(2)).isEmpty)
    let c = w.ingest(S.identify("y", at: F.day(0), traits: pro), ProfileID(3))
    #expect(S.summary(c) == ["prf_3 entered pro_three"])
    #expect(c.first?.values == ["traits.plan": .string("pro"), "profile.id": .string("prf_3")])
    let out = w.ingest(S.identify("z", at: F.day(1), traits: ["plan": .string("free")]), ProfileID(3))
    #expect(S.summary(out) == ["prf_3 exited pro_three"])
  }

  @Test("positional inputs read the same slots as named ones")
  func positionalInputs() throws {
    let w = try S.world()
    #expect(w.engine.traitOrder == ["marketing_opt_in", "plan", "orders_90d", "revenue_total"])
    #expect(w.engine.identifierOrder == ["user_id", "email"])
    var named = w.engine
    var positional = w.engine
    let traits: [String: Value] = [
      "marketing_opt_in": .bool(true), "plan": .string("pro"), "orders_90d": .int(2), "revenue_total": .double(900),
    ]
    let a = named.evaluate(
      ProfileID(3), inputs: ProfileInputs(traits: traits, identifiers: ["email": .string("a@b.c")]), now: F.day(1))
    let b = positional.evaluate(
      ProfileID(3),
      inputs: ProfileInputs(
        traitValues: [.bool(true), .string("pro"), .int(2), .double(900)], identifierValues: [.null, .string("a@b.c")]),
      now: F.day(1))
    #expect(S.summary(a) == ["prf_3 entered high_value", "prf_3 entered vip_newsletter", "prf_3 entered pro_three"])
    #expect(a == b)
  }

}

/// Evaluating only the segments whose inputs changed gives what evaluating every segment gives.
@Suite("Segment engine: selective evaluation")
struct SelectiveEvaluationTests {
  static let body = """
    computed:
      orders: { aggregate: count, where: event == "Order Completed" }
      recent: { aggregate: count, where: event == "Viewed", window: 7d }
    segments:
      a: traits.orders >= 2
      b: traits.plan == "pro" && segments.a
      c: traits.marketing_opt_in == true || traits.recent > 3
      d: profile.id == "prf_3" && traits.orders == 1
      e: exists(identifiers.email) && traits.recent >= 1
      f: exists(traits.plan) && now() > timestamp("2024-05-01T00:00:00Z")
      g: segments.c && !segments.b
      h: traits.plan == "free" && traits.recent == 0

    """

  static func random(_ n: Int, _ order: [String], _ rng: inout SplitMix64) -> Value {
    switch order[n] {
    case "plan": return [Value.null, .string("pro"), .string("free")][rng.int(0..<3)]
    case "marketing_opt_in": return [Value.null, .bool(true), .bool(false)][rng.int(0..<3)]
    default: return .int(Int64(rng.int(0..<6)))
    }
  }

  @Test("random trait changes: the selective engine's memberships and changes equal the full engine's")
  func selectiveMatchesFull() throws {
    let config = try #require(ComputedFixture.compile(Self.body))
    var full = SegmentEngine(config: config)
    var selective = SegmentEngine(config: config)
    let order = full.traitOrder
    var rng = SplitMix64(seed: 17)
    var values: [ProfileID: [Value]] = [:]
    var emails: [ProfileID: Value] = [:]
    var now = ComputedFixture.day(-1)
    for step in 0..<3000 {
      let p = ProfileID(Int64(1 + rng.int(0..<6)))
      var current = values[p] ?? Array(repeating: .null, count: order.count)
      var changed = Set<Int>()
      for _ in 0..<rng.int(0..<3) {
        let n = rng.int(0..<order.count)
        current[n] = Self.random(n, order, &rng)
        changed.insert(n)
      }
      values[p] = current
      // Identifiers and the clock are not reported as changed: the engine re-reads them every time.
      if rng.int(0..<10) == 0 { emails[p] = emails[p] == nil ? .string("x\(step)@example.com") : nil }
      if rng.int(0..<50) == 0 { now = now + TimeSpan(seconds: 86_400) }
      let email = emails[p] ?? .null
      let emailSlot = config.identifiers.firstIndex { $0.name == "email" } ?? -1
      let values = current
      let a = full.evaluate(
        p, now: now, trait: { values[$0] }, identifier: { $0 == emailSlot ? email : .null })
      var bits = IndexBits(count: order.count)
      for n in changed { bits.set(n, true) }
      let b = selective.evaluate(
        p, now: now, changed: bits, trait: { values[$0] }, identifier: { $0 == emailSlot ? email : .null })
      #expect(a == b, "step \(step), profile \(p), changed \(changed.map { order[$0] })")
      #expect(full.segments(of: p) == selective.segments(of: p), "step \(step)")
    }
    for name in full.names { #expect(full.memberCount(of: name) == selective.memberCount(of: name)) }
  }
}
