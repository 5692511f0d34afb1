import AsyncHTTPClient
import Foundation
import NIOCore
import NIOHTTP1
import Synchronization
import TesseraCompiler
import TesseraModel
import TesseraPostgres
import TesseraPostgresCluster
import TesseraRuntime
import TesseraSQLite
import TesseraServer
import TesseraStore

// Load generator for `tessera serve`: C clients post batches of B Segment-shaped events over keep-alive
// connections on loopback, each waiting for its answer before sending the next, and we measure accepted events
// per second and request latency. By default the server runs in this process on a fresh SQLite store;
// `--url` points the clients at a server started elsewhere (`tessera serve`).
//
//   swift run -c release --package-path Benchmarks tessera-load                 # durable: POST /v1/batch
//   swift run -c release --package-path Benchmarks tessera-load --route noop    # ceiling: 200 without storing

struct Options {
  var clients = 8
  var batch = 100
  var requests = 250
  var route = "batch"
  var url: String?
  var key = "load-key"
  var persons = 50_000
  /// `--servers N`: start N `tessera serve`-equivalent child processes (this executable with `--child`) on one
  /// store and spread the clients over them; `--store sqlite|postgres` (postgres: a throwaway cluster).
  var servers = 0
  var store = "sqlite"
  /// `--child STORE`: be one such server (prints `PORT n`, serves until SIGTERM).
  var child: String?
  /// `--acknowledge resolved|journaled`: when the servers answer (`LivePipeline.Acknowledge`).
  var acknowledge = LivePipeline.Acknowledge.resolved

  init(_ args: [String]) {
    var i = 0
    func next() -> String {
      i += 1
      guard i < args.count else {
        FileHandle.standardError.write(Data("missing value for \(args[i - 1])\n".utf8))
        exit(64)
      }
      return args[i]
    }
    while i < args.count {
      switch args[i] {
      case "--clients": clients = Int(next()) ?? clients
      case "--batch": batch = Int(next()) ?? batch
      case "--requests": requests = Int(next()) ?? requests
      case "--route": route = next()
      case "--url": url = next()
      case "--key": key = next()
      case "--persons": persons = Int(next()) ?? persons
      case "--servers": servers = Int(next()) ?? servers
      case "--store": store = next()
      case "--child": child = next()
      case "--acknowledge":
        let text = next()
        guard let a = LivePipeline.Acknowledge(rawValue: text) else {
          FileHandle.standardError.write(Data("--acknowledge is resolved or journaled, not \(text)\n".utf8))
          exit(64)
        }
        acknowledge = a
      default:
        FileHandle.standardError.write(
          Data(
            "usage: tessera-load [--clients 8] [--batch 100] [--requests 250 (per client)] [--route batch|noop] [--url http://HOST:PORT] [--key WRITE_KEY] [--persons 50000] [--servers N --store sqlite|postgres] [--acknowledge resolved|journaled]\n"
              .utf8))
        exit(64)
      }
      i += 1
    }
  }
}

/// One request body: `batch` messages of people drawn from `persons` (anonymous ids on 1–2 devices, a user id on
/// 60 %, an email on identify), identify/page/track in 2:3:5, unique message ids.
func body(client: Int, request: Int, options: Options, rng: inout SplitMix64) -> String {
  var out = "{\"sentAt\":\"2026-11-29T12:00:00.000Z\",\"batch\":["
  out.reserveCapacity(options.batch * 420)
  for n in 0..<options.batch {
    if n > 0 { out += "," }
    let p = rng.int(0..<options.persons)
    let kind = rng.int(0..<10)
    let type = kind < 2 ? "identify" : (kind < 5 ? "page" : "track")
    out += "{\"type\":\"\(type)\",\"messageId\":\"load-\(client)-\(request)-\(n)\""
    out += ",\"anonymousId\":\"anon-\(p)-\(rng.int(0..<2))\""
    out += p % 5 < 3 ? ",\"userId\":\"u\(p)\"" : ",\"userId\":null"
    out += ",\"timestamp\":\"2026-11-29T11:59:59.\(100 + rng.int(0..<800))Z\""
    out += ",\"context\":{\"ip\":\"203.0.113.\(p % 250)\""
    out += ",\"library\":{\"name\":\"analytics-python\",\"version\":\"2.4.0\"}"
    out += ",\"userAgent\":\"Mozilla/5.0 (iPhone; CPU iPhone OS 17_4 like Mac OS X)\"}"
    switch type {
    case "identify":
      out += ",\"traits\":{\"email\":\"person\(p)@example.com\",\"plan\":\"\(p % 3 == 0 ? "pro" : "free")\"}"
    case "page": out += ",\"name\":\"Product\",\"properties\":{\"path\":\"/p/\(rng.int(0..<500))\"}"
    default: out += ",\"event\":\"Product Viewed\",\"properties\":{\"sku\":\"SKU-\(rng.int(0..<900))\",\"price\":19.99}"
    }
    out += "}"
  }
  return out + "]}"
}

