import Foundation
import TesseraCompiler
import TesseraIdentity
import TesseraLanguage
import TesseraMatching
import TesseraModel

/// Probabilistic matching inside a run: every live profile is indexed under the blocking keys of each
/// probabilistic rule (from its current traits and identifiers); an event whose identifiers reach no
/// profile is scored against the profiles its own keys reach, with the same model `tessera link` uses.
public struct StreamingMatcher: Sendable {
  struct RuleIndex: Sendable {
    let rule: ProbabilisticRule
    let model: MatchModel
    /// Traits and identifier kinds whose change can move a profile's keys or values.
    let inputs: Set<String>
    /// Per blocking rule, the names its keys read: a record lacking one of each rule's has no key at all.
    let keyInputs: [Set<String>]
    /// An empty builder for this rule, copied for each use (building one costs more than the records).
    let template: RecordSetBuilder
    var byKey: [UInt64: [ProfileID]] = [:]
    var keysOf: [ProfileID: [UInt64]] = [:]
    /// Per comparison with a term-frequency level: value hash → profiles holding it, and of each profile its
    /// value, so frequencies follow the profiles as they change.
    var tfCounts: [Int: [UInt64: Int]] = [:]
    var tfOf: [ProfileID: [Int: UInt64]] = [:]
    var tfTotal: [Int: Int] = [:]
    /// Records joined into each profile by this rule (the streaming counterpart of a cluster's size).
    var joins: [ProfileID: Int] = [:]
    /// Of a rule on device signals: the columns compared by a `within N minutes` level (they need the time
    /// each record was seen with its value), and the comparisons weighed by how many profiles share a value.
    var timedColumns: [Int] = []
    var frequencyComparisons: [(comparison: Int, signal: String)] = []
    /// Per blocking rule: the frequency-weighed signal it is keyed by alone (`[signals.ip]`), else nil.
    var crowdKeys: [String?] = []
    /// The single-column comparisons with `within N minutes|hours` levels, with their longest window (seconds).
    var timedComparisons: [(field: String, window: Int64)] = []
    /// Whether a pair can reach `review` only with some timed level agreeing (the other levels' best weights
    /// and the prior stay below it): then candidates and sightings without a recent agreeing value are skipped.
    var needsTimedAgreement = false
    /// When one comparison is weighed by frequency: `model.weightBound` for each count of profiles sharing the
    /// event's value, 0 through `max_sharing` + 1 (what `SharedValues.count` can say), computed once.
    var boundBySharing: [Double]?
    /// The single-column comparisons whose one level is `exact` (signals.os, …): two values whose folded hashes
    /// differ take `else`, so the bound of a pair falls by `drop` (the best level's weight, or nothing, less
    /// `else`'s). Lets a sighting that cannot reach `review` be skipped before it is scored.
    var exactOnly: [(field: String, drop: Double)] = []
    var device: Bool { rule.signals != nil }

    /// `model.weightBound(sharing:)`, from the table when there is one.
    func weightBound(sharing: [Int: Int32]) -> Double? {
      if let table = boundBySharing, let (c, _) = frequencyComparisons.first {
        return table[min(table.count - 1, max(0, Int(sharing[c] ?? 0)))]
      }
      return model.weightBound(sharing: sharing)
    }
  }

  /// What the best candidate of an event is.
  public struct Candidate: Sendable, Equatable {
    public var rule: String
    public var profile: ProfileID
    public var weight: Double
    public var probability: Double
    public var merge: Bool
    public var maxClusterSize: Int
    /// Each comparison's level and weight (`Explanation.summary`), kept with a device link.
    public var evidence: String = ""
  }

