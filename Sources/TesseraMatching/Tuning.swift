import Foundation

/// Precision and recall of pairs and of clusters at every threshold, from labelled data, and the thresholds
/// to use for a target precision (`tessera tune`).
public struct ThresholdSweep: Sendable {
  public struct Row: Sendable {
    public var weight: Double
    public var probability: Double
    /// Scored pairs at or above the threshold, against the labels.
    public var pairs: Metrics
    /// The clusters that joining those pairs forms (transitively, under the limits), pair by pair.
    public var clusters: Metrics

    init(weight: Double, pairs: (Double, Double), clusters: (Double, Double), actual: Double) {
      self.weight = weight
      probability = MatchModel.probability(weight: weight)
      self.pairs = Metrics(truePositives: pairs.0, predicted: pairs.1, actual: actual)
      self.clusters = Metrics(truePositives: clusters.0, predicted: clusters.1, actual: actual)
    }
  }

  public var rows: [Row]

  /// Sweeps with records whose true cluster is known: every pair of records sharing a true cluster is a
  /// match, also the pairs blocking never compared (they count against recall).
  public static func records(_ result: LinkResult, records: RecordSet, truth: [String], step: Double = 0.25)
    -> ThresholdSweep
  {
    var sizes: [String: Double] = [:]
    for t in truth { sizes[t, default: 0] += 1 }
    let actual = sizes.values.reduce(0) { $0 + $1 * ($1 - 1) / 2 }
    let truthIndex: [Int32] = {
      var ids: [String: Int32] = [:]
      return truth.map { t in
        if let i = ids[t] { return i }
        let i = Int32(ids.count)
        ids[t] = i
        return i
      }
    }()
    let pairs = result.pairs
    let order = Linker.joinOrder(pairs)
    var clusterer = Clusterer(
      count: records.count, maxSize: result.model.maxClusterSize, identifiers: records.identifiers)
    // Per cluster root: how many of its records belong to each true cluster (only for roots of size > 1).
    var composition: [Int: [Int32: Double]] = [:]
    var pairTP = 0.0
    var pairPredicted = 0.0
    var clusterTP = 0.0
    var clusterPredicted = 0.0
    var rows: [Row] = []
    let thresholds = grid(pairs.weight, step: step)
    var k = 0
    for t in thresholds {
      while k < order.count, Double(pairs.weight[order[k]]) >= t {
        let p = order[k]
        let i = Int(pairs.left[p])
        let j = Int(pairs.right[p])
        pairPredicted += 1
        if truthIndex[i] == truthIndex[j] { pairTP += 1 }
        let ri = clusterer.find(i)
        let rj = clusterer.find(j)
        if ri != rj, clusterer.check(i, j) == .joined {
          let a = composition.removeValue(forKey: ri) ?? [truthIndex[ri]: 1]
          let b = composition.removeValue(forKey: rj) ?? [truthIndex[rj]: 1]
          var shared = 0.0
          for (t, n) in a { shared += n * (b[t] ?? 0) }
          clusterTP += shared
          clusterPredicted += Double(clusterer.clusterSize(root: ri) * clusterer.clusterSize(root: rj))
          clusterer.union(i, j)
          composition[clusterer.find(i)] = a.merging(b, uniquingKeysWith: +)
        }
        k += 1
      }
      rows.append(
        Row(
          weight: t, pairs: (pairTP, pairPredicted), clusters: (clusterTP, clusterPredicted), actual: actual))
    }
    return ThresholdSweep(rows: rows)
  }

