import HeapModule
import TesseraCompiler
import TesseraLanguage
import TesseraMatching
import TesseraModel
import TesseraStore

/// The environment event expressions (event filters, computed-trait `where` and `of`) evaluate against.
public enum EventEnv {
  /// Fills the slots in the order `Scopes.event(identifiers:)` hands them out: `event`, `type`, `source`,
  /// `timestamp`, `message_id`, `properties`, `traits`, `context`, then `identifiers.<kind>` for each kind in
  /// `identifiers` (the event's first identifier of that kind — identifiers are strongest first — or null).
  public static func make(_ event: Event, identifiers: [String], now: Timestamp) -> Env {
    var env = Env(slots: [], now: now)
    fill(
      &env, name: event.name, type: event.type, source: event.source, timestamp: event.timestamp, id: event.id,
      properties: event.properties, traits: event.traits, context: event.context, identifiers: event.identifiers,
      kinds: identifiers)
    return env
  }

  /// Refills `env` (its slots' storage reused: a scan over many events allocates none per event) with one
  /// event's fields; an event known only by its log columns has no properties, traits or context.
  public static func fill(
    _ env: inout Env, name: String?, type: String, source: String, timestamp: Timestamp, id: String,
    properties: [String: Value] = [:], traits: [String: Value] = [:], context: [String: Value] = [:],
    identifiers: [Identifier], kinds: [String]
  ) {
    // Overwritten in place when the slots are there already (a scan refills one scope per event).
    let count = 8 + kinds.count
    if env.slots.count != count { env.slots = Array(repeating: .null, count: count) }
    env.slots[0] = name.map { .string($0) } ?? .null
    env.slots[1] = .string(type)
    env.slots[2] = .string(source)
    env.slots[3] = .timestamp(timestamp)
    env.slots[4] = .string(id)
    env.slots[5] = .map(properties)
    env.slots[6] = .map(traits)
    env.slots[7] = .map(context)
    for (k, kind) in kinds.enumerated() {
      env.slots[8 + k] = identifiers.first { $0.kind == kind }.map { .string($0.value) } ?? .null
    }
  }
}

/// What one event contributes to a computed trait: the value of `of` (null for `count`), and the event's time
/// and id, which order `first`/`last` and break ties.
public struct AggregateSample: Sendable, Hashable {
  public var value: Value
  public var timestamp: Timestamp
  public var eventID: String

  public init(value: Value, timestamp: Timestamp, eventID: String) {
    self.value = value
    self.timestamp = timestamp
    self.eventID = eventID
  }

  /// Earlier timestamp first; equal timestamps are ordered by event id, so arrival order never decides.
  func precedes(_ o: AggregateSample) -> Bool { (timestamp, eventID) < (o.timestamp, o.eventID) }
}

/// How often a value was seen, and the latest event that carried it (the tie-break of `most_frequent`).
struct Tally: Sendable, Hashable {
  var count: Int64
  var lastTime: Timestamp
  var lastEvent: String

  func isLater(than o: Tally) -> Bool { (lastTime, lastEvent) > (o.lastTime, o.lastEvent) }
}

/// The mergeable summary of an aggregate over some events. Merging two summaries gives exactly the summary of
/// all their events (for sums of doubles: exactly when the additions are exact, e.g. integers or binary
/// fractions; otherwise up to rounding).
enum AggregateSummary: Sendable, Hashable {
  case count(Int64)
  case sum(Value)
  case avg(Value, Int64)
  case extreme(Value)
  case pick(AggregateSample)
  case frequent([Value: Tally])
  case distinct(Set<Value>)

  /// The summary of one sample; nil when the sample does not count (a null value, a non-number for sum/avg).
  static func initial(_ s: AggregateSample, _ a: Aggregate) -> AggregateSummary? {
    if a == .count { return .count(1) }
    if s.value.isNull { return nil }
    switch a {
    case .count: return .count(1)
    case .sum: return s.value.doubleValue == nil ? nil : .sum(s.value)
    case .avg: return s.value.doubleValue == nil ? nil : .avg(s.value, 1)
    case .min, .max: return .extreme(s.value)
    case .first, .last: return .pick(s)
    case .most_frequent:
      return .frequent([s.value: Tally(count: 1, lastTime: s.timestamp, lastEvent: s.eventID)])
    case .distinct_count: return .distinct([canonical(s.value)])
    }
  }

