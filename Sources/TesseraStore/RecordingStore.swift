import TesseraIdentity
import TesseraModel

/// A store that forwards everything to another store and keeps a copy of every committed batch, so a dry
/// run can report exactly what the pipeline wrote (profiles, merges, traits, segment changes, rejections).
public actor RecordingStore: Store {
  let inner: any Store
  public private(set) var batches: [CommitBatch] = []

  public init(_ inner: any Store) { self.inner = inner }

  public func commit(_ batch: CommitBatch) async throws {
    try await inner.commit(batch)
    batches.append(batch)
  }

  public func existingEvents(_ keys: [EventKey]) async throws -> Set<EventKey> { try await inner.existingEvents(keys) }
  public func loadIdentity() async throws -> IdentitySnapshot { try await inner.loadIdentity() }
  public func loadTraits() async throws -> [TraitRecord] { try await inner.loadTraits() }
  public func loadComputed() async throws -> [ComputedRecord] { try await inner.loadComputed() }
  public func loadMemberships() async throws -> [MembershipRecord] { try await inner.loadMemberships() }
  public func members(of segment: String) async throws -> [MembershipRecord] { try await inner.members(of: segment) }
  public func segmentCounts() async throws -> [String: Int] { try await inner.segmentCounts() }
  public func computed(of profile: ProfileID) async throws -> [ComputedRecord] { try await inner.computed(of: profile) }
  public func memberships(of profile: ProfileID) async throws -> [MembershipRecord] {
    try await inner.memberships(of: profile)
  }
  public func segmentChanges(of segment: String, limit: Int) async throws -> [SegmentChangeRecord] {
    try await inner.segmentChanges(of: segment, limit: limit)
  }
  public func profile(for identifier: Identifier) async throws -> ProfileID? {
    try await inner.profile(for: identifier)
  }
  public func canonical(_ id: ProfileID) async throws -> ProfileID? { try await inner.canonical(id) }
  public func identifiers(of profile: ProfileID) async throws -> [(Identifier, Timestamp)] {
    try await inner.identifiers(of: profile)
  }
  public func traits(of profile: ProfileID) async throws -> [TraitRecord] { try await inner.traits(of: profile) }
  public func merges(involving profile: ProfileID) async throws -> [MergeRecord] {
    try await inner.merges(involving: profile)
  }
  public func conflicts(involving profile: ProfileID) async throws -> [ConflictRecord] {
    try await inner.conflicts(involving: profile)
  }
  public func events(of profile: ProfileID, limit: Int) async throws -> [StoredEvent] {
    try await inner.events(of: profile, limit: limit)
  }
  public func rejected(limit: Int) async throws -> [RejectedRecord] { try await inner.rejected(limit: limit) }
  public func loadEvents() async throws -> [StoredEvent] { try await inner.loadEvents() }
  public func loadSeparations() async throws -> [[Identifier]] { try await inner.loadSeparations() }
  public func loadSuppressions() async throws -> Set<String> { try await inner.loadSuppressions() }
  public func erase(profile: ProfileID, values: [String], suppress: [String], notices: [OutboxRecord]) async throws
    -> DeletionReport
  {
    try await inner.erase(profile: profile, values: values, suppress: suppress, notices: notices)
  }
  public func replaceDerivedState(_ state: DerivedState) async throws { try await inner.replaceDerivedState(state) }
  public func matchLinks(status: MatchLinkRecord.Status?, limit: Int) async throws -> [MatchLinkRecord] {
    try await inner.matchLinks(status: status, limit: limit)
  }
  public func stats() async throws -> StoreStats { try await inner.stats() }
}

extension RecordingStore {
  public func enqueue(_ rows: [OutboxRecord]) async throws { try await inner.enqueue(rows) }
  public func claimBatch(_ claim: BatchClaim) async throws -> (DeliveryBatchRecord, [OutboxRecord])? {
    try await inner.claimBatch(claim)
  }
  public func finishBatch(_ id: Int64, _ result: DeliveryResult) async throws {
    try await inner.finishBatch(id, result)
  }
  public func deliveryBatches(status: DeliveryBatchRecord.Status?, destination: String?, limit: Int) async throws
    -> [DeliveryBatchRecord]
  {
    try await inner.deliveryBatches(status: status, destination: destination, limit: limit)
  }
  public func outboxSummary() async throws -> [String: OutboxSummary] { try await inner.outboxSummary() }
  public func requeueDead(destination: String?, batch: Int64?, at: Timestamp) async throws -> Int {
    try await inner.requeueDead(destination: destination, batch: batch, at: at)
  }

  public func acquireWriter() async throws -> Bool { try await inner.acquireWriter() }
  public func epoch() async throws -> Int64 { try await inner.epoch() }
  public func appendJournal(_ events: [Event], rejected: [RejectedRecord]) async throws -> JournalReceipt {
    try await inner.appendJournal(events, rejected: rejected)
  }
  public func journalBacklog() async throws -> Int { try await inner.journalBacklog() }
  public func readJournal(limit: Int, after: Int64?) async throws -> [JournalEntry] {
    try await inner.readJournal(limit: limit, after: after)
  }
}
