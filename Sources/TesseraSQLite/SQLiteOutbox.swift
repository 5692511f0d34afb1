import GRDB
import TesseraModel
import TesseraStore

extension SQLiteStore {
  static func enqueue(_ rows: [OutboxRecord], _ db: Database) throws {
    let insert = try db.cachedStatement(
      sql: "INSERT INTO outbox (destination, op, profile_id, key, payload, at) VALUES (?, ?, ?, ?, ?, ?)")
    for r in rows {
      try insert.execute(arguments: [
        r.destination, r.op.rawValue, r.profile.raw, r.key, JSON.encode(r.payload), r.at.microseconds,
      ])
    }
  }

  public func enqueue(_ rows: [OutboxRecord]) async throws {
    guard !rows.isEmpty else { return }
    try await writing { db in try Self.enqueue(rows, db) }
  }

  static let batchColumns =
    "id, destination, key, status, attempts, items, bytes, created_at, next_attempt_at, lease_until, last_status, "
    + "last_error, finished_at"

  static func batch(_ row: Row) throws -> DeliveryBatchRecord {
    let status: String = row[3]
    guard let s = DeliveryBatchRecord.Status(rawValue: status) else {
      throw StoreError.corrupt("delivery batch \(row[0] as Int64) has status `\(status)`")
    }
    return DeliveryBatchRecord(
      id: row[0], destination: row[1], key: row[2], status: s, attempts: row[4], items: row[5], bytes: row[6],
      createdAt: Timestamp(microseconds: row[7]), nextAttemptAt: Timestamp(microseconds: row[8]),
      leaseUntil: (row[9] as Int64?).map(Timestamp.init(microseconds:)), lastStatus: row[10], lastError: row[11],
      finishedAt: (row[12] as Int64?).map(Timestamp.init(microseconds:)))
  }

  static func outboxRow(_ row: Row) throws -> OutboxRecord {
    let op: String = row[2]
    guard let o = OutboxOp(rawValue: op) else {
      throw StoreError.corrupt("outbox row \(row[0] as Int64) has op `\(op)`")
    }
    return OutboxRecord(
      id: row[0], destination: row[1], op: o, profile: ProfileID(row[3]), key: row[4],
      payload: try JSON.parse(row[5] as String), at: Timestamp(microseconds: row[6]))
  }

  /// Payloads are stored as the JSON destinations receive (what a payload evaluates to is plain JSON data:
  /// timestamps are ISO 8601 text), so their length is the batch's byte count.
  static let outboxColumns = "id, destination, op, profile_id, key, payload, at, length(payload)"

  public func claimBatch(_ claim: BatchClaim) async throws -> (DeliveryBatchRecord, [OutboxRecord])? {
    try await writing { db in
      let lease = (claim.now + claim.lease).microseconds
      // A batch due again, or one a crashed worker held past its lease.
      if let row = try Row.fetchOne(
        db,
        sql: """
          SELECT \(Self.batchColumns) FROM delivery_batches
          WHERE destination = ? AND ((status = 'pending' AND next_attempt_at <= ?)
            OR (status = 'sending' AND lease_until <= ?))
          ORDER BY next_attempt_at, id LIMIT 1
          """, arguments: [claim.destination, claim.now.microseconds, claim.now.microseconds])
      {
        var b = try Self.batch(row)
        try db.execute(
          sql: "UPDATE delivery_batches SET status = 'sending', lease_until = ? WHERE id = ?", arguments: [lease, b.id])
        b.status = .sending
        b.leaseUntil = claim.now + claim.lease
        let rows = try Row.fetchAll(
          db, sql: "SELECT \(Self.outboxColumns) FROM outbox WHERE batch_id = ? ORDER BY id", arguments: [b.id]
        ).map(Self.outboxRow)
        return (b, rows)
      }
      let found = try Row.fetchAll(
        db,
        sql: """
          SELECT \(Self.outboxColumns) FROM outbox WHERE destination = ? AND batch_id IS NULL ORDER BY id LIMIT ?
          """, arguments: [claim.destination, claim.maxItems + 1])
      let waiting = try found.map(Self.outboxRow)
      guard let cut = OutboxCut(waiting, sizes: found.map { $0[7] as Int }, claim), let last = cut.rows.last else {
        return nil
      }
      try db.execute(
        sql: """
          INSERT INTO delivery_batches (destination, key, status, attempts, items, bytes, created_at,
            next_attempt_at, lease_until, last_error)
          VALUES (?, '', 'sending', 0, ?, ?, ?, ?, ?, '')
          """,
        arguments: [
          claim.destination, cut.rows.count, cut.bytes, claim.now.microseconds, claim.now.microseconds, lease,
        ])
      let id = db.lastInsertedRowID
      let key = OutboxCut.key(claim.destination, id, claim.now)
      try db.execute(sql: "UPDATE delivery_batches SET key = ? WHERE id = ?", arguments: [key, id])
      // The cut is the oldest waiting rows of the destination, so they are exactly those up to the last id.
      try db.execute(
        sql: "UPDATE outbox SET batch_id = ? WHERE destination = ? AND batch_id IS NULL AND id <= ?",
        arguments: [id, claim.destination, last.id])
      let b = DeliveryBatchRecord(
        id: id, destination: claim.destination, key: key, status: .sending, attempts: 0, items: cut.rows.count,
        bytes: cut.bytes, createdAt: claim.now, nextAttemptAt: claim.now, leaseUntil: claim.now + claim.lease)
      return (b, cut.rows)
    }
  }

