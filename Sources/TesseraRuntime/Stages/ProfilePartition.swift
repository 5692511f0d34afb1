import TesseraCompiler
import TesseraIdentity
import TesseraModel
import TesseraStore

/// The state and work of one partition of the profile stage: everything after identity resolution for the
/// profiles whose id falls in the partition (`ProfilePartition.of`) — unification of traits under their
/// precedence policies, computed traits, segment memberships, routing to destinations, and encoding the
/// changed rows for the store.
///
/// A partition sees its profiles' events in the order the identity stage resolved them (`ProfileOp`). When a
/// merge joins profiles of two partitions, the absorbed profile's partition gives its state away (`give`) and
/// the survivor's takes it (`take`) before going on, so every profile's state is always in exactly one
/// partition and the result does not depend on the number of partitions. At the end of a store transaction
/// (`settle`) each profile touched since the last one is evaluated once, in profile order.
public struct ProfilePartition: Sendable {
  /// Which partition a live profile's state lives in.
  public static func of(_ profile: ProfileID, among count: Int) -> Int {
    count <= 1 ? 0 : Int(UInt64(bitPattern: profile.raw) % UInt64(count))
  }

  public let index: Int
  /// Trait summaries of the partition's live profiles.
  public private(set) var profiles: [ProfileID: TraitStates] = [:]
  public private(set) var computed: ComputedTraitTable
  public private(set) var segments: SegmentEngine
  /// The identifiers of the partition's profiles, as the identity stage last reported them (kept only when
  /// segments or payloads may read them).
  var identifiers: [ProfileID: [Identifier]] = [:]
  let policies: PipelinePolicies
  let router: DestinationRouter
  /// What each profile touched since the last settle needs done at the next one.
  var pending: [ProfileID: Pending] = [:]
  /// Numbers the outbox rows of a transaction.
  var step = 0
  /// Numbers the settles of a transaction (`ProfilePart.Section.phase`).
  var phase = 0

  struct Pending: Sendable {
    /// Declared traits written (their rows are rewritten).
    var traits: Set<String> = []
    /// Computed traits whose state changed.
    var computed: IndexBits?
    /// A merge changed the profile wholesale: every trait row is rewritten and every segment evaluated.
    var wholly = false
    /// Flips decided before the settle (exits of profiles merged into this one), in order.
    var segmentChanges: [SegmentChange] = []
    /// The profile's events, with their position in the transaction (for `events` destinations).
    var events: [(index: Int, event: StoredEvent)] = []
    /// Visible trait values that changed (for `profile_changes` destinations).
    var changed: Set<String> = []
    var consent: [ConsentChange] = []
    /// Profiles merged into this one (a `profile_changes` table drops their rows).
    var absorbed: [ProfileID] = []

    mutating func absorb(_ o: Pending) {
      traits.formUnion(o.traits)
      segmentChanges += o.segmentChanges
      events += o.events
      changed.formUnion(o.changed)
      consent += o.consent
      absorbed += o.absorbed
    }
  }

  /// What a partition hands over when a profile it holds is merged into one of another partition.
  public struct Handoff: Sendable {
    var traits: TraitStates?
    var computed: [ComputedTraitState]?
    var pending: Pending?
  }

  /// A partition holding `restored`'s profiles that fall in it.
  public init(index: Int, of count: Int, config: PipelineConfig, restored: RestoredState) {
    self.index = index
    var table = ComputedTraitTable(config: config)
    let router = DestinationRouter(config: config)
    table.keepsExpiredSamples = router.wantsProfileChanges
    let mine = { (p: ProfileID) in Self.of(p, among: count) == index }
    for (p, states) in restored.computed where mine(p) { table.restore(p, states: states) }
    self.computed = table
    var members: [ProfileID: Set<String>] = [:]
    for (p, set) in restored.memberships where mine(p) { members[p] = set }
    self.segments = SegmentEngine(config: config, memberships: members)
    self.policies = PipelinePolicies(config: config)
    self.router = router
    for (p, traits) in restored.traits where mine(p) { profiles[p] = traits }
    if Self.needsIdentifiers(config) {
      for (p, ids) in restored.identifiers where mine(p) { identifiers[p] = ids }
    }
  }

  /// Whether segment conditions or destination payloads may read a profile's identifiers (then the identity
  /// stage reports them to the partitions).
  public static func needsIdentifiers(_ config: PipelineConfig) -> Bool {
    !config.destinations.isEmpty || SegmentEngine(config: config).readsIdentifiers
  }

