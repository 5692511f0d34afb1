import Foundation
import TesseraCompiler
import TesseraIdentity
import TesseraModel
import TesseraStore

/// The state and work of the identity stage, the pipeline's one ordered writer: it skips events already stored
/// or seen, drops events of deleted people, scores events against the probabilistic rules, and resolves each
/// event's identifiers with the `IdentityGraph` — creating, attaching and merging profiles — and nothing more.
///
/// What the rest of the pipeline must do about each event is written as `ProfileOp`s for the partition that
/// holds the event's profile (`ProfilePartition.of`): the event itself, the identifiers a profile holds
/// when segments or payloads read them, and every merge (within one partition, or a hand-over between two).
/// What the store must write about identity goes into the open transaction's `IdentityPart`. `cut()` ends the
/// transaction: it reconciles the identifier rows with the graph and tells every partition to settle.
public struct IdentityResolver: Sendable {
  public private(set) var graph: IdentityGraph
  /// Probabilistic rules: profiles indexed by blocking keys, events without a known identifier scored.
  public private(set) var matcher: StreamingMatcher
  /// The traits the probabilistic rules read, unified as the profile stage unifies them (only with such rules).
  var matchTraits: [ProfileID: TraitStates] = [:]
  let policies: PipelinePolicies
  /// Events resolved and not yet known to be stored, so a repeat is skipped before it reaches the store.
  var seen: Set<SeenEvent> = []
  /// Whether each transaction lists its events' keys (`IdentityPart.keys`: the server forgets them once
  /// committed; a run keeps every key it saw, and the list would only be dropped).
  public var keepsKeys = true
  /// Hashes of deleted people's identifiers (`Suppression.hash`): their events are dropped at the door.
  let suppressed: Set<String>
  /// The time segments are evaluated at and windows measured from. Nil: the newest event time seen so far.
  public var now: Timestamp?
  /// The store's epoch the state was read at; every transaction carries it (see `Store.epoch()`).
  public var epoch: Int64?
  /// The newest event timestamp resolved so far.
  public private(set) var highWater = Timestamp(microseconds: 0)
  /// How many profile partitions there are.
  public let partitions: Int
  /// Whether partitions need the identifiers of their profiles (segments or payloads read them).
  let sendsIdentifiers: Bool
  var handoffs: UInt64 = 0
  /// The open transaction.
  public internal(set) var part: IdentityPart
  /// Profiles whose device-signal sightings the open transaction changed (seen, merged): their stored
  /// sightings are written whole at the cut.
  /// (Appended per event, repeats and all — cheaper than a set insert per event; made unique at the cut.)
  var sightingsChanged: [ProfileID] = []
  /// Per partition, the ops not yet handed over, and how many events they hold.
  var ops: [[ProfileOp]]
  var opEvents: [Int]
  /// By the graph's slot: the open transaction's row of that identifier (`row(_:slot:of:seen:)`), valid when
  /// `cut` is the open transaction's.
  var rowOfSlot: [RowRef] = []
  /// The open transaction has two rows of one identifier for different profiles.
  var irregularRows = false
  /// A bulk run into a store that allows it (`PipelineStore.defersLastSeen`): an expiring identifier seen
  /// again is not written with every transaction that sees it, but once, at the end of the run
  /// (`flushSeen`), with the time the graph holds then.
  public var defersSeen = false
  /// By slot: identifiers whose last-seen time moved and is held back; whether the open transaction held one
  /// back.
  var seenHeld: [Bool] = []
  var seenHeldInTransaction = false

  mutating func holdSeen(_ k: Int) {
    seenHeldInTransaction = true
    if k >= seenHeld.count {
      seenHeld.append(contentsOf: repeatElement(false, count: max(k + 1, 2 * seenHeld.count) - seenHeld.count))
    }
    seenHeld[k] = true
  }

