import TesseraCompiler
import TesseraIdentity
import TesseraModel
import TesseraStore

/// Counts of what resolution did, for the progress line and the run summary.
public struct ResolveStats: Sendable, Hashable {
  /// Events a probabilistic rule joined to a profile, and candidate links left for review.
  public var probabilisticJoins = 0
  public var reviewLinks = 0
  /// Events dropped because they carry an identifier of a deleted person.
  public var suppressed = 0
  /// Changes not sent to a destination because the person has not consented to its purpose, by purpose.
  public var withheld: [String: Int] = [:]
  /// Changes queued in the outbox for destinations.
  public var queued = 0
  public var events = 0
  public var duplicates = 0
  public var profilesCreated = 0
  public var merges = 0
  public var conflicts = 0
  public var rejected = 0
  public var invalidIdentifiers = 0
  /// What decode & map noticed: dropped identifier values with file and line, records kept without one.
  public var notes = MappingNotes()
  public init() {}

  public mutating func add(_ o: ResolveStats) {
    events += o.events
    duplicates += o.duplicates
    profilesCreated += o.profilesCreated
    merges += o.merges
    conflicts += o.conflicts
    rejected += o.rejected
    invalidIdentifiers += o.invalidIdentifiers
    notes.add(o.notes)
    probabilisticJoins += o.probabilisticJoins
    reviewLinks += o.reviewLinks
    suppressed += o.suppressed
    withheld.merge(o.withheld, uniquingKeysWith: +)
    queued += o.queued
  }
}

/// The single writer of identity and profile state: resolves each event to a profile, re-applies the
/// precedence policies on merges, and turns a batch of events into one `CommitBatch`.
public struct Resolver: Sendable {
  public private(set) var graph: IdentityGraph
  /// Trait summaries of every live profile.
  public private(set) var profiles: [ProfileID: [String: TraitState]] = [:]
  let policies: [String: TraitPolicy]
  let defaultPolicy: TraitPolicy
  /// Events resolved during this run, so duplicates are skipped before they reach the store.
  var seen: Set<EventKey> = []
  /// Every profile's computed-trait states (only this writer changes them).
  public private(set) var computed: ComputedTraitTable
  /// Every profile's segment memberships (only this writer changes them).
  public private(set) var segments: SegmentEngine
  /// The time segments are evaluated at and windows are measured from. Nil: the newest event time seen so far
  /// (the high-water mark), which is what a resolver without an injected clock uses.
  public var now: Timestamp?
  /// The store's epoch the state was read at (`Resolver.restored`); every batch carries it, so a store whose
  /// state changed since (an erase, a replay, another writer) refuses the commit instead of being overwritten.
  public var epoch: Int64?
  /// The newest event timestamp resolved so far.
  public private(set) var highWater = Timestamp(microseconds: 0)
  /// Computed traits that were stored but could not be restored (their declaration changed), by name.
  public private(set) var unrestoredComputed: Set<String> = []
  /// Probabilistic rules: profiles indexed by blocking keys, events without a known identifier scored.
  public private(set) var matcher: StreamingMatcher
  /// Hashes of deleted people's identifiers (`Suppression.hash`): their events are dropped at the door.
  let suppressed: Set<String>
  /// Destinations: what each batch changed becomes outbox rows committed with it.
  let router: DestinationRouter
  /// Profiles whose visible trait values changed since the last `finish`, and consent decisions that flipped
  /// (kept only when some destination listens).
  var changedTraits: [ProfileID: Set<String>] = [:]
  var consentChanges: [ConsentChange] = []
  /// Changes the ticks withheld for want of consent, by purpose (a tick returns a bare `CommitBatch`).
  public private(set) var tickWithheld: [String: Int] = [:]
  public private(set) var tickQueued = 0
  /// When set, `resolve` leaves the end of the batch (segment evaluation, computed-trait rows, changed traits
  /// and outbox rows) to `settle`, which does it once for every batch since the last call: a profile that
  /// several batches of one store transaction touch is evaluated once, as the transaction ends, instead of once
  /// per batch. Audiences are then decided at transaction boundaries, the granularity at which they are stored.
  public var settlesPerTransaction = false
  /// What the batches resolved since the last `settle` left to finish.
  var unsettled = Unsettled()

  struct Unsettled {
    var dirty: Set<TraitKey> = []
    var computedDirty: [ProfileID: IndexBits] = [:]
    var touched: Set<ProfileID> = []
    var segmentChanges: [SegmentChange] = []
    /// The batches' merges and, when some destination listens, their events (what `finish` routes).
    var merges: [MergeRecord] = []
    var events: [StoredEvent] = []
    var isEmpty: Bool {
      dirty.isEmpty && computedDirty.isEmpty && touched.isEmpty && segmentChanges.isEmpty && merges.isEmpty
        && events.isEmpty
    }
  }