  /// Combines two summaries of the same aggregate. The result does not depend on the order of the arguments.
  static func merge(_ x: AggregateSummary, _ y: AggregateSummary, _ a: Aggregate) -> AggregateSummary {
    switch (x, y) {
    case (.count(let p), .count(let q)): return .count(p &+ q)
    case (.sum(let p), .sum(let q)): return .sum(NumericSum.add(p, q))
    case (.avg(let p, let n), .avg(let q, let m)): return .avg(NumericSum.add(p, q), n &+ m)
    case (.extreme(let p), .extreme(let q)):
      let qFirst = precedes(q, p)
      return .extreme(a == .min ? (qFirst ? q : p) : (qFirst ? p : q))
    case (.pick(let p), .pick(let q)):
      let qFirst = q.precedes(p)
      return .pick(a == .first ? (qFirst ? q : p) : (qFirst ? p : q))
    case (.frequent(var p), .frequent(let q)):
      for (v, t) in q {
        if let mine = p[v] {
          p[v] = Tally(
            count: mine.count &+ t.count, lastTime: t.isLater(than: mine) ? t.lastTime : mine.lastTime,
            lastEvent: t.isLater(than: mine) ? t.lastEvent : mine.lastEvent)
        } else {
          p[v] = t
        }
      }
      return .frequent(p)
    case (.distinct(let p), .distinct(let q)): return .distinct(p.count >= q.count ? p.union(q) : q.union(p))
    default: return x
    }
  }

  /// The aggregate's value.
  var value: Value {
    switch self {
    case .count(let n): return .int(n)
    case .sum(let s): return .double(s.doubleValue ?? 0)
    case .avg(let s, let n): return n == 0 ? .null : .double((s.doubleValue ?? 0) / Double(n))
    case .extreme(let v):
      if case .int(let i) = v { return .double(Double(i)) }  // the compiler types min/max of ints as double
      return v
    case .pick(let s): return s.value
    case .frequent(let counts):
      var best: (Value, Tally)?
      for (v, t) in counts {
        guard let b = best else {
          best = (v, t)
          continue
        }
        if t.count != b.1.count {
          if t.count > b.1.count { best = (v, t) }
        } else if t.isLater(than: b.1) || (!b.1.isLater(than: t) && Self.precedes(v, b.0)) {
          best = (v, t)
        }
      }
      return best?.0 ?? .null
    case .distinct(let set): return .int(Int64(set.count))
    }
  }

  /// The value of an aggregate over no events: 0 for `count` and `distinct_count`, 0.0 for `sum`, else null.
  static func emptyValue(_ a: Aggregate) -> Value {
    switch a {
    case .count, .distinct_count: return .int(0)
    case .sum: return .double(0)
    default: return .null
    }
  }

  static func precedes(_ a: Value, _ b: Value) -> Bool { Value.precedes(a, b) }

  /// Numbers that are equal count once in `distinct_count`: a whole double is counted as the int.
  static func canonical(_ v: Value) -> Value {
    if case .double(let d) = v, d.isFinite, d == d.rounded(), abs(d) < 9.0e15 { return .int(Int64(d)) }
    return v
  }
}

/// One profile's state of one computed trait: the aggregate's summary, kept in time buckets when the trait
/// has a window so the value falls as time passes.
///
/// **Buckets.** A windowed trait keeps one summary per bucket of `bucketWidth(for: window)` — the largest of
/// 1 day, 1 hour, 1 minute, 1 second, 1 ms, 1 µs that is at most half the window (so `90d` and `30d` use
/// daily buckets, `24h` hourly ones, `90m` minutes). Buckets are aligned to the Unix epoch (UTC days), so two
/// profiles' buckets line up and merge bucket by bucket. A bucket counts while its end is inside the window:
/// an event counts from its arrival for at least `window` and at most `window + bucket` after its timestamp.
/// Events are placed by their timestamp, so a late event lands in the bucket of its time. An all-time trait
/// keeps a single summary.
public struct ComputedTraitState: Sendable, Hashable {
  // Four words: a profile keeps one per trait, and segment evaluation reads the states of every windowed
  // trait of each profile it visits (whether a bucket left the window) from this array alone.
  /// Sorted by start; never holds two buckets with the same start. All-time: at most one, at `Int64.min`.
  private(set) var buckets: [Bucket] = [] {
    didSet { oldest = buckets.first?.start ?? Int64.max }
  }
  /// The window in microseconds; 0 for an all-time trait.
  let span: Int64
  /// Where the oldest bucket starts (`Int64.max` when there is none), kept beside `buckets` so the window
  /// check does not open the bucket array: for a profile that is not otherwise read, that array is a cache
  /// miss per windowed trait.
  private(set) var oldest = Int64.max
  public let aggregate: Aggregate

  struct Bucket: Sendable, Hashable {
    var start: Int64
    var summary: AggregateSummary
  }

  public init(aggregate: Aggregate, window: TimeSpan?) {
    self.aggregate = aggregate
    self.span = max(window?.microseconds ?? 0, 0)
  }

  public init(for decl: ComputedTraitDecl) { self.init(aggregate: decl.aggregate, window: decl.window) }

