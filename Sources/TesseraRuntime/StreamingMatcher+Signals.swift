import TesseraCompiler
import TesseraMatching
import TesseraModel

/// One combination of device-signal values a profile was seen with (`signals.ip`, `signals.os`, …), and when
/// it was first and last seen with it.
struct Sighting: Sendable, Hashable {
  var values: [String: String]
  var hash: UInt64
  var last: Timestamp
}

/// The profiles seen with one value of a frequency-weighed signal, and when each was last seen with it,
/// counted over the rules' sliding window. Entries older than the window are dropped at most every eighth of
/// a window, so a count may include profiles seen up to 1⅛ windows ago.
struct SharedValues: Sendable {
  struct Seen: Sendable {
    var last: [ProfileID: Timestamp] = [:]
    var pruned: Timestamp?
  }
  var values: [String: Seen] = [:]

  mutating func saw(_ value: String, _ profile: ProfileID, at: Timestamp, window: TimeSpan) {
    Self.saw(&values[value, default: Seen()], profile, at: at, window: window)
  }

  /// One lookup of the value per event (its entry updated in place).
  static func saw(_ seen: inout Seen, _ profile: ProfileID, at: Timestamp, window: TimeSpan) {
    if let t = seen.last[profile] {
      if at > t { seen.last[profile] = at }
    } else {
      seen.last[profile] = at
    }
    if let p = seen.pruned, at.microseconds - p.microseconds <= window.microseconds / 8 { return }
    seen.pruned = at
    let from = at.microseconds - window.microseconds
    if seen.last.values.contains(where: { $0.microseconds < from }) {
      seen.last = seen.last.filter { $0.value.microseconds >= from }
    }
  }

  /// The distinct profiles seen with `value` in the window before `at`, counted up to `limit` + 1 (past the
  /// limit the exact number does not matter).
  func count(_ value: String, at: Timestamp, window: TimeSpan, limit: Int = .max) -> Int {
    guard let seen = values[value] else { return 0 }
    let from = at.microseconds - window.microseconds
    var n = 0
    for t in seen.last.values where t.microseconds >= from {
      n += 1
      if n > limit { break }
    }
    return n
  }

  mutating func moved(_ absorbed: ProfileID, to survivor: ProfileID, values moving: Set<String>) {
    for v in moving {
      guard let t = values[v]?.last.removeValue(forKey: absorbed) else { continue }
      let kept = values[v]?.last[survivor] ?? t
      values[v]?.last[survivor] = max(kept, t)
    }
  }
}

/// An event's value of a signal compared by a `within N minutes|hours` level, with that comparison's longest
/// window in seconds; `hash` is the value's folded hash (`RecordSetBuilder.valueHash`).
struct TimedValue: Sendable {
  var field: String
  var window: Int64
  var hash: UInt64
}

/// Derives the device signals of events' contexts as rules read them (`signals.ip`, …), once per distinct
/// context and parsing each user agent once (bounded caches). The decode stage derives them for each event
/// (on its own tasks, beside mapping); the identity stage only for events that come without them.
///
/// Only the signals some rule reads are kept (`keeping`): an event carries, a profile's sightings hold and the
/// store keeps those, and each distinct context's combination hash is computed once with them.
public struct SignalDeriver: Sendable {
  /// The signal names kept (`signals.ip`, …); nil: all of them.
  let keeping: Set<String>?
  /// Known contexts by `SignalContext.hash` (checked against the whole key on a hit).
  var contexts: [UInt64: (key: SignalContext, signals: [String: String], combination: UInt64)] = [:]
  /// What each user agent says (kept signals) by header: a few hundred distinct ones behind millions of
  /// contexts.
  var userAgents: [String: [String: String]] = [:]

  public init(keeping: Set<String>? = nil) { self.keeping = keeping }

  public mutating func signals(of context: [String: Value]) -> [String: String] { derived(of: context).signals }