  /// Writes every held-back last-seen time into the open transaction, which clears the store's mark.
  public mutating func flushSeen() {
    guard defersSeen else { return }
    let held = graph.lastSeen(marked: seenHeld)
    seenHeld = []
    part.commit.identifiers.reserveCapacity(part.commit.identifiers.count + held.count)
    for (i, p, at, k) in held { row(i, slot: k, of: p, seen: at) }
    part.commit.seenFlushed = true
  }

  /// The expiring identifier kinds (what a transaction that held back last-seen moves names).
  var expiringKinds: [String] {
    graph.rules.filter { $0.value.expiresAfter != nil }.map(\.key).sorted()
  }
  struct RowRef: Sendable {
    /// The transaction's number, truncated: a stale reference that matches by chance is harmless, since a row
    /// is only taken when it is in range and holds the same identifier for the same live profile.
    var cut: UInt32
    var row: UInt32
  }

  public init(
    config: PipelineConfig, identity: IdentitySnapshot = IdentitySnapshot(),
    traits: [ProfileID: TraitStates] = [:], now: Timestamp? = nil, separations: [Separation] = [],
    suppressed: Set<String> = [], sightings: [SightingRecord] = [], partitions: Int = 1
  ) {
    self.suppressed = suppressed
    self.graph = identity.graph(rules: Resolver.kindRules(config))
    self.graph.separations = Set(separations.map { [$0.first, $0.second] })
    self.now = now
    self.partitions = max(1, partitions)
    self.sendsIdentifiers = ProfilePartition.needsIdentifiers(config)
    self.policies = PipelinePolicies(config: config)
    self.matcher = StreamingMatcher(config: config)
    self.part = IdentityPart(cut: 0)
    self.ops = Array(repeating: [], count: max(1, partitions))
    self.opEvents = Array(repeating: 0, count: max(1, partitions))
    if !matcher.isEmpty {
      let inputs = matcher.inputs
      for (p, t) in traits {
        let kept = t.filter { inputs.contains($0.key) }
        if !kept.isEmpty { matchTraits[p] = kept }
      }
      // The stored sightings of live profiles (rows of profiles merged or erased since are gone already).
      var sighted: Set<ProfileID> = []
      for r in sightings where graph.canonical(r.profile) == r.profile {
        matcher.restoreSightings(r.profile, r.sightings.map { ($0.signals, $0.last) })
        sighted.insert(r.profile)
      }
      for p in Set(graph.liveProfiles).union(matchTraits.keys).union(sighted).sorted() where graph.canonical(p) == p {
        matcher.index(p, values: values(of: p))
      }
    }
  }

  func policy(for trait: String) -> TraitPolicy {
    policies.policy(for: trait)
  }

  /// The evaluation time: the injected `now`, else the newest event time seen (at least `event`).
  func clock(_ event: Timestamp) -> Timestamp { now ?? max(highWater, event) }

  /// The open transaction's evaluation time.
  public var currentClock: Timestamp { clock(highWater) }

  // MARK: probabilistic rules

  /// What the probabilistic rules read of a profile: its traits and identifiers as text.
  func values(of profile: ProfileID) -> [String: String] {
    var out: [String: String] = [:]
    let traits = matchTraits[profile] ?? [:]
    let ids = graph.identifiers(of: profile)
    for name in matcher.inputs {
      if let v = traits[name]?.value, !v.isNull {
        out[name] = v.plainText
      } else if let i = ids.first(where: { $0.kind == name }) {
        out[name] = i.value
      }
    }
    return out
  }

  /// The same of an event (its mapped traits and identifiers).
  func values(of event: Event) -> [String: String] {
    var out: [String: String] = [:]
    for name in matcher.inputs {
      if let v = event.traits[name], !v.isNull {
        out[name] = v.plainText
      } else if let i = event.identifiers.first(where: { $0.kind == name }) {
        out[name] = i.value
      }
    }
    return out
  }

