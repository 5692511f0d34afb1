import TesseraIdentity
import TesseraModel
import Testing

/// One generated event: its identifiers and time.
struct GeneratedEvent {
  var ids: [Identifier]
  var time: Timestamp
}

/// Random events drawn from a small pool of identifiers, so they collide often.
func generateEvents(_ rng: inout SplitMix64, count: Int, days: Double = 0) -> [GeneratedEvent] {
  (0..<count).map { n in
    let ids = (0..<rng.int(1..<4)).map { _ -> Identifier in
      switch rng.int(0..<10) {
      case 0, 1: return uid("u\(rng.int(0..<8))")
      case 2, 3: return rng.chance(0.1) ? email("test@example.com") : email("e\(rng.int(0..<10))@x.com")
      case 4, 5: return phone("+1555000\(rng.int(0..<6))")
      case 6, 7, 8: return anon("a\(rng.int(0..<12))")
      default: return ip("10.0.0.\(rng.int(0..<4))")
      }
    }
    // Mostly in order over `days`, with some late events.
    var t = days * Double(n) / Double(max(count, 1))
    if rng.chance(0.15) { t -= Double(rng.int(0..<200)) }
    return GeneratedEvent(ids: ids, time: day(t) + TimeSpan(seconds: Double(n)))
  }
}

/// The partition of linking identifiers a union of every event's linking identifiers gives.
func referencePartition(_ events: [GeneratedEvent], rules: [String: KindRule]) -> Set<Set<Identifier>> {
  var parent: [Identifier: Identifier] = [:]
  func find(_ i: Identifier) -> Identifier {
    var r = i
    while let p = parent[r], p != r { r = p }
    return r
  }
  for e in events {
    let linking = e.ids.filter { rules[$0.kind]?.rule != nil && !(rules[$0.kind]?.blocked.contains($0.value) ?? false) }
    for i in linking where parent[i] == nil { parent[i] = i }
    guard let first = linking.first else { continue }
    for i in linking.dropFirst() {
      let (a, b) = (find(first), find(i))
      if a != b { parent[b] = a }
    }
  }
  var groups: [Identifier: Set<Identifier>] = [:]
  for i in parent.keys { groups[find(i), default: []].insert(i) }
  return Set(groups.values)
}

func run(_ events: [GeneratedEvent], rules: [String: KindRule]) -> (IdentityGraph, [Resolution]) {
  var g = IdentityGraph(rules: rules)
  var log: [Resolution] = []
  for (n, e) in events.enumerated() { log.append(g.resolve(e.ids, eventID: "e\(n)", at: e.time)) }
  return (g, log)
}

/// A graph rebuilt the way a store reloads one: profiles with their identifiers and last-seen times, then aliases.
func rebuild(_ g: IdentityGraph) -> IdentityGraph {
  var r = IdentityGraph(rules: g.rules)
  for (p, ids) in g.members.sorted(by: { $0.key > $1.key }) {
    r.restore(profile: p, identifiers: ids.map { ($0, g.owner[$0]?.lastSeen ?? epoch) })
  }
  for (absorbed, survivor) in g.aliases { r.restoreAlias(absorbed, into: survivor) }
  return r
}

func sameState(_ a: IdentityGraph, _ b: IdentityGraph, sourceLocation: SourceLocation = #_sourceLocation) {
  #expect(a.members == b.members, sourceLocation: sourceLocation)
  #expect(a.owner == b.owner, sourceLocation: sourceLocation)
  #expect(a.aliases == b.aliases, sourceLocation: sourceLocation)
  #expect(a.nextID == b.nextID, sourceLocation: sourceLocation)
}

func sameResolution(_ a: Resolution, _ b: Resolution, sourceLocation: SourceLocation = #_sourceLocation) {
  #expect(a == b, sourceLocation: sourceLocation)
  #expect(a.expired.map(\.0) == b.expired.map(\.0), sourceLocation: sourceLocation)
  #expect(a.expired.map(\.1) == b.expired.map(\.1), sourceLocation: sourceLocation)
  #expect(a.touched == b.touched, sourceLocation: sourceLocation)
}

@Suite("Identity graph: properties over random events")
struct PropertyTests {
  static let seeds: [UInt64] = [1, 2, 3, 42, 2024, 0xDEAD_BEEF]