let pipelineYAML = """
  pipeline: load
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
    web: { kind: http, write_key: load-key }
  """

func percentile(_ sorted: [Double], _ p: Double) -> Double {
  guard !sorted.isEmpty else { return 0 }
  return sorted[min(sorted.count - 1, Int((Double(sorted.count) * p).rounded(.up)) - 1)]
}

let options = Options(Array(CommandLine.arguments.dropFirst()))
let cores = ProcessInfo.processInfo.activeProcessorCount

/// Opens `place`: a PostgreSQL URL or a SQLite path.
func openStore(_ place: String) async throws -> any Store {
  place.hasPrefix("postgres") ? try await PostgresStore(url: place) : try SQLiteStore(path: place)
}

func compiledPlan(in dir: String) throws -> PipelinePlan {
  try pipelineYAML.write(toFile: dir + "/load.yaml", atomically: true, encoding: .utf8)
  guard let plan = Compiler().compile(pipeline: dir + "/load.yaml").plan else {
    fatalError("the load pipeline does not compile")
  }
  return plan
}

/// The directories this process made (stores, pipelines), removed when it is done: a load store with its
/// write-ahead log is ~1.2 GB, and runs left tens of gigabytes in /tmp.
var madeDirectories: [String] = []

@MainActor func temporaryDirectory() throws -> String {
  let dir = FileManager.default.temporaryDirectory.appendingPathComponent("tessera-load-\(UUID().uuidString)").path
  try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
  madeDirectories.append(dir)
  return dir
}

@MainActor func removeMadeDirectories() {
  for dir in madeDirectories { try? FileManager.default.removeItem(atPath: dir) }
}

// A child server: what `tessera serve --store STORE --port 0` does, printing its port on stdout.
if let place = options.child {
  let plan = try compiledPlan(in: try temporaryDirectory())
  let s = TesseraHTTPServer(
    plan: plan, store: try await openStore(place),
    options: .init(
      host: "127.0.0.1", port: 0, handleSignals: true, logLevel: "warning", acknowledge: options.acknowledge))
  try await s.run { port in
    // Unbuffered: the parent waits for this line on a pipe.
    FileHandle.standardOutput.write(Data("PORT \(port)\n".utf8))
  }
  removeMadeDirectories()
  exit(0)
}

/// A child server process (this executable with `--child`).
struct Child {
  let process: Process
  let port: Int

  static func start(store: String) throws -> Child {
    let process = Process()
    process.executableURL = URL(fileURLWithPath: CommandLine.arguments[0])
    process.arguments = ["--child", store, "--acknowledge", options.acknowledge.rawValue]
    let out = Pipe()
    process.standardOutput = out
    try process.run()
    var text = ""
    while !text.contains("\n") {
      let data = out.fileHandleForReading.availableData
      if data.isEmpty { fatalError("a child server ended before it listened") }
      text += String(decoding: data, as: UTF8.self)
    }
    guard let port = Int(text.split(separator: " ").last?.trimmingCharacters(in: .whitespacesAndNewlines) ?? "")
    else { fatalError("a child server printed \(text)") }
    return Child(process: process, port: port)
  }
}

