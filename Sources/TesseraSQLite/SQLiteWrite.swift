import GRDB
import TesseraIdentity
import TesseraModel
import TesseraStore

extension SQLiteStore {
  // MARK: - Writing

  public func commit(_ batch: CommitBatch) async throws {
    if batch.isEmpty { return }
    // Compressed here, on the caller's task and in parallel, rather than on the store's one writer thread.
    let packed = await records.precompress(batch.events)
    let unindexed: IndexRows
    do {
      unindexed = try await writing(units: max(1, batch.events.count)) { [records, logTail] db in
        try Self.write(batch, records: records, packed: packed, tail: logTail, db)
      }
      records.finished(committed: true)
    } catch {
      records.finished(committed: false)
      throw error
    }
    // Kept only once the transaction committed: rows of a rolled-back append must never be indexed.
    if !unindexed.isEmpty { deferredIndex.withLock { $0.add(unindexed) } }
  }

  /// Writes the batch inside the caller's transaction, in the order `MemoryStore` applies it.
  ///
  /// Each statement is looked up once per batch and re-bound per row; the hot ones bind through
  /// `RowStatement`, the rest through `execute(arguments:)`, which binds strings
  /// without copying them.
  /// Returns the index rows a bulk append left for `finishWriting` (empty unless `batch.deferIndexes`).
  /// `tail`: the store's events appended behind their indexes (`LogTail`), nil for a write that appends no events.
  @discardableResult
  static func write(
    _ batch: CommitBatch, records: RecordCodec? = nil, packed: PackedRecords? = nil, tail: LogTailBox? = nil,
    _ db: Database
  ) throws -> IndexRows {
    if let expected = batch.epoch {
      let found = try epoch(db)
      if found != expected { throw StoreError.stale(expected: expected, found: found) }
    }
    if let done = batch.journalDone.max() {
      // The journal is resolved in order: everything up to `done` is stored with this transaction. The
      // entries themselves leave the intake file with a later append (`appendJournal`).
      try db.execute(
        sql: "UPDATE meta SET value = max(value, ?) WHERE key = 'journal_done'", arguments: [done])
    }
    for c in batch.sourceCursors {
      try db.execute(
        sql:
          "INSERT INTO source_cursors (source, value) VALUES (?, ?) ON CONFLICT (source) DO UPDATE SET value = excluded.value",
        arguments: [c.source, c.value])
    }
    if !batch.newProfiles.isEmpty {
      let insert = RowStatement(
        try db.cachedStatement(sql: "INSERT OR IGNORE INTO profiles (id, created_at) VALUES (?, ?)"))
      for n in batch.newProfiles { try insert.run(n.id.raw, n.createdAt.microseconds) }
    }
    if !batch.seenDeferred.isEmpty {
      // Where the held-back last-seen moves begin (the first event this transaction appends), unless an
      // earlier transaction of the run already marked it.
      try db.execute(
        sql: "INSERT OR IGNORE INTO meta (key, value) SELECT 'seen_from', coalesce(max(seq), 0) + 1 FROM events")
      try db.execute(
        sql: "INSERT OR IGNORE INTO meta (key, value) VALUES ('seen_kinds', ?)",
        arguments: [batch.seenDeferred.sorted().joined(separator: ",")])
    }
    var unindexed = IndexRows()
    if !batch.events.isEmpty {
      unindexed = try Self.append(
        batch.events, deferIndexes: batch.deferIndexes, behind: batch.indexesBehind ? tail : nil, tail: tail,
        records: records, packed: packed, db)
    }
    if !batch.merges.isEmpty {
      let alias = RowStatement(try db.cachedStatement(sql: "UPDATE profiles SET merged_into = ? WHERE id = ?"))
      // Upsert from a SELECT needs the WHERE (SQLite's parsing rule for `ON CONFLICT` after a SELECT).
      let moveIdentifiers = RowStatement(
        try db.cachedStatement(
          sql: """
            INSERT INTO identifiers (kind, value, profile_id, last_seen)
            SELECT kind, value, ?, last_seen FROM identifiers WHERE profile_id = ?
            ON CONFLICT (kind, value, profile_id) DO UPDATE SET last_seen = max(last_seen, excluded.last_seen)
            """))
      let drops = try [
        "DELETE FROM identifiers WHERE profile_id = ?", "DELETE FROM traits WHERE profile_id = ?",
        "DELETE FROM computed_traits WHERE profile_id = ?", "DELETE FROM memberships WHERE profile_id = ?",
        "DELETE FROM sightings WHERE profile_id = ?",
      ].map { RowStatement(try db.cachedStatement(sql: $0)) }
      let record = RowStatement(
        try db.cachedStatement(
          sql: """
            INSERT INTO merges (survivor, absorbed, rule, evidence, event_id, at, score)
            VALUES (?, ?, ?, ?, ?, ?, ?)
            """))
      for m in batch.merges {
        // A self-merge of a known profile fails on the CHECK (and the whole batch rolls back); for an unknown
        // one, moving its identifiers onto itself would delete them, so that part is skipped.
        try alias.run(m.survivor.raw, m.absorbed.raw)
        if m.survivor != m.absorbed {
          try moveIdentifiers.run(m.survivor.raw, m.absorbed.raw)
          for drop in drops { try drop.run(m.absorbed.raw) }
        }
        try record.run(
          m.survivor.raw, m.absorbed.raw, m.rule, StoredValue.encode(m.evidence), m.eventID, m.at.microseconds,
          m.score.isNaN ? Double?.none : m.score)
      }
    }
    // Releases after merges: an identifier a merge moved to the survivor is released from the survivor.
    if !batch.released.isEmpty {
      let delete = try db.cachedStatement(
        sql: "DELETE FROM identifiers WHERE kind = ? AND value = ? AND profile_id = ?")
      for r in batch.released {
        try delete.execute(arguments: [r.identifier.kind, r.identifier.value, r.profile.raw])
      }
    }
    if !batch.sightings.isEmpty || batch.sightingsExpireBefore != nil { try Self.writeSightings(batch, db) }
    if !batch.identifiers.isEmpty {
      let upsert = RowStatement(
        try db.cachedStatement(
          sql: """
            INSERT INTO identifiers (kind, value, profile_id, last_seen) VALUES (?, ?, ?, ?)
            ON CONFLICT (kind, value, profile_id) DO UPDATE SET last_seen = max(last_seen, excluded.last_seen)
            """))
      // In the index's key order, so each of its pages is visited once per transaction rather than once per row
      // (the upsert keeps the newest `last_seen`, whatever the order).
      // (Positions sorted, not a copy of the rows: a bulk run's last transaction holds every identifier it saw
      // again.)
      let rows = batch.identifiers
      let order = rows.indices.sorted {
        (rows[$0].identifier.kind, rows[$0].identifier.value, rows[$0].profile.raw) < (
          rows[$1].identifier.kind, rows[$1].identifier.value, rows[$1].profile.raw
        )
      }
      for n in order {
        try upsert.run(
          rows[n].identifier.kind, rows[n].identifier.value, rows[n].profile.raw, rows[n].lastSeen.microseconds)
      }
    }
    if !batch.conflicts.isEmpty {
      let insert = try db.cachedStatement(
        sql: """
          INSERT INTO conflicts (kept, other, kind, reason, identifiers, event_id, at)
          VALUES (?, ?, ?, ?, ?, ?, ?)
          """)
      for c in batch.conflicts {
        try insert.execute(arguments: [
          c.kept.raw, c.other?.raw, c.kind, c.reason, StoredValue.encode(c.identifiers), c.eventID, c.at.microseconds,
        ])
      }
    }
    if !batch.matchLinks.isEmpty {
      let insert = try db.cachedStatement(
        sql: """
          INSERT INTO match_links (rule, profile_id, candidate_id, event_id, probability, weight, status, reason, at)
          VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)
          """)
      for l in batch.matchLinks {
        try insert.execute(arguments: [
          l.rule, l.profile.raw, l.candidate.raw, l.eventID, l.probability, l.weight, l.status.rawValue, l.reason,
          l.at.microseconds,
        ])
      }
    }
    if !batch.separations.isEmpty {
      let insert = try db.cachedStatement(
        sql: "INSERT OR IGNORE INTO separations (kind_a, value_a, kind_b, value_b) VALUES (?, ?, ?, ?)")
      for p in batch.separations {
        try insert.execute(arguments: [p.first.kind, p.first.value, p.second.kind, p.second.value])
      }
    }
    if !batch.linkStatus.isEmpty {
      let update = try db.cachedStatement(sql: "UPDATE match_links SET status = ? WHERE id = ?")
      for c in batch.linkStatus { try update.execute(arguments: [c.status.rawValue, c.id]) }
    }
    if !batch.traits.isEmpty {
      let upsert = RowStatement(
        try db.cachedStatement(
          sql: """
            INSERT INTO traits (profile_id, trait, value, source, event_id, timestamp, state)
            VALUES (?, ?, ?, ?, ?, ?, ?)
            ON CONFLICT (profile_id, trait) DO UPDATE SET
              value = excluded.value, source = excluded.source, event_id = excluded.event_id,
              timestamp = excluded.timestamp, state = excluded.state
            """))
      // In place: iterating the array copied each record (its strings and values retained and released).
      try batch.traits.withUnsafeBufferPointer { traits in
        for n in traits.indices {
          try upsert.run(
            traits[n].profile.raw, traits[n].trait, traits[n].storedValue, traits[n].source, traits[n].eventID,
            traits[n].timestamp.microseconds, traits[n].storedState)
        }
      }
      if let p = batch.traitPolicies { try Self.writeTraitPolicies(p, db) }
    }
    if !batch.computed.isEmpty {
      let upsert = RowStatement(
        try db.cachedStatement(
          sql: """
            INSERT INTO computed_traits (profile_id, trait, value, state) VALUES (?, ?, ?, ?)
            ON CONFLICT (profile_id, trait) DO UPDATE SET value = excluded.value, state = excluded.state
            """))
      let delete = RowStatement(
        try db.cachedStatement(sql: "DELETE FROM computed_traits WHERE profile_id = ? AND trait = ?"))
      for c in batch.computed {
        if let state = c.storedState {
          try upsert.run(c.profile.raw, c.trait, StoredValue.encode(c.value), state)
        } else {
          try delete.run(c.profile.raw, c.trait)
        }
      }
    }
    if !batch.segmentChanges.isEmpty {
      let enter = RowStatement(
        try db.cachedStatement(
          sql: "INSERT OR REPLACE INTO memberships (segment, profile_id, since) VALUES (?, ?, ?)"))
      let exit = RowStatement(
        try db.cachedStatement(sql: "DELETE FROM memberships WHERE segment = ? AND profile_id = ?"))
      let log = RowStatement(
        try db.cachedStatement(
          sql: """
            INSERT INTO segment_changes (segment, profile_id, entered, at, "values", merged_into)
            VALUES (?, ?, ?, ?, ?, ?)
            """))
      for c in batch.segmentChanges {
        if c.entered {
          try enter.run(c.segment, c.profile.raw, c.at.microseconds)
        } else {
          try exit.run(c.segment, c.profile.raw)
        }
        try log.run(
          c.segment, c.profile.raw, c.entered, c.at.microseconds, StoredValue.encode(.map(c.values)),
          c.mergedInto?.raw)
      }
    }
    if batch.seenFlushed { try db.execute(sql: "DELETE FROM meta WHERE key IN ('seen_from', 'seen_kinds')") }
    if !batch.outbox.isEmpty { try Self.enqueue(batch.outbox, db) }
    if !batch.rejected.isEmpty {
      let insert = try db.cachedStatement(
        sql: "INSERT OR IGNORE INTO rejected (source, line, record, reason, at) VALUES (?, ?, ?, ?, ?)")
      for r in batch.rejected {
        try insert.execute(arguments: [r.source, r.line, r.record, r.reason, r.at.microseconds])
      }
    }
    return unindexed
  }

