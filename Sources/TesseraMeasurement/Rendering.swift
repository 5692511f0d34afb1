import Foundation
import TesseraCompiler
import TesseraModel

extension MeasurementReport {
  /// The report as JSON: per unit, the funnel steps or the attribution (conversions, credit by model, paths).
  public var json: Value {
    var m: [String: Value] = [
      "report": .string(name), "kind": .string(kind), "events": .int(Int64(events)),
      "unreadable_events": .int(Int64(unreadable)),
    ]
    if let from { m["from"] = .string(from.iso8601) }
    if let to { m["to"] = .string(to.iso8601) }
    switch body {
    case .funnel(let results):
      m["by"] = .map(
        Dictionary(
          uniqueKeysWithValues: results.map { r in
            (
              r.unit.rawValue,
              Value.list(
                r.steps.map { s in
                  .map([
                    "step": .string(s.name), "units": .int(Int64(s.units)), "conversion_pct": .double(s.conversion),
                    "from_previous_pct": .double(s.fromPrevious),
                    "median_seconds_from_previous": s.medianSeconds.map(Value.double) ?? .null,
                  ])
                })
            )
          }))
    case .attribution(let results):
      m["by"] = .map(
        Dictionary(
          uniqueKeysWithValues: results.map { r in
            (
              r.unit.rawValue,
              Value.map([
                "units": .int(Int64(r.units)), "conversions": .int(Int64(r.conversions)),
                "converting_units": .int(Int64(r.convertingUnits)), "value": .double(r.value),
                "unattributed": .int(Int64(r.unattributed)), "unattributed_value": .double(r.unattributedValue),
                "models": .map(
                  Dictionary(
                    uniqueKeysWithValues: r.models.map { mc in
                      (
                        mc.model.rawValue,
                        Value.list(
                          mc.credits.map {
                            .map([
                              "key": .string($0.key), "conversions": .double($0.conversions),
                              "value": .double($0.value),
                            ])
                          })
                      )
                    })),
                "paths": .list(
                  r.paths.map {
                    .map([
                      "path": .list($0.channels.map(Value.string)), "conversions": .int(Int64($0.conversions)),
                      "units": .int(Int64($0.units)), "value": .double($0.value),
                    ])
                  }),
              ])
            )
          }))
    }
    return .map(m)
  }

  /// The report as CSV, one row per unit and line (funnel step, model credit, path).
  public var csv: String {
    var out: [[String]] = []
    switch body {
    case .funnel(let results):
      out.append(["by", "step", "units", "conversion_pct", "from_previous_pct", "median_seconds_from_previous"])
      for r in results {
        for s in r.steps {
          out.append([
            r.unit.rawValue, s.name, String(s.units), Self.number(s.conversion), Self.number(s.fromPrevious),
            s.medianSeconds.map(Self.number) ?? "",
          ])
        }
      }
    case .attribution(let results):
      out.append(["by", "section", "model", "key", "conversions", "units", "value"])
      for r in results {
        out.append([
          r.unit.rawValue, "total", "", "", String(r.conversions), String(r.convertingUnits), Self.number(r.value),
        ])
        out.append([
          r.unit.rawValue, "unattributed", "", "", String(r.unattributed), "", Self.number(r.unattributedValue),
        ])
        for mc in r.models {
          for c in mc.credits {
            out.append([
              r.unit.rawValue, "credit", mc.model.rawValue, c.key, Self.number(c.conversions), "", Self.number(c.value),
            ])
          }
        }
        for p in r.paths {
          out.append([
            r.unit.rawValue, "path", "", p.text, String(p.conversions), String(p.units), Self.number(p.value),
          ])
        }
      }
    }
    return out.map { $0.map(CSV.quote).joined(separator: ",") }.joined(separator: "\n") + "\n"
  }

  static func number(_ d: Double) -> String {
    let r = (d * 10_000).rounded() / 10_000
    return r == r.rounded() ? String(Int64(r)) : String(r)
  }

  static func duration(_ seconds: Double?) -> String {
    guard let s = seconds else { return "–" }
    if s < 60 { return "\(Int(s.rounded()))s" }
    if s < 3600 { return String(format: "%.1fm", s / 60) }
    if s < 86_400 { return String(format: "%.1fh", s / 3600) }
    return String(format: "%.1fd", s / 86_400)
  }

  /// Right-aligned columns after a left-aligned first one.
  static func table(_ rows: [[String]]) -> String {
    guard let width = rows.map(\.count).max() else { return "" }
    var widths = Array(repeating: 0, count: width)
    for r in rows { for (i, c) in r.enumerated() { widths[i] = max(widths[i], c.count) } }
    return rows.map { r in
      r.enumerated().map { i, c in
        let pad = String(repeating: " ", count: widths[i] - c.count)
        return i == 0 ? c + pad : pad + c
      }.joined(separator: "  ")
    }.joined(separator: "\n") + "\n"
  }

  /// The report for people: units side by side (people, devices, sessions as asked).
  public var text: String {
    var out = "\(kind) `\(name)`"
    if from != nil || to != nil {
      out += " from \(from?.iso8601 ?? "the start") to \(to?.iso8601 ?? "the end")"
    }
    out += " (\(events) events read"
    out += unreadable > 0 ? ", \(unreadable) could not be mapped and were skipped)\n\n" : ")\n\n"
    switch body {
    case .funnel(let results):
      var rows = [["step"] + results.flatMap { [$0.unit.rawValue, "conv %", "median"] }]
      let names = results.first?.steps.map(\.name) ?? []
      for (k, name) in names.enumerated() {
        var row = ["\(k + 1). \(name)"]
        for r in results {
          let s = r.steps[k]
          row += [String(s.units), String(format: "%.1f", s.conversion), k == 0 ? "" : Self.duration(s.medianSeconds)]
        }
        rows.append(row)
      }
      out += Self.table(rows)
    case .attribution(let results):
      var rows = [[""] + results.map(\.unit.rawValue)]
      rows.append(["units seen"] + results.map { String($0.units) })
      rows.append(["converting"] + results.map { String($0.convertingUnits) })
      rows.append(["conversions"] + results.map { String($0.conversions) })
      rows.append(["value"] + results.map { Self.number($0.value) })
      rows.append(["unattributed"] + results.map { "\($0.unattributed) (\(Self.number($0.unattributedValue)))" })
      out += Self.table(rows)
      for r in results {
        out += "\ncredit by \(r.unit.rawValue) (conversions / value)\n"
        let keys = Array(Set(r.models.flatMap { $0.credits.map(\.key) })).sorted()
        var t = [["key"] + r.models.map(\.model.rawValue)]
        for key in keys {
          t.append(
            [key]
              + r.models.map { mc in
                guard let c = mc.credits.first(where: { $0.key == key }) else { return "–" }
                return "\(Self.number(c.conversions)) / \(Self.number(c.value))"
              })
        }
        out += keys.isEmpty ? "  no attributed conversions\n" : Self.table(t)
        out += "\ntop paths by \(r.unit.rawValue)\n"
        var p = [["path", "conversions", r.unit.rawValue, "value"]]
        for path in r.paths {
          p.append([path.text, String(path.conversions), String(path.units), Self.number(path.value)])
        }
        out += r.paths.isEmpty ? "  no conversions\n" : Self.table(p)
      }
    }
    return out
  }
}