  /// Consent (`consent.PURPOSE`) is always the most recent decision; other traits follow their declaration.
  public func policy(for trait: String) -> TraitPolicy {
    policies.policy(for: trait)
  }

  var evaluating: Bool { !segments.names.isEmpty }

  // MARK: the work, op by op

  /// An event resolved to `profile`: its traits, its computed-trait contributions, and what the settle must
  /// look at. `index` is its position in the store transaction.
  public mutating func add(_ event: Event, index: Int, profile p: ProfileID, clock: Timestamp) {
    let traits = event.traits.contains { !$0.value.isNull }
    guard traits || !computed.traits.isEmpty || evaluating || router.wantsEvents else { return }
    var pend = pending.removeValue(forKey: p) ?? Pending()
    var keep = evaluating || router.wantsEvents
    if traits {
      for (trait, value) in event.traits where !value.isNull {
        let o = Observation(value: value, source: event.source, eventID: event.id, timestamp: event.timestamp)
        let policy = policy(for: trait)
        let old = profiles[p]?[trait]
        let updated = policy.add(o, to: old)
        profiles[p, default: [:]][trait] = updated
        pend.traits.insert(trait)
        if !router.isEmpty, old?.value != updated.value {
          noteChange(&pend, p, trait, before: old?.value, after: updated.value)
        }
      }
      keep = true
    }
    if !computed.traits.isEmpty {
      let changed = computed.contribute(event, to: p, now: clock)
      if !changed.isEmpty {
        if pend.computed == nil { pend.computed = changed } else { pend.computed?.formUnion(changed) }
        keep = true
      }
    }
    if router.wantsEvents { pend.events.append((index, StoredEvent(event: event, profile: p))) }
    // A profile with nothing to settle (no trait, no computed trait, no segment, no destination) is left out.
    if keep { pending[p] = pend }
  }

  /// The identifiers `profile` holds now.
  public mutating func setIdentifiers(_ profile: ProfileID, _ ids: [Identifier]) {
    identifiers[profile] = ids.isEmpty ? nil : ids
  }

  /// Hands the absorbed profile of `m` over to the survivor's partition: its state and what is pending for
  /// it; it exits its segments now (the exits travel with it and are routed by the survivor's partition).
  public mutating func give(_ m: MergeRecord, clock: Timestamp) -> Handoff {
    var h = Handoff()
    h.traits = profiles.removeValue(forKey: m.absorbed)
    h.computed = computed.take(m.absorbed)
    var pend = pending.removeValue(forKey: m.absorbed) ?? Pending()
    if evaluating { pend.segmentChanges += segments.end(m.absorbed, now: clock, mergedInto: m.survivor) }
    pend.absorbed.append(m.absorbed)
    h.pending = pend
    identifiers[m.absorbed] = nil
    return h
  }

  /// Merges a handed-over profile into the survivor of `m`, which lives here: traits by their policies,
  /// computed traits as if all the events had been the survivor's; the survivor is settled wholly.
  public mutating func take(_ m: MergeRecord, _ h: Handoff) {
    var pend = pending.removeValue(forKey: m.survivor) ?? Pending()
    if let absorbed = h.traits {
      for (trait, state) in absorbed {
        let old = profiles[m.survivor]?[trait]
        let merged = policy(for: trait).merge(old, state)
        profiles[m.survivor, default: [:]][trait] = merged
        if !router.isEmpty, old?.value != merged.value {
          noteChange(&pend, m.survivor, trait, before: old?.value, after: merged.value)
        }
      }
    }
    if let states = h.computed { computed.adopt(states, into: m.survivor) }
    if let moved = h.pending { pend.absorb(moved) }
    pend.wholly = true
    pending[m.survivor] = pend
  }

  /// A merge of two profiles of this partition.
  public mutating func merge(_ m: MergeRecord, clock: Timestamp) {
    guard m.absorbed != m.survivor else { return }
    take(m, give(m, clock: clock))
  }

  /// Remembers a visible trait change for profile-change destinations and consent flips for all.
  func noteChange(_ pend: inout Pending, _ p: ProfileID, _ trait: String, before: Value?, after: Value) {
    if router.wantsProfileChanges { pend.changed.insert(trait) }
    if trait.hasPrefix("consent."), router.purposes.contains(String(trait.dropFirst(8))) {
      let was = before == .bool(true)
      let now = after == .bool(true)
      if was != now {
        pend.consent.append(ConsentChange(profile: p, purpose: String(trait.dropFirst(8)), granted: now))
      }
    }
  }

