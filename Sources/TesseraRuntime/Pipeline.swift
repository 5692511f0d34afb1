import AsyncAlgorithms
import Foundation
import Synchronization
import TesseraCompiler
import TesseraModel
import TesseraStore

/// Live counters the stages update and the progress display reads.
public final class RunCounters: Sendable {
  public struct Snapshot: Sendable, Hashable {
    public var recordsRead = 0
    public var committed = ResolveStats()
    public var profiles = 0
    /// Computed traits whose stored states belong to an older declaration (see `Resolver.unrestoredComputed`).
    public var unrestoredComputed: [String] = []
    /// Per source: the events committed and the last of them (what a run that stopped had stored).
    public var committedBySource: [String: SourceProgress] = [:]
    /// When a store transaction first failed (how long the run took to stop after it).
    public var failedAt: ContinuousClock.Instant?
    public init() {}
  }

  /// A source's events committed so far, and the last one committed.
  public struct SourceProgress: Sendable, Hashable {
    public var events = 0
    public var lastID = ""
    public var lastTimestamp = Timestamp(microseconds: 0)
    public init(events: Int = 0, lastID: String = "", lastTimestamp: Timestamp = Timestamp(microseconds: 0)) {
      self.events = events
      self.lastID = lastID
      self.lastTimestamp = lastTimestamp
    }
  }
  let state = Mutex(Snapshot())
  public init() {}
  public var snapshot: Snapshot { state.withLock { $0 } }
  func read(_ n: Int) { state.withLock { $0.recordsRead += n } }
  func unrestored(_ names: Set<String>) { state.withLock { $0.unrestoredComputed = names.sorted() } }
  func committed(_ s: ResolveStats, profiles: Int?, events: [StoredEvent] = []) {
    // Events are committed in the order they were read: the last of a source is the furthest. Counted by runs
    // of one source (a file's events come together), not one dictionary update per event.
    var runs: [(source: String, count: Int, last: Int)] = []
    for (i, e) in events.enumerated() {
      if let r = runs.last, r.source == e.event.source {
        runs[runs.count - 1].count += 1
        runs[runs.count - 1].last = i
      } else {
        runs.append((e.event.source, 1, i))
      }
    }
    state.withLock {
      $0.committed.add(s)
      if let profiles { $0.profiles = profiles }
      for r in runs {
        $0.committedBySource[r.source, default: SourceProgress()].events += r.count
        $0.committedBySource[r.source]?.lastID = events[r.last].event.id
        $0.committedBySource[r.source]?.lastTimestamp = events[r.last].event.timestamp
      }
    }
  }
  func failed() { state.withLock { $0.failedAt = $0.failedAt ?? .now } }
}

/// What a run did.
public struct RunSummary: Sendable, Hashable {
  public var recordsRead: Int
  public var stats: ResolveStats
  /// Live profiles in the store after the run.
  public var profiles: Int
  public var seconds: Double
  /// Computed traits whose stored states belong to an older declaration: they restart from this run's
  /// events; `tessera replay` rebuilds them from the whole log.
  public var unrestoredComputed: [String] = []
  /// Another process was the store's writer: the events were journaled for it (`stats.events` of them), not
  /// resolved by this run; `profiles` is what the store held when the run ended.
  public var journaled = false
  public var eventsPerSecond: Double { seconds > 0 ? Double(recordsRead) / seconds : 0 }
}

/// Runs a compiled plan's file sources to the end into a store: the plan's `StageGraph` fed by one
/// `SourceReader` per file source, its commit stage writing to the store.
///
/// Each store transaction holds the events and every state change they caused: if the run stops, what was
/// committed is whole, and the next run re-reads the rest (events already stored are recognised by id and
/// skipped). The decode workers finish batches out of order; the identity stage puts them back in read
/// order, and the profile partitions settle each transaction in profile order, so a run gives the same
/// profiles whatever the number of workers.
public struct PipelineRunner: Sendable {
  public var plan: PipelinePlan
  public var store: any Store
  public var readers: [Int: any SourceReader]
  /// Decode workers per source and profile partitions.
  public var workers: Int
  /// The time events without a timestamp get, and the `now()` of mapping expressions.
  public var now: Timestamp
  public let counters = RunCounters()
  /// The running graph's figures, once `run()` has built it (the progress display reads them).
  public let monitor = GraphMonitor()
  /// Events per store transaction: resolved batches are gathered up to this many before they are committed
  /// together, because each transaction rewrites every index page it touches.
  public var commitEvents = PipelineRunner.defaultCommitEvents
  public static let defaultCommitEvents = 65_536
  /// Called with the rejected records of each committed batch (for `--rejected FILE`).
  public var onRejected: (@Sendable ([RejectedRecord]) -> Void)?
  /// Called with each committed transaction (a dry run keeps them).
  public var onCommit: (@Sendable (CommitBatch) -> Void)?
  /// When another process is the store's writer: journal the events for it instead of failing (`WriterBusy`).
  public var journalWhenNotWriter = false
  /// What decoding maps of properties and context; nil: what the pipeline's stages read (`EventDemand`).
  public var demand: EventDemand?

