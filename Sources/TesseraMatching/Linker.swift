import Foundation
import TesseraModel

/// Every compared pair: the two records (i < j), the pattern of levels and, once the model is final, the
/// match weight.
public struct ScoredPairs: Sendable {
  public var left: [Int32] = []
  public var right: [Int32] = []
  public var pattern: [UInt64] = []
  public var weight: [Float] = []
  public var count: Int { left.count }
}

/// A join the clustering refused, and why.
public struct RefusedJoin: Sendable, Equatable {
  public var pair: Int
  public var reason: String
}

public struct LinkResult: Sendable {
  public var model: MatchModel
  public var training: TrainingReport?
  public var pairs: ScoredPairs
  /// Per record: the index of its cluster's first record.
  public var cluster: [Int]
  /// Pairs at or above `merge` that joined two clusters.
  public var joins: Int
  /// Pairs in the review band whose records ended in different clusters: candidate links for a person.
  public var review: [Int]
  public var refused: [RefusedJoin]
  public var timings: [(String, Double)]
}

/// Deduplicates or links records: blocking, comparing, training (when asked or when the model has no
/// trained values), scoring and clustering — `tessera link`, `tessera tune` and the benchmark run this.
public struct Linker: Sendable {
  public var model: MatchModel
  public var mode: LinkMode
  public var train: Bool
  public var trainer: Trainer

  public init(model: MatchModel, mode: LinkMode = .dedupe, train: Bool = false, trainer: Trainer = Trainer()) {
    self.model = model
    self.mode = mode
    self.train = train
    self.trainer = trainer
  }

  struct Chunk: Sendable {
    var left: [Int32] = []
    var right: [Int32] = []
    var pattern: [UInt64] = []
    /// (pattern << rule bits | rule mask) → pairs.
    var counts: [UInt64: Double] = [:]
  }

  /// `blocking`: the candidate pairs of `input` when already built (for counting), so they are not built twice.
  public func run(_ input: RecordSet, blocking prebuilt: Blocking? = nil) async -> LinkResult {
    var records = input
    var model = self.model
    var timings: [(String, Double)] = []
    var clock = ContinuousClock.now
    func lap(_ name: String) {
      let now = ContinuousClock.now
      let d = now - clock
      timings.append((name, Double(d.components.seconds) + Double(d.components.attoseconds) * 1e-18))
      clock = now
    }
    let blocking = prebuilt ?? Blocking(records: records, mode: mode)
    lap("block")
    let ruleBits = UInt64(max(1, records.keys.count))
    var pairs = ScoredPairs()
    var counts: [UInt64: Double] = [:]
    let frozen = model
    let recs = records
    let radices = model.radices
    for r in 0..<records.keys.count {
      await blocking.forEachChunk(
        rule: r, initial: Chunk(),
        visit: { chunk, i, j in
          var pattern: UInt64 = 0
          var scale: UInt64 = 1
          for c in radices.indices {
            let l = frozen.level(c, recs, i, j)
            pattern += scale * UInt64(l + 1)
            scale *= radices[c]
          }
          chunk.left.append(Int32(i))
          chunk.right.append(Int32(j))
          chunk.pattern.append(pattern)
          let mask = UInt64(blocking.ruleMask(i, j))
          chunk.counts[(pattern << ruleBits) | mask, default: 0] += 1
        },
        combine: { chunk in
          pairs.left += chunk.left
          pairs.right += chunk.right
          pairs.pattern += chunk.pattern
          counts.merge(chunk.counts, uniquingKeysWith: +)
        })
    }
    lap("compare")
    var report: TrainingReport?
    if train || !model.isTrained {
      var byRule = Array(repeating: PatternCounts(), count: records.keys.count)
      var union = PatternCounts()
      for (key, n) in counts {
        let pattern = key >> ruleBits
        let mask = key & ((1 << ruleBits) - 1)
        union.add(pattern, n)
        for r in 0..<records.keys.count where mask & (1 << UInt64(r)) != 0 { byRule[r].add(pattern, n) }
      }
      report = trainer.train(&model, records: records, mode: mode, patternsByRule: byRule, union: union)
      lap("train")
    }
    records.computeTermFrequencies(model)
    pairs.weight = Linker.weights(model, records: records, pairs: pairs)
    lap("score")
    var result = Linker.cluster(model, records: records, pairs: pairs, merge: model.mergeWeight)
    lap("cluster")
    result.model = model
    result.training = report
    result.timings = timings
    return result
  }

