import CoreMetrics
import Foundation
import Synchronization
import TesseraCompiler
import TesseraModel
import TesseraStore

/// The long-running pipeline behind `tessera serve`: the plan's `StageGraph`, fed by the requests of its `http`
/// sources (decoded on each request's task) and by the store's journal, running until `close()`.
///
/// **Group commit.** A request hands its mapped batch to the graph's identity stage and waits for its ticket.
/// The identity stage cuts a store transaction whenever nothing else waits at its input, so under load one
/// transaction holds many requests and alone a request is committed at once. Nothing is acknowledged before
/// its transaction has committed, with everything the events caused (profiles, traits, segments, outbox).
///
/// **De-duplication.** The identity stage asks the store which events of each batch it already holds and
/// skips repeats it has seen but the store does not hold yet; both count as duplicates: accepted, stored once.
///
/// **Several processes, one store** (PostgreSQL, or a SQLite file on one machine). One process at a time is
/// the store's *writer* (`Store.acquireWriter`); the others are *followers*: they acknowledge a group once it is
/// appended to the store's journal (durable, de-duplicated against the events and the journal), and the
/// writer resolves the journal in the order it was appended, each entry leaving it in the transaction that
/// stores its event. A follower asks for the writer role every `writerRetry`; when the writer dies its
/// session's lock goes with it, a follower takes over, reads the state from the store and carries on.
///
/// **Failures.** A transaction the store refuses fails its requests (503 with `Retry-After`); the graph stops,
/// the requests behind it fail too (their state was resolved on top of the failed one), and a new graph is built
/// from what the store holds. Until a commit succeeds again the pipeline is `degraded`: requests are answered
/// 503 at once while it waits (0.25 s doubling to 5 s, `storeRetry`) before trying the store again. A transaction refused as *stale* (a person erased by another process, a replay, a new writer) fails
/// nobody: its requests are submitted again to the next graph — or journaled, when this process is no longer
/// the writer.
///
/// **Deletion** (and every `exclusive` admin action: unmerge, confirming a link) stops taking requests into the
/// graph, lets the graph commit everything it holds, erases the person (or does the action), and builds a new
/// graph from the store (which now suppresses the person's identifiers).
public final class LivePipeline: Sendable {
  /// What a store transaction did, for metrics.
  public struct GroupReport: Sendable {
    public var requests: Int
    public var events: Int
    public var stats: ResolveStats
    /// Resolving the group (kept for the metric's sake; the stages now overlap, so it is not measured apart).
    public var resolveSeconds: Double
    /// The store transaction.
    public var seconds: Double
    public var profiles: Int
    /// Events of the group that came from the journal (another process accepted them).
    public var journaled = 0
  }

  public enum Failure: Error, Sendable, CustomStringConvertible {
    /// The server is shutting down and takes no more events.
    case closed
    /// The store refused the group's transaction, or cannot commit at all now (`degraded`); nothing of it was
    /// stored. `retryAfter`: seconds until the pipeline tries the store again.
    case store(String, retryAfter: Int)
    public var description: String {
      switch self {
      case .closed: return "the server is shutting down"
      case .store(let m, let after): return "the store cannot commit: \(m); retry in \(after) s"
      }
    }
  }

  /// Why the store cannot commit now, since when, and when the pipeline tries it again. Requests are answered
  /// with `Failure.store` (503 and `Retry-After`) until then; the first commit that succeeds ends it.
  public struct Degraded: Sendable {
    public var reason: String
    /// `StoreUnavailable.Kind`'s name, or `error` for a failure the store did not classify.
    public var kind: String
    public var since: Date
    /// Failed attempts in a row.
    public var failures: Int
    public var retryAt: ContinuousClock.Instant
    /// What failed: the journal's appends or the writer's commits. Only a success of the same kind ends it (a
    /// journaling server's appends can fail on a full intake file while the writer still commits, and the
    /// other way round).
    var path: StorePath = .commit
    /// Whole seconds until the next attempt (at least 1: what `Retry-After` says).
    public var retryAfter: Int {
      let left = (retryAt - .now) / .seconds(1)
      return max(1, Int(left.rounded(.up)))
    }
  }