  /// Keeps the trait policies readers explain trait values by (`TraitPolicies`), in `meta`.
  static func writeTraitPolicies(_ p: TraitPolicies, _ db: Database) throws {
    try db.execute(
      sql: """
        INSERT INTO meta (key, value) VALUES ('trait_policies', ?)
        ON CONFLICT (key) DO UPDATE SET value = excluded.value WHERE value IS NOT excluded.value
        """,
      arguments: [p.encoded])
  }

  /// Replaces each profile's stored sightings (none: the row goes) and prunes the expired ones.
  static func writeSightings(_ batch: CommitBatch, _ db: Database) throws {
    let upsert = RowStatement(
      try db.cachedStatement(
        sql: "INSERT OR REPLACE INTO sightings (profile_id, expires, sightings) VALUES (?, ?, ?)"))
    let delete = RowStatement(try db.cachedStatement(sql: "DELETE FROM sightings WHERE profile_id = ?"))
    for r in batch.sightings {
      if r.sightings.isEmpty {
        try delete.run(r.profile.raw)
      } else {
        try upsert.run(r.profile.raw, r.expires.microseconds, r.encoded)
      }
    }
    if let before = batch.sightingsExpireBefore {
      try db.execute(sql: "DELETE FROM sightings WHERE expires < ?", arguments: [before.microseconds])
    }
  }

