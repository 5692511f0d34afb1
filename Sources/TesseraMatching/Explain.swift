import Foundation
import TesseraModel

/// Why two records score what they score: each comparison's level, m, u and weight, and the running total
/// from the prior to the final match weight (`tessera explain`).
public struct Explanation: Sendable {
  public struct Step: Sendable {
    public var field: String
    public var left: String?
    public var right: String?
    /// `null` when a side has no value (the comparison then adds nothing).
    public var level: String
    public var m: Double?
    public var u: Double?
    public var weight: Double
    /// The term-frequency part of `weight`, for exact matches on a `tf: true` level.
    public var termFrequency: Double?
    /// How many profiles were seen with the value in the window, for a device signal weighed by frequency.
    public var sharedBy: Int?
    public var total: Double
  }

  public var leftId: String
  public var rightId: String
  public var prior: Double
  public var priorWeight: Double
  public var steps: [Step]
  public var weight: Double
  public var probability: Double
  public var decision: String

  public init(model: MatchModel, records: RecordSet, _ i: Int, _ j: Int) {
    leftId = records.ids[i]
    rightId = records.ids[j]
    prior = model.prior
    priorWeight = model.priorWeight
    var total = model.priorWeight
    steps = []
    for (c, comparison) in model.comparisons.enumerated() {
      let l = model.level(c, records, i, j)
      func text(_ r: Int) -> String? {
        let parts = comparison.columns.map { records.columns[$0] }.map { $0.isNull(r) ? "∅" : $0.text(r) }
        return parts.allSatisfy { $0 == "∅" } ? nil : parts.joined(separator: " | ")
      }
      var step = Step(
        field: comparison.field, left: text(i), right: text(j), level: l < 0 ? "null" : comparison.name(ofLevel: l),
        m: l < 0 ? nil : comparison.m[l], u: l < 0 ? nil : comparison.u[l], weight: 0, termFrequency: nil,
        sharedBy: records.sharedBy(c, i, j).map(Int.init), total: 0)
      if l >= 0 {
        step.weight = comparison.weight(ofLevel: l, sharedBy: records.sharedBy(c, i, j))
        if l == comparison.tfLevel, let tf = records.tfAdjust[c] {
          step.termFrequency = Double(tf[i])
          step.weight += Double(tf[i])
        }
      }
      total += step.weight
      step.total = total
      steps.append(step)
    }
    weight = total
    probability = MatchModel.probability(weight: total)
    decision = total >= model.mergeWeight ? "merge" : total >= model.reviewWeight ? "review" : "different"
  }

  public func table() -> String {
    func s(_ x: Double?) -> String { x.map { String(format: "%.4g", $0) } ?? "" }
    func w(_ x: Double) -> String { String(format: "%+.2f", x) }
    var rows: [[String]] = [["field", leftId, rightId, "level", "m", "u", "weight", "total"]]
    rows.append(["prior", "", "", "", "", "", w(priorWeight), w(priorWeight)])
    for st in steps {
      let weight =
        w(st.weight) + (st.termFrequency.map { " (tf \(w($0)))" } ?? "")
        + (st.sharedBy.map { $0 > 1 && st.level != "null" ? " (shared by \($0))" : "" } ?? "")
      rows.append([st.field, st.left ?? "∅", st.right ?? "∅", st.level, s(st.m), s(st.u), weight, w(st.total)])
    }
    let widths = (0..<rows[0].count).map { c in rows.map { $0[c].count }.max() ?? 0 }
    var out = rows.map { row in
      row.enumerated().map { c, v in v.padding(toLength: widths[c], withPad: " ", startingAt: 0) }
        .joined(separator: "  ")
    }
    out.insert(String(repeating: "─", count: widths.reduce(0, +) + 2 * (widths.count - 1)), at: 1)
    out.append(
      String(format: "match weight %+.2f → probability %.6f: %@", weight, probability, decision))
    return out.joined(separator: "\n")
  }

