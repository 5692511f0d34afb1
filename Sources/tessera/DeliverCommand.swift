import ArgumentParser
import AsyncHTTPClient
import Foundation
import TesseraCompiler
import TesseraDelivery
import TesseraModel
import TesseraSQLite
import TesseraStore

struct Deliver: AsyncParsableCommand {
  static let configuration = CommandConfiguration(
    abstract: "Send the changes waiting in the store's outbox to the pipeline's destinations.",
    discussion: """
      Each destination has its own queue and workers, so one that fails or is slow does not hold back the \
      others. Webhooks get JSON batches with an Idempotency-Key that stays the same on every attempt; network \
      errors, timeouts, 408, 429 and 5xx are retried with exponential backoff and jitter (honouring \
      Retry-After) until `retry.attempts` or `retry.max_age` is spent; other 4xx are not retried. Batches that \
      give up become dead letters: `tessera deliveries` lists them, `tessera deliveries retry` re-queues them.

      Runs until every queue is empty, or until --wait has passed for retries that are not due yet (they stay \
      pending for the next run). Exit status: 0 when everything was delivered, 3 when some changes are left \
      (pending or dead-lettered).
      """)

  @Argument(help: "The pipeline file (its destinations).")
  var pipeline: String

  @OptionGroup var storeOption: StoreOption
  var store: String { storeOption.spec }

  @Option(help: "How long to keep retrying failed deliveries, e.g. 30s or 5m.")
  var wait: String = "30s"

  func run() async throws {
    let plan = try PipelineOptions.compile(pipeline)
    let db = try await StoreLocation.open(store, mustExist: true)
    let left = try await Self.drain(plan.config, store: db, storePath: StoreLocation.tablePath(store), wait: wait)
    if left > 0 { throw ExitCode(3) }
  }

  /// Delivers until drained; prints what happened per destination and returns how many changes are left.
  static func drain(_ config: PipelineConfig, store: any Store, storePath: String, wait: String) async throws -> Int {
    guard let span = TimeSpan(parsing: wait) else {
      throw ValidationError("--wait `\(wait)` is not a duration (e.g. 30s, 5m)")
    }
    let clock: @Sendable () -> Timestamp = { Timestamp(Date()) }
    let client = DeliveryQueue.makeClient()
    let counts: [String: DeliveryCounts]
    do {
      let queues = try DeliveryQueue.plan(config, storePath: storePath, client: client, clock: clock)
      let engine = DeliveryEngine(store: store, queues: queues, clock: clock)
      let task = Task { try await engine.run(.drain(deadline: clock() + span)) }
      let interrupt = Interrupt { task.cancel() }
      defer { interrupt.stop() }
      counts = try await task.value
    } catch {
      try await client.shutdown()
      throw error
    }
    try await client.shutdown()
    let summary = try await store.outboxSummary()
    var left = 0
    print("deliveries")
    for name in Set(counts.keys).union(summary.keys).sorted() {
      let c = counts[name] ?? DeliveryCounts()
      let s = summary[name] ?? OutboxSummary()
      left += s.queued + s.pending + s.sending + s.dead
      var line = "  \(name): \(c.items) delivered in \(c.batches) batch\(c.batches == 1 ? "" : "es")"
      if c.retries > 0 { line += ", \(c.retries) failed attempt\(c.retries == 1 ? "" : "s") retried" }
      if s.pending + s.sending > 0 {
        line += ", \(s.pending + s.sending) batch\(s.pending + s.sending == 1 ? "" : "es") still pending"
        if let next = s.nextAttempt { line += " (next attempt \(next.iso8601))" }
      }
      if s.queued > 0 { line += ", \(s.queued) changes not yet batched" }
      if s.dead > 0 { line += ", \(s.dead) dead-lettered (\(s.deadItems) changes; tessera deliveries)" }
      print(line)
    }
    return left
  }
}

struct DeliveriesCommand: AsyncParsableCommand {
  static let configuration = CommandConfiguration(
    commandName: "deliveries",
    abstract: "Show what waits in the outbox per destination: queued, pending, failing, dead-lettered, delivered.",
    subcommands: [List.self, Retry.self],
    defaultSubcommand: List.self)

  struct List: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
      commandName: "list", abstract: "Queues per destination and the dead letters with their last response.")

    @OptionGroup var storeOption: StoreOption
    var store: String { storeOption.spec }

    @Option(help: "Only this destination.")
    var destination: String?

    @Option(help: "How many dead letters and failing batches to show.")
    var limit = 20

    @Option(help: "Output format.")
    var format: OutputFormat = .text

    func run() async throws {
      let db = try await StoreLocation.open(store, mustExist: true)
      let (summary, dead, failing) = try await DeliveryStatus.read(db, destination: destination, limit: limit)
      switch format {
      case .json: print(JSON.encode(DeliveryStatus.json(summary: summary, dead: dead, failing: failing)))
      case .text:
        if summary.isEmpty { print("no deliveries in \(store)") }
        for name in summary.keys.sorted() {
          guard let s = summary[name] else { continue }
          print(
            "\(name): \(s.queued) queued, \(s.pending) pending (\(s.failing) failing), \(s.sending) sending, "
              + "\(s.dead) dead (\(s.deadItems) changes), \(s.delivered) delivered (\(s.deliveredItems) changes)")
        }
        for (title, list) in [("failing (will be retried)", failing), ("dead letters", dead)] where !list.isEmpty {
          print("\n\(title)")
          for b in list {
            print(
              "  #\(b.id) \(b.destination)  \(b.items) changes, \(b.attempts) attempt\(b.attempts == 1 ? "" : "s"), "
                + "last \(b.lastStatus.map { "HTTP \($0)" } ?? "error"): \(b.lastError.prefix(200))"
                + (b.status == .pending ? "  next \(b.nextAttemptAt.iso8601)" : ""))
          }
        }
      }
    }
  }

  struct Retry: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
      abstract: "Re-queue dead-lettered batches (all, of one destination, or one batch) for the next delivery.")

    @OptionGroup var storeOption: StoreOption
    var store: String { storeOption.spec }

    @Option(help: "Only this destination.")
    var destination: String?

    @Option(help: "Only this batch (its id in `tessera deliveries`).")
    var batch: Int64?

    func run() async throws {
      let db = try await StoreLocation.open(store, mustExist: true)
      let n = try await db.requeueDead(destination: destination, batch: batch, at: Timestamp(Date()))
      print("re-queued \(n) dead-lettered batch\(n == 1 ? "" : "es"); send them with `tessera deliver`")
    }
  }
}