  /// Sweeps with labelled pairs (`left_id,right_id,is_match`): a pair blocking never compared is predicted a
  /// non-match at every threshold; cluster metrics ask whether the clustering put the two records together.
  public static func labelledPairs(
    _ result: LinkResult, records: RecordSet, labels: [(left: Int, right: Int, match: Bool)], step: Double = 0.25
  ) -> ThresholdSweep {
    var scored: [Int64: Float] = [:]
    func key(_ a: Int, _ b: Int) -> Int64 { Int64(min(a, b)) << 32 | Int64(max(a, b)) }
    for p in 0..<result.pairs.count {
      scored[key(Int(result.pairs.left[p]), Int(result.pairs.right[p]))] = result.pairs.weight[p]
    }
    let labelWeights = labels.map { scored[key($0.left, $0.right)].map(Double.init) ?? -.infinity }
    let actual = Double(labels.filter(\.match).count)
    let pairs = result.pairs
    let order = Linker.joinOrder(pairs)
    var clusterer = Clusterer(
      count: records.count, maxSize: result.model.maxClusterSize, identifiers: records.identifiers)
    var rows: [Row] = []
    var k = 0
    for t in grid(pairs.weight, step: step) {
      while k < order.count, Double(pairs.weight[order[k]]) >= t {
        clusterer.union(Int(pairs.left[order[k]]), Int(pairs.right[order[k]]))
        k += 1
      }
      var pairTP = 0.0
      var pairPredicted = 0.0
      var clusterTP = 0.0
      var clusterPredicted = 0.0
      for (n, label) in labels.enumerated() {
        if labelWeights[n] >= t {
          pairPredicted += 1
          if label.match { pairTP += 1 }
        }
        if clusterer.find(label.left) == clusterer.find(label.right) {
          clusterPredicted += 1
          if label.match { clusterTP += 1 }
        }
      }
      rows.append(
        Row(
          weight: t, pairs: (pairTP, pairPredicted), clusters: (clusterTP, clusterPredicted), actual: actual))
    }
    return ThresholdSweep(rows: rows)
  }

  /// Thresholds from the strongest weight down to the weakest, every `step` bits.
  static func grid(_ weights: [Float], step: Double) -> [Double] {
    guard let hi = weights.max(), let lo = weights.min() else { return [] }
    let top = (Double(hi) / step).rounded(.up) * step
    let bottom = max((Double(lo) / step).rounded(.down) * step, -20)
    return Array(stride(from: top, through: bottom, by: -step))
  }

  public struct Recommendation: Sendable {
    public var merge: Row
    public var review: Row
    public var targetPrecision: Double
    public var reached: Bool
  }

  /// `merge`: the lowest threshold whose clusters keep the target precision (the most recall for it);
  /// `review`: going down from `merge`, the lowest threshold above which every step of the band still holds
  /// at least as many matches as non-matches, so a reviewer's queue is mostly worth their time.
  public func recommend(precision target: Double) -> Recommendation? {
    guard !rows.isEmpty else { return nil }
    // Rows go from high to low thresholds: precision tends to fall as recall grows.
    let keeping = rows.filter { $0.clusters.precision >= target && $0.clusters.predicted > 0 }
    let mergeRow = keeping.last ?? rows[0]
    guard var k = rows.firstIndex(where: { $0.weight == mergeRow.weight }) else { return nil }
    while k + 1 < rows.count {
      let (upper, lower) = (rows[k], rows[k + 1])
      let added = lower.pairs.predicted - upper.pairs.predicted
      let matches = lower.pairs.truePositives - upper.pairs.truePositives
      if added > 0 && matches * 2 < added { break }
      k += 1
    }
    return Recommendation(merge: mergeRow, review: rows[k], targetPrecision: target, reached: !keeping.isEmpty)
  }

  public func row(nearestWeight w: Double) -> Row? {
    rows.min { abs($0.weight - w) < abs($1.weight - w) }
  }
}