  /// `computed` and `memberships` restore the computed-trait states and segment memberships a store holds.
  /// `now` is the injected clock (see `now`).
  public init(
    config: PipelineConfig, identity: IdentitySnapshot = IdentitySnapshot(), traits: [TraitRecord] = [],
    computed: [ComputedRecord] = [], memberships: [MembershipRecord] = [], now: Timestamp? = nil,
    separations: [[Identifier]] = [], suppressed: Set<String> = []
  ) {
    self.suppressed = suppressed
    self.graph = identity.graph(rules: Resolver.kindRules(config))
    self.graph.separations = Set(separations.map { $0.sorted() })
    self.now = now
    var table = ComputedTraitTable(config: config)
    var encoded: [ProfileID: [String: Value]] = [:]
    // A state that does not read back restores as nothing: the trait is reported in `unrestoredComputed`.
    for c in computed { encoded[c.profile, default: [:]][c.trait] = (try? c.state()) ?? .null }
    var failed: Set<String> = []
    for (p, states) in encoded { failed.formUnion(table.restore(p, encoded: states)) }
    self.computed = table
    self.unrestoredComputed = failed
    var members: [ProfileID: Set<String>] = [:]
    for m in memberships { members[m.profile, default: []].insert(m.segment) }
    self.segments = SegmentEngine(config: config, memberships: members)
    var policies: [String: TraitPolicy] = [:]
    for t in config.traits { policies[t.name] = TraitPolicy(kind: t.policy, sources: t.sources) }
    self.policies = policies
    self.defaultPolicy = TraitPolicy(kind: config.defaultPolicy)
    for t in traits {
      guard let state = TraitState(encoded: t.state) else { continue }
      profiles[t.profile, default: [:]][t.trait] = state
    }
    matcher = StreamingMatcher(config: config)
    router = DestinationRouter(config: config)
    self.computed.keepsExpiredSamples = router.wantsProfileChanges
    if !matcher.isEmpty {
      for p in Set(graph.members.keys).union(profiles.keys).sorted() where graph.canonical(p) == p {
        matcher.index(p, values: values(of: p))
      }
    }
  }

