import Foundation
import PostgresNIO
import TesseraIdentity
import TesseraModel
import TesseraStore

extension PostgresStore {
  public func commit(_ batch: CommitBatch) async throws {
    if batch.isEmpty { return }
    // A bulk writer's events are appended without looking for their keys first (`ON CONFLICT` costs PostgreSQL
    // a second descent of the key index per event): the writer vouches for its own repeats, and an older event
    // repeated makes the plain insert fail on the key, after which this transaction and the rest of the writing
    // run with the conflict check (`bulkAppend`).
    let unchecked = batch.deferIndexes && bulkAppend.withLock { $0 }
    do {
      try await transaction { conn in try await self.write(batch, conn, uncheckedEvents: unchecked) }
    } catch let error as PSQLError where unchecked && Self.repeatsStoredEvent(error) {
      bulkAppend.withLock { $0 = false }
      try await transaction { conn in try await self.write(batch, conn) }
    }
  }

  /// Whether `error` is the events table's key refusing an event it holds already.
  static func repeatsStoredEvent(_ error: PSQLError) -> Bool {
    error.serverInfo?[.sqlState] == "23505" && error.serverInfo?[.constraintName] == "events_pkey"
  }

  /// The end of a bulk writing: the next one starts by appending unchecked again (its first repeat of a stored
  /// event, if any, switches the check back on). The indexes are kept up to date by every commit.
  public func finishWriting() async throws {
    bulkAppend.withLock { $0 = true }
  }

  /// How many advisory locks identifiers are spread over. A commit takes at most this many (the default lock
  /// table holds 64 per connection); two commits contend only when their identifiers share a stripe.
  public static let lockStripes: Int64 = 256

  /// The advisory lock of an identifier's stripe (offset so it never equals `migrationLock`).
  static func lockStripe(_ i: Identifier) -> Int64 {
    0x7465_7373_0000_0000 + Int64(UInt64(bitPattern: lockKey(i)) % UInt64(lockStripes))
  }

  /// The hash of an identifier: 64-bit FNV-1a of `kind`, a separator and `value`. Stable across
  /// processes and builds (Swift's `Hasher` is seeded per process, so it cannot serve).
  static func lockKey(_ i: Identifier) -> Int64 {
    var h: UInt64 = 0xcbf2_9ce4_8422_2325
    for b in i.kind.utf8 {
      h ^= UInt64(b)
      h = h &* 0x100_0000_01b3
    }
    h ^= 0x1F
    h = h &* 0x100_0000_01b3
    for b in i.value.utf8 {
      h ^= UInt64(b)
      h = h &* 0x100_0000_01b3
    }
    return Int64(bitPattern: h)
  }

