import Logging
import PostgresNIO
import TesseraIdentity
import TesseraModel
import TesseraStore

extension PostgresStore {
  static func enqueue(_ rows: [OutboxRecord], _ conn: PostgresConnection, _ logger: Logger) async throws {
    let destinations = rows.map(\.destination)
    let ops = rows.map(\.op.rawValue)
    let profiles = rows.map(\.profile.raw)
    let keys = rows.map(\.key)
    let payloads = rows.map { JSON.encode($0.payload) }
    let at = rows.map(\.at.microseconds)
    try await conn.query(
      """
      INSERT INTO outbox (destination, op, profile_id, key, payload, at)
      SELECT d, op, p, k, pl, a FROM unnest(\(destinations)::text[], \(ops)::text[], \(profiles)::int8[],
        \(keys)::text[], \(payloads)::text[], \(at)::int8[]) WITH ORDINALITY AS u(d, op, p, k, pl, a, n)
      ORDER BY n
      """, logger: logger)
  }

  public func enqueue(_ rows: [OutboxRecord]) async throws {
    guard !rows.isEmpty else { return }
    try await transaction { conn in try await Self.enqueue(rows, conn, self.logger) }
  }

  static let batchColumns =
    "id, destination, key, status, attempts, items, bytes, created_at, next_attempt_at, lease_until, last_status, "
    + "last_error, finished_at"
  /// Decoded cell by cell: a 13-column tuple decode made Swift 6.3.1's optimizer crash (signal 11 while
  /// splitting the coroutine) in release builds.
  static func batch(_ row: PostgresRow) throws -> DeliveryBatchRecord {
    let r = row.makeRandomAccess()
    func int(_ i: Int) throws -> Int64 { try r[i].decode(Int64.self) }
    func optional(_ i: Int) throws -> Int64? { try r[i].decode(Int64?.self) }
    func text(_ i: Int) throws -> String { try r[i].decode(String.self) }
    let id = try int(0)
    let status = try text(3)
    guard let s = DeliveryBatchRecord.Status(rawValue: status) else {
      throw StoreError.corrupt("delivery batch \(id) has status `\(status)`")
    }
    return DeliveryBatchRecord(
      id: id, destination: try text(1), key: try text(2), status: s, attempts: Int(try int(4)),
      items: Int(try int(5)), bytes: Int(try int(6)), createdAt: Timestamp(microseconds: try int(7)),
      nextAttemptAt: Timestamp(microseconds: try int(8)),
      leaseUntil: try optional(9).map(Timestamp.init(microseconds:)), lastStatus: try optional(10).map { Int($0) },
      lastError: try text(11), finishedAt: try optional(12).map(Timestamp.init(microseconds:)))
  }

  static let outboxColumns = "id, destination, op, profile_id, key, payload, at, length(payload)"
  /// Decoded cell by cell, as `batch(_:)`; the payload's length comes back as `size`.
  static func outboxRow(_ row: PostgresRow) throws -> (record: OutboxRecord, size: Int) {
    let r = row.makeRandomAccess()
    let id = try r[0].decode(Int64.self)
    let op = try r[2].decode(String.self)
    guard let o = OutboxOp(rawValue: op) else { throw StoreError.corrupt("outbox row \(id) has op `\(op)`") }
    let record = OutboxRecord(
      id: id, destination: try r[1].decode(String.self), op: o, profile: ProfileID(try r[3].decode(Int64.self)),
      key: try r[4].decode(String.self), payload: try JSON.parse(try r[5].decode(String.self)),
      at: Timestamp(microseconds: try r[6].decode(Int64.self)))
    return (record, Int(try r[7].decode(Int32.self)))
  }

  /// Several processes may deliver at once: the due batch and the waiting rows are read `FOR UPDATE SKIP
  /// LOCKED`, so a row or batch another transaction is claiming is passed over instead of waited for, and no
  /// two claims ever get the same rows. (A row another claim skipped past may be batched after newer ones.)
  public func claimBatch(_ claim: BatchClaim) async throws -> (DeliveryBatchRecord, [OutboxRecord])? {
    // The body is a method, not a closure: Swift 6.3.1's optimizer crashed (signal 11 while splitting the
    // coroutine) on it as a closure in release builds.
    let found: Claimed? = try await transaction { conn in try await self.claim(claim, conn) }
    return found.map { ($0.batch, $0.rows) }
  }

