import TesseraCompiler
import TesseraModel
import TesseraRuntime
import Testing

/// Helpers for the unification tests, kept in one namespace so other files of the target can't collide.
enum UnificationFixture {
  /// 2024-05-01T00:00:00Z.
  static let base = Timestamp(microseconds: 1_714_521_600_000_000)

  /// `base` plus some seconds.
  static func at(_ seconds: Int) -> Timestamp { base + TimeSpan(seconds: Double(seconds)) }

  static func obs(_ value: Value, _ source: String = "web", _ event: String, _ seconds: Int) -> Observation {
    Observation(value: value, source: source, eventID: event, timestamp: at(seconds))
  }

  /// Adds observations one by one, in the order given (arrival order).
  static func fold(_ policy: TraitPolicy, _ observations: [Observation]) -> TraitState? {
    observations.reduce(TraitState?.none) { policy.add($1, to: $0) }
  }

  static func policy(_ kind: PolicyKind) -> TraitPolicy {
    TraitPolicy(kind: kind, sources: kind == .source_priority ? ["crm", "support"] : [])
  }

  /// A value of the kind a policy usually sees, drawn from a small pool so values repeat.
  static func value(for kind: PolicyKind, _ rng: inout SplitMix64) -> Value {
    let words = ["red", "green", "blue", "amber", "teal"]
    switch kind {
    case .max, .min:
      switch rng.int(0..<3) {
      case 0: return .int(Int64(rng.int(-5..<6)))
      case 1: return .double(Double(rng.int(-10..<11)) / 2)
      default: return .int(Int64(rng.int(0..<3)))
      }
    case .sum:
      return rng.int(0..<2) == 0 ? .int(Int64(rng.int(-100..<100))) : .double(Double(rng.int(-40..<40)) / 4)
    case .union:
      if rng.int(0..<3) == 0 { return .string(rng.pick(words)) }
      return .list((0..<rng.int(0..<4)).map { _ in .string(rng.pick(words)) })
    default:
      return .string(rng.pick(words))
    }
  }

  /// Random observations with colliding timestamps (so tie-breaks matter) and unique event ids.
  static func observations(for kind: PolicyKind, _ rng: inout SplitMix64, count: Int) -> [Observation] {
    (0..<count).map { n in
      Observation(
        value: value(for: kind, &rng), source: rng.pick(["crm", "web", "app", "support"]),
        eventID: "ev-\(rng.int(0..<1000))-\(n)", timestamp: at(rng.int(0..<20)))
    }
  }

  /// The full summary as a value, to compare everything a state holds.
  static func same(_ a: TraitState?, _ b: TraitState?, sourceLocation: SourceLocation = #_sourceLocation) {
    #expect(a?.value == b?.value, sourceLocation: sourceLocation)
    #expect(a?.winner == b?.winner, sourceLocation: sourceLocation)
    #expect(a?.latest == b?.latest, sourceLocation: sourceLocation)
    #expect(a?.observations == b?.observations, sourceLocation: sourceLocation)
    #expect(a?.encoded == b?.encoded, sourceLocation: sourceLocation)
  }
}

private typealias F = UnificationFixture

