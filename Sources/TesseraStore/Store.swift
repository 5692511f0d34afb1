import TesseraIdentity
import TesseraModel

// Where Tessera keeps its state. The event log is the truth; profiles, identifiers and traits are derived from
// it and written in the same transaction as the events that caused them. A store plays several roles, and
// each user asks for the ones it needs: the pipeline's writer (`PipelineStore`), the readers of profiles
// (`ProfileQueries`, and a page at a time `PagedQueries`), the delivery engine (`OutboxStore`), processes sharing a store (`JournalStore`), and
// the commands that change state outside the pipeline (`StoreMaintenance`).

/// The event log and the records the sources rejected.
public protocol EventLog: Sendable {
  /// Which of these (source, event id) pairs are already stored.
  func existingEvents(_ keys: [EventKey]) async throws -> Set<EventKey>
  /// The profile's events (including those of profiles merged into it), newest first.
  func events(of profile: ProfileID, limit: Int) async throws -> [StoredEvent]
  /// The whole event log in the order it was written (what `tessera replay` re-resolves).
  func loadEvents() async throws -> [StoredEvent]
  /// The event log in write order a page at a time (reports read a large log without holding it all): at most
  /// `limit` events after position `after` (0: from the start), and where the next page starts.
  func eventPage(after: Int64, limit: Int) async throws -> EventPage
  /// The position of the log's last event (0: the log is empty): where a scan of the log as it is now ends.
  func logEnd() async throws -> Int64
  /// The events at positions in `(after, through]`, in write order, as their columns (`LogRow`), without
  /// building events: what a scan that decides most events by name, type and time reads (reports). Positions
  /// are those of `eventPage`; ranges are independent, so a scan may read several at once (from `0` to
  /// `logEnd()`). The identifiers and the body are read only when `parts` asks for them, and decoded by
  /// whoever uses them, on its own task.
  func logRows(after: Int64, through: Int64, parts: LogRow.Parts) async throws -> [LogRow]
  /// Every profile merged into another, with the one it was merged into (one step: a chain is followed by the
  /// reader), by the absorbed profile's id: `loadIdentity()`'s aliases without its profiles and identifiers,
  /// what a reader of the log needs to turn the profile an event was resolved to into the live one.
  func aliases() async throws -> [ProfileAlias]
  func rejected(limit: Int) async throws -> [RejectedRecord]
}

/// A profile merged into another (`EventLog.aliases`).
public struct ProfileAlias: Sendable, Hashable {
  public var absorbed: ProfileID
  public var survivor: ProfileID
  public init(absorbed: ProfileID, survivor: ProfileID) {
    self.absorbed = absorbed
    self.survivor = survivor
  }
}

/// One page of the event log: its events and the position after the last one (nil: the log ends here).
public struct EventPage: Sendable {
  public var events: [StoredEvent]
  public var next: Int64?
  public init(events: [StoredEvent], next: Int64?) {
    self.events = events
    self.next = next
  }
}

/// What the pipeline's writer reads when it starts and commits afterwards.
public protocol PipelineStore: EventLog {
  /// Writes one batch atomically: all of it or nothing.
  func commit(_ batch: CommitBatch) async throws
  func loadIdentity() async throws -> IdentitySnapshot
  func loadTraits() async throws -> [TraitRecord]
  /// Every computed-trait state, by profile then trait.
  func loadComputed() async throws -> [ComputedRecord]
  /// Every segment membership, by segment then profile.
  func loadMemberships() async throws -> [MembershipRecord]
  /// The identifier pairs people separated.
  func loadSeparations() async throws -> [Separation]
  /// Each table source's stored cursor (`CommitBatch.sourceCursors`), by source name.
  func loadSourceCursors() async throws -> [String: String]
  /// The hashes of suppressed identifiers (`Suppression.hash`).
  func loadSuppressions() async throws -> Set<String>
  /// Every profile's recent device-signal sightings (`SightingRecord`), by profile.
  func loadSightings() async throws -> [SightingRecord]
  /// Logged probabilistic decisions, oldest first; only those with `status` when given.
  func matchLinks(status: MatchLinkRecord.Status?, limit: Int) async throws -> [MatchLinkRecord]
  func stats() async throws -> StoreStats
  /// Tries to make this process the store's writer: the one process whose resolver commits into it. True
  /// when it is (also when it already was). A writer stays one until it exits or its connection is lost; taking
  /// the role moves the epoch on, so a previous writer's next commit is refused. The memory store always
  /// answers true; SQLite and PostgreSQL hold a lock the operating system or the server releases when the
  /// process ends.
  func acquireWriter() async throws -> Bool
  /// The epoch of the derived state. It moves on whenever that state changes other than through the writer's
  /// commits — a person erased, a replay, a new writer — so a writer that read its state at another epoch
  /// learns (from `StoreError.stale`) that it must read it again.
  func epoch() async throws -> Int64
  /// Brings up to date what bulk transactions (`CommitBatch.deferIndexes`) left for later and leaves the
  /// store at rest: on SQLite, the events' indexes written in one sorted pass and the write-ahead log folded
  /// into the file and emptied, so the store is one file.
  func finishWriting() async throws
  /// Whether a bulk writer may hold back the last-seen moves of expiring identifiers until the end of its run
  /// (`CommitBatch.seenDeferred`): the store then catches them up from the log itself if the run ends early.
  var defersLastSeen: Bool { get }
}

