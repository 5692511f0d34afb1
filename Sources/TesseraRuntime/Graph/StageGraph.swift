import CoreMetrics
import Foundation
import Synchronization
import TesseraCompiler
import TesseraModel
import TesseraStore

/// The running pipeline: the one function that turns a `PipelinePlan` into a task group. Every stage of the
/// plan becomes one child task, or N (`Parallelism`), and every edge a bounded `Channel` (edges into the same
/// stage share its input channel and count separately). `tessera run`, `tessera serve`, `dry-run`, `replay`
/// and `tessera test` all run this graph; they differ in what feeds its source stages (files, HTTP requests,
/// the stored event log, samples) and in the sink of its commit stage (a store, a throwaway store).
///
/// Cancelling the run, or an error in any stage, closes every channel: each stage stops at its next batch,
/// and whatever the commit stage committed is whole.
public final class StageGraph: Sendable {
  public struct Options: Sendable {
    /// Decode workers per file source, and profile partitions.
    public var workers: Int
    /// How store transactions are cut.
    public var cut: CutPolicy
    /// The evaluation time (segments, windows); nil: the newest event time seen.
    public var now: Timestamp?
    /// Read the clock afresh for every batch (the server) instead of a fixed `now`.
    public var liveClock: Bool
    /// Reviewers' decisions to apply before the first event.
    public var decisions: [MatchLinkRecord]
    /// The clock tick after the last event (a run ends with one).
    public var tickAtEnd: Timestamp?
    /// Ask the store which events it already holds before resolving them (not needed for an empty store).
    public var checksStore: Bool
    /// Forget events once the store holds them (a server runs for long).
    public var forgets: Bool
    /// Hold back expiring identifiers' last-seen moves until the end of the input (a bulk run into a store
    /// that allows it: `PipelineStore.defersLastSeen`).
    public var defersLastSeen = false
    /// Where the graph reports its figures as metrics (the server's Prometheus registry); nil: nowhere.
    public var metrics: (any MetricsFactory)?
    /// What decoding maps of properties and context; nil: what the pipeline's stages read (`EventDemand`).
    public var demand: EventDemand?

    public init(
      workers: Int, cut: CutPolicy, now: Timestamp? = nil, liveClock: Bool = false, decisions: [MatchLinkRecord] = [],
      tickAtEnd: Timestamp? = nil, checksStore: Bool = true, forgets: Bool = false
    ) {
      self.workers = max(1, workers)
      self.cut = cut
      self.now = now
      self.liveClock = liveClock
      self.decisions = decisions
      self.tickAtEnd = tickAtEnd
      self.checksStore = checksStore
      self.forgets = forgets
      self.metrics = nil
    }
  }

  public let plan: PipelinePlan
  public let options: Options
  public let metrics: GraphMetrics
  public let counters: RunCounters
  /// Which sources this graph reads from readers (by index in the plan's sources); the others are fed
  /// through the intake.
  let fileSources: [Int]
  let identityIn: Channel<IdentityInput>
  let rejectedIn: Channel<RejectedBatch>
  let partitionsIn: [Channel<PartitionBatch>]
  let identityParts: Channel<IdentityPart>
  let profileParts: Channel<ProfilePart>
  let rawIn: [Int: Channel<RawBatch>]
  let handoffs = Handoffs()
  let progress = CommitProgress()
  let tickets = TicketBook()
  /// Whether the intake is used (its sends keep the identity stage's input open until `Intake.finish`).
  let fed: Bool

