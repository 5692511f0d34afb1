import Foundation
import Synchronization
import TesseraCompiler
import TesseraModel
import TesseraRuntime
import TesseraSQLite
import TesseraStore
import Testing

@Suite("Live pipeline")
struct LivePipelineTests {
  /// A restarted server decides as if it had never stopped: the device sightings of the first one are in the
  /// store, so a second browser 20 minutes after the first joins its person across the restart. Before they
  /// were stored, the restarted server knew no sighting and gave the browser a profile of its own.
  @Test("a restarted server joins a browser to a device seen before the restart")
  func sightingsAcrossARestart() async throws {
    typealias S = DeviceSignalTests
    let files = ["p.yaml": S.yaml("thresholds: { merge: 0.95, review: 0.9 }")]
    let result = Compiler(environment: [:], readFile: { files[$0] }).compile(pipeline: "p.yaml")
    let plan = try #require(result.plan, "\(result.rendered())")
    let dir = try E2E.TempDir()
    defer { dir.remove() }
    func serve(_ event: Event) async throws -> ResolveStats {
      let store = try SQLiteStore(path: dir.file("live.sqlite"))
      let pipeline = LivePipeline(plan: plan, store: store, tickEvery: nil)
      let running = Task { try await pipeline.run() }
      let stats = try await pipeline.submit(MappedBatch(seq: 0, events: [event], rejected: [], invalidIdentifiers: 0))
      pipeline.close()
      try await running.value
      try store.close()
      return stats
    }
    // The views are months old: the server's clock (the wall clock) does not expire what events measure.
    _ = try await serve(S.view("e1", anon: "chrome", user: "ada", minutes: 0))
    let stats = try await serve(S.view("e2", anon: "safari", minutes: 20, ua: S.macSafari))
    #expect(stats.probabilisticJoins == 1 && stats.profilesCreated == 0, "\(stats)")
    let store = try SQLiteStore(path: dir.file("live.sqlite"))
    defer { try? store.close() }
    let ada = try await store.profile(for: Identifier("user_id", "ada"))
    let browser = try await store.profile(for: Identifier("anonymous_id", "safari"))
    #expect(ada != nil && browser == ada)
  }

  /// The writer's own requests are served between journal chunks. Before, while the journal held more than a
  /// chunk (followers appending faster than one group resolves), the writer resolved chunk after chunk and
  /// its own requests waited until the journal was empty: seconds under load.
  @Test("the writer answers its own requests between journal chunks")
  func ownRequestsBetweenJournalChunks() async throws {
    let store = MemoryStore()
    let journaled = (0..<3000).map { n in
      ResolverCommitTests.event(n, day: 1 + n % 20, [("user_id", "j\(n % 300)"), ("anonymous_id", "ja\(n)")])
    }
    #expect(await store.appendJournal(journaled, rejected: []).appended.count == 3000)
    let pipeline = LivePipeline(
      plan: try ResolverCommitTests.plan(), store: store, tickEvery: nil, journalChunk: 10)
    let running = Task { try await pipeline.run() }
    // Once the writer is working through the journal, a request of its own.
    while await store.stats().events == 0 { try await Task.sleep(for: .milliseconds(5)) }
    let own = ResolverCommitTests.event(99_999, day: 30, [("user_id", "own")])
    let stats = try await pipeline.submit(MappedBatch(seq: 0, events: [own], rejected: [], invalidIdentifiers: 0))
    #expect(stats.events == 1)
    let left = try await store.readJournal(limit: 10_000).count
    #expect(left > 0, "the request was answered only after the whole journal (3,000 entries in chunks of 10)")
    // And the journal is still resolved to the end.
    while try await !store.readJournal(limit: 1).isEmpty { try await Task.sleep(for: .milliseconds(10)) }
    #expect(await store.stats().events == 3001)
    pipeline.close()
    try await running.value
  }

