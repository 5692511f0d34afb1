import AsyncAlgorithms
import Foundation
import Synchronization
import TesseraCompiler
import TesseraConnectors
import TesseraModel
import TesseraRuntime
import TesseraSQLite
import TesseraStore

/// Synthetic tracking events: persons recur across anonymous ids (1–3 devices each), emails and user ids,
/// so resolution attaches, merges and sometimes refuses. One NDJSON line per event, about 400 bytes.
enum EventGenerator {
  static let firstNames = [
    "Ada", "Bruno", "Chiara", "Dmitri", "Emma", "Farid", "Grace", "Henry", "Ines", "Jonas", "Kenji", "Lena",
  ]
  static let lastNames = [
    "Whitfield", "Castillo", "Rossi", "Volkov", "Lindgren", "Haddad", "Okafor", "Novak", "Patel", "Berg",
  ]
  static let events = [
    "Product Viewed", "Product Added", "Checkout Started", "Order Completed", "Newsletter Subscribed",
  ]

  /// Writes `count` events to `path`; returns the file size in bytes. With `people`, identify events also carry
  /// a postcode and a birth date per person (one in ten with a typo in the date), which the retail rules'
  /// probabilistic `person` rule blocks and compares on: devices of one person that share no identifier link by
  /// probability, and namesakes in one postcode land in the review band.
  static func write(count: Int, to path: String, seed: UInt64 = 42, people: Bool = false) throws -> Int {
    FileManager.default.createFile(atPath: path, contents: nil)
    guard let out = FileHandle(forWritingAtPath: path) else { throw CocoaError(.fileWriteNoPermission) }
    defer { try? out.close() }
    var rng = SplitMix64(seed: seed)
    let persons = max(1, count / 5)
    var buffer = ""
    buffer.reserveCapacity(1 << 20)
    var bytes = 0
    let start = Timestamp(iso8601: "2026-01-01T00:00:00Z")?.microseconds ?? 0
    for n in 0..<count {
      let p = rng.int(0..<persons)
      var prng = SplitMix64(seed: UInt64(p) &* 7919 &+ seed)
      let devices = 1 + prng.int(0..<3)
      let hasUser = prng.chance(0.7)
      let hasEmail = prng.chance(0.8)
      let hasPhone = prng.chance(0.3)
      let first = firstNames[prng.int(0..<firstNames.count)]
      let last = lastNames[prng.int(0..<lastNames.count)]
      let device = rng.int(0..<devices)
      let kind = rng.int(0..<10)
      let type = kind < 2 ? "identify" : (kind < 5 ? "page" : "track")
      let ts = Timestamp(microseconds: start + Int64(n) * 15_000_000 + Int64(rng.int(0..<1_000_000)))
      var line = "{\"messageId\":\"m-\(n)\",\"type\":\"\(type)\",\"anonymousId\":\"anon-\(p)-\(device)\""
      if hasUser && (type == "identify" || rng.chance(0.5)) {
        line += ",\"userId\":\"u\(p)\""
      } else {
        line += ",\"userId\":null"
      }
      line += ",\"timestamp\":\"\(ts.iso8601)\",\"sentAt\":\"\(ts.iso8601)\""
      if type == "identify" {
        line += ",\"traits\":{"
        var parts = [
          "\"first_name\":\"\(first)\"", "\"last_name\":\"\(last)\"",
          "\"plan\":\"\(["free", "pro", "team"][rng.int(0..<3)])\"",
        ]
        if hasEmail { parts.append("\"email\":\"\(first.lowercased()).\(last.lowercased()).\(p)@example.com\"") }
        if hasPhone { parts.append("\"phone\":\"+1415\(String(format: "%07d", p % 10_000_000))\"") }
        if people { parts += personTraits(p, noisy: rng.chance(0.1), &prng) }
        line += parts.joined(separator: ",") + "}"
      } else if type == "page" {
        line +=
          ",\"name\":\"Home\",\"properties\":{\"path\":\"/p/\(rng.int(0..<500))\",\"referrer\":\"https://www.example.org/\",\"title\":\"Trailhead Outfitters\"}"
      } else {
        let e = events[rng.int(0..<events.count)]
        line +=
          ",\"event\":\"\(e)\",\"properties\":{\"sku\":\"SKU-\(rng.int(0..<2000))\",\"price\":\(rng.int(0..<20000)).99,\"quantity\":\(1 + rng.int(0..<3)),\"currency\":\"USD\"}"
      }
      line +=
        ",\"context\":{\"ip\":\"203.0.113.\(rng.int(0..<250))\",\"library\":{\"name\":\"analytics.js\",\"version\":\"4.1.0\"},\"locale\":\"en-US\"}}\n"
      buffer += line
      if buffer.utf8.count > (1 << 20) - 1024 {
        bytes += buffer.utf8.count
        out.write(Data(buffer.utf8))
        buffer.removeAll(keepingCapacity: true)
      }
    }
    bytes += buffer.utf8.count
    out.write(Data(buffer.utf8))
    return bytes
  }

