import TesseraCompiler
import TesseraLanguage
import TesseraModel
import TesseraStore
import Testing

@testable import TesseraRuntime

/// Helpers for the computed-trait and segment tests, in one namespace so other files of the target can't collide.
enum ComputedFixture {
  /// 2024-05-01T00:00:00Z, a UTC midnight (so daily buckets start at whole days from here).
  static let base = Timestamp(microseconds: 1_714_521_600_000_000)

  static func day(_ d: Double) -> Timestamp { base + TimeSpan(seconds: d * 86_400) }
  static func hour(_ h: Double) -> Timestamp { base + TimeSpan(seconds: h * 3600) }

  static let header = """
    pipeline: t
    sources:
      web: { kind: http, write_key: k }
    identifiers:
      user_id: { normalize: trim, priority: 1 }
      email: { normalize: email, priority: 2 }
    deterministic:
      strong: { link_on: [user_id, email] }
    profile:
      traits:
        marketing_opt_in: { type: bool, policy: most_recent }
        plan: { type: string, policy: most_recent }

    """

  /// Compiles a pipeline held in memory (`header` plus `body`) and returns its configuration.
  static func compile(_ body: String, sourceLocation: Testing.SourceLocation = #_sourceLocation) -> PipelineConfig? {
    let text = header + body
    let result = Compiler(environment: [:], readFile: { $0 == "p.yaml" ? text : nil }).compile(pipeline: "p.yaml")
    #expect(!result.hasErrors, "\(result.rendered())", sourceLocation: sourceLocation)
    return result.plan?.config
  }

  /// One computed trait per aggregate, all over `Order Completed`.
  static let allAggregates = """
    computed:
      n_orders: { aggregate: count, where: event == "Order Completed" }
      revenue: { aggregate: sum, of: double(properties.revenue), where: event == "Order Completed" }
      smallest: { aggregate: min, of: properties.revenue, where: event == "Order Completed" }
      largest: { aggregate: max, of: double(properties.revenue), where: event == "Order Completed" }
      average: { aggregate: avg, of: double(properties.revenue), where: event == "Order Completed" }
      first_store: { aggregate: first, of: string(properties.store), where: event == "Order Completed" }
      last_store: { aggregate: last, of: string(properties.store), where: event == "Order Completed" }
      favourite_store: { aggregate: most_frequent, of: string(properties.store), where: event == "Order Completed" }
      stores: { aggregate: distinct_count, of: string(properties.store), where: event == "Order Completed" }
      first_order_at: { aggregate: min, of: timestamp, where: event == "Order Completed" }
      orders_7d: { aggregate: count, where: event == "Order Completed", window: 7d }
      revenue_7d: { aggregate: sum, of: double(properties.revenue), where: event == "Order Completed", window: 7d }
      gmail_pages:
        aggregate: count
        where: type == "page" && ends_with(identifiers.email, "@gmail.com")

    """

  static func order(
    _ id: String, at t: Timestamp, revenue: Value, store: String? = nil, email: String? = nil
  ) -> Event {
    var props: [String: Value] = ["revenue": revenue]
    if let store { props["store"] = .string(store) }
    var ids = [Identifier("user_id", "u-\(id)")]
    if let email { ids.append(Identifier("email", email)) }
    return Event(
      id: id, source: "web", type: "track", name: "Order Completed", timestamp: t, receivedAt: t, identifiers: ids,
      properties: props)
  }

  static func page(_ id: String, at t: Timestamp, email: String?) -> Event {
    Event(
      id: id, source: "web", type: "page", name: "Home", timestamp: t, receivedAt: t,
      identifiers: email.map { [Identifier("email", $0)] } ?? [])
  }