  /// The window; nil for all time.
  public var window: TimeSpan? { span > 0 ? TimeSpan(microseconds: span) : nil }

  /// Bucket width in microseconds; 0 for an all-time trait.
  var width: Int64 { span > 0 ? Self.widthMicros(span) : 0 }

  /// The width of the time buckets a window keeps (see the type's documentation).
  public static func bucketWidth(for window: TimeSpan) -> TimeSpan {
    TimeSpan(microseconds: widthMicros(window.microseconds))
  }

  static func widthMicros(_ window: Int64) -> Int64 {
    let half = window / 2
    if half >= 86_400_000_000 { return 86_400_000_000 }
    if half >= 3_600_000_000 { return 3_600_000_000 }
    if half >= 60_000_000 { return 60_000_000 }
    if half >= 1_000_000 { return 1_000_000 }
    if half >= 1000 { return 1000 }
    return 1
  }

  /// The width of this state's buckets; nil for all time.
  public var bucketWidth: TimeSpan? { width > 0 ? TimeSpan(microseconds: width) : nil }

  /// True when no event has contributed (or every contribution has expired).
  public var isEmpty: Bool { buckets.isEmpty }

  /// Where each held bucket starts, oldest first (empty for an all-time trait).
  public var bucketStarts: [Timestamp] { width > 0 ? buckets.map { Timestamp(microseconds: $0.start) } : [] }

  func bucketStart(_ t: Timestamp) -> Int64 {
    guard width > 0 else { return Int64.min }
    let q = t.microseconds / width
    let r = t.microseconds % width
    return (r < 0 ? q - 1 : q) &* width
  }

  /// The index of the first bucket with `start >= s`.
  func index(of s: Int64) -> Int {
    var lo = 0
    var hi = buckets.count
    while lo < hi {
      let mid = (lo + hi) / 2
      if buckets[mid].start < s { lo = mid + 1 } else { hi = mid }
    }
    return lo
  }

  /// Buckets starting at or before this start have left the window at `now`.
  func cutoff(_ now: Timestamp) -> Int64 {
    guard span > 0 else { return Int64.min }
    return now.microseconds &- span &- width
  }

  /// Whether a bucket has left the window at `now`: the value at `now` may be lower than when the state last
  /// changed, though the state itself did not.
  func hasExpired(at now: Timestamp) -> Bool { span > 0 && oldest <= cutoff(now) }

  /// The first time (µs) at which `hasExpired` holds; nil for an all-time trait or an empty state.
  var expiresAt: Int64? { span > 0 && oldest != Int64.max ? oldest &+ span &+ width : nil }

  /// The index of the first bucket still inside the window at `now`.
  func firstLive(_ now: Timestamp) -> Int {
    guard span > 0 else { return 0 }
    let c = cutoff(now)
    if oldest > c { return 0 }
    return index(of: c &+ 1)
  }

  /// Adds one sample in the bucket of its timestamp; false when the sample does not count.
  @discardableResult public mutating func add(_ s: AggregateSample) -> Bool {
    guard let summary = AggregateSummary.initial(s, aggregate) else { return false }
    insert(Bucket(start: bucketStart(s.timestamp), summary: summary))
    return true
  }

  /// Whether a sample of time `t` would still be inside the window at `now`. One that is not is not kept:
  /// windows only move forward, so it could never count, and keeping it only made `expire` drop it later and
  /// report the profile changed, and the trait's row be rewritten, for nothing.
  func keeps(_ t: Timestamp, now: Timestamp) -> Bool { width == 0 || bucketStart(t) > cutoff(now) }

  mutating func insert(_ b: Bucket) {
    if let last = buckets.last, last.start < b.start {
      buckets.append(b)
      return
    }
    let i = index(of: b.start)
    if i < buckets.count, buckets[i].start == b.start {
      buckets[i].summary = AggregateSummary.merge(buckets[i].summary, b.summary, aggregate)
    } else {
      buckets.insert(b, at: i)
    }
  }

  func fold(from i: Int) -> Value {
    guard i < buckets.count else { return AggregateSummary.emptyValue(aggregate) }
    var acc = buckets[i].summary
    for b in buckets[(i + 1)...] { acc = AggregateSummary.merge(acc, b.summary, aggregate) }
    return acc.value
  }

  /// The value at `now`: over the buckets still inside the window (all of them for an all-time trait).
  public func value(at now: Timestamp) -> Value { fold(from: firstLive(now)) }

  /// The value over every bucket held, as it was before the last `expire`.
  public var heldValue: Value { fold(from: 0) }

  /// Drops the buckets that have left the window at `now`; true when that changed the value.
  @discardableResult public mutating func expire(now: Timestamp) -> Bool { expiring(now: now).changed }

