// Soak: a destination down for a long time under load (issue 22). A `tessera serve` child process takes
// tracking batches at a steady rate; its pipeline delivers every event to two webhook destinations on
// receivers in this process: `steady` answers, `down` answers 503 for the whole load and comes back when it
// ends. Every interval it prints the rate achieved, the server's memory (RSS), what each receiver got and what
// waits in the outbox; at the end, how long the backlog took to drain and whether every event reached each
// destination exactly once.
//
//   swift run -c release --package-path Benchmarks tessera-soak [--minutes 10] [--rate 5000] [--batch 100]
//     [--clients 4] [--persons 50000] [--interval 10] [--drain-minutes 20]
import AsyncHTTPClient
import Foundation
import NIOCore
import Synchronization
import TesseraCompiler
import TesseraDelivery
import TesseraModel
import TesseraReceiver
import TesseraSQLite
import TesseraServer
import TesseraStore

let args = Array(CommandLine.arguments.dropFirst())

/// A line on stdout, unbuffered, so a log file follows the run.
@Sendable func say(_ line: String) { FileHandle.standardOutput.write(Data((line + "\n").utf8)) }
func option(_ name: String, _ fallback: Double) -> Double {
  guard let i = args.firstIndex(of: "--" + name), i + 1 < args.count, let v = Double(args[i + 1]) else {
    return fallback
  }
  return v
}

/// A webhook destination of every event. The retry settings ride out an outage of the soak's length: with the
/// defaults (10 attempts, backoff 1s..5m) a batch is dead-lettered after about 8 to 17 minutes of failures.
func destinationYAML(_ name: String, port: Int) -> String {
  """
    \(name):
      kind: webhook
      url: http://127.0.0.1:\(port)/\(name)
      on: events
      payload: { id: message_id, type: type, profile: profile.id }
      batch: { max_events: 500, max_wait: 1s }
      retry: { attempts: 100, backoff: 1s..1m, max_age: 24h }
  """
}

/// Two destinations identical but for their receiver.
func pipelineYAML(steady: Int, down: Int) -> String {
  """
  pipeline: soak
  identifiers:
    user_id:      { normalize: trim, max_per_profile: 1, priority: 1 }
    email:        { normalize: email, max_per_profile: 5, priority: 2 }
    anonymous_id: { normalize: trim, max_per_profile: 50, priority: 9 }
  deterministic:
    strong_ids: { link_on: [user_id, email, anonymous_id] }
  profile:
    default_policy: most_recent
    traits:
      plan: { type: string, policy: most_recent }
  sources:
    web: { kind: http, write_key: soak-key }
  destinations:
  \(destinationYAML("steady", port: steady))
  \(destinationYAML("down", port: down))
  """
}

// MARK: The server (child process)

if let i = args.firstIndex(of: "--child"), i + 3 < args.count, let steady = Int(args[i + 2]),
  let down = Int(args[i + 3])
{
  let dir = args[i + 1]
  try pipelineYAML(steady: steady, down: down).write(toFile: dir + "/soak.yaml", atomically: true, encoding: .utf8)
  let compiled = Compiler(environment: [:]).compile(pipeline: dir + "/soak.yaml")
  guard let plan = compiled.plan else { fatalError(compiled.rendered()) }
  let store = try SQLiteStore(path: dir + "/soak.sqlite")
  // The destinations are delivered from the server, as `tessera serve` does.
  let client = DeliveryQueue.makeClient()
  let clock: @Sendable () -> Timestamp = { Timestamp(Date()) }
  let queues = try DeliveryQueue.plan(plan.config, storePath: dir + "/soak.sqlite", client: client, clock: clock)
  let server = TesseraHTTPServer(
    plan: plan, store: store, options: .init(host: "127.0.0.1", port: 0, handleSignals: true, logLevel: "error"),
    deliveries: DeliveryEngine(store: store, queues: queues, clock: clock))
  // What waits in the outbox, per destination, every 5 s on stdout (read by the parent).
  let monitor = Task {
    while !Task.isCancelled {
      try await Task.sleep(for: .seconds(5))
      let summary = try await store.outboxSummary()
      var line: [String: Value] = [:]
      for (name, s) in summary {
        line[name] = .map([
          "queued": .int(Int64(s.queued)), "pending": .int(Int64(s.pending)), "failing": .int(Int64(s.failing)),
          "sending": .int(Int64(s.sending)), "dead": .int(Int64(s.dead)), "delivered": .int(Int64(s.deliveredItems)),
        ])
      }
      FileHandle.standardOutput.write(Data("STATUS \(JSON.encode(.map(line)))\n".utf8))
    }
  }
  try await server.run { port in FileHandle.standardOutput.write(Data("PORT \(port)\n".utf8)) }
  monitor.cancel()
  try await client.shutdown()
  exit(0)
}