  /// A random value of the kind an aggregate usually sees, from a small pool so values repeat; sometimes null.
  static func value(for a: Aggregate, _ rng: inout SplitMix64) -> Value {
    if rng.chance(0.05) { return .null }
    switch a {
    case .sum, .avg, .min, .max, .count:
      switch rng.int(0..<3) {
      case 0: return .int(Int64(rng.int(-5..<6)))
      case 1: return .double(Double(rng.int(-40..<41)) / 4)
      default: return .int(Int64(rng.int(0..<3)))
      }
    case .first, .last, .most_frequent, .distinct_count:
      if rng.chance(0.2) { return rng.chance(0.5) ? .int(2) : .double(2) }
      return .string(rng.pick(["red", "green", "blue", "amber", "teal"]))
    }
  }

  /// Random samples over ~20 days with colliding timestamps (so tie-breaks matter) and unique event ids.
  static func samples(for a: Aggregate, _ rng: inout SplitMix64, count: Int) -> [AggregateSample] {
    (0..<count).map { n in
      AggregateSample(
        value: value(for: a, &rng), timestamp: hour(Double(rng.int(0..<480))), eventID: "ev-\(rng.int(0..<1000))-\(n)")
    }
  }
}

@Suite("Computed traits")
struct ComputedTraitsTests {
  typealias F = ComputedFixture

  @Test("every aggregate gives its value over the events its filter takes")
  func everyAggregate() throws {
    let config = try #require(F.compile(F.allAggregates))
    var table = ComputedTraitTable(config: config)
    let p = ProfileID(1)
    let events = [
      F.order("o1", at: F.day(0), revenue: .double(120), store: "s1", email: "a@gmail.com"),
      F.order("o2", at: F.day(3), revenue: .double(80.5), store: "s2"),
      F.order("o3", at: F.day(5), revenue: .int(200), store: "s2"),
      F.order("o4", at: F.day(20), revenue: .double(10), store: "s3"),
      F.order("o0", at: F.day(-2), revenue: .double(40), store: "s3"),  // late: the earliest order arrives last
      F.page("p1", at: F.day(1), email: "a@gmail.com"),
      F.page("p2", at: F.day(2), email: "b@example.com"),
      F.page("p3", at: F.day(2), email: nil),
    ]
    for e in events { table.add(e, to: p, now: e.timestamp) }
    let v = table.values(of: p, at: F.day(21))
    #expect(v["n_orders"] == .int(5))
    #expect(v["revenue"] == .double(450.5))
    #expect(v["smallest"] == .double(10))
    #expect(v["largest"] == .double(200))
    #expect(v["average"] == .double(450.5 / 5))
    #expect(v["first_store"] == .string("s3"))
    #expect(v["last_store"] == .string("s3"))
    #expect(v["favourite_store"] == .string("s3"))  // s2 and s3 twice each; s3 was seen last (day 20)
    #expect(v["stores"] == .int(3))
    #expect(v["first_order_at"] == .timestamp(F.day(-2)))
    #expect(v["orders_7d"] == .int(1))  // only o4 (day 20) is within 7 days of day 21
    #expect(v["revenue_7d"] == .double(10))
    #expect(v["gmail_pages"] == .int(1))

    // A profile without events reads the empty values.
    let empty = table.values(of: ProfileID(99), at: F.day(21))
    #expect(empty["n_orders"] == .int(0))
    #expect(empty["stores"] == .int(0))
    #expect(empty["revenue"] == .double(0))
    #expect(empty["average"] == .null)
    #expect(empty["first_store"] == .null)
    #expect(empty["favourite_store"] == .null)
  }