  /// Derived signals as rules read them (`signals.` before each name), those no rule reads left out.
  func kept(_ derived: [String: String]) -> [String: String] {
    var out: [String: String] = [:]
    out.reserveCapacity(derived.count)
    for (k, v) in derived {
      guard let name = DeviceSignals.ruleNames[k], keeping?.contains(name) ?? true else { continue }
      out[name] = v
    }
    return out
  }

  /// The signals of a context and their combination (`StreamingMatcher.combination`).
  public mutating func derived(of context: [String: Value]) -> (signals: [String: String], combination: UInt64) {
    let key = SignalContext(context)
    let hash = key.hash
    if let known = contexts[hash], known.key == key { return (known.signals, known.combination) }
    // A context differs from the last one by its address more often than by its browser: what a user agent
    // says is derived once per header (parsing every user agent again was 80 % of deriving, and deriving half
    // the identity stage's time with a device rule).
    var out: [String: String] = [:]
    if let header = DeviceSignals.userAgentHeader(context) {
      if let known = userAgents[header] {
        out = known
      } else {
        let said = kept(DeviceSignals.userAgentSignals(header, UserAgent.parse(header)))
        if userAgents.count >= 4_096 { userAgents.removeAll(keepingCapacity: true) }
        userAgents[header] = said
        out = said
      }
    }
    out.merge(kept(DeviceSignals.contextSignals(context))) { $1 }
    if contexts.count >= 16_384 { contexts.removeAll(keepingCapacity: true) }
    let combination = StreamingMatcher.combination(out)
    contexts[hash] = (key, out, combination)
    return (out, combination)
  }
}

/// The context fields signals are read from, as one key: most events repeat their session's. Text fields are
/// kept as text and the screen as its two numbers; the context is read in one pass over its few members, and
/// the key's `hash` is FNV-1a over the fields' bytes (finding a known context through `Hashable`, six
/// dictionary lookups and SipHash over `Value`s, a screen's map above all, cost more than deriving once did).
struct SignalContext: Equatable, Sendable {
  var ip: String?
  var userAgent: String?
  var userAgentSnake: String?
  var locale: String?
  var timezone: String?
  var screen: String?
  var width: Double?
  var height: Double?
  /// A field of another type than these (kept whole, rare).
  var other: [String: Value]?

  init(_ context: [String: Value]) {
    for (key, value) in context {
      switch key {
      case "ip", "userAgent", "user_agent", "locale", "timezone":
        switch value {
        case .string(let s):
          switch key {
          case "ip": ip = s
          case "userAgent": userAgent = s
          case "user_agent": userAgentSnake = s
          case "locale": locale = s
          default: timezone = s
          }
        case .null: break
        default: other = (other ?? [:]).merging([key: value]) { $1 }
        }
      case "screen":
        switch value {
        case .map(let m):
          width = m["width"]?.doubleValue
          height = m["height"]?.doubleValue
        case .string(let s): screen = s
        case .null: break
        default: other = (other ?? [:]).merging([key: value]) { $1 }
        }
      default: continue
      }
    }
  }

  var hash: UInt64 {
    var hasher = Hasher()
    func mix(_ s: String?) {
      guard var s else { return hasher.combine(0 as UInt8) }
      // The text's bytes in one go, then its length (so ("ab", "c") and ("a", "bc") differ).
      s.withUTF8 { hasher.combine(bytes: UnsafeRawBufferPointer($0)) }
      hasher.combine(s.utf8.count &+ 1)
    }
    mix(ip)
    mix(userAgent)
    mix(userAgentSnake)
    mix(locale)
    mix(timezone)
    mix(screen)
    hasher.combine(width)
    hasher.combine(height)
    if let other { hasher.combine(Value.map(other)) }
    return UInt64(bitPattern: Int64(hasher.finalize()))
  }
}

extension StreamingMatcher {
  /// Signal names as the rules read them, in `DeviceSignals.names` order.
  static let signalKeys = DeviceSignals.names.map { "signals." + $0 }

