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

/// Running again, resuming after a stop, and many workers over many batches.
@Suite("End to end: re-runs, resume, concurrency")
struct RunEndToEndTests {
  typealias StoreKind = E2E.StoreKind

  // MARK: re-runs

  @Test("running the example twice adds nothing", arguments: StoreKind.allCases)
  func rerunExample(kind: StoreKind) async throws {
    let dir = try E2E.TempDir()
    defer { dir.remove() }
    let plan = try E2E.compile(E2E.retailPipeline)
    let store = try E2E.makeStore(kind, in: dir)
    let first = try await E2E.run(plan, store)
    let before = try await store.stats()
    let canonical = try await E2E.canonical(store)

    let second = try await E2E.run(plan, store, workers: 2)
    let s = second.summary.stats
    #expect(second.summary.recordsRead == 106)
    #expect(s.events == 0)
    // Every record that maps is recognised: 100 stored ones and the 2 that were duplicates the first time.
    #expect(s.duplicates == first.summary.stats.events + first.summary.stats.duplicates)
    #expect(s.duplicates == 102)
    #expect(s.profilesCreated == 0)
    #expect(s.merges == 0)
    #expect(s.conflicts == 0)
    #expect(second.summary.profiles == 34)
    let after = try await store.stats()
    #expect(after.events == before.events)
    #expect(after.profiles == before.profiles)
    #expect(after.merges == before.merges)
    #expect(after.conflicts == before.conflicts)
    #expect(after.identifiers == before.identifiers)
    // The same records are rejected again, and stored once.
    #expect(s.rejected == 4)
    #expect(after.rejected == before.rejected)
    #expect(after.rejected == 4)
    E2E.expectSameCanonical(canonical, try await E2E.canonical(store), "after a second run")
  }

  static let contentHashPipeline = """
    pipeline: hashed
    identifiers:
      email: { normalize: email, max_per_profile: 3, priority: 2 }
    deterministic:
      by_email:
        link_on: [email]
    profile:
      default_policy: most_recent
      traits:
        score: { type: int, policy: max }
    sources:
      people:
        kind: csv
        path: people.csv
        emit: identify
        timestamp: timestamp(seen_at)
        schema:
          types: { score: int }
        map:
          email: email
          traits.name: name
          traits.score: score
    """

  static let people = [
    "email,name,score,seen_at",
    "ann@example.com,Ann,3,2026-01-01T00:00:00Z",
    "bob@example.com,Bob,5,2026-01-02T00:00:00Z",
    "ANN@example.com,Ann A.,9,2026-01-03T00:00:00Z",
    "cy@example.com,\"Cy, Jr.\",1,2026-01-04T00:00:00Z",
    "bob@example.com,Bob,5,2026-01-02T00:00:00Z",
    "bob@example.com,Bob,7,2026-01-05T00:00:00Z",
  ]

  @Test("a source without message ids is de-duplicated by content", arguments: StoreKind.allCases)
  func contentHash(kind: StoreKind) async throws {
    let dir = try E2E.TempDir()
    defer { dir.remove() }
    let pipeline = try dir.write("hashed.yaml", Self.contentHashPipeline)
    try dir.write("people.csv", Self.people.joined(separator: "\n") + "\n")
    let plan = try E2E.compile(pipeline)
    let store = try E2E.makeStore(kind, in: dir)

    let first = try await E2E.run(plan, store, batchSize: 2)
    #expect(first.summary.recordsRead == 6)
    // Line 6 repeats line 3 byte for byte: same content, same id.
    #expect(first.summary.stats.events == 5)
    #expect(first.summary.stats.duplicates == 1)
    #expect(first.summary.profiles == 3)
    let ann = try await E2E.profile(store, "email", "ann@example.com")
    let annEvents = try await E2E.events(store, ann)
    #expect(annEvents.count == 2)
    for e in annEvents {
      #expect(e.event.id.hasPrefix("h_"))
      #expect(e.event.id.count == 34, "h_ and 128 bits in hex")
    }
    #expect(try await E2E.traits(store, ann)["name"]?.value == .string("Ann A."))
    let bob = try await E2E.profile(store, "email", "bob@example.com")
    #expect(try await E2E.traits(store, bob)["score"]?.value == .int(7))
    let canonical = try await E2E.canonical(store)

    let second = try await E2E.run(plan, store)
    #expect(second.summary.stats.events == 0)
    #expect(second.summary.stats.duplicates == 6)
    #expect(second.summary.stats.profilesCreated == 0)

    // The same export written again with CRLF line endings is the same content.
    try dir.write("people.csv", Self.people.joined(separator: "\r\n") + "\r\n")
    let third = try await E2E.run(plan, store)
    #expect(third.summary.stats.events == 0)
    #expect(third.summary.stats.duplicates == 6)
    #expect(try await store.stats().events == 5)
    E2E.expectSameCanonical(canonical, try await E2E.canonical(store), "after re-runs")

    // A changed row is new content: a new event.
    var changed = Self.people
    changed[2] = "bob@example.com,Bob,6,2026-01-02T00:00:00Z"
    try dir.write("people.csv", changed.joined(separator: "\n") + "\n")
    let fourth = try await E2E.run(plan, store)
    #expect(fourth.summary.stats.events == 1)
    #expect(fourth.summary.stats.duplicates == 5)
  }