  /// Whether this process resolves (the store's writer) or journals what it accepts for the writer.
  public enum Role: String, Sendable {
    case starting, writer, follower
  }

  /// When a request is answered. `resolved`: once its events are committed with their effects (profiles,
  /// traits, segments) — a lookup right after the answer shows them. `journaled`: once they are in the
  /// store's journal (durable, de-duplicated); the writer resolves them a moment later, off the request's path.
  /// A follower always journals.
  public enum Acknowledge: String, Sendable, CaseIterable {
    case resolved, journaled
  }

  struct Submission: Sendable {
    var batch: MappedBatch
    var continuation: CheckedContinuation<ResolveStats, any Error>
  }
  /// Work that needs the store to itself (an erasure, an unmerge, a confirmed link): run between two graphs.
  struct Exclusive: Sendable {
    var run: @Sendable () async -> Void
    /// Answers the caller when the pipeline closes before the work ran.
    var fail: @Sendable (any Error) -> Void
  }
  struct State: Sendable {
    /// The running writer graph that takes requests; nil while there is none (starting, rebuilding, follower).
    var graph: StageGraph?
    /// Requests waiting for a graph or a role.
    var waiting: [CheckedContinuation<Void, Never>] = []
    /// Requests to journal (a follower's, or all with acknowledge `journaled`).
    var intake: [Submission] = []
    var intakeEvents = 0
    var exclusives: [Exclusive] = []
    var closed = false
    var role = Role.starting
    /// Set by `close()`: the journal is resolved until then, and what is left waits for the next writer.
    var journalDeadline: ContinuousClock.Instant?
    /// Journal entries handed to the graph and not yet committed.
    var inFlightJournal: Set<Int64> = []
    /// Wakes the running graph's journal reader (an append, a timer, `close()`).
    var journalRing: AsyncStream<Void>.Continuation?
    /// Set while the store cannot commit.
    var degraded: Degraded?
  }

  public let plan: PipelinePlan
  public var config: PipelineConfig { plan.config }
  public let store: any Store
  public let acknowledge: Acknowledge
  let state = Mutex(State())
  /// Wakes the controller (`run`): a deletion, `close()`, a graph that stopped.
  let bell: AsyncStream<Void>
  let ring: AsyncStream<Void>.Continuation
  /// Wakes the task that journals the intake.
  let intakeBell: AsyncStream<Void>
  let ringIntake: AsyncStream<Void>.Continuation
  let onGroup: (@Sendable (GroupReport) -> Void)?
  /// Told when this process becomes the writer or a follower.
  let onRole: (@Sendable (Role) -> Void)?
  /// How often computed-trait windows are expired and the profiles whose values fell re-evaluated; nil: never.
  let tickEvery: Duration?
  /// How often the writer looks for journaled events.
  let journalEvery: Duration
  /// How often a follower asks for the writer role.
  let writerRetry: Duration
  /// Journal entries read at a time.
  let journalChunk: Int
  /// How long the writer goes on resolving the journal after `close()`.
  let journalGrace: Duration
  /// Journaled events waiting for the writer past which a journaling request is answered only once the writer
  /// has caught up below it (nil: no limit).
  let journalLimit: Int?
  /// The journal's backlog as last seen: from each append's receipt, and read from the store every second.
  let backlog = Atomic<Int>(0)
  /// Profile partitions of the graph (and the lane's threads with acknowledge `journaled`).
  let workers: Int
  /// How long the pipeline waits before trying a failing store again: the first wait, doubled after each
  /// failure in a row up to the last.
  let storeRetry: (first: Duration, last: Duration)
  /// Whether `degraded` is set (read on every commit without taking the state's lock).
  let isDegraded = Atomic<Bool>(false)
  /// The figures of the graph running now.
  public let monitor = GraphMonitor()
  /// Where each graph reports its stage figures.
  let metrics: (any MetricsFactory)?
  /// The readers of the sources the writer's graph polls itself (table sources), made afresh for each graph
  /// (each reads from the cursor its predecessor committed); they stop when the graph is told to.
  let sourceReaders: (@Sendable (SourceStop) -> [Int: any SourceReader])?

