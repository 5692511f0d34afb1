import TesseraIdentity
import TesseraModel

/// The state of one trait on one profile: the visible value with its provenance, and the policy's
/// summary of every observation (enough to re-apply the policy when profiles merge or on restart).
public struct TraitRecord: Sendable, Hashable {
  public var profile: ProfileID
  public var trait: String
  public var value: Value
  public var source: String
  public var eventID: String
  public var timestamp: Timestamp
  /// The policy's summary, opaque to the store.
  public var state: Value
  /// `value` and `state` as the store writes them (`StoredValue.encode`), worked out by whoever made the
  /// record: the profile partitions, in parallel, so the store's one writer only binds text. Nil: the
  /// writer encodes them. Not part of the record's identity (equal records compare equal with or without).
  public private(set) var storedText: (value: String, state: String)?

  public init(
    profile: ProfileID, trait: String, value: Value, source: String, eventID: String, timestamp: Timestamp,
    state: Value
  ) {
    self.profile = profile
    self.trait = trait
    self.value = value
    self.source = source
    self.eventID = eventID
    self.timestamp = timestamp
    self.state = state
  }

  /// The record with its stored text worked out now.
  public func encodedForStore() -> TraitRecord {
    var r = self
    r.storedText = (StoredValue.encode(value), StoredValue.encode(state))
    return r
  }

  /// `value` as the store writes it.
  public var storedValue: String { storedText?.value ?? StoredValue.encode(value) }
  /// `state` as the store writes it.
  public var storedState: String { storedText?.state ?? StoredValue.encode(state) }

  public static func == (a: TraitRecord, b: TraitRecord) -> Bool {
    a.profile == b.profile && a.trait == b.trait && a.value == b.value && a.source == b.source
      && a.eventID == b.eventID && a.timestamp == b.timestamp && a.state == b.state
  }

  public func hash(into h: inout Hasher) {
    h.combine(profile)
    h.combine(trait)
    h.combine(value)
    h.combine(source)
    h.combine(eventID)
    h.combine(timestamp)
    h.combine(state)
  }
}

/// A record a source could not turn into an event, kept with the reason.
public struct RejectedRecord: Sendable, Hashable {
  public var source: String
  /// 1-based line (or record number) in the source file; nil for records without one.
  public var line: Int?
  public var record: String
  public var reason: String
  public var at: Timestamp

  public init(source: String, line: Int?, record: String, reason: String, at: Timestamp) {
    self.source = source
    self.line = line
    self.record = record
    self.reason = reason
    self.at = at
  }
}

/// An event as stored: the event and the profile it was resolved to when it arrived.
public struct StoredEvent: Sendable, Hashable {
  public var event: Event
  public var profile: ProfileID
  public init(event: Event, profile: ProfileID) {
    self.event = event
    self.profile = profile
  }
}

/// One profile's state of one computed trait: the engine's encoded state (opaque to the store) and the value
/// it gave when it was written. A `state` of `.null` deletes the row (every contribution expired).
public struct ComputedRecord: Sendable, Hashable {
  public var profile: ProfileID
  public var trait: String
  /// The state in its stored form (`StoredValue`'s JSON text), as the SQLite and PostgreSQL stores keep it;
  /// nil when the trait holds nothing (the row is deleted). The resolver writes this text straight from its
  /// aggregate states: building a `Value` tree per changed trait first cost a tenth of a run with segments.
  public var storedState: String?
  public var value: Value

  public init(profile: ProfileID, trait: String, storedState: String?, value: Value) {
    self.profile = profile
    self.trait = trait
    self.storedState = storedState
    self.value = value
  }

  /// From a state value; `.null` deletes the row.
  public init(profile: ProfileID, trait: String, state: Value, value: Value) {
    self.init(profile: profile, trait: trait, storedState: state.isNull ? nil : StoredValue.encode(state), value: value)
  }

  /// The state read back; `.null` when there is none. Throws `StoreError.corrupt` when the text does not parse.
  public func state() throws -> Value { try storedState.map(StoredValue.decode) ?? .null }

  /// Equal when profile, trait and value are, and the states read back the same (the text's key order is free).
  public static func == (a: ComputedRecord, b: ComputedRecord) -> Bool {
    guard a.profile == b.profile, a.trait == b.trait, a.value == b.value else { return false }
    if a.storedState == b.storedState { return true }
    guard let x = try? a.state(), let y = try? b.state() else { return false }
    return x == y
  }

  public func hash(into h: inout Hasher) {
    h.combine(profile)
    h.combine(trait)
    h.combine(value)
  }
}

/// A profile entering or leaving a segment, as the store logs it. Applied in order: `entered` adds the
/// membership (since `at`), `exited` removes it.
public struct SegmentChangeRecord: Sendable, Hashable {
  public var segment: String
  public var profile: ProfileID
  public var entered: Bool
  public var at: Timestamp
  /// What the condition read when it decided (`traits.orders_90d` → value); empty for exits caused by merges.
  public var values: [String: Value]
  /// Set on the exits of a profile absorbed by a merge.
  public var mergedInto: ProfileID?

  public init(
    segment: String, profile: ProfileID, entered: Bool, at: Timestamp, values: [String: Value] = [:],
    mergedInto: ProfileID? = nil
  ) {
    self.segment = segment
    self.profile = profile
    self.entered = entered
    self.at = at
    self.values = values
    self.mergedInto = mergedInto
  }
}

/// A stored segment membership.
public struct MembershipRecord: Sendable, Hashable {
  public var segment: String
  public var profile: ProfileID
  /// When the profile entered the segment.
  public var since: Timestamp

  public init(segment: String, profile: ProfileID, since: Timestamp) {
    self.segment = segment
    self.profile = profile
    self.since = since
  }
}