  /// As `expire`, also saying whether any bucket was dropped (the state changed even if its value did not).
  mutating func expiring(now: Timestamp) -> (dropped: Bool, changed: Bool) {
    let i = firstLive(now)
    guard i > 0 else { return (false, false) }
    let before = heldValue
    buckets.removeFirst(i)
    return (true, heldValue != before)
  }

  /// Adds another profile's state of the same trait, as if its events had been added here.
  public mutating func merge(_ o: ComputedTraitState) {
    guard o.aggregate == aggregate, o.span == span else { return }
    if buckets.isEmpty {
      buckets = o.buckets
      return
    }
    for b in o.buckets { insert(b) }
  }

  public func merging(_ o: ComputedTraitState) -> ComputedTraitState {
    var out = self
    out.merge(o)
    return out
  }

  /// The value of the aggregate over no events: 0 for `count` and `distinct_count`, 0.0 for `sum`, else null.
  public static func emptyValue(_ a: Aggregate) -> Value { AggregateSummary.emptyValue(a) }
}

// MARK: persistence

extension AggregateSummary {
  var encoded: Value {
    switch self {
    case .count(let n): return .int(n)
    case .sum(let v), .extreme(let v): return v
    case .avg(let v, let n): return .list([v, .int(n)])
    case .pick(let s): return .list([s.value, .int(s.timestamp.microseconds), .string(s.eventID)])
    case .frequent(let counts):
      return .list(
        counts.keys.sorted(by: Self.precedes).compactMap { v in
          counts[v].map { .list([v, .int($0.count), .int($0.lastTime.microseconds), .string($0.lastEvent)]) }
        })
    case .distinct(let set): return .list(set.sorted(by: Self.precedes))
    }
  }

  /// `encoded` as stored text, written in place.
  func write(to out: inout JSONWriter) {
    func list<T>(_ items: [T], _ write: (T) -> Void) {
      out.raw("[")
      for (n, x) in items.enumerated() {
        if n > 0 { out.raw(",") }
        write(x)
      }
      out.raw("]")
    }
    func values(_ items: [Value]) { list(items) { StoredValue.write($0, to: &out) } }
    switch self {
    case .count(let n): StoredValue.write(.int(n), to: &out)
    case .sum(let v), .extreme(let v): StoredValue.write(v, to: &out)
    case .avg(let v, let n): values([v, .int(n)])
    case .pick(let s): values([s.value, .int(s.timestamp.microseconds), .string(s.eventID)])
    case .frequent(let counts):
      list(counts.sorted { Self.precedes($0.key, $1.key) }) { v, t in
        values([v, .int(t.count), .int(t.lastTime.microseconds), .string(t.lastEvent)])
      }
    case .distinct(let set): values(set.sorted(by: Self.precedes))
    }
  }

  init?(encoded v: Value, _ a: Aggregate) {
    switch (a, v) {
    case (.count, .int(let n)): self = .count(n)
    case (.sum, _): self = .sum(v)
    case (.min, _), (.max, _): self = .extreme(v)
    case (.avg, .list(let l)):
      guard l.count == 2, case .int(let n) = l[1] else { return nil }
      self = .avg(l[0], n)
    case (.first, .list(let l)), (.last, .list(let l)):
      guard l.count == 3, case .int(let t) = l[1], case .string(let e) = l[2] else { return nil }
      self = .pick(AggregateSample(value: l[0], timestamp: Timestamp(microseconds: t), eventID: e))
    case (.most_frequent, .list(let l)):
      var counts: [Value: Tally] = [:]
      for entry in l {
        guard case .list(let f) = entry, f.count == 4, case .int(let n) = f[1], case .int(let t) = f[2],
          case .string(let e) = f[3]
        else { return nil }
        counts[f[0]] = Tally(count: n, lastTime: Timestamp(microseconds: t), lastEvent: e)
      }
      self = .frequent(counts)
    case (.distinct_count, .list(let l)): self = .distinct(Set(l))
    default: return nil
    }
  }
}

extension ComputedTraitState {
  // The stored form is an object. Its shape, either `"v"`: the declaration's digest
  // (`ComputedTraitTable.digests`: aggregate, bucket width, `where` and `of`), or `"a"` and `"w"`: aggregate
  // and bucket width, when no digest is given. Its buckets: an all-time trait's summary under `"s"`; a windowed
  // trait's under `"t"`, as `[start / width, summary]` pairs, oldest first. Either is left out when empty.
  // States are the largest rows the store rewrites (one per changed trait per profile and transaction), so
  // the form is kept short. States written before this form carried `"a"`, `"w"`, `"b"` (pairs of the full
  // start in microseconds and the summary) and a digest of `where` and `of` under `"d"`; they still read back.

  /// The state as a value a store can keep: aggregate, bucket width and the buckets.
  public var encoded: Value { encoded(digest: nil) }

