import Foundation
import Synchronization
import TesseraModel
import TesseraRuntime
import TesseraStore
import Testing

/// The server's group commit (`CutPolicy.whenIdle`): the store takes what is resolved whenever it is idle, and
/// while it commits, everything that arrives waits for the next transaction.
@Suite("Group commit")
struct GroupCommitTests {
  /// A sink whose first commit waits until the test opens the gate (a slow store), and that records the
  /// events of every transaction.
  final class GatedSink: CommitSink {
    let store: MemoryStore
    let state = Mutex<(open: Bool, waiting: CheckedContinuation<Void, Never>?, sizes: [Int])>((false, nil, []))
    init(_ store: MemoryStore) { self.store = store }

    func commit(_ batch: CommitBatch) async throws {
      state.withLock { $0.sizes.append(batch.events.count) }
      await withCheckedContinuation { (c: CheckedContinuation<Void, Never>) in
        let now = state.withLock { s -> Bool in
          if s.open { return true }
          s.waiting = c
          return false
        }
        if now { c.resume() }
      }
      try await store.commit(batch)
    }
    func committed(_ batch: CommitBatch, report: CommitReport) {}

    func open() {
      let c = state.withLock { s -> CheckedContinuation<Void, Never>? in
        s.open = true
        defer { s.waiting = nil }
        return s.waiting
      }
      c?.resume()
    }
    var sizes: [Int] { state.withLock { $0.sizes } }
  }

  static func batch(_ n: Int, events: Int) -> MappedBatch {
    let es = (0..<events).map { k in
      ResolverCommitTests.event(n * 100 + k, day: 1, [("user_id", "g\(n)-\(k)")])
    }
    return MappedBatch(seq: 0, events: es, rejected: [], invalidIdentifiers: 0)
  }

  /// A server's graph (group commit) on a memory store behind a gated sink, running.
  static func serve(workers: Int) async throws -> (MemoryStore, GatedSink, StageGraph, Task<Void, any Error>) {
    let plan = try ResolverCommitTests.plan()
    let store = MemoryStore()
    let state = try await PipelineState.load(config: plan.config, from: store)
    let graph = StageGraph(
      plan: plan,
      options: StageGraph.Options(
        workers: workers, cut: CutPolicy(events: 4096, whenIdle: true), liveClock: true, checksStore: true,
        forgets: true),
      fileSources: [], fed: true)
    let sink = GatedSink(store)
    let running = Task { try await graph.run(readers: [:], state: state, store: store, sink: sink) }
    return (store, sink, graph, running)
  }

  /// Requests that arrive while a transaction commits go into the next transaction together, which is cut
  /// once the store is done. Before, the identity stage cut a transaction whenever its input was empty, so a
  /// request arriving alone during the commit became a transaction of its own and the ones behind it a third
  /// (here 1, 1, 2 events instead of 1, 3): under load every client's request waited for the requests its
  /// answer set off, and the store and the requests took turns instead of overlapping.
  @Test("requests that arrive during a commit are committed together once the store is idle")
  func requestsDuringACommitGoTogether() async throws {
    let (store, sink, graph, running) = try await Self.serve(workers: 2)
    let intake = graph.intake
    // The first request: its transaction is cut at once and waits in the (slow) store.
    let first = try #require(await intake.submit(Self.batch(0, events: 1), source: "s"))
    while sink.sizes.isEmpty { try await Task.sleep(for: .milliseconds(5)) }
    // While it commits: one request, time for the stage to resolve it, then two more.
    let second = try #require(await intake.submit(Self.batch(1, events: 1), source: "s"))
    try await Task.sleep(for: .milliseconds(200))
    let third = try #require(await intake.submit(Self.batch(2, events: 1), source: "s"))
    let fourth = try #require(await intake.submit(Self.batch(3, events: 1), source: "s"))
    try await Task.sleep(for: .milliseconds(200))
    sink.open()
    var stored = 0
    for t in [first, second, third, fourth] {
      if case .stored(let st) = await t.outcome() { stored += st.events }
    }
    #expect(stored == 4)
    #expect(sink.sizes == [1, 3], "events per transaction")
    intake.finish()
    try await running.value
    #expect(await store.stats().events == 4)
  }

  /// Alone, a request is committed at once (the store is idle): group commit adds no wait.
  @Test("a lone request is committed at once")
  func loneRequest() async throws {
    let (_, sink, graph, running) = try await Self.serve(workers: 1)
    sink.open()
    let intake = graph.intake
    for n in 0..<3 {
      let t = try #require(await intake.submit(Self.batch(n, events: 2), source: "s"))
      guard case .stored(let st) = await t.outcome() else {
        Issue.record("request \(n) not stored")
        return
      }
      #expect(st.events == 2)
    }
    #expect(sink.sizes == [2, 2, 2])
    intake.finish()
    try await running.value
  }
}
