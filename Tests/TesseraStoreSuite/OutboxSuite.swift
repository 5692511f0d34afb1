import TesseraIdentity
import TesseraModel
import TesseraStore

extension StoreSuite {
  static var outboxChecks: [(String, (any Store, inout Failures) async throws -> Void)] {
    [
      ("outbox rows committed with a batch are cut into batches by items, bytes and wait", outboxCut),
      ("a batch is delivered once, retried when due, dead-lettered and re-queued", outboxLifecycle),
      ("a claimed batch whose lease ran out is claimed again with the same key", outboxLease),
      ("erasing a person removes their waiting deliveries and queues the notices", outboxErase),
    ]
  }

  static func row(_ destination: String, _ profile: Int64, _ n: Int, at: Int64 = 0) -> OutboxRecord {
    OutboxRecord(
      destination: destination, op: .upsert, profile: p(profile), payload: .map(["n": .int(Int64(n))]), at: t(at))
  }

  static func claim(
    _ destination: String, items: Int = 3, bytes: Int = 1 << 20, wait: Int64 = 60, now: Int64 = 0, flush: Bool = false
  ) -> BatchClaim {
    BatchClaim(
      destination: destination, maxItems: items, maxBytes: bytes, maxWait: TimeSpan(seconds: Double(wait)),
      now: t(now), lease: TimeSpan(seconds: 30), flush: flush)
  }

  static func numbers(_ rows: [OutboxRecord]) -> [String] {
    rows.map { r in
      if case .map(let m) = r.payload, let n = m["n"] { return n.plainText }
      return "?"
    }
  }

  static func outboxCut(_ store: any Store, _ f: inout Failures) async throws {
    var b = CommitBatch()
    b.newProfiles = [NewProfile(p(1), createdAt: t(0))]
    b.outbox = (1...7).map { row("ads", 1, $0) } + [row("crm", 1, 100)]
    try await store.commit(b)
    let summary = try await store.outboxSummary()
    f.expect(summary["ads"]?.queued ?? -1, 7, "queued rows of ads")
    f.expect(summary["crm"]?.queued ?? -1, 1, "queued rows of crm")
    // Full batches are cut at once, in write order.
    let first = try await store.claimBatch(claim("ads"))
    f.expect(numbers(first?.1 ?? []), ["1", "2", "3"], "first batch")
    f.expect(first?.0.items ?? 0, 3, "first batch's item count")
    let second = try await store.claimBatch(claim("ads"))
    f.expect(numbers(second?.1 ?? []), ["4", "5", "6"], "second batch")
    if first?.0.key == second?.0.key { f.fail("two batches share the idempotency key \(first?.0.key ?? "")") }
    for b in [first?.0, second?.0].compactMap({ $0 }) { try await store.finishBatch(b.id, .delivered(at: t(1))) }
    // A partial batch waits for max_wait (measured from the change), unless flushed.
    let early = try await store.claimBatch(claim("ads", now: 30))
    f.expect(early == nil, true, "a partial batch before max_wait")
    let late = try await store.claimBatch(claim("ads", now: 61))
    f.expect(numbers(late?.1 ?? []), ["7"], "a partial batch after max_wait")
    let flushed = try await store.claimBatch(claim("crm", flush: true))
    f.expect(numbers(flushed?.1 ?? []), ["100"], "a flushed partial batch")
    f.expect(try await store.claimBatch(claim("ads", flush: true)) == nil, true, "nothing left to claim")
    // Bytes: each row's JSON is 7 bytes ({"n":N}) plus a newline; 20 bytes hold two rows.
    try await store.enqueue((1...3).map { row("small", 1, $0) })
    let cut = try await store.claimBatch(claim("small", items: 10, bytes: 20))
    f.expect(numbers(cut?.1 ?? []), ["1", "2"], "a batch cut by bytes")
  }

