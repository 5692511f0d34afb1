import Foundation
import Synchronization
import TesseraCompiler
import TesseraIdentity
import TesseraModel
import TesseraStore

/// decode & map: parses and maps the records of one source, on N workers. Each batch's events go to the
/// identity stage (with the batch's number, so read order can be restored), its rejected records straight to
/// the commit stage.
public struct DecodeStage: Stage {
  public typealias Input = RawBatch
  public typealias Output = IdentityInput
  public static let kind = StageKind.decode
  let mapper: Mapper
  /// The device signals rules read (`StreamingMatcher.signalsRead`), nil when none do: each event's are derived
  /// here, off the serial identity stage.
  var signals: Set<String>?

  func run(_ input: Inlet<RawBatch>, _ output: Outlet<IdentityInput>, rejected: Outlet<RejectedBatch>) async throws {
    var deriver = SignalDeriver(keeping: signals)
    while let raw = await input.next() {
      try Task.checkCancellation()
      var mapped = mapper.map(raw)
      mapped.numbered = true
      // Each event's identifiers in the order they are stored in, sorted here in parallel rather than copied
      // and sorted by the serial identity stage.
      for k in mapped.events.indices where mapped.events[k].identifiers.count > 1 {
        mapped.events[k].identifiers.sort()
      }
      if signals != nil {
        let derived = mapped.events.map { deriver.derived(of: $0.context) }
        mapped.signals = derived.map(\.signals)
        mapped.signalCombinations = derived.map(\.combination)
      }
      let records = mapped.rejected
      mapped.rejectedCount = records.count
      mapped.rejected = []
      if !records.isEmpty {
        try await rejected.send(RejectedBatch(seq: mapped.seq, records: records), items: records.count)
      }
      try await output.send(.events(mapped), items: mapped.events.count)
    }
  }
}

/// How the identity stage cuts store transactions.
public struct CutPolicy: Sendable {
  /// At most this many events (and rejected records) per transaction.
  public var events: Int
  /// Group commit (the server): cut whenever the store is idle — every transaction sent to it committed — and
  /// events are resolved, so that while one transaction commits the next gathers every request that arrives
  /// meanwhile. (Cutting whenever no input waited made every transaction wait for the requests its answers
  /// set off: under load the whole in-flight set was one transaction, and the store and the requests took
  /// turns instead of overlapping.)
  public var whenIdle: Bool
  public init(events: Int, whenIdle: Bool = false) {
    self.events = max(1, events)
    self.whenIdle = whenIdle
  }
}

/// Which transactions the store has committed, shared by the commit stage (which moves it on) and the identity
/// stage (which waits on it, so that at most two transactions are resolved ahead of the store, and forgets
/// the events of committed ones).
public final class CommitProgress: Sendable {
  struct State {
    var committed = -1
    var waiters: [(Int, CheckedContinuation<Void, Never>)] = []
    var closed = false
    /// Who to tell once a transaction is committed (`whenCommitted`).
    var onIdle: (Int, @Sendable () -> Void)?
  }
  let state = Mutex(State())
  public init() {}

  func committed(_ cut: Int) {
    let (ready, idle) = state.withLock { s -> ([CheckedContinuation<Void, Never>], (@Sendable () -> Void)?) in
      s.committed = max(s.committed, cut)
      let (done, rest) = (s.waiters.filter { $0.0 <= s.committed }, s.waiters.filter { $0.0 > s.committed })
      s.waiters = rest
      var idle: (@Sendable () -> Void)?
      if let (after, f) = s.onIdle, after <= s.committed {
        idle = f
        s.onIdle = nil
      }
      return (done.map(\.1), idle)
    }
    for c in ready { c.resume() }
    idle?()
  }

  /// Calls `f` once transaction `cut` is committed (at once when it is already); replaces an earlier request.
  func whenCommitted(_ cut: Int, _ f: @escaping @Sendable () -> Void) {
    let now = state.withLock { s -> Bool in
      if s.committed >= cut { return true }
      s.onIdle = (cut, f)
      return false
    }
    if now { f() }
  }

  /// Releases every waiter for good (the graph stopped).
  func close() {
    let all = state.withLock { s -> [CheckedContinuation<Void, Never>] in
      s.closed = true
      defer { s.waiters = [] }
      return s.waiters.map(\.1)
    }
    for c in all { c.resume() }
  }

  public var last: Int { state.withLock { $0.committed } }

  /// Waits until transaction `cut` is committed (or the graph stopped).
  func wait(for cut: Int) async {
    await withCheckedContinuation { (c: CheckedContinuation<Void, Never>) in
      let now = state.withLock { s -> Bool in
        if s.closed || s.committed >= cut { return true }
        s.waiters.append((cut, c))
        return false
      }
      if now { c.resume() }
    }
  }
}