  public func finishBatch(_ id: Int64, _ result: DeliveryResult) async throws {
    try await writing { db in
      switch result {
      case .delivered(let at):
        try db.execute(sql: "DELETE FROM outbox WHERE batch_id = ?", arguments: [id])
        try db.execute(
          sql: """
            UPDATE delivery_batches SET status = 'delivered', attempts = attempts + 1, lease_until = NULL,
              last_status = NULL, finished_at = ? WHERE id = ?
            """, arguments: [at.microseconds, id])
      case .retry(let next, let status, let error, _):
        try db.execute(
          sql: """
            UPDATE delivery_batches SET status = 'pending', attempts = attempts + 1, lease_until = NULL,
              next_attempt_at = ?, last_status = ?, last_error = ? WHERE id = ?
            """, arguments: [next.microseconds, status, error, id])
      case .dead(let status, let error, let at):
        try db.execute(
          sql: """
            UPDATE delivery_batches SET status = 'dead', attempts = attempts + 1, lease_until = NULL,
              last_status = ?, last_error = ?, finished_at = ? WHERE id = ?
            """, arguments: [status, error, at.microseconds, id])
      }
    }
  }

  public func deliveryBatches(status: DeliveryBatchRecord.Status?, destination: String?, limit: Int) async throws
    -> [DeliveryBatchRecord]
  {
    try await reading { db in
      try Row.fetchAll(
        db,
        sql: """
          SELECT \(Self.batchColumns) FROM delivery_batches
          WHERE (?1 IS NULL OR status = ?1) AND (?2 IS NULL OR destination = ?2) ORDER BY id DESC LIMIT ?3
          """, arguments: [status?.rawValue, destination, limit]
      ).map(Self.batch)
    }
  }

  public func outboxSummary() async throws -> [String: OutboxSummary] {
    try await reading { db in
      var out: [String: OutboxSummary] = [:]
      for row in try Row.fetchAll(
        db, sql: "SELECT destination, count(*) FROM outbox WHERE batch_id IS NULL GROUP BY destination")
      {
        out[row[0], default: OutboxSummary()].queued = row[1]
      }
      for row in try Row.fetchAll(
        db,
        sql: """
          SELECT destination, status, count(*), sum(items), sum(attempts > 0), min(next_attempt_at)
          FROM delivery_batches GROUP BY destination, status
          """)
      {
        var s = out[row[0]] ?? OutboxSummary()
        let n: Int = row[2]
        let items: Int = row[3] ?? 0
        switch DeliveryBatchRecord.Status(rawValue: row[1]) {
        case .pending:
          s.pending = n
          s.failing = row[4] ?? 0
          s.nextAttempt = (row[5] as Int64?).map(Timestamp.init(microseconds:))
        case .sending: s.sending = n
        case .dead:
          s.dead = n
          s.deadItems = items
        case .delivered:
          s.delivered = n
          s.deliveredItems = items
        case nil: break
        }
        out[row[0]] = s
      }
      return out
    }
  }

  public func requeueDead(destination: String?, batch: Int64?, at: Timestamp) async throws -> Int {
    try await writing { db in
      try db.execute(
        sql: """
          UPDATE delivery_batches SET status = 'pending', attempts = 0, next_attempt_at = ?1, finished_at = NULL
          WHERE status = 'dead' AND (?2 IS NULL OR destination = ?2) AND (?3 IS NULL OR id = ?3)
          """, arguments: [at.microseconds, destination, batch])
      return db.changesCount
    }
  }
}
