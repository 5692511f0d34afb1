import TesseraCompiler
import TesseraModel
import TesseraStore

/// One observed value of a trait, with where and when it came from.
public struct Observation: Sendable, Hashable {
  public var value: Value
  public var source: String
  public var eventID: String
  public var timestamp: Timestamp

  public init(value: Value, source: String, eventID: String, timestamp: Timestamp) {
    self.value = value
    self.source = source
    self.eventID = eventID
    self.timestamp = timestamp
  }

  /// Later timestamp wins; equal timestamps are ordered by event id so the outcome never depends on arrival.
  func isNewer(than o: Observation) -> Bool { (timestamp, eventID) > (o.timestamp, o.eventID) }
}

/// How one attribute's value is chosen among observations, with the policy's summary of what was seen.
/// Summaries merge without the full history, so merging two profiles re-applies the policy over both.
public struct TraitPolicy: Sendable {
  public var kind: PolicyKind
  /// For `source_priority`: sources in order of trust; unlisted sources rank after them.
  public var sources: [String]

  public init(kind: PolicyKind, sources: [String] = []) {
    self.kind = kind
    self.sources = sources
  }

  func rank(_ source: String) -> Int { sources.firstIndex(of: source) ?? sources.count }

  /// Adds one observation to a summary (nil: the first one).
  public func add(_ o: Observation, to state: TraitState?) -> TraitState {
    guard var s = state else { return TraitState.initial(o, kind) }
    // Fast paths for the single-winner policies: the same decisions as `merge` with a one-observation summary,
    // without building one (this runs for every trait of every event).
    switch kind {
    case .most_recent:
      if o.isNewer(than: s.winner) { s.winner = o }
    case .first_seen:
      if s.winner.isNewer(than: o) { s.winner = o }
    case .max, .min:
      let c = Value.compare(o.value, s.winner.value) ?? 0
      let better = kind == .max ? c > 0 : c < 0
      if better || (c == 0 && s.winner.isNewer(than: o)) { s.winner = o }
    default:
      return merge(state, TraitState.initial(o, kind))
    }
    if o.isNewer(than: s.latest) { s.latest = o }
    s.observations += 1
    return s
  }

  /// Combines two summaries of the same trait.
  public func merge(_ a: TraitState?, _ b: TraitState) -> TraitState {
    guard let a else { return b }
    var out = a
    out.latest = b.latest.isNewer(than: a.latest) ? b.latest : a.latest
    switch kind {
    case .most_recent:
      out.winner = b.winner.isNewer(than: a.winner) ? b.winner : a.winner
    case .first_seen:
      out.winner = a.winner.isNewer(than: b.winner) ? b.winner : a.winner
    case .max, .min:
      let c = Value.compare(b.winner.value, a.winner.value) ?? 0
      let better = kind == .max ? c > 0 : c < 0
      // Equal values: keep the earlier observation as the one that first reached it.
      out.winner = better || (c == 0 && a.winner.isNewer(than: b.winner)) ? b.winner : a.winner
    case .source_priority:
      for (s, o) in b.bySource where out.bySource[s].map({ o.isNewer(than: $0) }) ?? true { out.bySource[s] = o }
      out.winner =
        out.bySource.values.min { x, y in
          let (rx, ry) = (rank(x.source), rank(y.source))
          return rx != ry ? rx < ry : x.isNewer(than: y)
        } ?? out.winner
    case .most_frequent:
      for (v, entry) in b.counts {
        if let mine = out.counts[v] {
          out.counts[v] = (mine.0 + entry.0, entry.1.isNewer(than: mine.1) ? entry.1 : mine.1)
        } else {
          out.counts[v] = entry
        }
      }
      out.winner =
        out.counts.values.max { x, y in x.0 != y.0 ? x.0 < y.0 : y.1.isNewer(than: x.1) }?.1 ?? out.winner
    case .sum:
      out.total = NumericSum.add(a.total, b.total)
      out.winner = Observation(
        value: out.total, source: out.latest.source, eventID: out.latest.eventID, timestamp: out.latest.timestamp)
    case .union:
      var seen = Set(a.members)
      for v in b.members where seen.insert(v).inserted { out.members.append(v) }
      out.members = TraitState.ordered(out.members)
      out.winner = Observation(
        value: .list(out.members), source: out.latest.source, eventID: out.latest.eventID,
        timestamp: out.latest.timestamp)
    }
    out.observations = a.observations + b.observations
    return out
  }

