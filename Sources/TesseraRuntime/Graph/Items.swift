import Synchronization
import TesseraIdentity
import TesseraModel
import TesseraStore

// What travels on the graph's edges. Each type is the batch form of one of the plan's `PlanData` kinds.

/// RejectedRecord: records a source could not turn into events, on their way to the store.
public struct RejectedBatch: Sendable {
  /// The number of the read batch the records come from (file sources); they are stored in that order.
  public var seq: Int?
  public var records: [RejectedRecord]
  /// Identifier values dropped because they did not normalize (counted with the batch they came from).
  public var invalidIdentifiers: Int
  /// Answered once the records are stored (a request of the tracking API waits for it).
  public var ticket: Ticket?

  public init(seq: Int? = nil, records: [RejectedRecord], invalidIdentifiers: Int = 0, ticket: Ticket? = nil) {
    self.seq = seq
    self.records = records
    self.invalidIdentifiers = invalidIdentifiers
    self.ticket = ticket
  }
}

/// What the identity stage is handed: mapped events (MappedEvent), or an instruction between them.
public enum IdentityInput: Sendable {
  /// A batch of mapped events. File sources number their batches (`seq`); the stage restores that order.
  case events(MappedBatch)
  /// Reviewers' decisions (`tessera review`): confirmed links are merged, rejected pairs never proposed.
  /// `marking`: the confirmed links are marked `merged` in the store (not when a replay merges them again).
  case decisions([MatchLinkRecord], marking: Bool)
  /// Expire computed-trait windows at this time and re-evaluate the profiles whose values fell.
  case tick(Timestamp)
  /// End the open store transaction now.
  case cut
  /// The store has committed every transaction the stage sent it (sent by the graph itself, when the stage
  /// holds resolved events it is waiting to hand over: see `CutPolicy.whenIdle`).
  case storeIdle
}

/// A request's (or a run's) share of the work, answered once its events and rejected records are stored.
///
/// The identity stage gathers the tickets of each store transaction; the commit stage resumes them with
/// what resolution did to their events, or with the error that kept the transaction from committing.
public final class Ticket: Sendable {
  public enum Outcome: Sendable {
    case stored(ResolveStats)
    case failed(any Error)
    /// The transaction was refused because the store's state changed (`StoreError.stale`): resubmit.
    case stale
  }
  struct State {
    var parts: Int
    var stats = ResolveStats()
    var outcome: Outcome?
    var continuation: CheckedContinuation<Outcome, Never>?
  }
  let state: Mutex<State>

  /// `parts`: how many pieces (an events batch, a rejected batch) must be stored before the ticket is done.
  public init(parts: Int) { state = Mutex(State(parts: max(1, parts))) }

  /// One part is stored; `stats` is what resolution did to it.
  func stored(_ stats: ResolveStats) {
    let c = state.withLock { s -> (CheckedContinuation<Outcome, Never>, Outcome)? in
      guard s.outcome == nil else { return nil }
      s.stats.add(stats)
      s.parts -= 1
      guard s.parts == 0 else { return nil }
      s.outcome = .stored(s.stats)
      defer { s.continuation = nil }
      return s.continuation.map { ($0, .stored(s.stats)) }
    }
    if let (k, o) = c { k.resume(returning: o) }
  }

  /// The ticket failed (the first failure decides).
  func fail(_ outcome: Outcome) {
    let c = state.withLock { s -> CheckedContinuation<Outcome, Never>? in
      guard s.outcome == nil else { return nil }
      s.outcome = outcome
      defer { s.continuation = nil }
      return s.continuation
    }
    c?.resume(returning: outcome)
  }

  var isDone: Bool { state.withLock { $0.outcome != nil } }

  /// Waits until every part is stored or the ticket failed.
  public func outcome() async -> Outcome {
    await withCheckedContinuation { (c: CheckedContinuation<Outcome, Never>) in
      let done = state.withLock { s -> Outcome? in
        if let o = s.outcome { return o }
        s.continuation = c
        return nil
      }
      if let done { c.resume(returning: done) }
    }
  }
}