  /// `fileSources`: the plan's sources read by `SourceReader`s in `run`; `fed`: batches also arrive through
  /// `intake` (the server's requests, a replay's event log).
  public init(
    plan: PipelinePlan, options: Options, fileSources: [Int], fed: Bool, counters: RunCounters = RunCounters()
  ) {
    self.plan = plan
    self.options = options
    self.counters = counters
    self.fileSources = fileSources.sorted()
    self.fed = fed
    let n = options.workers
    let decoders = fileSources.count * n
    let producers = decoders + (fed ? 1 : 0)
    identityIn = Channel(capacity: 4 * n + 4, producers: max(1, producers))
    rejectedIn = Channel(capacity: 64, producers: max(1, producers))
    partitionsIn = (0..<n).map { _ in Channel(capacity: 8, producers: 1) }
    identityParts = Channel(capacity: 4, producers: 1)
    profileParts = Channel(capacity: 4 * n, producers: n)
    var raw: [Int: Channel<RawBatch>] = [:]
    for i in fileSources { raw[i] = Channel(capacity: 2 * n, producers: 1) }
    rawIn = raw
    metrics = GraphMetrics(plan: plan, factory: options.metrics)
    metrics.depth["resolve"] = { [identityIn] in identityIn.depth }
    metrics.depth["commit"] = { [rejectedIn, identityParts, profileParts] in
      let (a, b, c) = (rejectedIn.depth, identityParts.depth, profileParts.depth)
      return (a.batches + b.batches + c.batches, a.items + b.items + c.items)
    }
    metrics.depth["profile"] = { [partitionsIn] in
      partitionsIn.reduce((0, 0)) { ($0.0 + $1.depth.batches, $0.1 + $1.depth.items) }
    }
    for (i, c) in raw { metrics.depth["decode_\(plan.config.sources[i].name)"] = { c.depth } }
    if !(fed || decoders > 0) {
      // Nothing will ever send: the input ends at once.
      identityIn.finish()
      rejectedIn.finish()
    }
  }

  /// Where batches decoded outside the graph enter it: the requests of an `http` source (decoded on each
  /// request's task), a replay's event log. One producer: `finish()` once, when nothing more will come.
  public struct Intake: Sendable {
    let events: Channel<IdentityInput>
    let rejected: Channel<RejectedBatch>
    let eventEdges: [String: EdgeMeter]
    let rejectedEdges: [String: EdgeMeter]
    let tickets: TicketBook

    /// Hands a decoded batch of source `source` to the identity stage, and its rejected records to the commit
    /// stage. Returns the ticket that is answered once both are stored (nil when the graph has stopped).
    /// `answered: false` sends no ticket along (the journal's entries need no answer).
    @discardableResult
    public func submit(_ batch: MappedBatch, source: String, answered: Bool = true) async -> Ticket? {
      var b = batch
      let records = b.rejected
      b.rejected = []
      b.rejectedCount = records.count
      let hasEvents = !b.events.isEmpty || b.invalidIdentifiers > 0 || records.isEmpty
      let ticket = Ticket(parts: (hasEvents ? 1 : 0) + (records.isEmpty ? 0 : 1))
      if answered {
        b.ticket = ticket
        tickets.add(ticket)
      }
      if !records.isEmpty {
        guard await rejected.send(RejectedBatch(records: records, ticket: b.ticket), items: records.count) else {
          return nil
        }
        rejectedEdges[source]?.sent(records.count)
      }
      if hasEvents {
        guard await events.send(.events(b), items: b.events.count) else { return nil }
        eventEdges[source]?.sent(b.events.count)
      }
      return ticket
    }

    /// Sends an instruction to the identity stage (a tick, a cut, reviewers' decisions).
    @discardableResult
    public func send(_ instruction: IdentityInput) async -> Bool { await events.send(instruction, items: 0) }

    /// Nothing more will be submitted.
    public func finish() {
      events.finish()
      rejected.finish()
    }
  }

  public var intake: Intake {
    var e: [String: EdgeMeter] = [:]
    var r: [String: EdgeMeter] = [:]
    for s in plan.config.sources {
      e[s.name] = metrics.edge("decode_\(s.name)", "resolve")
      r[s.name] = metrics.edge("decode_\(s.name)", "commit")
    }
    return Intake(events: identityIn, rejected: rejectedIn, eventEdges: e, rejectedEdges: r, tickets: tickets)
  }

  /// Answers every ticket the graph took and has not answered (it stopped before their transaction).
  public func failOutstanding(_ outcome: Ticket.Outcome) { tickets.failAll(outcome) }