  public func replaceDerivedState(_ s: DerivedState) async throws {
    try await writing { [logTail] db in
      try Self.indexTail(db, tail: logTail)
      try Self.advanceEpoch(db)
      try db.execute(sql: "DELETE FROM profiles; DELETE FROM identifiers; DELETE FROM traits;")
      try db.execute(sql: "DELETE FROM computed_traits; DELETE FROM memberships; DELETE FROM sightings;")
      let profile = try db.cachedStatement(
        sql: "INSERT INTO profiles (id, created_at, merged_into) VALUES (?, ?, NULL)")
      for p in s.profiles { try profile.execute(arguments: [p.id.raw, p.createdAt.microseconds]) }
      let alias = try db.cachedStatement(sql: "UPDATE profiles SET merged_into = ? WHERE id = ?")
      for a in s.aliases { try alias.execute(arguments: [a.survivor.raw, a.absorbed.raw]) }
      let identifier = try db.cachedStatement(
        sql: "INSERT INTO identifiers (kind, value, profile_id, last_seen) VALUES (?, ?, ?, ?)")
      for row in s.identifiers {
        try identifier.execute(arguments: [
          row.identifier.kind, row.identifier.value, row.profile.raw, row.lastSeen.microseconds,
        ])
      }
      try Self.moveEvents(s.eventProfiles, db)
      let membership = try db.cachedStatement(
        sql: "INSERT INTO memberships (segment, profile_id, since) VALUES (?, ?, ?)")
      for m in s.memberships { try membership.execute(arguments: [m.segment, m.profile.raw, m.since.microseconds]) }
      // Traits, computed traits, merges and conflicts go through the ordinary batch writer.
      var batch = CommitBatch()
      batch.traits = s.traits
      batch.computed = s.computed
      batch.conflicts = s.conflicts
      batch.sightings = s.sightings
      batch.traitPolicies = s.traitPolicies
      try Self.write(batch, db)
      let merge = try db.cachedStatement(
        sql: "INSERT INTO merges (survivor, absorbed, rule, evidence, event_id, at, score) VALUES (?, ?, ?, ?, ?, ?, ?)"
      )
      for m in s.merges {
        try merge.execute(arguments: [
          m.survivor.raw, m.absorbed.raw, m.rule, StoredValue.encode(m.evidence), m.eventID, m.at.microseconds,
          m.score.isNaN ? nil : m.score,
        ])
      }
    }
  }