  // MARK: resume

  /// Wraps a reader: once `pauseAfter` batches went out through the readers sharing `emitted`, it emits
  /// nothing more until its task is cancelled, so a run can be stopped at a known point.
  struct PausingReader: SourceReader {
    var inner: any SourceReader
    var pauseAfter: Int
    var emitted: E2E.Counter

    func read(source: Int, emit: @Sendable (RawBatch) async throws -> Void) async throws {
      try await inner.read(source: source) { batch in
        if emitted.next() > pauseAfter {
          while true { try await Task.sleep(for: .milliseconds(2)) }  // ends by throwing CancellationError
        }
        try await emit(batch)
      }
    }
  }

  /// Event keys of the generated files in read order (app, then web), each once, broken lines left out.
  static func generatedKeys(_ dir: E2E.TempDir) throws -> [EventKey] {
    var keys: [EventKey] = []
    var seen: Set<EventKey> = []
    for source in ["app", "web"] {
      let text = try String(contentsOfFile: dir.file("\(source).ndjson"), encoding: .utf8)
      for line in text.split(separator: "\n") {
        guard let object = try? JSONSerialization.jsonObject(with: Data(line.utf8)) as? [String: Any],
          let id = object["id"] as? String
        else { continue }
        let key = EventKey(source: source, id: id)
        if seen.insert(key).inserted { keys.append(key) }
      }
    }
    return keys
  }

  enum Stop: Sendable, CustomTestStringConvertible {
    /// Cancel once the first batches are committed, with batches in flight.
    case whileRunning
    /// Cancel with the readers held after this many batches.
    case afterBatches(Int)
    var testDescription: String {
      switch self {
      case .whileRunning: return "while running"
      case .afterBatches(let n): return "after \(n) batches"
      }
    }
  }