@Suite("Unification: each precedence policy")
struct PolicyTests {
  @Test("most_recent picks the observation with the latest event time, with its provenance")
  func mostRecent() throws {
    let p = TraitPolicy(kind: .most_recent)
    let s = try #require(
      F.fold(
        p,
        [
          F.obs(.string("Paris"), "crm", "e1", 10), F.obs(.string("Lyon"), "web", "e2", 30),
          F.obs(.string("Nice"), "app", "e3", 20),
        ]))
    #expect(s.value == .string("Lyon"))
    #expect(s.winner.source == "web" && s.winner.eventID == "e2" && s.winner.timestamp == F.at(30))
    #expect(s.latest.eventID == "e2")
    #expect(s.observations == 3)
  }

  @Test("most_recent uses the event timestamp, not arrival: a late event with an older time does not overwrite")
  func mostRecentLateEvent() throws {
    let p = TraitPolicy(kind: .most_recent)
    let s = try #require(F.fold(p, [F.obs(.string("new"), "web", "e2", 100), F.obs(.string("old"), "web", "e1", 50)]))
    #expect(s.value == .string("new"))
    #expect(s.winner.eventID == "e2")
    #expect(s.latest.eventID == "e2")
  }

  @Test("most_recent breaks equal timestamps by event id, whatever the arrival order")
  func mostRecentTie() throws {
    let p = TraitPolicy(kind: .most_recent)
    let a = F.obs(.string("from-a"), "web", "evt-a", 10)
    let b = F.obs(.string("from-b"), "crm", "evt-b", 10)
    let ab = try #require(F.fold(p, [a, b]))
    let ba = try #require(F.fold(p, [b, a]))
    #expect(ab.value == .string("from-b") && ba.value == .string("from-b"))
    #expect(ab.winner == ba.winner)
    #expect(ab.latest == ba.latest)
  }

  @Test("first_seen keeps the earliest observation; an older event arriving late takes over")
  func firstSeen() throws {
    let p = TraitPolicy(kind: .first_seen)
    var s = try #require(F.fold(p, [F.obs(.string("b"), "web", "e2", 20), F.obs(.string("c"), "web", "e3", 30)]))
    #expect(s.value == .string("b"))
    s = p.add(F.obs(.string("a"), "crm", "e1", 5), to: s)
    #expect(s.value == .string("a") && s.winner.source == "crm" && s.winner.timestamp == F.at(5))
    #expect(s.latest.eventID == "e3")
    // Equal timestamps: the smaller event id was first.
    let t1 = try #require(F.fold(p, [F.obs(.string("y"), "web", "b", 7), F.obs(.string("x"), "web", "a", 7)]))
    let t2 = try #require(F.fold(p, [F.obs(.string("x"), "web", "a", 7), F.obs(.string("y"), "web", "b", 7)]))
    #expect(t1.value == .string("x") && t2.value == .string("x"))
  }

  @Test("source_priority prefers the most trusted source over a newer value from a less trusted one")
  func sourcePriority() throws {
    let p = TraitPolicy(kind: .source_priority, sources: ["crm", "support"])
    let s = try #require(
      F.fold(
        p,
        [
          F.obs(.string("w"), "web", "e1", 300), F.obs(.string("s"), "support", "e2", 200),
          F.obs(.string("c"), "crm", "e3", 100),
        ]))
    #expect(s.value == .string("c"))
    #expect(s.winner.source == "crm" && s.winner.eventID == "e3" && s.winner.timestamp == F.at(100))
    #expect(s.latest.eventID == "e1")
    // Without the crm value, support outranks the unlisted web source even though web is newer.
    let t = try #require(F.fold(p, [F.obs(.string("w"), "web", "e1", 300), F.obs(.string("s"), "support", "e2", 200)]))
    #expect(t.value == .string("s"))
  }

  @Test("source_priority keeps the most recent value of each source, by event time")
  func sourcePriorityPerSource() throws {
    let p = TraitPolicy(kind: .source_priority, sources: ["crm", "support"])
    let s = try #require(
      F.fold(
        p,
        [
          F.obs(.string("c1"), "crm", "e1", 100), F.obs(.string("c2"), "crm", "e2", 150),
          F.obs(.string("late"), "crm", "e3", 120),
          F.obs(.string("w"), "web", "e4", 500),
        ]))
    #expect(s.value == .string("c2"))
    #expect(s.winner.eventID == "e2")
  }

  @Test("source_priority ranks unlisted sources last, and among them the most recent value wins")
  func sourcePriorityUnlisted() throws {
    let p = TraitPolicy(kind: .source_priority, sources: ["crm"])
    let s = try #require(
      F.fold(p, [F.obs(.string("from-web"), "web", "e1", 10), F.obs(.string("from-app"), "app", "e2", 20)]))
    #expect(s.value == .string("from-app") && s.winner.source == "app")
    let later = p.add(F.obs(.string("from-crm"), "crm", "e3", 1), to: s)
    #expect(later.value == .string("from-crm"))
    // With no list at all every source is unlisted: the most recent value wins.
    let none = TraitPolicy(kind: .source_priority)
    let n = try #require(F.fold(none, [F.obs(.string("b"), "crm", "e2", 20), F.obs(.string("a"), "web", "e1", 30)]))
    #expect(n.value == .string("a"))
  }

  @Test("most_frequent picks the value seen most often, with the provenance of its latest observation")
  func mostFrequent() throws {
    let p = TraitPolicy(kind: .most_frequent)
    let s = try #require(
      F.fold(
        p,
        [
          F.obs(.string("fr"), "web", "e1", 1), F.obs(.string("de"), "web", "e2", 2),
          F.obs(.string("fr"), "crm", "e3", 3),
          F.obs(.string("de"), "web", "e4", 4), F.obs(.string("fr"), "app", "e5", 0),
          F.obs(.string("it"), "web", "e6", 9),
        ]))
    #expect(s.value == .string("fr"))
    #expect(s.winner.eventID == "e3" && s.winner.source == "crm")
    #expect(s.observations == 6)
    #expect(s.latest.eventID == "e6")
  }

  @Test("most_frequent breaks a tie in favour of the value seen most recently")
  func mostFrequentTie() throws {
    let p = TraitPolicy(kind: .most_frequent)
    let obs = [
      F.obs(.string("a"), "web", "e1", 1), F.obs(.string("b"), "web", "e2", 2), F.obs(.string("a"), "web", "e3", 3),
      F.obs(.string("b"), "web", "e4", 4),
    ]
    let s = try #require(F.fold(p, obs))
    #expect(s.value == .string("b") && s.winner.eventID == "e4")
    let r = try #require(F.fold(p, obs.reversed()))
    #expect(r.value == .string("b") && r.winner == s.winner)
    // One more "a", even from an old event, breaks the tie.
    #expect(p.add(F.obs(.string("a"), "web", "e0", 0), to: s).value == .string("a"))
  }

  @Test("max and min compare numbers across ints and doubles")
  func maxMinNumbers() throws {
    let values: [Value] = [.int(3), .double(10.5), .int(-2), .int(10)]
    let obs = values.enumerated().map { F.obs($1, "web", "e\($0)", $0) }
    let hi = try #require(F.fold(TraitPolicy(kind: .max), obs))
    let lo = try #require(F.fold(TraitPolicy(kind: .min), obs))
    #expect(hi.value == .double(10.5) && hi.winner.eventID == "e1")
    #expect(lo.value == .int(-2) && lo.winner.eventID == "e2")
  }

  @Test("max and min order strings and timestamps")
  func maxMinStringsAndTimes() throws {
    let words = ["pear", "apple", "banana"].enumerated().map { F.obs(.string($1), "web", "e\($0)", $0) }
    #expect(F.fold(TraitPolicy(kind: .max), words)?.value == .string("pear"))
    #expect(F.fold(TraitPolicy(kind: .min), words)?.value == .string("apple"))
    let times = [F.at(500), F.at(-100), F.at(90)].enumerated().map { F.obs(.timestamp($1), "web", "t\($0)", $0) }
    #expect(F.fold(TraitPolicy(kind: .max), times)?.value == .timestamp(F.at(500)))
    #expect(F.fold(TraitPolicy(kind: .min), times)?.value == .timestamp(F.at(-100)))
  }

  @Test("max and min credit an equal value to the observation that reached it first")
  func maxMinTies() throws {
    for kind in [PolicyKind.max, .min] {
      let s = try #require(
        F.fold(TraitPolicy(kind: kind), [F.obs(.int(7), "web", "late", 50), F.obs(.int(7), "crm", "early", 10)]))
      #expect(s.value == .int(7))
      #expect(s.winner.eventID == "early" && s.winner.source == "crm")
    }
  }

  @Test("sum keeps ints as ints")
  func sumInts() throws {
    let s = try #require(
      F.fold(
        TraitPolicy(kind: .sum),
        [F.obs(.int(1), "web", "e1", 1), F.obs(.int(2), "web", "e2", 3), F.obs(.int(39), "crm", "e3", 2)]))
    #expect(s.value == .int(42))
    // The visible value carries the provenance of the latest observation.
    #expect(s.winner.eventID == "e2" && s.winner.timestamp == F.at(3))
    #expect(s.observations == 3)
  }

  @Test("sum promotes to double when a double is added or ints overflow")
  func sumPromotes() throws {
    let mixed = try #require(
      F.fold(TraitPolicy(kind: .sum), [F.obs(.int(1), "web", "e1", 1), F.obs(.double(2.5), "web", "e2", 2)]))
    #expect(mixed.value == .double(3.5))
    let big = try #require(
      F.fold(TraitPolicy(kind: .sum), [F.obs(.int(Int64.max), "web", "e1", 1), F.obs(.int(1), "web", "e2", 2)]))
    #expect(big.value == .double(Double(Int64.max) + 1))
  }

  @Test("sum counts a non-numeric value as zero")
  func sumNonNumeric() throws {
    let s = try #require(
      F.fold(
        TraitPolicy(kind: .sum),
        [F.obs(.string("n/a"), "web", "e1", 1), F.obs(.int(5), "web", "e2", 2), F.obs(.bool(true), "web", "e3", 3)]))
    #expect(s.value == .int(5))
    #expect(s.observations == 3)
  }

  @Test("union flattens lists, drops nulls and keeps each value once")
  func union() throws {
    let s = try #require(
      F.fold(
        TraitPolicy(kind: .union),
        [
          F.obs(.list([.string("b"), .string("a"), .string("b")]), "web", "e1", 1),
          F.obs(.list([.string("c"), .null, .string("a")]), "web", "e2", 2), F.obs(.string("d"), "crm", "e3", 3),
          F.obs(.string("a"), "crm", "e4", 0),
        ]))
    guard case .list(let l) = s.value else {
      Issue.record("union is not a list: \(s.value)")
      return
    }
    #expect(l == [.string("a"), .string("b"), .string("c"), .string("d")])
    #expect(s.winner.eventID == "e3")
    #expect(s.observations == 4)
  }

  @Test("union lists its values in an order that does not depend on arrival")
  func unionOrder() throws {
    let obs = [
      F.obs(.list([.string("b"), .string("a")]), "web", "e1", 1), F.obs(.list([.string("c")]), "web", "e2", 2),
      F.obs(.list([.string("a"), .string("d")]), "web", "e3", 3),
    ]
    let forward = try #require(F.fold(TraitPolicy(kind: .union), obs))
    let backward = try #require(F.fold(TraitPolicy(kind: .union), obs.reversed()))
    #expect(forward.value == backward.value)
    #expect(forward.value == .list([.string("a"), .string("b"), .string("c"), .string("d")]))
    // Values of different kinds: by kind, then by value (numbers numerically).
    let mixed = try #require(
      F.fold(
        TraitPolicy(kind: .union),
        [F.obs(.list([.string("b"), .int(10), .double(2.5)]), "web", "e1", 1), F.obs(.bool(true), "web", "e2", 2)]))
    #expect(mixed.value == .list([.bool(true), .double(2.5), .int(10), .string("b")]))
  }
}