extension ThresholdSweep {
  /// A precision–recall chart (pairs and clusters) as SVG, marking the current and the recommended merge
  /// threshold.
  public func svg(title: String, current: Double?, recommended: Double?) -> String {
    let width = 640.0
    let height = 480.0
    let left = 70.0
    let right = 20.0
    let top = 50.0
    let bottom = 60.0
    let minP = min(rows.map { min($0.pairs.precision, $0.clusters.precision) }.min() ?? 0, 0.9)
    let minR = min(rows.map { min($0.pairs.recall, $0.clusters.recall) }.min() ?? 0, 0.9)
    let x0 = max(0, (minR * 20).rounded(.down) / 20)
    let y0 = max(0, (minP * 20).rounded(.down) / 20)
    func x(_ r: Double) -> Double { left + (r - x0) / (1 - x0) * (width - left - right) }
    func y(_ p: Double) -> Double { top + (1 - (p - y0) / (1 - y0)) * (height - top - bottom) }
    func f(_ v: Double) -> String { String(format: "%.1f", v) }
    var s = """
      <svg xmlns="http://www.w3.org/2000/svg" width="\(Int(width))" height="\(Int(height))" \
      font-family="sans-serif" font-size="12">
      <rect width="100%" height="100%" fill="white"/>
      <text x="\(f(width / 2))" y="24" text-anchor="middle" font-size="15">\(Self.escape(title))</text>

      """
    for k in 0...4 {
      let r = x0 + (1 - x0) * Double(k) / 4
      let p = y0 + (1 - y0) * Double(k) / 4
      s += "<line x1=\"\(f(x(r)))\" y1=\"\(f(top))\" x2=\"\(f(x(r)))\" y2=\"\(f(height - bottom))\" stroke=\"#ddd\"/>\n"
      s += "<line x1=\"\(f(left))\" y1=\"\(f(y(p)))\" x2=\"\(f(width - right))\" y2=\"\(f(y(p)))\" stroke=\"#ddd\"/>\n"
      s +=
        "<text x=\"\(f(x(r)))\" y=\"\(f(height - bottom + 18))\" text-anchor=\"middle\">\(String(format: "%.3f", r))</text>\n"
      s += "<text x=\"\(f(left - 8))\" y=\"\(f(y(p) + 4))\" text-anchor=\"end\">\(String(format: "%.3f", p))</text>\n"
    }
    s += "<text x=\"\(f((left + width - right) / 2))\" y=\"\(f(height - 16))\" text-anchor=\"middle\">recall</text>\n"
    s +=
      "<text x=\"18\" y=\"\(f((top + height - bottom) / 2))\" text-anchor=\"middle\" transform=\"rotate(-90 18 \(f((top + height - bottom) / 2)))\">precision</text>\n"
    for (name, color, metric) in [
      ("pairs", "#1f77b4", { (r: Row) in r.pairs }), ("clusters", "#d62728", { (r: Row) in r.clusters }),
    ] {
      let points = rows.map { "\(f(x(metric($0).recall))),\(f(y(metric($0).precision)))" }.joined(separator: " ")
      s +=
        "<polyline fill=\"none\" stroke=\"\(color)\" stroke-width=\"2\" points=\"\(points)\"><title>\(name)</title></polyline>\n"
    }
    for (label, w, color) in [("current", current, "#555"), ("recommended", recommended, "#2ca02c")] {
      guard let w, let row = row(nearestWeight: w) else { continue }
      let cx = x(row.clusters.recall)
      let cy = y(row.clusters.precision)
      s += "<circle cx=\"\(f(cx))\" cy=\"\(f(cy))\" r=\"5\" fill=\"\(color)\"/>\n"
      s +=
        "<text x=\"\(f(cx - 8))\" y=\"\(f(cy + (label == "current" ? 18 : -10)))\" text-anchor=\"end\" fill=\"\(color)\">\(label) merge ≥ \(String(format: "%.6g", row.probability))</text>\n"
    }
    s += "<rect x=\"\(f(left + 10))\" y=\"\(f(height - bottom - 50))\" width=\"12\" height=\"3\" fill=\"#1f77b4\"/>"
    s += "<text x=\"\(f(left + 28))\" y=\"\(f(height - bottom - 45))\">pairs</text>\n"
    s += "<rect x=\"\(f(left + 10))\" y=\"\(f(height - bottom - 32))\" width=\"12\" height=\"3\" fill=\"#d62728\"/>"
    s += "<text x=\"\(f(left + 28))\" y=\"\(f(height - bottom - 27))\">clusters</text>\n"
    s += "</svg>\n"
    return s
  }

  static func escape(_ s: String) -> String {
    s.replacingOccurrences(of: "&", with: "&amp;").replacingOccurrences(of: "<", with: "&lt;")
      .replacingOccurrences(of: ">", with: "&gt;")
  }
}
