import TesseraIdentity
import TesseraModel

/// The state of one trait on one profile: the visible value with its provenance, and the policy's
/// summary of every observation (enough to re-apply the policy when profiles merge or on restart).
public struct TraitRecord: Sendable, Hashable {
  public var profile: ProfileID
  public var trait: String
  public var value: Value
  public var source: String
  public var eventID: String
  public var timestamp: Timestamp
  /// The policy's summary, opaque to the store.
  public var state: Value

  public init(
    profile: ProfileID, trait: String, value: Value, source: String, eventID: String, timestamp: Timestamp,
    state: Value
  ) {
    self.profile = profile
    self.trait = trait
    self.value = value
    self.source = source
    self.eventID = eventID
    self.timestamp = timestamp
    self.state = state
  }
}

/// A record a source could not turn into an event, kept with the reason.
public struct RejectedRecord: Sendable, Hashable {
  public var source: String
  /// 1-based line (or record number) in the source file; nil for records without one.
  public var line: Int?
  public var record: String
  public var reason: String
  public var at: Timestamp

  public init(source: String, line: Int?, record: String, reason: String, at: Timestamp) {
    self.source = source
    self.line = line
    self.record = record
    self.reason = reason
    self.at = at
  }
}

/// An event as stored: the event and the profile it was resolved to when it arrived.
public struct StoredEvent: Sendable, Hashable {
  public var event: Event
  public var profile: ProfileID
  public init(event: Event, profile: ProfileID) {
    self.event = event
    self.profile = profile
  }
}

/// One profile's state of one computed trait: the engine's encoded state (opaque to the store) and the value
/// it gave when it was written. A `state` of `.null` deletes the row (every contribution expired).
public struct ComputedRecord: Sendable, Hashable {
  public var profile: ProfileID
  public var trait: String
  /// The state in its stored form (`StoredValue`'s JSON text), as the SQLite and PostgreSQL stores keep it;
  /// nil when the trait holds nothing (the row is deleted). The resolver writes this text straight from its
  /// aggregate states: building a `Value` tree per changed trait first cost a tenth of a run with segments.
  public var storedState: String?
  public var value: Value

  public init(profile: ProfileID, trait: String, storedState: String?, value: Value) {
    self.profile = profile
    self.trait = trait
    self.storedState = storedState
    self.value = value
  }

  /// From a state value; `.null` deletes the row.
  public init(profile: ProfileID, trait: String, state: Value, value: Value) {
    self.init(profile: profile, trait: trait, storedState: state.isNull ? nil : StoredValue.encode(state), value: value)
  }

  /// The state read back; `.null` when there is none. Throws `StoreError.corrupt` when the text does not parse.
  public func state() throws -> Value { try storedState.map(StoredValue.decode) ?? .null }

  /// Equal when profile, trait and value are, and the states read back the same (the text's key order is free).
  public static func == (a: ComputedRecord, b: ComputedRecord) -> Bool {
    guard a.profile == b.profile, a.trait == b.trait, a.value == b.value else { return false }
    if a.storedState == b.storedState { return true }
    guard let x = try? a.state(), let y = try? b.state() else { return false }
    return x == y
  }

  public func hash(into h: inout Hasher) {
    h.combine(profile)
    h.combine(trait)
    h.combine(value)
  }
}

/// A profile entering or leaving a segment, as the store logs it. Applied in order: `entered` adds the
/// membership (since `at`), `exited` removes it.
public struct SegmentChangeRecord: Sendable, Hashable {
  public var segment: String
  public var profile: ProfileID
  public var entered: Bool
  public var at: Timestamp
  /// What the condition read when it decided (`traits.orders_90d` → value); empty for exits caused by merges.
  public var values: [String: Value]
  /// Set on the exits of a profile absorbed by a merge.
  public var mergedInto: ProfileID?

