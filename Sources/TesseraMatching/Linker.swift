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
  /// The scored pairs at or above the linker's `keepFrom` weight (every compared pair by default).
  public var pairs: ScoredPairs
  /// Per record: the index of its cluster's first record.
  public var cluster: [Int]
  /// Pairs at or above `merge` that joined two clusters.
  public var joins: Int
  /// Pairs in the review band whose records ended in different clusters: candidate links for a person.
  public var review: [Int]
  public var refused: [RefusedJoin]
  public var timings: [(String, Double)]
  /// Pairs compared (and scored): the union of the blocking rules' pairs.
  public var compared: Int = 0
  /// Per blocking rule: the pairs it added to the union (those no earlier rule generates).
  public var newPairs: [Int] = []
}

/// Deduplicates or links records: blocking, comparing, training (when asked or when the model has no
/// trained values), scoring and clustering — `tessera link`, `tessera tune` and the benchmark run this.
///
/// Candidate pairs are compared once, stretch by stretch on all cores (`PairComparer`); a pair keeps its two
/// records and the id of its (pattern, rule mask) combination, so training counts distinct combinations, not
/// pairs, and scoring looks the weight of a combination up once.
public struct Linker: Sendable {
  public var model: MatchModel
  public var mode: LinkMode
  public var train: Bool
  public var trainer: Trainer
  /// Scored pairs below this match weight are counted, trained on and scored, but not returned (a link run
  /// that writes only the pairs from the review threshold up need not hold tens of millions of others).
  public var keepFrom: Double

  public init(
    model: MatchModel, mode: LinkMode = .dedupe, train: Bool = false, trainer: Trainer = Trainer(),
    keepFrom: Double = -.infinity
  ) {
    self.model = model
    self.mode = mode
    self.train = train
    self.trainer = trainer
    self.keepFrom = keepFrom
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
    let blocking: Blocking
    if let prebuilt {
      blocking = prebuilt
    } else {
      blocking = await Blocking.build(records: records, mode: mode)
    }
    lap("block")
    let ruleBits = UInt64(max(1, records.keys.count))
    var stretches = await PairComparer.compareAll(model: model, records: records, blocking: blocking)
    // Number the distinct (pattern, mask) combinations over all stretches, in stretch order.
    var combos: [UInt64] = []
    var counts: [Int] = []
    var ids: [UInt64: UInt32] = [:]
    var translations: [[UInt32]] = []
    var newPairs = Array(repeating: 0, count: records.keys.count)
    for stretch in stretches {
      newPairs[stretch.rule] += stretch.count
      translations.append(
        stretch.combos.enumerated().map { local, key in
          let id: UInt32
          if let known = ids[key] {
            id = known
          } else {
            id = UInt32(combos.count)
            ids[key] = id
            combos.append(key)
            counts.append(0)
          }
          counts[Int(id)] += stretch.counts[local]
          return id
        })
    }
    let compared = newPairs.reduce(0, +)
    lap("compare")
    var report: TrainingReport?
    if train || !model.isTrained {
      var byRule = Array(repeating: PatternCounts(), count: records.keys.count)
      var union = PatternCounts()
      for (key, n) in zip(combos, counts) {
        let pattern = key >> ruleBits
        let mask = key & ((1 << ruleBits) - 1)
        union.add(pattern, Double(n))
        for r in 0..<records.keys.count where mask & (1 << UInt64(r)) != 0 { byRule[r].add(pattern, Double(n)) }
      }
      report = await trainer.train(&model, records: records, mode: mode, patternsByRule: byRule, union: union)
      lap("train")
    }
    records.computeTermFrequencies(model)
    let pairs = await Linker.score(
      model, records: records, stretches: &stretches, translations: translations, combos: combos,
      ruleBits: ruleBits, from: keepFrom)
    lap("score")
    var result = Linker.cluster(model, records: records, pairs: pairs, merge: model.mergeWeight)
    lap("cluster")
    result.model = model
    result.training = report
    result.timings = timings
    result.compared = compared
    result.newPairs = newPairs
    return result
  }