  /// Writes the batch inside the caller's transaction, in the order `MemoryStore` applies it, one statement
  /// per part (rows as arrays expanded by `unnest`); then, when `reconcile` is on, makes the batch's
  /// identifiers owned by one live profile each (see `reconcileOwners`). A commit of the writer (this store
  /// holds the writer role, and the epoch check proves it still did when the commit began) needs neither the
  /// identifier locks nor the re-check: no other process resolves into the database meanwhile.
  func write(_ batch: CommitBatch, _ conn: PostgresConnection, uncheckedEvents: Bool = false) async throws {
    // The three large statements' parameters are encoded by child tasks while statements before them run on
    // the server (done in line, the server waited for the client between statements): the events' while the
    // epoch is checked and the profiles inserted, the identifiers' and traits' while the events go in. Not all
    // three at once: on 2 cores they held up the small statements before the events.
    async let eventsQuery = batch.events.isEmpty ? nil : Self.eventsQuery(batch.events, unchecked: uncheckedEvents)
    if let expected = batch.epoch {
      // FOR SHARE: a process moving the epoch on (a new writer, an erase) waits for this commit, and this commit
      // waits for it; either way the epoch a commit saw is the one in force when it commits.
      let found = try await epoch(conn, lock: true)
      if found != expected { throw StoreError.stale(expected: expected, found: found) }
    }
    if !batch.journalDone.isEmpty {
      try await conn.query(
        "DELETE FROM journal WHERE seq = ANY(\(batch.journalDone)::int8[])", logger: logger)
    }
    if !batch.sourceCursors.isEmpty {
      var last: [String: String] = [:]
      for c in batch.sourceCursors { last[c.source] = c.value }
      let (names, values) = (Array(last.keys), last.keys.map { last[$0] ?? "" })
      try await conn.query(
        """
        INSERT INTO source_cursors (source, value) SELECT * FROM unnest(\(names)::text[], \(values)::text[])
        ON CONFLICT (source) DO UPDATE SET value = excluded.value
        """, logger: logger)
    }
    let attached = batch.identifiers.map(\.identifier)
    let guarded = reconcile && !(batch.epoch != nil && lease.withLock { $0.pid != nil })
    if guarded && !attached.isEmpty {
      // One lock per stripe of identifiers (hash modulo `lockStripes`), not per identifier: a pipeline batch
      // attaches tens of thousands, more than PostgreSQL's lock table holds (max_locks_per_transaction × max
      // connections). Sorted and distinct: every process takes them in the same order, so two commits whose
      // identifiers share a stripe wait for each other instead of deadlocking. Held until COMMIT or ROLLBACK.
      let keys = Array(Set(attached.map(Self.lockStripe))).sorted()
      let locked = try await conn.query(
        "SELECT count(pg_advisory_xact_lock(k)) FROM unnest(\(keys)::int8[]) WITH ORDINALITY AS t(k, n)",
        logger: logger)
      // The rows must be read: an error raised while the statement runs (out of shared memory, a lock
      // timeout) arrives with them, not when the query is sent.
      for try await _ in locked {}
    }
    if !batch.newProfiles.isEmpty {
      let ids = batch.newProfiles.map(\.id.raw)
      let at = batch.newProfiles.map(\.createdAt.microseconds)
      try await conn.query(
        """
        INSERT INTO profiles (id, created_at) SELECT unnest(\(ids)::int8[]), unnest(\(at)::int8[])
        ON CONFLICT (id) DO NOTHING
        """, logger: logger)
    }
    let events = await eventsQuery
    async let identifiersQuery =
      batch.identifiers.isEmpty ? nil : Self.identifiersQuery(Self.newestRows(batch.identifiers))
    async let traitsQuery = batch.traits.isEmpty ? nil : Self.traitsQuery(batch.traits)
    if let q = events { try await conn.query(q, logger: logger) }
    if !batch.merges.isEmpty { try await applyMerges(batch.merges, conn) }
    if !batch.released.isEmpty {
      let kinds = batch.released.map(\.identifier.kind)
      let values = batch.released.map(\.identifier.value)
      let profiles = batch.released.map(\.profile.raw)
      try await conn.query(
        """
        DELETE FROM identifiers AS i USING unnest(\(kinds)::text[], \(values)::text[], \(profiles)::int8[]) AS u(k, v, p)
        WHERE i.kind = u.k AND i.value = u.v AND i.profile_id = u.p
        """, logger: logger)
    }
    if !batch.sightings.isEmpty || batch.sightingsExpireBefore != nil { try await writeSightings(batch, conn) }
    if let q = await identifiersQuery { try await conn.query(q, logger: logger) }
    if guarded && !attached.isEmpty { try await reconcileOwners(attached, batch, conn) }
    if !batch.conflicts.isEmpty {
      let c = batch.conflicts
      let kept = c.map(\.kept.raw)
      let other = c.map { $0.other?.raw ?? 0 }
      let hasOther = c.map { $0.other != nil }
      let kinds = c.map(\.kind)
      let reasons = c.map(\.reason)
      let ids = c.map { StoredValue.encode($0.identifiers) }
      let events = c.map(\.eventID)
      let at = c.map(\.at.microseconds)
      try await conn.query(
        """
        INSERT INTO conflicts (kept, other, kind, reason, identifiers, event_id, at)
        SELECT k, CASE WHEN h THEN o END, kd, r, i, e, a FROM unnest(\(kept)::int8[], \(other)::int8[],
          \(hasOther)::bool[], \(kinds)::text[], \(reasons)::text[], \(ids)::text[], \(events)::text[],
          \(at)::int8[]) AS u(k, o, h, kd, r, i, e, a)
        """, logger: logger)
    }
    if !batch.matchLinks.isEmpty {
      let l = batch.matchLinks
      let rules = l.map(\.rule)
      let profiles = l.map(\.profile.raw)
      let candidates = l.map(\.candidate.raw)
      let events = l.map(\.eventID)
      let probabilities = l.map(\.probability)
      let weights = l.map(\.weight)
      let statuses = l.map(\.status.rawValue)
      let reasons = l.map(\.reason)
      let at = l.map(\.at.microseconds)
      try await conn.query(
        """
        INSERT INTO match_links (rule, profile_id, candidate_id, event_id, probability, weight, status, reason, at)
        SELECT * FROM unnest(\(rules)::text[], \(profiles)::int8[], \(candidates)::int8[], \(events)::text[],
          \(probabilities)::float8[], \(weights)::float8[], \(statuses)::text[], \(reasons)::text[], \(at)::int8[])
        """, logger: logger)
    }
    if !batch.separations.isEmpty {
      let pairs = batch.separations
      let ka = pairs.map(\.first.kind)
      let va = pairs.map(\.first.value)
      let kb = pairs.map(\.second.kind)
      let vb = pairs.map(\.second.value)
      try await conn.query(
        """
        INSERT INTO separations (kind_a, value_a, kind_b, value_b)
        SELECT * FROM unnest(\(ka)::text[], \(va)::text[], \(kb)::text[], \(vb)::text[]) ON CONFLICT DO NOTHING
        """, logger: logger)
    }
    if !batch.linkStatus.isEmpty {
      // Applied in order: the last status given to an id wins.
      var last: [Int64: String] = [:]
      for c in batch.linkStatus { last[c.id] = c.status.rawValue }
      let ids = Array(last.keys)
      let statuses = ids.map { last[$0] ?? "" }
      try await conn.query(
        """
        UPDATE match_links AS m SET status = u.s FROM unnest(\(ids)::int8[], \(statuses)::text[]) AS u(i, s)
        WHERE m.id = u.i
        """, logger: logger)
    }
    if let q = await traitsQuery {
      try await conn.query(q, logger: logger)
      if let p = batch.traitPolicies { try await Self.writeTraitPolicies(p, conn, logger) }
    }
    if !batch.computed.isEmpty { try await writeComputed(batch.computed, conn) }
    if !batch.segmentChanges.isEmpty { try await writeSegmentChanges(batch.segmentChanges, conn) }
    if !batch.outbox.isEmpty { try await Self.enqueue(batch.outbox, conn, logger) }
    if !batch.rejected.isEmpty {
      let r = batch.rejected
      let sources = r.map(\.source)
      let lines = r.map { Int64($0.line ?? 0) }
      let hasLine = r.map { $0.line != nil }
      let records = r.map(\.record)
      let reasons = r.map(\.reason)
      let at = r.map(\.at.microseconds)
      try await conn.query(
        """
        INSERT INTO rejected (source, line, record, reason, at)
        SELECT s, CASE WHEN h THEN l END, rc, rs, a FROM unnest(\(sources)::text[], \(lines)::int8[],
          \(hasLine)::bool[], \(records)::text[], \(reasons)::text[], \(at)::int8[]) WITH ORDINALITY AS u(s, l, h, rc, rs, a, n)
        ORDER BY n
        ON CONFLICT DO NOTHING
        """, logger: logger)
    }
  }