  public func erase(profile: ProfileID, values: [String], suppress: [String], notices: [OutboxRecord]) async throws
    -> DeletionReport
  {
    let report = try await writing { [logTail] db in
      // Deleted content is overwritten with zeros, not left in free pages.
      try db.execute(sql: "PRAGMA secure_delete = ON")
      try Self.advanceEpoch(db)
      var r = DeletionReport()
      let live = try Self.live(profile, db) ?? profile
      let family = try Int64.fetchAll(
        db, sql: Self.familyCTE + " SELECT id FROM fam", arguments: [live.raw])
      guard !family.isEmpty else { return r }
      try db.execute(sql: "CREATE TEMP TABLE IF NOT EXISTS erase_fam (id INTEGER PRIMARY KEY)")
      try db.execute(sql: "DELETE FROM erase_fam")
      for id in family { try db.execute(sql: "INSERT INTO erase_fam (id) VALUES (?)", arguments: [id]) }
      func run(_ sql: String, _ arguments: StatementArguments = []) throws -> Int {
        try db.execute(sql: sql, arguments: arguments)
        return db.changesCount
      }
      let inFam = "IN (SELECT id FROM erase_fam)"
      try Self.indexTail(db, tail: logTail)
      r.events = try Self.eraseEvents(inFam, db)
      r.identifiers = try run("DELETE FROM identifiers WHERE profile_id \(inFam)")
      r.traits = try run("DELETE FROM traits WHERE profile_id \(inFam)")
      r.computed = try run("DELETE FROM computed_traits WHERE profile_id \(inFam)")
      r.memberships = try run("DELETE FROM memberships WHERE profile_id \(inFam)")
      _ = try run("DELETE FROM sightings WHERE profile_id \(inFam)")
      r.segmentChanges = try run(
        "DELETE FROM segment_changes WHERE profile_id \(inFam) OR merged_into \(inFam)")
      r.merges = try run("DELETE FROM merges WHERE survivor \(inFam) OR absorbed \(inFam)")
      r.conflicts = try run("DELETE FROM conflicts WHERE kept \(inFam) OR other \(inFam)")
      r.matchLinks = try run("DELETE FROM match_links WHERE profile_id \(inFam) OR candidate_id \(inFam)")
      // Pending deliveries: their rows, and the batches left without rows (delivered batches hold none).
      r.deliveries = try run("DELETE FROM outbox WHERE profile_id \(inFam)")
      _ = try run(
        "DELETE FROM delivery_batches WHERE status <> 'delivered' AND id NOT IN "
          + "(SELECT batch_id FROM outbox WHERE batch_id IS NOT NULL)")
      for v in values where !v.isEmpty {
        r.rejected += try run("DELETE FROM rejected WHERE instr(record, ?) > 0", [v])
        _ = try run("DELETE FROM separations WHERE value_a = ? OR value_b = ?", [v, v])
      }
      r.profiles = try run("DELETE FROM profiles WHERE id \(inFam)")
      try db.execute(sql: "DELETE FROM erase_fam")
      for h in suppress { try db.execute(sql: "INSERT OR IGNORE INTO suppressions (hash) VALUES (?)", arguments: [h]) }
      if !notices.isEmpty { try Self.enqueue(notices, db) }
      return r
    }
    // The write-ahead log still holds the pages as they were: fold it into the file and empty it.
    try await checkpointer.truncate()
    return report
  }

  // MARK: - The event log