  public init(
    plan: PipelinePlan, store: any Store, readers: [Int: any SourceReader], workers: Int = 2,
    now: Timestamp = Timestamp(Date())
  ) {
    self.plan = plan
    self.store = store
    self.readers = readers
    self.workers = max(1, workers)
    self.now = now
  }

  /// Another process is the store's writer.
  public struct WriterBusy: Error, CustomStringConvertible {
    public var description: String {
      "another Tessera process (a `tessera serve` or `tessera run`) is resolving into this store; "
        + "send the events through it (its tracking API) or stop it, then run again"
    }
  }

  /// The first stages of a run, as child tasks of `group`: the sources read one after another in declaration
  /// order (so batch numbers follow the files) into `raw`, and decoded and mapped on `workers` into `mapped`.
  static func feed(
    _ group: inout ThrowingTaskGroup<Void, any Error>, sources: Range<Int>, readers: [Int: any SourceReader],
    mappers: [Mapper], workers: Int, counters: RunCounters, raw: AsyncChannel<RawBatch>,
    mapped: AsyncChannel<MappedBatch>
  ) {
    group.addTask {
      defer { raw.finish() }
      // Batch numbers run on across sources; `emit` is @Sendable, hence the mutex around the counter.
      let next = Mutex(0)
      for index in sources {
        guard let reader = readers[index] else { continue }
        try await reader.read(source: index) { batch in
          var b = batch
          b.seq = next.withLock { s in
            defer { s += 1 }
            return s
          }
          counters.read(b.records.count)
          try Task.checkCancellation()
          await raw.send(b)
        }
      }
    }
    group.addTask {
      defer { mapped.finish() }
      try await withThrowingTaskGroup(of: Void.self) { pool in
        for _ in 0..<workers {
          pool.addTask {
            for await batch in raw {
              try Task.checkCancellation()
              await mapped.send(mappers[batch.source].map(batch))
            }
          }
        }
        try await pool.waitForAll()
      }
    }
  }

  /// The files' events, read and mapped as usual, appended to the store's journal for the process that is the
  /// writer (which resolves them as it does a follower server's); batches of `commitEvents`, in file order.
  func journal(started: ContinuousClock.Instant, mappers: [Mapper]) async throws -> RunSummary {
    let raw = AsyncChannel<RawBatch>()
    let mapped = AsyncChannel<MappedBatch>()
    let (readers, store, counters, workerCount, onRejected) = (
      self.readers, self.store, self.counters, workers, self.onRejected
    )
    let sources = plan.config.sources.indices
    let commitEvents = max(1, self.commitEvents)
    try await withThrowingTaskGroup(of: Void.self) { group in
      Self.feed(
        &group, sources: sources, readers: readers, mappers: mappers, workers: workerCount, counters: counters,
        raw: raw, mapped: mapped)
      group.addTask {
        var pending: [Int: MappedBatch] = [:]
        var next = 0
        var gathered = MappedBatch(seq: 0, events: [], rejected: [], invalidIdentifiers: 0)
        func append() async throws {
          let receipt = try await store.appendJournal(gathered.events, rejected: gathered.rejected)
          var counted = Set<EventKey>()
          counters.committed(ResolveStats.journaled(gathered, receipt, counted: &counted), profiles: 0)
          if !gathered.rejected.isEmpty { onRejected?(gathered.rejected) }
          gathered = MappedBatch(seq: 0, events: [], rejected: [], invalidIdentifiers: 0)
        }
        for await batch in mapped {
          pending[batch.seq] = batch
          while let b = pending.removeValue(forKey: next) {
            next += 1
            try Task.checkCancellation()
            gathered.events += b.events
            gathered.rejected += b.rejected
            gathered.invalidIdentifiers += b.invalidIdentifiers
            if gathered.events.count + gathered.rejected.count >= commitEvents { try await append() }
          }
        }
        if !gathered.events.isEmpty || !gathered.rejected.isEmpty { try await append() }
      }
      try await group.waitForAll()
    }
    let elapsed = ContinuousClock.now - started
    let snap = counters.snapshot
    return RunSummary(
      recordsRead: snap.recordsRead, stats: snap.committed, profiles: try await store.stats().profiles,
      seconds: Double(elapsed.components.seconds) + Double(elapsed.components.attoseconds) / 1e18,
      journaled: true)
  }