  /// What the probabilistic rules read of a profile: its traits and identifiers as text.
  func values(of profile: ProfileID) -> [String: String] {
    var out: [String: String] = [:]
    let traits = profiles[profile] ?? [:]
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
  mutating func match(_ event: Event) -> (joining: ProfileID?, decision: StreamingMatcher.Candidate?, refusal: String?)
  {
    guard !matcher.isEmpty, !event.identifiers.contains(where: { graph.profile(of: $0) != nil }) else {
      return (nil, nil, nil)
    }
    let probe = values(of: event)
    guard !probe.isEmpty, let c = matcher.best(event: probe, profileValues: { values(of: $0) }) else {
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

  /// Identifier kinds as the identity graph sees them.
  public static func kindRules(_ config: PipelineConfig) -> [String: KindRule] {
    var rules: [String: KindRule] = [:]
    for id in config.identifiers {
      let rule = config.deterministic.first { $0.linkOn.contains(id.name) }?.name
      rules[id.name] = KindRule(
        priority: id.priority, maxPerProfile: id.maxPerProfile, blocked: id.blocked, expiresAfter: id.expiresAfter,
        rule: rule)
    }
    return rules
  }

  /// Consent (`consent.PURPOSE`) is always the most recent decision; other traits follow their declaration.
  public func policy(for trait: String) -> TraitPolicy {
    if let p = policies[trait] { return p }
    return trait.hasPrefix("consent.") ? Resolver.consentPolicy : defaultPolicy
  }
  static let consentPolicy = TraitPolicy(kind: .most_recent)

  /// Resolves and unifies a batch. `stored` names the events the store already holds.
  public mutating func apply(_ batch: MappedBatch, stored: Set<EventKey>) -> (CommitBatch, ResolveStats) {
    var r = resolve(batch, stored: stored)
    r.reconcile(with: graph)
    return (r.finished(), r.stats)
  }

  /// Resolves and unifies a batch, leaving the encoding of changed traits to `ResolvedBatch.finished()`,
  /// which the store writer runs, off the single writer's path.
  public mutating func resolve(_ batch: MappedBatch, stored: Set<EventKey>) -> ResolvedBatch {
    var commit = CommitBatch()
    commit.epoch = epoch
    var stats = ResolveStats()
    stats.rejected = batch.rejected.count
    stats.invalidIdentifiers = batch.invalidIdentifiers
    stats.notes = batch.notes
    commit.rejected = batch.rejected
    commit.events.reserveCapacity(batch.events.count)
    var dirty: Set<TraitKey> = []
    // Profiles whose segment inputs changed in this batch; evaluated once each at the end.
    var touched: Set<ProfileID> = []
    // Computed traits whose state changed, per profile (indexes into `computed.traits`); only those rows are
    // written.
    var computedDirty: [ProfileID: IndexBits] = [:]
    var segmentChanges: [SegmentChange] = []
    if settlesPerTransaction {
      // Straight into what the transaction gathers (moved out and back, so nothing is copied or merged).
      swap(&dirty, &unsettled.dirty)
      swap(&touched, &unsettled.touched)
      swap(&computedDirty, &unsettled.computedDirty)
      swap(&segmentChanges, &unsettled.segmentChanges)
    }
    let evaluating = !segments.names.isEmpty
    for event in batch.events {
      if !suppressed.isEmpty, event.identifiers.contains(where: { suppressed.contains(Suppression.hash($0)) }) {
        stats.suppressed += 1
        continue
      }
      let key = EventKey(source: event.source, id: event.id)
      if stored.contains(key) || !seen.insert(key).inserted {
        stats.duplicates += 1
        continue
      }
      let (joining, decision, refusal) = match(event)
      let r = graph.resolve(event.identifiers, eventID: event.id, at: event.timestamp, joining: joining)
      if r.created {
        commit.newProfiles.append((r.profile, event.timestamp))
        stats.profilesCreated += 1
      }
      if let d = decision {
        let candidate = graph.canonical(d.profile)
        let status: MatchLinkRecord.Status =
          joining != nil && r.profile == joining ? .joined : (refusal != nil ? .refused : .review)
        commit.matchLinks.append(
          MatchLinkRecord(
            rule: d.rule, profile: r.profile, candidate: candidate, eventID: event.id, probability: d.probability,
            weight: d.weight, status: status, reason: refusal ?? "", at: event.timestamp))
        switch status {
        case .joined:
          matcher.joined(r.profile, rule: d.rule)
          stats.probabilisticJoins += 1
        case .refused:
          commit.conflicts.append(
            ConflictRecord(
              kept: r.profile, other: candidate, kind: d.rule,
              reason: "probabilistic match (\(String(format: "%.4f", d.probability))) refused: \(refusal ?? "")",
              identifiers: [], eventID: event.id, at: event.timestamp))
          stats.conflicts += 1
        default: stats.reviewLinks += 1
        }
      }
      for m in r.merges {
        absorb(m, at: clock(event.timestamp), &dirty, &computedDirty, &touched, &segmentChanges)
      }
      if !r.merges.isEmpty {
        commit.merges += r.merges
        stats.merges += r.merges.count
      }
      if !r.conflicts.isEmpty {
        commit.conflicts += r.conflicts
        stats.conflicts += r.conflicts.count
      }
      for i in r.attached { commit.identifiers.append((i, r.profile, event.timestamp)) }
      for i in r.touched { commit.identifiers.append((i, r.profile, event.timestamp)) }
      if !r.expired.isEmpty { commit.released += r.expired }
      for (trait, value) in event.traits where !value.isNull {
        let o = Observation(value: value, source: event.source, eventID: event.id, timestamp: event.timestamp)
        let p = policy(for: trait)
        let old = profiles[r.profile]?[trait]
        let updated = p.add(o, to: old)
        profiles[r.profile, default: [:]][trait] = updated
        dirty.insert(TraitKey(profile: r.profile, trait: trait))
        if !router.isEmpty, old?.value != updated.value {
          noteChange(r.profile, trait, before: old?.value, after: updated.value)
        }
      }
      if event.timestamp > highWater { highWater = event.timestamp }
      if !computed.traits.isEmpty {
        let changed = computed.contribute(event, to: r.profile, now: clock(event.timestamp))
        if !changed.isEmpty { computedDirty[r.profile, default: changed].formUnion(changed) }
      }
      // Identifiers, traits or computed traits may have changed: segments read all three.
      if evaluating { touched.insert(r.profile) }
      if !matcher.isEmpty
        && (r.created || !r.merges.isEmpty || matcher.matters(event.traits.keys)
          || matcher.matters(r.attached.map(\.kind)))
      {
        matcher.index(r.profile, values: values(of: r.profile))
      }
      var resolved = event
      if resolved.identifiers.count > 1 { resolved.identifiers.sort() }
      commit.events.append(StoredEvent(event: resolved, profile: r.profile))
      stats.events += 1
    }
    if settlesPerTransaction {
      swap(&dirty, &unsettled.dirty)
      swap(&touched, &unsettled.touched)
      swap(&computedDirty, &unsettled.computedDirty)
      swap(&segmentChanges, &unsettled.segmentChanges)
      unsettled.merges += commit.merges
      if !router.isEmpty { unsettled.events += commit.events }
      return ResolvedBatch(commit: commit, stats: stats, pending: [])
    }
    return finish(
      commit, stats, at: clock(highWater), dirty: dirty, computedDirty: computedDirty, touched: touched,
      segmentChanges: segmentChanges)
  }

  /// With `settlesPerTransaction`: finishes the batches resolved since the last call, at the clock's time,
  /// into `batch` (the store transaction that gathers them): segment changes, outbox rows, and the changed
  /// traits and computed traits to encode.
  public mutating func settle(_ batch: inout ResolvedBatch) {
    guard !unsettled.isEmpty else { return }
    let u = unsettled
    unsettled = Unsettled()
    var part = CommitBatch()
    part.events = u.events
    part.merges = u.merges
    let done = finish(
      part, ResolveStats(), at: clock(highWater), dirty: u.dirty, computedDirty: u.computedDirty,
      touched: u.touched, segmentChanges: u.segmentChanges)
    batch.commit.segmentChanges += done.commit.segmentChanges
    batch.commit.outbox += done.commit.outbox
    batch.stats.add(done.stats)
    // Settled rows name profiles alive after every merge of the batch.
    batch.pendingIsLatest = !batch.hasPending
    batch.pending += done.pending
    batch.pendingComputed += done.pendingComputed
  }

  /// The end of a batch: the changed traits to encode, segments of the touched profiles evaluated at `at`,
  /// computed-trait rows, all named by the live profile.
  mutating func finish(
    _ batch: CommitBatch, _ stats: ResolveStats, at: Timestamp, dirty: Set<TraitKey>,
    computedDirty: [ProfileID: IndexBits], touched: Set<ProfileID>, segmentChanges: [SegmentChange]
  ) -> ResolvedBatch {
    var commit = batch
    var changed: [ProfileID: Set<String>] = [:]
    for k in dirty { changed[graph.canonical(k.profile), default: []].insert(k.trait) }
    var pending: [PendingTrait] = []
    pending.reserveCapacity(dirty.count)
    for (p, traits) in changed {
      for t in traits {
        guard let state = profiles[p]?[t] else { continue }
        pending.append(PendingTrait(profile: p, trait: t, state: state, policy: policy(for: t)))
      }
    }
    var liveDirty: [ProfileID: IndexBits] = [:]
    for (p, bits) in computedDirty { liveDirty[graph.canonical(p), default: bits].formUnion(bits) }
    let live = Set(touched.map { graph.canonical($0) })
    var changes = segmentChanges
    // A merge changes the survivor's inputs wholesale: all its segments are evaluated.
    let merged = Set(commit.merges.map { graph.canonical($0.survivor) })
    let rows = evaluate(live, rows: liveDirty, at: at, declared: changed, wholly: merged, &changes)
    commit.segmentChanges = changes.map(Self.record)
    var stats = stats
    if !router.isEmpty {
      commit.outbox = route(
        events: commit.events, computed: liveDirty.mapValues(names), segmentChanges: changes,
        absorbed: commit.merges.map(\.absorbed), at: at, &stats)
      stats.queued = commit.outbox.count
    }
    return ResolvedBatch(commit: commit, stats: stats, pending: pending, pendingComputed: rows)
  }

  /// The names of a set of computed traits.
  func names(_ bits: IndexBits) -> Set<String> { Set(bits.indexes.map { computed.names[$0] }) }

  /// In profile order: re-evaluates the segments of the `live` profiles (appending the flips to `changes`) and
  /// returns the computed-trait rows named by `rows`, reading each profile's computed
  /// values once for both.
  ///
  /// Only the segments whose inputs may have changed are evaluated: those reading a declared trait in
  /// `declared[p]`, a computed trait in `rows[p]` or one with a bucket out of its window at `at` (its value
  /// fell with time), and the segments the engine always evaluates; every segment for the profiles in `wholly`.
  mutating func evaluate(
    _ live: Set<ProfileID>, rows: [ProfileID: IndexBits], at: Timestamp,
    declared declaredNames: [ProfileID: Set<String>],
    wholly: Set<ProfileID> = [], _ changes: inout [SegmentChange]
  ) -> [PendingComputed] {
    let evaluating = !segments.names.isEmpty
    var out: [PendingComputed] = []
    let visited = evaluating ? live.union(rows.keys) : Set(rows.keys)
    // One borrowed copy for the pass: handing `self.computed` to `computedRecords` from this mutating method
    // copied the whole table (a retain and release of each of its arrays) for every profile.
    let table = computed
    let computedCount = table.names.count
    // Per-profile buffers, allocated once and cleared for each profile.
    var values = [Value?](repeating: nil, count: computedCount)
    var bits = IndexBits(count: segments.traitOrder.count)
    for p in visited.sorted() {
      // Computed values at `at`, each worked out when first read (most conditions read few of them).
      let states = table.states[p]
      for k in values.indices { values[k] = nil }
      func value(_ k: Int) -> Value {
        if let v = values[k] { return v }
        let v = states.map { k < $0.count ? $0[k].value(at: at) : table.emptyValue(k) } ?? table.emptyValue(k)
        values[k] = v
        return v
      }
      if evaluating, live.contains(p) {
        // Positionally, as `inputs(of:at:)` gives them, without building them first. The declared traits
        // are looked up when a condition first reads one: many evaluations read computed traits alone, and
        // the look-up is a cache miss.
        var declared: [String: TraitState]?
        let order = segments.traitOrder
        let declaredCount = order.count - computedCount
        let ids = segments.readsIdentifiers ? identifierValues(of: p) : []
        var changed: IndexBits?
        if !wholly.contains(p) {
          bits.clear()
          for name in declaredNames[p] ?? [] {
            for n in segments.traitPositions[name] ?? [] where n < declaredCount { bits.set(n, true) }
          }
          for k in rows[p]?.indexes ?? [] { bits.set(declaredCount + k, true) }
          if let states {
            for k in table.windowed where k < states.count && states[k].hasExpired(at: at) {
              bits.set(declaredCount + k, true)
            }
          }
          changed = bits
        }
        changes += segments.evaluate(
          p, now: at, changed: changed,
          trait: { n in
            if n >= declaredCount { return value(n - declaredCount) }
            // Through the index: `declared[name]?.value` copied the whole `TraitState` (two observations and
            // the policy's tallies, a dozen retains) to read one value.
            if declared == nil { declared = profiles[p] ?? [:] }
            guard let d = declared, let i = d.index(forKey: order[n]) else { return .null }
            return d.values[i].value
          },
          identifier: { $0 < ids.count ? ids[$0] : .null })
      }
      guard let names = rows[p] else { continue }
      Self.computedRecords(of: p, names, in: table, value: value, into: &out)
    }
    return out
  }
  /// Remembers a visible trait change for profile-change destinations and consent flips for all.
  mutating func noteChange(_ p: ProfileID, _ trait: String, before: Value?, after: Value) {
    if router.wantsProfileChanges { changedTraits[p, default: []].insert(trait) }
    if trait.hasPrefix("consent."), router.purposes.contains(String(trait.dropFirst(8))) {
      let was = before == .bool(true)
      let now = after == .bool(true)
      if was != now {
        consentChanges.append(ConsentChange(profile: p, purpose: String(trait.dropFirst(8)), granted: now))
      }
    }
  }

  /// The outbox rows of what changed since the last call (see `DestinationRouter`).
  mutating func route(
    events: [StoredEvent], computed changedComputed: [ProfileID: Set<String>], segmentChanges: [SegmentChange],
    absorbed: [ProfileID] = [], at: Timestamp, _ stats: inout ResolveStats
  ) -> [OutboxRecord] {
    var changed: [ProfileID: Set<String>] = [:]
    if router.wantsProfileChanges {
      for (p, names) in changedTraits { changed[graph.canonical(p), default: []].formUnion(names) }
      for (p, names) in changedComputed { changed[p, default: []].formUnion(names) }
    }
    let consent = consentChanges
    changedTraits = [:]
    consentChanges = []
    return routeRows(
      events: events, changed: changed, segmentChanges: segmentChanges, consent: consent, absorbed: absorbed, at: at,
      &stats)
  }

  func routeRows(
    events: [StoredEvent], changed: [ProfileID: Set<String>], segmentChanges: [SegmentChange],
    consent: [ConsentChange], absorbed: [ProfileID], at: Timestamp, _ stats: inout ResolveStats
  ) -> [OutboxRecord] {
    let view = DestinationRouter.View(
      live: { graph.canonical($0) }, state: { payloadState(of: $0, at: at) },
      consents: { p, purpose in profiles[p]?["consent." + purpose]?.value == .bool(true) },
      isMember: { segments.isMember($0, of: $1) })
    return router.route(
      events: events, changed: changed, segmentChanges: segmentChanges, consent: consent, absorbed: absorbed, at: at,
      view: view, withheld: &stats.withheld)
  }

  /// What a payload reads of a live profile: traits, computed traits at `at`, identifiers, segments.
  func payloadState(of p: ProfileID, at: Timestamp) -> PayloadState {
    var s = PayloadState()
    s.variables["profile.id"] = .string(p.description)
    var traits: [String: Value] = [:]
    for (name, state) in profiles[p] ?? [:] { traits[name] = state.value }
    for (i, v) in computed.valueList(of: p, at: at).enumerated() { traits[computed.names[i]] = v }
    s.fields["traits"] = traits
    var ids: [String: Value] = [:]
    for i in graph.identifiers(of: p).sorted() where ids[i.kind] == nil { ids[i.kind] = .string(i.value) }
    s.fields["identifiers"] = ids
    var member: [String: Value] = [:]
    for name in segments.segments(of: p) { member[name] = .bool(true) }
    s.fields["segments"] = member
    return s
  }

  /// Folds an absorbed profile into the survivor: traits by their policies, computed traits, memberships, and
  /// the probabilistic index.
  mutating func absorb(
    _ m: MergeRecord, at: Timestamp, _ dirty: inout Set<TraitKey>, _ computedDirty: inout [ProfileID: IndexBits],
    _ touched: inout Set<ProfileID>, _ segmentChanges: inout [SegmentChange]
  ) {
    if let absorbed = profiles.removeValue(forKey: m.absorbed) {
      for (trait, state) in absorbed {
        let old = profiles[m.survivor]?[trait]
        let merged = policy(for: trait).merge(old, state)
        profiles[m.survivor, default: [:]][trait] = merged
        if !router.isEmpty, old?.value != merged.value {
          noteChange(m.survivor, trait, before: old?.value, after: merged.value)
        }
      }
    }
    if let moved = changedTraits.removeValue(forKey: m.absorbed) {
      changedTraits[m.survivor, default: []].formUnion(moved)
    }
    // Every trait of the survivor may have changed; the absorbed profile's rows go with the merge. Keys of
    // absorbed profiles still in `dirty` are mapped to their survivor when the batch is finished.
    for trait in (profiles[m.survivor] ?? [:]).keys { dirty.insert(TraitKey(profile: m.survivor, trait: trait)) }
    computed.merge(absorbed: m.absorbed, into: m.survivor)
    if !computed.names.isEmpty { computedDirty[m.survivor] = computed.all }
    // The absorbed profile ends now; the survivor is evaluated with the others at the end of the batch.
    if !segments.names.isEmpty {
      segmentChanges += segments.end(m.absorbed, now: at, mergedInto: m.survivor)
      touched.insert(m.survivor)
    }
    if !matcher.isEmpty { matcher.merged(m.absorbed, into: m.survivor) }
  }

  /// Merges the profile pairs reviewers confirmed (`tessera review confirm`), before a run's events: each
  /// becomes a recorded merge (or a conflict when a limit refuses it) and the link is marked `merged`.
  public mutating func applyConfirmed(_ links: [MatchLinkRecord], at: Timestamp) -> ResolvedBatch {
    var commit = CommitBatch()
    commit.epoch = epoch
    var stats = ResolveStats()
    var dirty: Set<TraitKey> = []
    var computedDirty: [ProfileID: IndexBits] = [:]
    var touched: Set<ProfileID> = []
    var segmentChanges: [SegmentChange] = []
    for link in links where link.status == .confirmed {
      let (merge, conflict) = graph.mergeProfiles(
        link.profile, link.candidate, rule: link.rule, score: link.probability, eventID: "review:\(link.id)", at: at)
      if let merge {
        absorb(merge, at: clock(at), &dirty, &computedDirty, &touched, &segmentChanges)
        commit.merges.append(merge)
        stats.merges += 1
        matcher.index(merge.survivor, values: values(of: merge.survivor))
        commit.linkStatus.append((link.id, .merged))
      } else if let conflict {
        commit.conflicts.append(conflict)
        stats.conflicts += 1
        commit.linkStatus.append((link.id, .refused))
      } else {
        commit.linkStatus.append((link.id, .merged))  // already one profile
      }
    }
    for link in links where link.status == .rejected { matcher.reject(link.profile, link.candidate) }
    return finish(
      commit, stats, at: clock(at), dirty: dirty, computedDirty: computedDirty, touched: touched,
      segmentChanges: segmentChanges)
  }

  /// The evaluation time: the injected `now`, else the newest event time seen (at least `event`).
  func clock(_ event: Timestamp) -> Timestamp { now ?? max(highWater, event) }

  /// What the segment conditions read of `profile` at `at`: declared traits, computed traits, identifiers.
  public func inputs(of profile: ProfileID, at: Timestamp) -> ProfileInputs {
    inputs(of: profile, computedValues: computed.valueList(of: profile, at: at))
  }

  /// The same, with the computed values already read (`ComputedTraitTable.valueList`).
  func inputs(of profile: ProfileID, computedValues: [Value]) -> ProfileInputs {
    var values: [Value] = []
    values.reserveCapacity(segments.traitOrder.count)
    let declared = profiles[profile] ?? [:]
    let declaredCount = segments.traitOrder.count - computedValues.count
    for (n, name) in segments.traitOrder.enumerated() {
      if n >= declaredCount {
        values.append(computedValues[n - declaredCount])
      } else {
        values.append(declared[name]?.value ?? .null)
      }
    }
    return ProfileInputs(traitValues: values, identifierValues: identifierValues(of: profile))
  }

  /// Per kind of `segments.identifierOrder`, the profile's first identifier of that kind in sorted order (the
  /// smallest), found without sorting them all; null for kinds it has none of.
  func identifierValues(of profile: ProfileID) -> [Value] {
    let kinds = segments.identifierOrder
    var first: [Identifier?] = Array(repeating: nil, count: kinds.count)
    for i in graph.identifiers(of: profile) {
      guard let k = kinds.firstIndex(of: i.kind) else { continue }
      if let f = first[k], !(i < f) { continue }
      first[k] = i
    }
    return first.map { $0.map { .string($0.value) } ?? .null }
  }

  /// The named computed traits of `p` as store rows: the state and its value (from
  /// `values`, `ComputedTraitTable.valueList`), or a null state (delete) for traits that hold nothing.
  /// Static, taking the table: called on `self` from the mutating `evaluate`, a method copied the whole
  /// resolver (a retain of every field) for each profile.
  static func computedRecords(
    of p: ProfileID, _ names: IndexBits, in computed: ComputedTraitTable, value: (Int) -> Value,
    into out: inout [PendingComputed]
  ) {
    let states = computed.states[p]
    // By index: copying each `ComputedTrait` (its compiled expressions) cost more than the rows themselves.
    for i in names.indexes {
      let state = states.flatMap { i < $0.count ? $0[i] : nil }
      out.append(
        PendingComputed(
          profile: p, index: i, trait: computed.names[i], state: state.flatMap { $0.isEmpty ? nil : $0 },
          value: value(i), digest: computed.digests[i]))
    }
  }

  static func record(_ c: SegmentChange) -> SegmentChangeRecord {
    SegmentChangeRecord(
      segment: c.segment, profile: c.profile, entered: c.entered, at: c.time, values: c.values,
      mergedInto: c.mergedInto)
  }

  /// The clock tick: drops buckets that left their windows at `now` (the injected clock, else the high-water
  /// mark) and re-evaluates the segments of the profiles whose values changed. Run at the end of a run.
  public mutating func tick() -> CommitBatch {
    let at = clock(highWater)
    // Per changed profile, the traits that dropped buckets: the rows of the others are already as stored.
    let changed = computed.expiring(now: at)
    var commit = CommitBatch()
    commit.epoch = epoch
    guard !changed.isEmpty else { return commit }
    var segmentChanges: [SegmentChange] = []
    let profiles = Set(changed.keys)
    // Only computed values changed (the traits that dropped buckets).
    let rows = evaluate(profiles, rows: changed, at: at, declared: [:], &segmentChanges)
    commit.computed = rows.map(\.record)
    commit.segmentChanges = segmentChanges.map(Self.record)
    if !router.isEmpty {
      var stats = ResolveStats()
      let names = Set(computed.names)
      commit.outbox = route(
        events: [], computed: Dictionary(uniqueKeysWithValues: profiles.map { ($0, names) }),
        segmentChanges: segmentChanges, at: at, &stats)
      tickWithheld.merge(stats.withheld, uniquingKeysWith: +)
      tickQueued += commit.outbox.count
    }
    return commit
  }
}

/// A changed computed trait waiting to be encoded for the store (off the single writer's path).
struct PendingComputed: Sendable {
  var profile: ProfileID
  /// The trait's index in `ComputedTraitTable.traits`, and its name.
  var index: Int
  var trait: String
  /// nil: the trait holds nothing (the row is deleted).
  var state: ComputedTraitState?
  var value: Value
  /// `ComputedTraitTable.digests` of the trait, kept with the state.
  var digest: String

  var record: ComputedRecord {
    ComputedRecord(profile: profile, trait: trait, storedState: state?.storedText(digest: digest), value: value)
  }
}

/// A changed trait waiting to be encoded for the store.
struct PendingTrait: Sendable {
  var profile: ProfileID
  var trait: String
  var state: TraitState
  var policy: TraitPolicy
}

/// A resolved batch: the store changes and the stats, with changed traits still to be encoded.
public struct ResolvedBatch: Sendable {
  public var commit: CommitBatch
  public var stats: ResolveStats
  var pending: [PendingTrait]
  var pendingComputed: [PendingComputed]
  /// The pending rows hold one row per key, none of a profile the batch's merges absorbed: what one `finish`
  /// (or `settle`) made. Then `finished` writes them as they are; rows gathered from several batches are
  /// reduced to the latest of each key first.
  var pendingIsLatest = true

  init(commit: CommitBatch, stats: ResolveStats, pending: [PendingTrait], pendingComputed: [PendingComputed] = []) {
    self.commit = commit
    self.stats = stats
    self.pending = pending
    self.pendingComputed = pendingComputed
  }

  var hasPending: Bool { !pending.isEmpty || !pendingComputed.isEmpty }

  /// The last row of each (profile, trait), leaving out profiles a merge of the gathered batches absorbed:
  /// what replacing row by row at each `append` would leave, in one pass.
  static func latest<Row, Key: Hashable>(
    _ rows: [Row], absorbed: Set<ProfileID>, profile: (Row) -> ProfileID, key: (Row) -> Key
  ) -> [Row] {
    var seen: Set<Key> = []
    seen.reserveCapacity(rows.count)
    // Positions first, so each kept row is copied once.
    var kept: [Int] = []
    kept.reserveCapacity(rows.count)
    for i in rows.indices.reversed() {
      if absorbed.contains(profile(rows[i])) || !seen.insert(key(rows[i])).inserted { continue }
      kept.append(i)
    }
    return kept.reversed().map { rows[$0] }
  }

  /// The complete `CommitBatch`, traits and computed traits encoded (with the policy's explanation).
  public func finished() -> CommitBatch {
    var c = commit
    let absorbed = pendingIsLatest ? [] : Set(commit.merges.map(\.absorbed))
    let computedRows =
      pendingIsLatest
      ? pendingComputed
      : Self.latest(pendingComputed, absorbed: absorbed, profile: \.profile) {
        ComputedKey(profile: $0.profile, index: $0.index)
      }
    if !computedRows.isEmpty {
      // Rows a tick added directly (already encoded) come after the batch's own.
      c.computed = computedRows.map(\.record) + c.computed
    }
    let traits =
      pendingIsLatest
      ? pending
      : Self.latest(pending, absorbed: absorbed, profile: \.profile) {
        TraitKey(profile: $0.profile, trait: $0.trait)
      }
    c.traits.reserveCapacity(traits.count)
    for t in traits.sorted(by: { ($0.profile, $0.trait) < ($1.profile, $1.trait) }) {
      let s = t.state
      var state = s.encoded
      if case .map(var m) = state {
        m["why"] = .string(t.policy.explain(s))
        state = .map(m)
      }
      c.traits.append(
        TraitRecord(
          profile: t.profile, trait: t.trait, value: s.value, source: s.winner.source, eventID: s.winner.eventID,
          timestamp: s.winner.timestamp, state: state))
    }
    return c
  }

  /// Brings the identifier rows up to the graph's state at the end of the batch, before it is committed.
  ///
  /// An identifier attached to a profile that a later event of the same batch merged away must be written
  /// for the survivor (the store applies merges before identifier rows), and one attached and then released
  /// (expired) within the batch must not be written at all. Without this, the store could show an
  /// identifier on two profiles.
  public mutating func reconcile(with graph: IdentityGraph) {
    var out: [(Identifier, ProfileID, Timestamp)] = []
    out.reserveCapacity(commit.identifiers.count)
    var index: [Identifier: Int] = [:]
    for (i, p, seen) in commit.identifiers {
      let live = graph.canonical(p)
      guard graph.holds(live, i) else { continue }
      if let k = index[i], out[k].1 == live {
        out[k].2 = max(out[k].2, seen)
      } else {
        index[i] = out.count
        out.append((i, live, seen))
      }
    }
    commit.identifiers = out
    // Releases name the live profile (the store applies them after the merges); one whose identifier the
    // graph holds again on that profile was undone by a later event of the batch.
    commit.released = commit.released.compactMap { i, p in
      let live = graph.canonical(p)
      return graph.holds(live, i) ? nil : (i, live)
    }
  }

  /// Appends another resolved batch, for committing several in one transaction.
  public mutating func append(_ o: ResolvedBatch) {
    commit.events += o.commit.events
    commit.newProfiles += o.commit.newProfiles
    commit.identifiers += o.commit.identifiers
    commit.released += o.commit.released
    commit.merges += o.commit.merges
    commit.conflicts += o.commit.conflicts
    commit.rejected += o.commit.rejected
    commit.segmentChanges += o.commit.segmentChanges
    commit.matchLinks += o.commit.matchLinks
    commit.linkStatus += o.commit.linkStatus
    commit.outbox += o.commit.outbox
    commit.journalDone += o.commit.journalDone
    stats.add(o.stats)
    // Changed traits and computed traits are gathered as they come; `finished` keeps the latest of each and
    // drops those of absorbed profiles, once, in the store writer. Rows of one side alone stay the latest
    // unless the other side's merges absorbed some of their profiles.
    if hasPending {
      pendingIsLatest = pendingIsLatest && !o.hasPending && o.commit.merges.isEmpty
    } else {
      pendingIsLatest = o.pendingIsLatest
    }
    pending += o.pending
    pendingComputed += o.pendingComputed
    let absorbed = Set(o.commit.merges.map(\.absorbed))
    commit.computed = Self.replacing(commit.computed, with: o.commit.computed, absorbed: absorbed) {
      TraitKey(profile: $0.profile, trait: $0.trait)
    }
  }

  static func replacing<Row>(_ old: [Row], with new: [Row], absorbed: Set<ProfileID>, key: (Row) -> TraitKey)
    -> [Row]
  {
    if new.isEmpty && absorbed.isEmpty { return old }
    let rewritten = Set(new.map(key))
    return old.filter { !absorbed.contains(key($0).profile) && !rewritten.contains(key($0)) } + new
  }
}

struct TraitKey: Hashable {
  var profile: ProfileID
  var trait: String
}

/// A computed trait of a profile, by the trait's index (hashing an integer instead of the name).
struct ComputedKey: Hashable {
  var profile: ProfileID
  var index: Int
}