  public init(
    plan: PipelinePlan, store: any Store, tickEvery: Duration? = .seconds(60),
    journalEvery: Duration = .milliseconds(100), writerRetry: Duration = .seconds(1),
    acknowledge: Acknowledge = .resolved, journalChunk: Int = 4096, journalGrace: Duration = .seconds(5),
    journalLimit: Int? = 1_000_000, workers: Int = ProcessInfo.processInfo.activeProcessorCount,
    storeRetry: (first: Duration, last: Duration) = (.milliseconds(250), .seconds(5)),
    metrics: (any MetricsFactory)? = nil, onRole: (@Sendable (Role) -> Void)? = nil,
    sourceReaders: (@Sendable (SourceStop) -> [Int: any SourceReader])? = nil,
    onGroup: (@Sendable (GroupReport) -> Void)? = nil
  ) {
    self.metrics = metrics
    self.sourceReaders = sourceReaders
    self.plan = plan
    self.store = store
    self.onRole = onRole
    self.onGroup = onGroup
    self.acknowledge = acknowledge
    self.tickEvery = tickEvery
    self.journalEvery = journalEvery
    self.writerRetry = writerRetry
    self.journalChunk = max(1, journalChunk)
    self.journalGrace = journalGrace
    self.journalLimit = journalLimit
    self.workers = max(1, workers)
    self.storeRetry = storeRetry
    (bell, ring) = AsyncStream.makeStream(of: Void.self, bufferingPolicy: .bufferingNewest(1))
    (intakeBell, ringIntake) = AsyncStream.makeStream(of: Void.self, bufferingPolicy: .bufferingNewest(1))
  }

  /// Requests and events waiting for the writer.
  public var queueDepth: (requests: Int, events: Int) {
    let (graph, requests, events) = state.withLock { ($0.graph, $0.intake.count, $0.intakeEvents) }
    let waiting = graph?.waiting ?? (batches: 0, events: 0)
    return (requests + waiting.batches, events + waiting.events)
  }

  /// Whether this process is the store's writer now.
  public var role: Role { state.withLock { $0.role } }

  /// Journaled events waiting for the writer, as last seen (at most a second old; `Store.journalBacklog`).
  public var journalBacklog: Int { backlog.load(ordering: .relaxed) }

  /// Why the store cannot commit, while it cannot (nil when it commits).
  public var degraded: Degraded? { state.withLock { $0.degraded } }

  /// The two ways events go into the store.
  enum StorePath: Sendable {
    case commit, journal
  }

  /// A store operation failed: the pipeline is degraded until a commit succeeds, and waits longer before each
  /// new attempt. Returns the failure to answer requests with.
  @discardableResult
  func storeFailed(_ error: any Error, path: StorePath = .commit) -> Failure {
    let kind = (error as? StoreUnavailable)?.kind.rawValue ?? "error"
    let d = state.withLock { s -> Degraded in
      let failures = (s.degraded?.failures ?? 0) + 1
      var wait = storeRetry.first
      for _ in 1..<min(failures, 16) { wait = min(storeRetry.last, wait * 2) }
      let d = Degraded(
        reason: String(describing: error), kind: kind, since: s.degraded?.since ?? Date(), failures: failures,
        retryAt: .now + wait, path: path)
      s.degraded = d
      return d
    }
    isDegraded.store(true, ordering: .relaxed)
    if let metrics {
      Counter(label: "tessera_store_failures_total", dimensions: [("kind", kind)], factory: metrics).increment()
    }
    return .store(d.reason, retryAfter: d.retryAfter)
  }

