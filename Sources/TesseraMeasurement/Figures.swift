import TesseraCompiler

extension MeasurementReport {
  /// The figure forms a configuration test may name, by report kind.
  public static let figureForms = [
    "funnel": ["step.NAME", "conversion_pct.NAME"],
    "attribution": [
      "units", "conversions", "converting_units", "value", "unattributed", "unattributed_value", "credit.MODEL.KEY",
      "credit_value.MODEL.KEY", "path.CHANNEL → CHANNEL",
    ],
  ]

  /// Whether `figure` is a form this kind of report has (its names are checked when it is read).
  public static func isFigure(_ figure: String, kind: String) -> Bool {
    let head = figure.split(separator: ".", maxSplits: 1).first.map(String.init) ?? figure
    return (figureForms[kind] ?? []).contains { $0 == head || $0.hasPrefix(head + ".") }
  }

  /// A figure of the report counted by `unit`, named as a configuration test names it: `conversions`,
  /// `unattributed`, `credit.last_touch.email` (conversions credited; 0 when none), `credit_value.linear.cpc`,
  /// `path.email → direct` (conversions with that path), or for a funnel `step.ordered` (units) and
  /// `conversion_pct.ordered`. Nil when the figure names nothing the report has (an unknown step or model).
  public func figure(_ figure: String, by unit: CountingUnit) -> Double? {
    let parts = figure.split(separator: ".", maxSplits: 1).map(String.init)
    let rest = parts.count > 1 ? parts[1] : ""
    switch body {
    case .funnel:
      guard let f = self.funnel(unit), let step = f.steps.first(where: { $0.name == rest }) else { return nil }
      switch parts[0] {
      case "step": return Double(step.units)
      case "conversion_pct": return step.conversion
      default: return nil
      }
    case .attribution:
      guard let a = attribution(unit) else { return nil }
      switch parts[0] {
      case "units": return Double(a.units)
      case "conversions": return Double(a.conversions)
      case "converting_units": return Double(a.convertingUnits)
      case "value": return a.value
      case "unattributed": return Double(a.unattributed)
      case "unattributed_value": return a.unattributedValue
      case "credit", "credit_value":
        let mk = rest.split(separator: ".", maxSplits: 1).map(String.init)
        guard mk.count == 2, let model = AttributionModel(rawValue: mk[0]),
          let credits = a.models.first(where: { $0.model == model })?.credits
        else { return nil }
        let c = credits.first { $0.key == mk[1] }
        return parts[0] == "credit" ? (c?.conversions ?? 0) : (c?.value ?? 0)
      case "path":
        return Double(a.paths.first { $0.text == rest }?.conversions ?? 0)
      default: return nil
      }
    }
  }
}
