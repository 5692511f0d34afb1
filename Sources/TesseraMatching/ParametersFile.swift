import Foundation

extension MatchModel {
  /// The trained parameters as YAML that the rule's `parameters:` key reads back (see the compiler's
  /// `ParameterFileReader`): commit it and every run scores with the same numbers.
  public func parametersYAML(trainedOn description: String) -> String {
    var out = "# Trained parameters of probabilistic rule `\(rule)`, written by `tessera link --train`.\n"
    out += "# \(description)\n"
    out += "# Reference this file from the rule with `parameters:`; values fixed in the rule still win.\n"
    out += "rule: \(rule)\n"
    out += "prior: \(MatchModel.number(prior))\n"
    out += "comparisons:\n"
    for c in comparisons {
      out += "  \(c.field):\n"
      for l in 0..<c.levelCount {
        let name = c.name(ofLevel: l)
        let quoted = name.contains(">") || name.contains("<") ? "\"\(name)\"" : name
        out +=
          "    - { level: \(quoted), m: \(MatchModel.number(c.m[l])), u: \(MatchModel.number(c.u[l])) }"
          + "  # weight \(String(format: "%+.2f", c.weight(ofLevel: l)))\n"
      }
    }
    return out
  }

  /// Enough digits to reproduce scores, no more.
  static func number(_ x: Double) -> String {
    if x >= 0.001 { return String(format: "%.6g", x) }
    return String(format: "%.4e", x)
  }
}
