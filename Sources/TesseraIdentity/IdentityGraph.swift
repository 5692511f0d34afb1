import TesseraModel

/// How one identifier kind behaves in the graph.
public struct KindRule: Sendable, Hashable {
  /// Lower is stronger: decides which profile an event joins when a merge is refused.
  public var priority: Int
  /// At most this many distinct values of the kind on one profile (nil: no limit).
  public var maxPerProfile: Int?
  /// Normalized values that never link (test emails, placeholder phones).
  public var blocked: Set<String>
  /// An identifier not seen for this long no longer links (anonymous ids).
  public var expiresAfter: TimeSpan?
  /// The deterministic rule that links on this kind; nil when the kind is only stored.
  public var rule: String?

  public init(
    priority: Int, maxPerProfile: Int? = nil, blocked: Set<String> = [], expiresAfter: TimeSpan? = nil,
    rule: String? = nil
  ) {
    self.priority = priority
    self.maxPerProfile = maxPerProfile
    self.blocked = blocked
    self.expiresAfter = expiresAfter
    self.rule = rule
  }
}

/// A recorded merge: `absorbed` now resolves to `survivor`.
public struct MergeRecord: Sendable, Hashable {
  public var survivor: ProfileID
  public var absorbed: ProfileID
  public var rule: String
  /// The identifiers the two profiles shared through the event.
  public var evidence: [Identifier]
  public var eventID: String
  public var at: Timestamp
  /// 1 for deterministic merges; the match probability for probabilistic ones.
  public var score: Double

  public init(
    survivor: ProfileID, absorbed: ProfileID, rule: String, evidence: [Identifier], eventID: String, at: Timestamp,
    score: Double = 1
  ) {
    self.survivor = survivor
    self.absorbed = absorbed
    self.rule = rule
    self.evidence = evidence
    self.eventID = eventID
    self.at = at
    self.score = score
  }
}

/// A merge or an attachment refused because it would break a kind's limit.
public struct ConflictRecord: Sendable, Hashable {
  /// The profile the event joined.
  public var kept: ProfileID
  /// The profile it would have merged with, if the conflict was a refused merge.
  public var other: ProfileID?
  public var kind: String
  public var reason: String
  public var identifiers: [Identifier]
  public var eventID: String
  public var at: Timestamp
}

/// What resolving one event did.
public struct Resolution: Sendable, Hashable {
  public var profile: ProfileID
  public var created: Bool
  public var merges: [MergeRecord] = []
  public var conflicts: [ConflictRecord] = []
  /// Identifiers newly attached to the profile by this event.
  public var attached: [Identifier] = []
  /// Identifiers released because they expired, with the profile that held them.
  public var expired: [(Identifier, ProfileID)] = []

  public static func == (a: Resolution, b: Resolution) -> Bool {
    a.profile == b.profile && a.created == b.created && a.merges == b.merges && a.conflicts == b.conflicts
      && a.attached == b.attached
  }
  public func hash(into h: inout Hasher) {
    h.combine(profile)
    h.combine(merges)
  }
}

/// The deterministic identity graph: identifier → profile, with merges under per-kind limits.
///
/// One writer owns it (the resolve stage); it is a plain struct with in-memory indexes, loaded from the
/// store at start and changed only through `resolve`.
public struct IdentityGraph: Sendable {
  public struct Member: Sendable, Hashable {
    public var profile: ProfileID
    public var lastSeen: Timestamp
  }

  public private(set) var rules: [String: KindRule]
  /// Linking identifiers and who holds them.
  public private(set) var owner: [Identifier: Member] = [:]
  /// Identifiers of each live profile, in the order they were attached.
  public private(set) var members: [ProfileID: [Identifier]] = [:]
  /// Absorbed profile → the profile it merged into (one step; `canonical` follows the chain).
  public private(set) var aliases: [ProfileID: ProfileID] = [:]
  public private(set) var nextID: Int64

  public init(rules: [String: KindRule], nextID: Int64 = 1) {
    self.rules = rules
    self.nextID = nextID
  }

  public var profileCount: Int { members.count }

  /// The live profile an id resolves to, following merges.
  public func canonical(_ id: ProfileID) -> ProfileID {
    var current = id
    var hops = 0
    while let next = aliases[current], hops < 1_000_000 {
      current = next
      hops += 1
    }
    return current
  }

  public func profile(of identifier: Identifier) -> ProfileID? {
    owner[identifier].map { canonical($0.profile) }
  }

  public func identifiers(of profile: ProfileID) -> [Identifier] { members[canonical(profile)] ?? [] }

  func rank(_ i: Identifier) -> Int { rules[i.kind]?.priority ?? Int.max }