  /// Events as the parallel arrays `unnest` expands (a name travels with a has-value flag): the columns and
  /// the log's body (`EventLogFormat`): the record as received, or the mapped fields of an event without one.
  /// The journal keeps the mapped fields of every event (`mapped`), which the writer resolves without
  /// mapping the record again.
  struct EventColumns {
    var sources: [String] = []
    var ids: [String] = []
    var types: [String] = []
    var names: [String] = []
    var hasName: [Bool] = []
    var timestamps: [Int64] = []
    var received: [Int64] = []
    var identifiers: [String] = []
    var formats: [Int64] = []
    var bodies: [String] = []
    var records: [ByteBuffer] = []

    init(_ events: some Sequence<Event>, mapped: Bool = false) {
      for e in events {
        sources.append(e.source)
        ids.append(e.id)
        types.append(e.type)
        names.append(e.name ?? "")
        hasName.append(e.name != nil)
        timestamps.append(e.timestamp.microseconds)
        received.append(e.receivedAt.microseconds)
        identifiers.append(StoredValue.encode(e.identifiers))
        if let r = e.record {
          formats.append(Int64(EventLogFormat.record))
          records.append(ByteBuffer(bytes: r.bytes))
          bodies.append(mapped ? EventLogFormat.mappedBody(e) : "")
        } else {
          formats.append(Int64(EventLogFormat.mapped))
          records.append(ByteBuffer())
          bodies.append(EventLogFormat.mappedBody(e))
        }
      }
    }
  }