  /// The stored form, with the declaration's digest in place of aggregate and width when one is given.
  func encoded(digest: String?) -> Value {
    var m: [String: Value] = [:]
    m.reserveCapacity(3)
    if let digest {
      m["v"] = .string(digest)
    } else {
      m["a"] = .string(aggregate.rawValue)
      m["w"] = .int(width)
    }
    if width == 0 {
      if let b = buckets.first { m["s"] = b.summary.encoded }
    } else if !buckets.isEmpty {
      m["t"] = .list(buckets.map { .list([.int($0.start / width), $0.summary.encoded]) })
    }
    return .map(m)
  }

  /// `StoredValue.encode(encoded(digest:))`, written straight from the buckets: the same value (its keys in
  /// a fixed order) without building the `Value` tree, which the store writer only turned into text.
  func storedText(digest: String?) -> String {
    var out = JSONWriter(capacity: 48)
    if let digest {
      out.raw(#"{"v":"#)
      out.string(digest)
    } else {
      out.raw(#"{"a":"#)
      out.string(aggregate.rawValue)
      out.raw(#","w":"#)
      StoredValue.write(.int(width), to: &out)
    }
    if width == 0 {
      if let b = buckets.first {
        out.raw(#","s":"#)
        b.summary.write(to: &out)
      }
    } else if !buckets.isEmpty {
      out.raw(#","t":["#)
      for (n, b) in buckets.enumerated() {
        out.raw(n == 0 ? "[" : ",[")
        StoredValue.write(.int(b.start / width), to: &out)
        out.raw(",")
        b.summary.write(to: &out)
        out.raw("]")
      }
      out.raw("]")
    }
    out.raw("}")
    return out.text
  }

  /// The digest a stored state carries for `decl` (see `ComputedTraitTable.digests`).
  static func digest(of decl: ComputedTraitDecl) -> String {
    let width = decl.window.map { $0.microseconds > 0 ? widthMicros($0.microseconds) : 0 } ?? 0
    let text = [decl.aggregate.rawValue, String(width), decl.of?.text ?? "", decl.filter?.text ?? ""]
    return String(StableHash.of(text.joined(separator: "\u{1F}")), radix: 16)
  }

  /// Reads a stored state back for `decl`; nil when it does not decode or was kept for a different
  /// declaration (rebuild it by replaying the profile's events).
  public init?(encoded v: Value, for decl: ComputedTraitDecl) {
    self.init(encoded: v, for: decl, digest: Self.digest(of: decl))
  }

  /// As `init(encoded:for:)`, with the declaration's digest worked out once by the caller.
  init?(encoded v: Value, for decl: ComputedTraitDecl, digest: String) {
    self.init(for: decl)
    guard case .map(let m) = v else { return nil }
    if let v = m["v"] {
      guard v == .string(digest) else { return nil }
    } else {
      guard m["a"] == .string(aggregate.rawValue), m["w"] == .int(width) else { return nil }
    }
    func summary(_ v: Value) -> AggregateSummary? { AggregateSummary(encoded: v, aggregate) }
    if let all = m["s"] {
      guard width == 0, let s = summary(all) else { return nil }
      insert(Bucket(start: Int64.min, summary: s))
    }
    // Windowed pairs hold the bucket's index (start / width); the older form's `"b"` the start itself.
    for (key, scale) in [("t", width), ("b", 1)] {
      guard let list = m[key] else { continue }
      guard case .list(let l) = list, key == "b" || width > 0 else { return nil }
      for entry in l {
        guard case .list(let pair) = entry, pair.count == 2, case .int(let k) = pair[0], let s = summary(pair[1])
        else { return nil }
        insert(Bucket(start: k &* scale, summary: s))
      }
    }
  }
}

/// A computed trait as the runtime runs it: which events it takes (`where`) and what it aggregates (`of`).
public struct ComputedTrait: Sendable {
  public let decl: ComputedTraitDecl
  public var name: String { decl.name }

  public init(_ decl: ComputedTraitDecl) { self.decl = decl }

  /// What `event` contributes, evaluated in `env` (built by `EventEnv.make`); nil when the filter rejects it
  /// or `of` is null.
  public func sample(_ event: Event, env: Env) -> AggregateSample? {
    if let f = decl.filter, !f.evaluate(env).isTrue { return nil }
    var v = Value.null
    if decl.aggregate != .count {
      guard let of = decl.of else { return nil }
      v = of.evaluate(env)
      if v.isNull { return nil }
    }
    return AggregateSample(value: v, timestamp: event.timestamp, eventID: event.id)
  }

  public func newState() -> ComputedTraitState { ComputedTraitState(for: decl) }
}

/// Every profile's computed-trait states: events are added incrementally (never by rescanning history),
/// merges combine states, and a periodic `expire` drops buckets that left their windows.
public struct ComputedTraitTable: Sendable {
  public let traits: [ComputedTrait]
  /// Identifier kinds in the order the event scope gives them slots (`config.identifiers`).
  public let identifiers: [String]
  /// Per profile, one state per trait in `traits` order. Profiles without contributions have no entry.
  public private(set) var states: [ProfileID: [ComputedTraitState]] = [:]
  /// Trait names, in `traits` order.
  public let names: [String]
  let windowed: [Int]
  /// Every trait, as a set of indexes.
  let all: IndexBits
  /// Keep samples that have already left their window when they arrive, as contributions (until the tick
  /// drops them), instead of ignoring them. The resolver sets it when a destination listens to profile
  /// changes: those are told which computed traits each batch (and the tick) touched, and keep being told
  /// exactly what they were told before samples outside their window were ignored.
  public var keepsExpiredSamples = false
  /// When each profile's windowed states next drop a bucket, so that `expiring` visits only those profiles.
  var calendar: ExpiryCalendar
  /// `contribute`'s buffers, kept between events.
  var passedScratch: [Bool?] = []
  var samplesScratch: [(Int, AggregateSample)] = []
  let empty: [ComputedTraitState]
  let emptyValues: [Value]
  // The hot path reads these instead of copying each `ComputedTrait` out of `traits`.
  /// Per trait, the index of its `where` in `distinctFilters` (nil without one): traits with the same filter
  /// text share it.
  let filterSlots: [Int?]
  let distinctFilters: [Evaluator]
  let ofs: [Evaluator?]
  let counts: [Bool]
  /// Per trait, a digest of its declaration (aggregate, bucket width, `where` and `of`), stored with its
  /// states so a changed declaration is noticed on restore.
  public let digests: [String]

  public init(computed: [ComputedTraitDecl], identifiers: [String]) {
    self.traits = computed.map(ComputedTrait.init)
    self.identifiers = identifiers
    self.names = computed.map(\.name)
    self.windowed = computed.indices.filter { computed[$0].window != nil }
    // Slots as narrow as the narrowest bucket, so a tick rarely looks at a profile that is not due yet.
    let widths = computed.compactMap { $0.window.map { ComputedTraitState.bucketWidth(for: $0).microseconds } }
    self.calendar = ExpiryCalendar(slot: max(widths.min() ?? 1_000_000, 1_000_000))
    var all = IndexBits(count: computed.count)
    for i in computed.indices { all.set(i, true) }
    self.all = all
    self.empty = computed.map { ComputedTraitState(for: $0) }
    self.emptyValues = computed.map { ComputedTraitState.emptyValue($0.aggregate) }
    func evaluator(_ e: CompiledExpr?) -> Evaluator? {
      guard let e else { return nil }
      return { e.evaluate($0) }
    }
    var slotOfText: [String: Int] = [:]
    var distinct: [Evaluator] = []
    self.filterSlots = computed.map { d in
      guard let f = d.filter, let e = evaluator(f) else { return nil }
      if let k = slotOfText[f.text] { return k }
      slotOfText[f.text] = distinct.count
      distinct.append(e)
      return distinct.count - 1
    }
    self.distinctFilters = distinct
    self.ofs = computed.map { evaluator($0.of) }
    self.counts = computed.map { $0.aggregate == .count }
    self.digests = computed.map(ComputedTraitState.digest(of:))
  }

  /// The digest the older stored form carried under `"d"`: of `where` and `of` only.
  static func legacyDigest(_ d: ComputedTraitDecl) -> String {
    String(StableHash.of((d.of?.text ?? "") + "\u{1F}" + (d.filter?.text ?? "")), radix: 16)
  }

  public init(config: PipelineConfig) {
    self.init(computed: config.computed, identifiers: config.identifiers.map(\.name))
  }

  func emptyStates() -> [ComputedTraitState] { empty }

  /// The value of trait `i` over no events.
  func emptyValue(_ i: Int) -> Value { emptyValues[i] }

  /// Adds an event of `profile`; returns the names of the traits it contributed to (their values may have
  /// changed). `now` is what `now()` reads in the expressions; a sample already outside its window at `now`
  /// is not kept and does not count as a contribution.
  @discardableResult public mutating func add(_ event: Event, to profile: ProfileID, now: Timestamp) -> [String] {
    contribute(event, to: profile, now: now).indexes.map { names[$0] }
  }

  /// As `add`, the traits contributed to as indexes into `traits` (the resolver's per-event path).
  mutating func contribute(_ event: Event, to profile: ProfileID, now: Timestamp) -> IndexBits {
    var changed = IndexBits(count: traits.count)
    guard !traits.isEmpty else { return changed }
    let env = EventEnv.make(event, identifiers: identifiers, now: now)
    // Each distinct `where` is evaluated at most once per event, however many traits share it. Both buffers
    // are the previous event's, cleared (one allocation per run instead of two per event).
    var passed = passedScratch
    passedScratch = []
    if passed.count == distinctFilters.count {
      for k in passed.indices { passed[k] = nil }
    } else {
      passed = Array(repeating: nil, count: distinctFilters.count)
    }
    // Left empty by the previous event (below).
    var samples = samplesScratch
    samplesScratch = []
    defer {
      passedScratch = passed
      samples.removeAll(keepingCapacity: true)
      samplesScratch = samples
    }
    for i in filterSlots.indices {
      // As `ComputedTrait.sample`, without copying the declaration.
      if let k = filterSlots[i] {
        let ok = passed[k] ?? distinctFilters[k](env).isTrue
        passed[k] = ok
        if !ok { continue }
      }
      var v = Value.null
      if !counts[i] {
        guard let of = ofs[i] else { continue }
        v = of(env)
        if v.isNull { continue }
      }
      // Already outside its window: changes nothing (and a profile with nothing else gets no states).
      if !keepsExpiredSamples, !empty[i].keeps(event.timestamp, now: now) { continue }
      samples.append((i, AggregateSample(value: v, timestamp: event.timestamp, eventID: event.id)))
    }
    guard !samples.isEmpty else { return changed }
    // One look-up of the profile's states for all its samples.
    if let sooner = Self.add(samples, to: &states[profile, default: empty], now: now, &changed) {
      calendar.note(profile, expiresAt: sooner)
    }
    return changed
  }

  /// Adds the samples; returns the new expiry of a windowed state whose oldest bucket got older (a first or a
  /// late sample), the earliest if several: the only case in which the profile may fall due sooner.
  static func add(
    _ samples: [(Int, AggregateSample)], to states: inout [ComputedTraitState], now: Timestamp,
    _ changed: inout IndexBits
  ) -> Int64? {
    var sooner: Int64?
    for (i, s) in samples {
      let oldest = states[i].oldest
      guard states[i].add(s) else { continue }
      changed.set(i, true)
      if states[i].oldest < oldest, let e = states[i].expiresAt { sooner = min(sooner ?? e, e) }
    }
    return sooner
  }

  /// When the profile's states next drop a bucket, noted in the calendar (nothing for profiles without a
  /// windowed bucket).
  mutating func schedule(_ profile: ProfileID, _ s: [ComputedTraitState]) {
    var first: Int64?
    for i in windowed where i < s.count {
      if let e = s[i].expiresAt { first = min(first ?? e, e) }
    }
    if let first { calendar.note(profile, expiresAt: first) }
  }

  /// Moves the absorbed profile's states into the survivor's, as if all its events had been the survivor's.
  public mutating func merge(absorbed: ProfileID, into survivor: ProfileID) {
    guard absorbed != survivor, let gone = take(absorbed) else { return }
    adopt(gone, into: survivor)
  }

  /// Removes and returns a profile's states (the profile moves to another table: a merge across partitions).
  mutating func take(_ profile: ProfileID) -> [ComputedTraitState]? {
    calendar.forget(profile)
    return states.removeValue(forKey: profile)
  }

  /// Merges states taken from another table into `survivor`'s, as `merge(absorbed:into:)` does within one.
  mutating func adopt(_ gone: [ComputedTraitState], into survivor: ProfileID) {
    guard var mine = states[survivor] else {
      states[survivor] = gone
      schedule(survivor, gone)
      return
    }
    for i in mine.indices where i < gone.count { mine[i].merge(gone[i]) }
    states[survivor] = mine
    schedule(survivor, mine)
  }

  /// Forgets a profile's states (before a rebuild from replayed events).
  public mutating func remove(_ profile: ProfileID) {
    states.removeValue(forKey: profile)
    calendar.forget(profile)
  }

  /// Replaces a profile's states (restored from a store).
  public mutating func restore(_ profile: ProfileID, states s: [ComputedTraitState]) {
    guard s.count == traits.count else { return }
    states[profile] = s
    schedule(profile, s)
  }

  /// A profile's states as stored values, by trait name (traits without events are left out).
  public func encodedStates(of profile: ProfileID) -> [String: Value] {
    guard let s = states[profile] else { return [:] }
    var out: [String: Value] = [:]
    for (i, t) in traits.enumerated() where !s[i].isEmpty { out[t.name] = s[i].encoded }
    return out
  }

  /// Restores a profile's states from stored values; returns the traits whose stored state could not be used
  /// (unknown encoding, or the declaration changed), which the caller rebuilds by replaying events.
  @discardableResult public mutating func restore(_ profile: ProfileID, encoded: [String: Value]) -> [String] {
    var s = emptyStates()
    var failed: [String] = []
    for (i, t) in traits.enumerated() {
      guard let v = encoded[t.name] else { continue }
      // The older stored form's digest (of `where` and `of` only); states stored before digests were kept
      // carry none and are accepted.
      if case .map(let m) = v, case .string(let d)? = m["d"], d != Self.legacyDigest(t.decl) {
        failed.append(t.name)
        continue
      }
      if let state = ComputedTraitState(encoded: v, for: t.decl, digest: digests[i]) {
        s[i] = state
      } else {
        failed.append(t.name)
      }
    }
    if s.allSatisfy(\.isEmpty) {
      remove(profile)
    } else {
      states[profile] = s
      schedule(profile, s)
    }
    return failed
  }

  public func state(of profile: ProfileID, _ trait: String) -> ComputedTraitState? {
    guard let i = traits.firstIndex(where: { $0.name == trait }) else { return nil }
    return states[profile]?[i]
  }

  /// Every computed trait's value for `profile` at `now` (the empty value for traits without events).
  public func values(of profile: ProfileID, at now: Timestamp) -> [String: Value] {
    var out: [String: Value] = [:]
    out.reserveCapacity(traits.count)
    for (i, v) in valueList(of: profile, at: now).enumerated() { out[names[i]] = v }
    return out
  }

  /// The same values, positionally in `traits` order (the computed part of `PipelineConfig.segmentTraitOrder`).
  public func valueList(of profile: ProfileID, at now: Timestamp) -> [Value] {
    guard let s = states[profile] else { return emptyValues }
    return s.map { $0.value(at: now) }
  }

  /// Drops expired buckets of every windowed trait; returns the profiles whose values changed, for segment
  /// re-evaluation. Profiles left without any state lose their entry.
  public mutating func expire(now: Timestamp) -> Set<ProfileID> { Set(expiring(now: now).keys) }

  /// As `expire`; for each profile whose values changed, the traits that dropped buckets (whose stored state
  /// changed; the others' stored rows stay as they are).
  ///
  /// Only the profiles the calendar has due by `now` are looked at, not every profile: a tick over a million
  /// profiles cost a third of a second even when nothing had expired, and the server ticks every minute.
  mutating func expiring(now: Timestamp) -> [ProfileID: IndexBits] {
    guard !windowed.isEmpty else { return [:] }
    var changed: [ProfileID: IndexBits] = [:]
    var emptied: [ProfileID] = []
    for p in calendar.take(through: now.microseconds) {
      guard let i = states.index(forKey: p) else { continue }
      var any = false
      var dropped = IndexBits(count: traits.count)
      for k in windowed {
        let e = states.values[i][k].expiring(now: now)
        if e.dropped { dropped.set(k, true) }
        if e.changed { any = true }
      }
      // Not due after all (its expiry is later in the same slot), or due again later.
      schedule(p, states.values[i])
      if any {
        changed[p] = dropped
        if states.values[i].allSatisfy(\.isEmpty) { emptied.append(p) }
      }
    }
    for p in emptied { remove(p) }
    return changed
  }
}

/// Which profiles' windowed states drop a bucket when: a profile is noted in the slot of its earliest expiry
/// (or an earlier one), and a tick takes the profiles of every slot up to its time instead of visiting every
/// profile. Noting a profile again for a later slot keeps the earlier one; a profile taken and not due after
/// all is noted again by the caller. Lists may name a profile that has since been noted elsewhere or
/// forgotten: only the slot in `due` counts.
struct ExpiryCalendar: Sendable {
  /// The slot width in microseconds.
  let slot: Int64
  var lists: [Int64: [ProfileID]] = [:]
  /// The slots that have a list, earliest first.
  var order = Heap<Int64>()
  /// Per profile, the slot it is due in.
  var due: [ProfileID: Int64] = [:]

  init(slot: Int64) { self.slot = max(slot, 1) }

  func slot(of t: Int64) -> Int64 {
    let q = t / slot
    return t % slot < 0 ? q - 1 : q
  }

  mutating func note(_ p: ProfileID, expiresAt t: Int64) {
    let s = slot(of: t)
    if let current = due[p], current <= s { return }
    due[p] = s
    if lists[s]?.append(p) == nil {
      lists[s] = [p]
      order.insert(s)
    }
  }

  mutating func forget(_ p: ProfileID) { due.removeValue(forKey: p) }

  /// Takes the profiles due in the slots up to the one of `t`: they are no longer noted.
  mutating func take(through t: Int64) -> [ProfileID] {
    let last = slot(of: t)
    var out: [ProfileID] = []
    while let s = order.min, s <= last {
      _ = order.removeMin()
      for p in lists.removeValue(forKey: s) ?? [] where due[p] == s {
        due.removeValue(forKey: p)
        out.append(p)
      }
    }
    return out
  }
}