  /// Appends events to the log, each once: an event whose (source, id) the log already holds, or that comes
  /// again later in `events`, is left out (the first one stays).
  ///
  /// Rows go to `events` in the order given (their `seq` is the write order); the two ways of finding them,
  /// `event_keys` (by `EventKey.logKey`) and `profile_events` (by profile and time), are written afterwards in
  /// their own key order, so each index page is visited once per transaction instead of once per row. With
  /// `deferIndexes` they are not written but returned (`IndexRows`), for `finishWriting` to add in one sorted
  /// pass when the bulk writer is done (`indexTail`), and the writer vouches for the events since then.
  /// With `behind` (`CommitBatch.indexesBehind`) they join the store's `LogTail`, written once it holds
  /// `flushAt` events; repeats of the tail's events are left out as those of indexed ones are.
  static func append(
    _ events: [StoredEvent], deferIndexes: Bool, behind: LogTailBox? = nil, tail: LogTailBox? = nil,
    records: RecordCodec?, packed: PackedRecords? = nil, _ db: Database
  ) throws -> IndexRows {
    var added = LogTail.Added()
    var inTail: [EventKey: Int64] = [:]
    if let behind {
      // The tail this process kept is the log's unindexed tail, or the log is indexed first (a crash or another
      // process left events past `log_indexed`) and the tail starts over.
      let done = try Int64.fetchOne(db, sql: "SELECT value FROM meta WHERE key = 'log_indexed'") ?? 0
      let last = try Int64.fetchOne(db, sql: "SELECT max(seq) FROM events") ?? 0
      let covered = behind.state.withLock { $0.covers(done: done, last: last) }
      if covered {
        inTail = behind.find(events.map { EventKey(source: $0.event.source, id: $0.event.id) }).found
      } else {
        try indexTail(db, kept: behind.state.withLock { $0.rows })
        added.restart = true
        added.through = last
      }
    } else if !deferIndexes {
      // What an earlier bulk writer (or a server's tail) left is indexed first, so the cursor can move past this
      // batch below.
      try indexTail(db, tail: tail)
    }
    // The events are read in place: `Array`'s `map` and subscript copy each `StoredEvent` (a dozen references to
    // retain and release) — a copy per event in each of the loops below was ~5 % of the writer thread.
    return try events.withUnsafeBufferPointer { events in
      try appendRows(
        events, deferIndexes: deferIndexes, behind: behind, records: records, packed: packed, added: &added,
        inTail: inTail, db)
    }
  }

