import Foundation

/// SVG charts of a report: horizontal bars, one group per unit counted (funnel steps), per model (credit by
/// key) and for the top paths.
extension MeasurementReport {
  struct Bar {
    var label: String
    var value: Double
    var note: String
  }

  static let palette = ["#4e79a7", "#f28e2b", "#59a14f", "#e15759", "#76b7b2", "#edc948", "#b07aa1"]

  static func escape(_ s: String) -> String {
    s.replacingOccurrences(of: "&", with: "&amp;").replacingOccurrences(of: "<", with: "&lt;")
      .replacingOccurrences(of: ">", with: "&gt;").replacingOccurrences(of: "\"", with: "&quot;")
  }

  /// One SVG document: a title, then each group's bars, scaled to the group's largest value.
  static func svg(title: String, groups: [(title: String, bars: [Bar])]) -> String {
    let width = 760.0
    let labelWidth = 260.0
    let barHeight = 18.0
    var y = 40.0
    var body = ""
    for (g, group) in groups.enumerated() {
      body += "<text x=\"10\" y=\"\(y)\" font-weight=\"bold\">\(escape(group.title))</text>\n"
      y += 10
      let top = max(group.bars.map(\.value).max() ?? 0, 1e-12)
      let color = palette[g % palette.count]
      if group.bars.isEmpty {
        y += 16
        body += "<text x=\"20\" y=\"\(y)\" fill=\"#666\">nothing to show</text>\n"
      }
      for bar in group.bars {
        let w = max(0, (width - labelWidth - 120) * bar.value / top)
        body += "<text x=\"20\" y=\"\(y + 13)\">\(escape(bar.label))</text>\n"
        body +=
          "<rect x=\"\(labelWidth)\" y=\"\(y)\" width=\"\(String(format: "%.1f", w))\" height=\"\(barHeight - 4)\" fill=\"\(color)\"/>\n"
        body += "<text x=\"\(labelWidth + w + 6)\" y=\"\(y + 12)\">\(escape(bar.note))</text>\n"
        y += barHeight
      }
      y += 24
    }
    return """
      <svg xmlns="http://www.w3.org/2000/svg" width="\(Int(width))" height="\(Int(y))" font-family="sans-serif" font-size="12">
      <rect width="100%" height="100%" fill="white"/>
      <text x="10" y="22" font-size="15" font-weight="bold">\(escape(title))</text>
      \(body)</svg>

      """
  }

  /// The report as an SVG chart: funnel bars per unit, or credit bars per model and the top paths.
  public var svg: String {
    switch body {
    case .funnel(let results):
      return Self.svg(
        title: "funnel \(name)",
        groups: results.map { r in
          (
            "by \(r.unit.rawValue)",
            r.steps.enumerated().map { k, s in
              Bar(
                label: "\(k + 1). \(s.name)", value: Double(s.units),
                note: "\(s.units) (\(String(format: "%.1f", s.conversion)) %)")
            }
          )
        })
    case .attribution(let results):
      var groups: [(String, [Bar])] = []
      for r in results {
        for mc in r.models {
          groups.append(
            (
              "\(mc.model.rawValue) · value credited by \(r.unit.rawValue)",
              mc.credits.sorted { ($1.value, $0.key) < ($0.value, $1.key) }.map {
                Bar(
                  label: $0.key, value: $0.value,
                  note: "\(Self.number($0.value)) (\(Self.number($0.conversions)) conv.)")
              }
            ))
        }
        groups.append(
          (
            "top paths by \(r.unit.rawValue)",
            r.paths.map {
              Bar(
                label: $0.text, value: Double($0.conversions),
                note: "\($0.conversions) conv., \($0.units) \(r.unit.rawValue)")
            }
          ))
      }
      return Self.svg(title: "attribution \(name)", groups: groups)
    }
  }
}