@Suite("Unification: merging summaries")
struct MergeTests {
  @Test(
    "merging the summaries of profiles equals adding every observation to one summary",
    arguments: PolicyKind.allCases, [1, 2, 3, 5, 8, 13, 21, 42] as [UInt64])
  func mergeEqualsSingle(kind: PolicyKind, seed: UInt64) {
    var rng = SplitMix64(seed: seed &* 0x1000 &+ UInt64(PolicyKind.allCases.firstIndex(of: kind) ?? 0))
    let p = F.policy(kind)
    for _ in 0..<25 {
      let all = F.observations(for: kind, &rng, count: rng.int(1..<40))
      let single = F.fold(p, all)
      // Split across 2–4 profiles, keeping each profile's arrival order, then merge them in a random order.
      let parts = rng.int(2..<5)
      var groups = [[Observation]](repeating: [], count: parts)
      for o in all { groups[rng.int(0..<parts)].append(o) }
      var summaries = groups.compactMap { F.fold(p, $0) }.shuffled(using: &rng)
      guard var merged = summaries.popLast() else { continue }
      while let next = summaries.popLast() {
        merged = rng.int(0..<2) == 0 ? p.merge(merged, next) : p.merge(next, merged)
      }
      F.same(merged, single)
    }
  }

  @Test("merging is the same in either direction", arguments: PolicyKind.allCases)
  func mergeCommutes(kind: PolicyKind) throws {
    var rng = SplitMix64(seed: 99)
    let p = F.policy(kind)
    for _ in 0..<30 {
      let a = try #require(F.fold(p, F.observations(for: kind, &rng, count: rng.int(1..<15))))
      let b = try #require(F.fold(p, F.observations(for: kind, &rng, count: rng.int(1..<15))))
      F.same(p.merge(a, b), p.merge(b, a))
    }
  }