  /// The insert of a batch's events: each event's record as received, else its mapped fields. `unchecked`: a plain insert
  /// (a stored key fails the statement) instead of `ON CONFLICT DO NOTHING`.
  ///
  /// The arrays are expanded by `unnest` in the select list (a ProjectSet, which streams the rows to the
  /// insert in the arrays' order), not by `unnest(…) WITH ORDINALITY` in FROM: that function scan first copies
  /// every row into a tuplestore, which spills a large batch to a temporary file (28 MB written and read back
  /// per 65,536 events), and cost PostgreSQL about 30 % more time per statement. The order of the rows is the
  /// order of the arrays either way, and with it `seq` (the order replay reads).
  static func eventsQuery(_ events: [StoredEvent], unchecked: Bool) -> PostgresQuery {
    let c = EventColumns(events.lazy.map(\.event))
    let profiles = events.map(\.profile.raw)
    return """
      INSERT INTO events (source, id, type, name, timestamp, received_at, profile_id, identifiers, format, body, record)
      SELECT s, i, t, CASE WHEN h THEN n END, ts, r, p, ids, f, CASE WHEN f = 0 THEN b END, CASE WHEN f = 1 THEN rec END
      FROM (SELECT unnest(\(c.sources)::text[]) AS s, unnest(\(c.ids)::text[]) AS i, unnest(\(c.types)::text[]) AS t,
        unnest(\(c.names)::text[]) AS n, unnest(\(c.hasName)::bool[]) AS h, unnest(\(c.timestamps)::int8[]) AS ts,
        unnest(\(c.received)::int8[]) AS r, unnest(\(profiles)::int8[]) AS p, unnest(\(c.identifiers)::text[]) AS ids,
        unnest(\(c.formats)::int8[]) AS f, unnest(\(c.bodies)::text[]) AS b, unnest(\(c.records)::bytea[]) AS rec) AS u
      \(unescaped: unchecked ? "" : "ON CONFLICT (source, id) DO NOTHING")
      """
  }

  /// One row per (identifier, profile) with the newest last_seen: ON CONFLICT DO UPDATE may not touch a row
  /// twice in one statement. Sorted, so concurrent writers lock index entries in the same order.
  static func newestRows(_ identifiers: [IdentifierRow]) -> [(Identifier, Int64, Int64)] {
    var newest: [Identifier: [ProfileID: Int64]] = [:]
    for row in identifiers {
      newest[row.identifier, default: [:]][row.profile] = max(
        row.lastSeen.microseconds, newest[row.identifier]?[row.profile] ?? .min)
    }
    return newest.flatMap { i, byProfile in byProfile.map { (i, $0.key.raw, $0.value) } }
      .sorted { ($0.0, $0.1) < ($1.0, $1.1) }
  }

  static func identifiersQuery(_ rows: [(Identifier, Int64, Int64)]) -> PostgresQuery {
    let kinds = rows.map(\.0.kind)
    let values = rows.map(\.0.value)
    let profiles = rows.map(\.1)
    let seen = rows.map(\.2)
    return """
      INSERT INTO identifiers (kind, value, profile_id, last_seen)
      SELECT unnest(\(kinds)::text[]), unnest(\(values)::text[]), unnest(\(profiles)::int8[]), unnest(\(seen)::int8[])
      ON CONFLICT (kind, value, profile_id) DO UPDATE SET last_seen = GREATEST(identifiers.last_seen, excluded.last_seen)
      """
  }

  func upsertIdentifiers(_ rows: [(Identifier, Int64, Int64)], _ conn: PostgresConnection) async throws {
    try await conn.query(Self.identifiersQuery(rows), logger: logger)
  }

