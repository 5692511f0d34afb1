import Foundation
import TesseraModel

/// How many pairs showed each pattern (`MatchModel.radices` code), optionally per blocking-rule mask.
public struct PatternCounts: Sendable, AdditiveArithmetic {
  public var counts: [UInt64: Double] = [:]
  public var total: Double = 0

  public static var zero: PatternCounts { PatternCounts() }
  public static func + (a: PatternCounts, b: PatternCounts) -> PatternCounts {
    var out = a
    out.counts.merge(b.counts, uniquingKeysWith: +)
    out.total += b.total
    return out
  }
  public static func - (a: PatternCounts, b: PatternCounts) -> PatternCounts {
    var out = a
    out.counts.merge(b.counts.mapValues { -$0 }, uniquingKeysWith: +)
    out.total -= b.total
    return out
  }
  public mutating func add(_ pattern: UInt64, _ n: Double = 1) {
    counts[pattern, default: 0] += n
    total += n
  }

  /// The counts by pattern code: the order every sum over patterns runs in, so that it does not depend on
  /// the order the counts were added in (which decides a dictionary's order).
  public var sorted: [(pattern: UInt64, count: Double)] {
    counts.sorted { $0.key < $1.key }.map { (pattern: $0.key, count: $0.value) }
  }
}

/// What training did, for the report and the parameters file.
public struct TrainingReport: Sendable {
  public struct Session: Sendable {
    public var rule: Int
    public var pairs: Int
    public var iterations: Int
    public var lambda: Double
    public var estimated: [String]
    public var excluded: [String]
  }
  public var randomPairs: Int = 0
  public var sessions: [Session] = []
  public var notEstimated: [String] = []
  public var prior: Double = 0
  public var priorSource: String = ""
}

/// Unsupervised estimation of the model: u from random pairs (seeded), m by expectation–maximisation over
/// the pairs of each blocking rule, leaving out the fields the rule blocks on (they agree on every pair it
/// generates, so their m cannot be learned from them), and the prior from the expected number of matches.
public struct Trainer: Sendable {
  public var seed: UInt64 = 42
  public var randomPairs: Int = 1_000_000
  public var maxIterations: Int = 100
  public var tolerance: Double = 1e-6

  public init(seed: UInt64 = 42, randomPairs: Int = 1_000_000) {
    self.seed = seed
    self.randomPairs = randomPairs
  }