  @Test("merging into nothing gives the other summary unchanged", arguments: PolicyKind.allCases)
  func mergeIntoNil(kind: PolicyKind) throws {
    var rng = SplitMix64(seed: 5)
    let p = F.policy(kind)
    let b = try #require(F.fold(p, F.observations(for: kind, &rng, count: 6)))
    F.same(p.merge(nil, b), b)
  }
}

@Suite("Unification: persistence and explanations")
struct PersistenceTests {
  @Test(
    "encoded → init(encoded:) keeps the value, winner, latest and count, and later merges behave the same",
    arguments: PolicyKind.allCases)
  func roundTrip(kind: PolicyKind) throws {
    var rng = SplitMix64(seed: 2024)
    let p = F.policy(kind)
    for _ in 0..<20 {
      let first = F.observations(for: kind, &rng, count: rng.int(1..<20))
      let more = F.observations(for: kind, &rng, count: rng.int(1..<10))
      let s = try #require(F.fold(p, first))
      let back = try #require(TraitState(encoded: s.encoded))
      F.same(back, s)
      // Adding observations after a reload.
      let grownOriginal = more.reduce(s) { p.add($1, to: $0) }
      let grownRestored = more.reduce(back) { p.add($1, to: $0) }
      F.same(grownRestored, grownOriginal)
      // Merging a reloaded summary with another, both ways round.
      let other = try #require(F.fold(p, more))
      let otherBack = try #require(TraitState(encoded: other.encoded))
      F.same(p.merge(back, otherBack), p.merge(s, other))
      F.same(p.merge(otherBack, back), p.merge(s, other))
    }
  }