  var rules: [RuleIndex]
  let config: PipelineConfig
  /// The names any rule reads (traits and identifier kinds): what `index` and `best` need in `values`.
  public let inputs: Set<String>
  /// Profile pairs a reviewer rejected: never proposed again.
  var rejected: Set<[ProfileID]> = []
  /// Events whose device link a person undid (`tessera unmerge --link`): no rule links them again.
  var rejectedEvents: Set<String> = []
  /// Per profile, the combinations of device-signal values it was seen with, newest first (rules on
  /// device signals only; bounded and expiring as `sightingLimit` and `sightingKeep` say).
  var sightings: [ProfileID: [Sighting]] = [:]
  /// Per frequency-weighed signal and value: the profiles seen with it and when last (`SharedValues`).
  var shared: [String: SharedValues] = [:]
  let sightingLimit: Int
  let sightingKeep: TimeSpan
  let sharingWindow: TimeSpan
  /// Derived signals by the context fields they come from (most events repeat their session's).
  var deriver: SignalDeriver
  /// The signals the rules read (`signalsRead`): the only ones events carry and sightings hold.
  let signalNames: Set<String>
  /// The signals some rule weighs by how many profiles share a value.
  let frequencySignals: [String]
  /// Whether some rule compares device signals: events then carry `signals.*` values and profiles sightings.
  public let readsSignals: Bool
  /// The consent purpose of each rule on device signals (nil: it needs none).
  public let signalConsents: [String?]

  public var isEmpty: Bool { rules.isEmpty }

  public init(config: PipelineConfig) {
    self.config = config
    rules = config.probabilistic.map { rule in
      let model = MatchModel(rule: rule)
      let keyInputs = rule.blockingInputs
      var inputs = Set(model.fields).union(keyInputs.flatMap { $0 })
      if let purpose = rule.consent { inputs.insert("consent." + purpose) }
      let crowdKeys = keyInputs.map { names -> String? in
        guard names.count == 1, let name = names.first, rule.signals?.frequency.contains(name) == true else {
          return nil
        }
        return name
      }
      let timedComparisons = model.comparisons.compactMap { c in
        c.columns.count == 1 ? c.sightingWindow.map { (c.field, $0) } : nil
      }
      let bound = model.weightBoundWithoutSightings
      return RuleIndex(
        rule: rule, model: model, inputs: inputs, keyInputs: keyInputs,
        template: RecordSetBuilder(model: model, rule: rule, config: config),
        timedColumns: rule.signals == nil ? [] : model.timedColumns, frequencyComparisons: model.frequencyComparisons,
        crowdKeys: crowdKeys, timedComparisons: timedComparisons,
        needsTimedAgreement: rule.signals != nil && !timedComparisons.isEmpty
          && bound.map { $0 < model.reviewWeight } == true,
        boundBySharing: Self.boundTable(model, rule),
        exactOnly: model.comparisons.indices.compactMap { c in
          let comparison = model.comparisons[c]
          guard comparison.columns.count == 1, comparison.levels.count == 1, case .exact = comparison.levels[0],
            comparison.tfLevel == nil, rule.signals != nil
          else { return nil }
          let best = max(0, comparison.weight(ofLevel: 0), comparison.weight(ofLevel: 1))
          return (comparison.field, best - comparison.weight(ofLevel: 1))
        })
    }
    inputs = rules.reduce(into: Set<String>()) { $0.formUnion($1.inputs) }
    let devices = config.probabilistic.compactMap(\.signals)
    readsSignals = !devices.isEmpty
    signalNames = Self.signalsRead(config)
    deriver = SignalDeriver(keeping: signalNames)
    frequencySignals = Array(Set(rules.flatMap { $0.frequencyComparisons.map(\.signal) })).sorted()
    signalConsents = config.probabilistic.filter { $0.signals != nil }.map(\.consent)
    sightingLimit = devices.map(\.perProfile).max() ?? 0
    sightingKeep = devices.map(\.keep).max() ?? TimeSpan(microseconds: 0)
    sharingWindow = devices.map(\.window).max() ?? TimeSpan(microseconds: 0)
  }

  /// `RuleIndex.boundBySharing` of a rule on device signals with one frequency-weighed comparison.
  static func boundTable(_ model: MatchModel, _ rule: ProbabilisticRule) -> [Double]? {
    guard let settings = rule.signals, model.frequencyComparisons.count == 1,
      let c = model.frequencyComparisons.first?.comparison, model.weightBound() != nil
    else { return nil }
    let top = min(settings.maxSharing, 1 << 16) + 1
    return (0...top).compactMap { n in model.weightBound(sharing: [c: Int32(n)]) }
  }

