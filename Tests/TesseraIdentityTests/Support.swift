import TesseraIdentity
import TesseraModel
import Testing

/// Identifier kinds shaped like a typical pipeline: one user id per person, a few emails, phones, anonymous
/// device ids that expire, and a kind that is only stored.
enum Kinds {
  static let day: Int64 = 86_400_000_000
  static let anonymousExpiry = TimeSpan(microseconds: 730 * day)

  static let rules: [String: KindRule] = [
    "user_id": KindRule(priority: 1, maxPerProfile: 1, rule: "by_user_id"),
    "email": KindRule(priority: 2, maxPerProfile: 3, blocked: ["test@example.com"], rule: "by_email"),
    "phone": KindRule(priority: 3, blocked: ["+10000000000"], rule: "by_phone"),
    "anonymous_id": KindRule(priority: 4, expiresAfter: anonymousExpiry, rule: "by_device"),
    "ip": KindRule(priority: 5),
  ]

  /// The same kinds with no limits and no expiry: every shared linking identifier joins profiles.
  static let unlimited: [String: KindRule] = [
    "user_id": KindRule(priority: 1, rule: "by_user_id"),
    "email": KindRule(priority: 2, blocked: ["test@example.com"], rule: "by_email"),
    "phone": KindRule(priority: 3, rule: "by_phone"),
    "anonymous_id": KindRule(priority: 4, rule: "by_device"),
    "ip": KindRule(priority: 5),
  ]
}

func uid(_ v: String) -> Identifier { Identifier("user_id", v) }
func email(_ v: String) -> Identifier { Identifier("email", v) }
func phone(_ v: String) -> Identifier { Identifier("phone", v) }
func anon(_ v: String) -> Identifier { Identifier("anonymous_id", v) }
func ip(_ v: String) -> Identifier { Identifier("ip", v) }

/// 2024-01-01T00:00:00Z.
let epoch = Timestamp(microseconds: 1_704_067_200_000_000)

/// `epoch` plus a number of days.
func day(_ d: Double) -> Timestamp { epoch + TimeSpan(seconds: d * 86_400) }

/// A graph that names its events `e1`, `e2`, … and keeps every resolution.
struct Harness {
  var graph: IdentityGraph
  var log: [Resolution] = []
  var count = 0

  init(rules: [String: KindRule] = Kinds.rules) { graph = IdentityGraph(rules: rules) }

  /// Resolves one event, by default one second after the previous one on day 0.
  @discardableResult
  mutating func see(_ ids: Identifier..., at time: Timestamp? = nil) -> Resolution {
    see(ids, at: time)
  }

  @discardableResult
  mutating func see(_ ids: [Identifier], at time: Timestamp? = nil) -> Resolution {
    count += 1
    let r = graph.resolve(ids, eventID: "e\(count)", at: time ?? epoch + TimeSpan(seconds: Double(count)))
    log.append(r)
    return r
  }

  var merges: [MergeRecord] { log.flatMap(\.merges) }
  var conflicts: [ConflictRecord] { log.flatMap(\.conflicts) }
}

extension IdentityGraph {
  /// Live profiles as sets of the linking identifiers they own.
  var linkPartition: Set<Set<Identifier>> {
    var groups: [ProfileID: Set<Identifier>] = [:]
    for (i, m) in owner { groups[canonical(m.profile), default: []].insert(i) }
    return Set(groups.values)
  }

  /// Every live profile's identifiers (linking or not), as a sorted multiset.
  var memberSets: [[Identifier]] {
    members.values.map { Array(Set($0)).sorted() }.sorted { $0.lexicographicallyPrecedes($1) }
  }

  func isBlocked(_ i: Identifier) -> Bool { rules[i.kind]?.blocked.contains(i.value) ?? false }

  /// Values of a kind a profile holds that count against `max_per_profile` (blocked values never do).
  func values(of kind: String, in p: ProfileID) -> Set<String> {
    Set(identifiers(of: p).filter { $0.kind == kind && !isBlocked($0) }.map(\.value))
  }
}

/// The invariants every graph must keep whatever it was fed.
func checkInvariants(_ g: IdentityGraph, sourceLocation: SourceLocation = #_sourceLocation) {
  for (p, ids) in g.members {
    #expect(g.aliases[p] == nil, "live profile \(p) is also an alias", sourceLocation: sourceLocation)
    for (kind, rule) in g.rules {
      guard let max = rule.maxPerProfile else { continue }
      let n = g.values(of: kind, in: p).count
      #expect(n <= max, "\(p) holds \(n) \(kind) values (max \(max))", sourceLocation: sourceLocation)
    }
    for i in ids where g.rules[i.kind]?.rule != nil && !g.isBlocked(i) {
      #expect(g.profile(of: i) == p, "\(i) listed on \(p) but owned by another", sourceLocation: sourceLocation)
    }
    #expect(Set(ids).count == ids.count, "\(p) lists an identifier twice", sourceLocation: sourceLocation)
  }
  for (i, m) in g.owner {
    let p = g.canonical(m.profile)
    #expect(g.members[p]?.contains(i) == true, "\(i) owned by \(p) but not listed", sourceLocation: sourceLocation)
    #expect(!g.isBlocked(i), "blocked \(i) links", sourceLocation: sourceLocation)
    #expect(g.rules[i.kind]?.rule != nil, "non-linking \(i) links", sourceLocation: sourceLocation)
  }
  for (absorbed, survivor) in g.aliases {
    #expect(survivor < absorbed, "\(absorbed) survived over older \(survivor)", sourceLocation: sourceLocation)
    #expect(g.members[absorbed] == nil, sourceLocation: sourceLocation)
    #expect(
      g.members[g.canonical(absorbed)] != nil, "\(absorbed) resolves to a dead profile", sourceLocation: sourceLocation)
  }
}
