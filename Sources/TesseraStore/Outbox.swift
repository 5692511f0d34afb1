import TesseraModel

/// What an outbox row asks a destination to do.
public enum OutboxOp: String, Sendable, Hashable, CaseIterable {
  /// `profile_changes`: the profile's current payload.
  case upsert
  /// `segment_changes`: the profile entered (`key` names the segment).
  case enter
  /// `segment_changes`: the profile left (`key` names the segment), also sent when consent is withdrawn.
  case exit
  /// `events`: one event (`key` is its id).
  case event
  /// A deletion notice: the person was erased (`payload` holds hashes of their identifiers, never values).
  case delete
}

/// One change waiting for one destination, written in the same transaction as the state that caused it.
public struct OutboxRecord: Sendable, Hashable {
  /// 0 until stored; then the store's id (increasing in write order).
  public var id: Int64
  public var destination: String
  public var op: OutboxOp
  public var profile: ProfileID
  /// The segment of an enter/exit, the event id of an event, else empty.
  public var key: String
  /// The evaluated payload (a map).
  public var payload: Value
  /// When the change happened (the pipeline's clock).
  public var at: Timestamp

  public init(
    id: Int64 = 0, destination: String, op: OutboxOp, profile: ProfileID, key: String = "", payload: Value,
    at: Timestamp
  ) {
    self.id = id
    self.destination = destination
    self.op = op
    self.profile = profile
    self.key = key
    self.payload = payload
    self.at = at
  }
}

/// A batch of outbox rows on its way to a destination, with its delivery history.
public struct DeliveryBatchRecord: Sendable, Hashable {
  public enum Status: String, Sendable, Hashable, CaseIterable {
    /// Waiting for its (next) attempt at `nextAttemptAt`.
    case pending
    /// A worker holds it until `leaseUntil` (a crashed worker's batch is taken again after that).
    case sending
    case delivered
    /// Gave up: out of attempts, too old, or refused (a 4xx other than 408/429). `tessera deliveries retry`.
    case dead
  }

  public var id: Int64
  public var destination: String
  /// The idempotency key: the same on every attempt, so a receiver can drop a batch it has already taken.
  public var key: String
  public var status: Status
  public var attempts: Int
  public var items: Int
  public var bytes: Int
  public var createdAt: Timestamp
  public var nextAttemptAt: Timestamp
  public var leaseUntil: Timestamp?
  /// The last attempt's HTTP status (nil for network errors and non-HTTP destinations) and response or error.
  public var lastStatus: Int?
  public var lastError: String
  public var finishedAt: Timestamp?

  public init(
    id: Int64, destination: String, key: String, status: Status, attempts: Int, items: Int, bytes: Int,
    createdAt: Timestamp, nextAttemptAt: Timestamp, leaseUntil: Timestamp? = nil, lastStatus: Int? = nil,
    lastError: String = "", finishedAt: Timestamp? = nil
  ) {
    self.id = id
    self.destination = destination
    self.key = key
    self.status = status
    self.attempts = attempts
    self.items = items
    self.bytes = bytes
    self.createdAt = createdAt
    self.nextAttemptAt = nextAttemptAt
    self.leaseUntil = leaseUntil
    self.lastStatus = lastStatus
    self.lastError = lastError
    self.finishedAt = finishedAt
  }
}

/// How to cut the next batch of a destination.
public struct BatchClaim: Sendable, Hashable {
  public var destination: String
  public var maxItems: Int
  public var maxBytes: Int
  /// A partial batch is cut only when its oldest row has waited this long (or when `flush`).
  public var maxWait: TimeSpan
  public var now: Timestamp
  /// How long the claiming worker holds the batch before another may take it.
  public var lease: TimeSpan
  /// Cut a partial batch now (the end of a run, a drain).
  public var flush: Bool

  public init(
    destination: String, maxItems: Int, maxBytes: Int, maxWait: TimeSpan, now: Timestamp, lease: TimeSpan,
    flush: Bool
  ) {
    self.destination = destination
    self.maxItems = maxItems
    self.maxBytes = maxBytes
    self.maxWait = maxWait
    self.now = now
    self.lease = lease
    self.flush = flush
  }
}

/// What became of an attempt.
public enum DeliveryResult: Sendable, Hashable {
  case delivered(at: Timestamp)
  /// Try again at `next`.
  case retry(next: Timestamp, status: Int?, error: String, at: Timestamp)
  /// Give up: the batch becomes a dead letter.
  case dead(status: Int?, error: String, at: Timestamp)
}

/// Per destination: rows not yet in a batch, batches waiting (and how many of them have failed before),
/// dead letters, delivered batches and items, and the earliest next attempt.
public struct OutboxSummary: Sendable, Hashable {
  public var queued = 0
  public var pending = 0
  public var failing = 0
  public var sending = 0
  public var dead = 0
  public var deadItems = 0
  public var delivered = 0
  public var deliveredItems = 0
  public var nextAttempt: Timestamp?
  public init() {}
}

extension OutboxRecord {
  /// The payload's JSON size, as batches count bytes.
  public var bytes: Int { JSON.encode(payload).utf8.count }
}
