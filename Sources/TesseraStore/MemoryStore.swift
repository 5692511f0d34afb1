import TesseraIdentity
import TesseraModel

/// The in-memory store: dry runs and tests. Same behaviour as the persistent stores, nothing on disk.
public actor MemoryStore: Store {
  /// An event as this store keeps it, in the form every store logs it (`EventLogFormat`): the columns the
  /// SQLite store keeps apart, the identifiers, and the record as received (copied out of the buffer it was
  /// read in) or, for an event without one, its encoded fields. A parsed `Event` (dictionaries of values) took
  /// about three times the memory, and this store holds every event.
  struct KeptEvent {
    var id: String
    var source: String
    var type: String
    var name: String?
    var timestamp: Int64
    var receivedAt: Int64
    var identifiers: [Identifier]
    var format: Int
    var body: [UInt8]
    var profile: ProfileID

    init(_ s: StoredEvent) {
      let e = s.event
      (id, source, type, name) = (e.id, e.source, e.type, e.name)
      (timestamp, receivedAt) = (e.timestamp.microseconds, e.receivedAt.microseconds)
      identifiers = e.identifiers
      format = EventLogFormat.format(of: e)
      body = e.record.map { Array($0.bytes) } ?? Array(EventLogFormat.mappedBody(e).utf8)
      profile = s.profile
    }

    func stored() throws -> StoredEvent {
      var e = try EventLogFormat.event(
        id: id, source: source, type: type, name: name, timestamp: timestamp, receivedAt: receivedAt,
        identifiers: nil, format: format, body: body)
      e.identifiers = identifiers
      return StoredEvent(event: e, profile: profile)
    }

    func row(_ parts: LogRow.Parts) -> LogRow {
      LogRow(
        source: source, id: id, type: type, name: name, timestamp: timestamp, receivedAt: receivedAt,
        profile: profile, format: format,
        identifiers: parts.contains(.identifiers) ? StoredValue.encode(identifiers) : nil,
        body: parts.contains(.body) ? body : nil)
    }
  }

  var events: [EventKey: KeptEvent] = [:]
  var eventOrder: [EventKey] = []
  var profiles: [ProfileID: Timestamp] = [:]
  var mergedInto: [ProfileID: ProfileID] = [:]
  var identifierRows: [Identifier: [ProfileID: Timestamp]] = [:]
  /// The identifiers each profile holds (the reverse of `identifierRows`), so merges touch only their rows.
  var heldBy: [ProfileID: Set<Identifier>] = [:]
  /// The profiles merged into each live profile, itself included.
  var families: [ProfileID: [ProfileID]] = [:]
  var traitRows: [ProfileID: [String: TraitRecord]] = [:]
  var storedPolicies: TraitPolicies?
  var computedRows: [ProfileID: [String: ComputedRecord]] = [:]
  /// Members per segment, with when they entered.
  var memberRows: [String: [ProfileID: Timestamp]] = [:]
  var changeLog: [SegmentChangeRecord] = []
  var mergeLog: [MergeRecord] = []
  var conflictLog: [ConflictRecord] = []
  var linkLog: [MatchLinkRecord] = []
  var separationRows: Set<Separation> = []
  var suppressionRows: Set<String> = []
  var rejectedLog: [RejectedRecord] = []
  /// A record rejected again on a later run is kept once (by source, reason and record).
  var rejectedKeys: Set<[String]> = []
  /// The outbox: rows by id, the batch each row is in (absent: not yet batched), and the batches.
  var outboxRows: [Int64: OutboxRecord] = [:]
  var rowBatch: [Int64: Int64] = [:]
  var batchRows: [Int64: DeliveryBatchRecord] = [:]
  var nextOutboxID: Int64 = 1
  var nextBatchID: Int64 = 1
  var journalRows: [Int64: Event] = [:]
  var journalKeys: [EventKey: Int64] = [:]
  var nextJournalSeq: Int64 = 1
  var epochValue: Int64 = 0
  var cursorRows: [String: String] = [:]
  var sightingRows: [ProfileID: SightingRecord] = [:]

  public init() {}

  public func existingEvents(_ keys: [EventKey]) -> Set<EventKey> { Set(keys.filter { events[$0] != nil }) }

  public func commit(_ batch: CommitBatch) throws {
    if let e = batch.epoch, e != epochValue { throw StoreError.stale(expected: e, found: epochValue) }
    for seq in batch.journalDone {
      if let e = journalRows.removeValue(forKey: seq) { journalKeys[EventKey(source: e.source, id: e.id)] = nil }
    }
    for c in batch.sourceCursors { cursorRows[c.source] = c.value }
    for n in batch.newProfiles where profiles[n.id] == nil {
      profiles[n.id] = n.createdAt
      families[n.id] = [n.id]
    }
    for e in batch.events {
      let key = EventKey(source: e.event.source, id: e.event.id)
      guard events[key] == nil else { continue }
      events[key] = KeptEvent(e)
      eventOrder.append(key)
    }
    for m in batch.merges where m.absorbed != m.survivor {
      mergedInto[m.absorbed] = m.survivor
      for i in heldBy.removeValue(forKey: m.absorbed) ?? [] {
        guard let rows = identifierRows[i], let seen = rows[m.absorbed] else { continue }
        identifierRows[i]?[m.absorbed] = nil
        identifierRows[i]?[m.survivor] = max(seen, rows[m.survivor] ?? seen)
        heldBy[m.survivor, default: []].insert(i)
      }
      families[m.survivor, default: [m.survivor]] += families.removeValue(forKey: m.absorbed) ?? [m.absorbed]
      traitRows[m.absorbed] = nil
      computedRows[m.absorbed] = nil
      // Over a copy of the names: iterating `memberRows.keys` itself keeps the dictionary's storage shared, so
      // each removal below copied a whole segment's member table.
      for segment in Array(memberRows.keys) { memberRows[segment]?[m.absorbed] = nil }
      sightingRows[m.absorbed] = nil
      mergeLog.append(m)
    }
    for r in batch.sightings { sightingRows[r.profile] = r.sightings.isEmpty ? nil : r }
    if let before = batch.sightingsExpireBefore {
      sightingRows = sightingRows.filter { $0.value.expires >= before }
    }
    for r in batch.released {
      identifierRows[r.identifier]?[r.profile] = nil
      heldBy[r.profile]?.remove(r.identifier)
    }
    for row in batch.identifiers {
      let (i, p, seen) = (row.identifier, row.profile, row.lastSeen)
      identifierRows[i, default: [:]][p] = max(seen, identifierRows[i]?[p] ?? seen)
      heldBy[p, default: []].insert(i)
    }
    conflictLog.append(contentsOf: batch.conflicts)
    separationRows.formUnion(batch.separations)
    defer {
      for var l in batch.matchLinks {
        l.id = Int64(linkLog.count + 1)
        linkLog.append(l)
      }
      for c in batch.linkStatus where c.id >= 1 && c.id <= linkLog.count { linkLog[Int(c.id) - 1].status = c.status }
    }
    for t in batch.traits { traitRows[t.profile, default: [:]][t.trait] = t }
    if !batch.traits.isEmpty, let p = batch.traitPolicies { storedPolicies = p }
    for c in batch.computed {
      if c.storedState == nil {
        computedRows[c.profile]?[c.trait] = nil
        if computedRows[c.profile]?.isEmpty == true { computedRows[c.profile] = nil }
      } else {
        computedRows[c.profile, default: [:]][c.trait] = c
      }
    }
    for c in batch.segmentChanges {
      if c.entered {
        memberRows[c.segment, default: [:]][c.profile] = c.at
      } else {
        memberRows[c.segment]?[c.profile] = nil
      }
      changeLog.append(c)
    }
    record(batch.rejected)
    enqueue(batch.outbox)
  }

  func record(_ rejected: [RejectedRecord]) {
    for r in rejected where rejectedKeys.insert([r.source, r.reason, r.record]).inserted { rejectedLog.append(r) }
  }

  public func loadIdentity() -> IdentitySnapshot {
    var byProfile: [ProfileID: [(Identifier, Timestamp)]] = [:]
    for (i, rows) in identifierRows {
      for (p, seen) in rows { byProfile[p, default: []].append((i, seen)) }
    }
    var snap = IdentitySnapshot()
    for p in profiles.keys.sorted() where mergedInto[p] == nil {
      snap.profiles.append((p, (byProfile[p] ?? []).sorted { $0.0 < $1.0 }))
    }
    snap.aliases = aliases().map { (absorbed: $0.absorbed, survivor: $0.survivor) }
    return snap
  }

  public func aliases() -> [ProfileAlias] {
    mergedInto.sorted { $0.key < $1.key }.map { ProfileAlias(absorbed: $0.key, survivor: $0.value) }
  }

  public func loadTraits() -> [TraitRecord] {
    traitRows.keys.sorted().flatMap { p in (traitRows[p] ?? [:]).values.sorted { $0.trait < $1.trait } }
  }

  public func loadComputed() -> [ComputedRecord] {
    computedRows.keys.sorted().flatMap { p in (computedRows[p] ?? [:]).values.sorted { $0.trait < $1.trait } }
  }

  public func loadMemberships() -> [MembershipRecord] {
    memberRows.keys.sorted().flatMap { members(of: $0) }
  }

  public func members(of segment: String) -> [MembershipRecord] {
    (memberRows[segment] ?? [:]).sorted { $0.key < $1.key }.map {
      MembershipRecord(segment: segment, profile: $0.key, since: $0.value)
    }
  }

  public func segmentCounts() -> [String: Int] {
    memberRows.compactMapValues { $0.isEmpty ? nil : $0.count }
  }

  public func computed(of profile: ProfileID) -> [ComputedRecord] {
    (computedRows[live(profile)] ?? [:]).values.sorted { $0.trait < $1.trait }
  }

  public func memberships(of profile: ProfileID) -> [MembershipRecord] {
    let p = live(profile)
    return memberRows.keys.sorted().compactMap { s in
      memberRows[s]?[p].map { MembershipRecord(segment: s, profile: p, since: $0) }
    }
  }

  public func segmentChanges(of segment: String, limit: Int) -> [SegmentChangeRecord] {
    Array(changeLog.lazy.filter { $0.segment == segment }.prefix(max(0, limit)))
  }

  public func profile(for identifier: Identifier) -> ProfileID? {
    guard let rows = identifierRows[identifier] else { return nil }
    return rows.keys.sorted().first.map(live)
  }

  func live(_ id: ProfileID) -> ProfileID {
    var current = id
    while let next = mergedInto[current] { current = next }
    return current
  }

  public func canonical(_ id: ProfileID) -> ProfileID? { profiles[id] == nil ? nil : live(id) }

  public func identifiers(of profile: ProfileID) -> [(Identifier, Timestamp)] {
    let p = live(profile)
    return (heldBy[p] ?? []).compactMap { i in identifierRows[i]?[p].map { (i, $0) } }.sorted { $0.0 < $1.0 }
  }

  public func traitPolicies() -> TraitPolicies? { storedPolicies }

  public func traits(of profile: ProfileID) -> [TraitRecord] {
    (traitRows[live(profile)] ?? [:]).values.sorted { $0.trait < $1.trait }
  }

  func family(_ profile: ProfileID) -> Set<ProfileID> {
    let p = live(profile)
    return Set(families[p] ?? [p])
  }

  public func merges(involving profile: ProfileID) -> [MergeRecord] {
    let fam = family(profile)
    return mergeLog.filter { fam.contains($0.survivor) || fam.contains($0.absorbed) }
  }

  public func loadMerges() -> [MergeRecord] { mergeLog }

  public func conflicts(involving profile: ProfileID) -> [ConflictRecord] {
    let fam = family(profile)
    return conflictLog.filter { fam.contains($0.kept) || $0.other.map(fam.contains) == true }
  }

  public func events(of profile: ProfileID, limit: Int) throws -> [StoredEvent] {
    let fam = family(profile)
    var out: [KeptEvent] = []
    for key in eventOrder.reversed() {
      guard let e = events[key], fam.contains(e.profile) else { continue }
      out.append(e)
    }
    return try out.sorted { ($0.timestamp, $0.id) > ($1.timestamp, $1.id) }.prefix(max(0, limit)).map {
      try $0.stored()
    }
  }

  public func rejected(limit: Int) -> [RejectedRecord] { Array(rejectedLog.prefix(limit)) }

  public func loadEvents() throws -> [StoredEvent] { try eventOrder.compactMap { try events[$0]?.stored() } }

  public func loadSourceCursors() -> [String: String] { cursorRows }
  public func eventPage(after: Int64, limit: Int) throws -> EventPage {
    let start = min(Int(max(after, 0)), eventOrder.count)
    let end = min(start + max(limit, 1), eventOrder.count)
    let page = try eventOrder[start..<end].compactMap { try events[$0]?.stored() }
    return EventPage(events: page, next: end < eventOrder.count ? Int64(end) : nil)
  }

  /// Positions are 1-based places in `eventOrder`.
  public func logEnd() -> Int64 { Int64(eventOrder.count) }

  public func logRows(after: Int64, through: Int64, parts: LogRow.Parts) -> [LogRow] {
    let start = min(Int(max(after, 0)), eventOrder.count)
    let end = max(start, min(Int(clamping: through), eventOrder.count))
    return eventOrder[start..<end].compactMap { events[$0]?.row(parts) }
  }

  public func loadSeparations() -> [Separation] {
    separationRows.sorted { ($0.first, $0.second) < ($1.first, $1.second) }
  }

  public func loadSuppressions() -> Set<String> { suppressionRows }

  public func loadSightings() -> [SightingRecord] { sightingRows.keys.sorted().compactMap { sightingRows[$0] } }

  public func erase(profile: ProfileID, values: [String], suppress: [String], notices: [OutboxRecord])
    -> DeletionReport
  {
    epochValue += 1
    var r = DeletionReport()
    let fam = family(profile)
    suppressionRows.formUnion(suppress)
    for p in fam where profiles.removeValue(forKey: p) != nil {
      r.profiles += 1
      mergedInto[p] = nil
    }
    families[live(profile)] = nil
    for p in fam { families[p] = nil }
    let keys = eventOrder.filter { events[$0].map { fam.contains($0.profile) } ?? false }
    for k in keys { events[k] = nil }
    r.events = keys.count
    eventOrder.removeAll { events[$0] == nil }
    for p in fam {
      for i in heldBy.removeValue(forKey: p) ?? [] where identifierRows[i]?.removeValue(forKey: p) != nil {
        r.identifiers += 1
        if identifierRows[i]?.isEmpty == true { identifierRows[i] = nil }
      }
      r.traits += traitRows.removeValue(forKey: p)?.count ?? 0
      r.computed += computedRows.removeValue(forKey: p)?.count ?? 0
      sightingRows[p] = nil
      for s in memberRows.keys where memberRows[s]?.removeValue(forKey: p) != nil { r.memberships += 1 }
    }
    func drop<T>(_ log: inout [T], _ involves: (T) -> Bool) -> Int {
      let before = log.count
      log.removeAll(where: involves)
      return before - log.count
    }
    r.segmentChanges = drop(&changeLog) { fam.contains($0.profile) || $0.mergedInto.map(fam.contains) == true }
    r.merges = drop(&mergeLog) { fam.contains($0.survivor) || fam.contains($0.absorbed) }
    r.conflicts = drop(&conflictLog) { fam.contains($0.kept) || $0.other.map(fam.contains) == true }
    r.matchLinks = drop(&linkLog) { fam.contains($0.profile) || fam.contains($0.candidate) }
    r.rejected = drop(&rejectedLog) { row in values.contains { !$0.isEmpty && row.record.contains($0) } }
    separationRows = separationRows.filter { !values.contains($0.first.value) && !values.contains($0.second.value) }
    for (id, row) in outboxRows where fam.contains(row.profile) {
      outboxRows[id] = nil
      rowBatch[id] = nil
      r.deliveries += 1
    }
    let batched = Set(rowBatch.values)
    for (id, b) in batchRows where b.status != .delivered && !batched.contains(id) { batchRows[id] = nil }
    enqueue(notices)
    return r
  }

  public func replaceDerivedState(_ s: DerivedState) {
    epochValue += 1
    profiles = Dictionary(s.profiles.map { ($0.id, $0.createdAt) }, uniquingKeysWith: { a, _ in a })
    mergedInto = Dictionary(s.aliases.map { ($0.absorbed, $0.survivor) }, uniquingKeysWith: { a, _ in a })
    families = [:]
    for p in profiles.keys { families[live(p), default: []].append(p) }
    identifierRows = [:]
    heldBy = [:]
    for row in s.identifiers {
      identifierRows[row.identifier, default: [:]][row.profile] = row.lastSeen
      heldBy[row.profile, default: []].insert(row.identifier)
    }
    traitRows = [:]
    for t in s.traits { traitRows[t.profile, default: [:]][t.trait] = t }
    if let p = s.traitPolicies { storedPolicies = p }
    computedRows = [:]
    for c in s.computed where c.storedState != nil { computedRows[c.profile, default: [:]][c.trait] = c }
    memberRows = [:]
    for m in s.memberships { memberRows[m.segment, default: [:]][m.profile] = m.since }
    for e in s.eventProfiles { events[e.key]?.profile = e.profile }
    sightingRows = [:]
    for r in s.sightings where !r.sightings.isEmpty { sightingRows[r.profile] = r }
    mergeLog += s.merges
    conflictLog += s.conflicts
  }

  public func matchLinks(status: MatchLinkRecord.Status?, limit: Int) -> [MatchLinkRecord] {
    Array(linkLog.filter { status == nil || $0.status == status }.prefix(max(0, limit)))
  }

  public func stats() -> StoreStats {
    var s = StoreStats()
    s.events = events.count
    s.profiles = profiles.keys.filter { mergedInto[$0] == nil }.count
    s.identifiers = identifierRows.values.reduce(0) { $0 + $1.count }
    s.merges = mergeLog.count
    s.conflicts = conflictLog.count
    s.rejected = rejectedLog.count
    return s
  }

  // MARK: - The writer and the journal

  public func acquireWriter() -> Bool { true }

  public func epoch() -> Int64 { epochValue }

  public func appendJournal(_ events: [Event], rejected: [RejectedRecord]) -> JournalReceipt {
    var receipt = JournalReceipt(appended: [])
    for e in events {
      let key = EventKey(source: e.source, id: e.id)
      if self.events[key] != nil || journalKeys[key] != nil { continue }
      var kept = e
      kept.record = e.record?.compacted
      journalRows[nextJournalSeq] = kept
      journalKeys[key] = nextJournalSeq
      nextJournalSeq += 1
      receipt.appended.insert(key)
    }
    record(rejected)
    receipt.backlog = journalRows.count
    return receipt
  }

  public func journalBacklog() -> Int { journalRows.count }

  public func readJournal(limit: Int, after: Int64?) -> [JournalEntry] {
    journalRows.keys.filter { $0 > after ?? Int64.min }.sorted().prefix(max(0, limit)).compactMap { seq in
      journalRows[seq].map { JournalEntry(seq: seq, event: $0) }
    }
  }
}
