import TesseraLanguage
import TesseraModel

// The `measurement` section: touchpoints, conversions, funnels and attribution reports.
extension DeclarationChecker {
  static let measurementKeys = [
    "device", "session_timeout", "touchpoints", "conversions", "funnels", "attribution", "description",
  ]

  /// Named entries of one part of the `measurement` section across files, duplicates reported.
  func measurementEntries(_ part: String, _ what: String) -> [(name: String, key: YNode, body: YNode)] {
    let bodies = (sections["measurement"] ?? []).compactMap { s in
      s.body.mapping?.first(where: { $0.key.scalar == part })?.value
    }
    return entries(of: bodies, what)
  }

  func readMeasurement(_ config: inout PipelineConfig) {
    let sectionsOfFiles = sections["measurement"] ?? []
    if sectionsOfFiles.isEmpty { return }
    let kinds = config.identifiers.map(\.name)
    var m = MeasurementConfig()
    m.device = kinds.contains("anonymous_id") ? "anonymous_id" : nil
    for s in sectionsOfFiles {
      guard let r = MapReader(s.body, "the measurement section", sink, key: s.key) else { continue }
      r.check(allowed: Self.measurementKeys)
      if let v = r.value("device"), let d = r.string("device") {
        if kinds.contains(d) {
          m.device = d
        } else {
          sink.error(
            "unknown identifier kind `\(d)` for `device`" + Suggest.didYouMean(d, in: kinds)
              + "; the device is the identifier kind that names a browser or an app install (e.g. anonymous_id)",
            at: v)
        }
      }
      if let t = r.duration("session_timeout") { m.sessionTimeout = t }
    }
    let scope = Scopes.event(identifiers: kinds, place: "a measurement expression")
    for (name, key, body) in measurementEntries("touchpoints", "touchpoint") {
      let what = "touchpoint `\(name)`"
      guard let r = MapReader(body, what, sink, key: key) else { continue }
      r.check(allowed: ["where", "channel", "campaign", "description"])
      let filter = r.value("where", required: true).flatMap { sink.expression($0, in: scope, expecting: .bool) }
      let channel = r.value("channel").flatMap { textExpression($0, scope, "`channel` of \(what)") }
      let campaign = r.value("campaign").flatMap { textExpression($0, scope, "`campaign` of \(what)") }
      guard let filter else { continue }
      m.touchpoints.append(
        TouchpointDecl(name: name, location: key.location, filter: filter, channel: channel, campaign: campaign))
    }
    for (name, key, body) in measurementEntries("conversions", "conversion") {
      let what = "conversion `\(name)`"
      guard let r = MapReader(body, what, sink, key: key) else { continue }
      r.check(allowed: ["where", "value", "description"])
      guard let wv = r.value("where", required: true), let filter = sink.expression(wv, in: scope, expecting: .bool)
      else { continue }
      var decl = ConversionDecl(name: name, location: key.location, filter: filter)
      if let v = r.value("value"), let e = sink.expression(v, in: scope) {
        if e.type.isNumeric || e.type == .dyn {
          decl.value = e
        } else {
          sink.error("the `value` of \(what) must be a number, found \(e.type); convert with double(…)", at: v)
        }
      }
      m.conversions.append(decl)
    }
    let funnels = measurementEntries("funnels", "funnel")
    for (name, key, body) in funnels {
      if let f = readFunnel(name, key, body, scope) { m.funnels.append(f) }
    }
    let funnelNames = Set(funnels.map(\.name))
    for (name, key, body) in measurementEntries("attribution", "attribution report") {
      if funnelNames.contains(name) {
        sink.error(
          "attribution report `\(name)` has the name of a funnel; `tessera report` finds both by name, rename one",
          at: key)
        continue
      }
      if let a = readAttribution(name, key, body, m) { m.attribution.append(a) }
    }
    config.measurement = m
  }

  /// A channel or campaign: a string (or a value read as one).
  func textExpression(_ v: YNode, _ scope: Scope, _ what: String) -> CompiledExpr? {
    guard let e = sink.expression(v, in: scope) else { return nil }
    if e.type == .string || e.type == .dyn { return e }
    sink.error("\(what) must be a string, found \(e.type); convert with string(…)", at: v)
    return nil
  }

