import AsyncHTTPClient
import Foundation
import NIOCore
import Synchronization
import TesseraCompiler
import TesseraConnectors
import TesseraModel
import TesseraRuntime
import TesseraSQLite
import TesseraStore

/// The console's server time on a large store (issue 20): the generated events (with postcodes and birth dates,
/// so the retail `person` rule links devices and fills the review band) plus one person with `heavy` events,
/// run through the retail rules with their computed traits and segments and two webhook destinations into a
/// SQLite store; the outbox is cut into delivered, failing and dead batches. Then the release `tessera serve`
/// (next to this executable) serves it with an admin token, and every call each console page makes is timed
/// from this process over loopback, `requests` times per page.
enum ConsoleBench {
  struct Options {
    var events = 1_000_000
    var heavy = 10_000
    var requests = 100
    var rebuild = false
    /// The `tessera` executable to serve with (default: the one next to this executable).
    var binary: String?
    /// Serve this copy of the store instead (the same rows at an older schema, for an older `tessera`).
    var serveStore: String?
  }

  static let token = "console-bench-token"

  static func run(_ o: Options) async throws {
    let dir = NSTemporaryDirectory() + "tessera-console-\(o.events)"
    try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
    let pipelinePath = try writeInputs(dir: dir, o)
    let storePath = dir + "/console.sqlite"
    let marker = dir + "/store-done"
    if o.rebuild || !FileManager.default.fileExists(atPath: marker) {
      try? FileManager.default.removeItem(atPath: marker)
      for suffix in ["", "-wal", "-shm", "-intake", "-intake-wal", "-intake-shm", "-writer"] {
        try? FileManager.default.removeItem(atPath: storePath + suffix)
      }
      try await build(pipeline: pipelinePath, store: storePath)
      try "done".write(toFile: marker, atomically: true, encoding: .utf8)
    }
    let store = try SQLiteStore(path: storePath)
    let stats = try await store.stats()
    let links = try await store.matchLinks(status: nil, limit: .max)
    let review = links.filter { $0.status == .review }.count
    let members = try await store.segmentCounts()
    let outbox = try await store.outboxSummary()
    print(
      "store: \(stats.events) events, \(stats.profiles) live profiles, \(stats.identifiers) identifiers, "
        + "\(stats.merges) merges, \(stats.conflicts) refused, \(links.count) match links (\(review) in review), "
        + "members \(members.sorted { $0.key < $1.key }.map { "\($0.key)=\($0.value)" }.joined(separator: " "))")
    for (d, s) in outbox.sorted(by: { $0.key < $1.key }) {
      print(
        "outbox \(d): queued \(s.queued), pending \(s.pending) (failing \(s.failing)), dead \(s.dead), "
          + "delivered \(s.delivered) batches")
    }
    let samples = try await Samples.pick(store, links: links)
    print(
      "samples: heavy \(samples.heavy) (\(samples.heavyEvents) events), \(samples.profiles.count) profiles, "
        + "\(samples.probabilistic.count) probabilistic merges, \(samples.deterministic.count) deterministic")
    let binary =
      o.binary
      ?? URL(fileURLWithPath: CommandLine.arguments[0]).deletingLastPathComponent().appendingPathComponent("tessera")
      .path
    try await serveAndMeasure(
      binary: binary, pipeline: pipelinePath, store: o.serveStore ?? storePath, samples: samples, requests: o.requests)
  }

  // MARK: inputs

  /// The events, the heavy person and the pipeline; returns the pipeline's path.
  static func writeInputs(dir: String, _ o: Options) throws -> String {
    let data = dir + "/events.ndjson"
    let stamp = "\(o.events)+\(o.heavy)"
    if (try? String(contentsOfFile: dir + "/count", encoding: .utf8)) != stamp {
      _ = try EventGenerator.write(count: o.events, to: data, people: true)
      try appendHeavy(o.heavy, spread: o.events, to: data)
      try stamp.write(toFile: dir + "/count", atomically: true, encoding: .utf8)
    }
    let text =
      try PipelineBench.retail(dir: dir, activation: true) + """
          site:
            kind: http
            write_key: console-bench-key
        destinations:
          audience:
            kind: webhook
            url: http://127.0.0.1:9/audience
            on: segment_changes
            payload: { profile: profile.id, segment: change.segment, entered: change.entered }
          orders:
            kind: webhook
            url: http://127.0.0.1:9/orders
            on: events
            where: event == "Order Completed"
            payload: { profile: profile.id, sku: properties.sku, revenue: properties.revenue }

        """
    let path = dir + "/console.yaml"
    try text.write(toFile: path, atomically: true, encoding: .utf8)
    return path
  }

