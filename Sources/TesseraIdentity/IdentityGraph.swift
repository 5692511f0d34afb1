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

  public init(
    kept: ProfileID, other: ProfileID?, kind: String, reason: String, identifiers: [Identifier], eventID: String,
    at: Timestamp
  ) {
    self.kept = kept
    self.other = other
    self.kind = kind
    self.reason = reason
    self.identifiers = identifiers
    self.eventID = eventID
    self.at = at
  }
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
  /// Expiring identifiers whose last-seen time this event moved forward (what a store must persist so that
  /// expiry survives a restart).
  public var touched: [Identifier] = []
  /// The graph's slot of each of `attached` (−1: not a linking identifier, it has none) and of `touched`: a
  /// caller keeping one row per identifier finds its row by slot, without hashing the identifier again.
  public var attachedSlots: [Int] = []
  public var touchedSlots: [Int] = []

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
  /// Linking identifiers and who holds them, as slots: `slot` finds an identifier's slot (the one hashed
  /// lookup), and the holder and last-seen time are read and written by slot, so an event's identifiers are
  /// hashed once each however often resolution reads or moves them. Freed slots (expired identifiers) are reused.
  var slot: [Identifier: Int] = [:]
  var slotProfile: [ProfileID] = []
  var slotSeen: [Timestamp] = []
  var freeSlots: [Int] = []

  /// Linking identifiers and who holds them (built on each call: for tests and tools, not the hot path).
  public var owner: [Identifier: Member] {
    slot.mapValues { Member(profile: slotProfile[$0], lastSeen: slotSeen[$0]) }
  }

  /// Gives a linking identifier to `profile`, seen at `seen`; its slot.
  @discardableResult
  mutating func own(_ i: Identifier, _ profile: ProfileID, seen: Timestamp) -> Int {
    if let k = slot[i] {
      slotProfile[k] = profile
      slotSeen[k] = seen
      return k
    } else if let k = freeSlots.popLast() {
      slot[i] = k
      slotProfile[k] = profile
      slotSeen[k] = seen
      return k
    } else {
      slot[i] = slotProfile.count
      slotProfile.append(profile)
      slotSeen.append(seen)
      return slotProfile.count - 1
    }
  }

  /// Gives a linking identifier that holds no slot to `profile`, seen at `seen`; its slot. (One hash of the
  /// identifier, where `own` looks it up first.)
  mutating func ownFresh(_ i: Identifier, _ profile: ProfileID, seen: Timestamp) -> Int {
    assert(slot[i] == nil, "\(i) already holds a slot")
    let k: Int
    if let free = freeSlots.popLast() {
      k = free
      slotProfile[k] = profile
      slotSeen[k] = seen
    } else {
      k = slotProfile.count
      slotProfile.append(profile)
      slotSeen.append(seen)
    }
    slot[i] = k
    return k
  }

  /// The linking identifiers whose slots `marked` flags, with the live profile holding each and when it was
  /// last seen, in slot order (slots freed since hold no identifier and give nothing).
  public func lastSeen(marked: [Bool]) -> [(Identifier, ProfileID, Timestamp, slot: Int)] {
    var out: [(Identifier, ProfileID, Timestamp, slot: Int)] = []
    for (i, k) in slot where k < marked.count && marked[k] {
      out.append((i, canonical(slotProfile[k]), slotSeen[k], k))
    }
    // In slot order (slots are handed out in resolution order: the same in every run of the same input),
    // sorted in place: the list holds every identifier seen again in a run.
    out.sort { $0.slot < $1.slot }
    return out
  }

  /// Releases a linking identifier.
  mutating func disown(_ i: Identifier) {
    if let k = slot.removeValue(forKey: i) { freeSlots.append(k) }
  }
  /// Identifiers of each live profile, in the order they were attached.
  var memberTable = ProfileTable<[Identifier]>()
  /// Absorbed profile → the profile it merged into (one step; `canonical` follows the chain).
  var aliasTable = ProfileTable<ProfileID>()
  /// Identifiers of each live profile, in the order they were attached (built on each call: for tests and
  /// tools, not the hot path).
  public var members: [ProfileID: [Identifier]] {
    Dictionary(uniqueKeysWithValues: memberTable.all)
  }
  /// Absorbed profile → the profile it merged into (built on each call, as `members`).
  public var aliases: [ProfileID: ProfileID] { Dictionary(uniqueKeysWithValues: aliasTable.all) }
  /// Whether any profile was merged into another.
  public var hasAliases: Bool { !aliasTable.isEmpty }
  /// The live profiles.
  public var liveProfiles: [ProfileID] { memberTable.all.map(\.0) }
  public private(set) var nextID: Int64
  /// Identifier pairs a person separated (`tessera unmerge`): two profiles reached through exactly these
  /// two identifiers are not merged again; other evidence still merges them.
  public var separations: Set<[Identifier]> = []

  func separated(_ a: Identifier?, _ b: Identifier) -> Bool {
    guard let a, !separations.isEmpty else { return false }
    return separations.contains(a < b ? [a, b] : [b, a])
  }

  /// The kinds that have a rule, and their rules by the same position: an event's identifiers find their
  /// rule by comparing kind names (a handful, short enough to be stored inline) rather than by hashing them.
  let kindNames: [String]
  let kindRules: [KindRule]

  public init(rules: [String: KindRule], nextID: Int64 = 1) {
    self.rules = rules
    self.nextID = nextID
    let sorted = rules.sorted { $0.key < $1.key }
    self.kindNames = sorted.map(\.key)
    self.kindRules = sorted.map(\.value)
  }

  /// The position of a kind's rule in `kindRules`, −1 when the kind has none.
  func kindIndex(_ kind: String) -> Int {
    for k in kindNames.indices where kindNames[k] == kind { return k }
    return -1
  }

  public var profileCount: Int { memberTable.count }

  /// The live profile an id resolves to, following merges.
  public func canonical(_ id: ProfileID) -> ProfileID {
    if aliasTable.isEmpty { return id }
    var current = id
    var hops = 0
    while let next = aliasTable[current], hops < 1_000_000 {
      current = next
      hops += 1
    }
    return current
  }

  public func profile(of identifier: Identifier) -> ProfileID? {
    slot[identifier].map { canonical(slotProfile[$0]) }
  }

  public func identifiers(of profile: ProfileID) -> [Identifier] { memberTable[canonical(profile)] ?? [] }

  /// Whether the live profile `profile` holds `identifier` now.
  public func holds(_ profile: ProfileID, _ identifier: Identifier) -> Bool {
    if let k = slot[identifier] { return canonical(slotProfile[k]) == profile }
    return memberTable[profile]?.contains(identifier) ?? false
  }

  /// Restores state saved by a store: a profile, its identifiers and when each was last seen.
  public mutating func restore(profile: ProfileID, identifiers: [(Identifier, Timestamp)]) {
    var list = memberTable[profile] ?? []
    for (i, seen) in identifiers {
      list.append(i)
      if isLinking(i) { own(i, profile, seen: seen) }
    }
    memberTable[profile] = list
    nextID = max(nextID, profile.raw + 1)
  }

  public mutating func restoreAlias(_ absorbed: ProfileID, into survivor: ProfileID) {
    aliasTable[absorbed] = survivor
    memberTable[absorbed] = nil
    nextID = max(nextID, absorbed.raw + 1, survivor.raw + 1)
  }

  func isLinking(_ i: Identifier) -> Bool {
    guard let r = rules[i.kind], r.rule != nil else { return false }
    return !r.blocked.contains(i.value)
  }

  /// Blocked values (placeholders) never link, so they never count against `max_per_profile` either.
  func isBlocked(_ i: Identifier) -> Bool { rules[i.kind]?.blocked.contains(i.value) ?? false }

  /// Resolves one event's identifiers to a profile, creating, attaching and merging as the rules allow.
  ///
  /// The event's identifiers that no profile holds yet form a provisional profile of their own. It and the
  /// profiles the event reaches are joined in order of the strongest identifier that brings each in; the
  /// first is the anchor. Each join that would give the result more values of a kind than `max_per_profile`
  /// allows is refused and recorded as a conflict, so the event stays with the profile of its strongest
  /// identifier and a shared identifier (a household phone, a family laptop) never glues people together.
  /// `joining`: a profile a probabilistic rule matched the event to; it is used only when no identifier of
  /// the event reaches a profile, and the event's identifiers attach to it within the limits.
  public mutating func resolve(
    _ identifiers: [Identifier], eventID: String, at time: Timestamp, joining: ProfileID? = nil
  ) -> Resolution {
    // Each identifier's rule is found once, by its position in `kindRules` (−1: none), and carried along as
    // that number: a rule copied with each identifier retained its strings and set every time.
    var ids: [(id: Identifier, k: Int)] = identifiers.map { ($0, kindIndex($0.kind)) }
    func priority(_ k: Int) -> Int { k >= 0 ? kindRules[k].priority : Int.max }
    // Strongest first; ties by kind and value so the outcome never depends on mapping order.
    ids.sort { a, b in
      let (ra, rb) = (priority(a.k), priority(b.k))
      return ra != rb ? ra < rb : a.id < b.id
    }
    if ids.count > 1 {  // drop repeats (adjacent after sorting) without hashing
      var w = 1
      for r in 1..<ids.count where ids[r].id != ids[w - 1].id {
        ids[w] = ids[r]
        w += 1
      }
      ids.removeLast(ids.count - w)
    }
    func blocked(_ i: Identifier, _ k: Int) -> Bool {
      k >= 0 && !kindRules[k].blocked.isEmpty && kindRules[k].blocked.contains(i.value)
    }
    var expired: [(Identifier, ProfileID)] = []
    var conflicts: [ConflictRecord] = []
    var reached: [(profile: ProfileID, via: Identifier, rank: Int)] = []
    var fresh: [(id: Identifier, k: Int)] = []
    // The slots of the identifiers a profile held (and still holds) when the event came, for the last-seen
    // times at the end.
    var held: [(id: Identifier, k: Int, slot: Int)] = []
    for (i, k) in ids {
      // A blocked value (a test email, a placeholder phone) is not an identifier of anybody: it neither links
      // nor is attached, so no lookup of it can answer with some customer.
      if blocked(i, k) { continue }
      guard k >= 0, kindRules[k].rule != nil, let s = slot[i] else {
        fresh.append((i, k))
        continue
      }
      let p = canonical(slotProfile[s])
      if let ttl = kindRules[k].expiresAfter, slotSeen[s] + ttl < time {
        disown(i)
        memberTable.modify(p) { $0?.removeAll { $0 == i } }
        expired.append((i, p))
        fresh.append((i, k))
        continue
      }
      held.append((i, k, s))
      if !reached.contains(where: { $0.profile == p }) { reached.append((p, i, kindRules[k].priority)) }
    }
    // The provisional profile: fresh identifiers within the limits (an event with two user ids keeps one).
    // (Blocked values never reach here: they were skipped above.)
    var provisional: [Identifier] = []
    var provisionalKinds: [Int] = []
    var dropped: [Identifier] = []
    var provisionalRank = Int.max
    for (i, k) in fresh {
      if k >= 0, let max = kindRules[k].maxPerProfile, provisional.count(where: { $0.kind == i.kind }) >= max {
        dropped.append(i)
      } else {
        provisional.append(i)
        provisionalKinds.append(k)
        if k >= 0, kindRules[k].rule != nil { provisionalRank = min(provisionalRank, kindRules[k].priority) }
      }
    }
    // Participants in join order: profiles by the rank of the identifier that reached them, the provisional
    // profile by its strongest linking identifier (an existing profile wins a tie).
    enum Part: Equatable {
      case profile(ProfileID, Identifier)
      case provisional
    }
    var parts: [(rank: Int, part: Part)] = reached.map { ($0.rank, .profile($0.profile, $0.via)) }
    if !provisional.isEmpty { parts.append((provisionalRank, .provisional)) }
    parts.sort { a, b in
      if a.rank != b.rank { return a.rank < b.rank }
      if case .provisional = b.part { return true }
      return false
    }
    var current: ProfileID?
    var currentMembers: [Identifier] = []
    var currentVia: Identifier?
    var provisionalJoined = false
    if let target = joining, reached.isEmpty {
      let p = canonical(target)
      if let theirs = memberTable[p] {
        current = p
        currentMembers = theirs
      }
    }
    var merges: [MergeRecord] = []
    for (_, part) in parts {
      switch part {
      case .provisional:
        if current == nil {
          currentMembers = provisional
          currentVia = provisional.first
          provisionalJoined = true
        } else if let kind = limitBroken(currentMembers, provisional), let anchor = current {
          conflicts.append(
            ConflictRecord(
              kept: anchor, other: nil, kind: kind, reason: reason(kind, attach: true), identifiers: provisional,
              eventID: eventID, at: time))
        } else {
          currentMembers += provisional
          provisionalJoined = true
        }
      case .profile(let p, let via):
        let theirs = memberTable[p] ?? []
        guard let anchor = current else {
          if separated(currentVia, via) {
            conflicts.append(
              ConflictRecord(
                kept: IdentityGraph.pending, other: p, kind: via.kind,
                reason: "a person separated these profiles (tessera unmerge)",
                identifiers: [currentVia, via].compactMap { $0 }, eventID: eventID, at: time))
            continue
          }
          if let kind = limitBroken(currentMembers, theirs) {
            // The provisional profile anchors and this profile would break a limit: they stay apart.
            conflicts.append(
              ConflictRecord(
                kept: IdentityGraph.pending, other: p, kind: kind, reason: reason(kind, attach: false),
                identifiers: [currentVia, via].compactMap { $0 }, eventID: eventID, at: time))
            continue
          }
          current = p
          currentMembers = theirs + currentMembers
          // Later merges are evidenced by the identifier that reached this profile, not by a new one.
          currentVia = via
          continue
        }
        if separated(currentVia, via) {
          conflicts.append(
            ConflictRecord(
              kept: anchor, other: p, kind: via.kind, reason: "a person separated these profiles (tessera unmerge)",
              identifiers: [currentVia, via].compactMap { $0 }, eventID: eventID, at: time))
          continue
        }
        if let kind = limitBroken(currentMembers, theirs) {
          conflicts.append(
            ConflictRecord(
              kept: anchor, other: p, kind: kind, reason: reason(kind, attach: false),
              identifiers: [currentVia, via].compactMap { $0 }, eventID: eventID, at: time))
          continue
        }
        let survivor = min(anchor, p)
        let absorbed = max(anchor, p)
        merge(absorbed, into: survivor)
        merges.append(
          MergeRecord(
            survivor: survivor, absorbed: absorbed, rule: rules[via.kind]?.rule ?? "deterministic",
            evidence: [currentVia, via].compactMap { $0 }, eventID: eventID, at: time))
        current = survivor
        // Still counts the provisional identifiers, which are attached only at the end.
        currentMembers += theirs
      }
    }
    var result: Resolution
    if let p = current {
      result = Resolution(profile: p, created: false)
    } else {
      let p = ProfileID(nextID)
      nextID += 1
      memberTable[p] = []
      result = Resolution(profile: p, created: true)
    }
    let p = result.profile
    // Conflicts name the profile the event joined: not the pending one, nor an anchor a later merge absorbed.
    for k in conflicts.indices { conflicts[k].kept = p }
    result.merges = merges
    if provisionalJoined {
      for (i, k) in zip(provisional, provisionalKinds) {
        let added = memberTable.modify(p) { list -> Bool in
          if list?.contains(i) == true { return false }
          if list == nil { list = [i] } else { list?.append(i) }
          return true
        }
        guard added else { continue }
        // A provisional identifier has no slot (it was never held, or it expired above and gave its slot up).
        let linking = k >= 0 && kindRules[k].rule != nil && !blocked(i, k)
        result.attachedSlots.append(linking ? ownFresh(i, p, seen: time) : -1)
        result.attached.append(i)
      }
    }
    for i in dropped {
      conflicts.append(
        ConflictRecord(
          kept: p, other: nil, kind: i.kind, reason: reason(i.kind, attach: true), identifiers: [i], eventID: eventID,
          at: time))
    }
    // Identifiers attached just now were seen now; those held before (their slots stay theirs: only expiry,
    // above, frees a slot) move forward when they are the event's profile's.
    for (i, k, s) in held {
      guard canonical(slotProfile[s]) == p, time > slotSeen[s] else { continue }
      slotSeen[s] = time
      if kindRules[k].expiresAfter != nil, !result.attached.contains(i) {
        result.touched.append(i)
        result.touchedSlots.append(s)
      }
    }
    result.conflicts = conflicts
    result.expired = expired
    return result
  }

  /// The kind whose limit attaching `identifiers` to `profile` would break, if any.
  public func limitBroken(attaching identifiers: [Identifier], to profile: ProfileID) -> String? {
    limitBroken(memberTable[canonical(profile)] ?? [], identifiers.filter { !isBlocked($0) })
  }

  /// Merges two live profiles outside an event (a reviewer confirmed a probabilistic link): the older id
  /// survives; refused with a conflict when the union would break a kind's limit.
  public mutating func mergeProfiles(
    _ a: ProfileID, _ b: ProfileID, rule: String, score: Double, eventID: String, at time: Timestamp
  ) -> (merge: MergeRecord?, conflict: ConflictRecord?) {
    let pa = canonical(a)
    let pb = canonical(b)
    guard pa != pb, let ma = memberTable[pa], let mb = memberTable[pb] else { return (nil, nil) }
    if let kind = limitBroken(ma, mb) {
      return (
        nil,
        ConflictRecord(
          kept: min(pa, pb), other: max(pa, pb), kind: kind, reason: reason(kind, attach: false), identifiers: [],
          eventID: eventID, at: time)
      )
    }
    let survivor = min(pa, pb)
    let absorbed = max(pa, pb)
    merge(absorbed, into: survivor)
    return (
      MergeRecord(
        survivor: survivor, absorbed: absorbed, rule: rule, evidence: [], eventID: eventID, at: time, score: score),
      nil
    )
  }

  /// Stands for "the profile this event ends in" until it is known.
  static let pending = ProfileID(0)

  func reason(_ kind: String, attach: Bool) -> String {
    let max = rules[kind]?.maxPerProfile ?? 0
    return (attach ? "attaching" : "merging")
      + " would give the profile more than \(max) \(kind) value\(max == 1 ? "" : "s")"
  }

  /// The kind whose limit the union of two identifier sets would exceed, if any.
  func limitBroken(_ a: [Identifier], _ b: [Identifier]) -> String? {
    // Profiles hold a handful of identifiers, so linear scans beat hashing here (this is on the hot path).
    // Each kind is counted once, with its rule looked up once; the distinct values are collected only when
    // there are more values than the limit at all (most unions are far below it).
    var broken: String?
    // The kinds checked, by their position in `kindRules` (a kind past the 64th is checked every time it
    // comes: the same answer, only slower).
    var checked: UInt64 = 0
    for i in b {
      if let broken, !(i.kind < broken) { continue }
      let k = kindIndex(i.kind)
      guard k >= 0, let max = kindRules[k].maxPerProfile else { continue }
      let bit: UInt64 = k < 64 ? 1 << UInt64(k) : 0
      if checked & bit != 0 { continue }
      let blocked = kindRules[k].blocked
      func counts(_ x: Identifier) -> Bool {
        x.kind == i.kind && (blocked.isEmpty || !blocked.contains(x.value))
      }
      guard counts(i) else { continue }  // a blocked value does not count, nor make its kind checked
      checked |= bit
      if a.count(where: counts) + b.count(where: counts) <= max { continue }
      var values: [String] = []
      for x in a where counts(x) && !values.contains(x.value) { values.append(x.value) }
      for x in b where counts(x) && !values.contains(x.value) { values.append(x.value) }
      if values.count > max { broken = i.kind }
    }
    return broken
  }

  mutating func merge(_ absorbed: ProfileID, into survivor: ProfileID) {
    let moved = memberTable[absorbed] ?? []
    memberTable[absorbed] = nil
    var added: [Identifier] = []
    memberTable.modify(survivor) { list in
      if list == nil { list = [] }
      for i in moved where list?.contains(i) == false {
        list?.append(i)
        added.append(i)
      }
    }
    for i in added { if let k = slot[i] { slotProfile[k] = survivor } }
    aliasTable[absorbed] = survivor
  }
}