  public init(
    segment: String, profile: ProfileID, entered: Bool, at: Timestamp, values: [String: Value] = [:],
    mergedInto: ProfileID? = nil
  ) {
    self.segment = segment
    self.profile = profile
    self.entered = entered
    self.at = at
    self.values = values
    self.mergedInto = mergedInto
  }
}

/// A stored segment membership.
public struct MembershipRecord: Sendable, Hashable {
  public var segment: String
  public var profile: ProfileID
  /// When the profile entered the segment.
  public var since: Timestamp

  public init(segment: String, profile: ProfileID, since: Timestamp) {
    self.segment = segment
    self.profile = profile
    self.since = since
  }
}

/// Everything one batch of the single writer changes, committed atomically.
/// A probabilistic match decided while streaming: a join, a candidate link for a person to review, or a join
/// the limits refused; and what a reviewer decided.
public struct MatchLinkRecord: Sendable, Hashable {
  public enum Status: String, Sendable, CaseIterable {
    /// The event joined `candidate` (at or above `merge`); `profile` is the same profile.
    case joined
    /// Between `review` and `merge`: `profile` (created for the event) may be `candidate`.
    case review
    /// A reviewer said they are one person; the next run merges them.
    case confirmed
    /// A reviewer said they are not; the pair is never proposed again.
    case rejected
    /// A confirmed link that a run has merged.
    case merged
    /// At or above `merge`, but joining would break an identifier limit or `max_cluster_size`.
    case refused
  }

  /// 0 until stored; then the store's id (`tessera review confirm ID`).
  public var id: Int64
  public var rule: String
  public var profile: ProfileID
  public var candidate: ProfileID
  public var eventID: String
  public var probability: Double
  public var weight: Double
  public var status: Status
  public var reason: String
  public var at: Timestamp

  public init(
    id: Int64 = 0, rule: String, profile: ProfileID, candidate: ProfileID, eventID: String, probability: Double,
    weight: Double, status: Status, reason: String = "", at: Timestamp
  ) {
    self.id = id
    self.rule = rule
    self.profile = profile
    self.candidate = candidate
    self.eventID = eventID
    self.probability = probability
    self.weight = weight
    self.status = status
    self.reason = reason
    self.at = at
  }
}

/// What a deletion removed, table by table.
public struct DeletionReport: Sendable, Hashable {
  public var profiles = 0
  public var events = 0
  public var identifiers = 0
  public var traits = 0
  public var computed = 0
  public var memberships = 0
  public var segmentChanges = 0
  public var merges = 0
  public var conflicts = 0
  public var matchLinks = 0
  public var rejected = 0
  /// Outbox rows waiting for destinations (unsent, retrying or dead-lettered).
  public var deliveries = 0
  public init() {}
}

/// Everything derived from the event log, as a replay computed it: replaces the store's profiles, aliases,
/// identifiers, traits, computed traits, memberships and each event's profile in one transaction; merges and
/// conflicts (the replay's record of what changed) are appended to the logs.
public struct DerivedState: Sendable {
  public var profiles: [(ProfileID, Timestamp)] = []
  public var aliases: [(absorbed: ProfileID, survivor: ProfileID)] = []
  public var identifiers: [(Identifier, ProfileID, Timestamp)] = []
  public var traits: [TraitRecord] = []
  public var computed: [ComputedRecord] = []
  public var memberships: [MembershipRecord] = []
  public var eventProfiles: [(EventKey, ProfileID)] = []
  public var merges: [MergeRecord] = []
  public var conflicts: [ConflictRecord] = []
  public init() {}
}