  /// After `close()` the writer resolves the journal for `journalGrace` and leaves the rest, durable, for the
  /// next writer. The journal is only read when polled (every hour here) or at shutdown, so what each
  /// pipeline resolves is decided by the grace alone. In chunks of 10, the one round at shutdown must also
  /// go on past the chunk the committer still holds (before `readJournal(after:)` it stopped after two).
  @Test("shutdown resolves the journal within the grace and leaves the rest")
  func journalGrace() async throws {
    let store = MemoryStore()
    let journaled = (0..<500).map { n in ResolverCommitTests.event(n, day: 1, [("user_id", "g\(n % 50)")]) }
    #expect(await store.appendJournal(journaled, rejected: []).appended.count == 500)
    // The long grace is an upper bound (the round ends when the journal does); under a loaded test run the
    // tasks may wait a while for a thread.
    for (grace, left) in [(Duration.zero, 500), (.seconds(600), 0)] {
      let pipeline = LivePipeline(
        plan: try ResolverCommitTests.plan(), store: store, tickEvery: nil, journalEvery: .seconds(3600),
        journalChunk: 10, journalGrace: grace)
      let running = Task { try await pipeline.run() }
      while pipeline.role != .writer { try await Task.sleep(for: .milliseconds(5)) }
      pipeline.close()
      try await running.value
      #expect(try await store.readJournal(limit: 1000).count == left, "grace \(grace)")
      #expect(await store.stats().events == 500 - left, "grace \(grace)")
    }
  }

  /// With acknowledge `journaled`, resolution runs on the low-priority lane so that requests keep the CPU.
  /// The graph and the journal reader are unstructured tasks, which do not inherit the executor preference:
  /// they ran at the requests' priority and journaled answers fell to the resolution rate.
  @Test("journaled acknowledgement: the graph commits on the background lane")
  func journaledResolvesOnTheLane() async throws {
    let store = MemoryStore()
    let lanes = Mutex<[Bool]>([])
    let pipeline = LivePipeline(
      plan: try ResolverCommitTests.plan(), store: store, tickEvery: nil, journalEvery: .milliseconds(20),
      acknowledge: .journaled,
      onGroup: { report in
        if report.journaled > 0 { lanes.withLock { $0.append(BackgroundLane.isCurrent) } }
      })
    let running = Task { try await pipeline.run() }
    while pipeline.role != .writer { try await Task.sleep(for: .milliseconds(5)) }
    let events = (0..<200).map { n in ResolverCommitTests.event(n, day: 1, [("user_id", "lane\(n % 20)")]) }
    let st = try await pipeline.submit(MappedBatch(seq: 0, events: events, rejected: [], invalidIdentifiers: 0))
    #expect(st.events == 200)
    for _ in 0..<2000 where await store.stats().events < 200 { try await Task.sleep(for: .milliseconds(10)) }
    #expect(await store.stats().events == 200)
    let seen = lanes.withLock { $0 }
    #expect(!seen.isEmpty)
    #expect(seen.allSatisfy { $0 }, "transactions committed off the lane: \(seen)")
    pipeline.close()
    try await running.value
  }

  /// Past `journalLimit` events waiting for the writer, a journaling request is answered only once the writer
  /// has caught up: its events are durable at once, its answer waits (backpressure instead of a full disk).
  @Test("answers wait while the journal is over its limit")
  func journalLimit() async throws {
    let dir = try E2E.TempDir()
    let path = dir.path + "/limit.sqlite"
    // Another process's store holds the writer role: this pipeline is a follower and only journals.
    let writer = try SQLiteStore(path: path)
    #expect(try await writer.acquireWriter())
    let store = try SQLiteStore(path: path)
    let pipeline = LivePipeline(
      plan: try ResolverCommitTests.plan(), store: store, tickEvery: nil, writerRetry: .seconds(3600),
      acknowledge: .journaled, journalLimit: 100)
    let running = Task { try await pipeline.run() }
    while pipeline.role != .follower { try await Task.sleep(for: .milliseconds(5)) }
    let events = (0..<150).map { n in ResolverCommitTests.event(n, day: 1, [("user_id", "l\(n % 10)")]) }
    let answered = Mutex<ResolveStats?>(nil)
    let request = Task {
      let st = try await pipeline.submit(MappedBatch(seq: 0, events: events, rejected: [], invalidIdentifiers: 0))
      answered.withLock { $0 = st }
    }
    // Journaled (durable) but not answered while 150 > 100 wait.
    while try await store.journalBacklog() < 150 { try await Task.sleep(for: .milliseconds(5)) }
    try await Task.sleep(for: .milliseconds(300))
    #expect(answered.withLock { $0 } == nil)
    #expect(pipeline.journalBacklog == 150, "the backlog the metrics show")
    // The writer resolves them (here: marks them done, as its commit would).
    let entries = try await writer.readJournal(limit: 1000)
    var done = CommitBatch()
    done.journalDone = entries.map(\.seq)
    try await writer.commit(done)
    try await request.value
    #expect(answered.withLock { $0 }?.events == 150)
    for _ in 0..<100 where pipeline.journalBacklog != 0 { try await Task.sleep(for: .milliseconds(50)) }
    #expect(pipeline.journalBacklog == 0)
    pipeline.close()
    try await running.value
    try store.close()
    try writer.close()
  }
}