/// ResolvedEvent, as the identity stage hands it to the store: one store transaction's events with the
/// profiles they resolved to, and every change to the identity graph they caused.
public struct IdentityPart: Sendable {
  /// The transaction's number; every profile partition sends a `ProfilePart` with the same number.
  public var cut: Int
  public var commit = CommitBatch()
  public var stats = ResolveStats()
  /// The tickets of the requests whose events are in this transaction, with what resolution did to each.
  public var tickets: [(Ticket, ResolveStats)] = []
  /// Live profiles when the transaction was cut.
  public var profiles = 0
  /// Journal entries resolved in this transaction.
  public var journal: [Int64] = []
  /// The keys of the transaction's events (the server forgets them once they are stored).
  public var keys: [EventKey] = []
  /// The numbered read batches resolved in this transaction that had rejected records: the transaction
  /// stores those records (in batch order), so what a run stores does not depend on which worker was first.
  public var rejectedSeqs: [Int] = []

  public init(cut: Int) { self.cut = cut }

  /// Nothing to commit and nobody waiting for it.
  public var isEmpty: Bool {
    commit.isEmpty && tickets.isEmpty && journal.isEmpty && rejectedSeqs.isEmpty
  }
}

/// ResolvedEvent, as the identity stage hands it to one profile partition: what happened to the partition's
/// profiles, in the order it happened.
public struct PartitionBatch: Sendable {
  public var ops: [ProfileOp] = []
  public var events = 0
}

/// One step of a profile partition's work.
public enum ProfileOp: Sendable {
  /// An event resolved to `profile` (live after the event): its position in the store transaction and the
  /// evaluation time.
  case event(Event, index: Int, profile: ProfileID, clock: Timestamp)
  /// The identifiers `profile` holds now (sent when they change and segments or payloads read them).
  case identifiers(ProfileID, [Identifier])
  /// Both profiles of the merge are in this partition.
  case merge(MergeRecord, clock: Timestamp)
  /// The absorbed profile is here, the survivor in another partition: hand its state over as `handoff`.
  case give(MergeRecord, handoff: UInt64, clock: Timestamp)
  /// The survivor is here: take the absorbed profile's state from `handoff` and merge it.
  case take(MergeRecord, handoff: UInt64, clock: Timestamp)
  /// Drop expired window buckets at `clock` (the clock tick).
  case tick(clock: Timestamp)
  /// The end of store transaction `cut`: settle and send a `ProfilePart`.
  case cut(Int, clock: Timestamp)
}

/// ProfileChange: one partition's share of a store transaction: changed traits and computed traits, segment
/// changes and outbox rows, all of profiles that live in the partition.
public struct ProfilePart: Sendable {
  public var cut: Int
  public var partition: Int
  /// The rows, by the profile whose settling wrote them.
  public var sections: [Section] = []
  /// Outbox rows with the key that orders them across partitions (destination, then profile).
  public var outbox: [(key: OutboxOrder, row: OutboxRecord)] = []
  public var stats = ResolveStats()

  /// What settling one profile wrote. `phase` counts the settles of the transaction (each tick settles twice:
  /// what was pending, then what expired), the same in every partition.
  public struct Section: Sendable {
    public var phase: Int
    public var profile: ProfileID
    public var traits: [TraitRecord] = []
    public var computed: [ComputedRecord] = []
    public var segmentChanges: [SegmentChangeRecord] = []
  }

  public init(cut: Int, partition: Int) {
    self.cut = cut
    self.partition = partition
  }
}

/// The order of outbox rows within a transaction, the same whatever the number of partitions: by
/// destination (declaration order); a destination's rows for its trigger before the row deletions of a table;
/// event rows in event order, the others by live profile and then in the order the profile's partition
/// produced them.
public struct OutboxOrder: Sendable, Comparable {
  var destination: Int
  var phase: Int
  var major: Int64
  var minor: Int
  public static func < (a: OutboxOrder, b: OutboxOrder) -> Bool {
    (a.destination, a.phase, a.major, a.minor) < (b.destination, b.phase, b.major, b.minor)
  }
}