// MARK: The load and the receivers (this process)

let minutes = option("minutes", 10)
let rate = option("rate", 5000)
let batch = Int(option("batch", 100))
let clients = Int(option("clients", 4))
let persons = Int(option("persons", 50_000))
let interval = option("interval", 10)
let drainMinutes = option("drain-minutes", 20)
let cores = ProcessInfo.processInfo.activeProcessorCount

let dir = FileManager.default.temporaryDirectory.appendingPathComponent("tessera-soak-\(UUID().uuidString)").path
try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
let steady = CountingReceiver(idField: "id")
let down = CountingReceiver(idField: "id")
let steadyPort = try await steady.start()
let downPort = try await down.start()
down.setDown(true)

let child = Process()
child.executableURL = URL(fileURLWithPath: CommandLine.arguments[0])
child.arguments = ["--child", dir, String(steadyPort), String(downPort)]
let out = Pipe()
child.standardOutput = out
try child.run()

/// The child's last outbox line, and its port.
let lastStatus = Mutex<[String: Value]>([:])
let portBox = Mutex<Int?>(nil)
let reader = Thread {
  var pending = ""
  while true {
    let data = out.fileHandleForReading.availableData
    if data.isEmpty { return }
    pending += String(decoding: data, as: UTF8.self)
    while let nl = pending.firstIndex(of: "\n") {
      let line = String(pending[..<nl])
      pending = String(pending[pending.index(after: nl)...])
      if line.hasPrefix("PORT "), let p = Int(line.dropFirst(5)) { portBox.withLock { $0 = p } }
      if line.hasPrefix("STATUS "), case .map(let m)? = try? JSON.parse(String(line.dropFirst(7))) {
        lastStatus.withLock { $0 = m }
      }
    }
  }
}
reader.start()
var port = 0
while port == 0 {
  try await Task.sleep(for: .milliseconds(50))
  port = portBox.withLock { $0 } ?? 0
}

/// Resident and peak memory of the server process, in MiB (from /proc).
func memory(_ pid: Int32) -> (rss: Double, peak: Double) {
  guard let text = try? String(contentsOfFile: "/proc/\(pid)/status", encoding: .utf8) else { return (0, 0) }
  func field(_ name: String) -> Double {
    guard let line = text.split(separator: "\n").first(where: { $0.hasPrefix(name + ":") }),
      let kb = Double(line.split(separator: " ").dropFirst().first ?? "")
    else { return 0 }
    return kb / 1024
  }
  return (field("VmRSS"), field("VmHWM"))
}