  /// u of every level not fixed in the configuration: the level frequencies among random pairs, which are
  /// almost all non-matches. A level never seen gets half a pair's worth, so its weight stays finite. The
  /// pairs are drawn in order from the seed and compared in parts on all cores; the counts are whole
  /// numbers, so the result does not depend on how the parts finish.
  public func estimateU(_ model: inout MatchModel, records: RecordSet, mode: LinkMode) async -> Int {
    let n = records.count
    guard n >= 2 else { return 0 }
    var rng = SplitMix64(seed: seed)
    var pairs: [(Int32, Int32)] = []
    var attempts = 0
    let maxPairs = mode == .dedupe ? n * (n - 1) / 2 : Int.max
    let target = min(randomPairs, maxPairs)
    pairs.reserveCapacity(target)
    while pairs.count < target && attempts < target * 20 {
      attempts += 1
      let i = rng.int(0..<n)
      let j = rng.int(0..<n)
      if i == j { continue }
      if mode == .linkOnly && records.origin[i] == records.origin[j] { continue }
      pairs.append((Int32(i), Int32(j)))
    }
    let empty = model.comparisons.map { Array(repeating: 0, count: $0.levelCount) }
    let sampled = pairs
    let parts = max(1, ProcessInfo.processInfo.activeProcessorCount * 2)
    let size = (sampled.count + parts - 1) / parts
    var counts = empty
    // The levels as the compare path gets them, from rows of value codes built per pair.
    let plans = LevelPlans(model: model, records: records, carryFrom: nil)
    let width = plans.width
    let values = records.columns.count
    await withTaskGroup(of: [[Int]].self) { group in
      for start in stride(from: 0, to: sampled.count, by: max(size, 1)) {
        group.addTask {
          var part = empty
          plans.withRowLevels(records, values: 0) { levels in
            withUnsafeTemporaryAllocation(of: UInt32.self, capacity: 2 * width + 1) { rows in
              // Safe: the allocation holds at least one element.
              guard let rowI = rows.baseAddress else { return }
              let rowJ = rowI + width
              for (i, j) in sampled[start..<min(start + size, sampled.count)] {
                for f in 0..<values {
                  rowI[f] = levels.columns[f].codes[Int(i)]
                  rowJ[f] = levels.columns[f].codes[Int(j)]
                }
                plans.fillTimes(records, Int(i), rowI)
                plans.fillTimes(records, Int(j), rowJ)
                for c in part.indices {
                  let l = levels.level(c, rowI, rowJ)
                  if l >= 0 { part[c][l] += 1 }
                }
              }
            }
          }
          return part
        }
      }
      for await part in group {
        for c in counts.indices { for l in counts[c].indices { counts[c][l] += part[c][l] } }
      }
    }
    for c in model.comparisons.indices {
      let total = counts[c].reduce(0, +)
      guard total > 0 else { continue }
      let smoothed = counts[c].map { max(Double($0), 0.5) }
      let sum = smoothed.reduce(0, +)
      for l in 0..<model.comparisons[c].levelCount where !model.comparisons[c].fixedU[l] {
        model.comparisons[c].u[l] = smoothed[l] / sum
        model.comparisons[c].origin[l] = "trained"
      }
    }
    return sampled.count
  }

  /// One EM session: m of the comparisons in `estimate` and the share of matches λ among these pairs, with
  /// u held fixed. Comparisons outside `estimate` are left out of the likelihood.
  ///
  /// Every sum runs in a fixed order (patterns by code, comparisons by index), so the same counts give the
  /// same estimates to the last bit however the counts were gathered.
  public func expectationMaximisation(
    _ model: MatchModel, patterns: PatternCounts, estimate: Set<Int>
  ) -> (m: [[Double]], lambda: Double, iterations: Int) {
    var m = model.comparisons.map(\.m)
    var lambda = 0.1
    let estimated = estimate.sorted()
    let entries = patterns.sorted.filter { $0.count > 0 }.map { (levels: model.decode($0.pattern), count: $0.count) }
    let total = entries.reduce(0) { $0 + $1.count }
    guard total > 0 else { return (m, lambda, 0) }
    let logU = model.comparisons.map { $0.u.map(log) }
    var iterations = 0
    for iteration in 1...maxIterations {
      iterations = iteration
      let logM = m.map { $0.map(log) }
      var mAcc = model.comparisons.map { Array(repeating: 0.0, count: $0.levelCount) }
      var matches = 0.0
      for e in entries {
        var lm = log(lambda)
        var lu = log(1 - lambda)
        for c in estimated {
          let l = e.levels[c]
          guard l >= 0 else { continue }
          lm += logM[c][l]
          lu += logU[c][l]
        }
        let p = 1 / (1 + exp(lu - lm))
        matches += p * e.count
        for c in estimated {
          let l = e.levels[c]
          if l >= 0 { mAcc[c][l] += p * e.count }
        }
      }
      var change = abs(matches / total - lambda)
      lambda = min(max(matches / total, 1e-9), 1 - 1e-9)
      for c in estimated {
        let sum = mAcc[c].reduce(0, +)
        guard sum > 0 else { continue }
        for l in mAcc[c].indices where !model.comparisons[c].fixedM[l] {
          let v = max(mAcc[c][l] / sum, 1e-6)
          change = max(change, abs(v - m[c][l]))
          m[c][l] = v
        }
      }
      if change < tolerance { break }
    }
    return (m, lambda, iterations)
  }