  /// Moves every identifier of each `from` profile to its `to` profile (keeping the newest last_seen), then
  /// deletes the `from` rows.
  func moveIdentifiers(from: [Int64], to: [Int64], _ conn: PostgresConnection) async throws {
    try await conn.query(
      """
      INSERT INTO identifiers (kind, value, profile_id, last_seen)
      SELECT i.kind, i.value, u.t, max(i.last_seen) FROM identifiers AS i
      JOIN unnest(\(from)::int8[], \(to)::int8[]) AS u(f, t) ON i.profile_id = u.f
      GROUP BY i.kind, i.value, u.t
      ON CONFLICT (kind, value, profile_id) DO UPDATE SET last_seen = GREATEST(identifiers.last_seen, excluded.last_seen)
      """, logger: logger)
    try await conn.query("DELETE FROM identifiers WHERE profile_id = ANY(\(from)::int8[])", logger: logger)
  }

  /// Replaces each profile's stored sightings (none: the row goes; the last row of a profile wins) and prunes
  /// the expired ones.
  func writeSightings(_ batch: CommitBatch, _ conn: PostgresConnection) async throws {
    var last: [Int64: SightingRecord] = [:]
    for r in batch.sightings { last[r.profile.raw] = r }
    let profiles = last.keys.sorted()
    if !profiles.isEmpty {
      try await conn.query("DELETE FROM sightings WHERE profile_id = ANY(\(profiles)::int8[])", logger: logger)
      let kept = profiles.compactMap { last[$0] }.filter { !$0.sightings.isEmpty }
      if !kept.isEmpty {
        let p = kept.map(\.profile.raw)
        let expires = kept.map(\.expires.microseconds)
        let text = kept.map(\.encoded)
        try await conn.query(
          """
          INSERT INTO sightings (profile_id, expires, sightings)
          SELECT * FROM unnest(\(p)::int8[], \(expires)::int8[], \(text)::text[])
          """, logger: logger)
      }
    }
    if let before = batch.sightingsExpireBefore {
      try await conn.query("DELETE FROM sightings WHERE expires < \(before.microseconds)", logger: logger)
    }
  }

  /// The batch's merges, set-based: each absorbed profile points at its survivor; identifiers move to the
  /// profile that is live at the end of the batch's merges (following merges later in the batch); the absorbed
  /// profiles' traits, computed states and memberships go; every merge is logged in order.
  func applyMerges(_ merges: [MergeRecord], _ conn: PostgresConnection) async throws {
    var alias: [Int64: Int64] = [:]
    for m in merges { alias[m.absorbed.raw] = m.survivor.raw }
    // Self-merges stay in the UPDATE so the CHECK refuses them for a known profile (the batch rolls back).
    let absorbed = Array(alias.keys)
    let survivors = absorbed.map { alias[$0] ?? $0 }
    try await conn.query(
      """
      UPDATE profiles AS p SET merged_into = u.s FROM unnest(\(absorbed)::int8[], \(survivors)::int8[]) AS u(a, s)
      WHERE p.id = u.a
      """, logger: logger)
    var from: [Int64] = []
    var to: [Int64] = []
    for a in absorbed where alias[a] != a {
      var current = a
      var hops = 0
      while let next = alias[current], next != current {
        current = next
        hops += 1
        if hops > alias.count { throw StoreError.corrupt("the merges of one batch form a cycle through prf_\(a)") }
      }
      from.append(a)
      to.append(current)
    }
    if !from.isEmpty {
      try await moveIdentifiers(from: from, to: to, conn)
      for table in ["traits", "computed_traits", "memberships", "sightings"] {
        try await conn.query(
          "DELETE FROM \(unescaped: table) WHERE profile_id = ANY(\(from)::int8[])", logger: logger)
      }
    }
    try await logMerges(merges, conn)
  }

  func logMerges(_ merges: [MergeRecord], _ conn: PostgresConnection) async throws {
    let survivors = merges.map(\.survivor.raw)
    let absorbed = merges.map(\.absorbed.raw)
    let rules = merges.map(\.rule)
    let evidence = merges.map { StoredValue.encode($0.evidence) }
    let events = merges.map(\.eventID)
    let at = merges.map(\.at.microseconds)
    let scores = merges.map(\.score)
    try await conn.query(
      """
      INSERT INTO merges (survivor, absorbed, rule, evidence, event_id, at, score)
      SELECT s, a, r, e, ev, t, sc FROM unnest(\(survivors)::int8[], \(absorbed)::int8[], \(rules)::text[],
        \(evidence)::text[], \(events)::text[], \(at)::int8[], \(scores)::float8[]) WITH ORDINALITY
        AS u(s, a, r, e, ev, t, sc, o)
      ORDER BY o
      """, logger: logger)
  }