func body(_ request: Int, _ rng: inout SplitMix64) -> ByteBuffer {
  var out = "{\"sentAt\":\"2026-11-29T12:00:00.000Z\",\"batch\":["
  for n in 0..<batch {
    if n > 0 { out += "," }
    let p = rng.int(0..<persons)
    let kind = rng.int(0..<10)
    let type = kind < 2 ? "identify" : (kind < 5 ? "page" : "track")
    out += "{\"type\":\"\(type)\",\"messageId\":\"soak-\(request)-\(n)\",\"anonymousId\":\"anon-\(p)\""
    out += p % 5 < 3 ? ",\"userId\":\"u\(p)\"" : ""
    out += ",\"timestamp\":\"2026-11-29T11:59:59.500Z\",\"context\":{\"ip\":\"203.0.113.\(p % 250)\"}"
    switch type {
    case "identify":
      out += ",\"traits\":{\"email\":\"person\(p)@example.com\",\"plan\":\"\(p % 3 == 0 ? "pro" : "free")\"}"
    case "page": out += ",\"name\":\"Product\",\"properties\":{\"path\":\"/p/\(rng.int(0..<500))\"}"
    default: out += ",\"event\":\"Product Viewed\",\"properties\":{\"sku\":\"SKU-\(rng.int(0..<900))\"}"
    }
    out += "}"
  }
  return ByteBuffer(string: out + "]}")
}

struct Load: Sendable {
  var stored = 0
  var duplicates = 0
  var requests = 0
  var errors = 0
  var latencies: [Double] = []
  var firstError: String?
}
let load = Mutex(Load())

var config = HTTPClient.Configuration()
config.connectionPool = .init(idleTimeout: .seconds(60), concurrentHTTP1ConnectionsPerHostSoftLimit: clients)
let client = HTTPClient(eventLoopGroupProvider: .singleton, configuration: config)
let auth = "Basic " + Data("soak-key:".utf8).base64EncodedString()
let url = "http://127.0.0.1:\(port)/v1/batch"
let totalRequests = Int(rate * minutes * 60) / batch
let spacing = Double(batch) / rate
let started = ContinuousClock.now

func seconds(_ d: Duration) -> Double { Double(d.components.seconds) + Double(d.components.attoseconds) / 1e18 }

say(
  "soak: \(Int(rate)) events/s for \(minutes) min (\(totalRequests) requests of \(batch)), \(clients) clients, "
    + "\(persons) persons, cores=\(cores); server pid \(child.processIdentifier), store \(dir)/soak.sqlite; "
    + "`down` answers 503 until the load ends")
say(
  "t_s\tacked\trate/s\tp99_ms\trss_MiB\tsteady_items\tsteady/s\tdown_items\tdown_refused\tdown_waiting\toutbox_down")

/// One line of the table: the interval's rates from the difference with the previous sample.
struct Sample {
  var t: Double
  var acked: Int
  var steady: Int
}
let samples = Mutex((previous: Sample(t: 0, acked: 0, steady: 0), rss: [Double]()))
@Sendable func report() {
  let t = seconds(ContinuousClock.now - started)
  let (acked, latencies) = load.withLock { l -> (Int, [Double]) in
    defer { l.latencies.removeAll(keepingCapacity: true) }
    return (l.stored, l.latencies)
  }
  let s = steady.counts
  let d = down.counts
  let rss = memory(child.processIdentifier).rss
  let previous = samples.withLock { $0.previous }
  let sorted = latencies.sorted()
  let p99 = sorted.isEmpty ? 0 : sorted[min(sorted.count - 1, Int(Double(sorted.count) * 0.99))] * 1000
  let dt = max(0.001, t - previous.t)
  let outbox = lastStatus.withLock { $0["down"] }.map { JSON.encode($0) } ?? "-"
  say(
    String(
      format: "%.0f\t%d\t%.0f\t%.1f\t%.0f\t%d\t%.0f\t%d\t%d\t%d\t%@", t, acked, Double(acked - previous.acked) / dt,
      p99, rss, s.items, Double(s.items - previous.steady) / dt, d.items, d.refused, acked - d.distinct, outbox))
  samples.withLock {
    $0.previous = Sample(t: t, acked: acked, steady: s.items)
    $0.rss.append(rss)
  }
}

let sampler = Task {
  while !Task.isCancelled {
    try await Task.sleep(for: .seconds(interval))
    report()
  }
}

