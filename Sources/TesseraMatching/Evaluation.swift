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
    // Records sorted by (predicted, true) cluster: each run is one cell of the contingency.
    let order = predicted.indices.sorted { (predicted[$0], labels[$0]) < (predicted[$1], labels[$1]) }
    func pairs(_ n: Int) -> Double { Double(n) * Double(n - 1) / 2 }
    var tp = 0.0
    var predictedPairs = 0.0
    var cell = 0
    var cluster = 0
    for (k, i) in order.enumerated() {
      cell += 1
      cluster += 1
      let next = k + 1 < order.count ? order[k + 1] : -1
      if next < 0 || predicted[next] != predicted[i] || labels[next] != labels[i] {
        tp += pairs(cell)
        cell = 0
      }
      if next < 0 || predicted[next] != predicted[i] {
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
    var predictedSizes: [Int: Int] = [:]
    for p in predicted { predictedSizes[p, default: 0] += 1 }
    // Per true person: its one predicted cluster so far (-1: none yet, -2: several) and its size.
    var only = [Int](repeating: -1, count: people)
    var sizes = [Int](repeating: 0, count: people)
    for (i, p) in predicted.enumerated() {
      let t = labels[i]
      sizes[t] += 1
      if only[t] == -1 { only[t] = p } else if only[t] != p { only[t] = -2 }
    }
    let exact = (0..<people).filter { only[$0] >= 0 && predictedSizes[only[$0]] == sizes[$0] }.count
    return Double(exact) / Double(people)
  }

  /// Each label as a number from 0 in order of first appearance, and how many there are.
  static func numbered(_ truth: [String]) -> (labels: [Int], count: Int) {
    var ids: [String: Int] = [:]
    ids.reserveCapacity(truth.count / 2)
    let labels = truth.map { t in
      if let i = ids[t] { return i }
      let i = ids.count
      ids[t] = i
      return i
    }
    return (labels, ids.count)
  }
}