  /// The rule named in merges this store records when two processes gave one identifier to two profiles.
  public static let concurrentMergeRule = "concurrent_writers"

  /// Several processes, one database: each process resolves identities in its own memory, so two of them may
  /// give the same identifier to two different profiles, or attach it to a profile another process has
  /// merged away. With the batch's identifier locks held (no other commit can attach them until COMMIT), this
  /// reads every row of the batch's identifiers, follows each owner to its live profile, and joins live
  /// profiles that share an identifier: the smallest id survives, the others are merged into it here (logged
  /// with rule `concurrent_writers` and the shared identifiers as evidence). Rows of these identifiers held by
  /// a profile that is no longer live move to the live one. Afterwards each contested identifier has exactly
  /// one live owner.
  func reconcileOwners(_ attached: [Identifier], _ batch: CommitBatch, _ conn: PostgresConnection) async throws {
    let distinct = Array(Set(attached))
    let kinds = distinct.map(\.kind)
    let values = distinct.map(\.value)
    let rows = try await conn.query(
      """
      WITH RECURSIVE ids (kind, value) AS (SELECT * FROM unnest(\(kinds)::text[], \(values)::text[])),
      owner (kind, value, start, cur, seen, depth) AS (
        SELECT i.kind, i.value, i.profile_id, i.profile_id, i.last_seen, 0
        FROM identifiers AS i JOIN ids ON i.kind = ids.kind AND i.value = ids.value
        UNION ALL
        SELECT o.kind, o.value, o.start, p.merged_into, o.seen, o.depth + 1 FROM owner AS o
        JOIN profiles AS p ON p.id = o.cur WHERE p.merged_into IS NOT NULL AND o.depth < 100000
      )
      SELECT kind, value, start, cur, seen FROM owner AS o
      WHERE NOT EXISTS (SELECT 1 FROM profiles AS p WHERE p.id = o.cur AND p.merged_into IS NOT NULL)
      """, logger: logger)
    var owned: [(Identifier, Int64, Int64, Int64)] = []
    for try await (k, v, start, cur, seen) in rows.decode((String, String, Int64, Int64, Int64).self) {
      owned.append((Identifier(k, v), start, cur, seen))
    }
    // Union-find over live owners joined by a shared identifier; the smallest id is each set's root.
    var parent: [Int64: Int64] = [:]
    func find(_ x: Int64) -> Int64 {
      var r = x
      while let p = parent[r], p != r { r = p }
      var y = x
      while let p = parent[y], p != r {
        parent[y] = r
        y = p
      }
      return r
    }
    // Only identifiers that a profile outside this batch's rows also holds are contested: a batch may itself
    // give one identifier to two profiles (the protocol allows it, and the behaviour suite does it), which is
    // this writer's decision, not a race.
    var mine: [Identifier: Set<Int64>] = [:]
    for row in batch.identifiers { mine[row.identifier, default: []].insert(row.profile.raw) }
    var contested = Set<Identifier>()
    for (i, start, _, _) in owned where !(mine[i]?.contains(start) ?? false) { contested.insert(i) }
    owned.removeAll { !contested.contains($0.0) }
    if owned.isEmpty { return }
    var firstOwner: [Identifier: Int64] = [:]
    var shared: [Int64: Set<Identifier>] = [:]
    for (i, _, cur, _) in owned {
      if parent[cur] == nil { parent[cur] = cur }
      if let other = firstOwner[i] {
        let (a, b) = (find(other), find(cur))
        if a != b {
          parent[max(a, b)] = min(a, b)
          shared[max(a, b), default: []].insert(i)
        }
      } else {
        firstOwner[i] = cur
      }
    }
    var from: [Int64] = []
    var to: [Int64] = []
    var merges: [MergeRecord] = []
    let at = batch.identifiers.map(\.lastSeen).max() ?? Timestamp(microseconds: 0)
    for p in parent.keys.sorted() where find(p) != p {
      from.append(p)
      to.append(find(p))
      merges.append(
        MergeRecord(
          survivor: ProfileID(find(p)), absorbed: ProfileID(p), rule: Self.concurrentMergeRule,
          evidence: (shared[p] ?? []).sorted(), eventID: "", at: at))
    }
    if !from.isEmpty {
      try await conn.query(
        """
        UPDATE profiles AS p SET merged_into = u.t FROM unnest(\(from)::int8[], \(to)::int8[]) AS u(f, t)
        WHERE p.id = u.f
        """, logger: logger)
      try await moveIdentifiers(from: from, to: to, conn)
      // Traits the survivor lacks come over (the policies cannot be re-applied here: their summaries are
      // opaque to the store; `tessera replay` recomputes them exactly). Computed states and memberships of
      // the absorbed profile go, as in any merge.
      try await conn.query(
        """
        INSERT INTO traits (profile_id, trait, value, source, event_id, timestamp, state)
        SELECT u.t, tr.trait, tr.value, tr.source, tr.event_id, tr.timestamp, tr.state FROM traits AS tr
        JOIN unnest(\(from)::int8[], \(to)::int8[]) AS u(f, t) ON tr.profile_id = u.f
        ON CONFLICT (profile_id, trait) DO NOTHING
        """, logger: logger)
      for table in ["traits", "computed_traits", "memberships", "sightings"] {
        try await conn.query(
          "DELETE FROM \(unescaped: table) WHERE profile_id = ANY(\(from)::int8[])", logger: logger)
      }
      try await logMerges(merges, conn)
    }
    // Rows still held by a profile that is not live (merged away by another process before this batch):
    // move them to their live profile.
    var stale: [(Identifier, Int64, Int64)] = []
    var staleStarts: [Int64] = []
    let absorbedHere = Set(from)
    for (i, start, cur, seen) in owned where find(cur) != start && !absorbedHere.contains(start) {
      stale.append((i, find(cur), seen))
      staleStarts.append(start)
    }
    if !stale.isEmpty {
      let k = stale.map(\.0.kind)
      let v = stale.map(\.0.value)
      try await conn.query(
        """
        DELETE FROM identifiers AS i USING unnest(\(k)::text[], \(v)::text[], \(staleStarts)::int8[]) AS u(k, v, p)
        WHERE i.kind = u.k AND i.value = u.v AND i.profile_id = u.p
        """, logger: logger)
      var newest: [Identifier: [Int64: Int64]] = [:]
      for (i, p, seen) in stale { newest[i, default: [:]][p] = max(seen, newest[i]?[p] ?? .min) }
      let rows = newest.flatMap { i, byProfile in byProfile.map { (i, $0.key, $0.value) } }
        .sorted { ($0.0, $0.1) < ($1.0, $1.1) }
      try await upsertIdentifiers(rows, conn)
    }
  }