  /// A person's postcode (one of 4,000) and birth date, as identify traits; `noisy` shifts the day.
  static func personTraits(_ p: Int, noisy: Bool, _ prng: inout SplitMix64) -> [String] {
    let postcode = 10_000 + prng.int(0..<4000)
    let day = prng.int(0..<(365 * 60))
    let dob = Timestamp(microseconds: (Int64(day) - 365 * 20) * 86_400_000_000 + (noisy ? 86_400_000_000 * 3 : 0))
    return ["\"postcode\":\"\(postcode)\"", "\"date_of_birth\":\"\(dob.iso8601.prefix(10))\""]
  }

  static let pipeline = """
    pipeline: bench
    sources:
      events:
        kind: ndjson
        path: events.ndjson
        emit: track
        id: messageId
        timestamp: timestamp
        map:
          type: type
          event: coalesce(event, name, "")
          user_id: userId
          anonymous_id: anonymousId
          email: traits.email
          phone: traits.phone
          traits.first_name: traits.first_name
          traits.last_name: traits.last_name
          traits.plan: traits.plan
          properties: properties
    identifiers:
      user_id: { normalize: trim, max_per_profile: 1, priority: 1 }
      email: { normalize: email, max_per_profile: 5, priority: 2 }
      phone: { normalize: phone_e164, default_region: US, max_per_profile: 3, priority: 3 }
      anonymous_id: { normalize: trim, max_per_profile: 50, expires_after: 730d, priority: 9 }
    deterministic:
      ids: { link_on: [user_id, email, phone, anonymous_id] }
    profile:
      default_policy: most_recent
      traits:
        first_name: { type: string, policy: most_recent }
        last_name: { type: string, policy: most_recent }
        plan: { type: string, policy: most_frequent }

    """
}

enum PipelineBench {
  /// 20 computed traits (counts, sums, maxima, distinct counts, windowed and all-time) and 50 segments over
  /// them and the declared traits, appended to the benchmark pipeline for `memory-seg` / `sqlite-seg`.
  static var activation: String {
    var out = "computed:\n"
    let events = EventGenerator.events
    for i in 0..<20 {
      let e = events[i % events.count]
      switch i % 4 {
      case 0: out += "  c\(i): { aggregate: count, where: 'event == \"\(e)\"', window: \(30 + i)d }\n"
      case 1: out += "  c\(i): { aggregate: sum, of: double(properties.price), where: 'event == \"\(e)\"' }\n"
      case 2: out += "  c\(i): { aggregate: max, of: timestamp, where: 'type == \"page\"', window: \(7 + i)d }\n"
      default: out += "  c\(i): { aggregate: distinct_count, of: string(properties.sku), where: 'event == \"\(e)\"' }\n"
      }
    }
    out += "segments:\n"
    for i in 0..<50 {
      let c = i % 20
      let cond: String
      switch c % 4 {
      case 0: cond = "traits.c\(c) >= \(1 + i % 3)"
      case 1: cond = "traits.c\(c) > \(100 * (1 + i % 5)).0 && traits.plan == \"\(["free", "pro", "team"][i % 3])\""
      case 2: cond = "exists(traits.c\(c))"
      default: cond = "traits.c\(c) >= \(1 + i % 4) || traits.first_name == \"Ada\""
      }
      out += "  s\(i): '\(cond)'\n"
    }
    return out
  }