/// resolve: the one ordered writer of identity. Restores the read order of file batches, skips events
/// already stored, resolves, and hands each partition its ops and the commit stage each transaction's
/// identity rows.
public struct IdentityStage: Stage {
  public typealias Input = IdentityInput
  public typealias Output = PartitionBatch
  public static let kind = StageKind.resolve

  var resolver: IdentityResolver
  let store: any Store
  let policy: CutPolicy
  /// Ask the store which events it already holds (not needed when it held none when the run started).
  let checksStore: Bool
  /// Forget events once they are committed (the server: the store recognises them from then on).
  let forgets: Bool
  /// Reviewers' decisions to apply before the first event.
  let decisions: [MatchLinkRecord]
  /// The clock tick at the end of the input (a run ends with one); nil: none.
  let tickAtEnd: Timestamp?
  let progress: CommitProgress
  /// Reads the evaluation time afresh for every batch (the server's wall clock); nil: `resolver.now` stays.
  let clock: (@Sendable () -> Timestamp)?
  /// Hands ops to a partition once this many of its events wait.
  static let handOver = 2048

  func run(
    _ input: Inlet<IdentityInput>, _ partitions: [Outlet<PartitionBatch>], commit: Outlet<IdentityPart>
  ) async throws {
    var r = resolver
    r.keepsKeys = forgets
    var pending: [Int: MappedBatch] = [:]
    var next = 0
    var inTransaction = 0
    // The last transaction sent to the store; whether the stage asked to be told when it is committed.
    var sent = -1
    var awaitingStore = false
    let nudge = input.channel
    // Events of transactions sent to the store, not yet forgotten.
    var uncommitted: [(cut: Int, keys: [EventKey])] = []
    if !decisions.isEmpty { r.decide(decisions, at: r.now ?? r.currentClock) }

    func handOver(force: Bool) async throws {
      for n in partitions.indices where force || r.opEvents[n] >= Self.handOver {
        let b = r.takeOps(n)
        if !b.ops.isEmpty { try await partitions[n].send(b, items: b.events) }
      }
    }
    func cut() async throws {
      let (part, batches) = r.cut()
      for (n, b) in batches.enumerated() { try await partitions[n].send(b, items: b.events) }
      if forgets { uncommitted.append((part.cut, part.keys)) }
      try await commit.send(part, items: part.commit.events.count)
      sent = part.cut
      inTransaction = 0
      // At most two transactions ahead of the store: this one and the one being written.
      if part.cut >= 1 { await progress.wait(for: part.cut - 1) }
      if forgets {
        let done = progress.last
        while let first = uncommitted.first, first.cut <= done {
          r.forget(first.keys)
          uncommitted.removeFirst()
        }
      }
    }
    func resolve(_ batch: MappedBatch) async throws {
      var stored: Set<EventKey> = []
      if checksStore, !batch.events.isEmpty {
        stored = try await store.existingEvents(batch.events.map { EventKey(source: $0.source, id: $0.id) })
      }
      if let clock { r.now = clock() }
      let stats = r.resolve(batch, stored: stored)
      if let t = batch.ticket { r.part.tickets.append((t, stats)) }
      r.part.journal += batch.journal
      if let c = batch.cursor { r.part.commit.sourceCursors.append(c) }
      if batch.numbered && batch.rejectedCount > 0 { r.part.rejectedSeqs.append(batch.seq) }
      inTransaction += batch.events.count + batch.rejectedCount
      try await handOver(force: false)
      if inTransaction >= policy.events { try await cut() }
    }

    while let item = await input.next() {
      try Task.checkCancellation()
      switch item {
      case .events(let batch):
        // Batches the graph's source stages read carry numbers from 0 up, across sources, and are resolved in
        // that order; those of the intake (requests, the journal, a replay's log) are resolved as they come.
        if !batch.numbered {
          try await resolve(batch)
        } else {
          pending[batch.seq] = batch
          while let b = pending.removeValue(forKey: next) {
            next += 1
            try await resolve(b)
          }
        }
      case .decisions(let links, let marking): r.decide(links, at: r.now ?? r.currentClock, marking: marking)
      case .tick(let at):
        r.now = at
        r.tick(at: at)
        try await cut()
      case .cut: try await cut()
      case .storeIdle: awaitingStore = false
      }
      // Group commit: the store takes what is resolved as soon as it is idle; until then the open transaction
      // gathers what arrives, and the store's next commit wakes the stage if no input does.
      if policy.whenIdle, !r.part.isEmpty {
        if progress.last >= sent {
          try await cut()
        } else if !awaitingStore {
          awaitingStore = true
          progress.whenCommitted(sent) { nudge.nudge(.storeIdle) }
        }
      }
    }
    try Task.checkCancellation()
    if let at = tickAtEnd { r.tick(at: at) }
    r.flushSeen()
    try await cut()
    for p in partitions { p.finish() }
    commit.finish()
  }
}

