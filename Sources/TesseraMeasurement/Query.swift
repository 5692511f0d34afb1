import Foundation
import TesseraCompiler
import TesseraLanguage
import TesseraModel

/// What a report counts as one unit: a person (the current unified profile), a device (its anonymous id),
/// or a session (a device's events with no gap longer than the session timeout).
public enum CountingUnit: String, Sendable, CaseIterable, Hashable {
  case people, devices, sessions
}

/// One report of a pipeline's `measurement` section, over a time range, counted by one or more units.
public struct ReportQuery: Sendable {
  public enum Kind: Sendable {
    case funnel(FunnelDecl)
    case attribution(AttributionDecl, ConversionDecl, [TouchpointDecl])
  }

  public var name: String
  public var kind: Kind
  public var measurement: MeasurementConfig
  /// Conversions and funnel entries at or after `from` and before `to` count; touches before `from` still do.
  public var from: Timestamp?
  public var to: Timestamp?
  public var units: [CountingUnit]
  /// How many conversion paths a report lists.
  public var topPaths = 10

  /// The report `name` declares, or an error naming the reports there are.
  public init(
    config: PipelineConfig, name: String, from: Timestamp? = nil, to: Timestamp? = nil,
    units: [CountingUnit] = [.people]
  ) throws {
    let m = config.measurement
    self.name = name
    self.measurement = m
    self.from = from
    self.to = to
    self.units = units.isEmpty ? [.people] : units
    if let f = m.funnel(name) {
      kind = .funnel(f)
    } else if let a = m.attribution(name), let c = m.conversion(a.conversion) {
      let touches = m.touchpoints.filter { a.touchpoints.contains($0.name) }
      kind = .attribution(a, c, touches)
    } else {
      throw UnknownReport(name: name, known: m.reportNames)
    }
  }

  /// Whether the report is a funnel holding properties constant across an attempt.
  var holdsConstant: Bool {
    if case .funnel(let f) = kind { return !f.holdConstant.isEmpty }
    return false
  }

  func inRange(_ t: Int64) -> Bool {
    if let from, t < from.microseconds { return false }
    if let to, t >= to.microseconds { return false }
    return true
  }
}

/// A report name the pipeline does not declare.
public struct UnknownReport: Error, CustomStringConvertible {
  public var name: String
  public var known: [String]
  public var description: String {
    if known.isEmpty {
      return "no report `\(name)`: the pipeline declares no funnels or attribution reports under `measurement`"
    }
    return "no report `\(name)`" + Suggest.didYouMean(name, in: known)
      + "; the pipeline declares: \(known.joined(separator: ", "))"
  }
}

extension CountingUnit {
  /// `people`, `devices`, `sessions`, a comma-separated list of them, or `all`; nil when a name is unknown.
  public static func list(parsing text: String) -> [CountingUnit]? {
    if text == "all" { return allCases }
    var out: [CountingUnit] = []
    for part in text.split(separator: ",") {
      guard let u = CountingUnit(rawValue: part.trimmingCharacters(in: .whitespaces)) else { return nil }
      if !out.contains(u) { out.append(u) }
    }
    return out.isEmpty ? nil : out
  }
}
