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
  }
  let state = Mutex(Snapshot())
  public init() {}
  public var snapshot: Snapshot { state.withLock { $0 } }
  func read(_ n: Int) { state.withLock { $0.recordsRead += n } }
  func unrestored(_ names: Set<String>) { state.withLock { $0.unrestoredComputed = names.sorted() } }
  func committed(_ s: ResolveStats, profiles: Int) {
    state.withLock {
      $0.committed.add(s)
      $0.profiles = profiles
    }
  }
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

/// Runs a compiled plan's file sources to the end into a store.
///
/// Stages are child tasks of one task group, joined by `AsyncChannel`s, which suspend the sender until the
/// receiver takes the element, so a slow stage holds back the ones before it instead of buffering:
///
///     reader ─RawBatch─► N decode & map workers ─MappedBatch─► resolve & unify (one writer)
///            ─ResolvedBatch─► encode traits ─CommitBatch─► store writer
///
/// The workers finish batches out of order; the resolver puts them back in read order, so a run gives
/// the same profiles whatever the number of workers. Each `CommitBatch` is one store transaction holding the
/// events and every state change they caused: if the run stops, what was committed is whole, and the
/// next run re-reads the rest (events already stored are recognised by id and skipped).
public struct PipelineRunner: Sendable {
  public var plan: PipelinePlan
  public var store: any Store
  public var readers: [Int: any SourceReader]
  public var workers: Int
  /// The time events without a timestamp get, and the `now()` of mapping expressions.
  public var now: Timestamp
  public let counters = RunCounters()
  /// Events per store transaction: resolved batches are gathered up to this many before they are committed
  /// together, because each transaction rewrites every index page it touches.
  public var commitEvents = PipelineRunner.defaultCommitEvents
  /// 1M events into SQLite (`tessera-bench sqlite`, 2 cores): 22,031 events/s at 8,192 per transaction,
  /// 31,043 at 32,768, 34,449 at 65,536 (peak RSS 0.89 → 1.11 GB), 39,038 at 131,072 (1.34 GB). The
  /// in-memory store hardly cares (72k → 77k events/s).
  public static let defaultCommitEvents = 65_536
  /// Called with the rejected records of each committed batch (for `--rejected FILE`).
  public var onRejected: (@Sendable ([RejectedRecord]) -> Void)?
  /// When another process is the store's writer: journal the events for it instead of failing (`WriterBusy`).
  public var journalWhenNotWriter = false

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
    let mappers = config.sources.map { Mapper(source: $0, config: config, receivedAt: now) }
    // Segments are evaluated, and windows measured, at the runner's `now` both during the run and at its
    // end: the clock is injected, never read here, so a replay of old files gives the audiences as of `now`.
    // Another process resolving into the same store (a `tessera serve`) would hand out the same profile ids:
    // when it is the writer, this run reads and maps the files and journals the events for it.
    guard try await store.acquireWriter() else {
      if journalWhenNotWriter { return try await journal(started: started, mappers: mappers) }
      throw WriterBusy()
    }
    let restored = try await Resolver.restored(config: config, from: store, now: now)
    // Reviewers' decisions since the last run: confirmed links merge now, rejected pairs are not proposed again.
    let decided =
      config.probabilistic.isEmpty
      ? []
      : try await store.matchLinks(status: .confirmed, limit: .max)
        + store.matchLinks(status: .rejected, limit: .max)
    let runNow = self.now
    let raw = AsyncChannel<RawBatch>()
    let mapped = AsyncChannel<MappedBatch>()
    let commits = AsyncChannel<(ResolvedBatch, Int)>()
    // A store that held no events when the run started can only hold this run's, which the resolver
    // already remembers: no need to ask the store about each batch.
    let storeWasEmpty = try await store.stats().events == 0
    let commitEvents = max(1, self.commitEvents)
    let readers = self.readers
    let store = self.store
    let counters = self.counters
    let workerCount = workers
    let onRejected = self.onRejected

    try await withThrowingTaskGroup(of: Void.self) { group in
      Self.feed(
        &group, sources: config.sources.indices, readers: readers, mappers: mappers, workers: workerCount,
        counters: counters, raw: raw, mapped: mapped)
      // Resolve & unify: the single writer of identity and profile state.
      group.addTask {
        defer { commits.finish() }
        var resolver = restored
        // Segments are evaluated, and changed traits gathered, once per store transaction.
        resolver.settlesPerTransaction = true
        if !resolver.unrestoredComputed.isEmpty { counters.unrestored(resolver.unrestoredComputed) }
        var pending: [Int: MappedBatch] = [:]
        var next = 0
        var gathered: ResolvedBatch?
        if !decided.isEmpty {
          let applied = resolver.applyConfirmed(decided, at: runNow)
          if !applied.commit.isEmpty { gathered = applied }
        }
        for await batch in mapped {
          pending[batch.seq] = batch
          while let b = pending.removeValue(forKey: next) {
            next += 1
            try Task.checkCancellation()
            var stored: Set<EventKey> = []
            if !storeWasEmpty {
              stored = try await store.existingEvents(b.events.map { EventKey(source: $0.source, id: $0.id) })
            }
            let resolved = resolver.resolve(b, stored: stored)
            if gathered == nil { gathered = resolved } else { gathered?.append(resolved) }
            if var g = gathered, g.commit.events.count + g.commit.rejected.count >= commitEvents {
              resolver.settle(&g)
              g.reconcile(with: resolver.graph)
              await commits.send((g, resolver.graph.profileCount))
              gathered = nil
            }
          }
        }
        try Task.checkCancellation()
        if var g = gathered {
          resolver.settle(&g)
          gathered = g
        }
        // The end-of-run tick: expire windows at `now` and re-evaluate the profiles whose values fell.
        let tick = resolver.tick()
        if !tick.isEmpty {
          var stats = ResolveStats()
          stats.withheld = resolver.tickWithheld
          stats.queued = resolver.tickQueued
          let t = ResolvedBatch(commit: tick, stats: stats, pending: [])
          if gathered == nil { gathered = t } else { gathered?.append(t) }
        }
        if var g = gathered {
          g.reconcile(with: resolver.graph)
          await commits.send((g, resolver.graph.profileCount))
        }
      }
      // Encoding the changed traits for the store, between the resolver and the store writer: on the writer's
      // thread it made the writer the slowest stage, while the resolver waited for it.
      let finished = AsyncChannel<(CommitBatch, ResolveStats, Int)>()
      group.addTask {
        defer { finished.finish() }
        for await (resolved, profiles) in commits {
          try Task.checkCancellation()
          var commit = resolved.finished()
          commit.encodeBodies()
          await finished.send((commit, resolved.stats, profiles))
        }
      }
      // The store writer: one transaction per batch.
      group.addTask {
        for await (commit, stats, profiles) in finished {
          if !commit.isEmpty { try await store.commit(commit) }
          counters.committed(stats, profiles: profiles)
          if !commit.rejected.isEmpty { onRejected?(commit.rejected) }
        }
      }
      try await group.waitForAll()
    }
    let elapsed = ContinuousClock.now - started
    let snap = counters.snapshot
    let live = try await store.stats().profiles
    return RunSummary(
      recordsRead: snap.recordsRead, stats: snap.committed, profiles: live,
      seconds: Double(elapsed.components.seconds) + Double(elapsed.components.attoseconds) / 1e18,
      unrestoredComputed: snap.unrestoredComputed)
  }
}
