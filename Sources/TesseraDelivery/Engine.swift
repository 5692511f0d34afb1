import Foundation
import Synchronization
import TesseraCompiler
import TesseraModel
import TesseraStore

/// What one attempt to hand a batch to a destination came to.
public enum SendOutcome: Sendable, Hashable {
  case delivered
  /// A failure worth another attempt (network error, timeout, 408, 429, 5xx); `after` is the receiver's
  /// `Retry-After`, when it sent one.
  case retry(status: Int?, error: String, after: TimeSpan?)
  /// The receiver refused the batch for good (another 4xx): no retry, the batch becomes a dead letter.
  case refused(status: Int?, error: String)
}

/// Something a batch of outbox rows can be delivered to: a webhook, a file, a table.
public protocol DeliveryTarget: Sendable {
  func send(_ batch: DeliveryBatchRecord, _ rows: [OutboxRecord]) async -> SendOutcome
  /// Finishes what is open (a file being written is closed and renamed into place).
  func close() async throws
}

/// One queue of the outbox: a destination (or its deletion endpoint), with its batching and retry settings.
public struct DeliveryQueue: Sendable {
  public var name: String
  public var target: any DeliveryTarget
  public var batch: BatchSettings
  public var retry: RetrySettings
  /// Batches in flight at once. One keeps the destination's order; more overlap the round trips.
  public var concurrency: Int

  public init(
    name: String, target: any DeliveryTarget, batch: BatchSettings, retry: RetrySettings, concurrency: Int = 4
  ) {
    self.name = name
    self.target = target
    self.batch = batch
    self.retry = retry
    self.concurrency = max(1, concurrency)
  }
}

/// Counts of what the engine did per queue.
public struct DeliveryCounts: Sendable, Hashable {
  public var batches = 0
  public var items = 0
  public var attempts = 0
  public var retries = 0
  public var deadBatches = 0
  public var deadItems = 0
  public init() {}
}

/// Delivers the outbox: per queue, `concurrency` workers claim batches from the store, send them and record
/// the result. A queue whose destination fails or stalls only holds its own workers, never another queue's.
///
/// At-least-once: a batch leaves the outbox only after its destination took it; a batch whose worker died is
/// taken again when its lease ends, with the same idempotency key.
public struct DeliveryEngine: Sendable {
  public var store: any Store
  public var queues: [DeliveryQueue]
  /// The clock batches are cut, retried and aged by (injected; tests drive it).
  public var clock: @Sendable () -> Timestamp
  /// How long a worker holds a claimed batch before another may take it; longer than any send can take.
  public var lease = TimeSpan(seconds: 300)
  /// How often an idle worker looks for work: from `idle`, doubling while it finds none, up to `idleMax` (each
  /// look is a write transaction, which the pipeline's writer would otherwise wait behind).
  public var idle: Duration = .milliseconds(50)
  public var idleMax: Duration = .seconds(1)
  /// Fraction of each backoff drawn at random (equal jitter), so failing senders do not retry in step.
  public var jitter: @Sendable (Double) -> Double = { d in d / 2 + Double.random(in: 0...(d / 2)) }
  public let counters = Counters()

  /// Live counts per queue (the server's metrics read them while the engine runs).
  public final class Counters: Sendable {
    let state = Mutex<[String: DeliveryCounts]>([:])
    public var snapshot: [String: DeliveryCounts] { state.withLock { $0 } }
    func withLock<R>(_ body: (inout [String: DeliveryCounts]) -> R) -> R { state.withLock { body(&$0) } }
  }

  public init(store: any Store, queues: [DeliveryQueue], clock: @escaping @Sendable () -> Timestamp) {
    self.store = store
    self.queues = queues
    self.clock = clock
  }

  public var counts: [String: DeliveryCounts] { counters.snapshot }

  /// How long to run.
  public enum Mode: Sendable {
    /// Until every queue is empty: nothing waiting, nothing in flight, and no retry due before `deadline`
    /// (batches due later stay pending for the next run). Partial batches are cut at once.
    case drain(deadline: Timestamp)
    /// Until the task is cancelled (the server); partial batches wait for `max_wait`.
    case continuous
  }