  /// The retail rules of `rules/` (identity with its probabilistic person rule, the 8 declared traits; with
  /// `activation`, its 5 computed traits and 4 segments) over the generated events, read as the retail
  /// pipeline's `web_history` source reads a Segment export. Written next to the events as files an operator
  /// would have.
  static func retail(dir: String, activation: Bool) throws -> String {
    let root = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
      .deletingLastPathComponent().deletingLastPathComponent().path
    let profile = try String(contentsOfFile: root + "/rules/profile.yaml", encoding: .utf8)
    let parts = profile.components(separatedBy: "\ncomputed:\n")
    guard parts.count == 2 else { fatalError("rules/profile.yaml: expected a computed: section") }
    try FileManager.default.createDirectory(atPath: dir + "/rules", withIntermediateDirectories: true)
    try String(contentsOfFile: root + "/rules/identity.yaml", encoding: .utf8)
      .write(toFile: dir + "/rules/identity.yaml", atomically: true, encoding: .utf8)
    // One source here, `web`, where the retail pipeline has three.
    try (parts[0].replacingOccurrences(of: "[crm, pos, web]", with: "[web]") + "\n")
      .write(toFile: dir + "/rules/profile.yaml", atomically: true, encoding: .utf8)
    let segments = try String(contentsOfFile: root + "/rules/segments.yaml", encoding: .utf8)
    try ("computed:\n" + parts[1] + "\n" + segments)
      .write(toFile: dir + "/rules/activation.yaml", atomically: true, encoding: .utf8)
    return """
      pipeline: retail_bench
      include:
        - rules/identity.yaml
        - rules/profile.yaml
      \(activation ? "  - rules/activation.yaml\n" : "")
      sources:
        web:
          kind: ndjson
          path: events.ndjson
          emit: track
          id: messageId
          timestamp: timestamp
          map:
            type: type
            event: 'coalesce(event, name, "")'
            user_id: userId
            anonymous_id: anonymousId
            email: traits.email
            phone: traits.phone
            traits: traits
            properties: properties
            properties.revenue: 'exists(properties.price) ? double(properties.price) * double(properties.quantity) : null'
            properties.store: properties.sku
            context: context

      """
  }

  static func prepare(events: Int, dir: String, activation: Bool = false, retail: Bool = false) throws -> (
    plan: PipelinePlan, bytes: Int
  ) {
    try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
    let data = dir + "/events.ndjson"
    let bytes: Int
    if let attrs = try? FileManager.default.attributesOfItem(atPath: data), let size = attrs[.size] as? Int,
      let marker = try? String(contentsOfFile: dir + "/count", encoding: .utf8), Int(marker) == events
    {
      bytes = size
    } else {
      bytes = try EventGenerator.write(count: events, to: data)
      try String(events).write(toFile: dir + "/count", atomically: true, encoding: .utf8)
    }
    let text =
      retail
      ? try Self.retail(dir: dir, activation: activation)
      : EventGenerator.pipeline + (activation ? Self.activation : "")
    try text.write(toFile: dir + "/bench.yaml", atomically: true, encoding: .utf8)
    let result = Compiler(environment: [:]).compile(pipeline: dir + "/bench.yaml")
    guard let plan = result.plan else { fatalError(result.rendered()) }
    return (plan, bytes)
  }

  static func seconds(_ d: Duration) -> Double {
    Double(d.components.seconds) + Double(d.components.attoseconds) / 1e18
  }