  func readFunnel(_ name: String, _ key: YNode, _ body: YNode, _ scope: Scope) -> FunnelDecl? {
    let what = "funnel `\(name)`"
    guard let r = MapReader(body, what, sink, key: key) else { return nil }
    r.check(allowed: ["steps", "window", "hold_constant", "description"])
    var decl = FunnelDecl(
      name: name, location: key.location, description: r.string("description"), steps: [],
      window: r.duration("window") ?? TimeSpan(seconds: 86_400 * 30), holdConstant: [])
    guard let sv = r.value("steps", required: true) else { return nil }
    guard let items = sv.sequence else {
      sink.error("expected a list of steps for `steps` in \(what), found \(sv.kindDescription)", at: sv)
      return nil
    }
    var names: [String: SourceLocation] = [:]
    var complete = true
    for (i, item) in items.enumerated() {
      // A step is an event filter, or `{ name, where }`.
      var stepName = "step \(i + 1)"
      var filterNode = item
      if item.mapping != nil {
        guard let sr = MapReader(item, "step \(i + 1) of \(what)", sink) else { continue }
        sr.check(allowed: ["name", "where"])
        if let n = sr.string("name") { stepName = n }
        guard let w = sr.value("where", required: true) else {
          complete = false
          continue
        }
        filterNode = w
      }
      if let first = names[stepName] {
        sink.error("duplicate step name `\(stepName)` in \(what) (first at \(first))", at: item)
      }
      names[stepName] = item.location
      guard let f = sink.expression(filterNode, in: scope, expecting: .bool) else {
        complete = false
        continue
      }
      decl.steps.append(FunnelStep(name: stepName, filter: f, location: item.location))
    }
    if complete, decl.steps.count < 2 {
      sink.error("\(what) needs at least two steps, found \(decl.steps.count)", at: sv)
      return nil
    }
    if let hv = r.value("hold_constant") {
      let list = hv.sequence ?? [hv]
      for item in list {
        if let e = sink.expression(item, in: scope) { decl.holdConstant.append(e) }
      }
    }
    return complete ? decl : nil
  }

  func readAttribution(_ name: String, _ key: YNode, _ body: YNode, _ m: MeasurementConfig) -> AttributionDecl? {
    let what = "attribution report `\(name)`"
    guard let r = MapReader(body, what, sink, key: key) else { return nil }
    r.check(allowed: [
      "conversion", "touchpoints", "lookback", "models", "credit_to", "position_based", "time_decay", "description",
    ])
    var decl = AttributionDecl(
      name: name, location: key.location, description: r.string("description"), conversion: "",
      touchpoints: m.touchpoints.map(\.name), lookback: r.duration("lookback") ?? TimeSpan(seconds: 86_400 * 30),
      models: AttributionModel.allCases, creditTo: r.choice("credit_to", CreditTarget.self) ?? .channel,
      firstWeight: 0.4, lastWeight: 0.4, halfLife: TimeSpan(seconds: 86_400 * 7))
    var ok = true
    let conversions = m.conversions.map(\.name)
    if let v = r.value("conversion", required: true), let c = r.string("conversion") {
      if conversions.contains(c) {
        decl.conversion = c
      } else {
        sink.error(
          "unknown conversion `\(c)` in \(what)" + Suggest.didYouMean(c, in: conversions)
            + (conversions.isEmpty
              ? "; declare it under `measurement.conversions`"
              : "; declared: \(conversions.joined(separator: ", "))"),
          at: v)
        ok = false
      }
    } else {
      ok = false
    }
    let touchNames = m.touchpoints.map(\.name)
    if let list = r.stringList("touchpoints") {
      decl.touchpoints = []
      for (t, node) in list {
        if touchNames.contains(t) {
          decl.touchpoints.append(t)
        } else {
          sink.error("unknown touchpoint `\(t)` in \(what)" + Suggest.didYouMean(t, in: touchNames), at: node)
          ok = false
        }
      }
    } else if touchNames.isEmpty {
      sink.error("\(what) has no touchpoints to credit; declare some under `measurement.touchpoints`", at: key)
      ok = false
    }
    if let list = r.stringList("models") {
      decl.models = list.compactMap { MapReader.choice($0.1, "model", what, AttributionModel.self, sink) }
    }
    if let v = r.value("position_based"), let pr = MapReader(v, "`position_based` of \(what)", sink) {
      pr.check(allowed: ["first", "last"])
      decl.firstWeight = pr.double("first") ?? decl.firstWeight
      decl.lastWeight = pr.double("last") ?? decl.lastWeight
      if decl.firstWeight < 0 || decl.lastWeight < 0 || decl.firstWeight + decl.lastWeight > 1 {
        sink.error(
          "the `position_based` weights of \(what) must be at least 0 and add up to at most 1 (the middle touches "
            + "share the rest), found first \(decl.firstWeight) and last \(decl.lastWeight)", at: v)
        ok = false
      }
    }
    if let v = r.value("time_decay"), let tr = MapReader(v, "`time_decay` of \(what)", sink) {
      tr.check(allowed: ["half_life"])
      decl.halfLife = tr.duration("half_life") ?? decl.halfLife
    }
    return ok ? decl : nil
  }
}