  /// Restores state saved by a store: a profile, its identifiers and when each was last seen.
  public mutating func restore(profile: ProfileID, identifiers: [(Identifier, Timestamp)]) {
    var list = members[profile] ?? []
    for (i, seen) in identifiers {
      list.append(i)
      if isLinking(i) { owner[i] = Member(profile: profile, lastSeen: seen) }
    }
    members[profile] = list
    nextID = max(nextID, profile.raw + 1)
  }

  public mutating func restoreAlias(_ absorbed: ProfileID, into survivor: ProfileID) {
    aliases[absorbed] = survivor
    members[absorbed] = nil
    nextID = max(nextID, absorbed.raw + 1, survivor.raw + 1)
  }

  func isLinking(_ i: Identifier) -> Bool {
    guard let r = rules[i.kind], r.rule != nil else { return false }
    return !r.blocked.contains(i.value)
  }

  /// Resolves one event's identifiers to a profile, creating, attaching and merging as the rules allow.
  public mutating func resolve(_ identifiers: [Identifier], eventID: String, at time: Timestamp) -> Resolution {
    // Strongest first; ties by kind and value so the outcome never depends on mapping order.
    let ids = Array(Set(identifiers)).sorted { (rank($0), $0) < (rank($1), $1) }
    var expired: [(Identifier, ProfileID)] = []
    // Which live profiles do the event's linking identifiers reach, strongest identifier first?
    var reached: [(ProfileID, Identifier)] = []
    for i in ids where isLinking(i) {
      guard let m = owner[i] else { continue }
      if let ttl = rules[i.kind]?.expiresAfter, m.lastSeen + ttl < time {
        let p = canonical(m.profile)
        owner[i] = nil
        members[p]?.removeAll { $0 == i }
        expired.append((i, p))
        continue
      }
      let p = canonical(m.profile)
      if !reached.contains(where: { $0.0 == p }) { reached.append((p, i)) }
    }
    var result: Resolution
    if reached.isEmpty {
      let p = ProfileID(nextID)
      nextID += 1
      members[p] = []
      result = Resolution(profile: p, created: true)
    } else {
      result = Resolution(profile: reached[0].0, created: false)
      for (other, via) in reached.dropFirst() {
        let anchor = result.profile
        if let kind = limitBroken(merging: anchor, other) {
          result.conflicts.append(
            ConflictRecord(
              kept: anchor, other: other, kind: kind,
              reason: "merging would give the profile more than \(rules[kind]?.maxPerProfile ?? 0) \(kind) values",
              identifiers: [reached[0].1, via], eventID: eventID, at: time))
          continue
        }
        let survivor = min(anchor, other)
        let absorbed = max(anchor, other)
        merge(absorbed, into: survivor)
        let rule = rules[via.kind]?.rule ?? "deterministic"
        result.merges.append(
          MergeRecord(
            survivor: survivor, absorbed: absorbed, rule: rule, evidence: [reached[0].1, via], eventID: eventID,
            at: time))
        result.profile = survivor
      }
    }
    // Attach what the event carries and nobody holds, within the limits.
    let p = result.profile
    for i in ids {
      if let m = owner[i] {
        if canonical(m.profile) == p { owner[i] = Member(profile: m.profile, lastSeen: max(m.lastSeen, time)) }
        continue
      }
      let have = members[p] ?? []
      if have.contains(i) { continue }
      if let max = rules[i.kind]?.maxPerProfile, have.filter({ $0.kind == i.kind }).count >= max {
        result.conflicts.append(
          ConflictRecord(
            kept: p, other: nil, kind: i.kind,
            reason: "the profile already has \(max) \(i.kind) value\(max == 1 ? "" : "s")", identifiers: [i],
            eventID: eventID, at: time))
        continue
      }
      members[p, default: []].append(i)
      if isLinking(i) { owner[i] = Member(profile: p, lastSeen: time) }
      result.attached.append(i)
    }
    result.expired = expired
    return result
  }

  /// The kind whose limit a merge of `a` and `b` would exceed, if any.
  func limitBroken(merging a: ProfileID, _ b: ProfileID) -> String? {
    var counts: [String: Set<String>] = [:]
    for i in (members[a] ?? []) + (members[b] ?? []) { counts[i.kind, default: []].insert(i.value) }
    for (kind, values) in counts.sorted(by: { $0.key < $1.key }) {
      if let max = rules[kind]?.maxPerProfile, values.count > max { return kind }
    }
    return nil
  }

  mutating func merge(_ absorbed: ProfileID, into survivor: ProfileID) {
    let moved = members[absorbed] ?? []
    members[absorbed] = nil
    var list = members[survivor] ?? []
    for i in moved where !list.contains(i) {
      list.append(i)
      if let m = owner[i] { owner[i] = Member(profile: survivor, lastSeen: m.lastSeen) }
    }
    members[survivor] = list
    aliases[absorbed] = survivor
  }
}