/// A probabilistic match decided while streaming: a join, a candidate link for a person to review, or a join
/// the limits refused; and what a reviewer decided.
public struct MatchLinkRecord: Sendable, Hashable {
  public enum Status: String, Sendable, CaseIterable {
    /// The event joined `candidate` (at or above `merge`); `profile` is the same profile.
    case joined
    /// Between `review` and `merge`: `profile` (created for the event) may be `candidate`.
    case review
    /// A reviewer said they are one person; the next run merges them.
    case confirmed
    /// A reviewer said they are not; the pair is never proposed again.
    case rejected
    /// A confirmed link that a run has merged.
    case merged
    /// At or above `merge`, but joining would break an identifier limit or `max_cluster_size`.
    case refused
  }

  /// 0 until stored; then the store's id (`tessera review confirm ID`).
  public var id: Int64
  public var rule: String
  public var profile: ProfileID
  public var candidate: ProfileID
  public var eventID: String
  public var probability: Double
  public var weight: Double
  public var status: Status
  public var reason: String
  public var at: Timestamp

  public init(
    id: Int64 = 0, rule: String, profile: ProfileID, candidate: ProfileID, eventID: String, probability: Double,
    weight: Double, status: Status, reason: String = "", at: Timestamp
  ) {
    self.id = id
    self.rule = rule
    self.profile = profile
    self.candidate = candidate
    self.eventID = eventID
    self.probability = probability
    self.weight = weight
    self.status = status
    self.reason = reason
    self.at = at
  }
}

/// What a deletion removed, table by table.
public struct DeletionReport: Sendable, Hashable {
  public var profiles = 0
  public var events = 0
  public var identifiers = 0
  public var traits = 0
  public var computed = 0
  public var memberships = 0
  public var segmentChanges = 0
  public var merges = 0
  public var conflicts = 0
  public var matchLinks = 0
  public var rejected = 0
  /// Outbox rows waiting for destinations (unsent, retrying or dead-lettered).
  public var deliveries = 0
  public init() {}
}

/// Counts of what a store holds.
public struct StoreStats: Sendable, Hashable {
  public var events = 0
  public var profiles = 0
  public var identifiers = 0
  public var merges = 0
  public var conflicts = 0
  public var rejected = 0
  public init() {}
}

/// An event waiting in the journal for the writer.
public struct JournalEntry: Sendable, Hashable {
  public var seq: Int64
  public var event: Event
  public init(seq: Int64, event: Event) {
    self.seq = seq
    self.event = event
  }
}

/// What `appendJournal` did: the events that went in; the others were already stored or journaled (or repeat
/// an earlier event of the same call).
public struct JournalReceipt: Sendable, Hashable {
  public var appended: Set<EventKey>
  /// `journalBacklog()` as of the append (nil: the store did not work it out).
  public var backlog: Int?
  public init(appended: Set<EventKey>, backlog: Int? = nil) {
    self.appended = appended
    self.backlog = backlog
  }
}

public struct EventKey: Sendable, Hashable {
  public var source: String
  public var id: String
  public init(source: String, id: String) {
    self.source = source
    self.id = id
  }

  /// Sets of keys (a batch's keys the store already holds, the server's unindexed log tail) hash the 64-bit
  /// `logKey` rather than both strings. (A run's own set of events seen keeps fingerprints: `SeenEvent`.)
  public func hash(into h: inout Hasher) { h.combine(logKey) }
}

public enum StoreError: Error, Sendable, CustomStringConvertible {
  case schemaTooNew(found: Int, supported: Int)
  case corrupt(String)
  /// A commit's epoch is not the store's: the state it was resolved from changed (or another process became
  /// the writer). Nothing was written.
  case stale(expected: Int64, found: Int64)

  public var description: String {
    switch self {
    case .schemaTooNew(let found, let supported):
      return "the store's schema version \(found) is newer than this Tessera supports (\(supported)); upgrade Tessera"
    case .corrupt(let what): return "the store is damaged: \(what)"
    case .stale(let expected, let found):
      return "the store's state changed since it was read (epoch \(found), expected \(expected)); read it again"
    }
  }
}

/// The store cannot write, or cannot be reached: a full disk, an I/O error, a read-only file system, a lost
/// database connection. What the runtime stops on (`tessera run`) or degrades on (`tessera serve`: 503 and
/// `Retry-After` until the store commits again). Each store turns its own errors into this one where it can
/// tell; nothing of the transaction that failed was stored.
public struct StoreUnavailable: Error, Sendable, CustomStringConvertible {
  public enum Kind: String, Sendable, CaseIterable {
    case diskFull = "disk_full"
    case ioError = "io_error"
    case readOnly = "read_only"
    case connectionLost = "connection_lost"
  }

  public var kind: Kind
  /// The store's own message (SQLite's, PostgreSQL's).
  public var detail: String

  public init(_ kind: Kind, _ detail: String) {
    self.kind = kind
    self.detail = detail
  }

  /// What happened, in a few words.
  public var summary: String {
    switch kind {
    case .diskFull: return "the store's disk is full"
    case .ioError: return "the store's file could not be read or written (I/O error)"
    case .readOnly: return "the store is read-only"
    case .connectionLost: return "the connection to the database was lost"
    }
  }

  /// What to do about it.
  public var advice: String {
    switch kind {
    case .diskFull: return "free space on the file system that holds the store (or raise its quota)"
    case .ioError: return "check the disk that holds the store (the kernel log names the device)"
    case .readOnly:
      return "make the store's file and directory writable (a file system remounted read-only "
        + "after errors needs checking first)"
    case .connectionLost: return "bring the database server back (or check the network to it)"
    }
  }

  public var description: String { "\(summary): \(detail)" }
}
