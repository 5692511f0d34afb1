import Foundation
import Synchronization
import TesseraCompiler
import TesseraConnectors
import TesseraIdentity
import TesseraModel
import TesseraRuntime
import TesseraSQLite
import TesseraStore
import Testing

/// Helpers of the end-to-end tests (a pipeline compiled from YAML, read from files by the real readers, run by
/// `PipelineRunner` into a real store). Nested in one namespace so other files of the target can't collide.
enum E2E {
  /// The package root, three levels up from this file.
  static let packageRoot = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
    .deletingLastPathComponent().path
  static let retailPipeline = packageRoot + "/pipelines/retail.yaml"
  static let examples = packageRoot + "/examples"

  /// The fixed "now" every run uses: the date examples/README.md evaluates the example as of.
  static let now = ts("2026-06-30T00:00:00Z")

  static func ts(_ text: String) -> Timestamp {
    guard let t = Timestamp(iso8601: text) else { preconditionFailure("bad timestamp literal \(text)") }
    return t
  }

  // MARK: stores

  /// The stores every behaviour test runs against.
  enum StoreKind: String, CaseIterable, Sendable, CustomTestStringConvertible {
    case memory, sqlite
    var testDescription: String { rawValue }
  }

  /// A fresh temporary folder; `remove()` deletes it with everything in it.
  struct TempDir: Sendable {
    let path: String

    init() throws {
      path = FileManager.default.temporaryDirectory.appendingPathComponent("tessera-e2e-\(UUID().uuidString)").path
      try FileManager.default.createDirectory(atPath: path, withIntermediateDirectories: true)
    }

    func file(_ name: String) -> String { path + "/" + name }

    /// Writes bytes to a file of the folder (sub-folders created) and returns its path.
    @discardableResult
    func write(_ name: String, bytes: [UInt8]) throws -> String {
      let p = file(name)
      try FileManager.default.createDirectory(
        atPath: (p as NSString).deletingLastPathComponent, withIntermediateDirectories: true)
      try Data(bytes).write(to: URL(fileURLWithPath: p))
      return p
    }

    @discardableResult
    func write(_ name: String, _ text: String) throws -> String { try write(name, bytes: Array(text.utf8)) }

    func remove() { try? FileManager.default.removeItem(atPath: path) }
  }

  /// A new, empty store of the kind; SQLite files go into `dir`.
  static func makeStore(_ kind: StoreKind, in dir: TempDir, name: String = "store.sqlite") throws -> any Store {
    switch kind {
    case .memory: return MemoryStore()
    case .sqlite: return try SQLiteStore(path: dir.file(name))
    }
  }

  // MARK: compiling and running