  /// One person with `count` events over five devices, spread over the generated events' time span: user id
  /// `u-heavy`, and a sixth device that only ever identifies with name, postcode and birth date (no shared
  /// identifier), which the `person` rule links by probability.
  static func appendHeavy(_ count: Int, spread: Int, to path: String) throws {
    guard let out = FileHandle(forWritingAtPath: path) else { throw CocoaError(.fileWriteNoPermission) }
    defer { try? out.close() }
    out.seekToEndOfFile()
    var rng = SplitMix64(seed: 2026)
    let start = Timestamp(iso8601: "2026-01-01T00:00:00Z")?.microseconds ?? 0
    let step = Int64(spread) * 15_000_000 / Int64(max(1, count))
    let traits =
      "\"first_name\":\"Hedy\",\"last_name\":\"Lamarr\",\"postcode\":\"10042\",\"date_of_birth\":\"1914-11-09\""
    var buffer = ""
    for n in 0..<count {
      let ts = Timestamp(microseconds: start + Int64(n) * step + 1).iso8601
      var line = "{\"messageId\":\"heavy-\(n)\",\"timestamp\":\"\(ts)\",\"sentAt\":\"\(ts)\""
      if n == count / 2 {
        line += ",\"type\":\"identify\",\"anonymousId\":\"anon-heavy-9\",\"traits\":{\(traits)}}\n"
        buffer += line
        continue
      }
      line += ",\"anonymousId\":\"anon-heavy-\(rng.int(0..<5))\",\"userId\":\"u-heavy\""
      let kind = rng.int(0..<10)
      if kind < 1 {
        line += ",\"type\":\"identify\",\"traits\":{\(traits),\"email\":\"hedy@example.com\",\"plan\":\"pro\"}"
      } else if kind < 4 {
        line += ",\"type\":\"page\",\"name\":\"Home\",\"properties\":{\"path\":\"/p/\(rng.int(0..<500))\"}"
      } else {
        let e = EventGenerator.events[rng.int(0..<EventGenerator.events.count)]
        line +=
          ",\"type\":\"track\",\"event\":\"\(e)\",\"properties\":{\"sku\":\"SKU-\(rng.int(0..<2000))\",\"price\":\(rng.int(0..<200)).5,\"quantity\":1}"
      }
      buffer += line + "}\n"
    }
    out.write(Data(buffer.utf8))
  }

  /// `tessera run` of the file source into a fresh store, then the outbox cut into batches as a delivery with a
  /// partly failing receiver leaves it: most delivered, some retried, some dead letters, the rest queued.
  static func build(pipeline path: String, store storePath: String) async throws {
    let result = Compiler(environment: [:]).compile(pipeline: path)
    guard let plan = result.plan else { fatalError(result.rendered()) }
    let store = try SQLiteStore(path: storePath)
    var readers: [Int: any SourceReader] = [:]
    for (i, s) in plan.config.sources.enumerated() where s.kind != .http { readers[i] = FileSourceReader(source: s) }
    let runner = PipelineRunner(
      plan: plan, store: store, readers: readers, workers: ProcessInfo.processInfo.activeProcessorCount,
      now: Timestamp(iso8601: "2026-06-30T00:00:00Z") ?? Timestamp(microseconds: 0))
    let summary = try await runner.run()
    print(
      String(
        format: "built the store: %d events in %.1f s (%d probabilistic joins, %d review links)",
        summary.stats.events, summary.seconds, summary.stats.probabilisticJoins, summary.stats.reviewLinks))
    let now = Timestamp(iso8601: "2026-06-30T00:00:00Z") ?? Timestamp(microseconds: 0)
    for destination in ["audience", "orders"] {
      var n = 0
      while n < 400 {
        let claim = BatchClaim(
          destination: destination, maxItems: 500, maxBytes: 1_000_000, maxWait: TimeSpan(seconds: 5), now: now,
          lease: TimeSpan(seconds: 60), flush: true)
        guard let (batch, _) = try await store.claimBatch(claim) else { break }
        let at = now + TimeSpan(seconds: Double(n))
        let outcome: DeliveryResult =
          switch n % 10 {
          case 3: .dead(status: 400, error: "{\"error\":\"bad payload in batch \(batch.id)\"}", at: at)
          case 7: .retry(next: at + TimeSpan(seconds: 3600), status: 503, error: "upstream unavailable", at: at)
          default: .delivered(at: at)
          }
        try await store.finishBatch(batch.id, outcome)
        n += 1
      }
    }
  }