  @Test(
    "a cancelled run leaves a consistent store and the next run ends where an uninterrupted one does",
    arguments: StoreKind.allCases, [Stop.whileRunning, .afterBatches(1), .afterBatches(9), .afterBatches(60)])
  func resume(kind: StoreKind, stop: Stop) async throws {
    let dir = try E2E.TempDir()
    defer { dir.remove() }
    let pipeline = try E2E.writeGenerated(into: dir, seed: 42, people: 300, events: 3000)
    let plan = try E2E.compile(pipeline)
    // One store transaction per batch of 32 records.
    let (batchSize, commitEvents) = (32, 1)
    let blocked: Set<String> = ["test@example.com"]

    let referenceStore = try E2E.makeStore(kind, in: dir, name: "reference.sqlite")
    let reference = try await E2E.run(
      plan, referenceStore, workers: 4, batchSize: batchSize, commitEvents: commitEvents)
    let referenceStats = try await referenceStore.stats()
    try await E2E.expectConsistent(referenceStore, blocked: blocked)
    // The events a whole run stores, in the order they are read.
    let allKeys = try Self.generatedKeys(dir)
    let storedByReference = try await referenceStore.existingEvents(allKeys)
    let keys = allKeys.filter { storedByReference.contains($0) }
    #expect(keys.count == referenceStats.events)

    let store = try E2E.makeStore(kind, in: dir, name: "resumed.sqlite")
    var runner = E2E.runner(plan, store, workers: 4, batchSize: batchSize, commitEvents: commitEvents)
    if case .afterBatches(let n) = stop {
      let emitted = E2E.Counter()
      for (i, r) in runner.readers { runner.readers[i] = PausingReader(inner: r, pauseAfter: n, emitted: emitted) }
    }
    let task = Task { [runner] in try await runner.run() }
    // Wait for the first commit (or the end of the run, should it be that quick).
    var polls = 0
    while runner.counters.snapshot.committed.events == 0, polls < 60_000 {
      try await Task.sleep(for: .milliseconds(1))
      polls += 1
    }
    #expect(runner.counters.snapshot.committed.events > 0)
    task.cancel()
    var stoppedEarly = false
    do {
      _ = try await task.value
    } catch is CancellationError {
      stoppedEarly = true
    }
    let committed = runner.counters.snapshot.committed.events

    // What was committed is whole: a consistent store holding exactly the first events in read order.
    try await E2E.expectConsistent(store, blocked: blocked)
    let stored = try await store.existingEvents(keys)
    let prefix = keys.prefix { stored.contains($0) }.count
    #expect(
      prefix == stored.count, "stored events are not the first ones read: \(stored.count) stored, \(prefix) in order")
    #expect(stored.count >= committed)
    #expect(try await store.stats().events == stored.count)
    if case .afterBatches(let n) = stop {
      #expect(stoppedEarly)
      #expect(stored.count <= n * batchSize)
    }
    if stoppedEarly { #expect(stored.count < keys.count) }

    // Run again to the end over the same store.
    let second = try await E2E.run(plan, store, workers: 4, batchSize: batchSize, commitEvents: commitEvents)
    #expect(second.summary.stats.events == reference.summary.stats.events - stored.count)
    #expect(
      second.summary.stats.events + second.summary.stats.duplicates
        == reference.summary.stats.events + reference.summary.stats.duplicates)
    let resumedStats = try await store.stats()
    #expect(resumedStats.events == referenceStats.events)
    #expect(resumedStats.profiles == referenceStats.profiles)
    #expect(resumedStats.merges == referenceStats.merges)
    #expect(resumedStats.conflicts == referenceStats.conflicts)
    try await E2E.expectConsistent(store, blocked: blocked)
    E2E.expectSameCanonical(
      try await E2E.canonical(referenceStore), try await E2E.canonical(store), "uninterrupted vs resumed")
  }

  // MARK: concurrency

  /// Per-kind limits of the generated pipeline, checked over every live profile.
  static func expectLimits(_ store: any Store, sourceLocation: SourceLocation = #_sourceLocation) async throws {
    let limits = ["user_id": 1, "email": 2, "phone": 2, "anonymous_id": 50]
    for (p, ids) in try await store.loadIdentity().profiles {
      var counts: [String: Int] = [:]
      for (i, _) in ids where i.value != "test@example.com" { counts[i.kind, default: 0] += 1 }
      for (kind, n) in counts where n > (limits[kind] ?? .max) {
        Issue.record("\(p) holds \(n) \(kind) values", sourceLocation: sourceLocation)
      }
    }
  }

  @Test("1 and 8 workers over many small batches give the same profiles", arguments: StoreKind.allCases)
  func workers(kind: StoreKind) async throws {
    let dir = try E2E.TempDir()
    defer { dir.remove() }
    let pipeline = try E2E.writeGenerated(into: dir, seed: 2026, people: 3000, events: 20_000)
    let plan = try E2E.compile(pipeline)
    let oneStore = try E2E.makeStore(kind, in: dir, name: "one.sqlite")
    let one = try await E2E.run(plan, oneStore, workers: 1, batchSize: 64)
    let eightStore = try E2E.makeStore(kind, in: dir, name: "eight.sqlite")
    let eight = try await E2E.run(plan, eightStore, workers: 8, batchSize: 64)

    let s = one.summary.stats
    // The data set does what it is built for.
    #expect(one.summary.recordsRead > 20_000)
    #expect(s.duplicates > 100)
    #expect(s.rejected > 10)
    #expect(s.merges > 100)
    #expect(s.conflicts > 100)
    #expect(one.summary.profiles > 1000)
    #expect(eight.summary.stats == s)
    #expect(eight.summary.profiles == one.summary.profiles)
    #expect(eight.rejected == one.rejected)
    #expect(try await eightStore.stats() == (try await oneStore.stats()))
    let canonical = try await E2E.canonical(oneStore)
    E2E.expectSameCanonical(canonical, try await E2E.canonical(eightStore), "1 vs 8 workers")
    try await E2E.expectConsistent(oneStore, blocked: ["test@example.com"], unchecked: [])
    try await E2E.expectConsistent(eightStore, blocked: ["test@example.com"], unchecked: [])
    try await Self.expectLimits(eightStore)
  }
}