  /// Why the visible value won, in words.
  public func explain(_ s: TraitState) -> String {
    switch kind {
    case .most_recent: return "most recent (\(s.winner.timestamp.iso8601))"
    case .first_seen: return "first seen (\(s.winner.timestamp.iso8601))"
    case .max: return "largest of \(s.observations) value\(s.observations == 1 ? "" : "s")"
    case .min: return "smallest of \(s.observations) value\(s.observations == 1 ? "" : "s")"
    case .source_priority:
      let order = sources.isEmpty ? "" : " (\(sources.joined(separator: " > ")))"
      return "source priority\(order): \(s.winner.source) is the most trusted source with a value"
    case .most_frequent:
      let n = s.counts[s.winner.value]?.0 ?? 0
      return "most frequent: \(n) of \(s.observations) observations"
    case .sum: return "sum of \(s.observations) value\(s.observations == 1 ? "" : "s")"
    case .union: return "union of \(s.members.count) distinct value\(s.members.count == 1 ? "" : "s")"
    }
  }
}

/// Adding observed numbers: ints stay ints until they overflow, anything else adds as doubles, null adds nothing.
enum NumericSum {
  static func add(_ a: Value, _ b: Value) -> Value {
    switch (a, b) {
    case (.int(let x), .int(let y)):
      let (s, o) = x.addingReportingOverflow(y)
      return o ? .double(Double(x) + Double(y)) : .int(s)
    default:
      guard let x = a.doubleValue, let y = b.doubleValue else { return a.isNull ? b : a }
      return .double(x + y)
    }
  }
}

/// A policy's summary of a trait's observations.
public struct TraitState: Sendable {
  /// The observation whose value is visible.
  public var winner: Observation
  /// The newest observation of any value.
  public var latest: Observation
  /// How many observations went into this state.
  public var observations: Int
  var bySource: [String: Observation] = [:]
  var counts: [Value: (Int, Observation)] = [:]
  var total: Value = .null
  var members: [Value] = []

  public var value: Value { winner.value }

  static func initial(_ o: Observation, _ kind: PolicyKind) -> TraitState {
    var s = TraitState(winner: o, latest: o, observations: 1)
    switch kind {
    case .source_priority: s.bySource = [o.source: o]
    case .most_frequent: s.counts = [o.value: (1, o)]
    case .sum:
      s.total = o.value.doubleValue == nil ? .int(0) : o.value
      s.winner.value = s.total
    case .union:
      if case .list(let l) = o.value {
        var seen = Set<Value>()
        s.members = ordered(l.filter { !$0.isNull && seen.insert($0).inserted })
      } else {
        s.members = [o.value]
      }
      s.winner.value = .list(s.members)
    default: break
    }
    return s
  }

  /// Union members in one canonical order (kind, then value), so the list never depends on the order
  /// observations arrived in or on which of two merged profiles survived.
  static func ordered(_ values: [Value]) -> [Value] { values.sorted(by: Value.precedes) }

  // MARK: persistence

  static func encode(_ o: Observation) -> Value {
    .map(["v": o.value, "s": .string(o.source), "e": .string(o.eventID), "t": .int(o.timestamp.microseconds)])
  }

  static func decode(_ v: Value) -> Observation? {
    guard case .map(let m) = v, let s = m["s"]?.stringValue, let e = m["e"]?.stringValue,
      case .int(let t)? = m["t"]
    else { return nil }
    return Observation(value: m["v"] ?? .null, source: s, eventID: e, timestamp: Timestamp(microseconds: t))
  }

  /// The summary as a value a store can keep.
  /// The winner is written once: `l` is left out when the latest observation is the winner, and an
  /// observation of `by_source` or `counts` that is the winner is written as the string `"w"`. (A trait's
  /// state is rewritten whenever an event observes it, so its size is much of what a run writes; most
  /// states held the same observation three times.) States written in full read back the same.
  public var encoded: Value { encoded(withWinner: true) }

  /// The summary without its winner (`w`), for a store row that holds the winner in columns of its own
  /// (`TraitRecord`'s value, source, event id and timestamp): read back with `init?(encoded:winner:)`.
  public var encodedWithoutWinner: Value { encoded(withWinner: false) }