  /// `append`'s rows, from the events in place: the duplicate check, the `events` rows, and the index rows
  /// (returned, joined to the tail, or written).
  private static func appendRows(
    _ events: UnsafeBufferPointer<StoredEvent>, deferIndexes: Bool, behind: LogTailBox?, records: RecordCodec?,
    packed: PackedRecords?, added: inout LogTail.Added, inTail: [EventKey: Int64], _ db: Database
  ) throws -> IndexRows {
    let keys = events.indices.map { EventKey(source: events[$0].event.source, id: events[$0].event.id).logKey }
    let byKey = events.indices.sorted { (keys[$0], $0) < (keys[$1], $1) }
    var skip = [Bool](repeating: false, count: events.count)
    // Duplicates, in key order: the log's events with each key, and the batch's own.
    let logged = try db.cachedStatement(
      sql: "SELECT e.source, e.id FROM event_keys AS k JOIN events AS e ON e.seq = k.seq WHERE k.key = ?")
    // A log with no key indexed yet (a bulk writer's first run into a new store) holds nothing a key could
    // find: its million lookups were a tenth of the writer's SQLite time.
    let anyKeys = try Bool.fetchOne(db, sql: "SELECT EXISTS (SELECT 1 FROM event_keys)") ?? true
    var start = 0
    while start < byKey.count {
      var end = start + 1
      while end < byKey.count, keys[byKey[end]] == keys[byKey[start]] { end += 1 }
      if !anyKeys, inTail.isEmpty, end == start + 1 {
        // Nothing logged or in the tail has this key, and no other event of the batch: not a repeat.
        start = end
        continue
      }
      var held: [(String, String)] = []
      if anyKeys {
        let rows = try Row.fetchCursor(logged, arguments: [keys[byKey[start]]])
        while let row = try rows.next() { held.append((row[0], row[1])) }
      }
      for n in byKey[start..<end] {
        let (source, id) = (events[n].event.source, events[n].event.id)
        if held.contains(where: { $0.0 == source && $0.1 == id })
          || (!inTail.isEmpty && inTail[EventKey(source: source, id: id)] != nil)
        {
          skip[n] = true
        } else {
          held.append((source, id))
        }
      }
      start = end
    }
    let insert = RowStatement(
      try db.cachedStatement(
        sql: """
          INSERT INTO events (source, id, type, name, timestamp, received_at, profile_id, identifiers, format, body)
          VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)
          """))
    var seqs = [Int64](repeating: 0, count: events.count)
    do {
      let compressor = try records.flatMap { codec in
        try codec.dictionary(for: events, db).map { RecordCompressor(codec: codec, dictionary: $0) }
      }
      let ahead = packed.flatMap { p in
        p.dictionary == compressor?.dictionary.id && p.bodies.count == events.count ? p : nil
      }
      // The identifiers' text, encoded before the transaction with the records (whatever their dictionary).
      let texts = packed.flatMap { $0.identifiers.count == events.count ? $0.identifiers : nil }
      for n in events.indices where !skip[n] {
        let ids = texts?[n] ?? StoredValue.encode(events[n].event.identifiers)
        func logged(_ format: Int, _ body: some RowValue) throws {
          try insert.run(
            events[n].event.source, events[n].event.id, events[n].event.type, events[n].event.name,
            events[n].event.timestamp.microseconds, events[n].event.receivedAt.microseconds, events[n].profile.raw,
            ids, format, body)
        }
        if let record = events[n].event.record {
          // Compressed before the transaction (with this transaction's dictionary), else now; as received when
          // compressing does not make it smaller.
          let packed: Bool
          if let ahead {
            let body = ahead.bodies[n]
            try body?.withUnsafeBytes { try logged(Self.compressedRecordFormat, RawBlob(bytes: $0)) }
            packed = body != nil
          } else {
            packed =
              try compressor?.compress(record) { try logged(Self.compressedRecordFormat, RawBlob(bytes: $0)) }
              ?? false
          }
          if !packed { try logged(EventLogFormat.record, Blob(bytes: record)) }
        } else {
          let mapped = RecordBytes(Array(EventLogFormat.mappedBody(events[n].event).utf8))
          try logged(EventLogFormat.mapped, Blob(bytes: mapped))
        }
        seqs[n] = db.lastInsertedRowID
      }
    }
    var rows = IndexRows()
    rows.keys.reserveCapacity(events.count)
    rows.timeline.reserveCapacity(events.count)
    for n in events.indices where !skip[n] {
      rows.keys.append(IndexRows.Key(key: keys[n], seq: seqs[n]))
      rows.timeline.append(
        IndexRows.Timeline(
          profile: events[n].profile.raw, timestamp: events[n].event.timestamp.microseconds, seq: seqs[n]))
    }
    if deferIndexes { return rows }
    if let behind {
      for n in events.indices where !skip[n] {
        added.positions.append((EventKey(source: events[n].event.source, id: events[n].event.id), seqs[n]))
        added.through = max(added.through, seqs[n])
      }
      let waiting = behind.state.withLock { added.restart ? 0 : $0.rows.keys.count }
      if waiting + rows.keys.count < behind.flushAt {
        added.rows = rows
      } else {
        // The tail and this batch, in the indexes' order: each index page once for all of them.
        var all = added.restart ? IndexRows() : behind.state.withLock { $0.rows }
        all.keys += rows.keys
        all.timeline += rows.timeline
        try all.sorted().write(db)
        // Every event up to the log's end is indexed now (the tail covered the rest: checked above).
        let end = try Int64.fetchOne(db, sql: "SELECT max(seq) FROM events") ?? 0
        try db.execute(sql: "UPDATE meta SET value = ? WHERE key = 'log_indexed'", arguments: [end])
        added = LogTail.Added(restart: true, through: end)
      }
      behind.applyOnCommit(added, db)
      return IndexRows()
    }
    try rows.sorted().write(db)
    try db.execute(sql: "UPDATE meta SET value = (SELECT max(seq) FROM events) WHERE key = 'log_indexed'")
    return IndexRows()
  }

  /// Indexes the events a bulk writer appended past `log_indexed` (in key order, one pass per index) and moves
  /// the cursor to the end of the log.
  ///
  /// `kept`: the index rows this process kept when it appended them. When they are every row past
  /// `log_indexed` (one per position up to the end of the log), they are sorted and written as they are;
  /// otherwise (another process appended too, a run before this one was killed, more were appended than
  /// `IndexRows.limit`) the rows are read back from the log.
  /// `tail`: the store's `LogTail`, whose rows are used when nothing else is kept; it starts over once the
  /// transaction commits.
  static func indexTail(_ db: Database, kept: IndexRows = IndexRows(), tail: LogTailBox? = nil) throws {
    var kept = kept
    if let tail {
      tail.resetOnCommit(db)
      if kept.isEmpty { kept = tail.state.withLock { $0.rows } }
    }
    guard let done = try Int64.fetchOne(db, sql: "SELECT value FROM meta WHERE key = 'log_indexed'"),
      let last = try Int64.fetchOne(db, sql: "SELECT max(seq) FROM events"), last > done
    else { return }
    if let rows = kept.rows(after: done, through: last) {
      try rows.write(db)
      try db.execute(sql: "UPDATE meta SET value = ? WHERE key = 'log_indexed'", arguments: [last])
      return
    }
    try db.execute(
      sql: """
        INSERT INTO event_keys (key, seq) SELECT tessera_log_key(source, id), seq FROM events WHERE seq > ?
        ORDER BY 1, 2
        """, arguments: [done])
    try db.execute(
      sql: """
        INSERT INTO profile_events (profile_id, timestamp, seq) SELECT profile_id, timestamp, seq FROM events
        WHERE seq > ? ORDER BY 1, 2, 3
        """, arguments: [done])
    try db.execute(sql: "UPDATE meta SET value = ? WHERE key = 'log_indexed'", arguments: [last])
  }