  /// Scores the compared pairs (the weight of their pattern plus term-frequency adjustments, as `weights`
  /// does) stretch by stretch on all cores, keeping those at or above `from`; each stretch is released once
  /// scored.
  static func score(
    _ model: MatchModel, records: RecordSet, stretches: inout [ComparedStretch], translations: [[UInt32]],
    combos: [UInt64], ruleBits: UInt64, from floor: Double
  ) async -> ScoredPairs {
    let patterns = combos.map { $0 >> ruleBits }
    var cache: [UInt64: Float] = [:]
    let weights = patterns.map { p in
      if let w = cache[p] { return w }
      let w = Float(model.evidence(p) + model.priorWeight)
      cache[p] = w
      return w
    }
    let tf = Linker.termFrequencyLevels(model, records: records)
    // Per combination: the term-frequency adjustments its pattern takes (indices into `tf`).
    let adjusted = patterns.map { p in tf.indices.filter { Int((p / tf[$0].scale) % tf[$0].radix) - 1 == tf[$0].level }
    }
    let shared = SharedLevels(model, records: records)
    // Per combination: the shared values its pattern agrees on (see `SharedLevels`).
    let agreements = patterns.map(shared.agreements)
    let keep = Float(max(floor, -Double(Float.greatestFiniteMagnitude)))
    let keepAll = floor == -.infinity
    var parts = [ScoredPairs](repeating: ScoredPairs(), count: stretches.count)
    await withTaskGroup(of: (Int, ScoredPairs).self) { group in
      var next = 0
      let width = max(2, ProcessInfo.processInfo.activeProcessorCount * 2)
      func launch(_ k: Int, _ stretch: ComparedStretch) {
        let translation = translations[k]
        group.addTask {
          var out = ScoredPairs()
          if keepAll {
            out.left.reserveCapacity(stretch.count)
            out.right.reserveCapacity(stretch.count)
            out.pattern.reserveCapacity(stretch.count)
            out.weight.reserveCapacity(stretch.count)
          }
          for n in 0..<stretch.count {
            let id = Int(translation[Int(stretch.combo[n])])
            var w = weights[id]
            for t in adjusted[id] { w += tf[t].adjust[Int(stretch.left[n])] }
            for a in agreements[id] { w += shared.adjustment(a, Int(stretch.left[n]), Int(stretch.right[n])) }
            guard keepAll || w >= keep else { continue }
            out.left.append(stretch.left[n])
            out.right.append(stretch.right[n])
            out.pattern.append(patterns[id])
            out.weight.append(w)
          }
          return (k, out)
        }
      }
      while next < stretches.count && next < width {
        launch(next, stretches[next])
        stretches[next] = ComparedStretch()
        next += 1
      }
      for await (k, part) in group {
        parts[k] = part
        if next < stretches.count {
          launch(next, stretches[next])
          stretches[next] = ComparedStretch()
          next += 1
        }
      }
    }
    var out = ScoredPairs()
    let total = parts.reduce(0) { $0 + $1.count }
    out.left.reserveCapacity(total)
    out.right.reserveCapacity(total)
    out.pattern.reserveCapacity(total)
    out.weight.reserveCapacity(total)
    for k in parts.indices {
      out.left += parts[k].left
      out.right += parts[k].right
      out.pattern += parts[k].pattern
      out.weight += parts[k].weight
      parts[k] = ScoredPairs()
    }
    return out
  }

  /// The comparisons with a term-frequency level and adjustments: where their level sits in a pattern.
  static func termFrequencyLevels(_ model: MatchModel, records: RecordSet)
    -> [(c: Int, scale: UInt64, radix: UInt64, level: Int, adjust: [Float])]
  {
    var tf: [(c: Int, scale: UInt64, radix: UInt64, level: Int, adjust: [Float])] = []
    var scale: UInt64 = 1
    for (c, comparison) in model.comparisons.enumerated() {
      let radix = UInt64(comparison.levelCount + 1)
      if let level = comparison.tfLevel, let adjust = records.tfAdjust[c] {
        tf.append((c, scale, radix, level, adjust))
      }
      scale *= radix
    }
    return tf
  }

  /// Match weights of all pairs: the pattern's weight (cached per pattern) plus term-frequency adjustments.
  public static func weights(_ model: MatchModel, records: RecordSet, pairs: ScoredPairs) -> [Float] {
    var cache: [UInt64: Float] = [:]
    let tf = termFrequencyLevels(model, records: records)
    let shared = SharedLevels(model, records: records)
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
      for a in shared.agreements(p) { w += shared.adjustment(a, Int(pairs.left[k]), Int(pairs.right[k])) }
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

/// The comparisons of a device rule weighed by how many records share the agreed value
/// (`RecordSet.sharing`): a pair's weight is its pattern's, adjusted per record pair as `MatchModel.compare`
/// weighs it (`Comparison.weight(ofLevel:sharedBy:)`).
struct SharedLevels: Sendable {
  /// Per weighed comparison: where its level sits in a pattern, and its counts per record.
  let entries: [(c: Int, scale: UInt64, radix: UInt64, counts: [Int32])]
  let comparisons: [MatchModel.Comparison]

  init(_ model: MatchModel, records: RecordSet) {
    var entries: [(c: Int, scale: UInt64, radix: UInt64, counts: [Int32])] = []
    var scale: UInt64 = 1
    for (c, comparison) in model.comparisons.enumerated() {
      let radix = UInt64(comparison.levelCount + 1)
      if let counts = records.sharing[c] { entries.append((c, scale, radix, counts)) }
      scale *= radix
    }
    self.entries = entries
    comparisons = model.comparisons
  }

  /// The weighed comparisons a pattern agrees on (a level before `else`), as (entry, level).
  func agreements(_ pattern: UInt64) -> [(entry: Int, level: Int)] {
    entries.indices.compactMap { e in
      let l = Int((pattern / entries[e].scale) % entries[e].radix) - 1
      return l >= 0 && l < comparisons[entries[e].c].levels.count ? (e, l) : nil
    }
  }

  /// What sharing takes off an agreement's weight for records `i` and `j`.
  @inline(__always)
  func adjustment(_ a: (entry: Int, level: Int), _ i: Int, _ j: Int) -> Float {
    let e = entries[a.entry]
    let comparison = comparisons[e.c]
    let n = max(e.counts[i], e.counts[j])
    return Float(comparison.weight(ofLevel: a.level, sharedBy: n) - comparison.weight(ofLevel: a.level))
  }
}