  /// Events waiting for the identity stage (the server's queue depth).
  public var waiting: (batches: Int, events: Int) {
    let d = identityIn.depth
    return (d.batches, d.items)
  }

  /// Runs the graph until its input ends (file sources read to the end and, when fed, the intake finished).
  /// `store` answers which events it already holds; `sink` receives every transaction.
  public func run(
    readers: [Int: any SourceReader], state: PipelineState, store: any Store, sink: any CommitSink
  ) async throws {
    let config = plan.config
    let n = options.workers
    let turns = SourceTurns()
    let seq = BatchNumbers()
    var identity = IdentityResolver(
      config: config, identity: state.identity, traits: state.restored.traits, now: options.now,
      separations: state.separations, suppressed: state.suppressed, sightings: state.sightings, partitions: n)
    identity.epoch = state.epoch
    identity.defersSeen = options.defersLastSeen
    let wallClock: @Sendable () -> Timestamp = { Timestamp(Date()) }
    let clock = options.liveClock ? wallClock : nil
    let identityStage = IdentityStage(
      resolver: identity, store: store, policy: options.cut, checksStore: options.checksStore,
      forgets: options.forgets, decisions: options.decisions, tickAtEnd: options.tickAtEnd, progress: progress,
      clock: clock)
    let commitStage = CommitStage(sink: sink, partitions: n, progress: progress, counters: counters)
    let metrics = self.metrics
    try await withThrowingTaskGroup(of: Void.self) { group in
      for stage in plan.stages {
        let meter = metrics.stage(stage.id)
        switch stage.kind {
        case .source:
          guard let i = sourceIndex(stage.id, prefix: "source_"), let raw = rawIn[i], let reader = readers[i] else {
            continue
          }
          let turn = fileSources.firstIndex(of: i) ?? 0
          let edge = metrics.edge(stage.id, "decode_\(config.sources[i].name)")
          let counters = self.counters
          let fed = self.fed
          group.addTask {
            try await meter.run {
              // A run reads its sources one after another, in declaration order, so batch numbers follow them;
              // a fed graph (the server) polls its table sources side by side until told to stop.
              if !fed { await turns.wait(turn) }
              defer {
                raw.finish()
                turns.done(turn)
              }
              let out = Outlet(raw, meter: meter, edge: edge)
              try await reader.read(source: i) { batch in
                var b = batch
                b.seq = seq.next()
                counters.read(b.records.count)
                try Task.checkCancellation()
                try await out.send(b, items: b.records.count)
              }
            }
          }
        case .decode:
          guard let i = sourceIndex(stage.id, prefix: "decode_"), let raw = rawIn[i] else { continue }
          let source = config.sources[i]
          let decode = DecodeStage(
            mapper: Mapper(
              source: source, config: config, receivedAt: options.now ?? Timestamp(Date()), demand: options.demand),
            signals: config.probabilistic.contains { $0.signals != nil } ? StreamingMatcher.signalsRead(config) : nil)
          let toResolve = metrics.edge(stage.id, "resolve")
          let toCommit = metrics.edge(stage.id, "commit")
          for _ in 0..<n {
            group.addTask { [identityIn, rejectedIn] in
              try await meter.run {
                defer {
                  identityIn.finish()
                  rejectedIn.finish()
                }
                try await decode.run(
                  Inlet(raw, meter: meter), Outlet(identityIn, meter: meter, edge: toResolve),
                  rejected: Outlet(rejectedIn, meter: meter, edge: toCommit))
              }
            }
          }
        case .resolve:
          let toProfile = metrics.edge("resolve", "profile")
          let toCommit = metrics.edge("resolve", "commit")
          group.addTask { [identityIn, partitionsIn, identityParts] in
            try await meter.run {
              try await identityStage.run(
                Inlet(identityIn, meter: meter), partitionsIn.map { Outlet($0, meter: meter, edge: toProfile) },
                commit: Outlet(identityParts, meter: meter, edge: toCommit))
            }
          }
        case .profile:
          let toCommit = metrics.edge("profile", "commit")
          for k in 0..<n {
            let stage = ProfileStage(
              partition: ProfilePartition(index: k, of: n, config: config, restored: state.restored),
              handoffs: handoffs)
            group.addTask { [partitionsIn, profileParts] in
              try await meter.run {
                try await stage.run(
                  Inlet(partitionsIn[k], meter: meter), Outlet(profileParts, meter: meter, edge: toCommit))
              }
            }
          }
        case .commit:
          group.addTask { [identityParts, profileParts, rejectedIn] in
            try await meter.run {
              try await commitStage.run(
                Inlet(identityParts, meter: meter), profiles: Inlet(profileParts, meter: meter),
                rejected: Inlet(rejectedIn, meter: meter))
            }
          }
        case .destination:
          // Delivered from the outbox by the delivery engine (`tessera serve`, `tessera deliver`).
          continue
        }
      }
      do {
        while try await group.next() != nil {}
      } catch {
        stop()
        throw error
      }
    }
  }