  /// Trains u, then m rule by rule from the pattern counts of each rule's pairs, then the prior.
  /// `patternsByRule[r]` counts the pairs rule r generates on its own (with or without other rules).
  public func train(
    _ model: inout MatchModel, records: RecordSet, mode: LinkMode, patternsByRule: [PatternCounts],
    union: PatternCounts
  ) async -> TrainingReport {
    var report = TrainingReport()
    report.randomPairs = await estimateU(&model, records: records, mode: mode)
    var sums = model.comparisons.map { Array(repeating: 0.0, count: $0.levelCount) }
    var sessionsPer = Array(repeating: 0, count: model.comparisons.count)
    for (r, patterns) in patternsByRule.enumerated() where patterns.total > 0 && model.blockingTrains[r] {
      let excluded = Set(
        model.comparisons.indices.filter { model.blockingFields[r].contains(model.comparisons[$0].field) })
      let estimate = Set(model.comparisons.indices).subtracting(excluded)
      guard !estimate.isEmpty else { continue }
      let (m, lambda, iterations) = expectationMaximisation(model, patterns: patterns, estimate: estimate)
      for c in estimate.sorted() {
        for l in m[c].indices { sums[c][l] += m[c][l] }
        sessionsPer[c] += 1
      }
      report.sessions.append(
        TrainingReport.Session(
          rule: r, pairs: Int(patterns.total), iterations: iterations, lambda: lambda,
          estimated: estimate.sorted().map { model.comparisons[$0].field },
          excluded: excluded.sorted().map { model.comparisons[$0].field }))
    }
    for c in model.comparisons.indices {
      guard sessionsPer[c] > 0 else {
        if !model.comparisons[c].fixedM.allSatisfy({ $0 }) { report.notEstimated.append(model.comparisons[c].field) }
        continue
      }
      let mean = sums[c].map { $0 / Double(sessionsPer[c]) }
      let sum = mean.reduce(0, +)
      for l in mean.indices where !model.comparisons[c].fixedM[l] {
        model.comparisons[c].m[l] = max(mean[l] / sum, 1e-6)
        model.comparisons[c].origin[l] = "trained"
      }
    }
    if model.priorFixed {
      report.prior = model.prior
      report.priorSource = "fixed in the configuration"
    } else {
      // The expected number of matching pairs among all candidates, from λ fitted over the union with
      // every m and u now fixed, over the number of possible pairs.
      let fitted = fitLambda(model, patterns: union)
      let possible = Trainer.possiblePairs(records, mode: mode)
      let expected = fitted * union.total
      model.prior = min(max(expected / max(possible, 1), 1e-12), 0.5)
      report.prior = model.prior
      report.priorSource = String(
        format: "%.0f expected matching pairs among %.0f candidates, over %.0f possible pairs", expected, union.total,
        possible)
    }
    return report
  }

  /// The share of matches among the pairs counted in `patterns`, with m and u fixed.
  public func fitLambda(_ model: MatchModel, patterns: PatternCounts) -> Double {
    let entries = patterns.sorted.map { (w: model.evidence($0.pattern), count: $0.count) }
    var lambda = 0.1
    for _ in 0..<200 {
      let prior = log2(lambda / (1 - lambda))
      var matches = 0.0
      for e in entries { matches += e.count / (1 + exp2(-(e.w + prior))) }
      let next = min(max(matches / max(patterns.total, 1), 1e-12), 1 - 1e-9)
      if abs(next - lambda) < 1e-9 {
        lambda = next
        break
      }
      lambda = next
    }
    return lambda
  }

  public static func possiblePairs(_ records: RecordSet, mode: LinkMode) -> Double {
    let n = Double(records.count)
    guard mode == .linkOnly else { return n * (n - 1) / 2 }
    var byOrigin: [UInt16: Double] = [:]
    for o in records.origin { byOrigin[o, default: 0] += 1 }
    return (n * n - byOrigin.values.reduce(0) { $0 + $1 * $1 }) / 2
  }
}