  /// Keeps the trait policies readers explain trait values by (`TraitPolicies`).
  static func writeTraitPolicies(_ p: TraitPolicies, _ conn: PostgresConnection, _ logger: Logger) async throws {
    try await conn.query(
      """
      INSERT INTO settings (key, value) VALUES ('trait_policies', \(p.encoded))
      ON CONFLICT (key) DO UPDATE SET value = excluded.value WHERE settings.value IS DISTINCT FROM excluded.value
      """, logger: logger)
  }

  static func traitsQuery(_ traits: [TraitRecord]) -> PostgresQuery {
    // The last record of a (profile, trait) in the batch wins.
    var last: [ProfileTrait: Int] = [:]
    for (n, t) in traits.enumerated() { last[ProfileTrait(profile: t.profile.raw, trait: t.trait)] = n }
    let rows = last.values.sorted().map { traits[$0] }
    let profiles = rows.map(\.profile.raw)
    let names = rows.map(\.trait)
    let values = rows.map(\.storedValue)
    let sources = rows.map(\.source)
    let events = rows.map(\.eventID)
    let timestamps = rows.map(\.timestamp.microseconds)
    let states = rows.map(\.storedState)
    return """
      INSERT INTO traits (profile_id, trait, value, source, event_id, timestamp, state)
      SELECT unnest(\(profiles)::int8[]), unnest(\(names)::text[]), unnest(\(values)::text[]),
        unnest(\(sources)::text[]), unnest(\(events)::text[]), unnest(\(timestamps)::int8[]), unnest(\(states)::text[])
      ON CONFLICT (profile_id, trait) DO UPDATE SET
        value = excluded.value, source = excluded.source, event_id = excluded.event_id,
        timestamp = excluded.timestamp, state = excluded.state
      """
  }

