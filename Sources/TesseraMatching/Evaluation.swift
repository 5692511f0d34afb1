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
    var joint: [Int: [String: Double]] = [:]
    var predictedSizes: [Int: Double] = [:]
    var trueSizes: [String: Double] = [:]
    for (i, p) in predicted.enumerated() {
      joint[p, default: [:]][truth[i], default: 0] += 1
      predictedSizes[p, default: 0] += 1
      trueSizes[truth[i], default: 0] += 1
    }
    func pairs(_ n: Double) -> Double { n * (n - 1) / 2 }
    let tp = joint.values.reduce(0.0) { acc, row in acc + row.values.reduce(0.0) { $0 + pairs($1) } }
    return Metrics(
      truePositives: tp, predicted: predictedSizes.values.reduce(0) { $0 + pairs($1) },
      actual: trueSizes.values.reduce(0) { $0 + pairs($1) })
  }

  /// The share of true people whose records form exactly one predicted cluster and nothing else.
  public static func exactClusters(predicted: [Int], truth: [String]) -> Double {
    var byTruth: [String: Set<Int>] = [:]
    var predictedSizes: [Int: Int] = [:]
    var trueSizes: [String: Int] = [:]
    for (i, p) in predicted.enumerated() {
      byTruth[truth[i], default: []].insert(p)
      predictedSizes[p, default: 0] += 1
      trueSizes[truth[i], default: 0] += 1
    }
    var exact = 0
    for (t, clusters) in byTruth where clusters.count == 1 {
      if let only = clusters.first, predictedSizes[only] == trueSizes[t] { exact += 1 }
    }
    return byTruth.isEmpty ? 1 : Double(exact) / Double(byTruth.count)
  }
}