  /// A commit (or a journal append) succeeded: the store is back, if that is what had failed.
  func storeCommitted(_ path: StorePath = .commit) {
    guard isDegraded.load(ordering: .relaxed) else { return }
    let cleared = state.withLock { s -> Bool in
      guard s.degraded?.path == path else { return false }
      s.degraded = nil
      return true
    }
    if cleared { isDegraded.store(false, ordering: .relaxed) }
  }

  /// The answer to requests that a failed transaction (or a graph stopped by `error`) takes down: the degraded
  /// state `LiveSink` recorded for it, or, for an error it did not see, a new record of it.
  func failure(for error: any Error) -> Failure {
    if let d = degraded { return .store(d.reason, retryAfter: d.retryAfter) }
    return storeFailed(error)
  }

  /// The failure to answer with while the store is degraded and its next attempt has not come yet.
  func refusal() -> Failure? {
    guard isDegraded.load(ordering: .relaxed) else { return nil }
    return state.withLock { s in
      guard let d = s.degraded, d.retryAt > .now else { return nil }
      return .store(d.reason, retryAfter: d.retryAfter)
    }
  }

  // MARK: requests

  /// Stores a mapped batch (events and rejected records) and returns once it is committed, with what the
  /// resolver did to it (`events` stored, `duplicates`, `suppressed`, `rejected`). On a follower, `events` are
  /// those journaled for the writer; suppression is decided when the writer resolves them.
  public func submit(_ batch: MappedBatch) async throws -> ResolveStats {
    let source = batch.events.first?.source ?? batch.rejected.first?.source ?? ""
    while true {
      if let refused = refusal() { throw refused }
      enum Path {
        case closed, journal, graph(StageGraph), wait
      }
      let path = state.withLock { s -> Path in
        if s.closed { return .closed }
        if acknowledge == .journaled || s.role == .follower { return .journal }
        if let g = s.graph { return .graph(g) }
        return .wait
      }
      switch path {
      case .closed: throw Failure.closed
      case .journal: return try await journaled(batch)
      case .wait: await waitForGraph()
      case .graph(let graph):
        guard let ticket = await graph.intake.submit(batch, source: source) else {
          // The graph stopped before taking the batch: the next one will.
          await waitForGraph()
          continue
        }
        switch await ticket.outcome() {
        case .stored(let stats): return stats
        case .stale: continue
        case .failed(let error as Failure): throw error
        case .failed(let error): throw failure(for: error)
        }
      }
    }
  }

  /// Waits until a graph takes requests, the role changes or the pipeline closes.
  func waitForGraph() async {
    await withCheckedContinuation { (c: CheckedContinuation<Void, Never>) in
      let now = state.withLock { s -> Bool in
        if s.closed || s.graph != nil || s.role == .follower || acknowledge == .journaled { return true }
        if let d = s.degraded, d.retryAt > .now { return true }
        s.waiting.append(c)
        return false
      }
      if now { c.resume() }
    }
  }

  /// Queues a request to be journaled; returns once it is.
  func journaled(_ batch: MappedBatch) async throws -> ResolveStats {
    try await withCheckedThrowingContinuation { (c: CheckedContinuation<ResolveStats, any Error>) in
      let accepted = state.withLock { s in
        guard !s.closed else { return false }
        s.intake.append(Submission(batch: batch, continuation: c))
        s.intakeEvents += batch.events.count
        return true
      }
      if accepted { ringIntake.yield() } else { c.resume(throwing: Failure.closed) }
    }
  }

  /// Erases the person `person` (`kind:value` or a profile id) between two groups; nil when no profile matches.
  public func delete(_ person: String) async throws -> Deletion.Outcome? {
    try await exclusive { [self] in
      guard let profile = try await PersonLookup.resolve(person, in: store, config: config) else { return nil }
      return try await Deletion.erase(profile, in: store, config: config, at: Timestamp(Date()))
    }
  }