  public var defersLastSeen: Bool { true }

  /// Moves the last-seen times of the identifiers a bulk writer held back (`CommitBatch.seenDeferred`) and did
  /// not write because it ended early, reading them from the events logged since: each event's identifiers of
  /// those kinds were seen at its time by the profile it resolved to, which now holds them under its live id
  /// (merges move identifiers to the survivor; an identifier released since is on no row of that profile).
  static func catchUpLastSeen(_ db: Database) throws {
    guard let from = try Int64.fetchOne(db, sql: "SELECT value FROM meta WHERE key = 'seen_from'") else { return }
    let kinds = Set(
      (try String.fetchOne(db, sql: "SELECT value FROM meta WHERE key = 'seen_kinds'") ?? "").split(separator: ",")
        .map(String.init))
    var live: [Int64: Int64] = [:]
    func resolve(_ p: Int64) throws -> Int64 {
      if let l = live[p] { return l }
      let l = try liveOrSelf(ProfileID(p), db).raw
      live[p] = l
      return l
    }
    struct Seen: Hashable {
      var identifier: Identifier
      var profile: Int64
    }
    var latest: [Seen: Int64] = [:]
    let rows = try Row.fetchCursor(
      db, sql: "SELECT profile_id, timestamp, identifiers FROM events WHERE seq >= ? ORDER BY seq", arguments: [from])
    while let row = try rows.next() {
      guard let text: String = row[2] else { continue }
      let at: Int64 = row[1]
      for i in try StoredValue.decodeIdentifiers(text) where kinds.contains(i.kind) {
        let key = Seen(identifier: i, profile: try resolve(row[0]))
        if at > latest[key] ?? .min { latest[key] = at }
      }
    }
    let update = RowStatement(
      try db.cachedStatement(
        sql: "UPDATE identifiers SET last_seen = max(last_seen, ?4) WHERE kind = ?1 AND value = ?2 AND profile_id = ?3")
    )
    for (k, at) in latest.sorted(by: { ($0.key.identifier, $0.key.profile) < ($1.key.identifier, $1.key.profile) }) {
      try update.run(k.identifier.kind, k.identifier.value, k.profile, at)
    }
    try db.execute(sql: "DELETE FROM meta WHERE key IN ('seen_from', 'seen_kinds')")
  }

  public func finishWriting() async throws {
    let kept = deferredIndex.withLock { d in
      defer { d = IndexRows() }
      return d
    }
    try await writing { [logTail] db in
      try Self.indexTail(db, kept: kept, tail: logTail)
      // A run that ended early (its last transaction writes what it held back and clears the mark).
      try Self.catchUpLastSeen(db)
    }
    // The write-ahead log folded into the file and emptied: the store is one file at rest.
    try await SQLiteFault.classifying { try await checkpointer.truncate() }
  }

  /// Gives logged events another profile (a replay's result), in `events` and in `profile_events`.
  static func moveEvents(_ moves: [EventProfile], _ db: Database) throws {
    let find = try db.cachedStatement(
      sql: "SELECT e.seq, e.profile_id, e.timestamp FROM event_keys AS k JOIN events AS e ON e.seq = k.seq "
        + "WHERE k.key = ? AND e.source = ? AND e.id = ?")
    let set = try db.cachedStatement(sql: "UPDATE events SET profile_id = ? WHERE seq = ?")
    let drop = try db.cachedStatement(
      sql: "DELETE FROM profile_events WHERE profile_id = ? AND timestamp = ? AND seq = ?")
    let add = try db.cachedStatement(
      sql: "INSERT OR IGNORE INTO profile_events (profile_id, timestamp, seq) VALUES (?, ?, ?)")
    for m in moves {
      guard let row = try Row.fetchOne(find, arguments: [m.key.logKey, m.key.source, m.key.id]) else { continue }
      let (seq, old, at): (Int64, Int64, Int64) = (row[0], row[1], row[2])
      if old == m.profile.raw { continue }
      try set.execute(arguments: [m.profile.raw, seq])
      try drop.execute(arguments: [old, at, seq])
      try add.execute(arguments: [m.profile.raw, at, seq])
    }
  }

