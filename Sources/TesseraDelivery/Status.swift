import TesseraModel
import TesseraStore

/// What waits in the outbox, as JSON: per destination its queues, and the failing and dead-lettered batches
/// with their last response (`tessera deliveries --format json` and the server's `GET /v1/deliveries`).
public enum DeliveryStatus {
  public static func json(
    summary: [String: OutboxSummary], dead: [DeliveryBatchRecord], failing: [DeliveryBatchRecord]
  ) -> Value {
    func batch(_ b: DeliveryBatchRecord) -> Value {
      .map([
        "id": .int(b.id), "destination": .string(b.destination), "idempotency_key": .string(b.key),
        "status": .string(b.status.rawValue), "attempts": .int(Int64(b.attempts)), "items": .int(Int64(b.items)),
        "last_status": b.lastStatus.map { .int(Int64($0)) } ?? .null, "last_error": .string(b.lastError),
        "next_attempt_at": .string(b.nextAttemptAt.iso8601),
      ])
    }
    var queues: [String: Value] = [:]
    for (name, s) in summary {
      queues[name] = .map([
        "queued": .int(Int64(s.queued)), "pending": .int(Int64(s.pending)), "failing": .int(Int64(s.failing)),
        "sending": .int(Int64(s.sending)), "dead": .int(Int64(s.dead)), "dead_items": .int(Int64(s.deadItems)),
        "delivered": .int(Int64(s.delivered)), "delivered_items": .int(Int64(s.deliveredItems)),
      ])
    }
    return .map([
      "destinations": .map(queues), "dead_letters": .list(dead.map(batch)), "failing": .list(failing.map(batch)),
    ])
  }

  /// Reads the summary, up to `limit` dead letters and up to `limit` failing batches (pending after an attempt).
  public static func read(_ store: any Store, destination: String?, limit: Int) async throws -> (
    summary: [String: OutboxSummary], dead: [DeliveryBatchRecord], failing: [DeliveryBatchRecord]
  ) {
    let summary = try await store.outboxSummary().filter { destination == nil || $0.key == destination }
    let dead = try await store.deliveryBatches(status: .dead, destination: destination, limit: limit)
    let failing = try await store.deliveryBatches(status: .pending, destination: destination, limit: limit)
      .filter { $0.attempts > 0 }
    return (summary, dead, failing)
  }
}