  func encoded(withWinner: Bool) -> Value {
    var m: [String: Value] = ["n": .int(Int64(observations))]
    if withWinner { m["w"] = Self.encode(winner) }
    if latest != winner { m["l"] = Self.encode(latest) }
    let same = Value.string("w")
    func written(_ o: Observation) -> Value { o == winner ? same : Self.encode(o) }
    if !bySource.isEmpty { m["by_source"] = .list(bySource.keys.sorted().compactMap { bySource[$0].map(written) }) }
    if !counts.isEmpty {
      m["counts"] = .list(
        counts.sorted { JSON.encode($0.key) < JSON.encode($1.key) }.map {
          .list([.int(Int64($0.value.0)), written($0.value.1)])
        })
    }
    if !total.isNull { m["total"] = total }
    if !members.isEmpty { m["members"] = .list(members) }
    return .map(m)
  }

  /// `winner`: the winner as the store row holds it, for a summary written without one (a summary that has
  /// `w` reads it from there).
  public init?(encoded v: Value, winner: Observation? = nil) {
    guard case .map(let m) = v, case .int(let n)? = m["n"] else { return nil }
    let w: Observation
    if let written = m["w"] {
      guard let o = Self.decode(written) else { return nil }
      w = o
    } else if let winner {
      w = winner
    } else {
      return nil
    }
    let latest: Observation
    if let l = m["l"] {
      guard let o = Self.decode(l) else { return nil }
      latest = o
    } else {
      latest = w
    }
    self.init(winner: w, latest: latest, observations: Int(n))
    func read(_ v: Value) -> Observation? { v == .string("w") ? w : Self.decode(v) }
    if case .list(let l)? = m["by_source"] {
      for o in l.compactMap(read) { bySource[o.source] = o }
    }
    if case .list(let l)? = m["counts"] {
      for entry in l {
        guard case .list(let pair) = entry, pair.count == 2, case .int(let c) = pair[0], let o = read(pair[1])
        else { continue }
        counts[o.value] = (Int(c), o)
      }
    }
    total = m["total"] ?? .null
    if case .list(let l)? = m["members"] { members = l }
  }

  init(winner: Observation, latest: Observation, observations: Int) {
    self.winner = winner
    self.latest = latest
    self.observations = observations
  }
}

extension TraitPolicy {
  /// The policy as stores keep it (`TraitPolicies`).
  var stored: TraitPolicies.Policy { TraitPolicies.Policy(kind: kind.rawValue, sources: sources) }
}

/// The pipeline's trait policies, as the identity stage and the profile partitions apply them: each declared
/// trait's; consent (`consent.PURPOSE`) always the most recent decision; other traits the default.
struct PipelinePolicies: Sendable {
  let declared: [String: TraitPolicy]
  let other: TraitPolicy
  static let consent = TraitPolicy(kind: .most_recent)

  init(config: PipelineConfig) {
    var declared: [String: TraitPolicy] = [:]
    for t in config.traits { declared[t.name] = TraitPolicy(kind: t.policy, sources: t.sources) }
    self.declared = declared
    self.other = TraitPolicy(kind: config.defaultPolicy)
  }

  func policy(for trait: String) -> TraitPolicy {
    if let p = declared[trait] { return p }
    return trait.hasPrefix("consent.") ? Self.consent : other
  }

  /// The same, as stores keep them (each transaction carries them; `CommitBatch.traitPolicies`).
  var stored: TraitPolicies {
    TraitPolicies(traits: declared.mapValues(\.stored), other: other.stored, consent: Self.consent.stored)
  }
}

extension TraitRecord {
  /// Why the row's value won, in words (`TraitPolicy.explain`): the sentence a row written by an earlier version
  /// carries, else told from the store's trait policies (`Store.traitPolicies`). Nil when neither says.
  public func why(policies: TraitPolicies?) -> String? {
    if case .map(let m) = state, case .string(let w)? = m["why"] { return w }
    guard let stored = policies?.policy(for: trait), let kind = PolicyKind(rawValue: stored.kind) else { return nil }
    let winner = Observation(value: value, source: source, eventID: eventID, timestamp: timestamp)
    guard let s = TraitState(encoded: state, winner: winner) else { return nil }
    return TraitPolicy(kind: kind, sources: stored.sources).explain(s)
  }
}