  /// The profile a probabilistic rule joins an event to (nil when none, or when a limit refuses it), and
  /// what to log about the decision once the event's profile is known.
  func match(_ event: Event, signals: [String: String]) -> (
    joining: ProfileID?, decision: StreamingMatcher.Candidate?, refusal: String?
  ) {
    guard !matcher.isEmpty, !event.identifiers.contains(where: { graph.profile(of: $0) != nil }),
      !matcher.isRejected(event: event.id)
    else {
      return (nil, nil, nil)
    }
    let probe = values(of: event).merging(signals) { trait, _ in trait }
    guard !probe.isEmpty,
      let c = matcher.best(
        event: probe, at: event.timestamp, allowed: { allowed($0, $1, event) }, profileValues: { values(of: $0) })
    else {
      return (nil, nil, nil)
    }
    let live = graph.canonical(c.profile)
    guard c.merge else { return (nil, c, nil) }
    if let kind = graph.limitBroken(attaching: event.identifiers, to: live) {
      let max = matcher.config.identifier(kind)?.maxPerProfile ?? 0
      return (nil, c, "joining would give the profile more than \(max) \(kind) value\(max == 1 ? "" : "s")")
    }
    if matcher.joins(live, rule: c.rule) + 2 > c.maxClusterSize {
      return (nil, c, "the profile already holds \(c.maxClusterSize) records matched by `\(c.rule)` (max_cluster_size)")
    }
    return (live, c, nil)
  }

  /// Whether a rule may use a profile's values (nil: the event's own) against `event`: both sides gave the
  /// rule's `consent`, and the profile holds no identifier of a `keep_apart` kind with a value other than the
  /// event's (two people who signed in as different users are never one, whatever they share).
  func allowed(_ rule: ProbabilisticRule, _ profile: ProfileID?, _ event: Event) -> Bool {
    if let purpose = rule.consent {
      let key = "consent." + purpose
      let given = profile.map { matchTraits[$0]?[key]?.value } ?? event.traits[key]
      guard given == .bool(true) else { return false }
    }
    guard let profile, !rule.keepApart.isEmpty else { return true }
    let mine = event.identifiers.filter { rule.keepApart.contains($0.kind) }
    guard !mine.isEmpty else { return true }
    let held = graph.identifiers(of: profile)
    return !mine.contains { i in held.contains { $0.kind == i.kind && $0.value != i.value } }
  }

  /// Whether a profile's device signals may be kept: some rule on device signals needs no consent, or the
  /// profile gave one such rule's purpose.
  func keepsSignals(of profile: ProfileID) -> Bool {
    matcher.signalConsents.contains { purpose in
      purpose.map { matchTraits[profile]?["consent." + $0]?.value == .bool(true) } ?? true
    }
  }

  // MARK: resolution