  /// Whether some blocking rule of rule `r` can form a key from these values.
  func mayHaveKey(_ r: Int, _ values: [String: String]) -> Bool {
    rules[r].keyInputs.contains { names in names.allSatisfy { values[$0] != nil } }
  }

  /// Whether a change of these traits or identifier kinds can change what the rules see of a profile.
  public func matters(_ names: some Sequence<String>) -> Bool {
    names.contains { name in rules.contains { $0.inputs.contains(name) } }
  }

  /// The records of `values` (one per entry) prepared for a rule; record ids are the profile ids.
  func records(_ r: Int, _ entries: [(id: String, values: [String: String])], keyed: Bool = true) -> RecordSet {
    var builder = rules[r].template
    builder.computesKeys = keyed
    for e in entries { builder.append(id: e.id) { e.values[$0] } }
    return builder.finish()
  }

  /// (Re)indexes a profile under its current keys; `values` holds its traits and identifiers as text.
  public mutating func index(_ profile: ProfileID, values: [String: String]) {
    for r in rules.indices where rules[r].device {
      remove(profile, rule: r)
      // A rule on device signals reaches a profile through the keys of each combination it was seen with.
      var builder = rules[r].template
      var keys: [UInt64] = []
      // Each sighting's signals over the profile's values, read in place (as scoring joins them).
      for s in sightings[profile] ?? [] {
        for k in builder.keys(id: profile.description, value: { s.values[$0] ?? values[$0] })
        where k != 0 && !keys.contains(k) {
          keys.append(k)
        }
      }
      guard !keys.isEmpty else { continue }
      rules[r].keysOf[profile] = keys
      for k in keys { rules[r].byKey[k, default: []].append(profile) }
    }
    for r in rules.indices where !rules[r].device {
      // Only the keys and the term-frequency values are needed, not a record set; a profile whose change left
      // both as they were (most changes: a trait no key reads) is not touched.
      var keys: [UInt64] = []
      var tf: [Int: UInt64] = [:]
      if mayHaveKey(r, values) {
        var builder = rules[r].template
        for k in builder.keys(id: profile.description, value: { values[$0] }) where k != 0 && !keys.contains(k) {
          keys.append(k)
        }
        let model = rules[r].model
        for (c, comparison) in model.comparisons.enumerated() where comparison.tfLevel != nil {
          let h = values[model.fields[comparison.columns[0]]].map(RecordSetBuilder.valueHash) ?? 0
          if h != 0 { tf[c] = h }
        }
      }
      if keys.isEmpty && tf.isEmpty && rules[r].keysOf[profile] == nil && rules[r].tfOf[profile] == nil { continue }
      if rules[r].keysOf[profile] == keys && (rules[r].tfOf[profile] ?? [:]) == tf { continue }
      remove(profile, rule: r)
      guard mayHaveKey(r, values) else { continue }
      rules[r].keysOf[profile] = keys
      for k in keys { rules[r].byKey[k, default: []].append(profile) }
      for (c, h) in tf {
        rules[r].tfOf[profile, default: [:]][c] = h
        rules[r].tfCounts[c, default: [:]][h, default: 0] += 1
        rules[r].tfTotal[c, default: 0] += 1
      }
    }
  }

  /// Takes a profile out of the index (it was absorbed by a merge, or is about to be re-indexed).
  public mutating func remove(_ profile: ProfileID) {
    for r in rules.indices { remove(profile, rule: r) }
  }

  /// Takes a profile out of rule `r`'s index.
  mutating func remove(_ profile: ProfileID, rule r: Int) {
    guard rules[r].keysOf[profile] != nil || rules[r].tfOf[profile] != nil else { return }
    for k in rules[r].keysOf.removeValue(forKey: profile) ?? [] {
      rules[r].byKey[k]?.removeAll { $0 == profile }
      if rules[r].byKey[k]?.isEmpty == true { rules[r].byKey[k] = nil }
    }
    for (c, h) in rules[r].tfOf.removeValue(forKey: profile) ?? [:] {
      rules[r].tfCounts[c]?[h, default: 1] -= 1
      if rules[r].tfCounts[c]?[h] == 0 { rules[r].tfCounts[c]?[h] = nil }
      rules[r].tfTotal[c, default: 1] -= 1
    }
  }

