import Foundation
import TesseraModel
import Testing

@testable import TesseraMatching

/// Cluster metrics number labels and clusters by their hashes; two values with one hash still count apart.
@Suite struct EvaluationTests {
  @Test func valuesSharingAHashAreNumberedApart() {
    #expect(ClusterEvaluation.numbered(["a", "b", "a", "c"]) == ([0, 1, 0, 2], 3))
    // Every value with the same hash: numbered by their texts all the same.
    let same = ClusterEvaluation.numbered(["a", "b", "a", "c"]) { _ in 7 }
    #expect(same.labels == [0, 1, 0, 2] && same.count == 3)
    #expect(ClusterEvaluation.numbered([40, -3, 40, 9]) == ([0, 1, 0, 2], 3))
  }

  @Test func metricsDoNotDependOnHowClustersAreNumbered() {
    var rng = SplitMix64(seed: 5)
    let truth = (0..<3000).map { _ in "p\(rng.int(0..<900))" }
    let predicted = (0..<3000).map { i in rng.int(0..<4) == 0 ? i : Int(truth[i].dropFirst())! * 3 }
    let renamed = predicted.map { $0 * 7 - 100_000 }
    #expect(
      ClusterEvaluation.pairwise(predicted: predicted, truth: truth)
        == ClusterEvaluation.pairwise(predicted: renamed, truth: truth))
    // Against a direct count over all pairs.
    var tp = 0.0
    var predictedPairs = 0.0
    var actual = 0.0
    for i in 0..<truth.count {
      for j in (i + 1)..<truth.count {
        let same = predicted[i] == predicted[j]
        if same { predictedPairs += 1 }
        if truth[i] == truth[j] { actual += 1 }
        if same && truth[i] == truth[j] { tp += 1 }
      }
    }
    #expect(
      ClusterEvaluation.pairwise(predicted: predicted, truth: truth)
        == Metrics(truePositives: tp, predicted: predictedPairs, actual: actual))
    #expect(
      ClusterEvaluation.exactClusters(predicted: predicted, truth: truth)
        == ClusterEvaluation.exactClusters(predicted: renamed, truth: truth))
  }
}