  /// Match weights of all pairs: the pattern's weight (cached per pattern) plus term-frequency adjustments.
  public static func weights(_ model: MatchModel, records: RecordSet, pairs: ScoredPairs) -> [Float] {
    var cache: [UInt64: Float] = [:]
    var tf: [(c: Int, scale: UInt64, radix: UInt64, level: Int, adjust: [Float])] = []
    var scale: UInt64 = 1
    for (c, comparison) in model.comparisons.enumerated() {
      let radix = UInt64(comparison.levelCount + 1)
      if let level = comparison.tfLevel, let adjust = records.tfAdjust[c] {
        tf.append((c, scale, radix, level, adjust))
      }
      scale *= radix
    }
    var out = [Float](repeating: 0, count: pairs.count)
    for k in 0..<pairs.count {
      let p = pairs.pattern[k]
      var w: Float
      if let cached = cache[p] {
        w = cached
      } else {
        w = Float(model.evidence(p) + model.priorWeight)
        cache[p] = w
      }
      for t in tf where Int((p / t.scale) % t.radix) - 1 == t.level { w += t.adjust[Int(pairs.left[k])] }
      out[k] = w
    }
    return out
  }

  /// The pairs at or above `weight`, strongest first; ties in record order, so clusters never depend on the
  /// order pairs were compared in.
  public static func joinOrder(_ pairs: ScoredPairs, from weight: Double = -.infinity) -> [Int] {
    var order = (0..<pairs.count).filter { Double(pairs.weight[$0]) >= weight }
    order.sort {
      (pairs.weight[$0], pairs.left[$1], pairs.right[$1]) > (pairs.weight[$1], pairs.left[$0], pairs.right[$0])
    }
    return order
  }

  /// Joins pairs at or above `merge` (strongest first) under the cluster-size and identifier limits, and
  /// lists the review-band pairs left in different clusters.
  public static func cluster(_ model: MatchModel, records: RecordSet, pairs: ScoredPairs, merge: Double)
    -> LinkResult
  {
    let order = joinOrder(pairs, from: merge)
    var clusterer = Clusterer(count: records.count, maxSize: model.maxClusterSize, identifiers: records.identifiers)
    var joins = 0
    var refused: [RefusedJoin] = []
    for k in order {
      switch clusterer.union(Int(pairs.left[k]), Int(pairs.right[k])) {
      case .joined: joins += 1
      case .alreadyTogether: break
      case .refusedSize(let n):
        refused.append(
          RefusedJoin(pair: k, reason: "cluster would hold \(n) records (max_cluster_size \(model.maxClusterSize))"))
      case .refusedIdentifier(let kind):
        refused.append(
          RefusedJoin(pair: k, reason: "clusters hold different `\(kind)` values beyond its max_per_profile"))
      }
    }
    let review = model.reviewWeight
    var candidates: [Int] = []
    for k in 0..<pairs.count {
      let w = Double(pairs.weight[k])
      guard w >= review, w < merge else { continue }
      if clusterer.find(Int(pairs.left[k])) != clusterer.find(Int(pairs.right[k])) { candidates.append(k) }
    }
    return LinkResult(
      model: model, training: nil, pairs: pairs, cluster: clusterer.representatives(), joins: joins,
      review: candidates, refused: refused, timings: [])
  }
}