  /// Runs one op. Hand-overs between partitions go through `handoffs` (in the stage, the survivor's partition
  /// waits for the absorbed one's); here they must already be there, as they are when every partition's ops
  /// run on one task in the order the identity stage wrote them.
  mutating func run(_ op: ProfileOp, into part: inout ProfilePart, handoffs: inout [UInt64: Handoff]) {
    switch op {
    case .event(let e, let index, let p, let clock): add(e, index: index, profile: p, clock: clock)
    case .identifiers(let p, let ids): setIdentifiers(p, ids)
    case .merge(let m, let clock): merge(m, clock: clock)
    case .give(let m, let h, let clock): handoffs[h] = give(m, clock: clock)
    case .take(let m, let h, _): take(m, handoffs.removeValue(forKey: h) ?? Handoff())
    case .tick(let clock): tick(at: clock, into: &part)
    case .cut(_, let clock):
      settle(at: clock, into: &part)
      phase = 0
      step = 0
    }
  }

  // MARK: the end of a transaction

  /// Settles every profile touched since the last settle at `at`, in profile order, into `part`: changed trait
  /// and computed-trait rows, segment changes, outbox rows.
  public mutating func settle(at: Timestamp, into part: inout ProfilePart) {
    phase += 1
    guard !pending.isEmpty else { return }
    let work = pending
    pending = [:]
    for p in work.keys.sorted() {
      guard let pend = work[p] else { continue }
      settle(p, pend, at: at, tick: nil, into: &part)
    }
  }

  /// The clock tick: drops window buckets that left their windows at `at` and settles the profiles whose values
  /// fell (their computed rows and segments; `profile_changes` destinations hear of every computed trait).
  /// Settles what was pending first, as its own step.
  public mutating func tick(at: Timestamp, into part: inout ProfilePart) {
    settle(at: at, into: &part)
    phase += 1
    let changed = computed.expiring(now: at)
    for p in changed.keys.sorted() {
      guard let bits = changed[p] else { continue }
      var pend = Pending()
      pend.computed = bits
      if router.wantsProfileChanges { pend.changed = Set(computed.names) }
      settle(p, pend, at: at, tick: bits, into: &part)
    }
  }