public struct CommitBatch: Sendable {
  public var events: [StoredEvent] = []
  /// `StoredValue.encodeBody` of each of `events`, in order, when the pipeline encoded them before the store
  /// writer (`encodeBodies()`, on the stage that also encodes trait states); empty: the store encodes them.
  public var eventBodies: [String] = []
  public var newProfiles: [(ProfileID, Timestamp)] = []
  /// Identifiers to insert or move to a profile, with when they were last seen.
  public var identifiers: [(Identifier, ProfileID, Timestamp)] = []
  /// Applied in order: the absorbed profile's identifiers, traits and events move to the survivor.
  public var merges: [MergeRecord] = []
  /// Identifiers released (expired) from a profile; applied after the merges, so a release names the live
  /// profile at the end of the batch.
  public var released: [(Identifier, ProfileID)] = []
  public var conflicts: [ConflictRecord] = []
  /// Trait states to upsert, after the merges.
  public var traits: [TraitRecord] = []
  /// Computed-trait states to upsert (or delete, when `state` is null), after the merges.
  public var computed: [ComputedRecord] = []
  /// Segment changes, applied to the memberships in order after the merges, and logged.
  public var segmentChanges: [SegmentChangeRecord] = []
  public var rejected: [RejectedRecord] = []
  /// Probabilistic decisions to log (new rows), and status changes of logged ones (by id), applied last.
  public var matchLinks: [MatchLinkRecord] = []
  public var linkStatus: [(id: Int64, status: MatchLinkRecord.Status)] = []
  /// Identifier pairs a person separated (`tessera unmerge`), kept for every later run.
  public var separations: [[Identifier]] = []
  /// Changes for destinations, written with the state that caused them (the durable outbox).
  public var outbox: [OutboxRecord] = []
  /// Journal entries this batch resolved, so each is resolved once: they leave the journal in the same
  /// transaction. The writer resolves the journal in order; SQLite records the largest as a cursor.
  public var journalDone: [Int64] = []
  /// The store's epoch the writer's state was read at; when set and the store's is another, the commit is
  /// refused with `StoreError.stale` and nothing is written (see `Store.epoch()`).
  public var epoch: Int64?

  public init() {}
  public var isEmpty: Bool {
    events.isEmpty && newProfiles.isEmpty && identifiers.isEmpty && released.isEmpty && merges.isEmpty
      && conflicts.isEmpty && traits.isEmpty && computed.isEmpty && segmentChanges.isEmpty && rejected.isEmpty
      && matchLinks.isEmpty && linkStatus.isEmpty && separations.isEmpty && outbox.isEmpty && journalDone.isEmpty
  }

  /// Encodes the events' bodies ahead of the store writer (`eventBodies`).
  public mutating func encodeBodies() { eventBodies = events.map { StoredValue.encodeBody($0.event) } }

  /// The body of `events[i]`: encoded ahead when `eventBodies` matches the events, else now.
  public func body(_ i: Int) -> String {
    eventBodies.count == events.count ? eventBodies[i] : StoredValue.encodeBody(events[i].event)
  }
}

/// Counts of what a store holds.
public struct StoreStats: Sendable, Hashable {
  public var events = 0
  public var profiles = 0
  public var identifiers = 0
  public var merges = 0
  public var conflicts = 0
  public var rejected = 0
  public init() {}
}

/// Identity state as saved: live profiles with their identifiers, and aliases of absorbed profiles.
public struct IdentitySnapshot: Sendable {
  public var profiles: [(ProfileID, [(Identifier, Timestamp)])] = []
  public var aliases: [(absorbed: ProfileID, survivor: ProfileID)] = []
  public init() {}

  /// Rebuilds the in-memory graph from the snapshot.
  public func graph(rules: [String: KindRule]) -> IdentityGraph {
    var g = IdentityGraph(rules: rules)
    for (p, ids) in profiles { g.restore(profile: p, identifiers: ids) }
    for a in aliases { g.restoreAlias(a.absorbed, into: a.survivor) }
    return g
  }
}