  // MARK: what to ask for

  struct Samples: Sendable {
    var heavy: String
    var heavyEvents: Int
    /// Live profiles of random generated persons (by user id).
    var profiles: [String]
    var identifiers: [String]
    /// (live profile, absorbed) of merges by the probabilistic rule, and of deterministic ones.
    var probabilistic: [(String, String)]
    var deterministic: [(String, String)]
    var heavyMerge: (String, String)?
    var segments: [String]

    static func pick(_ store: SQLiteStore, links: [MatchLinkRecord]) async throws -> Samples {
      guard let heavy = try await store.profile(for: Identifier("user_id", "u-heavy")) else {
        fatalError("the heavy person has no profile")
      }
      var rng = SplitMix64(seed: 7)
      var profiles: [String] = []
      var identifiers: [String] = []
      while profiles.count < 200 {
        let p = rng.int(0..<100_000)
        guard let id = try await store.profile(for: Identifier("user_id", "u\(p)")) else { continue }
        profiles.append(id.description)
        identifiers.append("user_id:u\(p)")
      }
      var probabilistic: [(String, String)] = []
      var deterministic: [(String, String)] = []
      for m in try await store.loadMerges() {
        guard let live = try await store.canonical(m.survivor) else { continue }
        if m.rule == "person" {
          if probabilistic.count < 200 { probabilistic.append((live.description, m.absorbed.description)) }
        } else if deterministic.count < 200 && rng.chance(0.01) {
          deterministic.append((live.description, m.absorbed.description))
        }
      }
      let heavyMerge = try await store.merges(involving: heavy).last { $0.rule == "person" }
      return Samples(
        heavy: heavy.description, heavyEvents: try await store.events(of: heavy, limit: .max).count,
        profiles: profiles, identifiers: identifiers, probabilistic: probabilistic, deterministic: deterministic,
        heavyMerge: heavyMerge.map { (heavy.description, $0.absorbed.description) },
        segments: ["high_value", "lapsed", "browsers", "vip_newsletter"])
    }
  }

  // MARK: measuring

  /// Starts `tessera serve` on the store (no deliveries), and times each page's calls.
  static func serveAndMeasure(binary: String, pipeline: String, store: String, samples: Samples, requests: Int)
    async throws
  {
    guard FileManager.default.isExecutableFile(atPath: binary) else {
      fatalError("build the CLI first: swift build -c release --package-path Benchmarks --product tessera")
    }
    let child = Process()
    child.executableURL = URL(fileURLWithPath: binary)
    child.arguments = ["serve", pipeline, "--store", store, "--port", "0", "--no-deliver", "--log-level", "warning"]
    var environment = ProcessInfo.processInfo.environment
    environment["TESSERA_ADMIN_TOKEN"] = token
    child.environment = environment
    let err = Pipe()
    child.standardError = err
    let opened = ContinuousClock.now
    try child.run()
    defer {
      child.terminate()
      child.waitUntilExit()
    }
    let port = try await listeningPort(err.fileHandleForReading)
    print(
      String(
        format: "serve: listening after %.1f s (pid %d)", seconds(ContinuousClock.now - opened), child.processIdentifier
      ))
    let client = HTTPClient(eventLoopGroupProvider: .singleton)
    do {
      let m = Measurer(client: client, base: "http://127.0.0.1:\(port)")
      try await measurePages(m, samples, requests: requests)
      try await client.shutdown()
    } catch {
      try? await client.shutdown()
      throw error
    }
  }

  static func listeningPort(_ handle: FileHandle) async throws -> Int {
    let found = Mutex<Int?>(nil)
    let text = Mutex("")
    handle.readabilityHandler = { h in
      let data = h.availableData
      if data.isEmpty {
        h.readabilityHandler = nil
        return
      }
      let line = String(decoding: data, as: UTF8.self)
      FileHandle.standardError.write(data)
      text.withLock { $0 += line }
      let all = text.withLock { $0 }
      if let r = all.range(of: "listening on http://127.0.0.1:") {
        let digits = all[r.upperBound...].prefix { $0.isNumber }
        found.withLock { $0 = Int(digits) }
      }
    }
    for _ in 0..<6000 {
      if let p = found.withLock({ $0 }) { return p }
      try await Task.sleep(for: .milliseconds(50))
    }
    fatalError("tessera serve did not start within 5 minutes")
  }

