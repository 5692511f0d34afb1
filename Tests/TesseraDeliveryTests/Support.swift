import AsyncHTTPClient
import Foundation
import TesseraCompiler
import TesseraConnectors
import TesseraDelivery
import TesseraModel
import TesseraReceiver
import TesseraRuntime
import TesseraSQLite
import TesseraStore
import Testing

/// A directory under the temporary directory, removed when the test is done with it.
final class TempDir: Sendable {
  let path: String
  init() throws {
    path = FileManager.default.temporaryDirectory.appendingPathComponent("tessera-delivery-\(UUID().uuidString)").path
    try FileManager.default.createDirectory(atPath: path, withIntermediateDirectories: true)
  }
  func file(_ name: String) -> String { path + "/" + name }
  @discardableResult
  func write(_ name: String, _ text: String) throws -> String {
    try text.write(toFile: file(name), atomically: true, encoding: .utf8)
    return file(name)
  }
  deinit { try? FileManager.default.removeItem(atPath: path) }
}

/// A clock the tests read in real time (deliveries really wait) but that starts at a fixed instant.
let wall: @Sendable () -> Timestamp = { Timestamp(Date()) }

/// Fast retries for tests: the schedule's shape without its minutes.
func quickRetry(attempts: Int = 6) -> RetrySettings {
  var r = RetrySettings()
  r.attempts = attempts
  r.backoffMin = TimeSpan(seconds: 0.01)
  r.backoffMax = TimeSpan(seconds: 0.05)
  return r
}

func batching(_ n: Int) -> BatchSettings {
  var b = BatchSettings()
  b.maxEvents = n
  return b
}

/// `n` outbox rows for a destination, numbered from `from`.
func rows(_ destination: String, _ n: Int, from: Int = 1, profile: Int64 = 1) -> [OutboxRecord] {
  (from..<(from + n)).map { i in
    OutboxRecord(
      destination: destination, op: .enter, profile: ProfileID(profile), key: "big",
      payload: .map(["n": .int(Int64(i))]), at: wall())
  }
}

/// The numbers of the items a receiver accepted (after de-duplication by idempotency key), sorted.
func acceptedNumbers(_ r: WebhookReceiver) -> [Int] {
  r.accepted.values.flatMap { $0 }.compactMap { item in
    guard let d = item.data(using: .utf8), let o = try? JSONSerialization.jsonObject(with: d) as? [String: Any] else {
      return nil
    }
    return o["n"] as? Int
  }.sorted()
}

/// Runs a webhook queue against a receiver until drained (or `wait` passes for retries not yet due).
func deliverWebhooks(
  store: any Store, queues: [(name: String, path: String, retry: RetrySettings, timeout: Double)], port: Int,
  batch: Int = 100, wait: Double = 10
) async throws -> [String: DeliveryCounts] {
  try await HTTPClient.withHTTPClient { client in
    let q = queues.map { spec in
      DeliveryQueue(
        name: spec.name,
        target: WebhookTarget(
          destination: spec.name, url: "http://127.0.0.1:\(port)\(spec.path)", headers: ["X-Test": "1"],
          timeout: TimeSpan(seconds: spec.timeout), client: client, clock: wall),
        batch: batching(batch), retry: spec.retry, concurrency: 2)
    }
    let engine = DeliveryEngine(store: store, queues: q, clock: wall)
    return try await engine.run(.drain(deadline: wall() + TimeSpan(seconds: wait)))
  }
}

/// Compiles a pipeline file; fails the test with the diagnostics when it does not compile.
func compile(_ path: String) throws -> PipelinePlan {
  let result = Compiler().compile(pipeline: path)
  guard let plan = result.plan else {
    Issue.record("the test pipeline does not compile:\n\(result.rendered())")
    throw CancellationError()
  }
  return plan
}

/// Runs a pipeline's file sources into a store at `now`.
func runPipeline(_ plan: PipelinePlan, store: any Store, now: String = "2026-06-30T00:00:00Z") async throws
  -> RunSummary
{
  var readers: [Int: any SourceReader] = [:]
  for (i, s) in plan.config.sources.enumerated() where s.kind != .http {
    readers[i] = FileSourceReader(source: s, batchSize: 64)
  }
  let runner = PipelineRunner(
    plan: plan, store: store, readers: readers, workers: 2, now: Timestamp(iso8601: now) ?? wall())
  return try await runner.run()
}