/// The hand-overs between profile partitions: the absorbed profile's partition puts its state here, the
/// survivor's takes it (waiting until it is there).
public final class Handoffs: Sendable {
  struct State {
    var ready: [UInt64: ProfilePartition.Handoff] = [:]
    var waiting: [UInt64: CheckedContinuation<ProfilePartition.Handoff?, Never>] = [:]
    var closed = false
  }
  let state = Mutex(State())
  public init() {}

  func put(_ id: UInt64, _ h: ProfilePartition.Handoff) {
    let waiter = state.withLock { s -> CheckedContinuation<ProfilePartition.Handoff?, Never>? in
      if let w = s.waiting.removeValue(forKey: id) { return w }
      s.ready[id] = h
      return nil
    }
    waiter?.resume(returning: h)
  }

  /// The hand-over `id`; nil when the graph stopped before it came.
  func take(_ id: UInt64) async -> ProfilePartition.Handoff? {
    await withCheckedContinuation { (c: CheckedContinuation<ProfilePartition.Handoff?, Never>) in
      enum Now {
        case value(ProfilePartition.Handoff?)
        case wait
      }
      let now = state.withLock { s -> Now in
        if let h = s.ready.removeValue(forKey: id) { return .value(h) }
        if s.closed { return .value(nil) }
        s.waiting[id] = c
        return .wait
      }
      if case .value(let h) = now { c.resume(returning: h) }
    }
  }

  func close() {
    let all = state.withLock { s -> [CheckedContinuation<ProfilePartition.Handoff?, Never>] in
      s.closed = true
      defer { s.waiting = [:] }
      return Array(s.waiting.values)
    }
    for c in all { c.resume(returning: nil) }
  }
}

/// profile: one partition of everything after identity — unification, computed traits, segments, routing and
/// encoding the rows — for the profiles whose id falls in it.
public struct ProfileStage: Stage {
  public typealias Input = PartitionBatch
  public typealias Output = ProfilePart
  public static let kind = StageKind.profile

  var partition: ProfilePartition
  let handoffs: Handoffs

  func run(_ input: Inlet<PartitionBatch>, _ output: Outlet<ProfilePart>) async throws {
    var p = partition
    var part = ProfilePart(cut: 0, partition: p.index)
    var local: [UInt64: ProfilePartition.Handoff] = [:]
    while let batch = await input.next() {
      try Task.checkCancellation()
      for op in batch.ops {
        switch op {
        case .give(let m, let id, let clock): handoffs.put(id, p.give(m, clock: clock))
        case .take(let m, let id, _):
          guard let h = await handoffs.take(id) else { throw CancellationError() }
          p.take(m, h)
        case .cut(let cut, _):
          p.run(op, into: &part, handoffs: &local)
          part.cut = cut
          try await output.send(part, items: part.sections.count)
          part = ProfilePart(cut: cut + 1, partition: p.index)
        default: p.run(op, into: &part, handoffs: &local)
        }
      }
    }
    output.finish()
  }
}

/// commit: joins each transaction's identity rows and every partition's rows (and the rejected records that
/// arrived meanwhile) into one `CommitBatch`, commits it to the sink, and answers the tickets in it.
public struct CommitStage: Stage {
  public typealias Input = IdentityPart
  public typealias Output = CommitBatch
  public static let kind = StageKind.commit

  let sink: any CommitSink
  let partitions: Int
  let progress: CommitProgress
  let counters: RunCounters

  enum Arrival: Sendable {
    case identity(IdentityPart)
    case profile(ProfilePart)
    case rejected(RejectedBatch)
  }

  func run(
    _ identity: Inlet<IdentityPart>, profiles: Inlet<ProfilePart>, rejected: Inlet<RejectedBatch>
  ) async throws {
    // The three edges are read by three child tasks into one stream of arrivals (the parts of a transaction
    // come in any order and are joined here); the stage is busy while it commits.
    let (arrivals, feed) = AsyncStream.makeStream(of: Arrival.self)
    let meter = identity.meter
    try await withThrowingTaskGroup(of: Void.self) { group in
      group.addTask {
        await withTaskGroup(of: Void.self) { readers in
          readers.addTask { while let p = await identity.channel.receive() { feed.yield(.identity(p)) } }
          readers.addTask { while let p = await profiles.channel.receive() { feed.yield(.profile(p)) } }
          readers.addTask { while let r = await rejected.channel.receive() { feed.yield(.rejected(r)) } }
        }
        feed.finish()
      }
      meter.idle()
      try await join(arrivals, meter: meter)
      try await group.waitForAll()
    }
  }

