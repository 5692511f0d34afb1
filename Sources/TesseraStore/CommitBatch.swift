import TesseraIdentity
import TesseraModel

/// Everything one store transaction of the pipeline changes, committed atomically.
public struct CommitBatch: Sendable {
  /// The events, each with the profile it resolved to; the log keeps each event's record as received (or,
  /// for an event without one, its mapped fields: `EventLogFormat`).
  public var events: [StoredEvent] = []
  public var newProfiles: [NewProfile] = []
  /// Identifiers to insert or move to a profile, with when they were last seen.
  public var identifiers: [IdentifierRow] = []
  /// Applied in order: the absorbed profile's identifiers, traits and events move to the survivor.
  public var merges: [MergeRecord] = []
  /// Identifiers released (expired) from a profile; applied after the merges, so a release names the live
  /// profile at the end of the batch.
  public var released: [ReleasedIdentifier] = []
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
  public var linkStatus: [LinkStatusChange] = []
  /// Identifier pairs a person separated (`tessera unmerge`), kept for every later run.
  public var separations: [Separation] = []
  /// Changes for destinations, written with the state that caused them (the durable outbox).
  public var outbox: [OutboxRecord] = []
  /// Journal entries this batch resolved, so each is resolved once: they leave the journal in the same
  /// transaction. The writer resolves the journal in order; SQLite records the largest as a cursor.
  public var journalDone: [Int64] = []
  /// How far table sources have been read: each source's cursor, stored with the events read up to it, so a
  /// crash neither skips nor repeats rows. The last position of a source in the batch wins.
  public var sourceCursors: [SourceCursor] = []
  /// Profiles' recent device-signal sightings, each replacing the profile's stored ones (none: deleted);
  /// applied after the merges, which drop the absorbed profile's.
  public var sightings: [SightingRecord] = []
  /// Stored sightings that expire before this time are pruned (the writer's clock), when set.
  public var sightingsExpireBefore: Timestamp?
  /// The store's epoch the writer's state was read at; when set and the store's is another, the commit is
  /// refused with `StoreError.stale` and nothing is written (see `Store.epoch()`).
  public var epoch: Int64?
  /// A bulk writer's transaction (`tessera run`): the store may append the events now and build the ways of
  /// finding them (by key, by profile) later, at `PipelineStore.finishWriting()`, in one sorted pass. The
  /// writer vouches that no event of the batch repeats one it wrote since its writing began (its own set of
  /// events seen makes sure of it); repeats of anything older are still left out.
  public var deferIndexes = false
  /// A bulk writer held back the last-seen moves of these (expiring) identifier kinds that this transaction's
  /// events made: `identifiers` has only the identifiers they attached. The run writes the held-back times
  /// once at its end (`seenFlushed`); until then the store keeps where the held-back events begin, so that a
  /// run that ends early is caught up from the log (`PipelineStore.defersLastSeen`). An expiring identifier
  /// seen again in every transaction was rewritten by each, scattered over the whole identifiers b-tree.
  public var seenDeferred: [String] = []
  /// This transaction writes every last-seen time held back so far: nothing is left to catch up.
  public var seenFlushed = false
  /// A long-running writer's transaction (`tessera serve`): the store may append the events now and write the
  /// ways of finding them behind the commits, several transactions' worth at a time in their keys' order,
  /// answering meanwhile for the events not indexed yet (repeats are left out, reads by profile include
  /// them). Unlike `deferIndexes`, the store itself keeps repeats out, so nothing is asked of the writer.
  public var indexesBehind = false
  /// The trait policies of the pipeline that resolved the transaction: stored when it writes trait rows (what
  /// readers explain the values by; `TraitPolicies`).
  public var traitPolicies: TraitPolicies?