  @Test("a summary survives a round trip through JSON text, as a store keeps it", arguments: PolicyKind.allCases)
  func jsonRoundTrip(kind: PolicyKind) throws {
    var rng = SplitMix64(seed: 77)
    let p = F.policy(kind)
    let s = try #require(F.fold(p, F.observations(for: kind, &rng, count: 12)))
    let parsed = try JSON.parse(JSON.encode(s.encoded))
    let back = try #require(TraitState(encoded: parsed))
    F.same(back, s)
  }

  @Test(
    "the winner is written once: no `l` when it is the latest, `\"w\"` in by_source and counts; full states read the same",
    arguments: [PolicyKind.source_priority, .most_frequent, .most_recent])
  func compact(kind: PolicyKind) throws {
    let p = F.policy(kind)
    let o = F.obs(.string("x"), "web", "e1", 100)
    let s = try #require(F.fold(p, [o]))
    guard case .map(let m) = s.encoded else { throw CancellationError() }
    #expect(m["l"] == nil)
    let text = JSON.encode(s.encoded)
    #expect(text.components(separatedBy: "\"e1\"").count == 2, "the observation once: \(text)")
    // The same state written in full (as stores written before hold it) reads back the same.
    var full = m
    let ow = try #require(m["w"])
    full["l"] = ow
    if case .list(let l)? = m["by_source"] { full["by_source"] = .list(l.map { $0 == .string("w") ? ow : $0 }) }
    if case .list(let l)? = m["counts"] {
      full["counts"] = .list(
        l.map {
          guard case .list(let pair) = $0, pair.count == 2 else { return $0 }
          return .list([pair[0], pair[1] == .string("w") ? ow : pair[1]])
        })
    }
    let old = try #require(TraitState(encoded: .map(full)))
    F.same(old, s)
    // A later observation that does not win is the latest, written in full.
    let later = F.obs(.string("y"), "web", "e2", 200)
    let grown = p.add(later, to: s)
    if grown.winner != grown.latest {
      guard case .map(let g) = grown.encoded else { throw CancellationError() }
      #expect(g["l"] != nil)
    }
    F.same(try #require(TraitState(encoded: grown.encoded)), grown)
  }

  @Test("a summary stored without its winner reads back with the winner its row holds", arguments: PolicyKind.allCases)
  func withoutWinner(kind: PolicyKind) throws {
    var rng = SplitMix64(seed: 91)
    let p = F.policy(kind)
    let s = try #require(F.fold(p, F.observations(for: kind, &rng, count: 9)))
    guard case .map(let m) = s.encodedWithoutWinner else { throw CancellationError() }
    #expect(m["w"] == nil)
    #expect(TraitState(encoded: s.encodedWithoutWinner) == nil, "no winner anywhere")
    let back = try #require(TraitState(encoded: s.encodedWithoutWinner, winner: s.winner))
    F.same(back, s)
    // A summary that has its winner ignores the row's.
    let other = F.obs(.string("elsewhere"), "crm", "e-other", 5)
    F.same(try #require(TraitState(encoded: s.encoded, winner: other)), s)
  }

  @Test("init(encoded:) refuses values that are not a summary")
  func malformed() {
    #expect(TraitState(encoded: .null) == nil)
    #expect(TraitState(encoded: .map([:])) == nil)
    #expect(TraitState(encoded: .string("w")) == nil)
    let o: Value = .map(["v": .string("x"), "s": .string("web"), "e": .string("e1"), "t": .int(1)])
    #expect(TraitState(encoded: .map(["w": o, "l": o])) == nil)
    #expect(TraitState(encoded: .map(["w": o, "l": o, "n": .int(1)])) != nil)
    #expect(TraitState(encoded: .map(["w": .map(["v": .string("x")]), "l": o, "n": .int(1)])) == nil)
  }

  @Test("explain says why the visible value won, for every policy")
  func explain() throws {
    let one = [F.obs(.int(4), "crm", "e1", 100)]
    let three = [
      F.obs(.int(4), "crm", "e1", 100), F.obs(.int(9), "web", "e2", 200), F.obs(.int(4), "support", "e3", 50),
    ]
    func why(_ p: TraitPolicy, _ obs: [Observation]) throws -> String {
      p.explain(try #require(F.fold(p, obs)))
    }
    #expect(try why(TraitPolicy(kind: .most_recent), three) == "most recent (2024-05-01T00:03:20Z)")
    #expect(try why(TraitPolicy(kind: .first_seen), three) == "first seen (2024-05-01T00:00:50Z)")
    #expect(try why(TraitPolicy(kind: .max), three) == "largest of 3 values")
    #expect(try why(TraitPolicy(kind: .max), one) == "largest of 1 value")
    #expect(try why(TraitPolicy(kind: .min), three) == "smallest of 3 values")
    #expect(try why(TraitPolicy(kind: .min), one) == "smallest of 1 value")
    #expect(
      try why(TraitPolicy(kind: .source_priority, sources: ["support", "crm"]), three)
        == "source priority (support > crm): support is the most trusted source with a value")
    #expect(
      try why(TraitPolicy(kind: .source_priority), three)
        == "source priority: web is the most trusted source with a value")
    #expect(try why(TraitPolicy(kind: .most_frequent), three) == "most frequent: 2 of 3 observations")
    #expect(try why(TraitPolicy(kind: .sum), three) == "sum of 3 values")
    #expect(try why(TraitPolicy(kind: .sum), one) == "sum of 1 value")
    let lists = [
      F.obs(.list([.string("a"), .string("b")]), "web", "e1", 1),
      F.obs(.list([.string("b"), .string("c")]), "web", "e2", 2),
    ]
    #expect(try why(TraitPolicy(kind: .union), lists) == "union of 3 distinct values")
    #expect(try why(TraitPolicy(kind: .union), [F.obs(.string("a"), "web", "e1", 1)]) == "union of 1 distinct value")
  }
}