  /// Resolves a batch of mapped events into the open transaction. `stored` names the events the store
  /// already holds. Returns what resolution did to the batch (the answer to a request).
  @discardableResult
  public mutating func resolve(_ batch: MappedBatch, stored: Set<EventKey>) -> ResolveStats {
    var stats = ResolveStats()
    stats.invalidIdentifiers = batch.invalidIdentifiers
    stats.notes = batch.notes
    // Grown geometrically: reserving exactly what each batch adds reallocated and copied the whole
    // transaction's events once per batch (a fifth of the identity stage's time at 65,536 events a transaction).
    let needed = part.commit.events.count + batch.events.count
    if part.commit.events.capacity < needed {
      part.commit.events.reserveCapacity(max(needed, 2 * part.commit.events.capacity))
    }
    let derived = batch.signals.count == batch.events.count
    let combined = derived && batch.signalCombinations.count == batch.events.count
    for (i, event) in batch.events.enumerated() {
      if !suppressed.isEmpty, event.identifiers.contains(where: { suppressed.contains(Suppression.hash($0)) }) {
        stats.suppressed += 1
        continue
      }
      let key = EventKey(source: event.source, id: event.id)
      if (!stored.isEmpty && stored.contains(key)) || !seen.insert(SeenEvent(key)).inserted {
        stats.duplicates += 1
        continue
      }
      if keepsKeys { part.keys.append(key) }
      let signals = !matcher.readsSignals ? [:] : derived ? batch.signals[i] : matcher.signals(of: event.context)
      let (joining, decision, refusal) = match(event, signals: signals)
      let r = graph.resolve(event.identifiers, eventID: event.id, at: event.timestamp, joining: joining)
      if r.created {
        part.commit.newProfiles.append(NewProfile(r.profile, createdAt: event.timestamp))
        stats.profilesCreated += 1
      }
      if let d = decision {
        let candidate = graph.canonical(d.profile)
        let status: MatchLinkRecord.Status =
          joining != nil && r.profile == joining ? .joined : (refusal != nil ? .refused : .review)
        part.commit.matchLinks.append(
          MatchLinkRecord(
            rule: d.rule, profile: r.profile, candidate: candidate, eventID: event.id, probability: d.probability,
            weight: d.weight, status: status,
            reason: refusal.map { d.evidence.isEmpty ? $0 : "\($0); evidence: \(d.evidence)" } ?? d.evidence,
            at: event.timestamp))
        switch status {
        case .joined:
          matcher.joined(r.profile, rule: d.rule)
          stats.probabilisticJoins += 1
        case .refused:
          part.commit.conflicts.append(
            ConflictRecord(
              kept: r.profile, other: candidate, kind: d.rule,
              reason: "probabilistic match (\(String(format: "%.4f", d.probability))) refused: \(refusal ?? "")",
              identifiers: [], eventID: event.id, at: event.timestamp))
          stats.conflicts += 1
        default: stats.reviewLinks += 1
        }
      }
      if event.timestamp > highWater { highWater = event.timestamp }
      let at = clock(event.timestamp)
      for m in r.merges { merged(m, clock: at) }
      if !r.merges.isEmpty {
        part.commit.merges += r.merges
        stats.merges += r.merges.count
      }
      if !r.conflicts.isEmpty {
        part.commit.conflicts += r.conflicts
        stats.conflicts += r.conflicts.count
      }
      for (i, k) in zip(r.attached, r.attachedSlots) { row(i, slot: k, of: r.profile, seen: event.timestamp) }
      if defersSeen {
        for k in r.touchedSlots { holdSeen(k) }
      } else {
        for (i, k) in zip(r.touched, r.touchedSlots) { row(i, slot: k, of: r.profile, seen: event.timestamp) }
      }
      for (i, p) in r.expired { part.commit.released.append(ReleasedIdentifier(i, from: p)) }
      if sendsIdentifiers {
        if r.created || !r.attached.isEmpty || !r.merges.isEmpty || !r.expired.isEmpty {
          report(r.profile)
        }
        for (_, p) in r.expired where graph.canonical(p) != r.profile { report(graph.canonical(p)) }
      }
      if !matcher.isEmpty {
        // Whether a value the rules read changed: the profile's index entries are made from those values (and its
        // identifiers and sightings), so an event that only saw the same values again leaves them as they are.
        var inputsChanged = false
        for (trait, value) in event.traits where !value.isNull && matcher.inputs.contains(trait) {
          let o = Observation(value: value, source: event.source, eventID: event.id, timestamp: event.timestamp)
          let before = matchTraits[r.profile]?[trait]
          let after = policy(for: trait).add(o, to: before)
          if after.value != before?.value { inputsChanged = true }
          matchTraits[r.profile, default: [:]][trait] = after
        }
        let sees = !signals.isEmpty && keepsSignals(of: r.profile)
        if sees && sightingsChanged.last != r.profile { sightingsChanged.append(r.profile) }
        let sighted =
          sees
          && matcher.sight(
            r.profile, signals, at: event.timestamp, combination: combined ? batch.signalCombinations[i] : nil)
        if r.created || !r.merges.isEmpty || sighted || inputsChanged || matcher.matters(r.attached.map(\.kind)) {
          matcher.index(r.profile, values: values(of: r.profile))
        }
      }
      var resolved = event
      // Sorted already when the decode stage made the event (copied and sorted here otherwise).
      if !resolved.identifiers.isSorted { resolved.identifiers.sort() }
      let n = ProfilePartition.of(r.profile, among: partitions)
      ops[n].append(.event(resolved, index: part.commit.events.count, profile: r.profile, clock: at))
      opEvents[n] += 1
      part.commit.events.append(StoredEvent(event: resolved, profile: r.profile))
      stats.events += 1
    }
    part.stats.add(stats)
    return stats
  }