  /// The device signals of an event's context as the rules read them (`signals.ip`, …); see `SignalDeriver`.
  public mutating func signals(of context: [String: Value]) -> [String: String] { deriver.signals(of: context) }

  /// The `signals.*` names the rules of `config` compare or block on: the only ones derived and kept.
  public static func signalsRead(_ config: PipelineConfig) -> Set<String> {
    var names = Set<String>()
    for rule in config.probabilistic where rule.signals != nil {
      let model = MatchModel(rule: rule)
      for name in model.fields + rule.blockingInputs.flatMap({ $0 }) where name.hasPrefix("signals.") {
        names.insert(name)
      }
    }
    return names
  }

  /// Records that `profile` was seen with these signals at `at`. Returns whether the profile's combinations
  /// changed (a new one, or one expired or pushed out), so it must be indexed again.
  /// `combination` is `StreamingMatcher.combination(signals)` when the caller has it (the decode stage computes
  /// it beside the signals, off the serial identity stage).
  public mutating func sight(
    _ profile: ProfileID, _ signals: [String: String], at: Timestamp, combination: UInt64? = nil
  ) -> Bool {
    guard readsSignals, !signals.isEmpty else { return false }
    for name in frequencySignals {
      if let v = signals[name] { shared[name, default: SharedValues()].saw(v, profile, at: at, window: sharingWindow) }
    }
    let h = combination ?? Self.combination(signals)
    let expiry = at.microseconds - sightingKeep.microseconds
    return Self.sight(
      &sightings[profile, default: []], signals, hash: h, at: at, expiry: expiry, limit: sightingLimit)
  }

  /// `sight` on a profile's list in place (newest first): most events repeat the newest sighting and only
  /// move its time.
  static func sight(
    _ list: inout [Sighting], _ signals: [String: String], hash h: UInt64, at: Timestamp, expiry: Int64, limit: Int
  ) -> Bool {
    var changed = false
    // Newest first: expired sightings are at the end.
    if let oldest = list.last, oldest.last.microseconds < expiry {
      list.removeAll { $0.last.microseconds < expiry }
      changed = true
    }
    if list.first?.hash == h {
      if at > list[0].last { list[0].last = at }
    } else if let k = list.firstIndex(where: { $0.hash == h }) {
      if at > list[k].last {
        list[k].last = at
        // A sighting seen again moves to the front.
        list.insert(list.remove(at: k), at: 0)
      }
    } else {
      list.insert(Sighting(values: signals, hash: h, last: at), at: 0)
      list.sort { $0.last > $1.last }
      if list.count > limit { list.removeLast(list.count - limit) }
      changed = true
    }
    return changed
  }

  /// A hash of a combination of signal values: equal combinations are equal texts in name order (the hash
  /// only tells the sightings of one profile apart, within one process).
  public static func combination(_ signals: [String: String]) -> UInt64 {
    var hasher = Hasher()
    for name in Self.signalKeys {
      hasher.combine(signals[name])
    }
    return UInt64(bitPattern: Int64(hasher.finalize()))
  }

  /// How long a sighting is kept after it was last seen (the longest `signals.keep` of the rules).
  public var sightingsKept: TimeSpan { sightingKeep }

  /// A profile's sightings, newest first, as the store keeps them (`SightingRecord`).
  public func storedSightings(_ profile: ProfileID) -> [(signals: [String: String], last: Timestamp)] {
    (sightings[profile] ?? []).map { ($0.values, $0.last) }
  }

