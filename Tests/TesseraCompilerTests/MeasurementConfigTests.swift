import TesseraCompiler
import TesseraLanguage
import Testing

@Suite("measurement: touchpoints, conversions, funnels, attribution")
struct MeasurementConfigTests {
  static func pipeline(_ measurement: String) -> String {
    """
    pipeline: p
    identifiers:
      user_id: {}
      anonymous_id: {}
    sources:
      app:
        kind: http
        write_key: k
    measurement:
    \(measurement)
    """
  }

  static let good = """
      session_timeout: 20m
      touchpoints:
        visit:
          where: type == "page"
          channel: coalesce(context.campaign.medium, url_host(context.page.referrer))
          campaign: context.campaign.name
      conversions:
        purchase: { where: 'event == "Order Completed"', value: properties.revenue }
      funnels:
        checkout:
          steps:
            - event == "Product Viewed"
            - { name: ordered, where: 'event == "Order Completed"' }
          window: 2h
          hold_constant: [properties.product_id]
      attribution:
        credit:
          conversion: purchase
          lookback: 7d
          models: [first_touch, position_based, time_decay]
          position_based: { first: 0.3, last: 0.5 }
          time_decay: { half_life: 2d }
          credit_to: campaign
    """

  /// `file:line:column: severity: message` of each diagnostic.
  static func lines(_ r: CompileResult) -> [String] {
    r.diagnostics.map { "\($0.location.line):\($0.location.column): \($0.severity.rawValue): \($0.message)" }
  }

  @Test("a complete section is read with its defaults")
  func reads() throws {
    let r = compileInMemory(["p.yaml": Self.pipeline(Self.good)])
    #expect(Self.lines(r) == [])
    let m = try #require(r.plan?.config.measurement)
    #expect(m.device == "anonymous_id")
    #expect(m.sessionTimeout.seconds == 1200)
    #expect(m.touchpoints.map(\.name) == ["visit"])
    #expect(m.funnels.first?.steps.map(\.name) == ["step 1", "ordered"])
    #expect(m.funnels.first?.window.seconds == 7200)
    #expect(m.funnels.first?.holdConstant.count == 1)
    let a = try #require(m.attribution.first)
    #expect(a.models == [.first_touch, .position_based, .time_decay])
    #expect(a.firstWeight == 0.3 && a.lastWeight == 0.5)
    #expect(a.halfLife.seconds == 172_800)
    #expect(a.creditTo == .campaign)
    #expect(a.touchpoints == ["visit"])
    #expect(m.reportNames == ["checkout", "credit"])
  }

  @Test("misspelt keys, names and models are reported where they are written, with a suggestion")
  func misspellings() {
    let r = compileInMemory([
      "p.yaml": Self.pipeline(
        """
          device: anonymus_id
          touchpoints:
            visit: { where: type == "page", chanel: context.campaign.medium }
          conversions:
            purchase: { where: event == "Order Completed" }
          attribution:
            credit:
              conversion: purchse
              touchpoints: [visits]
              models: [first_touch, linaer]
        """)
    ])
    #expect(
      Self.lines(r) == [
        "10:11: error: unknown identifier kind `anonymus_id` for `device`; did you mean `anonymous_id`?; the device is the identifier kind that names a browser or an app install (e.g. anonymous_id)",
        "12:37: error: unknown key `chanel` in touchpoint `visit`; did you mean `channel`?",
        "17:19: error: unknown conversion `purchse` in attribution report `credit`; did you mean `purchase`?; declared: purchase",
        "18:21: error: unknown touchpoint `visits` in attribution report `credit`; did you mean `visit`?",
        "19:29: error: unknown model `linaer` in attribution report `credit`; did you mean `linear`?",
      ])
  }

  @Test("expressions are checked in the event scope, at their column")
  func expressions() {
    let r = compileInMemory([
      "p.yaml": Self.pipeline(
        """
          touchpoints:
            visit: { where: typ == "page", channel: timestamp }
          conversions:
            purchase: { where: event == "Order Completed", value: properties.sku == "x" }
        """)
    ])
    let lines = Self.lines(r)
    #expect(lines.count == 3)
    #expect(lines[0].hasPrefix("11:21: error: unknown name `typ`"))
    #expect(lines[0].contains("did you mean `type`?"))
    #expect(
      lines[1]
        == "11:45: error: `channel` of touchpoint `visit` must be a string, found timestamp; convert with string(…)")
    #expect(
      lines[2]
        == "13:59: error: the `value` of conversion `purchase` must be a number, found bool; convert with double(…)")
  }

  @Test("funnels need two steps; weights must leave a share; names of reports are unique")
  func shapes() {
    let r = compileInMemory([
      "p.yaml": Self.pipeline(
        """
          touchpoints:
            visit: { where: type == "page" }
          conversions:
            purchase: { where: event == "Order Completed" }
          funnels:
            one:
              steps: [event == "A"]
          attribution:
            weights: { conversion: purchase, position_based: { first: 0.7, last: 0.5 } }
            one: { conversion: purchase }
        """)
    ])
    #expect(
      Self.lines(r) == [
        "16:14: error: funnel `one` needs at least two steps, found 1",
        "18:54: error: the `position_based` weights of attribution report `weights` must be at least 0 and add up to at most 1 (the middle touches share the rest), found first 0.7 and last 0.5",
        "19:5: error: attribution report `one` has the name of a funnel; `tessera report` finds both by name, rename one",
      ])
  }
}