/// Where Tessera keeps its state. The event log is the truth; profiles, identifiers and traits are derived
/// from it and written in the same transaction as the events that caused them.
public protocol Store: Sendable {
  /// Which of these (source, event id) pairs are already stored.
  func existingEvents(_ keys: [EventKey]) async throws -> Set<EventKey>
  /// Writes one batch atomically: all of it or nothing.
  func commit(_ batch: CommitBatch) async throws
  func loadIdentity() async throws -> IdentitySnapshot
  func loadTraits() async throws -> [TraitRecord]
  /// Every computed-trait state, by profile then trait.
  func loadComputed() async throws -> [ComputedRecord]
  /// Every segment membership, by segment then profile.
  func loadMemberships() async throws -> [MembershipRecord]
  /// A segment's members, in profile order.
  func members(of segment: String) async throws -> [MembershipRecord]
  /// Member counts of every segment with at least one member.
  func segmentCounts() async throws -> [String: Int]
  /// The computed-trait states of the live profile of `profile`, by trait.
  func computed(of profile: ProfileID) async throws -> [ComputedRecord]
  /// The segments the live profile of `profile` is in, by segment name.
  func memberships(of profile: ProfileID) async throws -> [MembershipRecord]
  /// Logged segment changes of a segment, oldest first (at most `limit`).
  func segmentChanges(of segment: String, limit: Int) async throws -> [SegmentChangeRecord]

  /// The live profile an identifier belongs to.
  func profile(for identifier: Identifier) async throws -> ProfileID?
  /// The live profile an id resolves to (following merges); nil when unknown.
  func canonical(_ id: ProfileID) async throws -> ProfileID?
  func identifiers(of profile: ProfileID) async throws -> [(Identifier, Timestamp)]
  func traits(of profile: ProfileID) async throws -> [TraitRecord]
  /// Merges in which the profile (or a profile merged into it) took part, oldest first.
  func merges(involving profile: ProfileID) async throws -> [MergeRecord]
  func conflicts(involving profile: ProfileID) async throws -> [ConflictRecord]
  /// The profile's events (including those of profiles merged into it), newest first.
  func events(of profile: ProfileID, limit: Int) async throws -> [StoredEvent]
  /// The whole event log in the order it was written (what `tessera replay` re-resolves).
  func loadEvents() async throws -> [StoredEvent]
  /// The identifier pairs people separated, each sorted.
  func loadSeparations() async throws -> [[Identifier]]
  /// Erases a person: the live profile of `profile` and every profile merged into it, with their events,
  /// identifiers, traits, computed traits, memberships, segment-change log, merges, conflicts and match links,
  /// and rejected records whose text holds one of `values`; adds `suppress` (hashes of their identifiers) to
  /// the suppression list, so later events carrying them are dropped at the door. Their rows waiting in the
  /// outbox go too, and `notices` (deletion notices for destinations) are queued in the same transaction.
  func erase(profile: ProfileID, values: [String], suppress: [String], notices: [OutboxRecord]) async throws
    -> DeletionReport
  /// The hashes of suppressed identifiers (`Suppression.hash`).
  func loadSuppressions() async throws -> Set<String>
  /// Replaces everything derived from the event log at once (`tessera replay` without `--dry-run`).
  func replaceDerivedState(_ state: DerivedState) async throws
  func rejected(limit: Int) async throws -> [RejectedRecord]
  /// Logged probabilistic decisions, oldest first; only those with `status` when given.
  func matchLinks(status: MatchLinkRecord.Status?, limit: Int) async throws -> [MatchLinkRecord]
  func stats() async throws -> StoreStats

  // MARK: the outbox (destinations)

  /// Adds rows to the outbox outside a pipeline commit (deletion notices).
  func enqueue(_ rows: [OutboxRecord]) async throws
  /// The next batch for a destination: a batch due for another attempt (or whose worker's lease ran out),
  /// else a new one of the oldest rows not in a batch — when there are `maxItems`, `maxBytes` of them, the
  /// oldest has waited `maxWait`, or `flush`. The batch is `sending` until the lease ends. Nil: nothing due.
  func claimBatch(_ claim: BatchClaim) async throws -> (DeliveryBatchRecord, [OutboxRecord])?
  /// Records an attempt's result. Delivered: the batch's rows leave the outbox; retry: pending until `next`;
  /// dead: a dead letter, its rows kept for `requeueDead`.
  func finishBatch(_ id: Int64, _ result: DeliveryResult) async throws
  /// Batches, newest first; only those with `status` / of `destination` when given.
  func deliveryBatches(status: DeliveryBatchRecord.Status?, destination: String?, limit: Int) async throws
    -> [DeliveryBatchRecord]
  /// Rows and batches per destination.
  func outboxSummary() async throws -> [String: OutboxSummary]
  /// Dead letters back to pending (attempts from zero), all or of a destination or one batch; how many.
  func requeueDead(destination: String?, batch: Int64?, at: Timestamp) async throws -> Int

