import TesseraLanguage
import TesseraModel

/// Reads a trained-parameters file (written by `tessera link --train`) into a probabilistic rule:
///
/// ```yaml
/// rule: person
/// prior: 1.2e-06
/// comparisons:
///   first_name:
///     - { level: exact, m: 0.88, u: 0.0041 }
///     - { level: "jaro_winkler >= 0.92", m: 0.06, u: 0.0012 }
///     - { level: else, m: 0.06, u: 0.9947 }
/// ```
///
/// Values fixed in the configuration win over the file's; a comparison whose levels changed since training
/// is reported and left untrained rather than given numbers that belong to other levels.
struct ParameterFileReader {
  let sink: Sink

  func apply(_ file: SourceFile, to rule: inout ProbabilisticRule) {
    let (node, diagnostics) = YAMLReader.read(file)
    sink.diagnostics.append(contentsOf: diagnostics)
    guard let node, let top = MapReader(node, "the parameters file", sink) else { return }
    top.check(allowed: ["rule", "prior", "comparisons", "trained", "description"])
    if let name = top.string("rule"), name != rule.name, let v = top.value("rule") {
      sink.warning("parameters file was trained for rule `\(name)`, not `\(rule.name)`", at: v)
    }
    if let p = top.double("prior") {
      if p > 0 && p < 1 {
        rule.trainedPrior = p
      } else if let v = top.value("prior") {
        sink.error("`prior` must be in (0, 1), found \(Value.double(p))", at: v)
      }
    }
    guard let cv = top.value("comparisons", required: true),
      let cm = MapReader(cv, "the comparisons of the parameters file", sink)
    else { return }
    for (k, v) in cm.entries {
      guard let field = k.scalar else { continue }
      guard let ci = rule.comparisons.firstIndex(where: { $0.trait == field }) else {
        sink.warning(
          "the parameters file has `\(field)`, which rule `\(rule.name)` does not compare; retrain to drop it", at: k)
        continue
      }
      guard let items = v.sequence else {
        sink.error("expected a list of levels for `\(field)`, found \(v.kindDescription)", at: v)
        continue
      }
      var values: [(level: ComparisonLevel?, m: Double, u: Double)] = []
      var readable = true
      for item in items {
        guard let lm = MapReader(item, "a level of `\(field)` in the parameters file", sink) else {
          readable = false
          continue
        }
        lm.check(allowed: ["level", "m", "u", "tf"])
        guard let text = lm.string("level", required: true), let m = unit(lm, "m"), let u = unit(lm, "u") else {
          readable = false
          continue
        }
        if text == "else" {
          values.append((nil, m, u))
        } else if case .success(let level) = LevelParser.parse(text) {
          values.append((level, m, u))
        } else {
          sink.error("unknown level `\(text)` in the parameters file", at: lm.value("level") ?? item)
          readable = false
        }
      }
      guard readable else { continue }
      let declared = rule.comparisons[ci].levels.map(\.level)
      let trained = values.compactMap(\.level)
      guard trained == declared, values.count == declared.count + 1, values.last?.level == nil else {
        sink.warning(
          "the levels of `\(field)` changed since the parameters were trained (file: \(trained.map(\.description) + ["else"]); rule: \(declared.map(\.description) + ["else"])); `\(field)` uses default values until you retrain",
          at: k)
        continue
      }
      for (i, value) in values.enumerated() {
        if i < declared.count {
          rule.comparisons[ci].levels[i].trainedM = value.m
          rule.comparisons[ci].levels[i].trainedU = value.u
        } else {
          rule.comparisons[ci].trainedElseM = value.m
          rule.comparisons[ci].trainedElseU = value.u
        }
      }
    }
  }

  func unit(_ lm: MapReader, _ key: String) -> Double? {
    guard let d = lm.double(key) else {
      _ = lm.value(key, required: true)
      return nil
    }
    guard d > 0 && d < 1 else {
      if let v = lm.value(key) { sink.error("`\(key)` must be in (0, 1), found \(Value.double(d))", at: v) }
      return nil
    }
    return d
  }
}