  /// Runs the workers; returns the counts when drained (or cancelled).
  @discardableResult
  public func run(_ mode: Mode) async throws -> [String: DeliveryCounts] {
    try await withThrowingTaskGroup(of: Void.self) { group in
      for q in queues {
        for _ in 0..<q.concurrency {
          group.addTask { try await worker(q, mode) }
        }
      }
      try await group.waitForAll()
    }
    for q in queues { try await q.target.close() }
    return counts
  }

  func worker(_ q: DeliveryQueue, _ mode: Mode) async throws {
    var flush = false
    if case .drain = mode { flush = true }
    var pause = idle
    while !Task.isCancelled {
      let now = clock()
      let claim = BatchClaim(
        destination: q.name, maxItems: q.batch.maxEvents, maxBytes: q.batch.maxBytes, maxWait: q.batch.maxWait,
        now: now, lease: lease, flush: flush)
      if let (batch, rows) = try await store.claimBatch(claim) {
        try await deliver(q, batch, rows)
        pause = idle
        continue
      }
      if case .drain(let deadline) = mode {
        let s = try await store.outboxSummary()[q.name] ?? OutboxSummary()
        let retryDue = s.pending > 0 && (s.nextAttempt.map { $0 <= deadline } ?? false)
        if s.queued == 0 && s.sending == 0 && !retryDue { return }
        if now > deadline && s.queued == 0 && s.sending == 0 { return }
      }
      try? await Task.sleep(for: pause)
      // A drain is short and waits for retries due soon: it keeps looking at the base rate.
      if !flush { pause = min(pause * 2, idleMax) }
    }
  }

  func deliver(_ q: DeliveryQueue, _ batch: DeliveryBatchRecord, _ rows: [OutboxRecord]) async throws {
    // Rows erased since the batch was cut (a deletion) leave nothing to send.
    let outcome: SendOutcome = rows.isEmpty ? .delivered : await q.target.send(batch, rows)
    let at = clock()
    let result = decide(outcome, batch, q.retry, at: at)
    try await store.finishBatch(batch.id, result)
    counters.withLock { all in
      var c = all[q.name] ?? DeliveryCounts()
      c.attempts += 1
      switch result {
      case .delivered:
        c.batches += 1
        c.items += rows.count
      case .retry: c.retries += 1
      case .dead:
        c.deadBatches += 1
        c.deadItems += rows.count
      }
      all[q.name] = c
    }
  }

  /// The store's record of an attempt: delivered, another attempt after the backoff (or the receiver's
  /// `Retry-After`), or a dead letter once `attempts` or `max_age` is spent or the receiver refused.
  func decide(_ outcome: SendOutcome, _ b: DeliveryBatchRecord, _ retry: RetrySettings, at: Timestamp)
    -> DeliveryResult
  {
    switch outcome {
    case .delivered: return .delivered(at: at)
    case .refused(let status, let error): return .dead(status: status, error: error, at: at)
    case .retry(let status, let error, let after):
      let attempt = b.attempts + 1
      let wait = after ?? backoff(attempt, retry)
      let next = at + wait
      if attempt >= retry.attempts || next.microseconds - b.createdAt.microseconds > retry.maxAge.microseconds {
        let why = attempt >= retry.attempts ? "gave up after \(attempt) attempts" : "older than max_age \(retry.maxAge)"
        return .dead(status: status, error: "\(why): \(error)", at: at)
      }
      return .retry(next: next, status: status, error: error, at: at)
    }
  }

  /// Exponential: `min · 2^(attempt−1)`, at most `max`, with jitter.
  func backoff(_ attempt: Int, _ retry: RetrySettings) -> TimeSpan {
    let base = Double(retry.backoffMin.microseconds) * pow(2, Double(min(attempt - 1, 40)))
    let capped = min(base, Double(retry.backoffMax.microseconds))
    return TimeSpan(microseconds: Int64(jitter(capped)))
  }
}