  static func seconds(_ d: Duration) -> Double { PipelineBench.seconds(d) }

  struct Failed: Error, CustomStringConvertible {
    var message: String
    var description: String { message }
  }

  /// Times GET calls; records per call label and per page (the calls a page makes one after another).
  final class Measurer: Sendable {
    let client: HTTPClient
    let base: String
    let times = Mutex<[String: [Double]]>([:])
    let order = Mutex<[String]>([])

    init(client: HTTPClient, base: String) {
      self.client = client
      self.base = base
    }

    func record(_ label: String, _ ms: Double) {
      times.withLock { $0[label, default: []].append(ms) }
      order.withLock { if !$0.contains(label) { $0.append(label) } }
    }

    /// One GET; returns the parsed JSON body (nil for non-JSON) and records its time under `label`.
    @discardableResult
    func get(_ label: String, _ path: String) async throws -> Value? {
      var request = HTTPClientRequest(url: base + path)
      request.headers.add(name: "Authorization", value: "Bearer \(ConsoleBench.token)")
      let start = ContinuousClock.now
      let response = try await client.execute(request, timeout: .seconds(120))
      let body = try await response.body.collect(upTo: 64 << 20)
      let ms = ConsoleBench.seconds(ContinuousClock.now - start) * 1000
      guard response.status == .ok else {
        // Thrown, not fatal: the server child is stopped on the way out.
        throw Failed(message: "\(path): HTTP \(response.status.code) \(String(buffer: body).prefix(300))")
      }
      record(label, ms)
      return body.withUnsafeReadableBytes { raw in
        try? JSON.parse(
          UnsafeBufferPointer(start: raw.baseAddress?.assumingMemoryBound(to: UInt8.self), count: raw.count))
      }
    }

    /// A page: its calls in order, their total under `page: label`.
    func page(_ label: String, _ calls: () async throws -> Void) async throws {
      let start = ContinuousClock.now
      try await calls()
      record("page: " + label, ConsoleBench.seconds(ContinuousClock.now - start) * 1000)
    }

    func report() {
      let all = times.withLock { $0 }
      print(String(format: "%-58@ %5@ %8@ %8@ %8@", "server time, ms" as NSString, "n", "p50", "p95", "max"))
      for label in order.withLock({ $0 }) {
        let t = (all[label] ?? []).sorted()
        guard !t.isEmpty else { continue }
        func pct(_ p: Double) -> Double { t[min(t.count - 1, Int((Double(t.count) * p).rounded(.up)) - 1)] }
        print(
          String(
            format: "%-58@ %5d %8.1f %8.1f %8.1f", label as NSString, t.count, pct(0.5), pct(0.95), t[t.count - 1]))
      }
    }
  }

  static func string(_ v: Value?, _ key: String) -> String? {
    if case .map(let m)? = v, case .string(let s)? = m[key] { return s }
    return nil
  }

