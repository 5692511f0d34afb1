import AsyncAlgorithms
import Foundation
import Synchronization
import TesseraCompiler
import TesseraModel
import TesseraStore

extension Resolver {
  /// A resolver holding the state a store has: the identity graph, trait summaries, computed traits, segment
  /// memberships, separations and suppressions. `tessera run` and `tessera serve` both start from it.
  public static func restored(config: PipelineConfig, from store: any Store, now: Timestamp?) async throws -> Resolver {
    // The epoch first: a change after it and before the reads makes the first commit stale, never silently lost.
    let epoch = try await store.epoch()
    var r = Resolver(
      config: config, identity: try await store.loadIdentity(), traits: try await store.loadTraits(),
      computed: try await store.loadComputed(), memberships: try await store.loadMemberships(), now: now,
      separations: try await store.loadSeparations(), suppressed: try await store.loadSuppressions())
    r.epoch = epoch
    return r
  }

  /// Forgets events resolved earlier. The live pipeline calls it once they are committed: from then on the
  /// store recognises them, so the set of seen events does not grow for the life of a server.
  mutating func forget(_ keys: [EventKey]) {
    seen.subtract(keys)
  }
}

/// The long-running pipeline behind `tessera serve`: mapped events arrive from many requests at once, one task
/// resolves them through the single-writer `Resolver` and commits them, and each request resumes only when its
/// events are in the store.
///
/// **Group commit.** Requests append their batch to a queue and wait. The writer takes everything queued,
/// resolves each request's batch in arrival order, and commits all of them in one store transaction; while it
/// commits, new requests queue up and become the next group. Under load a transaction holds many requests;
/// alone, a request is committed at once. Nothing is acknowledged before its transaction has committed.
///
/// **De-duplication.** Before resolving a group the writer asks the store which of its events it already
/// holds; the resolver also skips repeats within the group (a retried batch sent twice at once). Both count
/// as duplicates: accepted, stored once.
///
/// **Several processes, one store** (PostgreSQL, or a SQLite file on one machine). One process at a time is
/// the store's *writer* (`Store.acquireWriter`); the others are *followers*: they acknowledge a group once it
/// is appended to the store's journal (durable, de-duplicated against the events and the journal), and the writer resolves the
/// journal in the order it was appended, deleting each entry in the transaction that stores its event. A
/// follower asks for the writer role every `writerRetry`; when the writer dies its session's lock goes with
/// it, a follower takes over, reads the state from the store and carries on with the journal.
///
/// **Staleness.** The resolver carries the store's epoch; a commit the store refuses as stale (a person
/// erased by another process, a replay, a new writer) is not failed: its requests go back to the front of the
/// queue, the resolver is read again from the store — or, when the writer role is gone, this process becomes
/// a follower and journals them.
///
/// **Deletion** runs on the writer between groups, so no event of the person can be in flight; the resolver is
/// then rebuilt from the store (which now suppresses the person's identifiers). A follower erases in the store
/// directly; the writer learns of it from the epoch. A failed commit also rebuilds the resolver, so its
/// in-memory state never runs ahead of what is stored.
public final class LivePipeline: Sendable {
  /// What a group did, for metrics.
  public struct GroupReport: Sendable {
    public var requests: Int
    public var events: Int
    public var stats: ResolveStats
    /// Resolving the group (duplicate check, resolve, reconcile, encoding the rows).
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
    /// The store refused the group's transaction; nothing of it was stored.
    case store(String)
    public var description: String {
      switch self {
      case .closed: return "the server is shutting down"
      case .store(let m): return "the store could not commit: \(m)"
      }
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
  struct DeletionRequest: Sendable {
    var person: String
    var continuation: CheckedContinuation<Deletion.Outcome?, any Error>
  }
  struct State: Sendable {
    var queue: [Submission] = []
    var queuedEvents = 0
    /// Requests waiting for the journal (acknowledge `journaled`).
    var intake: [Submission] = []
    var deletions: [DeletionRequest] = []
    var tickDue = false
    var journalDue = false
    var closed = false
    var role = Role.starting
    /// Set by `close()`: the journal is resolved until then (a round in progress stops at its next chunk),
    /// and what is left waits for the next writer.
    var journalDeadline: ContinuousClock.Instant?
  }
  /// Why the committer stopped committing until the resolver is read again.
  enum Poison: Sendable {
    case none
    /// A commit failed: later groups fail too.
    case failed
    /// A commit was stale: it and later groups go back to the queue.
    case stale
  }

  public let config: PipelineConfig
  public let store: any Store
  let state = Mutex(State())
  let doorbell: AsyncStream<Void>
  let ring: AsyncStream<Void>.Continuation
  /// Wakes the task that journals the intake (acknowledge `journaled`).
  let intakeBell: AsyncStream<Void>
  let ringIntake: AsyncStream<Void>.Continuation
  public let acknowledge: Acknowledge
  let onGroup: (@Sendable (GroupReport) -> Void)?
  /// Told when this process becomes the writer or a follower.
  let onRole: (@Sendable (Role) -> Void)?
  /// Set by the committer when a transaction fails; cleared once the resolver is rebuilt from the store.
  let poisoned = Mutex(Poison.none)
  /// How often computed-trait windows are expired and the profiles whose values fell re-evaluated
  /// (`Resolver.tick()`, what `tessera run` does at the end of a run); nil: never.
  let tickEvery: Duration?
  /// How often the writer looks for journaled events (and a follower asks for the writer role, at most every
  /// `writerRetry`).
  let journalEvery: Duration
  let writerRetry: Duration
  /// Entries read from the journal at a time (one resolved group; on SQLite also how long a resolution
  /// transaction holds the write lock that journal appends wait for).
  let journalChunk: Int
  /// How long the writer goes on resolving the journal after `close()`. The journal is durable, so what is
  /// left is resolved by the next writer (this process's next start, or a follower taking over); a backlog
  /// of a million events would otherwise hold a shutdown for a minute.
  let journalGrace: Duration
  /// Journaled events waiting for the writer past which a journaling request is answered only once the
  /// writer has caught up below it (nil: no limit). Without it, a sustained rate above what resolution
  /// keeps up with grows the journal until the disk is full; with it, the SDKs see slower answers and send
  /// less, as from any saturated collector.
  let journalLimit: Int?
  /// The journal's backlog as last seen: from each append's receipt, and read from the store every second.
  let backlog = Atomic<Int>(0)

  public init(
    config: PipelineConfig, store: any Store, tickEvery: Duration? = .seconds(60),
    journalEvery: Duration = .milliseconds(100), writerRetry: Duration = .seconds(1),
    acknowledge: Acknowledge = .resolved, journalChunk: Int = 4096, journalGrace: Duration = .seconds(5),
    journalLimit: Int? = 1_000_000, onRole: (@Sendable (Role) -> Void)? = nil,
    onGroup: (@Sendable (GroupReport) -> Void)? = nil
  ) {
    self.onRole = onRole
    self.acknowledge = acknowledge
    self.journalChunk = max(1, journalChunk)
    self.journalGrace = journalGrace
    self.journalLimit = journalLimit
    (intakeBell, ringIntake) = AsyncStream.makeStream(of: Void.self, bufferingPolicy: .bufferingNewest(1))
    self.config = config
    self.store = store
    self.onGroup = onGroup
    self.tickEvery = tickEvery
    self.journalEvery = journalEvery
    self.writerRetry = writerRetry
    (doorbell, ring) = AsyncStream.makeStream(of: Void.self, bufferingPolicy: .bufferingNewest(1))
  }

  /// Requests and events waiting for the writer.
  public var queueDepth: (requests: Int, events: Int) {
    state.withLock { ($0.queue.count + $0.intake.count, $0.queuedEvents) }
  }

  /// Whether this process is the store's writer now.
  public var role: Role { state.withLock { $0.role } }

  /// Journaled events waiting for the writer, as last seen (at most a second old; `Store.journalBacklog`).
  public var journalBacklog: Int { backlog.load(ordering: .relaxed) }

  /// Stores a mapped batch (events and rejected records) and returns once it is committed, with what the
  /// resolver did to it (`events` stored, `duplicates`, `suppressed`, `rejected`). On a follower, `events` are
  /// those journaled for the writer; suppression is decided when the writer resolves them.
  public func submit(_ batch: MappedBatch) async throws -> ResolveStats {
    try await withCheckedThrowingContinuation { (c: CheckedContinuation<ResolveStats, any Error>) in
      let journaled = acknowledge == .journaled
      let accepted = state.withLock { s in
        guard !s.closed else { return false }
        if journaled {
          s.intake.append(Submission(batch: batch, continuation: c))
        } else {
          s.queue.append(Submission(batch: batch, continuation: c))
        }
        s.queuedEvents += batch.events.count
        return true
      }
      if !accepted {
        c.resume(throwing: Failure.closed)
      } else if journaled {
        ringIntake.yield()
      } else {
        ring.yield()
      }
    }
  }

  /// Erases the person `person` (`kind:value` or a profile id) between two groups; nil when no profile matches.
  public func delete(_ person: String) async throws -> Deletion.Outcome? {
    try await withCheckedThrowingContinuation { (c: CheckedContinuation<Deletion.Outcome?, any Error>) in
      let accepted = state.withLock { s in
        guard !s.closed else { return false }
        s.deletions.append(DeletionRequest(person: person, continuation: c))
        return true
      }
      if accepted { ring.yield() } else { c.resume(throwing: Failure.closed) }
    }
  }

  /// Stops taking events; `run()` commits what is queued and returns.
  public func close() {
    state.withLock {
      $0.closed = true
      $0.journalDeadline = .now + journalGrace
    }
    ringIntake.finish()
    ring.finish()
  }

  /// What the resolver hands the committer.
  enum Work: Sendable {
    /// A resolved group: its rows, the requests waiting for it and what the resolver did to each.
    case group(ResolvedBatch, [Submission], [ResolveStats], GroupReport)
    /// Answered once everything handed over before it is committed (or failed).
    case flush(AsyncStream<Void>.Continuation)
  }

  /// The resolver's side of the writer: the resolver, and the keys and journal entries of the group the
  /// committer may still hold.
  struct Writer: Sendable {
    var resolver: Resolver
    var inFlight: [EventKey] = []
    var inFlightJournal: Set<Int64> = []
    /// The writer role is gone (a stale commit, and the store gave the role to another process).
    var lost = false
  }

  /// The writer: runs until `close()`, then drains the queue and returns.
  ///
  /// Two tasks: this one resolves group N + 1 while the committer task encodes and commits group N (SQLite
  /// takes about three quarters of the work, so resolving in its shadow uses the second core). The channel
  /// between them holds nothing: a hand-over waits for the previous commit, so at most one group is resolved
  /// ahead of the store. If a commit fails, the committer fails every later group it is handed until the
  /// resolver has been rebuilt from the store (the later groups were resolved on top of the failed one).
  public func run() async throws {
    guard acknowledge == .journaled else { return try await runWriter(lane: nil) }
    // Acknowledging after the journal: what is journaled is durable, so resolving it can wait while
    // requests are being answered. The resolver and its commits run on a lane of lower priority; the
    // requests' parsing and journal appends keep the rest of the CPU.
    let lane = BackgroundLane()
    defer { lane.stop() }
    try await withTaskExecutorPreference(lane) { try await runWriter(lane: lane) }
  }

  func runWriter(lane: BackgroundLane?) async throws {
    var writer: Writer? = nil
    var lastAsked = ContinuousClock.now
    if try await store.acquireWriter() {
      writer = Writer(resolver: try await Resolver.restored(config: config, from: store, now: Timestamp(Date())))
    }
    become(writer == nil ? .follower : .writer)
    let work = AsyncChannel<Work>()
    let committer = Task(executorPreference: lane) { await self.commitLoop(work) }
    let acceptor = Task(executorPreference: globalConcurrentExecutor) { [self] in
      for await _ in intakeBell { await accept() }
      await accept()
    }
    var timers: [Task<Void, Never>] = []
    func every(_ period: Duration, _ mark: @escaping @Sendable (inout State) -> Void) -> Task<Void, Never> {
      Task { [self] in
        while !Task.isCancelled {
          try? await Task.sleep(for: period)
          state.withLock { mark(&$0) }
          ring.yield()
        }
      }
    }
    if let tickEvery { timers.append(every(tickEvery) { $0.tickDue = true }) }
    timers.append(every(journalEvery) { $0.journalDue = true })
    timers.append(
      Task { [self] in
        while !Task.isCancelled {
          if let b = try? await store.journalBacklog() { backlog.store(b, ordering: .relaxed) }
          try? await Task.sleep(for: .seconds(1))
        }
      })
    defer { for t in timers { t.cancel() } }
    for await _ in doorbell {
      if writer == nil && ContinuousClock.now - lastAsked >= writerRetry {
        lastAsked = ContinuousClock.now
        writer = await promote()
      }
      await drain(&writer, work)
    }
    // Closed: whatever was queued before the door shut is committed too (a stale group comes back to the
    // queue once; after a few rounds anything left is refused rather than left waiting). What was journaled
    // is resolved for up to `journalGrace`; the rest waits in the store for the next writer.
    await acceptor.value
    if writer != nil { state.withLock { $0.journalDue = true } }
    for _ in 0..<5 {
      await drain(&writer, work)
      await flush(work)
      if state.withLock({ $0.queue.isEmpty && $0.deletions.isEmpty }) { break }
    }
    let (left, leftDeletions) = state.withLock { s in
      defer {
        s.queue = []
        s.deletions = []
      }
      return (s.queue, s.deletions)
    }
    for s in left { s.continuation.resume(throwing: Failure.closed) }
    for d in leftDeletions { d.continuation.resume(throwing: Failure.closed) }
    work.finish()
    await committer.value
  }

  func become(_ role: Role) {
    state.withLock { $0.role = role }
    onRole?(role)
  }

  /// Asks for the writer role; the resolver read from the store when it is granted.
  func promote() async -> Writer? {
    guard (try? await store.acquireWriter()) == true,
      let resolver = try? await Resolver.restored(config: config, from: store, now: Timestamp(Date()))
    else { return nil }
    become(.writer)
    return Writer(resolver: resolver)
  }

  /// Waits until every group handed over so far is committed (or failed).
  func flush(_ work: AsyncChannel<Work>) async {
    let (done, signal) = AsyncStream.makeStream(of: Void.self)
    await work.send(.flush(signal))
    for await _ in done { break }
  }

  /// Commits groups until the queue is empty; runs the tick, the journal and the waiting deletions between
  /// groups. A follower journals the groups instead.
  func drain(_ writer: inout Writer?, _ work: AsyncChannel<Work>) async {
    while true {
      let (group, deletions, tickDue, journalDue) = state.withLock { s in
        defer {
          s.queuedEvents -= s.queue.reduce(0) { $0 + $1.batch.events.count }
          s.queue.removeAll(keepingCapacity: true)
          s.deletions.removeAll()
          s.tickDue = false
          s.journalDue = false
        }
        return (s.queue, s.deletions, s.tickDue, s.journalDue)
      }
      if group.isEmpty && deletions.isEmpty && !tickDue && !journalDue { return }
      guard var w = writer else {
        if !group.isEmpty { await journal(group) }
        for d in deletions { _ = await erase(d) }
        continue
      }
      // `w` is the only copy while it changes (a second reference would make the resolver copy itself).
      writer = nil
      // A commit that failed after its hand-over returned is noticed here, before anything else is resolved on
      // top of it (otherwise the journal entries it held would stay "in flight" and never be read again).
      await recoverIfFailed(&w, work)
      if w.lost {
        // Another process is the writer now: what was taken goes back, to be journaled as a follower.
        requeue(group)
        state.withLock { $0.deletions.insert(contentsOf: deletions, at: 0) }
        become(.follower)
        continue
      }
      if !group.isEmpty { await resolve(group, &w, work) }
      if journalDue && !w.lost { await resolveJournal(&w, work) }
      if tickDue && !w.lost {
        w.resolver.now = Timestamp(Date())
        let t = ResolvedBatch(commit: w.resolver.tick(), stats: ResolveStats(), pending: [])
        if !t.commit.isEmpty { await handOver(t, [], [], GroupReport.empty, &w, work) }
      }
      if !deletions.isEmpty && !w.lost {
        // No event may be in flight while a person is erased: the store must hold everything resolved so far.
        await flush(work)
        await recoverIfFailed(&w, work)
        for d in deletions where await erase(d) { await rebuild(&w.resolver) }
        w.inFlight = []
        w.inFlightJournal = []
      } else if !deletions.isEmpty {
        state.withLock { $0.deletions.insert(contentsOf: deletions, at: 0) }
      }
      if w.lost {
        // Everything handed over has been answered or sent back to the queue: journal it from now on.
        await flush(work)
        writer = nil
        become(.follower)
      } else {
        writer = w
      }
    }
  }

  /// Journals the intake until it is empty, then tells the writer there is something to resolve.
  func accept() async {
    while true {
      let group = state.withLock { s in
        defer {
          s.queuedEvents -= s.intake.reduce(0) { $0 + $1.batch.events.count }
          s.intake.removeAll(keepingCapacity: true)
        }
        return s.intake
      }
      if group.isEmpty { return }
      await journal(group)
      state.withLock { $0.journalDue = true }
      ring.yield()
    }
  }

  /// A follower's group: appended to the journal in one transaction, each request answered with its share.
  func journal(_ group: [Submission]) async {
    let receipt: JournalReceipt
    do {
      receipt = try await store.appendJournal(
        group.flatMap(\.batch.events), rejected: group.flatMap(\.batch.rejected))
    } catch {
      for s in group { s.continuation.resume(throwing: Failure.store(String(describing: error))) }
      return
    }
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

  /// Resolves a group in arrival order and hands it to the committer.
  func resolve(_ group: [Submission], _ writer: inout Writer, _ work: AsyncChannel<Work>) async {
    let started = ContinuousClock.now
    var keys: [EventKey] = []
    for s in group { for e in s.batch.events { keys.append(EventKey(source: e.source, id: e.id)) } }
    let stored: Set<EventKey>
    do {
      stored = keys.isEmpty ? [] : try await store.existingEvents(keys)
    } catch {
      for s in group { s.continuation.resume(throwing: Failure.store(String(describing: error))) }
      return
    }
    writer.resolver.now = Timestamp(Date())
    var gathered: ResolvedBatch?
    var stats: [ResolveStats] = []
    stats.reserveCapacity(group.count)
    for s in group {
      let r = writer.resolver.resolve(s.batch, stored: stored)
      stats.append(r.stats)
      if gathered == nil { gathered = r } else { gathered?.append(r) }
    }
    guard let g = gathered else { return }
    var report = GroupReport.empty
    report.requests = group.count
    report.events = keys.count
    report.resolveSeconds = Self.seconds(ContinuousClock.now - started)
    await handOver(g, group, stats, report, &writer, work, keys: keys)
  }

  /// Resolves what followers journaled, oldest first, a chunk per group; entries the committer still holds
  /// are left for the next round.
  func resolveJournal(_ writer: inout Writer, _ work: AsyncChannel<Work>) async {
    // Each round reads from the oldest entry (on PostgreSQL an entry can commit after one with a higher
    // `seq`), then on after the last entry read: the entries the committer still holds are resolved already,
    // and a chunk holding only those must not end the round while more wait behind them.
    var after: Int64? = nil
    while !writer.lost {
      let started = ContinuousClock.now
      if let deadline = state.withLock({ $0.journalDeadline }), started >= deadline { return }
      let entries: [JournalEntry]
      let stored: Set<EventKey>
      let fresh: [JournalEntry]
      do {
        entries = try await store.readJournal(limit: journalChunk, after: after)
        after = entries.last?.seq
        fresh = entries.filter { !writer.inFlightJournal.contains($0.seq) }
        if fresh.isEmpty {
          if entries.count < journalChunk { return }
          continue
        }
        stored = try await store.existingEvents(fresh.map { EventKey(source: $0.event.source, id: $0.event.id) })
      } catch {
        return  // the next round tries again; nothing was taken
      }
      writer.resolver.now = Timestamp(Date())
      let batch = MappedBatch(seq: 0, events: fresh.map(\.event), rejected: [], invalidIdentifiers: 0)
      var r = writer.resolver.resolve(batch, stored: stored)
      r.commit.journalDone = fresh.map(\.seq)
      var report = GroupReport.empty
      report.events = fresh.count
      report.journaled = fresh.count
      report.resolveSeconds = Self.seconds(ContinuousClock.now - started)
      let keys = fresh.map { EventKey(source: $0.event.source, id: $0.event.id) }
      await handOver(r, [], [], report, &writer, work, keys: keys, journal: Set(fresh.map(\.seq)))
      if entries.count < journalChunk { return }
      // Requests of this process (or deletions) waiting: serve them first and come back to the journal
      // after. While followers kept the journal fuller than a chunk, this loop held the writer's own
      // requests for seconds.
      let waiting = state.withLock { s in
        if s.queue.isEmpty && s.deletions.isEmpty { return false }
        s.journalDue = true
        return true
      }
      if waiting { return }
    }
  }

  /// Reconciles a resolved batch with the graph and hands it over; when the hand-over returns the previous
  /// group is committed, so its events are the store's to recognise from then on.
  func handOver(
    _ batch: ResolvedBatch, _ group: [Submission], _ stats: [ResolveStats], _ report: GroupReport,
    _ writer: inout Writer, _ work: AsyncChannel<Work>, keys: [EventKey] = [], journal: Set<Int64> = []
  ) async {
    var b = batch
    b.reconcile(with: writer.resolver.graph)
    var r = report
    r.profiles = writer.resolver.graph.profileCount
    await work.send(.group(b, group, stats, r))
    writer.resolver.forget(writer.inFlight)
    writer.inFlight = keys
    writer.inFlightJournal = journal
    await recoverIfFailed(&writer, work)
  }

  /// After a failed or stale commit: waits for the committer to answer what it holds, then rebuilds the
  /// resolver — or, when the commit was stale because another process is the writer now, marks the role lost.
  func recoverIfFailed(_ writer: inout Writer, _ work: AsyncChannel<Work>) async {
    let poison = poisoned.withLock { $0 }
    guard poison != .none else { return }
    await flush(work)
    if poison == .stale, (try? await store.acquireWriter()) != true {
      writer.lost = true
    } else {
      await rebuild(&writer.resolver)
    }
    writer.inFlight = []
    writer.inFlightJournal = []
    poisoned.withLock { $0 = .none }
  }

  /// The committer: encodes and commits each group, then answers its requests.
  func commitLoop(_ work: AsyncChannel<Work>) async {
    for await item in work {
      switch item {
      case .flush(let signal):
        signal.yield()
        signal.finish()
      case .group(let batch, let group, let stats, var report):
        switch poisoned.withLock({ $0 }) {
        case .none: break
        case .failed:
          for s in group { s.continuation.resume(throwing: Failure.store("an earlier group failed to commit")) }
          continue
        case .stale:
          requeue(group)
          continue
        }
        let started = ContinuousClock.now
        do {
          let commit = batch.finished()
          if !commit.isEmpty { try await store.commit(commit) }
        } catch StoreError.stale {
          poisoned.withLock { $0 = .stale }
          requeue(group)
          continue
        } catch {
          poisoned.withLock { $0 = .failed }
          for s in group { s.continuation.resume(throwing: Failure.store(String(describing: error))) }
          continue
        }
        for (s, st) in zip(group, stats) { s.continuation.resume(returning: st) }
        report.stats = batch.stats
        report.seconds = Self.seconds(ContinuousClock.now - started)
        onGroup?(report)
      }
    }
  }

  /// Puts requests back at the front of the queue (their group was resolved on state the store no longer has).
  func requeue(_ group: [Submission]) {
    guard !group.isEmpty else { return }
    state.withLock { s in
      s.queue.insert(contentsOf: group, at: 0)
      s.queuedEvents += group.reduce(0) { $0 + $1.batch.events.count }
    }
    ring.yield()
  }

  static func seconds(_ d: Duration) -> Double {
    Double(d.components.seconds) + Double(d.components.attoseconds) / 1e18
  }

  /// Erases a person in the store and answers the request; true when something was erased.
  func erase(_ d: DeletionRequest) async -> Bool {
    do {
      guard let profile = try await PersonLookup.resolve(d.person, in: store, config: config) else {
        d.continuation.resume(returning: nil)
        return false
      }
      let outcome = try await Deletion.erase(profile, in: store, config: config, at: Timestamp(Date()))
      d.continuation.resume(returning: outcome)
      return true
    } catch {
      d.continuation.resume(throwing: error)
      return false
    }
  }

  /// Replaces the resolver by one restored from the store; keeps the old one if the store cannot be read.
  func rebuild(_ resolver: inout Resolver) async {
    if let fresh = try? await Resolver.restored(config: config, from: store, now: Timestamp(Date())) {
      resolver = fresh
    }
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