  /// Runs `work` with the store to itself: the running graph takes no new request, commits everything it holds
  /// and stops; `work` runs; a new graph is built from what the store then holds. The admin actions that
  /// rewrite the identity graph (erasure, unmerge, confirming a candidate link) go through here. A follower runs
  /// `work` at once (it has no graph; work that needs the writer role refuses itself).
  public func exclusive<T: Sendable>(_ work: @escaping @Sendable () async throws -> T) async throws -> T {
    try await withCheckedThrowingContinuation { (c: CheckedContinuation<T, any Error>) in
      let job = Exclusive(
        run: {
          do { c.resume(returning: try await work()) } catch { c.resume(throwing: error) }
        }, fail: { c.resume(throwing: $0) })
      let accepted = state.withLock { s in
        guard !s.closed else { return false }
        s.exclusives.append(job)
        return true
      }
      if accepted { ring.yield() } else { c.resume(throwing: Failure.closed) }
    }
  }

  /// Stops taking events; `run()` commits what it took and returns.
  public func close() {
    wakeWaiting { s in
      s.closed = true
      s.journalDeadline = .now + journalGrace
      return true
    }
    ringIntake.finish()
    ringJournal()
    ring.yield()
  }

  /// Wakes the journal reader of the running graph, if any.
  func ringJournal() { _ = state.withLock { $0.journalRing }?.yield() }

  func become(_ role: Role) {
    wakeWaiting { s in
      s.role = role
      return role == .follower
    }
    onRole?(role)
  }

  // MARK: the writer

  /// Runs until `close()`: as the store's writer, a graph at a time; as a follower, journaling requests and
  /// asking for the writer role every `writerRetry`.
  public func run() async throws {
    guard acknowledge == .journaled else { return try await runWriter() }
    // Acknowledging after the journal: what is journaled is durable, so resolving it can wait while requests
    // are being answered. The graph runs on a lane of lower priority with a thread per core; the requests'
    // parsing and journal appends keep the rest of the CPU.
    let lane = BackgroundLane(threads: workers)
    defer { lane.stop() }
    try await withTaskExecutorPreference(lane) { try await runWriter(lane: lane) }
  }

  /// `lane`: where the graph and the journal reader run (their tasks are unstructured, so they would not inherit
  /// the caller's executor preference).
  func runWriter(lane: BackgroundLane? = nil) async throws {
    let acceptor = Task(executorPreference: globalConcurrentExecutor) { [self] in
      for await _ in intakeBell { await accept() }
      await accept()
    }
    let refresher = Task { [self] in
      while !Task.isCancelled {
        if let b = try? await store.journalBacklog() { backlog.store(b, ordering: .relaxed) }
        try? await Task.sleep(for: .seconds(1))
      }
    }
    let journalTimer = Task { [self] in
      while !Task.isCancelled {
        try? await Task.sleep(for: journalEvery)
        ringJournal()
      }
    }
    defer {
      refresher.cancel()
      journalTimer.cancel()
    }
    var bells = bell.makeAsyncIterator()
    var retryAt = ContinuousClock.now
    while true {
      let (closed, exclusives) = state.withLock { s in
        defer { s.exclusives = [] }
        return (s.closed, s.exclusives)
      }
      if closed && role != .writer { for d in exclusives { await d.run() } }
      if closed { break }
      // The writer role: asked for at start, and by a follower every `writerRetry`.
      if role != .writer {
        for d in exclusives { await d.run() }
        if ContinuousClock.now >= retryAt, (try? await store.acquireWriter()) == true {
          become(.writer)
        } else {
          if role == .starting { become(.follower) }
          retryAt = ContinuousClock.now + writerRetry
          await sleepOrBell(writerRetry, &bells)
          continue
        }
      } else {
        for d in exclusives { await d.run() }
      }
      let ended = await runGraph(&bells, lane: lane)
      switch ended {
      case .closed: break
      case .drained: continue
      case .failed:
        // Give a store that is failing its time (doubling, up to `storeRetry.last`) before the next graph
        // reads it again; requests meanwhile are answered 503 with `Retry-After`.
        let nextTry = state.withLock { $0.degraded?.retryAt } ?? .now + storeRetry.first
        await sleepOrBell(max(.zero, nextTry - .now), &bells)
        // A lost database connection may have taken the writer role's session with it: ask again (an error
        // means the store is still away; the next graph fails and waits again).
        if (try? await store.acquireWriter()) == false {
          become(.follower)
          retryAt = ContinuousClock.now + writerRetry
        }
        continue
      case .lost:
        become(.follower)
        retryAt = ContinuousClock.now + writerRetry
        continue
      }
      break
    }
    // Closed: the requests already taken are committed; the journal intake is appended.
    await acceptor.value
    let left = state.withLock { s in
      defer {
        s.intake = []
        s.intakeEvents = 0
        s.exclusives = []
      }
      return (s.intake, s.exclusives)
    }
    for s in left.0 { s.continuation.resume(throwing: Failure.closed) }
    for d in left.1 { d.fail(Failure.closed) }
  }