  /// Deletes the events of the profiles `inFamily` selects (an erasure), with their keys; how many.
  static func eraseEvents(_ inFamily: String, _ db: Database) throws -> Int {
    try db.execute(sql: "CREATE TEMP TABLE IF NOT EXISTS erase_seq (seq INTEGER PRIMARY KEY)")
    try db.execute(sql: "DELETE FROM erase_seq")
    try db.execute(sql: "INSERT INTO erase_seq SELECT seq FROM profile_events WHERE profile_id \(inFamily)")
    let keys = try Row.fetchAll(
      db, sql: "SELECT e.seq, e.source, e.id FROM events AS e WHERE e.seq IN (SELECT seq FROM erase_seq)")
    let dropKey = try db.cachedStatement(sql: "DELETE FROM event_keys WHERE key = ? AND seq = ?")
    for row in keys {
      let seq: Int64 = row[0]
      try dropKey.execute(arguments: [EventKey(source: row[1], id: row[2]).logKey, seq])
    }
    try db.execute(sql: "DELETE FROM profile_events WHERE profile_id \(inFamily)")
    try db.execute(sql: "DELETE FROM events WHERE seq IN (SELECT seq FROM erase_seq)")
    let n = db.changesCount
    try db.execute(sql: "DELETE FROM erase_seq")
    // `seq` is the rowid: once the newest events are gone SQLite hands their positions out again, so
    // `log_indexed` comes back to the end of the log, or the next bulk writer's events would sit at or below it
    // and never be indexed.
    try db.execute(
      sql: """
        UPDATE meta SET value = min(value, coalesce((SELECT max(seq) FROM events), 0))
        WHERE key = 'log_indexed'
        """)
    return n
  }
}

/// The index rows (`event_keys`, `profile_events`) of appended events: written with them, or — for a bulk
/// writer (`CommitBatch.deferIndexes`) — kept until `finishWriting`.
///
/// Building the two indexes at the end of `tessera run` by reading them back from the log (a scan of every
/// appended row, the record bytes included, and a sort in SQLite) was ~3 s of a 21 s run over a million
/// events, all of it after the pipeline had finished; the rows are known when the events are appended, so the
/// store keeps them (40 bytes an event) and sorts them itself.
struct IndexRows: Sendable {
  struct Key: Sendable, Comparable {
    var key: Int64
    var seq: Int64
    static func < (a: Key, b: Key) -> Bool { (a.key, a.seq) < (b.key, b.seq) }
  }
  struct Timeline: Sendable, Comparable {
    var profile: Int64
    var timestamp: Int64
    var seq: Int64
    static func < (a: Timeline, b: Timeline) -> Bool {
      (a.profile, a.timestamp, a.seq) < (b.profile, b.timestamp, b.seq)
    }
  }
  /// Past this many events the rows are dropped and the log is read back instead (bounded memory: ~160 MB).
  static let limit = 4_000_000

  var keys: [Key] = []
  var timeline: [Timeline] = []
  /// More than `limit` were appended: what is kept is incomplete.
  var overflowed = false

  var isEmpty: Bool { keys.isEmpty && !overflowed }

  mutating func add(_ other: IndexRows) {
    if overflowed || other.overflowed || keys.count + other.keys.count > Self.limit {
      self = IndexRows()
      overflowed = true
      return
    }
    keys += other.keys
    timeline += other.timeline
  }

  /// The rows past `done`, sorted for writing, when they are one for each position in `done + 1 ... last`
  /// (positions are never reused within that range: every write that deletes events indexes the tail
  /// first); nil when they are not all here.
  func rows(after done: Int64, through last: Int64) -> IndexRows? {
    guard !overflowed else { return nil }
    var out = IndexRows()
    out.keys = keys.filter { $0.seq > done && $0.seq <= last }
    guard Int64(out.keys.count) == last - done else { return nil }
    // One row per position: as many rows as positions, none twice.
    var seen = [Bool](repeating: false, count: out.keys.count)
    for k in out.keys {
      let n = Int(k.seq - done - 1)
      if seen[n] { return nil }
      seen[n] = true
    }
    out.timeline = timeline.filter { $0.seq > done && $0.seq <= last }
    guard out.timeline.count == out.keys.count else { return nil }
    return out.sorted()
  }

  /// The rows in the indexes' order: each index page is visited once rather than once per row.
  func sorted() -> IndexRows {
    var out = self
    out.keys.sort()
    out.timeline.sort()
    return out
  }

  /// Inserts the rows (sorted: `sorted()`) into `event_keys` and `profile_events`.
  func write(_ db: Database) throws {
    let keyRow = RowStatement(try db.cachedStatement(sql: "INSERT INTO event_keys (key, seq) VALUES (?, ?)"))
    for k in keys { try keyRow.run(k.key, k.seq) }
    let timelineRow = RowStatement(
      try db.cachedStatement(sql: "INSERT INTO profile_events (profile_id, timestamp, seq) VALUES (?, ?, ?)"))
    for t in timeline { try timelineRow.run(t.profile, t.timestamp, t.seq) }
  }
}