// The servers: in this process unless --url or --servers says otherwise.
var server: TesseraHTTPServer?
var serverTask: Task<Void, any Error>?
var bases = options.url.map { $0.split(separator: ",").map(String.init) } ?? []
var children: [Child] = []
var cluster: PostgresCluster?
if options.servers > 0 {
  let place: String
  if options.store == "postgres" {
    let c = try PostgresCluster(settings: "-c shared_buffers=512MB -c max_wal_size=4GB")
    cluster = c
    place = try await c.newDatabase("load")
  } else {
    place = try temporaryDirectory() + "/store.sqlite"
  }
  // The first server becomes the writer; the others start once it has (they become followers).
  for n in 0..<options.servers {
    let child = try Child.start(store: place)
    children.append(child)
    bases.append("http://127.0.0.1:\(child.port)")
    if n == 0 {
      for _ in 0..<600 {
        let health = try? await HTTPClient.shared.get(url: bases[0] + "/health").get()
        if let body = health?.body, String(buffer: body).contains("\"writer\"") { break }
        try await Task.sleep(for: .milliseconds(50))
      }
    }
  }
  print("\(options.servers) server processes on \(options.store) (\(bases.joined(separator: ", ")))")
} else if bases.isEmpty {
  let dir = try temporaryDirectory()
  let plan = try compiledPlan(in: dir)
  let s = TesseraHTTPServer(
    plan: plan, store: try SQLiteStore(path: dir + "/store.sqlite"),
    options: .init(
      host: "127.0.0.1", port: 0, benchmarkRoutes: true, logLevel: "warning", acknowledge: options.acknowledge))
  let (ports, continuation) = AsyncStream.makeStream(of: Int.self)
  serverTask = Task { try await s.run { continuation.yield($0) } }
  var port = 0
  for await p in ports {
    port = p
    break
  }
  server = s
  bases = ["http://127.0.0.1:\(port)"]
  print("server in process on \(bases[0]), store \(dir)/store.sqlite")
}

// Bodies are made before the clock starts, so generating them costs the measurement nothing.
var rng = SplitMix64(seed: 42)
var bodies: [[ByteBuffer]] = []
for c in 0..<options.clients {
  var mine: [ByteBuffer] = []
  for r in 0..<options.requests {
    mine.append(ByteBuffer(string: body(client: c, request: r, options: options, rng: &rng)))
  }
  bodies.append(mine)
}
let bytesPerRequest = bodies.first?.first?.readableBytes ?? 0
let path = options.route == "noop" ? "/bench/noop" : "/v1/batch"
let targets = bases.map { $0 + path }
let auth = "Basic " + Data("\(options.key):".utf8).base64EncodedString()

var config = HTTPClient.Configuration()
config.connectionPool = .init(idleTimeout: .seconds(60), concurrentHTTP1ConnectionsPerHostSoftLimit: options.clients)
config.timeout.connect = .seconds(2)
let client = HTTPClient(eventLoopGroupProvider: .singleton, configuration: config)

struct ClientResult: Sendable {
  var latencies: [Double] = []
  var accepted = 0
  var errors = 0
  var firstError: String?
}

// One warm-up request per client opens the keep-alive connections.
let warmup = ByteBuffer(string: "{\"batch\":[]}")
try await withThrowingTaskGroup(of: Void.self) { group in
  for c in 0..<options.clients {
    let target = targets[c % targets.count]
    group.addTask {
      var req = HTTPClientRequest(url: target)
      req.method = .POST
      req.headers.add(name: "Authorization", value: auth)
      req.headers.add(name: "Content-Type", value: "application/json")
      req.body = .bytes(warmup)
      let r = try await client.execute(req, timeout: .seconds(30))
      _ = try await r.body.collect(upTo: 1 << 20)
    }
  }
  try await group.waitForAll()
}