  func claim(_ claim: BatchClaim, _ conn: PostgresConnection) async throws -> Claimed? {
    let now = claim.now.microseconds
    let lease = (claim.now + claim.lease).microseconds
    let due = try await conn.query(
      """
      SELECT \(unescaped: Self.batchColumns) FROM delivery_batches
      WHERE destination = \(claim.destination) AND ((status = 'pending' AND next_attempt_at <= \(now))
        OR (status = 'sending' AND lease_until <= \(now)))
      ORDER BY next_attempt_at, id LIMIT 1 FOR UPDATE SKIP LOCKED
      """, logger: logger)
    var dueBatch: DeliveryBatchRecord?
    for try await row in due { dueBatch = try Self.batch(row) }
    if var b = dueBatch {
      try await conn.query(
        "UPDATE delivery_batches SET status = 'sending', lease_until = \(lease) WHERE id = \(b.id)", logger: logger)
      b.status = .sending
      b.leaseUntil = claim.now + claim.lease
      let rows = try await conn.query(
        "SELECT \(unescaped: Self.outboxColumns) FROM outbox WHERE batch_id = \(b.id) ORDER BY id", logger: logger)
      var out: [OutboxRecord] = []
      for try await row in rows { out.append(try Self.outboxRow(row).record) }
      return Claimed(batch: b, rows: out)
    }
    return try await claimNew(claim, conn)
  }

  /// A new batch of the oldest waiting rows of the destination, when one is due.
  func claimNew(_ claim: BatchClaim, _ conn: PostgresConnection) async throws -> Claimed? {
    let now = claim.now.microseconds
    let lease = (claim.now + claim.lease).microseconds
    let waitingRows = try await conn.query(
      """
      SELECT \(unescaped: Self.outboxColumns) FROM outbox WHERE destination = \(claim.destination)
        AND batch_id IS NULL ORDER BY id LIMIT \(Int64(claim.maxItems + 1)) FOR UPDATE SKIP LOCKED
      """, logger: logger)
    var waiting: [OutboxRecord] = []
    var sizes: [Int] = []
    for try await row in waitingRows {
      let (record, size) = try Self.outboxRow(row)
      waiting.append(record)
      sizes.append(size)
    }
    guard let cut = OutboxCut(waiting, sizes: sizes, claim) else { return nil }
    let inserted = try await conn.query(
      """
      INSERT INTO delivery_batches (destination, key, status, attempts, items, bytes, created_at,
        next_attempt_at, lease_until, last_error)
      VALUES (\(claim.destination), '', 'sending', 0, \(Int64(cut.rows.count)), \(Int64(cut.bytes)), \(now),
        \(now), \(lease), '')
      RETURNING id
      """, logger: logger)
    var id: Int64 = 0
    for try await x in inserted.decode(Int64.self) { id = x }
    let key = OutboxCut.key(claim.destination, id, claim.now)
    try await conn.query("UPDATE delivery_batches SET key = \(key) WHERE id = \(id)", logger: logger)
    // By id, not `id <= last`: rows skipped as locked may lie between.
    let ids = cut.rows.map(\.id)
    try await conn.query("UPDATE outbox SET batch_id = \(id) WHERE id = ANY(\(ids)::int8[])", logger: logger)
    let b = DeliveryBatchRecord(
      id: id, destination: claim.destination, key: key, status: .sending, attempts: 0, items: cut.rows.count,
      bytes: cut.bytes, createdAt: claim.now, nextAttemptAt: claim.now, leaseUntil: claim.now + claim.lease)
    return Claimed(batch: b, rows: cut.rows)
  }

  public func finishBatch(_ id: Int64, _ result: DeliveryResult) async throws {
    try await transaction { conn in
      switch result {
      case .delivered(let at):
        try await conn.query("DELETE FROM outbox WHERE batch_id = \(id)", logger: logger)
        try await conn.query(
          """
          UPDATE delivery_batches SET status = 'delivered', attempts = attempts + 1, lease_until = NULL,
            last_status = NULL, finished_at = \(at.microseconds) WHERE id = \(id)
          """, logger: logger)
      case .retry(let next, let status, let error, _):
        try await conn.query(
          """
          UPDATE delivery_batches SET status = 'pending', attempts = attempts + 1, lease_until = NULL,
            next_attempt_at = \(next.microseconds), last_status = \(status.map { Int64($0) }), last_error = \(error)
          WHERE id = \(id)
          """, logger: logger)
      case .dead(let status, let error, let at):
        try await conn.query(
          """
          UPDATE delivery_batches SET status = 'dead', attempts = attempts + 1, lease_until = NULL,
            last_status = \(status.map { Int64($0) }), last_error = \(error), finished_at = \(at.microseconds)
          WHERE id = \(id)
          """, logger: logger)
      }
    }
  }