  /// Restores a profile's stored sightings (a writer starting on a store), bounded as `sight` bounds them,
  /// and counts the profile again on each frequency-weighed value it was seen with: the profiles sharing a
  /// value are rebuilt from the sightings. Index the profile afterwards.
  public mutating func restoreSightings(_ profile: ProfileID, _ stored: [(signals: [String: String], last: Timestamp)])
  {
    guard readsSignals, !stored.isEmpty else { return }
    // Stored before a rule stopped reading a signal: the signals no rule reads now are not kept.
    var list = stored.map { s in
      let values = s.signals.filter { signalNames.contains($0.key) }
      return Sighting(values: values, hash: Self.combination(values), last: s.last)
    }
    list.sort { $0.last > $1.last }
    var seen = Set<UInt64>()
    list = list.filter { seen.insert($0.hash).inserted }
    if list.count > sightingLimit { list.removeLast(list.count - sightingLimit) }
    sightings[profile] = list
    // Oldest first, so each value's count is pruned from the newest sighting's time.
    for s in list.reversed() {
      for name in frequencySignals {
        if let v = s.values[name] {
          shared[name, default: SharedValues()].saw(v, profile, at: s.last, window: sharingWindow)
        }
      }
    }
  }

  mutating func mergeSightings(_ absorbed: ProfileID, into survivor: ProfileID) {
    guard let gone = sightings.removeValue(forKey: absorbed) else { return }
    var all = (sightings[survivor] ?? []) + gone
    all.sort { $0.last > $1.last }
    var seen = Set<UInt64>()
    all = all.filter { seen.insert($0.hash).inserted }
    if all.count > sightingLimit { all.removeLast(all.count - sightingLimit) }
    sightings[survivor] = all
    for name in Array(shared.keys) {
      shared[name]?.moved(absorbed, to: survivor, values: Set(gone.compactMap { $0.values[name] }))
    }
  }