  public func run() async throws -> RunSummary {
    let started = ContinuousClock.now
    let config = plan.config
    // Another process resolving into the same store (a `tessera serve`) would hand out the same profile ids:
    // when it is the writer, this run reads and maps the files and journals the events for it.
    guard try await store.acquireWriter() else {
      let mappers = config.sources.map { Mapper(source: $0, config: config, receivedAt: now) }
      // A table source's cursor moves with the events it commits, which only the writer does.
      if let table = readers.keys.sorted().map({ config.sources[$0] }).first(where: { $0.table != nil }) {
        throw SourceError(
          source: table.name,
          message:
            "another Tessera process (a `tessera serve`) is the store's writer and polls table sources itself; "
            + "stop it to run this pipeline's tables with `tessera run`")
      }
      if journalWhenNotWriter { return try await journal(started: started, mappers: mappers) }
      throw WriterBusy()
    }
    let state = try await PipelineState.load(config: config, from: store)
    if !state.restored.unrestoredComputed.isEmpty { counters.unrestored(state.restored.unrestoredComputed) }
    // Reviewers' decisions since the last run: confirmed links merge now, rejected pairs are not proposed again.
    let decided =
      config.probabilistic.isEmpty
      ? []
      : try await store.matchLinks(status: .confirmed, limit: .max)
        + store.matchLinks(status: .rejected, limit: .max)
    // A store that held no events when the run started can only hold this run's, which the identity stage
    // already remembers: no need to ask the store about each batch.
    let storeWasEmpty = try await store.stats().events == 0
    // Segments are evaluated, and windows measured, at the runner's `now` both during the run and at its
    // end: the clock is injected, never read here, so a replay of old files gives the audiences as of `now`.
    var options = StageGraph.Options(
      workers: workers, cut: CutPolicy(events: commitEvents), now: now, decisions: decided, tickAtEnd: now,
      checksStore: !storeWasEmpty)
    options.demand = demand
    options.defersLastSeen = store.defersLastSeen
    let graph = StageGraph(
      plan: plan, options: options, fileSources: Array(readers.keys), fed: false, counters: counters)
    monitor.attach(graph.metrics)
    let (onRejected, onCommit) = (self.onRejected, self.onCommit)
    // A run writes in bulk: the store indexes what it appended once, at the end.
    let sink = StoreSink(store, bulk: true) { batch, _ in
      if !batch.rejected.isEmpty { onRejected?(batch.rejected) }
      onCommit?(batch)
    }
    do {
      try await graph.run(readers: readers, state: state, store: store, sink: sink)
    } catch {
      // What was committed before the error or the cancellation is indexed now, not at the next writer's start,
      // so the store answers every query about it at once. In a task of its own: the store's writes refuse to
      // start in a cancelled task. Not when the store cannot write: indexing would fail too (or take the last
      // free pages) and keep the run from stopping at once; the next writer indexes what this run appended, and
      // reads meanwhile include the unindexed tail.
      if !(error is StoreUnavailable) {
        let store = self.store
        try? await Task { try await store.finishWriting() }.value
      }
      throw error
    }
    try await store.finishWriting()
    let elapsed = ContinuousClock.now - started
    let snap = counters.snapshot
    let live = try await store.stats().profiles
    return RunSummary(
      recordsRead: snap.recordsRead, stats: snap.committed, profiles: live,
      seconds: Double(elapsed.components.seconds) + Double(elapsed.components.attoseconds) / 1e18,
      unrestoredComputed: snap.unrestoredComputed)
  }
}

extension PipelineRunner {
  /// Runs, keeping a copy of every committed transaction: what a dry run and a configuration test report
  /// (the commit stage hands each one to the sink, which keeps it as well as storing it).
  public func recorded() async throws -> (summary: RunSummary, batches: [CommitBatch]) {
    let kept = Mutex<[CommitBatch]>([])
    var runner = self
    // What is reported is every mapped field, not only what the stages read.
    runner.demand = .everything
    let earlier = onCommit
    runner.onCommit = { batch in
      kept.withLock { $0.append(batch) }
      earlier?(batch)
    }
    let summary = try await runner.run()
    return (summary, kept.withLock { $0 })
  }
}

/// Where a runner's graph publishes its figures once it is built.
public final class GraphMonitor: Sendable {
  let current = Mutex<GraphMetrics?>(nil)
  public init() {}
  func attach(_ m: GraphMetrics) { current.withLock { $0 = m } }
  /// The running graph's figures; nil before it started.
  public var metrics: GraphMetrics? { current.withLock { $0 } }
}

/// What `tessera run` says when the store stopped it.
public enum RunStopped {
  /// Why the run stopped early, what each source had committed, and how to go on: `again` is the command line
  /// (after `tessera`) to run once the cause is fixed; events already stored are recognised by id and skipped.
  public static func message(_ what: String, advice: String, _ s: RunCounters.Snapshot, again: String) -> String {
    var lines = ["error: \(what)", "  the run stopped; everything committed before is whole:"]
    if s.committedBySource.isEmpty { lines.append("    nothing was committed by this run") }
    let width = (s.committedBySource.keys.map(\.count).max() ?? 0) + 1
    for (name, p) in s.committedBySource.sorted(by: { $0.key < $1.key }) {
      lines.append(
        "    " + (name + ":").padding(toLength: width, withPad: " ", startingAt: 0)
          + "  \(p.events) events committed, the last `\(p.lastID)` (\(p.lastTimestamp.iso8601))")
    }
    lines.append("  to continue: \(advice); then run `tessera \(again)` again: events already stored are skipped")
    return lines.joined(separator: "\n")
  }
}