  /// Closes every channel and hand-over: every stage stops at its next batch.
  public func stop() {
    identityIn.close()
    rejectedIn.close()
    for c in partitionsIn { c.close() }
    identityParts.close()
    profileParts.close()
    for c in rawIn.values { c.close() }
    handoffs.close()
    progress.close()
  }

  func sourceIndex(_ id: String, prefix: String) -> Int? {
    plan.config.sources.firstIndex { prefix + $0.name == id }.flatMap { fileSources.contains($0) ? $0 : nil }
  }
}

/// The tickets a graph took, so that those it never answers (it stopped) can be answered with its failure.
final class TicketBook: Sendable {
  let tickets = Mutex<[Ticket]>([])
  func add(_ t: Ticket) {
    tickets.withLock { all in
      if all.count >= 1024 { all.removeAll { $0.isDone } }
      all.append(t)
    }
  }
  func failAll(_ outcome: Ticket.Outcome) {
    let all = tickets.withLock { t in
      defer { t = [] }
      return t
    }
    for t in all { t.fail(outcome) }
  }
}

/// Numbers the batches of a run's file sources, across sources, in read order.
final class BatchNumbers: Sendable {
  let n = Mutex(0)
  func next() -> Int {
    n.withLock { n in
      defer { n += 1 }
      return n
    }
  }
}

/// Lets file sources read one after another: source k starts when source k-1 is done.
final class SourceTurns: Sendable {
  let state = Mutex((done: 0, waiting: [(Int, CheckedContinuation<Void, Never>)]()))

  func wait(_ turn: Int) async {
    await withCheckedContinuation { (c: CheckedContinuation<Void, Never>) in
      let now = state.withLock { s -> Bool in
        if s.done >= turn { return true }
        s.waiting.append((turn, c))
        return false
      }
      if now { c.resume() }
    }
  }

  func done(_ turn: Int) {
    let ready = state.withLock { s -> [CheckedContinuation<Void, Never>] in
      s.done = max(s.done, turn + 1)
      let r = s.waiting.filter { $0.0 <= s.done }.map(\.1)
      s.waiting.removeAll { $0.0 <= s.done }
      return r
    }
    for c in ready { c.resume() }
  }
}

/// What the running graph did, per stage and per edge of its plan: read by the progress display, `/metrics`,
/// and the tests that compare what ran with the plan.
public final class GraphMetrics: Sendable {
  public let plan: PipelinePlan
  let stages: [String: StageMeter]
  let edges: [String: EdgeMeter]
  let depths = Mutex<[String: @Sendable () -> (batches: Int, items: Int)]>([:])
  let asked = Mutex<Set<String>>([])
  public let started = ContinuousClock.now

  /// Per stage: `tessera_stage_tasks`, `tessera_stage_queue_batches`, `tessera_stage_queue_items` (set by
  /// `refresh`).
  let gauges: [String: (tasks: Gauge, batches: Gauge, items: Gauge)]