  /// `mode`: sqlite, memory or parse; `-seg` adds 20 computed traits and 50 segments; `-retail` runs the
  /// rules of `rules/` instead (identity, 8 traits; `-retail-seg` adds their 5 computed traits and 4 segments).
  static func run(mode rawMode: String, events: Int, workers: Int, commitEvents: Int) async throws {
    let dir = NSTemporaryDirectory() + "tessera-bench-\(events)"
    let flags = rawMode.split(separator: "-").dropFirst()
    let activation = flags.contains("seg")
    let mode = String(rawMode.split(separator: "-").first ?? "")
    let (plan, bytes) = try prepare(events: events, dir: dir, activation: activation, retail: flags.contains("retail"))
    let source = plan.config.sources[0]
    let reader = FileSourceReader(source: source)
    let clock = ContinuousClock()
    switch mode {
    case "parse":
      // The floor: read, cut into records and parse the JSON, on the same workers, nothing else.
      let parsed = Counter()
      let start = clock.now
      try await withThrowingTaskGroup(of: Void.self) { group in
        let channel = AsyncChannel<RawBatch>()
        group.addTask {
          try await reader.read(source: 0) { b in await channel.send(b) }
          channel.finish()
        }
        for _ in 0..<workers {
          group.addTask {
            for await batch in channel {
              var n = 0
              batch.bytes.withUnsafeBufferPointer { all in
                for r in batch.records {
                  if (try? JSON.parse(UnsafeBufferPointer(rebasing: all[r.start..<r.end]))) != nil { n += 1 }
                }
              }
              parsed.add(n)
            }
          }
        }
        try await group.waitForAll()
      }
      let secs = seconds(clock.now - start)
      print(
        String(
          format: "parse-only: %d events (%.0f MiB), %d workers: %.2f s, %.0f events/s, %.0f MiB/s", parsed.value,
          Double(bytes) / 1_048_576, workers, secs, Double(parsed.value) / secs, Double(bytes) / 1_048_576 / secs))
    default:
      let store: any Store
      var path = ""
      if mode == "sqlite" {
        path = dir + "/bench.sqlite"
        for suffix in ["", "-wal", "-shm", "-intake", "-intake-wal", "-intake-shm", "-writer"] {
          try? FileManager.default.removeItem(atPath: path + suffix)
        }
        store = try SQLiteStore(path: path)
      } else {
        store = MemoryStore()
      }
      var runner = PipelineRunner(
        plan: plan, store: store, readers: [0: reader], workers: workers,
        now: Timestamp(iso8601: "2026-06-30T00:00:00Z") ?? Timestamp(microseconds: 0))
      runner.commitEvents = commitEvents
      let summary = try await runner.run()
      let stats = try await store.stats()
      print(
        String(
          format:
            "pipeline → %@: %d events (%.0f MiB), %d workers: %.2f s, %.0f events/s; %d profiles, %d merges, %d conflicts, %d rejected",
          rawMode, summary.stats.events, Double(bytes) / 1_048_576, workers, summary.seconds,
          Double(summary.stats.events) / summary.seconds, stats.profiles, stats.merges, stats.conflicts,
          summary.stats.rejected))
      // Where the time went: each stage's busy time (its tasks' time not spent waiting on an edge), per event.
      if let metrics = runner.monitor.metrics {
        for f in metrics.figures() where f.tasks > 0 {
          let busy = metrics.stage(f.id).busySeconds
          print(
            String(
              format: "  stage %-16@ %2d tasks  busy %6.2f s  %5.2f µs/event", f.id as NSString, f.tasks, busy,
              busy * 1e6 / Double(max(1, summary.stats.events))))
        }
      }
    }
  }
}