  /// A profile absorbed `absorbed` by a merge: their join counts add up, and so do their sightings.
  public mutating func merged(_ absorbed: ProfileID, into survivor: ProfileID) {
    remove(absorbed)
    if readsSignals { mergeSightings(absorbed, into: survivor) }
    for r in rules.indices {
      if let n = rules[r].joins.removeValue(forKey: absorbed) { rules[r].joins[survivor, default: 0] += n }
    }
  }

  public mutating func joined(_ profile: ProfileID, rule: String) {
    guard let r = rules.firstIndex(where: { $0.rule.name == rule }) else { return }
    rules[r].joins[profile, default: 0] += 1
  }

  public func joins(_ profile: ProfileID, rule: String) -> Int {
    rules.first { $0.rule.name == rule }?.joins[profile] ?? 0
  }

  public mutating func reject(_ a: ProfileID, _ b: ProfileID) { rejected.insert([min(a, b), max(a, b)]) }

  /// The best candidate at or above some rule's `review` threshold for an event's values, among the live
  /// profiles its keys reach (`profileValues(p)` reads a profile as `index` does).
  ///
  /// `at` is the event's time (rules on device signals measure sightings from it); `allowed(rule, profile)`
  /// says whether a rule may use a profile's values (nil: the event's), for consent and `keep_apart`.
  public func best(
    event: [String: String], at: Timestamp = Timestamp(microseconds: 0),
    allowed: (ProbabilisticRule, ProfileID?) -> Bool = { _, _ in true },
    profileValues: (ProfileID) -> [String: String]
  ) -> Candidate? {
    var best: Candidate?
    for r in rules.indices where rules[r].device && mayHaveKey(r, event) && allowed(rules[r].rule, nil) {
      guard let c = bestDevice(r, event: event, at: at, allowed: allowed, profileValues: profileValues) else {
        continue
      }
      if let b = best, b.weight >= c.weight { continue }
      best = c
    }
    for r in rules.indices where !rules[r].device && mayHaveKey(r, event) {
      let index = rules[r]
      var builder = index.template
      var candidates: [ProfileID] = []
      for k in builder.keys(id: "event", value: { event[$0] }) where k != 0 {
        for p in index.byKey[k] ?? [] where !candidates.contains(p) { candidates.append(p) }
      }
      guard !candidates.isEmpty else { continue }
      candidates.sort()
      var set = records(
        r, [("event", event)] + candidates.map { p in (p.description, profileValues(p)) }, keyed: false)
      // Term frequencies come from the indexed profiles, not from this handful of records.
      for (c, comparison) in index.model.comparisons.enumerated() {
        guard let level = comparison.tfLevel, let total = index.tfTotal[c],
          total >= RecordSet.minimumTermFrequencyValues
        else {
          set.tfAdjust[c] = nil
          continue
        }
        let column = set.columns[comparison.columns[0]]
        let u = comparison.u[level]
        set.tfAdjust[c] = (0..<set.count).map { i in
          let h = column.hash[i]
          guard h != 0 else { return 0 }
          return RecordSet.termFrequencyAdjustment(u: u, count: index.tfCounts[c]?[h] ?? 0, total: total)
        }
      }
      for (k, p) in candidates.enumerated() {
        let w = index.model.compare(set, 0, k + 1).weight
        guard w >= index.model.reviewWeight else { continue }
        if let b = best, b.weight >= w { continue }
        best = Candidate(
          rule: index.rule.name, profile: p, weight: w, probability: MatchModel.probability(weight: w),
          merge: w >= index.model.mergeWeight, maxClusterSize: index.model.maxClusterSize)
      }
    }
    return best
  }

  public func isRejected(_ a: ProfileID, _ b: ProfileID) -> Bool { rejected.contains([min(a, b), max(a, b)]) }

  /// Undoes the device link an event raised: no rule links that event again (a replay honours it).
  public mutating func reject(event: String) { rejectedEvents.insert(event) }
  public func isRejected(event: String) -> Bool { rejectedEvents.contains(event) }
}
