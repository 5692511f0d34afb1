import Foundation
import TesseraCompiler
import TesseraLanguage
import TesseraModel

/// A Fellegi–Sunter model: for each compared field, ordered levels with an m probability (of the level among
/// matching pairs) and a u probability (among non-matching pairs), plus an implicit last `else` level.
/// A pair's match weight is the prior weight plus, for each field with a value on both sides, log2(m/u) of the
/// first level the pair reaches; its match probability is 2^w / (1 + 2^w).
public struct MatchModel: Sendable {
  public struct Comparison: Sendable {
    /// The comparison's name (the trait it compares, or the name of a comparison of several traits).
    public var field: String
    /// Indices into `MatchModel.fields` (and `RecordSet.columns`) of the traits compared.
    public var columns: [Int] = []
    public var levels: [ComparisonLevel]
    /// One per level plus `else` last.
    public var m: [Double]
    public var u: [Double]
    /// Fixed in the configuration; training leaves these alone.
    public var fixedM: [Bool]
    public var fixedU: [Bool]
    /// Index of the exact level whose weight is adjusted by the term frequency of the value.
    public var tfLevel: Int?
    /// Where the values came from: `config`, `trained` (parameters file or this run), `default`.
    public var origin: [String]
    /// The column a `swapped_with` level reads.
    public var swapIndex: Int?

    public var levelCount: Int { levels.count + 1 }
    public func name(ofLevel l: Int) -> String { l < levels.count ? levels[l].description : "else" }
    public func weight(ofLevel l: Int) -> Double { log2(m[l] / u[l]) }
    /// A value more profiles share than this adds nothing when it agrees (`max_sharing` of a device rule).
    public var maxSharing = Int.max

    /// The weight of level `l` when `sharedBy` profiles were seen with the value in the window: an agreement
    /// on a value n profiles share is n times as likely by chance (u·n), so it weighs log2(n) less, never
    /// below nothing, and nothing at all past `maxSharing`. Disagreement keeps its weight.
    public func weight(ofLevel l: Int, sharedBy n: Int32?) -> Double {
      let w = weight(ofLevel: l)
      guard let n, n > 1, l < levels.count, w > 0 else { return w }
      return Int(n) > maxSharing ? 0 : max(0, w - log2(Double(n)))
    }

    public var needsDate: Bool {
      levels.contains {
        switch $0 {
        case .within(_, .some), .transposedDayMonth: return true
        default: return false
        }
      }
    }
    public var needsNumber: Bool {
      levels.contains {
        if case .within(_, .none) = $0 { return true }
        return false
      }
    }
    public var needsPhonetic: Bool { levels.contains(.soundex) }
    public var needsNickname: Bool { levels.contains(.nickname) }
    public var editCap: Int {
      levels.reduce(0) {
        switch $1 {
        case .levenshtein(let n), .damerauLevenshtein(let n): return max($0, n)
        default: return $0
        }
      }
    }
  }

  public var rule: String
  public var comparisons: [Comparison]
  /// Every trait the comparisons read, once: the columns of a `RecordSet`.
  public var fields: [String]
  /// What scoring runs per comparison (levels never change after the rule is compiled).
  let kernels: [LevelKernel]
  /// The probability that two records drawn at random are the same person.
  public var prior: Double
  public var priorFixed: Bool
  public var merge: Double
  public var review: Double
  public var maxClusterSize: Int
  /// Fields of each blocking rule (the `traits.X` its keys read), so training can leave them out.
  public var blockingFields: [Set<String>]
  public var blockingText: [String]
  /// Whether each blocking rule's pairs train m (see `ProbabilisticRule.trainOn`).
  public var blockingTrains: [Bool]
  /// How a rule on device signals keeps sightings and weighs shared values (nil: a rule on traits only).
  public var signals: SignalSettings?

