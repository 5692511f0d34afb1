import TesseraModel

extension MemoryStore {
  public func enqueue(_ rows: [OutboxRecord]) {
    for var row in rows {
      row.id = nextOutboxID
      nextOutboxID += 1
      outboxRows[row.id] = row
    }
  }

  public func claimBatch(_ claim: BatchClaim) -> (DeliveryBatchRecord, [OutboxRecord])? {
    let due = batchRows.values.filter { b in
      b.destination == claim.destination
        && ((b.status == .pending && b.nextAttemptAt <= claim.now)
          || (b.status == .sending && (b.leaseUntil ?? claim.now) <= claim.now))
    }.min { ($0.nextAttemptAt, $0.id) < ($1.nextAttemptAt, $1.id) }
    if var b = due {
      b.status = .sending
      b.leaseUntil = claim.now + claim.lease
      batchRows[b.id] = b
      return (b, rows(of: b.id))
    }
    let waiting = outboxRows.values.filter { $0.destination == claim.destination && rowBatch[$0.id] == nil }
      .sorted { $0.id < $1.id }
    guard let cut = OutboxCut(waiting, sizes: waiting.map(\.bytes), claim) else { return nil }
    let id = nextBatchID
    nextBatchID += 1
    let b = DeliveryBatchRecord(
      id: id, destination: claim.destination, key: OutboxCut.key(claim.destination, id, claim.now), status: .sending,
      attempts: 0, items: cut.rows.count, bytes: cut.bytes, createdAt: claim.now, nextAttemptAt: claim.now,
      leaseUntil: claim.now + claim.lease)
    batchRows[id] = b
    for r in cut.rows { rowBatch[r.id] = id }
    return (b, cut.rows)
  }

  func rows(of batch: Int64) -> [OutboxRecord] {
    rowBatch.filter { $0.value == batch }.keys.sorted().compactMap { outboxRows[$0] }
  }

  public func finishBatch(_ id: Int64, _ result: DeliveryResult) {
    guard var b = batchRows[id] else { return }
    b.leaseUntil = nil
    switch result {
    case .delivered(let at):
      b.attempts += 1
      b.status = .delivered
      b.finishedAt = at
      b.lastStatus = nil
      for (row, batch) in rowBatch where batch == id {
        rowBatch[row] = nil
        outboxRows[row] = nil
      }
    case .retry(let next, let status, let error, _):
      b.attempts += 1
      b.status = .pending
      b.nextAttemptAt = next
      b.lastStatus = status
      b.lastError = error
    case .dead(let status, let error, let at):
      b.attempts += 1
      b.status = .dead
      b.lastStatus = status
      b.lastError = error
      b.finishedAt = at
    }
    batchRows[id] = b
  }

  public func deliveryBatches(status: DeliveryBatchRecord.Status?, destination: String?, limit: Int)
    -> [DeliveryBatchRecord]
  {
    Array(
      batchRows.values.filter { b in
        (status == nil || b.status == status) && (destination == nil || b.destination == destination)
      }.sorted { $0.id > $1.id }.prefix(limit))
  }

  public func outboxSummary() -> [String: OutboxSummary] {
    var out: [String: OutboxSummary] = [:]
    for r in outboxRows.values where rowBatch[r.id] == nil { out[r.destination, default: OutboxSummary()].queued += 1 }
    for b in batchRows.values { out[b.destination, default: OutboxSummary()].count(b) }
    return out
  }

  public func requeueDead(destination: String?, batch: Int64?, at: Timestamp) -> Int {
    var n = 0
    for (id, var b) in batchRows
    where b.status == .dead && (destination == nil || b.destination == destination) && (batch == nil || batch == id) {
      b.status = .pending
      b.attempts = 0
      b.nextAttemptAt = at
      b.finishedAt = nil
      batchRows[id] = b
      n += 1
    }
    return n
  }
}

/// The rows of a new batch: the oldest waiting rows up to the item and byte limits, when a batch is due.
public struct OutboxCut: Sendable {
  public var rows: [OutboxRecord]
  public var bytes: Int

  /// `waiting` in id order, `sizes` their payloads' JSON bytes. Nil when there is nothing, or when a partial
  /// batch should wait longer.
  public init?(_ waiting: [OutboxRecord], sizes: [Int], _ claim: BatchClaim) {
    guard let first = waiting.first else { return nil }
    var rows: [OutboxRecord] = []
    var bytes = 0
    for (r, size) in zip(waiting, sizes).prefix(claim.maxItems) {
      let b = size + 1
      if !rows.isEmpty && bytes + b > claim.maxBytes { break }
      rows.append(r)
      bytes += b
    }
    let full = rows.count == claim.maxItems || rows.count < min(waiting.count, claim.maxItems)
    guard full || claim.flush || first.queuedLongEnough(claim) else { return nil }
    self.rows = rows
    self.bytes = bytes
  }

  /// The idempotency key of a batch: the destination, the batch id and when it was cut, so it stays the same
  /// on every attempt and differs between stores.
  public static func key(_ destination: String, _ id: Int64, _ at: Timestamp) -> String {
    "\(destination)-\(id)-\(at.microseconds)"
  }
}

extension OutboxRecord {
  /// A partial batch is cut once its oldest row's change is `maxWait` old by the claim's clock.
  func queuedLongEnough(_ claim: BatchClaim) -> Bool { at + claim.maxWait <= claim.now }
}

extension OutboxSummary {
  mutating func count(_ b: DeliveryBatchRecord) {
    switch b.status {
    case .pending:
      pending += 1
      if b.attempts > 0 { failing += 1 }
      nextAttempt = min(nextAttempt ?? b.nextAttemptAt, b.nextAttemptAt)
    case .sending: sending += 1
    case .dead:
      dead += 1
      deadItems += b.items
    case .delivered:
      delivered += 1
      deliveredItems += b.items
    }
  }
}