  func join(_ arrivals: AsyncStream<Arrival>, meter: StageMeter) async throws {
    var identities: [Int: IdentityPart] = [:]
    var parts: [Int: [ProfilePart]] = [:]
    // Rejected records of numbered batches wait for the transaction that resolved their batch; the others
    // (a request's) go with the next transaction.
    var numbered: [Int: RejectedBatch] = [:]
    var rejected: [RejectedBatch] = []
    var next = 0
    var epoch: Int64?
    for await a in arrivals {
      meter.busy()
      defer { meter.idle() }
      switch a {
      case .identity(let p): identities[p.cut] = p
      case .profile(let p): parts[p.cut, default: []].append(p)
      case .rejected(let r):
        if let seq = r.seq { numbered[seq] = r } else { rejected.append(r) }
      }
      while let id = identities[next], (parts[next]?.count ?? 0) == partitions,
        id.rejectedSeqs.allSatisfy({ numbered[$0] != nil })
      {
        identities[next] = nil
        let ps = parts.removeValue(forKey: next) ?? []
        epoch = id.commit.epoch
        let own = id.rejectedSeqs.sorted().compactMap { numbered.removeValue(forKey: $0) }
        try await commit(id, ps, rejected: own + rejected)
        rejected = []
        next += 1
      }
      // A request's rejected records need no transaction of events: stored at once when none is pending.
      if !rejected.isEmpty, identities.isEmpty {
        var id = IdentityPart(cut: -1)
        id.commit.epoch = nil
        try await commit(id, [], rejected: rejected, advances: false)
        rejected = []
      }
    }
    rejected += numbered.keys.sorted().compactMap { numbered[$0] }
    if !rejected.isEmpty {
      var id = IdentityPart(cut: next)
      id.commit.epoch = epoch
      try await commit(id, [], rejected: rejected)
    }
  }

  /// `advances`: the transaction is one the identity stage cut (its number counts as committed).
  func commit(_ id: IdentityPart, _ parts: [ProfilePart], rejected: [RejectedBatch], advances: Bool = true)
    async throws
  {
    var batch = CommitAssembly.assemble(id, parts)
    var stats = CommitAssembly.stats(id, parts)
    for r in rejected {
      batch.rejected += r.records
      stats.rejected += r.records.count
      stats.invalidIdentifiers += r.invalidIdentifiers
    }
    batch.journalDone = id.journal
    let started = ContinuousClock.now
    do {
      if !batch.isEmpty { try await sink.commit(batch) }
    } catch {
      counters.failed()
      let outcome: Ticket.Outcome
      if case StoreError.stale = error { outcome = .stale } else { outcome = .failed(error) }
      for (t, _) in id.tickets { t.fail(outcome) }
      for r in rejected { r.ticket?.fail(outcome) }
      throw error
    }
    for (t, s) in id.tickets { t.stored(s) }
    for r in rejected {
      var s = ResolveStats()
      s.rejected = r.records.count
      s.invalidIdentifiers = r.invalidIdentifiers
      r.ticket?.stored(s)
    }
    counters.committed(stats, profiles: advances ? id.profiles : nil, events: batch.events)
    let seconds = (ContinuousClock.now - started) / .seconds(1)
    sink.committed(
      batch, report: CommitReport(stats: stats, tickets: id.tickets.count, seconds: seconds, profiles: id.profiles))
    if advances { progress.committed(id.cut) }
  }
}

/// Where the commit stage writes: a store, and whoever wants to see each committed transaction (a dry run
/// records them; `--rejected FILE` writes the rejected records).
public protocol CommitSink: Sendable {
  func commit(_ batch: CommitBatch) async throws
  /// Called after each transaction committed, with what it did.
  func committed(_ batch: CommitBatch, report: CommitReport)
}

/// What one committed transaction did.
public struct CommitReport: Sendable {
  public var stats: ResolveStats
  /// Requests (tickets) answered by it.
  public var tickets: Int
  /// How long the store took.
  public var seconds: Double
  /// Live profiles after it.
  public var profiles: Int
}

/// The usual sink: the store, and an optional look at every committed transaction.
public struct StoreSink: CommitSink {
  public let store: any PipelineStore
  /// Commits as a bulk writer (`CommitBatch.deferIndexes`); the caller finishes with `finishWriting()`.
  let bulk: Bool
  let onCommit: (@Sendable (CommitBatch, ResolveStats) -> Void)?

  public init(
    _ store: any PipelineStore, bulk: Bool = false, onCommit: (@Sendable (CommitBatch, ResolveStats) -> Void)? = nil
  ) {
    self.store = store
    self.bulk = bulk
    self.onCommit = onCommit
  }

  public func commit(_ batch: CommitBatch) async throws {
    if bulk {
      var b = batch
      b.deferIndexes = true
      try await store.commit(b)
    } else {
      try await store.commit(batch)
    }
  }
  public func committed(_ batch: CommitBatch, report: CommitReport) { onCommit?(batch, report.stats) }
}