  public init(rule: ProbabilisticRule) {
    self.rule = rule.name
    merge = rule.merge
    review = rule.review
    maxClusterSize = rule.maxClusterSize
    priorFixed = rule.prior != nil
    prior = rule.prior ?? rule.trainedPrior ?? 1e-4
    blockingFields = rule.blocking.map { keys in
      Set(
        keys.flatMap(\.references).compactMap { ref in
          ref.hasPrefix("traits.") ? String(ref.dropFirst("traits.".count)) : nil
        })
    }
    blockingText = rule.blocking.map { "[" + $0.map(\.text).joined(separator: ", ") + "]" }
    blockingTrains = rule.blocking.indices.map { $0 < rule.trainOn.count ? rule.trainOn[$0] : true }
    comparisons = rule.comparisons.map { c in
      let n = c.levels.count
      let (dm, du) = MatchModel.defaults(levels: n)
      var m: [Double] = []
      var u: [Double] = []
      var fm: [Bool] = []
      var fu: [Bool] = []
      var origin: [String] = []
      for (i, l) in c.levels.enumerated() {
        m.append(l.m ?? l.trainedM ?? dm[i])
        u.append(l.u ?? l.trainedU ?? du[i])
        fm.append(l.m != nil)
        fu.append(l.u != nil)
        origin.append(l.m != nil && l.u != nil ? "config" : (l.trainedM != nil ? "trained" : "default"))
      }
      m.append(c.elseM ?? c.trainedElseM ?? dm[n])
      u.append(c.elseU ?? c.trainedElseU ?? du[n])
      fm.append(c.elseM != nil)
      fu.append(c.elseU != nil)
      origin.append(c.elseM != nil && c.elseU != nil ? "config" : (c.trainedElseM != nil ? "trained" : "default"))
      return Comparison(
        field: c.trait, levels: c.levels.map(\.level), m: m, u: u, fixedM: fm, fixedU: fu,
        tfLevel: c.levels.firstIndex { $0.termFrequency && $0.level == .exact }, origin: origin)
    }
    var fields: [String] = []
    func column(_ name: String) -> Int {
      if let i = fields.firstIndex(of: name) { return i }
      fields.append(name)
      return fields.count - 1
    }
    for (c, decl) in rule.comparisons.enumerated() {
      comparisons[c].columns = decl.fields.map(column)
    }
    for c in comparisons.indices {
      for l in comparisons[c].levels {
        // `swapped_with` names another comparison of one trait; its column is that trait's.
        if case .swappedWith(let other) = l {
          let target = rule.comparisons.first { $0.trait == other }?.fields.first ?? other
          comparisons[c].swapIndex = column(target)
        }
      }
    }
    self.fields = fields
    if let settings = rule.signals {
      signals = settings
      for c in comparisons.indices { comparisons[c].maxSharing = settings.maxSharing }
    }
    kernels = comparisons.map(LevelKernel.init)
  }

  /// The columns compared by a `within N minutes` level of a device signal: they need the time each record
  /// was seen with its value (`RecordSet.seen`).
  public var timedColumns: [Int] {
    var timed: [Int] = []
    for comparison in comparisons
    where comparison.levels.contains(where: { if case .seenWithin = $0 { true } else { false } }) {
      timed += comparison.columns.filter { !timed.contains($0) }
    }
    return timed
  }

  /// The comparisons of a device rule whose agreement weighs less the more profiles (or records) share the
  /// value (`signals.frequency`), with the signal each compares.
  public var frequencyComparisons: [(comparison: Int, signal: String)] {
    guard let settings = signals else { return [] }
    return comparisons.enumerated().compactMap { c, comparison in
      comparison.columns.count == 1 && settings.frequency.contains(comparison.field) ? (c, comparison.field) : nil
    }
  }

  /// Untrained starting values: the first level is likely among matches and rare among non-matches, later
  /// levels less so, `else` the opposite. Used until `tessera link --train` writes estimates.
  public static func defaults(levels n: Int) -> (m: [Double], u: [Double]) {
    guard n > 1 else { return ([0.9, 0.1], [0.01, 0.99]) }
    let m = [0.8] + Array(repeating: 0.15 / Double(n - 1), count: n - 1) + [0.05]
    let u = [0.005] + Array(repeating: 0.02, count: n - 1) + [0.995 - 0.02 * Double(n - 1)]
    return (m, u)
  }

  public var priorWeight: Double { log2(prior / (1 - prior)) }

  /// Whether the m/u of every level came from the configuration or training.
  public var isTrained: Bool { comparisons.allSatisfy { !$0.origin.contains("default") } }

  public static func probability(weight: Double) -> Double { 1 / (1 + exp2(-weight)) }
  public static func weight(probability p: Double) -> Double {
    p >= 1 ? .infinity : (p <= 0 ? -.infinity : log2(p / (1 - p)))
  }

  public var mergeWeight: Double { MatchModel.weight(probability: merge) }
  public var reviewWeight: Double { MatchModel.weight(probability: review) }

  /// The mixed-radix code of a pair's levels: per comparison 0 = a value is missing, 1 + level otherwise.
  public var radices: [UInt64] { comparisons.map { UInt64($0.levelCount + 1) } }

  public func decode(_ pattern: UInt64) -> [Int] {
    var p = pattern
    var out: [Int] = []
    for c in comparisons {
      let r = UInt64(c.levelCount + 1)
      out.append(Int(p % r) - 1)
      p /= r
    }
    return out
  }

  /// The weight of a pattern without term-frequency adjustments and without the prior.
  public func evidence(_ pattern: UInt64) -> Double {
    var p = pattern
    var w = 0.0
    for c in comparisons {
      let r = UInt64(c.levelCount + 1)
      let code = Int(p % r)
      p /= r
      if code > 0 { w += c.weight(ofLevel: code - 1) }
    }
    return w
  }
}
