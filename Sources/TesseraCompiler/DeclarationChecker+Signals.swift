import TesseraLanguage
import TesseraModel

extension DeclarationChecker {
  /// Reads what a probabilistic rule says about device signals: `signals:` (how sightings are kept and
  /// shared values weighed), `consent:` and `keep_apart:`. A rule that compares or blocks on a signal gets
  /// the default settings without a `signals:` block; one that reads none may not have the block.
  func readDeviceOptions(_ m: MapReader, _ rule: inout ProbabilisticRule, _ what: String, _ config: PipelineConfig) {
    let readsSignals =
      rule.comparisons.contains { $0.fields.contains { $0.hasPrefix("signals.") } }
      || rule.blocking.contains { $0.contains { $0.references.contains { $0.hasPrefix("signals.") } } }
    if readsSignals { rule.signals = SignalSettings() }
    if let sv = m.value("signals"), let sm = MapReader(sv, "the signals of \(what)", sink, key: m.keyNode("signals")) {
      sm.check(allowed: ["keep", "per_profile", "window", "max_sharing", "frequency", "time"])
      if !readsSignals {
        sink.error(
          "\(what) compares no device signal, so `signals` has nothing to set; compare one (`signals.ip: [within 30 minutes, exact]`) or remove the block",
          at: m.keyNode("signals") ?? sv)
      }
      var settings = SignalSettings()
      if let d = sm.duration("keep") { settings.keep = d }
      if let d = sm.duration("window") { settings.window = d }
      if let n = sm.int("per_profile", min: 1) { settings.perProfile = n }
      if let n = sm.int("max_sharing", min: 1) { settings.maxSharing = n }
      if let column = sm.string("time") { settings.time = column }
      if let list = sm.stringList("frequency") {
        let compared = rule.comparisons.filter { $0.fields.count == 1 && $0.trait.hasPrefix("signals.") }.map(\.trait)
        settings.frequency = []
        for (name, node) in list {
          if compared.contains(name) {
            settings.frequency.append(name)
          } else {
            sink.error(
              "`frequency` in \(what) names `\(name)`, which is not a device signal it compares"
                + Suggest.didYouMean(name, in: compared), at: node)
          }
        }
      }
      if readsSignals { rule.signals = settings }
    }
    if let purpose = m.string("consent"), let node = m.value("consent") {
      if config.consentPurposes.contains(purpose) {
        rule.consent = purpose
      } else {
        sink.error(
          "unknown consent purpose `\(purpose)` in \(what)" + Suggest.didYouMean(purpose, in: config.consentPurposes)
            + "; purposes are \(config.consentPurposes.joined(separator: ", "))", at: node)
      }
    }
    let kinds = config.identifiers.map(\.name)
    if let list = m.stringList("keep_apart") {
      for (name, node) in list {
        if kinds.contains(name) {
          rule.keepApart.append(name)
        } else {
          let hint = Suggest.didYouMean(name, in: kinds)
          sink.error(
            "unknown identifier kind `\(name)` in `keep_apart` of \(what)"
              + (hint.isEmpty ? "; kinds are \(kinds.joined(separator: ", "))" : hint), at: node)
        }
      }
    } else if readsSignals {
      // Two people who each signed in (or gave an email) are two people, whatever device or network they share;
      // kinds that expire (anonymous and device ids) differ between one person's browsers by nature.
      rule.keepApart = config.identifiers.filter { $0.expiresAfter == nil }.map(\.name)
    }
  }
}