  // MARK: the writer and the journal (several processes, one store)

  /// Tries to make this process the store's writer: the one process whose resolver commits into it. True
  /// when it is (also when it already was). A writer stays one until it exits or its connection is lost; taking
  /// the role moves the epoch on, so a previous writer's next commit is refused. Stores that serve one process
  /// (memory, SQLite) always answer true.
  func acquireWriter() async throws -> Bool
  /// The epoch of the derived state. It moves on whenever that state changes other than through the writer's
  /// commits — a person erased, a replay, a new writer — so a writer that read its state at another epoch
  /// learns (from `StoreError.stale`) that it must read it again.
  func epoch() async throws -> Int64
  /// Appends events for the writer to resolve (a server that is not the writer accepts them this way), and
  /// records the rejected records; one transaction. Events already stored or journaled are skipped and counted
  /// as duplicates.
  func appendJournal(_ events: [Event], rejected: [RejectedRecord]) async throws -> JournalReceipt
  /// The oldest journaled events not yet resolved, at most `limit`, in the order they were appended; with
  /// `after`, only those appended after that entry (the writer passes the last entry it still holds).
  func readJournal(limit: Int, after: Int64?) async throws -> [JournalEntry]
  /// How many journaled events wait for the writer. SQLite and PostgreSQL answer from the ends of `seq`
  /// rather than by counting (which would scan a large backlog), so the sequence numbers that skipped repeats
  /// used up are counted too: never less than the truth.
  func journalBacklog() async throws -> Int
}

/// An event waiting in the journal for the writer.
public struct JournalEntry: Sendable, Hashable {
  public var seq: Int64
  public var event: Event
  public init(seq: Int64, event: Event) {
    self.seq = seq
    self.event = event
  }
}

/// What `appendJournal` did: the events that went in; the others were already stored or journaled (or repeat
/// an earlier event of the same call).
public struct JournalReceipt: Sendable, Hashable {
  public var appended: Set<EventKey>
  /// `journalBacklog()` as of the append (nil: the store did not work it out).
  public var backlog: Int?
  public init(appended: Set<EventKey>, backlog: Int? = nil) {
    self.appended = appended
    self.backlog = backlog
  }
}

extension Store {
  /// The oldest journaled events not yet resolved, at most `limit`.
  public func readJournal(limit: Int) async throws -> [JournalEntry] {
    try await readJournal(limit: limit, after: nil)
  }

  /// `erase` without deletion notices.
  public func erase(profile: ProfileID, values: [String], suppress: [String]) async throws -> DeletionReport {
    try await erase(profile: profile, values: values, suppress: suppress, notices: [])
  }
}

public struct EventKey: Sendable, Hashable {
  public var source: String
  public var id: String
  public init(source: String, id: String) {
    self.source = source
    self.id = id
  }
}

public enum StoreError: Error, Sendable, CustomStringConvertible {
  case schemaTooNew(found: Int, supported: Int)
  case corrupt(String)
  /// A commit's epoch is not the store's: the state it was resolved from changed (or another process became
  /// the writer). Nothing was written.
  case stale(expected: Int64, found: Int64)

  public var description: String {
    switch self {
    case .schemaTooNew(let found, let supported):
      return "the store's schema version \(found) is newer than this Tessera supports (\(supported)); upgrade Tessera"
    case .corrupt(let what): return "the store is damaged: \(what)"
    case .stale(let expected, let found):
      return "the store's state changed since it was read (epoch \(found), expected \(expected)); read it again"
    }
  }
}