  init(plan: PipelinePlan, factory: (any MetricsFactory)? = nil) {
    self.plan = plan
    var s: [String: StageMeter] = [:]
    var g: [String: (tasks: Gauge, batches: Gauge, items: Gauge)] = [:]
    for stage in plan.stages {
      let busy = factory.map {
        FloatingPointCounter(label: "tessera_stage_busy_seconds_total", dimensions: [("stage", stage.id)], factory: $0)
      }
      s[stage.id] = StageMeter(busyCounter: busy)
      if let factory {
        let d = [("stage", stage.id)]
        g[stage.id] = (
          Gauge(label: "tessera_stage_tasks", dimensions: d, factory: factory),
          Gauge(label: "tessera_stage_queue_batches", dimensions: d, factory: factory),
          Gauge(label: "tessera_stage_queue_items", dimensions: d, factory: factory)
        )
      }
    }
    stages = s
    gauges = g
    var e: [String: EdgeMeter] = [:]
    for edge in plan.edges {
      let counter = factory.map {
        Counter(
          label: "tessera_edge_items_total", dimensions: [("from", edge.from), ("to", edge.to)], factory: $0)
      }
      e["\(edge.from)->\(edge.to)"] = EdgeMeter(counter: counter)
    }
    edges = e
  }

  /// Sets the stage gauges (tasks, what waits at each stage's input) to their values now.
  public func refresh() {
    guard !gauges.isEmpty else { return }
    for f in figures() {
      guard let g = gauges[f.id] else { continue }
      g.tasks.record(f.tasks)
      g.batches.record(f.queuedBatches)
      g.items.record(f.queuedItems)
    }
  }

  var depth: Depths { Depths(metrics: self) }
  struct Depths {
    let metrics: GraphMetrics
    subscript(_ stage: String) -> (@Sendable () -> (batches: Int, items: Int))? {
      get { metrics.depths.withLock { $0[stage] } }
      nonmutating set { metrics.depths.withLock { $0[stage] = newValue } }
    }
  }

  /// The meter of a stage of the plan (a stage the plan lacks gets a meter of its own that nothing reads).
  public func stage(_ id: String) -> StageMeter {
    if let m = stages[id] { return m }
    asked.withLock { _ = $0.insert(id) }
    return StageMeter()
  }

  /// The meter of an edge of the plan (an edge the plan lacks gets one of its own, and is noted).
  public func edge(_ from: String, _ to: String) -> EdgeMeter {
    if let m = edges["\(from)->\(to)"] { return m }
    asked.withLock { _ = $0.insert("\(from)->\(to)") }
    return EdgeMeter()
  }

  /// Stages and edges the running graph used that the plan does not name (none, when the plan tells the truth).
  public var unplanned: Set<String> { asked.withLock { $0 } }

  /// One stage as it stands: tasks started, items it sent on, what waits at its input, how busy its tasks were.
  public struct StageFigures: Sendable, Hashable {
    public var id: String
    public var tasks: Int
    /// Items it sent on its outgoing edges (for a stage without any, the items it took in).
    public var itemsOut: Int
    public var queuedBatches: Int
    public var queuedItems: Int
    /// Busy seconds over task-seconds since the graph started (0…1).
    public var busy: Double
  }

  public func figures() -> [StageFigures] {
    let elapsed = max(1e-6, (ContinuousClock.now - started) / .seconds(1))
    let depths = self.depths.withLock { $0 }
    return plan.stages.map { s in
      let meter = stage(s.id)
      let outgoing = plan.edges.filter { $0.from == s.id }
      let counted = outgoing.isEmpty ? plan.edges.filter { $0.to == s.id } : outgoing
      let out = counted.reduce(0) { $0 + edge($1.from, $1.to).items }
      let d = depths[s.id]?() ?? (batches: 0, items: 0)
      let tasks = meter.tasks
      return StageFigures(
        id: s.id, tasks: tasks, itemsOut: out, queuedBatches: d.batches, queuedItems: d.items,
        busy: tasks == 0 ? 0 : min(1, meter.busySeconds / (elapsed * Double(tasks))))
    }
  }

  /// Items through each edge of the plan, by `from->to`.
  public func edgeItems() -> [String: Int] { edges.mapValues(\.items) }
}