  static func measurePages(_ m: Measurer, _ s: Samples, requests n: Int) async throws {
    let heavy = s.heavy
    // Warm-up: one round of every kind of call, not recorded separately.
    _ = try await m.get("warm-up", "/v1/profiles/\(heavy)")
    _ = try await m.get("warm-up", "/v1/review?limit=50&sort=desc")
    // The cursors of older timeline pages and later member pages, followed once from the first page.
    let depths = [2, 10, 100, 399]
    let cursors = try await walk(m, "/v1/profiles/\(heavy)/events?limit=25", pages: depths)
    var memberCursors: [String: [Int: String]] = [:]
    for segment in s.segments {
      memberCursors[segment] = try await walk(m, "/v1/segments/\(segment)/members?limit=50", pages: [2, 20])
    }
    for i in 0..<n {
      let p = s.profiles[i % s.profiles.count]
      try await m.page("shell (/ui and its two assets)") {
        try await m.get("GET /ui", "/ui")
        try await m.get("GET /ui/assets/app.js", "/ui/assets/app.js")
        try await m.get("GET /ui/assets/app.css", "/ui/assets/app.css")
      }
      try await m.page("search → profile (random person)") {
        let found = try await m.get(
          "GET /v1/profiles?identifier=…", "/v1/profiles?identifier=" + s.identifiers[i % s.identifiers.count])
        let id = string(found, "id") ?? p
        try await m.get("GET /v1/profiles/{id}", "/v1/profiles/\(id)")
        try await m.get("GET /v1/profiles/{id}/events?limit=25", "/v1/profiles/\(id)/events?limit=25")
      }
      try await m.page("profile, 10,000 events (graph, merges, timeline page 1)") {
        try await m.get("GET /v1/profiles/{heavy}", "/v1/profiles/\(heavy)")
        try await m.get("GET /v1/profiles/{heavy}/events?limit=25", "/v1/profiles/\(heavy)/events?limit=25")
      }
      // Older pages of the heavy timeline: page 2, then a deep one.
      let cursor = cursors[depths[i % depths.count]] ?? ""
      try await m.page("timeline 10,000 events, older page (2, 10, 100, 399)") {
        try await m.get(
          "GET /v1/profiles/{heavy}/events?limit=25&cursor=…",
          "/v1/profiles/\(heavy)/events?limit=25" + (cursor.isEmpty ? "" : "&cursor=\(cursor)"))
      }
      try await m.page("timeline 10,000 events filtered by type") {
        try await m.get(
          "GET /v1/profiles/{heavy}/events?type=identify", "/v1/profiles/\(heavy)/events?limit=25&type=identify")
      }
      try await m.page("timeline 10,000 events filtered by source") {
        try await m.get(
          "GET /v1/profiles/{heavy}/events?source=web", "/v1/profiles/\(heavy)/events?limit=25&source=web")
      }
      if let (live, absorbed) = s.heavyMerge {
        try await m.page("why: probabilistic merge of the 10,000-event profile") {
          try await m.get(
            "GET …/merges/{absorbed}/explanation (heavy)", "/v1/profiles/\(live)/merges/\(absorbed)/explanation")
        }
      }
      if !s.probabilistic.isEmpty {
        let (live, absorbed) = s.probabilistic[i % s.probabilistic.count]
        try await m.page("why: probabilistic merge") {
          try await m.get("GET …/merges/{absorbed}/explanation", "/v1/profiles/\(live)/merges/\(absorbed)/explanation")
        }
      }
      if !s.deterministic.isEmpty {
        let (live, absorbed) = s.deterministic[i % s.deterministic.count]
        try await m.page("why: deterministic merge") {
          try await m.get(
            "GET …/merges/{absorbed}/explanation (deterministic)", "/v1/profiles/\(live)/merges/\(absorbed)/explanation"
          )
        }
      }
      try await m.page("review queue (20 cards + threshold sliders)") {
        try await m.get("GET /v1/review?limit=20", "/v1/review?limit=20&sort=\(i % 2 == 0 ? "desc" : "asc")")
      }
      try await m.page("review queue, 50 cards (the API's default page)") {
        try await m.get("GET /v1/review?limit=50", "/v1/review?limit=50&sort=\(i % 2 == 0 ? "desc" : "asc")")
      }
      try await m.page("segments") { try await m.get("GET /v1/segments", "/v1/segments") }
      let segment = s.segments[i % s.segments.count]
      try await m.page("segment (counts, members page 1, changes)") {
        try await m.get("GET /v1/segments", "/v1/segments")
        try await m.get("GET /v1/segments/{name}/members?limit=50", "/v1/segments/\(segment)/members?limit=50")
        try await m.get("GET /v1/segments/{name}/changes?limit=200", "/v1/segments/\(segment)/changes?limit=200")
      }
      let more = memberCursors[segment]?[[2, 20][i % 2]] ?? ""
      try await m.page("segment members, next page (More)") {
        try await m.get(
          "GET /v1/segments/{name}/members?cursor=…",
          "/v1/segments/\(segment)/members?limit=50" + (more.isEmpty ? "" : "&cursor=\(more)"))
      }
      try await m.page("pipeline") { try await m.get("GET /v1/pipeline", "/v1/pipeline") }
      try await m.page("deliveries") { try await m.get("GET /v1/deliveries", "/v1/deliveries") }
    }
    m.report()
  }

  /// The cursors of pages `pages` (page 1 has none) of a paged call, following next_cursor from the first page; a
  /// page past the last gets the last page's cursor.
  static func walk(_ m: Measurer, _ path: String, pages: [Int]) async throws -> [Int: String] {
    var out: [Int: String] = [:]
    var cursor = ""
    for page in 1...(pages.max() ?? 1) {
      out[page] = cursor
      let r = try await m.get("(walk) next pages", path + (cursor.isEmpty ? "" : "&cursor=\(cursor)"))
      guard let next = string(r, "next_cursor") else { break }
      cursor = next
    }
    let last = out.keys.max() ?? 1
    return Dictionary(uniqueKeysWithValues: pages.map { ($0, out[min($0, last)] ?? "") })
  }
}
