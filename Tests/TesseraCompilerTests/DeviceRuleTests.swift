import TesseraCompiler
import TesseraLanguage
import Testing

/// Probabilistic rules on device signals: what they may say, and what a mistake in them reports.
@Suite("Device rules in the language")
struct DeviceRuleTests {
  static func compile(_ rule: String) -> CompileResult {
    let yaml = """
      pipeline: t
      sources:
        web:
          kind: ndjson
          path: none.ndjson
          emit: page
          map: { anonymous_id: a, user_id: u, email: e, context.ip: ip, traits.born: b }
      identifiers:
        user_id: { max_per_profile: 1 }
        email: { normalize: email }
        anonymous_id: { expires_after: 730d }
      profile:
        traits:
          born: { type: string }
      probabilistic:
        device:
      \(rule.split(separator: "\n").map { "      " + $0 }.joined(separator: "\n"))
      """
    let files = ["p.yaml": yaml]
    return Compiler(environment: [:], readFile: { files[$0] }).compile(pipeline: "p.yaml")
  }

  static func errors(_ rule: String) -> [String] {
    compile(rule).diagnostics.filter { $0.severity == .error }.map {
      "\($0.location.line):\($0.location.column): \($0.message)"
    }
  }

  @Test("a rule on signals: review band by default, keep_apart of the kinds that do not expire, default settings")
  func defaults() throws {
    let plan = try #require(
      Self.compile(
        """
        blocking: [[signals.ip_prefix]]
        compare:
          signals.ip: [within 30 minutes, within 2 hours, exact]
          signals.browser: [exact]
        thresholds: { review: 0.9 }
        """
      ).plan)
    let rule = try #require(plan.config.probabilistic.first)
    #expect(rule.merge == 1 && rule.review == 0.9)
    #expect(rule.keepApart == ["user_id", "email"])
    #expect(rule.signals == SignalSettings())
    #expect(rule.consent == nil)
    #expect(rule.comparisons[0].levels.map(\.level) == [.seenWithin(30, .minutes), .seenWithin(2, .hours), .exact])
    #expect(rule.comparisons[0].levels[0].level.description == "within 30 minutes")
    #expect(rule.blockingInputs == [["signals.ip_prefix"]])
  }

  @Test("settings, consent and keep_apart as written; a merge threshold when named")
  func written() throws {
    let plan = try #require(
      Self.compile(
        """
        blocking: [[signals.ip]]
        compare:
          signals.ip: [within 10 minutes]
        signals: { keep: 7d, per_profile: 4, window: 2h, max_sharing: 20, frequency: [signals.ip] }
        consent: personalization
        keep_apart: [user_id]
        thresholds: { merge: 0.999, review: 0.95 }
        """
      ).plan)
    let rule = try #require(plan.config.probabilistic.first)
    let settings = try #require(rule.signals)
    #expect(settings.keep.seconds == 7 * 86_400 && settings.window.seconds == 7200)
    #expect(settings.perProfile == 4 && settings.maxSharing == 20 && settings.frequency == ["signals.ip"])
    #expect(rule.consent == "personalization" && rule.keepApart == ["user_id"] && rule.merge == 0.999)
  }

  @Test("mistakes report where and how to fix them")
  func mistakes() {
    #expect(
      Self.errors(
        """
        blocking: [[signals.ip]]
        compare:
          signals.iq: [exact]
        thresholds: { review: 0.9 }
        """) == [
          "19:9: unknown device signal `signals.iq` in the comparisons of probabilistic rule `device`; did you mean `signals.ip`?; device signals are ip, ip_prefix, user_agent, browser, browser_family, os, os_family, device, device_type, locale, timezone, screen"
        ])
    #expect(
      Self.errors(
        """
        blocking: [[traits.born]]
        compare:
          born: [within 30 minutes]
        thresholds: { merge: 0.99, review: 0.9 }
        """) == [
          "19:16: `within 30 minutes` measures time between sightings, which only device signals have (`signals.ip`, …); compare a date trait in days, months or years"
        ])
    #expect(
      Self.errors(
        """
        blocking: [[traits.born]]
        compare:
          born: [exact]
        signals: { keep: 1d }
        thresholds: { merge: 0.99, review: 0.9 }
        """) == [
          "20:7: probabilistic rule `device` compares no device signal, so `signals` has nothing to set; compare one (`signals.ip: [within 30 minutes, exact]`) or remove the block"
        ])
    #expect(
      Self.errors(
        """
        blocking: [[signals.ip]]
        compare:
          signals.ip: [within 30 minutes, within 5]
        consent: personalisation
        keep_apart: [user]
        signals: { frequency: [signals.os], per_profile: 0 }
        thresholds: { review: 0.9 }
        """) == [
          "19:41: `within 5` on device signal `signals.ip` needs a unit: `within 30 minutes` is the same value seen within 30 minutes of the other side's sighting",
          "20:16: unknown consent purpose `personalisation` in probabilistic rule `device`; did you mean `personalization`?; purposes are analytics, advertising, personalization",
          "21:20: unknown identifier kind `user` in `keep_apart` of probabilistic rule `device`; kinds are user_id, email, anonymous_id",
          "22:30: `frequency` in probabilistic rule `device` names `signals.os`, which is not a device signal it compares; did you mean `signals.ip`?",
          "22:56: `per_profile` in the signals of probabilistic rule `device` must be at least 1, found 0",
        ])
  }
}