  /// One line of evidence, as a device link keeps it (`MatchLinkRecord.reason`): each comparison that had a
  /// value on both sides with its level and weight, then the total.
  public func summary() -> String {
    let parts = steps.filter { $0.level != "null" }.map { st in
      "\(st.field) \(st.level) \(String(format: "%+.2f", st.weight))"
        + (st.sharedBy.map { $0 > 1 ? " (shared by \($0))" : "" } ?? "")
    }
    return (["prior \(String(format: "%+.2f", priorWeight))"] + parts).joined(separator: "; ")
      + String(format: " = %+.2f", weight)
  }

  public func json() -> String { JSON.encode(value) }

  /// The explanation as a JSON value (what `json()` prints).
  public var value: Value {
    func num(_ x: Double?) -> Value { x.map { .double($0) } ?? .null }
    return .map([
      "left": .string(leftId), "right": .string(rightId), "prior": .double(prior), "prior_weight": .double(priorWeight),
      "match_weight": .double(weight), "match_probability": .double(probability), "decision": .string(decision),
      "comparisons": .list(
        steps.map { st in
          .map([
            "field": .string(st.field), "left": st.left.map(Value.string) ?? .null,
            "right": st.right.map(Value.string) ?? .null, "level": .string(st.level), "m": num(st.m), "u": num(st.u),
            "weight": .double(st.weight), "term_frequency_weight": num(st.termFrequency),
            "shared_by": st.sharedBy.map { .int(Int64($0)) } ?? .null,
            "running_total": .double(st.total),
          ])
        }),
    ])
  }

  /// A waterfall chart: a bar per comparison from the running total before it to the one after, green when
  /// it adds evidence, red when it takes away, ending in the final weight.
  public func svg() -> String {
    let barW = 56.0
    let gap = 14.0
    let left = 60.0
    let top = 50.0
    let plotH = 300.0
    let n = Double(steps.count + 2)
    let width = left + n * (barW + gap) + 20
    let height = top + plotH + 110
    var totals = [priorWeight] + steps.map(\.total)
    totals.append(0)
    let hi = max(totals.max() ?? 0, 1)
    let lo = min(totals.min() ?? 0, -1)
    func y(_ v: Double) -> Double { top + (hi - v) / (hi - lo) * plotH }
    func f(_ v: Double) -> String { String(format: "%.1f", v) }
    var s = """
      <svg xmlns="http://www.w3.org/2000/svg" width="\(Int(width))" height="\(Int(height))" \
      font-family="sans-serif" font-size="11">
      <rect width="100%" height="100%" fill="white"/>
      <text x="\(f(width / 2))" y="22" text-anchor="middle" font-size="14">\
      \(ThresholdSweep.escape(leftId)) vs \(ThresholdSweep.escape(rightId)): weight \(String(format: "%+.2f", weight)), \
      probability \(String(format: "%.6f", probability)) (\(decision))</text>
      <line x1="\(f(left))" y1="\(f(y(0)))" x2="\(f(width - 10))" y2="\(f(y(0)))" stroke="#999"/>

      """
    var x = left
    func bar(_ from: Double, _ to: Double, _ label: String, _ value: String, _ color: String) {
      let y1 = y(max(from, to))
      let h = max(abs(y(from) - y(to)), 1)
      s += "<rect x=\"\(f(x))\" y=\"\(f(y1))\" width=\"\(f(barW))\" height=\"\(f(h))\" fill=\"\(color)\"/>\n"
      s += "<text x=\"\(f(x + barW / 2))\" y=\"\(f(y1 - 4))\" text-anchor=\"middle\">\(value)</text>\n"
      s +=
        "<text x=\"\(f(x + barW / 2))\" y=\"\(f(top + plotH + 16))\" text-anchor=\"end\" transform=\"rotate(-40 \(f(x + barW / 2)) \(f(top + plotH + 16)))\">\(ThresholdSweep.escape(label))</text>\n"
      x += barW + gap
    }
    bar(0, priorWeight, "prior", String(format: "%+.1f", priorWeight), "#7f7f7f")
    var running = priorWeight
    for st in steps {
      bar(
        running, st.total, "\(st.field): \(st.level)", String(format: "%+.1f", st.weight),
        st.weight >= 0 ? "#2ca02c" : "#d62728")
      running = st.total
    }
    bar(0, weight, "final", String(format: "%+.1f", weight), "#1f77b4")
    s += "</svg>\n"
    return s
  }
}