  /// The best candidate of rule `r` (on device signals) for an event seen at `at`: each profile its keys
  /// reach is scored by its best sighting, with time levels measured from the profile's last sighting of the
  /// event's value and shared values weighed by how many profiles were seen with them in the window.
  func bestDevice(
    _ r: Int, event: [String: String], at: Timestamp, allowed: (ProbabilisticRule, ProfileID?) -> Bool,
    profileValues: (ProfileID) -> [String: String]
  ) -> Candidate? {
    let index = rules[r]
    let settings = index.rule.signals ?? SignalSettings()
    // How many profiles share each frequency-weighed value of the event (enough to tell a crowd).
    var sharedBy: [String: Int] = [:]
    for (_, name) in index.frequencyComparisons {
      if let v = event[name] {
        sharedBy[name] = shared[name]?.count(v, at: at, window: settings.window, limit: settings.maxSharing) ?? 0
      }
    }
    // An address shared by enough profiles weighs so little that no pair can reach `review`, whatever else
    // agrees (an office's, before it is a crowd): nothing is scored.
    let sharing = Dictionary(
      index.frequencyComparisons.map { ($0.comparison, Int32(clamping: sharedBy[$0.signal] ?? 0)) },
      uniquingKeysWith: max)
    let bound = index.weightBound(sharing: sharing)
    if let bound, bound < index.model.reviewWeight { return nil }
    let eventHashes = index.exactOnly.map { e in event[e.field].map(RecordSetBuilder.valueHash) }
    var builder = index.template
    var candidates: [ProfileID] = []
    for (b, key) in builder.keys(id: "event", value: { event[$0] }).enumerated() where key != 0 {
      // A block keyed by one crowd's value (an office's or a carrier's address) only holds candidates whose
      // agreement on it adds nothing: it is not searched.
      if let name = index.crowdKeys[b], (sharedBy[name] ?? 0) > settings.maxSharing { continue }
      for p in index.byKey[key] ?? [] where !candidates.contains(p) { candidates.append(p) }
    }
    candidates.sort()
    // When the rule's levels below the timed ones cannot reach `review` together (`needsTimedAgreement`), only
    // a sighting holding the event's value of a timed signal can make a link: a profile not seen with such a
    // value within that comparison's longest window is not scored, nor are a scored profile's other sightings.
    // (Without this every sighting of every profile seen on an address within `keep` was scored at each event.)
    let timed =
      index.needsTimedAgreement
      ? index.timedComparisons.compactMap { t -> TimedValue? in
        event[t.field].map { TimedValue(field: t.field, window: t.window, hash: RecordSetBuilder.valueHash($0)) }
      } : nil
    let now = at.microseconds / 1_000_000
    let timedNames = index.timedColumns.map { index.model.fields[$0] }
    var entries: [(id: String, values: [String: String])] = [("event", event)]
    var owner: [ProfileID] = [ProfileID(0)]
    var seenAt: [[String: Timestamp]] = [[:]]
    let from = at.microseconds - sightingKeep.microseconds
    for p in candidates where allowed(index.rule, p) {
      let kept = (sightings[p] ?? []).filter { $0.last.microseconds >= from }
      var scored = kept
      if let timed {
        // Per sighting, which timed signals hold the event's value (hashed once); the profile is scored only
        // when it was last seen with one of them within that comparison's window, and then only on those.
        let agrees = kept.map { s in timed.map { t in s.values[t.field].map(RecordSetBuilder.valueHash) == t.hash } }
        let recent = timed.indices.contains { k in
          let newest = kept.indices.filter { agrees[$0][k] }.map { kept[$0].last.microseconds / 1_000_000 }.max()
          return newest.map { abs(now - $0) <= timed[k].window } ?? false
        }
        guard recent else { continue }
        scored = kept.indices.filter { agrees[$0].contains(true) }.map { kept[$0] }
      }
      let values = profileValues(p)
      if let bound, !eventHashes.isEmpty {
        // The bound of each pair: an exact-only comparison whose two values differ takes `else`.
        scored = scored.filter { s in
          var b = bound
          for (k, e) in index.exactOnly.enumerated() {
            guard let h = eventHashes[k], let v = s.values[e.field] ?? values[e.field],
              RecordSetBuilder.valueHash(v) != h
            else { continue }
            b -= e.drop
          }
          return b >= index.model.reviewWeight
        }
      }
      guard !scored.isEmpty else { continue }
      // When the profile was last seen with each value of each timed signal (only those are read below), for
      // the profiles that are scored.
      var last: [String: Timestamp] = [:]
      for s in kept {
        for name in timedNames {
          guard let v = s.values[name] else { continue }
          let key = name + "=" + v
          if last[key].map({ $0 < s.last }) ?? true { last[key] = s.last }
        }
      }
      for s in scored {
        entries.append((p.description, values.merging(s.values) { _, signal in signal }))
        owner.append(p)
        seenAt.append(last)
      }
    }
    guard entries.count > 1 else { return nil }
    var set = records(r, entries, keyed: false)
    let fields = index.model.fields
    for f in index.timedColumns {
      let name = fields[f]
      set.seen[f] = entries.indices.map { i in
        if i == 0 { return at.microseconds / 1_000_000 }
        guard let v = entries[i].values[name], let t = seenAt[i][name + "=" + v] else { return .min }
        return t.microseconds / 1_000_000
      }
    }
    for (c, name) in index.frequencyComparisons {
      // An agreement is on the event's value: its count serves every record.
      set.sharing[c] = Array(repeating: Int32(clamping: sharedBy[name] ?? 0), count: set.count)
    }
    var best: (k: Int, weight: Double)?
    for k in 1..<set.count {
      let w = index.model.compare(set, 0, k).weight
      guard w >= index.model.reviewWeight else { continue }
      if let b = best, b.weight >= w { continue }
      best = (k, w)
    }
    guard let best else { return nil }
    var c = Candidate(
      rule: index.rule.name, profile: owner[best.k], weight: best.weight,
      probability: MatchModel.probability(weight: best.weight), merge: best.weight >= index.model.mergeWeight,
      maxClusterSize: index.model.maxClusterSize)
    c.evidence = Explanation(model: index.model, records: set, 0, best.k).summary()
    return c
  }
}

extension StreamingMatcher {
  /// The values of a signal a profile's sightings hold, newest first (for tests and `explain`).
  public func sightedValues(_ profile: ProfileID, _ signal: String) -> [String] {
    (sightings[profile] ?? []).compactMap { $0.values[signal] }
  }
}