  /// Adds an identifier row to the open transaction, one per identifier: a row of the same identifier written
  /// earlier in the transaction (found by the graph's slot) for the same live profile takes the later time.
  ///
  /// Within a transaction without releases this keeps the rows unique — an identifier changes hands only by
  /// a merge (its earlier row's profile resolves to the new holder) or by expiring — so `cut` only has to
  /// bring the rows' profiles up to the merges (`CommitBatch.reconcile(with:unique:)`). Finding rows by
  /// identifier at the cut (a dictionary of every row, and the graph asked by identifier whether the profile
  /// still holds it) was a sixth of the identity stage's time.
  mutating func row(_ i: Identifier, slot k: Int, of p: ProfileID, seen: Timestamp) {
    let count = part.commit.identifiers.count
    if k >= 0 {
      if k >= rowOfSlot.count {
        rowOfSlot.append(
          contentsOf: repeatElement(
            RowRef(cut: .max, row: .max), count: max(k + 1, 2 * rowOfSlot.count) - rowOfSlot.count))
      }
      let ref = rowOfSlot[k]
      let r = Int(ref.row)
      if ref.cut == UInt32(truncatingIfNeeded: part.cut), r < count, part.commit.identifiers[r].identifier == i {
        if graph.canonical(part.commit.identifiers[r].profile) == p {
          part.commit.identifiers[r].profile = p
          if seen > part.commit.identifiers[r].lastSeen { part.commit.identifiers[r].lastSeen = seen }
          return
        }
        // The identifier changed hands other than by a merge (it cannot without a release, which the cut checks
        // anyway): the cut checks every row.
        irregularRows = true
      }
      rowOfSlot[k] = RowRef(cut: UInt32(truncatingIfNeeded: part.cut), row: UInt32(truncatingIfNeeded: count))
    }
    part.commit.identifiers.append(IdentifierRow(i, of: p, seen: seen))
  }

  /// Tells the partitions of a merge's two profiles what to do, and folds the absorbed profile into the
  /// survivor in the rules' index.
  mutating func merged(_ m: MergeRecord, clock: Timestamp) {
    let s = ProfilePartition.of(m.survivor, among: partitions)
    let a = ProfilePartition.of(m.absorbed, among: partitions)
    if s == a {
      ops[s].append(.merge(m, clock: clock))
    } else {
      // The give goes first: the survivor's partition waits for it, never the other way round.
      handoffs += 1
      ops[a].append(.give(m, handoff: handoffs, clock: clock))
      ops[s].append(.take(m, handoff: handoffs, clock: clock))
    }
    if !matcher.isEmpty {
      if let absorbed = matchTraits.removeValue(forKey: m.absorbed) {
        for (trait, state) in absorbed {
          matchTraits[m.survivor, default: [:]][trait] = policy(for: trait).merge(
            matchTraits[m.survivor]?[trait], state)
        }
      }
      matcher.merged(m.absorbed, into: m.survivor)
      if matcher.readsSignals {
        sightingsChanged += [m.absorbed, m.survivor]
      }
    }
  }