  public func deliveryBatches(status: DeliveryBatchRecord.Status?, destination: String?, limit: Int) async throws
    -> [DeliveryBatchRecord]
  {
    try await read { conn in
      let rows = try await conn.query(
        """
        SELECT \(unescaped: Self.batchColumns) FROM delivery_batches
        WHERE (\(status?.rawValue)::text IS NULL OR status = \(status?.rawValue))
          AND (\(destination)::text IS NULL OR destination = \(destination))
        ORDER BY id DESC LIMIT \(Int64(max(0, limit)))
        """, logger: logger)
      var out: [DeliveryBatchRecord] = []
      for try await row in rows { out.append(try Self.batch(row)) }
      return out
    }
  }

  public func outboxSummary() async throws -> [String: OutboxSummary] {
    try await read { conn in
      var out: [String: OutboxSummary] = [:]
      let queued = try await conn.query(
        "SELECT destination, count(*) FROM outbox WHERE batch_id IS NULL GROUP BY destination", logger: logger)
      for try await (d, n) in queued.decode((String, Int64).self) { out[d, default: OutboxSummary()].queued = Int(n) }
      let batches = try await conn.query(
        """
        SELECT destination, status, count(*), sum(items)::int8, sum(CASE WHEN attempts > 0 THEN 1 ELSE 0 END)::int8,
          min(next_attempt_at)
        FROM delivery_batches GROUP BY destination, status
        """, logger: logger)
      for try await (d, status, n, items, failing, next) in batches.decode(
        (String, String, Int64, Int64?, Int64?, Int64?).self)
      {
        var s = out[d] ?? OutboxSummary()
        switch DeliveryBatchRecord.Status(rawValue: status) {
        case .pending:
          s.pending = Int(n)
          s.failing = Int(failing ?? 0)
          s.nextAttempt = next.map(Timestamp.init(microseconds:))
        case .sending: s.sending = Int(n)
        case .dead:
          s.dead = Int(n)
          s.deadItems = Int(items ?? 0)
        case .delivered:
          s.delivered = Int(n)
          s.deliveredItems = Int(items ?? 0)
        case nil: break
        }
        out[d] = s
      }
      return out
    }
  }

  public func requeueDead(destination: String?, batch: Int64?, at: Timestamp) async throws -> Int {
    try await transaction { conn in
      let rows = try await conn.query(
        """
        UPDATE delivery_batches SET status = 'pending', attempts = 0, next_attempt_at = \(at.microseconds),
          finished_at = NULL
        WHERE status = 'dead' AND (\(destination)::text IS NULL OR destination = \(destination))
          AND (\(batch)::int8 IS NULL OR id = \(batch))
        RETURNING id
        """, logger: logger)
      var n = 0
      for try await _ in rows.decode(Int64.self) { n += 1 }
      return n
    }
  }

  // MARK: - Erasing and replacing

  public func erase(profile: ProfileID, values: [String], suppress: [String], notices: [OutboxRecord]) async throws
    -> DeletionReport
  {
    try await transaction { conn in
      try await self.advanceEpoch(conn)
      var r = DeletionReport()
      let live = try await self.live(profile, conn) ?? profile
      let famRows = try await conn.query(
        PostgresQuery(unsafeSQL: Self.familyCTE + " SELECT id FROM fam", binds: Self.binds(live.raw)),
        logger: logger)
      var family: [Int64] = []
      for try await id in famRows.decode(Int64.self) { family.append(id) }
      // An unknown profile: nothing is erased, suppressed or queued (as the SQLite store does).
      guard !family.isEmpty else { return r }
      func run(_ query: PostgresQuery) async throws -> Int {
        var n = 0
        for try await _ in try await conn.query(query, logger: logger) { n += 1 }
        return n
      }
      r.events = try await run("DELETE FROM events WHERE profile_id = ANY(\(family)::int8[]) RETURNING 1")
      r.identifiers = try await run("DELETE FROM identifiers WHERE profile_id = ANY(\(family)::int8[]) RETURNING 1")
      r.traits = try await run("DELETE FROM traits WHERE profile_id = ANY(\(family)::int8[]) RETURNING 1")
      r.computed = try await run("DELETE FROM computed_traits WHERE profile_id = ANY(\(family)::int8[]) RETURNING 1")
      r.memberships = try await run("DELETE FROM memberships WHERE profile_id = ANY(\(family)::int8[]) RETURNING 1")
      _ = try await run("DELETE FROM sightings WHERE profile_id = ANY(\(family)::int8[]) RETURNING 1")
      r.segmentChanges = try await run(
        """
        DELETE FROM segment_changes WHERE profile_id = ANY(\(family)::int8[]) OR merged_into = ANY(\(family)::int8[])
        RETURNING 1
        """)
      r.merges = try await run(
        "DELETE FROM merges WHERE survivor = ANY(\(family)::int8[]) OR absorbed = ANY(\(family)::int8[]) RETURNING 1")
      r.conflicts = try await run(
        "DELETE FROM conflicts WHERE kept = ANY(\(family)::int8[]) OR other = ANY(\(family)::int8[]) RETURNING 1")
      r.matchLinks = try await run(
        """
        DELETE FROM match_links WHERE profile_id = ANY(\(family)::int8[]) OR candidate_id = ANY(\(family)::int8[])
        RETURNING 1
        """)
      r.deliveries = try await run("DELETE FROM outbox WHERE profile_id = ANY(\(family)::int8[]) RETURNING 1")
      _ = try await run(
        """
        DELETE FROM delivery_batches WHERE status <> 'delivered'
          AND id NOT IN (SELECT batch_id FROM outbox WHERE batch_id IS NOT NULL) RETURNING 1
        """)
      for v in values where !v.isEmpty {
        r.rejected += try await run("DELETE FROM rejected WHERE strpos(record, \(v)) > 0 RETURNING 1")
        _ = try await run("DELETE FROM separations WHERE value_a = \(v) OR value_b = \(v) RETURNING 1")
      }
      r.profiles = try await run("DELETE FROM profiles WHERE id = ANY(\(family)::int8[]) RETURNING 1")
      if !suppress.isEmpty {
        try await conn.query(
          "INSERT INTO suppressions (hash) SELECT * FROM unnest(\(suppress)::text[]) ON CONFLICT DO NOTHING",
          logger: logger)
      }
      if !notices.isEmpty { try await Self.enqueue(notices, conn, logger) }
      return r
    }
  }