let started = ContinuousClock.now
let results = try await withThrowingTaskGroup(of: ClientResult.self) { group in
  for c in 0..<options.clients {
    let mine = bodies[c]
    // Clients are spread over the servers as a load balancer would.
    let target = targets[c % targets.count]
    group.addTask {
      var result = ClientResult()
      result.latencies.reserveCapacity(mine.count)
      for b in mine {
        var req = HTTPClientRequest(url: target)
        req.method = .POST
        req.headers.add(name: "Authorization", value: auth)
        req.headers.add(name: "Content-Type", value: "application/json")
        req.body = .bytes(b)
        let t0 = ContinuousClock.now
        do {
          let r = try await client.execute(req, timeout: .seconds(30))
          let answer = try await r.body.collect(upTo: 1 << 20)
          let d = ContinuousClock.now - t0
          result.latencies.append(Double(d.components.seconds) + Double(d.components.attoseconds) / 1e18)
          if r.status == .ok {
            result.accepted += options.batch
          } else {
            result.errors += 1
            if result.firstError == nil { result.firstError = "\(r.status.code) \(String(buffer: answer))" }
          }
        } catch {
          result.errors += 1
          if result.firstError == nil { result.firstError = "\(error)" }
        }
      }
      return result
    }
  }
  var all: [ClientResult] = []
  for try await r in group { all.append(r) }
  return all
}
let elapsed = ContinuousClock.now - started
let seconds = Double(elapsed.components.seconds) + Double(elapsed.components.attoseconds) / 1e18
let latencies = results.flatMap(\.latencies).sorted()
let accepted = results.map(\.accepted).reduce(0, +)
let errors = results.map(\.errors).reduce(0, +)
try await client.shutdown().get()

// Followers (and a journaling server) acknowledge once events are journaled; the writer resolves them after.
// Wait until the store holds every accepted event, and report the end-to-end rate (first request to last
// event resolved) next to the acknowledgement rate.
var settled: (stored: Int, seconds: Double)?
if !children.isEmpty || options.acknowledge == .journaled {
  var stored = 0
  while stored < accepted {
    if let health = try? await HTTPClient.shared.get(url: bases[0] + "/health").get(), let body = health.body,
      case .map(let m)? = try? JSON.parse(String(buffer: body)), case .int(let n)? = m["events"]
    {
      stored = Int(n)
    }
    if stored < accepted { try await Task.sleep(for: .milliseconds(200)) }
  }
  let resolved = ContinuousClock.now - started
  settled = (stored, Double(resolved.components.seconds) + Double(resolved.components.attoseconds) / 1e18)
}

if let server {
  // Where the writer's time went: resolving groups vs. their store transactions.
  for line in server.metrics.render().split(separator: "\n")
  where line.hasPrefix("tessera_resolve_duration_seconds_sum") || line.hasPrefix("tessera_commit_duration_seconds_sum")
    || line.hasPrefix("tessera_commit_events_count")
  {
    print("server: \(line)")
  }
  await server.shutdown()
  try await serverTask?.value
}
let label =
  options.route == "noop"
  ? "ceiling (200 without storing)"
  : (children.count > 1 || options.acknowledge == .journaled
    ? "durable (200 after commit or journal)" : "durable (200 after commit)")
print(
  String(
    format:
      "%@ route=%@ cores=%d servers=%d clients=%d batch=%d requests=%d bytes/request=%d events=%d seconds=%.2f events/s=%.0f requests/s=%.0f p50=%.1fms p90=%.1fms p99=%.1fms max=%.1fms errors=%d",
    label, path, cores, max(1, bases.count), options.clients, options.batch, latencies.count, bytesPerRequest,
    accepted, seconds, Double(accepted) / seconds, Double(latencies.count) / seconds, percentile(latencies, 0.5) * 1000,
    percentile(latencies, 0.9) * 1000, percentile(latencies, 0.99) * 1000, (latencies.last ?? 0) * 1000, errors))
if let e = results.compactMap(\.firstError).first { print("first error: \(e)") }

if let settled {
  print(
    String(
      format:
        "resolved store=%@ servers=%d events=%d seconds=%.2f events/s=%.0f (first request to last event resolved)",
      options.store, max(1, children.count), settled.stored, settled.seconds, Double(settled.stored) / settled.seconds))
}
for c in children {
  c.process.terminate()
  c.process.waitUntilExit()
}
cluster?.stop()
removeMadeDirectories()