  mutating func settle(_ p: ProfileID, _ pend: Pending, at: Timestamp, tick: IndexBits?, into part: inout ProfilePart) {
    var section = ProfilePart.Section(phase: phase, profile: p)
    defer {
      if !section.traits.isEmpty || !section.computed.isEmpty || !section.segmentChanges.isEmpty {
        part.sections.append(section)
      }
    }
    let traits = profiles[p] ?? [:]
    // Trait rows: every trait after a merge, else those written.
    let names = pend.wholly ? Array(traits.keys) : Array(pend.traits)
    for t in names.sorted() {
      guard let s = traits[t] else { continue }
      // The winner is the row's own value, source, event id and timestamp: the summary leaves it out. Why it
      // won is told by readers from the store's trait policies (`TraitRecord.why`), not stored with each row.
      let state = s.encodedWithoutWinner
      section.traits.append(
        TraitRecord(
          profile: p, trait: t, value: s.value, source: s.winner.source, eventID: s.winner.eventID,
          timestamp: s.winner.timestamp, state: state
        ).encodedForStore())
    }
    // Computed values at `at`, each worked out when first read.
    let table = computed
    let states = table.states[p]
    var values = [Value?](repeating: nil, count: table.names.count)
    func value(_ k: Int) -> Value {
      if let v = values[k] { return v }
      let v = states.map { k < $0.count ? $0[k].value(at: at) : table.emptyValue(k) } ?? table.emptyValue(k)
      values[k] = v
      return v
    }
    var changes = pend.segmentChanges
    if evaluating {
      let order = segments.traitOrder
      let computedCount = table.names.count
      let declaredCount = order.count - computedCount
      let ids = segments.readsIdentifiers ? identifierValues(of: p) : []
      var changed: IndexBits?
      if !pend.wholly {
        var bits = IndexBits(count: order.count)
        for name in pend.traits {
          for n in segments.traitPositions[name] ?? [] where n < declaredCount { bits.set(n, true) }
        }
        for k in pend.computed?.indexes ?? [] { bits.set(declaredCount + k, true) }
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
          return traits[order[n]]?.value ?? .null
        },
        identifier: { $0 < ids.count ? ids[$0] : .null })
    }
    let rows = pend.wholly && !table.names.isEmpty ? table.all : (tick ?? pend.computed)
    if let rows {
      for i in rows.indexes {
        let state = states.flatMap { i < $0.count && !$0[i].isEmpty ? $0[i] : nil }
        section.computed.append(
          ComputedRecord(
            profile: p, trait: table.names[i], storedState: state?.storedText(digest: table.digests[i]),
            value: value(i)))
      }
    }
    section.segmentChanges += changes.map(\.record)
    guard !router.isEmpty else { return }
    var changedNames = pend.changed
    if router.wantsProfileChanges, let c = pend.wholly && !table.names.isEmpty ? table.all : pend.computed {
      for i in c.indexes { changedNames.insert(table.names[i]) }
    }
    let input = DestinationRouter.Changes(
      profile: p, segmentChanges: changes, consent: pend.consent, changed: changedNames, events: pend.events,
      absorbed: pend.absorbed)
    var step = self.step
    route(input, at: at, step: &step, into: &part)
    self.step = step
  }

  /// The outbox rows of one profile's changes (`DestinationRouter`), read against this partition.
  func route(_ input: DestinationRouter.Changes, at: Timestamp, step: inout Int, into part: inout ProfilePart) {
    let view = DestinationRouter.View(
      state: { payloadState(of: $0, at: at) },
      consents: { p, purpose in profiles[p]?["consent." + purpose]?.value == .bool(true) },
      isMember: { segments.isMember($0, of: $1) })
    let before = part.outbox.count
    router.route(input, at: at, view: view, step: &step, withheld: &part.stats.withheld, into: &part.outbox)
    part.stats.queued += part.outbox.count - before
  }

  /// Per kind of `segments.identifierOrder`, the profile's first identifier of that kind in sorted order.
  func identifierValues(of profile: ProfileID) -> [Value] {
    let kinds = segments.identifierOrder
    var first: [Identifier?] = Array(repeating: nil, count: kinds.count)
    for i in identifiers[profile] ?? [] {
      guard let k = kinds.firstIndex(of: i.kind) else { continue }
      if let f = first[k], !(i < f) { continue }
      first[k] = i
    }
    return first.map { $0.map { .string($0.value) } ?? .null }
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
    for i in (identifiers[p] ?? []).sorted() where ids[i.kind] == nil { ids[i.kind] = .string(i.value) }
    s.fields["identifiers"] = ids
    var member: [String: Value] = [:]
    for name in segments.segments(of: p) { member[name] = .bool(true) }
    s.fields["segments"] = member
    return s
  }
}

/// What a store holds, read once and handed to the stages that restore from it.
public struct RestoredState: Sendable {
  public var traits: [ProfileID: TraitStates] = [:]
  public var computed: [ProfileID: [ComputedTraitState]] = [:]
  public var memberships: [ProfileID: Set<String>] = [:]
  public var identifiers: [ProfileID: [Identifier]] = [:]
  /// Computed traits whose stored states belong to another declaration: they restart empty.
  public var unrestoredComputed: Set<String> = []

  public init() {}

  public init(
    config: PipelineConfig, traits: [TraitRecord], computed: [ComputedRecord], memberships: [MembershipRecord],
    identity: IdentitySnapshot
  ) {
    for t in traits {
      let winner = Observation(value: t.value, source: t.source, eventID: t.eventID, timestamp: t.timestamp)
      guard let state = TraitState(encoded: t.state, winner: winner) else { continue }
      self.traits[t.profile, default: [:]][t.trait] = state
    }
    var table = ComputedTraitTable(config: config)
    var encoded: [ProfileID: [String: Value]] = [:]
    // A state that does not read back restores as nothing: the trait is reported in `unrestoredComputed`.
    for c in computed { encoded[c.profile, default: [:]][c.trait] = (try? c.state()) ?? .null }
    var failed: Set<String> = []
    for (p, states) in encoded {
      failed.formUnion(table.restore(p, encoded: states))
      if let s = table.states[p] { self.computed[p] = s }
    }
    unrestoredComputed = failed
    for m in memberships { self.memberships[m.profile, default: []].insert(m.segment) }
    for (p, ids) in identity.profiles { identifiers[p] = ids.map(\.0) }
  }
}