  @Test("the event environment fills the slots in the event scope's order")
  func eventEnvMatchesScope() {
    let ids = ["user_id", "email", "phone"]
    let scope = Scopes.event(identifiers: ids)
    let e = Event(
      id: "m1", source: "pos", type: "track", name: "Order Completed", timestamp: F.day(1), receivedAt: F.day(2),
      identifiers: [Identifier("email", "a@x.com"), Identifier("email", "b@x.com"), Identifier("user_id", "u1")],
      traits: ["plan": .string("pro")], properties: ["revenue": .int(5)], context: ["ip": .string("1.2.3.4")])
    let env = EventEnv.make(e, identifiers: ids, now: F.day(3))
    #expect(env.slots.count == scope.slotCount)
    #expect(env.now == F.day(3))
    let checks: [(String, Value)] = [
      (#"event == "Order Completed""#, .bool(true)),
      (#"type == "track""#, .bool(true)),
      (#"source == "pos""#, .bool(true)),
      (#"message_id == "m1""#, .bool(true)),
      ("timestamp", .timestamp(F.day(1))),
      ("properties.revenue", .int(5)),
      ("traits.plan", .string("pro")),
      ("context.ip", .string("1.2.3.4")),
      ("identifiers.email", .string("a@x.com")),  // the first (strongest) of the kind
      ("identifiers.user_id", .string("u1")),
      ("identifiers.phone", .null),
      ("now()", .timestamp(F.day(3))),
    ]
    for (text, expected) in checks {
      let (compiled, errors) = ExprCompiler.compile(text, in: scope)
      #expect(errors.isEmpty, "\(text): \(errors)")
      #expect(compiled?.evaluate(env) == expected, "\(text)")
    }
  }

  @Test("bucket widths: daily from 2 days, hourly from 2 hours, then minutes and seconds")
  func bucketWidths() {
    func width(_ s: String) -> String? {
      TimeSpan(parsing: s).map { ComputedTraitState.bucketWidth(for: $0).description }
    }
    #expect(width("90d") == "1d")
    #expect(width("2d") == "1d")
    #expect(width("47h") == "1h")
    #expect(width("24h") == "1h")
    #expect(width("2h") == "1h")
    #expect(width("90m") == "1m")
    #expect(width("30s") == "1s")
    #expect(width("1s") == "1ms")
    #expect(ComputedTraitState(aggregate: .count, window: nil).bucketWidth == nil)
  }

  @Test("a windowed count falls as time passes; expire reports the change once")
  func windowFalls() {
    var s = ComputedTraitState(aggregate: .count, window: TimeSpan(parsing: "90d"))
    s.add(AggregateSample(value: .null, timestamp: F.day(0.5), eventID: "a"))
    s.add(AggregateSample(value: .null, timestamp: F.day(30), eventID: "b"))
    #expect(s.value(at: F.day(30)) == .int(2))
    // The day-0 bucket ends at day 1 and counts while its end is inside the window: until day 91.
    #expect(s.value(at: F.day(90.9)) == .int(2))
    let changed1 = s.expire(now: F.day(90.9))
    #expect(!changed1)
    #expect(s.value(at: F.day(91)) == .int(1))
    let changed2 = s.expire(now: F.day(91))
    #expect(changed2)
    let changed3 = s.expire(now: F.day(91))
    #expect(!changed3)
    #expect(s.bucketStarts == [F.day(30)])
    let changed4 = s.expire(now: F.day(200))
    #expect(changed4)
    #expect(s.isEmpty)
    #expect(s.value(at: F.day(200)) == .int(0))
  }

  @Test("late events land in the bucket of their timestamp")
  func lateEvents() {
    var s = ComputedTraitState(aggregate: .sum, window: TimeSpan(parsing: "24h"))
    s.add(AggregateSample(value: .int(10), timestamp: F.hour(10.5), eventID: "a"))
    s.add(AggregateSample(value: .int(20), timestamp: F.hour(12.2), eventID: "b"))
    s.add(AggregateSample(value: .int(5), timestamp: F.hour(2.9), eventID: "late"))  // arrives last
    s.add(AggregateSample(value: .int(1), timestamp: F.hour(10.1), eventID: "late2"))  // joins the 10h bucket
    #expect(s.bucketStarts == [F.hour(2), F.hour(10), F.hour(12)])
    #expect(s.value(at: F.hour(13)) == .double(36))
    // The 2h bucket ends at 3h and leaves the 24h window at 27h; the late event ages out first.
    #expect(s.value(at: F.hour(27)) == .double(31))
    let changed5 = s.expire(now: F.hour(27))
    #expect(changed5)
    #expect(s.bucketStarts == [F.hour(10), F.hour(12)])
    #expect(s.value(at: F.hour(35)) == .double(20))
  }

  @Test("min and max of values that compare equal do not depend on arrival order")
  func extremesTieBreak() {
    for a in [Aggregate.min, .max] {
      var x = ComputedTraitState(aggregate: a, window: nil)
      var y = ComputedTraitState(aggregate: a, window: nil)
      let one = AggregateSample(value: .int(1), timestamp: F.day(0), eventID: "a")
      let oneD = AggregateSample(value: .double(1), timestamp: F.day(1), eventID: "b")
      x.add(one)
      x.add(oneD)
      y.add(oneD)
      y.add(one)
      #expect(x == y)
      #expect(x.value(at: F.day(2)) == .double(1))
    }
  }

  @Test("sum and avg skip values that are not numbers; other aggregates skip null")
  func skipsNonNumbers() {
    var sum = ComputedTraitState(aggregate: .sum, window: nil)
    let changed6 = sum.add(AggregateSample(value: .string("x"), timestamp: F.day(0), eventID: "a"))
    #expect(!changed6)
    let changed7 = sum.add(AggregateSample(value: .null, timestamp: F.day(0), eventID: "b"))
    #expect(!changed7)
    let changed8 = sum.add(AggregateSample(value: .int(3), timestamp: F.day(0), eventID: "c"))
    #expect(changed8)
    #expect(sum.value(at: F.day(0)) == .double(3))
    var count = ComputedTraitState(aggregate: .count, window: nil)
    let changed9 = count.add(AggregateSample(value: .null, timestamp: F.day(0), eventID: "a"))
    #expect(changed9)
    var first = ComputedTraitState(aggregate: .first, window: nil)
    let changed10 = first.add(AggregateSample(value: .null, timestamp: F.day(0), eventID: "a"))
    #expect(!changed10)
    var distinct = ComputedTraitState(aggregate: .distinct_count, window: nil)
    distinct.add(AggregateSample(value: .int(2), timestamp: F.day(0), eventID: "a"))
    distinct.add(AggregateSample(value: .double(2), timestamp: F.day(0), eventID: "b"))
    #expect(distinct.value(at: F.day(0)) == .int(1))
  }

  @Test(
    "merging two profiles' states equals adding all their events to one", arguments: Aggregate.allCases)
  func mergeEqualsSingle(_ aggregate: Aggregate) {
    var rng = SplitMix64(seed: 0x5E6_0000 + UInt64(aggregate.rawValue.count))
    for window in [nil, TimeSpan(parsing: "7d"), TimeSpan(parsing: "36h")] {
      for round in 0..<60 {
        let samples = F.samples(for: aggregate, &rng, count: rng.int(0..<40))
        var single = ComputedTraitState(aggregate: aggregate, window: window)
        var a = ComputedTraitState(aggregate: aggregate, window: window)
        var b = ComputedTraitState(aggregate: aggregate, window: window)
        for s in samples {
          single.add(s)
          if rng.chance(0.5) { a.add(s) } else { b.add(s) }
        }
        let ab = a.merging(b)
        let ba = b.merging(a)
        #expect(ab == single, "\(aggregate) \(window?.description ?? "all time") round \(round)")
        #expect(ba == single, "\(aggregate) \(window?.description ?? "all time") round \(round)")
        // Arrival order does not matter either.
        var shuffled = ComputedTraitState(aggregate: aggregate, window: window)
        for s in samples.shuffled(using: &rng) { shuffled.add(s) }
        #expect(shuffled == single)
        for d in [0.0, 5, 10, 19, 25] {
          #expect(ab.value(at: F.day(d)) == single.value(at: F.day(d)))
        }
        // Expiring before or after the merge gives the same state.
        let now = F.day(Double(rng.int(0..<25)))
        var early = a
        var lateB = b
        early.expire(now: now)
        lateB.expire(now: now)
        var merged = ab
        merged.expire(now: now)
        #expect(early.merging(lateB) == merged)
      }
    }
  }

  @Test("the table merges profiles and expires windows, reporting the profiles whose values changed")
  func tableMergeAndExpire() throws {
    let config = try #require(F.compile(F.allAggregates))
    var table = ComputedTraitTable(config: config)
    var single = ComputedTraitTable(config: config)
    let (a, b) = (ProfileID(1), ProfileID(2))
    let ea = [
      F.order("a1", at: F.day(0), revenue: .double(10), store: "s1"),
      F.order("a2", at: F.day(4), revenue: .double(30), store: "s2"),
    ]
    let eb = [
      F.order("b1", at: F.day(2), revenue: .double(20), store: "s2"),
      F.order("b2", at: F.day(9), revenue: .double(5), store: "s1"),
    ]
    for e in ea { table.add(e, to: a, now: e.timestamp) }
    for e in eb { table.add(e, to: b, now: e.timestamp) }
    for e in ea + eb { single.add(e, to: a, now: e.timestamp) }
    table.merge(absorbed: b, into: a)
    #expect(table.states[b] == nil)
    #expect(table.states[a] == single.states[a])
    let v = table.values(of: a, at: F.day(10))
    #expect(v["n_orders"] == .int(4))
    #expect(v["stores"] == .int(2))
    #expect(v["first_store"] == .string("s1"))
    #expect(v["last_store"] == .string("s1"))
    #expect(v["orders_7d"] == .int(2))  // days 4 and 9 (the day-2 bucket ends at day 3, outside 7 days of 10)

    let first = table.expire(now: F.day(10))
    let again = table.expire(now: F.day(10))
    #expect(first == [a])
    #expect(again.isEmpty)
    #expect(table.values(of: a, at: F.day(10))["orders_7d"] == .int(2))
    let later = table.expire(now: F.day(30))
    #expect(later == [a])
    #expect(table.values(of: a, at: F.day(30))["orders_7d"] == .int(0))
    #expect(table.values(of: a, at: F.day(30))["n_orders"] == .int(4))
  }

  @Test("a sample already outside its window when added is not kept and changes nothing")
  func expiredOnArrival() throws {
    let config = try #require(F.compile(F.allAggregates))
    var table = ComputedTraitTable(config: config)
    let p = ProfileID(1)
    let added = table.add(F.order("o1", at: F.day(0), revenue: .int(5)), to: p, now: F.day(30))
    #expect(!added.contains("orders_7d") && added.contains("n_orders"))
    #expect(table.state(of: p, "orders_7d")?.isEmpty == true, "the day-0 bucket left the 7-day window long ago")
    #expect(table.values(of: p, at: F.day(30))["orders_7d"] == .int(0))
    #expect(table.values(of: p, at: F.day(30))["n_orders"] == .int(1))
    // Nothing is left for the tick to drop, so it reports no change.
    #expect(table.expire(now: F.day(30)).isEmpty)

    // A profile whose only samples arrive outside their windows keeps no states at all.
    let windowed = try #require(
      F.compile("computed:\n  orders_7d: { aggregate: count, where: event == \"Order Completed\", window: 7d }\n"))
    var only = ComputedTraitTable(config: windowed)
    #expect(only.add(F.order("o2", at: F.day(0), revenue: .int(5)), to: p, now: F.day(30)).isEmpty)
    #expect(only.states[p] == nil)
  }

  @Test("states round-trip through their stored form; a changed declaration is refused")
  func encodedRoundTrip() throws {
    let config = try #require(F.compile(F.allAggregates))
    var rng = SplitMix64(seed: 0xC0FFEE)
    for decl in config.computed {
      for _ in 0..<20 {
        var state = ComputedTraitState(for: decl)
        for s in F.samples(for: decl.aggregate, &rng, count: rng.int(0..<30)) { state.add(s) }
        let back = ComputedTraitState(encoded: state.encoded, for: decl)
        #expect(back == state, "\(decl.name)")
        // The text the store keeps is the encoded value, written without building it.
        for digest in [nil, "0123abcd"] {
          let text = state.storedText(digest: digest)
          #expect(try StoredValue.decode(text) == state.encoded(digest: digest), "\(decl.name): \(text)")
        }
      }
    }
    let count = try #require(config.computed.first { $0.name == "n_orders" })
    let windowed = try #require(config.computed.first { $0.name == "orders_7d" })
    var s = ComputedTraitState(for: windowed)
    s.add(AggregateSample(value: .null, timestamp: F.day(0), eventID: "a"))
    #expect(ComputedTraitState(encoded: s.encoded, for: count) == nil)
    #expect(ComputedTraitState(encoded: .string("junk"), for: count) == nil)

    var table = ComputedTraitTable(config: config)
    let p = ProfileID(7)
    for (n, d) in [0.0, 1, 3, 8].enumerated() {
      table.add(F.order("o\(n)", at: F.day(d), revenue: .int(Int64(n)), store: "s\(n % 2)"), to: p, now: F.day(d))
    }
    var restored = ComputedTraitTable(config: config)
    let stored = table.encodedStates(of: p)
    #expect(stored["gmail_pages"] == nil)  // no contribution, nothing stored
    let failed = restored.restore(p, encoded: stored.merging(["n_orders": .string("junk")]) { $1 })
    #expect(failed == ["n_orders"])
    #expect(restored.values(of: p, at: F.day(9))["revenue"] == table.values(of: p, at: F.day(9))["revenue"])
    let clean = restored.restore(p, encoded: stored)
    #expect(clean.isEmpty)
    #expect(restored.states[p] == table.states[p])
  }

  /// What a tick did before the expiry calendar: every profile's windowed states are expired at `now`.
  static func scanAll(_ table: ComputedTraitTable, now: Timestamp) -> (
    changed: [ProfileID: IndexBits], states: [ProfileID: [ComputedTraitState]]
  ) {
    var changed: [ProfileID: IndexBits] = [:]
    var out = table.states
    for (p, before) in table.states {
      var s = before
      var any = false
      var dropped = IndexBits(count: s.count)
      for k in table.windowed {
        let e = s[k].expiring(now: now)
        if e.dropped { dropped.set(k, true) }
        if e.changed { any = true }
      }
      out[p] = s
      if any {
        changed[p] = dropped
        if s.allSatisfy(\.isEmpty) { out[p] = nil }
      }
    }
    return (changed, out)
  }

  @Test("a tick finds the profiles whose windows dropped a bucket from its calendar, as a scan of all would")
  func tickCalendarMatchesAScan() throws {
    let config = try #require(
      F.compile(
        """
        computed:
          orders_7d: { aggregate: count, where: event == "Order Completed", window: 7d }
          revenue_24h: { aggregate: sum, of: double(properties.revenue), where: event == "Order Completed", window: 24h }
          top_90m: { aggregate: max, of: double(properties.revenue), where: event == "Order Completed", window: 90m }
          orders: { aggregate: count, where: event == "Order Completed" }

        """))
    for keepsExpired in [false, true] {
      var table = ComputedTraitTable(config: config)
      table.keepsExpiredSamples = keepsExpired
      var rng = SplitMix64(seed: keepsExpired ? 11 : 7)
      var now = F.day(0)
      var ticks = 0
      var expired = 0
      for step in 0..<4000 {
        let p = ProfileID(Int64(rng.int(1..<60)))
        switch rng.int(0..<40) {
        case 0:
          table.merge(absorbed: p, into: ProfileID(Int64(rng.int(1..<60))))
        case 1:
          table.remove(p)
        case 2:
          // Restored from the stored form, as a restart does.
          let stored = table.encodedStates(of: p)
          table.remove(p)
          #expect(table.restore(p, encoded: stored).isEmpty)
        case 3...6:
          // Mostly forward; now and then a tick at an earlier clock, which finds nothing new.
          let at = rng.int(0..<8) == 0 ? now - TimeSpan(seconds: Double(rng.int(0..<86_400))) : now
          let expected = Self.scanAll(table, now: at)
          let got = table.expiring(now: at)
          #expect(got == expected.changed, "step \(step)")
          #expect(table.states == expected.states, "step \(step)")
          ticks += 1
          expired += got.count
        default:
          now = now + TimeSpan(seconds: Double(rng.int(0..<5400)))
          // Some events arrive late, a few of them already outside a window.
          let late = rng.int(0..<5) == 0 ? TimeSpan(seconds: Double(rng.int(0..<(10 * 86_400)))) : TimeSpan(seconds: 0)
          table.add(F.order("e\(step)", at: now - late, revenue: .int(Int64(rng.int(1..<100)))), to: p, now: now)
        }
      }
      #expect(ticks > 300 && expired > 300, "ticks \(ticks), expired \(expired)")
    }
  }

  @Test("the stored form is short, names the declaration, and the older form still reads back")
  func storedForm() throws {
    let config = try #require(F.compile(F.allAggregates))
    var table = ComputedTraitTable(config: config)
    let p = ProfileID(3)
    for (n, d) in [0.0, 1, 1.5, 8].enumerated() {
      table.add(F.order("o\(n)", at: F.day(d), revenue: .int(Int64(n)), store: "s1"), to: p, now: F.day(d))
    }
    let states = try #require(table.states[p])
    func index(_ name: String) throws -> Int { try #require(table.names.firstIndex(of: name)) }
    let count = try index("n_orders")
    let windowed = try index("orders_7d")
    let day0 = F.day(0).microseconds / 86_400_000_000
    // All time: the summary alone; windowed: the buckets by day number. The digest stands for the aggregate
    // and window, which the older form spelt out, with the all-time bucket's start as a 64-bit minimum.
    #expect(states[count].storedText(digest: table.digests[count]) == #"{"v":"\#(table.digests[count])","s":4}"#)
    #expect(
      states[windowed].storedText(digest: "x")
        == #"{"v":"x","t":[[\#(day0),1],[\#(day0 + 1),2],[\#(day0 + 8),1]]}"#)

    // Every trait's stored text restores the same states.
    var stored: [String: Value] = [:]
    for i in states.indices where !states[i].isEmpty {
      stored[table.names[i]] = try StoredValue.decode(states[i].storedText(digest: table.digests[i]))
    }
    var restored = ComputedTraitTable(config: config)
    #expect(restored.restore(p, encoded: stored).isEmpty)
    #expect(restored.states[p] == states)

    // A state stored for another declaration (here revenue's digest on the order count) is refused.
    let other = try index("revenue")
    let foreign = try StoredValue.decode(states[count].storedText(digest: table.digests[other]))
    #expect(restored.restore(p, encoded: stored.merging(["n_orders": foreign]) { $1 }) == ["n_orders"])

    // The older form: full starts, aggregate and width, and a digest of `where` and `of` only.
    let decl = config.computed[count]
    let legacy = ComputedTraitTable.legacyDigest(decl)
    let start = F.day(0).microseconds
    let old: [String: Value] = [
      "n_orders": try StoredValue.decode(
        #"{"a":"count","w":0,"b":[[{"$i":"-9223372036854775808"},4]],"d":"\#(legacy)"}"#),
      "orders_7d": try StoredValue.decode(
        #"{"a":"count","w":86400000000,"b":[[\#(start),1],[\#(start + 86_400_000_000),2],"#
          + #"[\#(start + 8 * 86_400_000_000),1]]}"#),
    ]
    var fromOld = ComputedTraitTable(config: config)
    #expect(fromOld.restore(p, encoded: old).isEmpty)
    #expect(fromOld.states[p]?[count] == states[count])
    #expect(fromOld.states[p]?[windowed] == states[windowed])
    let changed = try StoredValue.decode(#"{"a":"count","w":0,"b":[],"d":"0"}"#)
    #expect(fromOld.restore(p, encoded: ["n_orders": changed]) == ["n_orders"])
  }
}