  /// Applies `change` to the state and, when it returns true, lets the requests waiting for a graph look again
  /// (a graph is up, the role or the pipeline closed, a degraded store answers them 503 at once).
  func wakeWaiting(_ change: (inout State) -> Bool = { _ in true }) {
    let waiting = state.withLock { s -> [CheckedContinuation<Void, Never>] in
      guard change(&s) else { return [] }
      defer { s.waiting = [] }
      return s.waiting
    }
    for w in waiting { w.resume() }
  }

  func sleepOrBell(_ d: Duration, _ bells: inout AsyncStream<Void>.Iterator) async {
    let timer = Task { [ring] in
      try? await Task.sleep(for: d)
      ring.yield()
    }
    _ = await bells.next()
    timer.cancel()
  }

  enum GraphEnd {
    /// Closed: everything taken is committed.
    case closed
    /// Stopped to erase someone (or to start over): everything taken is committed.
    case drained
    /// A transaction failed; the requests behind it were failed too.
    case failed
    /// A transaction was stale and another process holds the writer role now.
    case lost
  }

  /// Builds a graph from the store's state and runs it until a deletion, `close()` or a failure.
  func runGraph(_ bells: inout AsyncStream<Void>.Iterator, lane: BackgroundLane? = nil) async -> GraphEnd {
    let loaded: PipelineState
    do {
      loaded = try await PipelineState.load(config: config, from: store)
    } catch {
      storeFailed(error)
      wakeWaiting()
      return .failed
    }
    var options = StageGraph.Options(
      workers: workers, cut: CutPolicy(events: journalChunk, whenIdle: true), liveClock: true, checksStore: true,
      forgets: true)
    options.metrics = metrics
    let stop = SourceStop()
    let readers = sourceReaders?(stop) ?? [:]
    let graph = StageGraph(plan: plan, options: options, fileSources: Array(readers.keys), fed: true)
    monitor.attach(graph.metrics)
    let sink = LiveSink(store: store, pipeline: self)
    let outcome = Mutex<(any Error)?>(nil)
    // On the lane when there is one: unstructured tasks do not inherit an executor preference, and without it
    // the graph (and its SQLite commits) ran at the requests' priority, so journaled acknowledgements fell to
    // the resolution rate (11,038 against issue 8's 49,569 events/s).
    let running = Task(executorPreference: lane) { [ring, store] in
      do {
        try await graph.run(readers: readers, state: loaded, store: store, sink: sink)
      } catch {
        outcome.withLock { $0 = error }
      }
      ring.yield()
    }
    let (journalBell, journalRing) = AsyncStream.makeStream(of: Void.self, bufferingPolicy: .bufferingNewest(1))
    wakeWaiting { s in
      s.inFlightJournal = []
      s.journalRing = journalRing
      s.graph = graph
      return true
    }
    let intake = graph.intake
    let reader = Task(executorPreference: lane) { [self] in await readJournal(into: intake, bell: journalBell) }
    let ticker = tickEvery.map { every in
      Task {
        while !Task.isCancelled {
          try? await Task.sleep(for: every)
          if Task.isCancelled { break }
          await intake.send(.tick(Timestamp(Date())))
        }
      }
    }
    // Until something asks the graph to stop.
    var stopping = false
    while !stopping {
      _ = await bells.next()
      let (closed, deleting) = state.withLock { ($0.closed, !$0.exclusives.isEmpty) }
      let failed = outcome.withLock { $0 != nil }
      stopping = closed || deleting || failed
    }
    // No new request reaches this graph; the ones that did are committed (or failed with it).
    let closing = state.withLock { s in
      s.graph = nil
      s.journalRing = nil
      return s.closed
    }
    ticker?.cancel()
    // The reader stops at its next chunk (its bell ends); when closing it first makes its last round.
    if closing { journalRing.yield() }
    journalRing.finish()
    // When closing, the reader's last round (within the grace) is resolved too.
    await reader.value
    // Table sources end their read at once; what they handed the graph is committed with their cursors.
    stop.stop()
    intake.finish()
    await running.value
    let error = outcome.withLock { $0 }
    guard let error else { return closing ? .closed : .drained }
    if case StoreError.stale = error {
      graph.failOutstanding(.stale)
      if closing { return .closed }
      return (try? await store.acquireWriter()) == true ? .drained : .lost
    }
    // Requests behind the failed transaction were resolved on top of it: they fail too, and their clients send
    // them again once the store commits (the events they hold are recognised by id then, never stored twice).
    graph.failOutstanding(.failed(failure(for: error)))
    wakeWaiting()
    return closing ? .closed : .failed
  }