  /// The stored sightings of the profiles the open transaction changed, each written whole (a profile merged
  /// away has none), and those pruned that expired before the newest event resolved. Event time, not the
  /// evaluation clock: sightings are measured from events, so a backfill run with `--now` today keeps what
  /// the next run over the store still needs, as a run that never stopped would.
  mutating func writeSightings(into commit: inout CommitBatch) {
    guard matcher.readsSignals else { return }
    let keep = matcher.sightingsKept.microseconds
    for p in Set(sightingsChanged).sorted() {
      let list = graph.canonical(p) == p ? matcher.storedSightings(p) : []
      let newest = list.first?.last.microseconds ?? 0
      commit.sightings.append(
        SightingRecord(
          profile: p, sightings: list.map { StoredSighting(signals: $0.signals, last: $0.last) },
          expires: Timestamp(microseconds: newest + keep)))
    }
    sightingsChanged = []
    commit.sightingsExpireBefore = highWater
  }

  /// Tells a profile's partition which identifiers it holds now.
  mutating func report(_ p: ProfileID) {
    ops[ProfilePartition.of(p, among: partitions)].append(.identifiers(p, graph.identifiers(of: p)))
  }

  /// Merges the profile pairs reviewers confirmed (`tessera review confirm`): each becomes a recorded merge (or
  /// a conflict when a limit refuses it) and the link is marked `merged`; rejected pairs are never proposed.
  public mutating func decide(_ links: [MatchLinkRecord], at: Timestamp, marking: Bool = true) {
    let marked = part.commit.linkStatus.count
    defer { if !marking { part.commit.linkStatus.removeLast(part.commit.linkStatus.count - marked) } }
    let when = clock(at)
    for link in links where link.status == .confirmed {
      let (merge, conflict) = graph.mergeProfiles(
        link.profile, link.candidate, rule: link.rule, score: link.probability, eventID: "review:\(link.id)", at: at)
      if let merge {
        merged(merge, clock: when)
        part.commit.merges.append(merge)
        part.stats.merges += 1
        if sendsIdentifiers { report(merge.survivor) }
        matcher.index(merge.survivor, values: values(of: merge.survivor))
        part.commit.linkStatus.append(LinkStatusChange(link.id, to: .merged))
      } else if let conflict {
        part.commit.conflicts.append(conflict)
        part.stats.conflicts += 1
        part.commit.linkStatus.append(LinkStatusChange(link.id, to: .refused))
      } else {
        part.commit.linkStatus.append(LinkStatusChange(link.id, to: .merged))  // already one profile
      }
    }
    for link in links where link.status == .rejected {
      // A replay knows a rejected link by its event only (old profile ids mean nothing there): profile 0.
      if link.profile.raw != 0 { matcher.reject(link.profile, link.candidate) }
      matcher.reject(event: link.eventID)
    }
  }

  /// The clock tick at `at` (else the current clock): every partition expires its windows.
  public mutating func tick(at: Timestamp? = nil) {
    let when = at ?? currentClock
    for n in ops.indices { ops[n].append(.tick(clock: when)) }
  }

  /// Events and ops waiting to be handed to the partitions.
  public var waitingEvents: Int { opEvents.reduce(0, +) }

  /// Takes the ops of partition `n` (to hand them over before the transaction ends).
  public mutating func takeOps(_ n: Int) -> PartitionBatch {
    defer {
      ops[n] = []
      opEvents[n] = 0
    }
    return PartitionBatch(ops: ops[n], events: opEvents[n])
  }

