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

/// The identity stage and one profile partition run one after the other on the caller's task: the whole
/// pipeline after decoding, synchronously, for tests, tools and benchmarks that feed batches by hand. The
/// pipeline's graph (`StageGraph`) runs the same two types as separate tasks, with as many partitions as
/// workers.
public struct Resolver: Sendable {
  public private(set) var identity: IdentityResolver
  public private(set) var partition: ProfilePartition
  /// Computed traits that were stored but could not be restored (their declaration changed), by name.
  public let unrestoredComputed: Set<String>

  /// `computed` and `memberships` restore the computed-trait states and segment memberships a store holds.
  /// `now` is the injected clock (see `IdentityResolver.now`).
  public init(
    config: PipelineConfig, identity: IdentitySnapshot = IdentitySnapshot(), traits: [TraitRecord] = [],
    computed: [ComputedRecord] = [], memberships: [MembershipRecord] = [], now: Timestamp? = nil,
    separations: [Separation] = [], suppressed: Set<String> = []
  ) {
    let restored = RestoredState(
      config: config, traits: traits, computed: computed, memberships: memberships, identity: identity)
    self.init(
      config: config,
      state: PipelineState(identity: identity, restored: restored, separations: separations, suppressed: suppressed),
      now: now)
  }

  /// From the state a store holds (`PipelineState.load`).
  public init(config: PipelineConfig, state: PipelineState, now: Timestamp?) {
    var identity = IdentityResolver(
      config: config, identity: state.identity, traits: state.restored.traits, now: now,
      separations: state.separations, suppressed: state.suppressed, sightings: state.sightings, partitions: 1)
    identity.epoch = state.epoch
    self.identity = identity
    self.partition = ProfilePartition(index: 0, of: 1, config: config, restored: state.restored)
    self.unrestoredComputed = state.restored.unrestoredComputed
  }

  public var graph: IdentityGraph { identity.graph }
  public var matcher: StreamingMatcher { identity.matcher }
  public var now: Timestamp? {
    get { identity.now }
    set { identity.now = newValue }
  }
  /// Trait summaries of every live profile.
  public var profiles: [ProfileID: TraitStates] { partition.profiles }
  /// Every profile's computed-trait states.
  public var computed: ComputedTraitTable { partition.computed }
  /// Every profile's segment memberships.
  public var segments: SegmentEngine { partition.segments }

  /// Resolves a batch into the open transaction; returns what resolution did to it.
  @discardableResult
  public mutating func resolve(_ batch: MappedBatch, stored: Set<EventKey>) -> ResolveStats {
    var stats = identity.resolve(batch, stored: stored)
    stats.rejected = batch.rejected.count
    pendingRejected += batch.rejected
    return stats
  }
  var pendingRejected: [RejectedRecord] = []

  /// Ends the open transaction: everything it changed, settled, as one `CommitBatch`.
  public mutating func cut() -> CommitBatch {
    let (id, batches) = identity.cut()
    var part = ProfilePart(cut: id.cut, partition: 0)
    var handoffs: [UInt64: ProfilePartition.Handoff] = [:]
    for op in batches[0].ops { partition.run(op, into: &part, handoffs: &handoffs) }
    var commit = CommitAssembly.assemble(id, [part])
    commit.rejected = pendingRejected
    pendingRejected = []
    return commit
  }

  /// Resolves and unifies a batch as a transaction of its own.
  public mutating func apply(_ batch: MappedBatch, stored: Set<EventKey>) -> (CommitBatch, ResolveStats) {
    var stats = resolve(batch, stored: stored)
    let commit = cut()
    stats.queued = commit.outbox.count
    return (commit, stats)
  }

  /// The clock tick as a transaction of its own: windows expired at the clock, the profiles whose values fell
  /// re-evaluated.
  public mutating func tick() -> CommitBatch {
    identity.tick()
    return cut()
  }

  /// Merges the profile pairs reviewers confirmed, as a transaction of its own.
  public mutating func applyConfirmed(_ links: [MatchLinkRecord], at: Timestamp) -> CommitBatch {
    identity.decide(links, at: at)
    return cut()
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
}

/// Everything resolution needs from a store, read once: the identity graph, trait summaries, computed traits,
/// memberships, separations, suppressions, and the epoch they were read at. `tessera run`, `tessera serve`,
/// replays and dry runs all start from it.
public struct PipelineState: Sendable {
  public var identity: IdentitySnapshot
  public var restored: RestoredState
  public var separations: [Separation]
  public var suppressed: Set<String>
  /// Profiles' recent device-signal sightings (read only when a rule compares device signals).
  public var sightings: [SightingRecord]
  public var epoch: Int64?

  public init(
    identity: IdentitySnapshot = IdentitySnapshot(), restored: RestoredState = RestoredState(),
    separations: [Separation] = [], suppressed: Set<String> = [], sightings: [SightingRecord] = [],
    epoch: Int64? = nil
  ) {
    self.identity = identity
    self.restored = restored
    self.separations = separations
    self.suppressed = suppressed
    self.sightings = sightings
    self.epoch = epoch
  }

  /// Reads the state of `store`. The epoch first: a change after it and before the reads makes the first
  /// commit stale, never silently lost.
  public static func load(config: PipelineConfig, from store: any Store) async throws -> PipelineState {
    let epoch = try await store.epoch()
    let identity = try await store.loadIdentity()
    let restored = RestoredState(
      config: config, traits: try await store.loadTraits(), computed: try await store.loadComputed(),
      memberships: try await store.loadMemberships(), identity: identity)
    let readsSignals = config.probabilistic.contains { $0.signals != nil }
    return PipelineState(
      identity: identity, restored: restored, separations: try await store.loadSeparations(),
      suppressed: try await store.loadSuppressions(), sightings: readsSignals ? try await store.loadSightings() : [],
      epoch: epoch)
  }
}

extension Resolver {
  /// A resolver holding the state a store has.
  public static func restored(config: PipelineConfig, from store: any Store, now: Timestamp?) async throws -> Resolver {
    Resolver(config: config, state: try await PipelineState.load(config: config, from: store), now: now)
  }
}

extension SegmentChange {
  /// The change as the store logs it.
  var record: SegmentChangeRecord {
    SegmentChangeRecord(
      segment: segment, profile: profile, entered: entered, at: time, values: values, mergedInto: mergedInto)
  }
}