  /// Hands journaled events to the graph, oldest first, a chunk at a time, whenever the journal bell rings;
  /// entries the graph still holds are skipped. After `close()`, one last round within the grace.
  func readJournal(into intake: StageGraph.Intake, bell: AsyncStream<Void>) async {
    var bells = bell.makeAsyncIterator()
    while true {
      if !state.withLock({ $0.closed }) { guard await bells.next() != nil else { return } }
      // After `close()`, this round is the last.
      let last = state.withLock { $0.closed }
      guard await journalRound(into: intake) else { return }
      if last { return }
    }
  }

  /// One round over the journal; false when the graph stopped taking batches.
  func journalRound(into intake: StageGraph.Intake) async -> Bool {
    // Each round starts from the oldest entry (on PostgreSQL an entry can commit after one with a higher
    // `seq`), then goes on after the last entry read.
    var after: Int64? = nil
    while true {
      let (closed, deadline, stopping) = state.withLock { ($0.closed, $0.journalDeadline, $0.journalRing == nil) }
      if let deadline, ContinuousClock.now >= deadline { return true }
      // This graph is stopping (not for `close()`): what is left waits for the next one.
      if stopping && !closed { return false }
      guard let entries = try? await store.readJournal(limit: journalChunk, after: after) else { return true }
      after = entries.last?.seq
      let fresh = state.withLock { s in entries.filter { !s.inFlightJournal.contains($0.seq) } }
      if !fresh.isEmpty {
        state.withLock { s in for e in fresh { s.inFlightJournal.insert(e.seq) } }
        var batch = MappedBatch(seq: 0, events: fresh.map(\.event), rejected: [], invalidIdentifiers: 0)
        batch.journal = fresh.map(\.seq)
        guard await intake.submit(batch, source: fresh[0].event.source, answered: false) != nil else { return false }
      }
      if entries.count < journalChunk { return true }
    }
  }

  /// A transaction committed: its journal entries are no longer in flight.
  func committed(_ batch: CommitBatch, _ report: CommitReport) {
    if !batch.journalDone.isEmpty {
      state.withLock { s in s.inFlightJournal.subtract(batch.journalDone) }
    }
    onGroup?(
      GroupReport(
        requests: report.tickets, events: batch.events.count, stats: report.stats, resolveSeconds: 0,
        seconds: report.seconds, profiles: report.profiles, journaled: batch.journalDone.count))
  }

