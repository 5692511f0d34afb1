/// Precision, recall and F1 of a set of decisions against the truth.
public struct Metrics: Sendable, Equatable {
  public var truePositives: Double
  public var predicted: Double
  public var actual: Double

  public init(truePositives: Double, predicted: Double, actual: Double) {
    self.truePositives = truePositives
    self.predicted = predicted
    self.actual = actual
  }

  public var precision: Double { predicted == 0 ? 1 : truePositives / predicted }
  public var recall: Double { actual == 0 ? 1 : truePositives / actual }
  public var f1: Double {
    let p = precision
    let r = recall
    return p + r == 0 ? 0 : 2 * p * r / (p + r)
  }
}

public enum ClusterEvaluation {
  /// Pairwise cluster metrics: a pair of records is predicted a match when the clustering puts them
  /// together (directly or through others), actually one when they share a true cluster. Computed from the
  /// contingency of predicted × true clusters, so it costs one pass over the records, not over the pairs.
  public static func pairwise(predicted: [Int], truth: [String]) -> Metrics {
    let (labels, _) = numbered(truth)
    // Records sorted by (predicted, true) cluster: each run is one cell of the contingency. Both as numbers
    // from 0 in one word, so the sort compares integers.
    let (clusters, _) = numbered(predicted)
    var cells = (0..<labels.count).map { UInt64(clusters[$0]) << 32 | UInt64(labels[$0]) }
    cells.sort()
    func pairs(_ n: Int) -> Double { Double(n) * Double(n - 1) / 2 }
    var tp = 0.0
    var predictedPairs = 0.0
    var cell = 0
    var cluster = 0
    for (k, key) in cells.enumerated() {
      cell += 1
      cluster += 1
      let next = k + 1 < cells.count ? cells[k + 1] : nil
      if next != key {
        tp += pairs(cell)
        cell = 0
      }
      if next.map({ $0 >> 32 != key >> 32 }) ?? true {
        predictedPairs += pairs(cluster)
        cluster = 0
      }
    }
    var trueSizes = [Int](repeating: 0, count: (labels.max() ?? -1) + 1)
    for l in labels { trueSizes[l] += 1 }
    return Metrics(
      truePositives: tp, predicted: predictedPairs, actual: trueSizes.reduce(0) { $0 + pairs($1) })
  }

  /// The share of true people whose records form exactly one predicted cluster and nothing else.
  public static func exactClusters(predicted: [Int], truth: [String]) -> Double {
    let (labels, people) = numbered(truth)
    guard people > 0 else { return 1 }
    let (clusters, count) = numbered(predicted)
    var predictedSizes = [Int](repeating: 0, count: count)
    for p in clusters { predictedSizes[p] += 1 }
    // Per true person: its one predicted cluster so far (-1: none yet, -2: several) and its size.
    var only = [Int](repeating: -1, count: people)
    var sizes = [Int](repeating: 0, count: people)
    for (i, p) in clusters.enumerated() {
      let t = labels[i]
      sizes[t] += 1
      if only[t] == -1 { only[t] = p } else if only[t] != p { only[t] = -2 }
    }
    let exact = (0..<people).filter { only[$0] >= 0 && predictedSizes[only[$0]] == sizes[$0] }.count
    return Double(exact) / Double(people)
  }

  /// Each label as a number from 0 in order of first appearance, and how many there are.
  static func numbered(_ truth: [String]) -> (labels: [Int], count: Int) {
    numbered(truth) { StableHash.of($0) }
  }

  /// Cluster ids as numbers from 0 in order of first appearance, and how many there are.
  static func numbered(_ ids: [Int]) -> (labels: [Int], count: Int) {
    numbered(ids) { StableHash.mix(UInt64(bitPattern: Int64($0))) }
  }

  /// Values numbered from 0 in order of first appearance: looked up by `hash`, and compared only when two
  /// hashes agree.
  static func numbered<T: Hashable>(_ values: [T], hash: (T) -> UInt64) -> (labels: [Int], count: Int) {
    var index = HashIndex()
    var firsts: [Int] = []
    var labels: [Int] = []
    labels.reserveCapacity(values.count)
    for (k, v) in values.enumerated() {
      let h = hash(v) | 1
      let known = Int(index.code(of: h))
      if known == 0 {
        index.insert(h, UInt32(firsts.count + 1))
        labels.append(firsts.count)
        firsts.append(k)
      } else if values[firsts[known - 1]] == v {
        labels.append(known - 1)
      } else {
        // Two values with one hash: rare enough to number them all again with a dictionary.
        var ids: [T: Int] = [:]
        let labels = values.map { v in
          if let i = ids[v] { return i }
          let i = ids.count
          ids[v] = i
          return i
        }
        return (labels, ids.count)
      }
    }
    return (labels, firsts.count)
  }
}