  static func outboxLifecycle(_ store: any Store, _ f: inout Failures) async throws {
    try await store.enqueue((1...2).map { row("ads", 1, $0) })
    guard let (b, _) = try await store.claimBatch(claim("ads", items: 2)) else { return f.fail("no batch to claim") }
    try await store.finishBatch(b.id, .retry(next: t(100), status: 503, error: "busy", at: t(1)))
    f.expect(try await store.claimBatch(claim("ads", items: 2, now: 50)) == nil, true, "a retry before it is due")
    let summary = try await store.outboxSummary()["ads"]
    f.expect(summary?.pending ?? 0, 1, "pending batches")
    f.expect(summary?.failing ?? 0, 1, "failing batches")
    f.expect(summary?.nextAttempt, t(100), "next attempt")
    guard let (again, rows) = try await store.claimBatch(claim("ads", items: 2, now: 100)) else {
      return f.fail("the due retry was not claimed")
    }
    f.expect(again.key, b.key, "the retry's idempotency key")
    f.expect(again.attempts, 1, "attempts so far")
    f.expect(numbers(rows), ["1", "2"], "the retry's rows")
    try await store.finishBatch(again.id, .dead(status: 400, error: "bad request", at: t(101)))
    let dead = try await store.deliveryBatches(status: .dead, destination: "ads", limit: 10)
    f.expect(dead.map(\.lastStatus), [400], "dead letter status")
    f.expect(dead.map(\.lastError), ["bad request"], "dead letter error")
    f.expect(dead.map(\.attempts), [2], "dead letter attempts")
    f.expect(try await store.outboxSummary()["ads"]?.deadItems ?? 0, 2, "dead items")
    f.expect(try await store.requeueDead(destination: "ads", batch: nil, at: t(200)), 1, "re-queued batches")
    guard let (requeued, rows2) = try await store.claimBatch(claim("ads", items: 2, now: 200)) else {
      return f.fail("the re-queued batch was not claimed")
    }
    f.expect(requeued.attempts, 0, "attempts after re-queue")
    f.expect(numbers(rows2), ["1", "2"], "re-queued rows")
    try await store.finishBatch(requeued.id, .delivered(at: t(201)))
    let after = try await store.outboxSummary()["ads"]
    f.expect(after?.delivered ?? 0, 1, "delivered batches")
    f.expect(after?.deliveredItems ?? 0, 2, "delivered items")
    f.expect((after?.queued ?? 0) + (after?.pending ?? 0) + (after?.dead ?? 0), 0, "nothing left")
    f.expect(try await store.claimBatch(claim("ads", items: 2, now: 999, flush: true)) == nil, true, "no redelivery")
  }

  static func outboxLease(_ store: any Store, _ f: inout Failures) async throws {
    try await store.enqueue([row("ads", 1, 1)])
    guard let (b, _) = try await store.claimBatch(claim("ads", flush: true)) else { return f.fail("no batch") }
    f.expect(try await store.claimBatch(claim("ads", now: 10, flush: true)) == nil, true, "a batch under lease")
    let taken = try await store.claimBatch(claim("ads", now: 31, flush: true))
    f.expect(taken?.0.id, b.id, "the batch claimed after its lease")
    f.expect(taken?.0.key, b.key, "its idempotency key")
    f.expect(numbers(taken?.1 ?? []), ["1"], "its rows")
  }

  static func outboxErase(_ store: any Store, _ f: inout Failures) async throws {
    var b = CommitBatch()
    b.newProfiles = [NewProfile(p(1), createdAt: t(0)), NewProfile(p(2), createdAt: t(0))]
    b.events = [
      event("e1", at: t(0), ids: [email], profile: p(1)), event("e2", at: t(0), ids: [email2], profile: p(2)),
    ]
    b.identifiers = [IdentifierRow(email, of: p(1), seen: t(0)), IdentifierRow(email2, of: p(2), seen: t(0))]
    b.outbox = [row("ads", 1, 1), row("ads", 2, 2), row("ads", 1, 3)]
    try await store.commit(b)
    _ = try await store.claimBatch(claim("ads", items: 2))
    let notice = OutboxRecord(
      destination: "ads#deletion", op: .delete, profile: p(1), payload: .map(["type": .string("deletion")]), at: t(5))
    let r = try await store.erase(profile: p(1), values: [email.value], suppress: [], notices: [notice])
    f.expect(r.deliveries, 2, "waiting deliveries erased")
    let rest = try await store.claimBatch(claim("ads", now: 999, flush: true))
    f.expect(numbers(rest?.1 ?? []), ["2"], "the other person's row, still in its batch")
    let notices = try await store.claimBatch(claim("ads#deletion", flush: true))
    f.expect(notices?.1.map(\.op), [.delete], "the deletion notice")
  }
}