  // MARK: the journal (followers, and acknowledge `journaled`)

  /// Journals the intake until it is empty, then tells the writer there is something to resolve.
  func accept() async {
    while true {
      let group = state.withLock { s in
        defer {
          s.intake.removeAll(keepingCapacity: true)
          s.intakeEvents = 0
        }
        return s.intake
      }
      if group.isEmpty { return }
      await journal(group)
      ringJournal()
    }
  }

  /// A group of requests appended to the journal in one transaction, each request answered with its share.
  func journal(_ group: [Submission]) async {
    let receipt: JournalReceipt
    do {
      receipt = try await store.appendJournal(
        group.flatMap(\.batch.events), rejected: group.flatMap(\.batch.rejected))
    } catch {
      let failure = storeFailed(error, path: .journal)
      for s in group { s.continuation.resume(throwing: failure) }
      return
    }
    storeCommitted(.journal)
    if let b = receipt.backlog { backlog.store(b, ordering: .relaxed) }
    await waitForBacklog(receipt.backlog)
    var counted = Set<EventKey>()
    var total = ResolveStats()
    for s in group {
      let st = ResolveStats.journaled(s.batch, receipt, counted: &counted)
      total.add(st)
      s.continuation.resume(returning: st)
    }
    var report = GroupReport.empty
    report.requests = group.count
    report.events = total.events + total.duplicates
    report.stats = total
    onGroup?(report)
  }

  /// Holds a journaled group's answers while the journal is over `journalLimit` (the events are durable
  /// already; what waits is the answer, so clients slow down). Not once the server is closing.
  /// `known`: the backlog the append reported, which spares a query in the usual case (below the limit).
  func waitForBacklog(_ known: Int?) async {
    guard let limit = journalLimit else { return }
    if let known, known <= limit { return }
    while !state.withLock({ $0.closed }), let b = try? await store.journalBacklog(), b > limit {
      backlog.store(b, ordering: .relaxed)
      try? await Task.sleep(for: .milliseconds(50))
    }
  }
}

/// The live pipeline's commit sink: the store, and a report per transaction.
struct LiveSink: CommitSink {
  let store: any Store
  let pipeline: LivePipeline

  func commit(_ batch: CommitBatch) async throws {
    // The log's index rows are written behind the commits (`CommitBatch.indexesBehind`): an index page
    // dirtied by a few hundred scattered keys in every small transaction was most of the store's time.
    var behind = batch
    behind.indexesBehind = true
    do {
      try await store.commit(behind)
    } catch {
      // Degraded before the transaction's requests are answered, so they say when to come back.
      if case StoreError.stale = error {} else { pipeline.storeFailed(error) }
      throw error
    }
  }
  func committed(_ batch: CommitBatch, report: CommitReport) {
    pipeline.storeCommitted()
    pipeline.committed(batch, report)
  }
}

extension ResolveStats {
  /// What journaling `batch` did: its events that went in (each once, `counted` holding those of earlier
  /// batches of the same append) and those that were duplicates, its rejected records and invalid identifiers.
  static func journaled(_ batch: MappedBatch, _ receipt: JournalReceipt, counted: inout Set<EventKey>) -> ResolveStats {
    var st = ResolveStats()
    st.rejected = batch.rejected.count
    st.invalidIdentifiers = batch.invalidIdentifiers
    for e in batch.events {
      let key = EventKey(source: e.source, id: e.id)
      if receipt.appended.contains(key) && counted.insert(key).inserted { st.events += 1 } else { st.duplicates += 1 }
    }
    return st
  }
}

extension LivePipeline.GroupReport {
  static let empty = LivePipeline.GroupReport(
    requests: 0, events: 0, stats: ResolveStats(), resolveSeconds: 0, seconds: 0, profiles: 0)
}