try await withThrowingTaskGroup(of: Void.self) { group in
  for c in 0..<clients {
    group.addTask {
      var rng = SplitMix64(seed: UInt64(c + 1))
      for k in stride(from: c, to: totalRequests, by: clients) {
        let due = started + .seconds(Double(k) * spacing)
        if ContinuousClock.now < due { try await Task.sleep(until: due) }
        var request = HTTPClientRequest(url: url)
        request.method = .POST
        request.headers.add(name: "Authorization", value: auth)
        request.headers.add(name: "Content-Type", value: "application/json")
        request.body = .bytes(body(k, &rng))
        let t0 = ContinuousClock.now
        do {
          let response = try await client.execute(request, timeout: .seconds(60))
          let text = String(buffer: try await response.body.collect(upTo: 1 << 20))
          let latency = seconds(ContinuousClock.now - t0)
          let answer = try? JSON.parse(text)
          load.withLock { l in
            l.requests += 1
            l.latencies.append(latency)
            if response.status == .ok, case .int(let stored)? = answer?.lookup(["stored"]),
              case .int(let dup)? = answer?.lookup(["duplicates"])
            {
              l.stored += Int(stored)
              l.duplicates += Int(dup)
            } else {
              l.errors += 1
              if l.firstError == nil { l.firstError = "\(response.status.code) \(text.prefix(200))" }
            }
          }
        } catch {
          load.withLock { l in
            l.errors += 1
            if l.firstError == nil { l.firstError = "\(error)" }
          }
        }
      }
    }
  }
  try await group.waitForAll()
}
let loadSeconds = seconds(ContinuousClock.now - started)
let final = load.withLock { $0 }
let downMax = final.stored - down.counts.distinct
say(
  String(
    format: "load done: %d events acknowledged in %.1f s (%.0f/s), %d requests, %d errors%@",
    final.stored, loadSeconds, Double(final.stored) / loadSeconds, final.requests, final.errors,
    final.firstError.map { " (first: \($0))" } ?? ""))
say("`down` answers again; draining")
down.setDown(false)
let recovered = ContinuousClock.now
var drained: Double?
while seconds(ContinuousClock.now - recovered) < drainMinutes * 60 {
  try await Task.sleep(for: .seconds(1))
  if steady.counts.distinct >= final.stored && down.counts.distinct >= final.stored {
    drained = seconds(ContinuousClock.now - recovered)
    break
  }
}
sampler.cancel()
report()
let s = steady.counts
let d = down.counts
let mem = memory(child.processIdentifier)
let rssSeen = samples.withLock { $0.rss }
say(
  """
  summary: cores=\(cores) rate=\(Int(rate))/s minutes=\(minutes) acked=\(final.stored) duplicates_answered=\(final.duplicates) \
  load_errors=\(final.errors)
  server memory: RSS first sample \(String(format: "%.0f", rssSeen.first ?? 0)) MiB, at the end of the load \
  \(String(format: "%.0f", rssSeen.count > 1 ? rssSeen[rssSeen.count - 2] : 0)) MiB, min \(String(format: "%.0f", rssSeen.min() ?? 0)) \
  max \(String(format: "%.0f", rssSeen.max() ?? 0)), peak (VmHWM) \(String(format: "%.0f", mem.peak)) MiB
  steady: \(s.distinct) of \(final.stored) events, \(s.batches) batches, \(s.repeatedBatches) batches repeated under the \
  same key, \(s.repeatedItems) events delivered twice, \(s.refused) refused
  down: \(d.distinct) of \(final.stored) events, \(d.batches) batches, \(d.repeatedBatches) repeated under the same key, \
  \(d.repeatedItems) delivered twice, \(d.refused) requests refused while down; at most \(downMax) events waited
  drained: \(drained.map { String(format: "%.1f s after recovery", $0) } ?? "NOT within \(drainMinutes) min")
  """)
child.terminate()
child.waitUntilExit()
try await client.shutdown()
steady.stop()
down.stop()
try? FileManager.default.removeItem(atPath: dir)
let ok = drained != nil && s.repeatedItems == 0 && d.repeatedItems == 0 && final.errors == 0
exit(ok ? 0 : 1)