  func writeComputed(_ computed: [ComputedRecord], _ conn: PostgresConnection) async throws {
    var last: [ProfileTrait: Int] = [:]
    for (n, c) in computed.enumerated() { last[ProfileTrait(profile: c.profile.raw, trait: c.trait)] = n }
    let rows = last.values.sorted().map { computed[$0] }
    let gone = rows.filter { $0.storedState == nil }
    if !gone.isEmpty {
      let p = gone.map(\.profile.raw)
      let t = gone.map(\.trait)
      try await conn.query(
        """
        DELETE FROM computed_traits AS c USING unnest(\(p)::int8[], \(t)::text[]) AS u(p, t)
        WHERE c.profile_id = u.p AND c.trait = u.t
        """, logger: logger)
    }
    let kept = rows.compactMap { c in c.storedState.map { (c, $0) } }
    if !kept.isEmpty {
      let p = kept.map(\.0.profile.raw)
      let t = kept.map(\.0.trait)
      let v = kept.map { StoredValue.encode($0.0.value) }
      let s = kept.map(\.1)
      try await conn.query(
        """
        INSERT INTO computed_traits (profile_id, trait, value, state)
        SELECT * FROM unnest(\(p)::int8[], \(t)::text[], \(v)::text[], \(s)::text[])
        ON CONFLICT (profile_id, trait) DO UPDATE SET value = excluded.value, state = excluded.state
        """, logger: logger)
    }
  }

  func writeSegmentChanges(_ changes: [SegmentChangeRecord], _ conn: PostgresConnection) async throws {
    // Applied in order, a (segment, profile)'s memberships end as its last change says.
    var last: [SegmentProfile: Int] = [:]
    for (n, c) in changes.enumerated() { last[SegmentProfile(segment: c.segment, profile: c.profile.raw)] = n }
    let finals = last.values.sorted().map { changes[$0] }
    let exits = finals.filter { !$0.entered }
    if !exits.isEmpty {
      let s = exits.map(\.segment)
      let p = exits.map(\.profile.raw)
      try await conn.query(
        """
        DELETE FROM memberships AS m USING unnest(\(s)::text[], \(p)::int8[]) AS u(s, p)
        WHERE m.segment = u.s AND m.profile_id = u.p
        """, logger: logger)
    }
    let enters = finals.filter(\.entered)
    if !enters.isEmpty {
      let s = enters.map(\.segment)
      let p = enters.map(\.profile.raw)
      let at = enters.map(\.at.microseconds)
      try await conn.query(
        """
        INSERT INTO memberships (segment, profile_id, since)
        SELECT * FROM unnest(\(s)::text[], \(p)::int8[], \(at)::int8[])
        ON CONFLICT (segment, profile_id) DO UPDATE SET since = excluded.since
        """, logger: logger)
    }
    let segments = changes.map(\.segment)
    let profiles = changes.map(\.profile.raw)
    let entered = changes.map(\.entered)
    let at = changes.map(\.at.microseconds)
    let values = changes.map { StoredValue.encode(.map($0.values)) }
    let merged = changes.map { $0.mergedInto?.raw ?? 0 }
    let hasMerged = changes.map { $0.mergedInto != nil }
    try await conn.query(
      """
      INSERT INTO segment_changes (segment, profile_id, entered, at, "values", merged_into)
      SELECT s, p, e, a, v, CASE WHEN h THEN m END FROM unnest(\(segments)::text[], \(profiles)::int8[],
        \(entered)::bool[], \(at)::int8[], \(values)::text[], \(merged)::int8[], \(hasMerged)::bool[])
        WITH ORDINALITY AS u(s, p, e, a, v, m, h, o)
      ORDER BY o
      """, logger: logger)
  }
}

struct ProfileTrait: Hashable {
  var profile: Int64
  var trait: String
}

struct SegmentProfile: Hashable {
  var segment: String
  var profile: Int64
}