  public func replaceDerivedState(_ s: DerivedState) async throws {
    try await transaction { conn in
      try await self.advanceEpoch(conn)
      for table in ["profiles", "identifiers", "traits", "computed_traits", "memberships", "sightings"] {
        try await conn.query("DELETE FROM \(unescaped: table)", logger: logger)
      }
      if !s.profiles.isEmpty {
        let ids = s.profiles.map(\.id.raw)
        let at = s.profiles.map(\.createdAt.microseconds)
        try await conn.query(
          "INSERT INTO profiles (id, created_at) SELECT * FROM unnest(\(ids)::int8[], \(at)::int8[])", logger: logger)
      }
      if !s.aliases.isEmpty {
        let a = s.aliases.map(\.absorbed.raw)
        let sv = s.aliases.map(\.survivor.raw)
        try await conn.query(
          """
          UPDATE profiles AS p SET merged_into = u.s FROM unnest(\(a)::int8[], \(sv)::int8[]) AS u(a, s)
          WHERE p.id = u.a
          """, logger: logger)
      }
      if !s.identifiers.isEmpty {
        let k = s.identifiers.map(\.identifier.kind)
        let v = s.identifiers.map(\.identifier.value)
        let p = s.identifiers.map(\.profile.raw)
        let seen = s.identifiers.map(\.lastSeen.microseconds)
        try await conn.query(
          """
          INSERT INTO identifiers (kind, value, profile_id, last_seen)
          SELECT * FROM unnest(\(k)::text[], \(v)::text[], \(p)::int8[], \(seen)::int8[])
          """, logger: logger)
      }
      if !s.eventProfiles.isEmpty {
        let src = s.eventProfiles.map(\.key.source)
        let id = s.eventProfiles.map(\.key.id)
        let p = s.eventProfiles.map(\.profile.raw)
        try await conn.query(
          """
          UPDATE events AS e SET profile_id = u.p FROM unnest(\(src)::text[], \(id)::text[], \(p)::int8[]) AS u(s, i, p)
          WHERE e.source = u.s AND e.id = u.i
          """, logger: logger)
      }
      if !s.memberships.isEmpty {
        let seg = s.memberships.map(\.segment)
        let p = s.memberships.map(\.profile.raw)
        let since = s.memberships.map(\.since.microseconds)
        try await conn.query(
          """
          INSERT INTO memberships (segment, profile_id, since)
          SELECT * FROM unnest(\(seg)::text[], \(p)::int8[], \(since)::int8[])
          """, logger: logger)
      }
      if !s.traits.isEmpty { try await conn.query(Self.traitsQuery(s.traits), logger: logger) }
      if let p = s.traitPolicies { try await Self.writeTraitPolicies(p, conn, logger) }
      if !s.computed.isEmpty { try await self.writeComputed(s.computed, conn) }
      var logs = CommitBatch()
      logs.conflicts = s.conflicts
      logs.sightings = s.sightings
      if !logs.isEmpty { try await self.write(logs, conn) }
      if !s.merges.isEmpty { try await self.logMerges(s.merges, conn) }
    }
  }
}

/// A claimed batch with its rows, carried out of the transaction.
struct Claimed: Sendable {
  var batch: DeliveryBatchRecord
  var rows: [OutboxRecord]
}