  @Test("without limits, any order of the same events gives the same partition into profiles", arguments: seeds)
  func orderIndependence(seed: UInt64) {
    var rng = SplitMix64(seed: seed)
    let events = generateEvents(&rng, count: 300)
    let expected = referencePartition(events, rules: Kinds.unlimited)
    let (base, log) = run(events, rules: Kinds.unlimited)
    #expect(base.linkPartition == expected)
    #expect(log.allSatisfy { $0.conflicts.isEmpty && $0.expired.isEmpty })
    checkInvariants(base)
    for _ in 0..<4 {
      let (g, _) = run(events.shuffled(using: &rng), rules: Kinds.unlimited)
      #expect(g.linkPartition == expected)
      #expect(g.memberSets == base.memberSets)
      #expect(g.profileCount == base.profileCount)
      checkInvariants(g)
    }
  }

  @Test("with limits and expiry, random events keep every invariant", arguments: seeds)
  func invariantsUnderLimits(seed: UInt64) {
    var rng = SplitMix64(seed: seed)
    let events = generateEvents(&rng, count: 400, days: 3000)
    var g = IdentityGraph(rules: Kinds.rules)
    for (n, e) in events.enumerated() {
      let r = g.resolve(e.ids, eventID: "e\(n)", at: e.time)
      #expect(g.members[r.profile] != nil)
      if let last = r.merges.last { #expect(last.survivor == r.profile) }
      for c in r.conflicts { #expect(c.kept == r.profile && c.eventID == "e\(n)" && c.at == e.time) }
      for m in r.merges { #expect(m.survivor < m.absorbed && m.eventID == "e\(n)" && m.at == e.time) }
      for i in r.attached { #expect(g.identifiers(of: r.profile).contains(i)) }
      if n % 50 == 49 { checkInvariants(g) }
    }
    checkInvariants(g)
  }

  @Test("the order of identifiers inside each event never changes any resolution", arguments: seeds)
  func identifierOrderInsideEvents(seed: UInt64) {
    var rng = SplitMix64(seed: seed)
    let events = generateEvents(&rng, count: 300, days: 3000)
    let shuffled = events.map { GeneratedEvent(ids: $0.ids.shuffled(using: &rng), time: $0.time) }
    let (a, la) = run(events, rules: Kinds.rules)
    let (b, lb) = run(shuffled, rules: Kinds.rules)
    for (x, y) in zip(la, lb) { sameResolution(x, y) }
    sameState(a, b)
  }

  @Test("a graph restored from members and aliases resolves new events exactly like the original", arguments: seeds)
  func restoreMatchesOriginal(seed: UInt64) {
    var rng = SplitMix64(seed: seed)
    let all = generateEvents(&rng, count: 450, days: 4000)
    var original = IdentityGraph(rules: Kinds.rules)
    for (n, e) in all.prefix(300).enumerated() { _ = original.resolve(e.ids, eventID: "e\(n)", at: e.time) }
    #expect(!original.aliases.isEmpty)
    var restored = rebuild(original)
    sameState(original, restored)
    for (n, e) in all.dropFirst(300).enumerated() {
      let a = original.resolve(e.ids, eventID: "f\(n)", at: e.time)
      let b = restored.resolve(e.ids, eventID: "f\(n)", at: e.time)
      sameResolution(a, b)
    }
    sameState(original, restored)
    for p in original.aliases.keys { #expect(restored.canonical(p) == original.canonical(p)) }
  }

  @Test("restoring an alias chain keeps old ids resolvable and new ids above every restored one")
  func restoreAliases() {
    var g = IdentityGraph(rules: Kinds.rules)
    g.restore(
      profile: ProfileID(3), identifiers: [(uid("u1"), day(0)), (anon("d1"), day(100)), (ip("1.1.1.1"), day(0))])
    g.restoreAlias(ProfileID(5), into: ProfileID(4))
    g.restoreAlias(ProfileID(4), into: ProfileID(3))
    #expect(g.canonical(ProfileID(5)) == ProfileID(3))
    #expect(g.identifiers(of: ProfileID(5)) == [uid("u1"), anon("d1"), ip("1.1.1.1")])
    #expect(g.profile(of: uid("u1")) == ProfileID(3))
    #expect(g.profile(of: ip("1.1.1.1")) == nil)
    #expect(g.nextID == 6)
    #expect(g.resolve([email("new@x.com")], eventID: "x", at: day(1)).profile == ProfileID(6))
    // The restored last-seen time drives expiry.
    #expect(g.resolve([anon("d1")], eventID: "y", at: day(800)).profile == ProfileID(3))
    let r = g.resolve([anon("d1")], eventID: "z", at: day(1600))
    #expect(r.expired.map(\.1) == [ProfileID(3)])
    #expect(r.profile == ProfileID(7))
  }
}