  /// Ends the open transaction: its identity rows reconciled with the graph, and every partition's last ops
  /// with the instruction to settle. Starts the next transaction.
  public mutating func cut() -> (IdentityPart, [PartitionBatch]) {
    var done = part
    done.commit.epoch = epoch
    done.commit.traitPolicies = policies.stored
    done.commit.reconcile(with: graph, unique: !irregularRows)
    irregularRows = false
    if seenHeldInTransaction { done.commit.seenDeferred = expiringKinds }
    seenHeldInTransaction = false
    writeSightings(into: &done.commit)
    done.profiles = graph.profileCount
    let when = currentClock
    var batches: [PartitionBatch] = []
    for n in ops.indices {
      ops[n].append(.cut(done.cut, clock: when))
      batches.append(takeOps(n))
    }
    part = IdentityPart(cut: done.cut + 1)
    return (done, batches)
  }

  /// Forgets events the store now holds: from then on the store recognises them, so the set of seen events
  /// does not grow for the life of a server.
  public mutating func forget(_ keys: [EventKey]) {
    seen.subtract(keys.map(SeenEvent.init))
  }
}

extension CommitBatch {
  /// Brings the identifier rows up to the graph's state at the end of the transaction, before it is committed.
  ///
  /// An identifier attached to a profile that a later event of the same transaction merged away must be
  /// written for the survivor (the store applies merges before identifier rows), and one attached and then
  /// released (expired) within the transaction must not be written at all. Without this, the store could
  /// show an identifier on two profiles.
  ///
  /// `unique`: the rows hold each identifier once for each profile it had in the transaction (as
  /// `IdentityResolver.row` keeps them). Then, when nothing was released, each row only needs its profile
  /// brought up to the merges: no identifier left a profile except by a merge, and a merge's survivor holds
  /// what the absorbed profile held. Otherwise (releases, or rows of unknown shape) every row is checked.
  mutating func reconcile(with graph: IdentityGraph, unique: Bool = false) {
    if unique && released.isEmpty {
      if graph.hasAliases {
        for k in identifiers.indices { identifiers[k].profile = graph.canonical(identifiers[k].profile) }
      }
      return
    }
    var out: [IdentifierRow] = []
    out.reserveCapacity(identifiers.count)
    var index: [Identifier: Int] = [:]
    for row in identifiers {
      let i = row.identifier
      let live = graph.canonical(row.profile)
      guard graph.holds(live, i) else { continue }
      if let k = index[i], out[k].profile == live {
        out[k].lastSeen = max(out[k].lastSeen, row.lastSeen)
      } else {
        index[i] = out.count
        out.append(IdentifierRow(i, of: live, seen: row.lastSeen))
      }
    }
    identifiers = out
    // Releases name the live profile (the store applies them after the merges); one whose identifier the
    // graph holds again on that profile was undone by a later event of the transaction.
    released = released.compactMap { r in
      let live = graph.canonical(r.profile)
      return graph.holds(live, r.identifier) ? nil : ReleasedIdentifier(r.identifier, from: live)
    }
  }
}

/// What the identity stage remembers of an event it resolved: a 128-bit fingerprint of its source and id, two
/// independent 64-bit hashes (`EventKey.logKey`, FNV-1a; and the standard library's seeded SipHash).
///
/// A run remembers every event (a million and more): as keys, the set held both strings of each, and every
/// probe of an occupied bucket compared ids through their heap storage — a cache miss each, the most of the
/// identity stage's time after resolution itself. Fingerprints are 16 bytes and compare as two integers. Two
/// different events share one with a probability of about n²/2¹²⁹ for n events remembered (10⁻²⁷ for a
/// million): far below a memory error's.
struct SeenEvent: Hashable {
  let a: Int64
  let b: Int
  init(_ key: EventKey) {
    a = key.logKey
    var h = Hasher()
    h.combine(key.source)
    h.combine(key.id)
    b = h.finalize()
  }
  /// `a` is well mixed already (the SplitMix64 finaliser).
  func hash(into h: inout Hasher) { h.combine(a) }
}

extension [Identifier] {
  /// Whether the identifiers are in ascending order.
  var isSorted: Bool {
    guard count > 1 else { return true }
    for k in 1..<count where self[k] < self[k - 1] { return false }
    return true
  }
}
