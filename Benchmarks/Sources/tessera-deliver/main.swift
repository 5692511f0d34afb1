// Delivery benchmark: N segment changes from a SQLite outbox to a webhook receiver on loopback, in batches,
// once with a healthy receiver and once with one that fails a share of requests with 500.
//
//   swift run -c release --package-path Benchmarks tessera-deliver [--changes 100000] [--batch 500]
//     [--concurrency 4] [--failure-rate 0.3]
import AsyncHTTPClient
import Foundation
import TesseraCompiler
import TesseraDelivery
import TesseraModel
import TesseraReceiver
import TesseraSQLite
import TesseraStore

func option(_ name: String, _ fallback: Double) -> Double {
  let args = CommandLine.arguments
  guard let i = args.firstIndex(of: "--" + name), i + 1 < args.count, let v = Double(args[i + 1]) else {
    return fallback
  }
  return v
}

let changes = Int(option("changes", 100_000))
let batchSize = Int(option("batch", 500))
let concurrency = Int(option("concurrency", 4))
let failureRate = option("failure-rate", 0.3)
let clock: @Sendable () -> Timestamp = { Timestamp(Date()) }

func hex(_ n: Int, _ salt: String) -> String {
  var h = Hasher()
  h.combine(n)
  h.combine(salt)
  let v = UInt64(bitPattern: Int64(h.finalize()))
  return String(repeating: String(format: "%016llx", v), count: 4)
}

struct Result {
  var seconds: Double
  var accepted: Int
  var distinct: Int
  var requests: Int
  var failed: Int
  var duplicates: Int
}

func run(failureRate: Double) async throws -> Result {
  let dir = FileManager.default.temporaryDirectory.appendingPathComponent("tessera-deliver-\(UUID().uuidString)").path
  try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
  defer { try? FileManager.default.removeItem(atPath: dir) }
  let store = try SQLiteStore(path: dir + "/bench.sqlite")
  // The changes a run would have committed: enters and exits of an ad audience with hashed identifiers.
  var rows: [OutboxRecord] = []
  rows.reserveCapacity(changes)
  let at = clock()
  for n in 0..<changes {
    rows.append(
      OutboxRecord(
        destination: "ads", op: n % 5 == 4 ? .exit : .enter, profile: ProfileID(Int64(n + 1)), key: "high_value",
        payload: .map([
          "n": .int(Int64(n)), "audience": .string("high_value"), "action": .string(n % 5 == 4 ? "remove" : "add"),
          "email_sha256": .string(hex(n, "email")), "phone_sha256": .string(hex(n, "phone")),
        ]), at: at))
  }
  for chunk in stride(from: 0, to: rows.count, by: 10_000) {
    var b = CommitBatch()
    b.outbox = Array(rows[chunk..<min(rows.count, chunk + 10_000)])
    try await store.commit(b)
  }
  let receiver = WebhookReceiver(failureRate: failureRate, seed: 42)
  let port = try await receiver.start()
  defer { receiver.stop() }
  var batch = BatchSettings()
  batch.maxEvents = batchSize
  batch.maxBytes = 10_000_000
  var retry = RetrySettings()
  retry.attempts = 100
  retry.backoffMin = TimeSpan(seconds: 0.005)
  retry.backoffMax = TimeSpan(seconds: 0.1)
  let started = ContinuousClock.now
  try await HTTPClient.withHTTPClient { client in
    let queue = DeliveryQueue(
      name: "ads",
      target: WebhookTarget(
        destination: "ads", url: "http://127.0.0.1:\(port)/audience", headers: [:], timeout: TimeSpan(seconds: 30),
        client: client, clock: clock), batch: batch, retry: retry, concurrency: concurrency)
    let engine = DeliveryEngine(store: store, queues: [queue], clock: clock)
    _ = try await engine.run(.drain(deadline: clock() + TimeSpan(seconds: 600)))
  }
  let elapsed = ContinuousClock.now - started
  let seconds = Double(elapsed.components.seconds) + Double(elapsed.components.attoseconds) / 1e18
  let items = receiver.accepted.values.flatMap { $0 }
  var numbers = Set<Int>()
  for item in items {
    if let d = item.data(using: .utf8), let o = try JSONSerialization.jsonObject(with: d) as? [String: Any],
      let n = o["n"] as? Int
    {
      numbers.insert(n)
    }
  }
  let requests = receiver.requests
  return Result(
    seconds: seconds, accepted: items.count, distinct: numbers.count, requests: requests.count,
    failed: requests.filter { $0.status != 200 }.count, duplicates: receiver.duplicates)
}

print(
  "tessera-deliver: \(changes) changes, batches of \(batchSize), \(concurrency) in flight, "
    + "\(ProcessInfo.processInfo.activeProcessorCount) cores")
for rate in [0, failureRate] {
  let r = try await run(failureRate: rate)
  print(
    String(
      format:
        "  failure rate %.0f%%: %.2f s, %.0f changes/s; %d requests (%d failed), receiver accepted %d items, %d distinct, %d duplicate batches dropped",
      rate * 100, r.seconds, Double(changes) / r.seconds, r.requests, r.failed, r.accepted, r.distinct, r.duplicates))
  if r.distinct != changes || r.accepted != changes {
    print("  MISMATCH: expected every change exactly once")
  }
}