extension PipelineStore {
  public func finishWriting() async throws {}
  public var defersLastSeen: Bool { false }
}

/// Questions about people: `tessera profile`, the profile API, segment membership.
public protocol ProfileQueries: Sendable {
  /// The live profile an identifier belongs to.
  func profile(for identifier: Identifier) async throws -> ProfileID?
  /// The live profile an id resolves to (following merges); nil when unknown.
  func canonical(_ id: ProfileID) async throws -> ProfileID?
  func identifiers(of profile: ProfileID) async throws -> [(Identifier, Timestamp)]
  func traits(of profile: ProfileID) async throws -> [TraitRecord]
  /// The trait policies of the pipeline that last wrote trait rows (nil: none written since stores kept them).
  func traitPolicies() async throws -> TraitPolicies?
  /// The computed-trait states of the live profile of `profile`, by trait.
  func computed(of profile: ProfileID) async throws -> [ComputedRecord]
  /// The segments the live profile of `profile` is in, by segment name.
  func memberships(of profile: ProfileID) async throws -> [MembershipRecord]
  /// Merges in which the profile (or a profile merged into it) took part, oldest first.
  func merges(involving profile: ProfileID) async throws -> [MergeRecord]
  /// The whole merge log, in the order it was written (the profile sync copies it).
  func loadMerges() async throws -> [MergeRecord]
  func conflicts(involving profile: ProfileID) async throws -> [ConflictRecord]
  /// A segment's members, in profile order.
  func members(of segment: String) async throws -> [MembershipRecord]
  /// Member counts of every segment with at least one member.
  func segmentCounts() async throws -> [String: Int]
  /// Logged segment changes of a segment, oldest first (at most `limit`).
  func segmentChanges(of segment: String, limit: Int) async throws -> [SegmentChangeRecord]
}

/// The outbox: what destinations are to receive, in batches with their delivery history.
public protocol OutboxStore: Sendable {
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
}

/// The journal: events accepted by a process that is not the writer, waiting for the writer to resolve them.
public protocol JournalStore: Sendable {
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

/// Changes to the derived state outside the pipeline: erasing a person, a replay's result.
public protocol StoreMaintenance: Sendable {
  /// Erases a person: the live profile of `profile` and every profile merged into it, with their events,
  /// identifiers, traits, computed traits, memberships, device-signal sightings, segment-change log, merges,
  /// conflicts and match links,
  /// and rejected records whose text holds one of `values`; adds `suppress` (hashes of their identifiers) to
  /// the suppression list, so later events carrying them are dropped at the door. Their rows waiting in the
  /// outbox go too, and `notices` (deletion notices for destinations) are queued in the same transaction.
  func erase(profile: ProfileID, values: [String], suppress: [String], notices: [OutboxRecord]) async throws
    -> DeletionReport
  /// Replaces everything derived from the event log at once (`tessera replay` without `--dry-run`).
  func replaceDerivedState(_ state: DerivedState) async throws
}

/// A store in every role: what the SQLite, PostgreSQL and in-memory stores are.
public protocol Store: PipelineStore, ProfileQueries, PagedQueries, OutboxStore, JournalStore, StoreMaintenance {}

extension JournalStore {
  /// The oldest journaled events not yet resolved, at most `limit`.
  public func readJournal(limit: Int) async throws -> [JournalEntry] {
    try await readJournal(limit: limit, after: nil)
  }
}

extension StoreMaintenance {
  /// `erase` without deletion notices.
  public func erase(profile: ProfileID, values: [String], suppress: [String]) async throws -> DeletionReport {
    try await erase(profile: profile, values: values, suppress: suppress, notices: [])
  }
}