extension PipelineBench {
  /// Runs a pipeline file's file sources into a fresh store (SQLite next to the file, or memory), as
  /// `tessera run` does, and prints the rate, the decisions of its probabilistic rules and each stage's busy time.
  static func runFile(_ path: String, workers: Int, memory: Bool) async throws {
    let result = Compiler(environment: [:]).compile(pipeline: path)
    guard let plan = result.plan else { fatalError(result.rendered()) }
    let store: any Store
    if memory {
      store = MemoryStore()
    } else {
      let db = path + ".bench.sqlite"
      for suffix in ["", "-wal", "-shm", "-intake", "-intake-wal", "-intake-shm", "-writer"] {
        try? FileManager.default.removeItem(atPath: db + suffix)
      }
      store = try SQLiteStore(path: db)
    }
    var readers: [Int: any SourceReader] = [:]
    for (i, s) in plan.config.sources.enumerated() where s.kind != .http { readers[i] = FileSourceReader(source: s) }
    let runner = PipelineRunner(
      plan: plan, store: store, readers: readers, workers: workers,
      now: Timestamp(iso8601: "2026-06-30T00:00:00Z") ?? Timestamp(microseconds: 0))
    let summary = try await runner.run()
    let stats = try await store.stats()
    let s = summary.stats
    print(
      String(
        format:
          "pipeline %@: %d records, %d events, %d workers: %.2f s, %.0f events/s; %d profiles, %d merges, %d probabilistic joins, %d review links, %d rejected",
        (path as NSString).lastPathComponent, summary.recordsRead, s.events, workers, summary.seconds,
        Double(s.events) / summary.seconds, stats.profiles, stats.merges, s.probabilisticJoins, s.reviewLinks,
        s.rejected))
    if let metrics = runner.monitor.metrics {
      for f in metrics.figures() where f.tasks > 0 {
        let busy = metrics.stage(f.id).busySeconds
        print(
          String(
            format: "  stage %-16@ %2d tasks  busy %6.2f s  %5.2f µs/event", f.id as NSString, f.tasks, busy,
            busy * 1e6 / Double(max(1, s.events))))
      }
    }
  }
}

final class Counter: Sendable {
  let m = Mutex(0)
  func add(_ n: Int) { m.withLock { $0 += n } }
  var value: Int { m.withLock { $0 } }
}

/// Single-threaded cost of each stage per event, to see where time goes.
enum StageBench {
  static func run(events: Int) async throws {
    let dir = NSTemporaryDirectory() + "tessera-bench-\(events)"
    let (plan, _) = try PipelineBench.prepare(events: events, dir: dir)
    let reader = FileSourceReader(source: plan.config.sources[0])
    let batches = BatchBox()
    try await reader.read(source: 0) { b in batches.add(b) }
    let raw = batches.all.enumerated().map { i, b in
      var b = b
      b.seq = i
      return b
    }
    let now = Timestamp(iso8601: "2026-06-30T00:00:00Z") ?? Timestamp(microseconds: 0)
    let mapper = Mapper(source: plan.config.sources[0], config: plan.config, receivedAt: now)
    let clock = ContinuousClock()
    func us(_ d: Duration) -> Double { PipelineBench.seconds(d) * 1e6 / Double(events) }
    var mapped: [MappedBatch] = []
    var t = clock.now
    for b in raw { mapped.append(mapper.map(b)) }
    print(String(format: "decode & map: %.2f µs/event", us(clock.now - t)))
    var resolver = Resolver(config: plan.config)
    var commits: [CommitBatch] = []
    t = clock.now
    for b in mapped { commits.append(resolver.apply(b, stored: []).0) }
    print(String(format: "resolve & unify: %.2f µs/event", us(clock.now - t)))
    let memory = MemoryStore()
    t = clock.now
    for c in commits { try await memory.commit(c) }
    print(String(format: "commit (memory): %.2f µs/event", us(clock.now - t)))
    let path = dir + "/stages.sqlite"
    for suffix in ["", "-wal", "-shm"] { try? FileManager.default.removeItem(atPath: path + suffix) }
    let sqlite = try SQLiteStore(path: path)
    t = clock.now
    for c in commits { try await sqlite.commit(c) }
    print(String(format: "commit (SQLite): %.2f µs/event", us(clock.now - t)))
  }
}

final class BatchBox: Sendable {
  let m = Mutex<[RawBatch]>([])
  func add(_ b: RawBatch) { m.withLock { $0.append(b) } }
  var all: [RawBatch] { m.withLock { $0 } }
}
