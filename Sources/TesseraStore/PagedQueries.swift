import TesseraModel

// The console's reads (issue 20): a page at a time, from an index, whatever the size of the store. A store that
// keeps the indexes (SQLite) answers each with a bounded query; the defaults below answer from the whole-list
// queries (memory, PostgreSQL), with the same results.

/// Reads a page at a time: a profile's timeline, a segment's members, the review queue and its threshold counts.
public protocol PagedQueries: Sendable {
  /// The events of the live profile of `profile` (and of the profiles merged into it), newest first (ties in an
  /// order the store keeps), only of `source` and `type` when given; at most `limit`, from `cursor` (a `next` of an
  /// earlier page; nil: the newest).
  func timeline(of profile: ProfileID, source: String?, type: String?, cursor: TimelineCursor?, limit: Int)
    async throws -> TimelinePage
  /// The events written for `profile` itself (not the profiles merged into it), newest first, at most `limit`:
  /// what that profile looked like from its own events.
  func ownEvents(of profile: ProfileID, limit: Int) async throws -> [StoredEvent]
  /// A segment's members in profile order, after `after` (nil: from the first), at most `limit`.
  func members(of segment: String, after: ProfileID?, limit: Int) async throws -> [MembershipRecord]
  /// How many members a segment has.
  func memberCount(of segment: String) async throws -> Int
  /// Logged probabilistic decisions with `status` (all when nil), by probability (most probable first when
  /// `descending`, ties by id in the same direction), after `after`, at most `limit`.
  func matchLinks(status: MatchLinkRecord.Status?, descending: Bool, after: LinkCursor?, limit: Int) async throws
    -> [MatchLinkRecord]
  /// How many logged decisions have `status` (all when nil).
  func matchLinkCount(status: MatchLinkRecord.Status?) async throws -> Int
  /// One logged decision by id.
  func matchLink(id: Int64) async throws -> MatchLinkRecord?
  /// Per rule, how many logged decisions (any status) fall in each probability bucket: bucket `b` holds the
  /// probabilities p with `floor(p * buckets) == b` (1.0 in bucket `buckets`). What a threshold slider counts from.
  func matchLinkHistogram(buckets: Int) async throws -> [String: [Int: Int]]
}

/// Where a timeline page ends: the last event's time and its place in the log (opaque outside the store).
public struct TimelineCursor: Sendable, Hashable {
  public var timestamp: Timestamp
  public var position: Int64
  public init(timestamp: Timestamp, position: Int64) {
    self.timestamp = timestamp
    self.position = position
  }

  /// `TIMESTAMP_POSITION` in microseconds, as the API hands it out.
  public var text: String { "\(timestamp.microseconds)_\(position)" }
  public init?(text: String) {
    let parts = text.split(separator: "_", omittingEmptySubsequences: false)
    guard parts.count == 2, let t = Int64(parts[0]), let p = Int64(parts[1]) else { return nil }
    self.init(timestamp: Timestamp(microseconds: t), position: p)
  }
}

public struct TimelinePage: Sendable {
  public var events: [StoredEvent]
  /// Where the next (older) page starts; nil: this is the oldest.
  public var next: TimelineCursor?
  public init(events: [StoredEvent], next: TimelineCursor?) {
    self.events = events
    self.next = next
  }
}

/// Where a page of match links ends: the last link's probability and id.
public struct LinkCursor: Sendable, Hashable {
  public var probability: Double
  public var id: Int64
  public init(probability: Double, id: Int64) {
    self.probability = probability
    self.id = id
  }
  public init(_ link: MatchLinkRecord) { self.init(probability: link.probability, id: link.id) }

  /// The probability's exact bits and the id, as the API hands it out.
  public var text: String { "\(String(probability.bitPattern, radix: 16))_\(id)" }
  public init?(text: String) {
    let parts = text.split(separator: "_", omittingEmptySubsequences: false)
    guard parts.count == 2, let bits = UInt64(parts[0], radix: 16), let id = Int64(parts[1]) else { return nil }
    self.init(probability: Double(bitPattern: bits), id: id)
  }

  /// Whether `link` comes after this cursor in the order asked for.
  public func precedes(_ link: MatchLinkRecord, descending: Bool) -> Bool {
    descending
      ? (link.probability, link.id) < (probability, id)
      : (link.probability, link.id) > (probability, id)
  }
}

extension PagedQueries where Self: ProfileQueries & PipelineStore {
  /// From the whole timeline: positions are places in it (0 the newest), so a page keeps its place while no
  /// events arrive for the profile.
  public func timeline(of profile: ProfileID, source: String?, type: String?, cursor: TimelineCursor?, limit: Int)
    async throws -> TimelinePage
  {
    let all = try await events(of: profile, limit: .max).enumerated().filter {
      (source == nil || $0.element.event.source == source) && (type == nil || $0.element.event.type == type)
    }
    let start = cursor.map { c in all.firstIndex { $0.offset > Int(c.position) } ?? all.count } ?? 0
    let page = all[start...].prefix(max(0, limit))
    let more = start + page.count < all.count
    return TimelinePage(
      events: page.map(\.element),
      next: more
        ? page.last.map { TimelineCursor(timestamp: $0.element.event.timestamp, position: Int64($0.offset)) } : nil)
  }

  public func ownEvents(of profile: ProfileID, limit: Int) async throws -> [StoredEvent] {
    Array(try await events(of: profile, limit: .max).filter { $0.profile == profile }.prefix(max(0, limit)))
  }

  public func members(of segment: String, after: ProfileID?, limit: Int) async throws -> [MembershipRecord] {
    Array(try await members(of: segment).filter { m in after.map { m.profile > $0 } ?? true }.prefix(max(0, limit)))
  }

  public func memberCount(of segment: String) async throws -> Int { try await members(of: segment).count }

  public func matchLinks(status: MatchLinkRecord.Status?, descending: Bool, after: LinkCursor?, limit: Int)
    async throws -> [MatchLinkRecord]
  {
    let sorted = try await matchLinks(status: status, limit: .max).sorted {
      descending ? ($0.probability, $0.id) > ($1.probability, $1.id) : ($0.probability, $0.id) < ($1.probability, $1.id)
    }
    return Array(sorted.filter { after?.precedes($0, descending: descending) ?? true }.prefix(max(0, limit)))
  }

  public func matchLinkCount(status: MatchLinkRecord.Status?) async throws -> Int {
    try await matchLinks(status: status, limit: .max).count
  }

  public func matchLink(id: Int64) async throws -> MatchLinkRecord? {
    try await matchLinks(status: nil, limit: .max).first { $0.id == id }
  }

  public func matchLinkHistogram(buckets: Int) async throws -> [String: [Int: Int]] {
    var out: [String: [Int: Int]] = [:]
    for l in try await matchLinks(status: nil, limit: .max) {
      out[l.rule, default: [:]][MatchLinkHistogram.bucket(l.probability, buckets: buckets), default: 0] += 1
    }
    return out
  }
}

public enum MatchLinkHistogram {
  /// The bucket of a probability: `floor(p * buckets)`, within 0...buckets.
  public static func bucket(_ p: Double, buckets: Int) -> Int {
    min(buckets, max(0, Int((p * Double(buckets)).rounded(.down))))
  }
}