  public init() {}
  public var isEmpty: Bool {
    events.isEmpty && newProfiles.isEmpty && identifiers.isEmpty && released.isEmpty && merges.isEmpty
      && conflicts.isEmpty && traits.isEmpty && computed.isEmpty && segmentChanges.isEmpty && rejected.isEmpty
      && matchLinks.isEmpty && linkStatus.isEmpty && separations.isEmpty && outbox.isEmpty && journalDone.isEmpty
      && sourceCursors.isEmpty && sightings.isEmpty && !seenFlushed
  }
}

/// Everything derived from the event log, as a replay computed it: replaces the store's profiles, aliases,
/// identifiers, traits, computed traits, memberships and each event's profile in one transaction; merges and
/// conflicts (the replay's record of what changed) are appended to the logs.
public struct DerivedState: Sendable {
  public var profiles: [NewProfile] = []
  public var aliases: [Alias] = []
  public var identifiers: [IdentifierRow] = []
  public var traits: [TraitRecord] = []
  public var computed: [ComputedRecord] = []
  public var memberships: [MembershipRecord] = []
  public var eventProfiles: [EventProfile] = []
  public var merges: [MergeRecord] = []
  public var conflicts: [ConflictRecord] = []
  /// Every profile's recent device-signal sightings, replacing the stored ones.
  public var sightings: [SightingRecord] = []
  /// The trait policies the replay resolved with (stored as a commit stores them).
  public var traitPolicies: TraitPolicies?
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

/// A profile a transaction creates.
public struct NewProfile: Sendable, Hashable {
  public var id: ProfileID
  public var createdAt: Timestamp
  public init(_ id: ProfileID, createdAt: Timestamp) {
    self.id = id
    self.createdAt = createdAt
  }
}

/// An identifier a profile holds, and when an event last carried it (what expiry is measured from).
public struct IdentifierRow: Sendable, Hashable {
  public var identifier: Identifier
  public var profile: ProfileID
  public var lastSeen: Timestamp
  public init(_ identifier: Identifier, of profile: ProfileID, seen lastSeen: Timestamp) {
    self.identifier = identifier
    self.profile = profile
    self.lastSeen = lastSeen
  }
}

/// An identifier a profile no longer holds (it expired).
public struct ReleasedIdentifier: Sendable, Hashable {
  public var identifier: Identifier
  public var profile: ProfileID
  public init(_ identifier: Identifier, from profile: ProfileID) {
    self.identifier = identifier
    self.profile = profile
  }
}

/// A new status of a logged match link (a reviewer's decision, or a run merging a confirmed link).
public struct LinkStatusChange: Sendable, Hashable {
  public var id: Int64
  public var status: MatchLinkRecord.Status
  public init(_ id: Int64, to status: MatchLinkRecord.Status) {
    self.id = id
    self.status = status
  }
}

/// Two identifiers a person separated (`tessera unmerge`): two profiles reached through exactly this pair are
/// not merged again. Kept in order, so a pair is one value whichever way it was given.
public struct Separation: Sendable, Hashable {
  public let first: Identifier
  public let second: Identifier
  public init(_ a: Identifier, _ b: Identifier) {
    (first, second) = a < b ? (a, b) : (b, a)
  }
}

/// An absorbed profile and the profile it resolves to.
public struct Alias: Sendable, Hashable {
  public var absorbed: ProfileID
  public var survivor: ProfileID
  public init(_ absorbed: ProfileID, into survivor: ProfileID) {
    self.absorbed = absorbed
    self.survivor = survivor
  }
}

/// The profile a stored event belongs to (a replay rewrites them).
public struct EventProfile: Sendable, Hashable {
  public var key: EventKey
  public var profile: ProfileID
  public init(_ key: EventKey, _ profile: ProfileID) {
    self.key = key
    self.profile = profile
  }
}

/// How far a source that reads a database table has read: the reader's own encoding of the cursor column's
/// value at the last row of a transaction (opaque to the store).
public struct SourceCursor: Sendable, Hashable {
  public var source: String
  public var value: String
  public init(source: String, value: String) {
    self.source = source
    self.value = value
  }
}