  /// Compiles a pipeline with an empty environment (so `${VAR:-default}` takes the default).
  static func compile(_ path: String, sourceLocation: SourceLocation = #_sourceLocation) throws -> PipelinePlan {
    let result = Compiler(environment: [:]).compile(pipeline: path)
    return try #require(
      result.plan, "the pipeline does not compile:\n\(result.rendered())", sourceLocation: sourceLocation)
  }

  /// File readers for every csv/ndjson source of the plan (http sources are not read).
  static func readers(_ plan: PipelinePlan, batchSize: Int = 1024, chunkSize: Int = 1 << 20) -> [Int: any SourceReader]
  {
    var readers: [Int: any SourceReader] = [:]
    for (i, s) in plan.config.sources.enumerated() where s.kind != .http {
      readers[i] = FileSourceReader(source: s, batchSize: batchSize, chunkSize: chunkSize)
    }
    return readers
  }

  /// A runner over the plan's file sources; `commitEvents` (events per store transaction) stays at the runner's
  /// default unless given.
  static func runner(
    _ plan: PipelinePlan, _ store: any Store, workers: Int = 4, batchSize: Int = 1024, commitEvents: Int? = nil
  ) -> PipelineRunner {
    var r = PipelineRunner(
      plan: plan, store: store, readers: readers(plan, batchSize: batchSize), workers: workers, now: now)
    if let commitEvents { r.commitEvents = commitEvents }
    return r
  }

  /// What one run did, with the rejected records `onRejected` reported.
  struct Outcome: Sendable {
    var summary: RunSummary
    var rejected: [RejectedRecord]
  }

  /// Runs the plan to the end into the store.
  static func run(
    _ plan: PipelinePlan, _ store: any Store, workers: Int = 4, batchSize: Int = 1024, commitEvents: Int? = nil
  ) async throws -> Outcome {
    var runner = runner(plan, store, workers: workers, batchSize: batchSize, commitEvents: commitEvents)
    let rejected = Collector<RejectedRecord>()
    runner.onRejected = { rejected.append($0) }
    let summary = try await runner.run()
    return Outcome(summary: summary, rejected: rejected.items)
  }

  /// A thread-safe list the runner's callbacks append to.
  final class Collector<T: Sendable>: Sendable {
    let state = Mutex<[T]>([])
    func append(_ items: [T]) { state.withLock { $0 += items } }
    var items: [T] { state.withLock { $0 } }
  }

  /// A thread-safe counter.
  final class Counter: Sendable {
    let state = Mutex(0)
    /// Counts one more and returns the new count.
    func next() -> Int {
      state.withLock { n in
        n += 1
        return n
      }
    }
  }

  // MARK: looking at a store

  /// The live profile holding an identifier; records an issue when there is none.
  static func profile(
    _ store: any Store, _ kind: String, _ value: String, sourceLocation: SourceLocation = #_sourceLocation
  ) async throws -> ProfileID {
    let p = try await store.profile(for: Identifier(kind, value))
    return try #require(p, "no profile holds \(kind):\(value)", sourceLocation: sourceLocation)
  }

  /// A profile's traits by name.
  static func traits(_ store: any Store, _ p: ProfileID) async throws -> [String: TraitRecord] {
    Dictionary(try await store.traits(of: p).map { ($0.trait, $0) }, uniquingKeysWith: { a, _ in a })
  }

  /// A profile's identifiers, as `kind:value`, sorted.
  static func identifiers(_ store: any Store, _ p: ProfileID) async throws -> [String] {
    try await store.identifiers(of: p).map(\.0.description).sorted()
  }

  /// The store's state independent of profile ids: one line per live profile with its identifiers (sorted) and
  /// its traits (name → value, sorted by name; only those `keeping` keeps); the lines sorted.
  static func canonical(_ store: any Store, keeping: (String) -> Bool = { _ in true }) async throws -> [String] {
    let snapshot = try await store.loadIdentity()
    var traits: [ProfileID: [String: String]] = [:]
    for t in try await store.loadTraits() where keeping(t.trait) {
      traits[t.profile, default: [:]][t.trait] = t.value.literal
    }
    return snapshot.profiles.map { p, ids in
      let i = ids.map(\.0.description).sorted().joined(separator: " ")
      let t = (traits[p] ?? [:]).sorted { $0.key < $1.key }.map { "\($0.key)=\($0.value)" }.joined(separator: " ")
      return "[\(i)] {\(t)}"
    }.sorted()
  }

  /// Expects two canonical forms to be equal, showing a few lines of the difference when they are not.
  static func expectSameCanonical(
    _ a: [String], _ b: [String], _ what: String, sourceLocation: SourceLocation = #_sourceLocation
  ) {
    guard a != b else { return }
    var onlyA: [String: Int] = [:]
    for x in a { onlyA[x, default: 0] += 1 }
    var onlyB: [String] = []
    for x in b {
      if let n = onlyA[x], n > 0 { onlyA[x] = n - 1 } else { onlyB.append(x) }
    }
    let restA = onlyA.filter { $0.value > 0 }.keys.sorted()
    Issue.record(
      """
      \(what): \(a.count) vs \(b.count) profiles; \(restA.count) lines only in the first, \(onlyB.count) only in \
      the second.
      first only: \(restA.prefix(4).joined(separator: "\n  "))
      second only: \(onlyB.prefix(4).joined(separator: "\n  "))
      """, sourceLocation: sourceLocation)
  }

  /// Checks what must hold of any store a run left behind, finished or not: counts agree, a linking identifier
  /// belongs to one live profile, traits only sit on live profiles, every absorbed profile leads to a live one.
  /// `unchecked` kinds are left out of the one-live-profile check.
  static func expectConsistent(
    _ store: any Store, blocked: Set<String> = [], unchecked: Set<String> = [],
    sourceLocation: SourceLocation = #_sourceLocation
  ) async throws {
    let snapshot = try await store.loadIdentity()
    let stats = try await store.stats()
    #expect(snapshot.profiles.count == stats.profiles, sourceLocation: sourceLocation)
    let live = Set(snapshot.profiles.map(\.0))
    var owner: [Identifier: ProfileID] = [:]
    for (p, ids) in snapshot.profiles {
      for (i, _) in ids where !blocked.contains(i.value) && !unchecked.contains(i.kind) {
        if let other = owner[i] {
          Issue.record("\(i) is held by both \(other) and \(p)", sourceLocation: sourceLocation)
        }
        owner[i] = p
      }
    }
    for t in try await store.loadTraits() where !live.contains(t.profile) {
      Issue.record("trait \(t.trait) sits on \(t.profile), which is not live", sourceLocation: sourceLocation)
    }
    for a in snapshot.aliases {
      let c = try await store.canonical(a.absorbed)
      #expect(
        c.map(live.contains) == true, "\(a.absorbed) leads to \(String(describing: c))", sourceLocation: sourceLocation)
    }
  }

  /// Events of a profile (all of them, newest first), their logged records mapped as the example pipeline's
  /// sources map them (events of other sources as logged).
  static func events(_ store: any Store, _ p: ProfileID) async throws -> [StoredEvent] {
    let reader = try exampleReader()
    return try await store.events(of: p, limit: 100_000).map { s in
      var e = s
      do {
        e.event = try reader.mapped(s.event)
      } catch is EventReader.UnknownSource {
        return s
      }
      return e
    }
  }

  static func exampleReader() throws -> EventReader { EventReader(config: try compile(retailPipeline).config) }

  // MARK: generated data

  /// SplitMix64: a small seeded generator, so generated data sets are the same on every run.
  struct RNG: RandomNumberGenerator {
    var state: UInt64
    init(seed: UInt64) { state = seed }
    mutating func next() -> UInt64 {
      state &+= 0x9E37_79B9_7F4A_7C15
      var z = state
      z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
      z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
      return z ^ (z >> 31)
    }
    mutating func int(_ range: Range<Int>) -> Int { Int.random(in: range, using: &self) }
    mutating func chance(_ p: Double) -> Bool { Double.random(in: 0..<1, using: &self) < p }
    mutating func pick<T>(_ xs: [T]) -> T { xs[int(0..<xs.count)] }
  }

  /// A pipeline over two generated NDJSON sources (`app.ndjson`, then `web.ndjson`) with every trait policy and
  /// identifier limits the data is built to hit.
  static func generatedPipeline(expiry: Bool) -> String {
    generatedPipelineText.replacingOccurrences(of: "EXPIRY", with: expiry ? ", expires_after: 60d" : "")
  }

  static let generatedPipelineText = """
    pipeline: generated
    identifiers:
      user_id: { normalize: trim, max_per_profile: 1, priority: 1 }
      email:
        normalize: email
        provider_rules: [gmail]
        max_per_profile: 2
        priority: 2
        blocked: [test@example.com]
      phone: { normalize: phone_e164, default_region: US, max_per_profile: 2, priority: 3 }
      anonymous_id: { normalize: trim, max_per_profile: 50EXPIRY, priority: 9 }
    deterministic:
      strong_ids:
        link_on: [user_id, email, phone, anonymous_id]
    profile:
      default_policy: most_recent
      traits:
        name:       { type: string, policy: source_priority, sources: [app, web] }
        city:       { type: string, policy: most_recent }
        first_city: { type: string, policy: first_seen }
        score:      { type: int, policy: max }
        low:        { type: int, policy: min }
        visits:     { type: int, policy: sum }
        tags:       { type: list, policy: union }
        color:      { type: string, policy: most_frequent }
    sources:
      app:
        kind: ndjson
        path: app.ndjson
        emit: track
        id: id
        timestamp: ts
        map:
          event: event
          user_id: user
          email: email
          phone: phone
          anonymous_id: anon
          traits.name: name
          traits.city: city
          traits.first_city: city
          traits.score: score
          traits.low: score
          traits.visits: visits
          traits.tags: tags
          traits.color: color
      web:
        kind: ndjson
        path: web.ndjson
        emit: page
        id: id
        timestamp: ts
        map:
          user_id: user
          email: email
          anonymous_id: anon
          traits.name: name
          traits.city: city
          traits.first_city: city
          traits.score: score
          traits.low: score
          traits.visits: visits
          traits.color: color
    """

  /// NDJSON lines for `app.ndjson` and `web.ndjson`: people with one user id (most of them), several anonymous
  /// ids, personal emails (some written as Gmail variants), household emails shared by two or three people,
  /// a few phones shared by many (a store's number, which hits `max_per_profile`), the blocked test email, SDK
  /// retries (a line repeated with its id), late events (timestamps in random order) and a few broken lines.
  static func generate(seed: UInt64, people: Int, events: Int) -> (app: [String], web: [String]) {
    var rng = RNG(seed: seed)
    struct Person {
      var user: String?
      var anons: [String]
      var email: String
      var gmail: Bool
      var household: String?
      var phone: String
      var name: String
    }
    let names = ["Ada", "Bruno", "Chiara", "Dmitri", "Emma", "Farid", "Grace", "Henry", "Ivan", "Julia", "Kenji"]
    let cities = ["Seattle", "Boston", "Chicago", "Portland", "Oakland", "Austin", "Denver"]
    let colors = ["red", "green", "blue", "teal"]
    let tags = ["vip", "new", "outdoor", "sale", "app"]
    let sharedPhones = (0..<6).map { "+1 (617) 555-09\(10 + $0)" }
    var persons: [Person] = []
    for n in 0..<people {
      let gmail = rng.chance(0.2)
      persons.append(
        Person(
          user: rng.chance(0.7) ? "u\(n)" : nil,
          anons: (0..<rng.int(1..<5)).map { "anon-\(n)-\($0)" },
          email: gmail ? "first.last\(n)@gmail.com" : "p\(n)@example.com", gmail: gmail,
          household: rng.chance(0.15) ? "home\(n / 3)@example.org" : nil,
          phone: String(format: "(206) 3%02d-%04d", n / 10_000, n % 10_000),
          name: rng.pick(names) + " \(n)"))
    }
    let start = ts("2026-01-01T00:00:00Z").microseconds
    let span: Int64 = 180 * 86_400 * 1_000_000
    var app: [String] = []
    var web: [String] = []
    for k in 0..<events {
      // A few busy people, many quiet ones.
      let who = rng.chance(0.3) ? rng.int(0..<max(1, people / 20)) : rng.int(0..<people)
      let p = persons[who]
      let toApp = rng.chance(0.4)
      var m: [String: Value] = [:]
      m["id"] = .string("\(toApp ? "app" : "web")-\(k)")
      let t = Timestamp(microseconds: start + Int64.random(in: 0..<span, using: &rng) / 1000 * 1000)
      m["ts"] = .string(t.iso8601)
      if toApp {
        m["event"] = .string(rng.pick(["Order Completed", "Product Viewed", "App Opened"]))
        if let u = p.user, rng.chance(0.8) { m["user"] = .string(u) }
        if rng.chance(0.5) {
          var e = p.email
          if p.gmail, rng.chance(0.5) { e = e.replacingOccurrences(of: "first.last", with: "FirstLast+app") }
          if let h = p.household, rng.chance(0.4) { e = h }
          if rng.chance(0.03) { e = "test@example.com" }
          m["email"] = .string(e)
        }
        if rng.chance(0.4) { m["phone"] = .string(rng.chance(0.1) ? rng.pick(sharedPhones) : p.phone) }
        if rng.chance(0.3) { m["anon"] = .string(rng.pick(p.anons)) }
        m["tags"] = .list((0..<rng.int(0..<3)).map { _ in .string(rng.pick(tags)) })
      } else {
        m["anon"] = .string(rng.pick(p.anons))
        if let u = p.user, rng.chance(0.3) { m["user"] = .string(u) }
        if rng.chance(0.1) { m["email"] = .string(rng.chance(0.05) ? "test@example.com" : p.email) }
      }
      if rng.chance(0.5) { m["name"] = .string(rng.chance(0.1) ? p.name.uppercased() : p.name) }
      if rng.chance(0.5) { m["city"] = .string(rng.pick(cities)) }
      if rng.chance(0.5) { m["score"] = .int(Int64(rng.int(0..<1000))) }
      m["visits"] = .int(1)
      if rng.chance(0.4) { m["color"] = .string(rng.pick(colors)) }
      var line = JSON.encode(.map(m))
      if rng.chance(0.002) { line = String(line.prefix(line.count / 2)) }  // a broken line
      if toApp { app.append(line) } else { web.append(line) }
      // An SDK retry: the same line again, somewhere later.
      if rng.chance(0.02) {
        if toApp { app.append(line) } else { web.append(line) }
      }
    }
    return (app, web)
  }

  /// Writes the generated pipeline and its data into `dir`; returns the pipeline's path.
  @discardableResult
  static func writeGenerated(into dir: TempDir, seed: UInt64, people: Int, events: Int, expiry: Bool = true) throws
    -> String
  {
    let data = generate(seed: seed, people: people, events: events)
    try dir.write("app.ndjson", data.app.joined(separator: "\n") + "\n")
    try dir.write("web.ndjson", data.web.joined(separator: "\n") + "\n")
    return try dir.write("generated.yaml", generatedPipeline(expiry: expiry))
  }
}
