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
    Resolver(
      config: config, identity: try await store.loadIdentity(), traits: try await store.loadTraits(),
      computed: try await store.loadComputed(), memberships: try await store.loadMemberships(), now: now,
      separations: try await store.loadSeparations(), suppressed: try await store.loadSuppressions())
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
/// **Deletion** runs on the writer between groups, so no event of the person can be in flight; the resolver is
/// then rebuilt from the store (which now suppresses the person's identifiers). A failed commit also rebuilds
/// it, so its in-memory state never runs ahead of what is stored.
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
    var deletions: [DeletionRequest] = []
    var tickDue = false
    var closed = false
  }

  public let config: PipelineConfig
  public let store: any Store
  let state = Mutex(State())
  let doorbell: AsyncStream<Void>
  let ring: AsyncStream<Void>.Continuation
  let onGroup: (@Sendable (GroupReport) -> Void)?
  /// Set by the committer when a transaction fails; cleared once the resolver is rebuilt from the store.
  let poisoned = Mutex(false)
  /// How often computed-trait windows are expired and the profiles whose values fell re-evaluated
  /// (`Resolver.tick()`, what `tessera run` does at the end of a run); nil: never.
  let tickEvery: Duration?

  public init(
    config: PipelineConfig, store: any Store, tickEvery: Duration? = .seconds(60),
    onGroup: (@Sendable (GroupReport) -> Void)? = nil
  ) {
    self.config = config
    self.store = store
    self.onGroup = onGroup
    self.tickEvery = tickEvery
    (doorbell, ring) = AsyncStream.makeStream(of: Void.self, bufferingPolicy: .bufferingNewest(1))
  }

  /// Requests and events waiting for the writer.
  public var queueDepth: (requests: Int, events: Int) {
    state.withLock { ($0.queue.count, $0.queuedEvents) }
  }

  /// Stores a mapped batch (events and rejected records) and returns once it is committed, with what the
  /// resolver did to it (`events` stored, `duplicates`, `suppressed`, `rejected`).
  public func submit(_ batch: MappedBatch) async throws -> ResolveStats {
    try await withCheckedThrowingContinuation { (c: CheckedContinuation<ResolveStats, any Error>) in
      let accepted = state.withLock { s in
        guard !s.closed else { return false }
        s.queue.append(Submission(batch: batch, continuation: c))
        s.queuedEvents += batch.events.count
        return true
      }
      if accepted { ring.yield() } else { c.resume(throwing: Failure.closed) }
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
    state.withLock { $0.closed = true }
    ring.finish()
  }

  /// What the resolver hands the committer.
  enum Work: Sendable {
    /// A resolved group: its rows, the requests waiting for it and what the resolver did to each.
    case group(ResolvedBatch, [Submission], [ResolveStats], events: Int, resolveSeconds: Double, profiles: Int)
    /// Answered once everything handed over before it is committed (or failed).
    case flush(AsyncStream<Void>.Continuation)
  }

  /// The resolver's side of the writer: the resolver, and the keys of the group the committer may still hold.
  struct Writer: Sendable {
    var resolver: Resolver
    var inFlight: [EventKey] = []
  }

  /// The writer: runs until `close()`, then drains the queue and returns.
  ///
  /// Two tasks: this one resolves group N + 1 while the committer task encodes and commits group N (SQLite
  /// takes about three quarters of the work, so resolving in its shadow uses the second core). The channel
  /// between them holds nothing: a hand-over waits for the previous commit, so at most one group is resolved
  /// ahead of the store. If a commit fails, the committer fails every later group it is handed until the
  /// resolver has been rebuilt from the store (the later groups were resolved on top of the failed one).
  public func run() async throws {
    var writer = Writer(resolver: try await Resolver.restored(config: config, from: store, now: Timestamp(Date())))
    let work = AsyncChannel<Work>()
    let committer = Task { await self.commitLoop(work) }
    let ticker = tickEvery.map { every in
      Task { [self] in
        while !Task.isCancelled {
          try? await Task.sleep(for: every)
          state.withLock { $0.tickDue = true }
          ring.yield()
        }
      }
    }
    defer { ticker?.cancel() }
    for await _ in doorbell {
      await drain(&writer, work)
    }
    // Closed: whatever was queued before the door shut is committed too.
    await drain(&writer, work)
    await flush(work)
    work.finish()
    await committer.value
  }

  /// Waits until every group handed over so far is committed (or failed).
  func flush(_ work: AsyncChannel<Work>) async {
    let (done, signal) = AsyncStream.makeStream(of: Void.self)
    await work.send(.flush(signal))
    for await _ in done { break }
  }

  /// Commits groups until the queue is empty; runs the tick and the waiting deletions between groups.
  func drain(_ writer: inout Writer, _ work: AsyncChannel<Work>) async {
    while true {
      let (group, deletions, tickDue) = state.withLock { s in
        defer {
          s.queue.removeAll(keepingCapacity: true)
          s.queuedEvents = 0
          s.deletions.removeAll()
          s.tickDue = false
        }
        return (s.queue, s.deletions, s.tickDue)
      }
      if group.isEmpty && deletions.isEmpty && !tickDue { return }
      if !group.isEmpty { await resolve(group, &writer, work) }
      if tickDue {
        writer.resolver.now = Timestamp(Date())
        let t = ResolvedBatch(commit: writer.resolver.tick(), stats: ResolveStats(), pending: [])
        if !t.commit.isEmpty { await handOver(t, [], [], 0, 0, &writer, work) }
      }
      if !deletions.isEmpty {
        // No event may be in flight while a person is erased: the store must hold everything resolved so far.
        await flush(work)
        await recoverIfFailed(&writer, work)
        for d in deletions { await erase(d, &writer.resolver) }
        writer.inFlight = []
      }
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
    let seconds = Self.seconds(ContinuousClock.now - started)
    await handOver(g, group, stats, keys.count, seconds, &writer, work, keys: keys)
  }

  /// Reconciles a resolved batch with the graph and hands it over; when the hand-over returns the previous
  /// group is committed, so its events are the store's to recognise from then on.
  func handOver(
    _ batch: ResolvedBatch, _ group: [Submission], _ stats: [ResolveStats], _ events: Int, _ seconds: Double,
    _ writer: inout Writer, _ work: AsyncChannel<Work>, keys: [EventKey] = []
  ) async {
    var b = batch
    b.reconcile(with: writer.resolver.graph)
    let profiles = writer.resolver.graph.profileCount
    await work.send(.group(b, group, stats, events: events, resolveSeconds: seconds, profiles: profiles))
    writer.resolver.forget(writer.inFlight)
    writer.inFlight = keys
    await recoverIfFailed(&writer, work)
  }

  /// After a failed commit: waits for the committer to fail what it holds, then rebuilds the resolver.
  func recoverIfFailed(_ writer: inout Writer, _ work: AsyncChannel<Work>) async {
    guard poisoned.withLock({ $0 }) else { return }
    await flush(work)
    await rebuild(&writer.resolver)
    writer.inFlight = []
    poisoned.withLock { $0 = false }
  }

  /// The committer: encodes and commits each group, then answers its requests.
  func commitLoop(_ work: AsyncChannel<Work>) async {
    for await item in work {
      switch item {
      case .flush(let signal):
        signal.yield()
        signal.finish()
      case .group(let batch, let group, let stats, let events, let resolveSeconds, let profiles):
        if poisoned.withLock({ $0 }) {
          for s in group { s.continuation.resume(throwing: Failure.store("an earlier group failed to commit")) }
          continue
        }
        let started = ContinuousClock.now
        do {
          let commit = batch.finished()
          if !commit.isEmpty { try await store.commit(commit) }
        } catch {
          poisoned.withLock { $0 = true }
          for s in group { s.continuation.resume(throwing: Failure.store(String(describing: error))) }
          continue
        }
        for (s, st) in zip(group, stats) { s.continuation.resume(returning: st) }
        onGroup?(
          GroupReport(
            requests: group.count, events: events, stats: batch.stats, resolveSeconds: resolveSeconds,
            seconds: Self.seconds(ContinuousClock.now - started), profiles: profiles))
      }
    }
  }

  static func seconds(_ d: Duration) -> Double {
    Double(d.components.seconds) + Double(d.components.attoseconds) / 1e18
  }

  func erase(_ d: DeletionRequest, _ resolver: inout Resolver) async {
    do {
      guard let profile = try await PersonLookup.resolve(d.person, in: store, config: config) else {
        d.continuation.resume(returning: nil)
        return
      }
      let outcome = try await Deletion.erase(profile, in: store, config: config, at: Timestamp(Date()))
      await rebuild(&resolver)
      d.continuation.resume(returning: outcome)
    } catch {
      d.continuation.resume(throwing: error)
    }
  }

  /// Replaces the resolver by one restored from the store; keeps the old one if the store cannot be read.
  func rebuild(_ resolver: inout Resolver) async {
    if let fresh = try? await Resolver.restored(config: config, from: store, now: Timestamp(Date())) {
      resolver = fresh
    }
  }
}
