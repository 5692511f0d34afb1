/// The device signals an event carries in its context, as the values probabilistic rules compare under
/// `signals.NAME`: the network address and its prefix, the user agent and what it says (browser, system,
/// device), locale, time zone and screen.
///
/// Read from the context fields the tracking SDKs send (`context.ip`, `context.userAgent`, `context.locale`,
/// `context.timezone`, `context.screen.width`/`height`); a file source maps its columns there
/// (`context.ip: ip_address`).
public enum DeviceSignals {
  /// Every signal name, in the order `derive` fills them.
  public static let names = [
    "ip", "ip_prefix", "user_agent", "browser", "browser_family", "os", "os_family", "device", "device_type",
    "locale", "timezone", "screen",
  ]

  /// Each signal's name as rules read it (`ip` → `signals.ip`).
  public static let ruleNames = Dictionary(uniqueKeysWithValues: names.map { ($0, "signals." + $0) })

  /// The context fields signals are read from.
  public static let contextKeys = ["ip", "userAgent", "user_agent", "locale", "timezone", "screen"]

  /// The signals of an event's context, keyed by name (without `signals.`); absent ones are left out.
  /// `parse` reads a user agent (callers pass a cached `UserAgent.parse`).
  public static func derive(
    _ context: [String: Value], parse: (String) -> UserAgent = UserAgent.parse
  ) -> [String: String] {
    var out = contextSignals(context)
    if let header = userAgentHeader(context) {
      out.merge(userAgentSignals(header, parse(header))) { $1 }
    }
    return out
  }

  /// The user agent of a context (`userAgent`, else `user_agent`), trimmed; nil when there is none.
  public static func userAgentHeader(_ context: [String: Value]) -> String? {
    text(context["userAgent"]) ?? text(context["user_agent"])
  }

  /// What a user agent says: itself, browser, system and device (`derive`'s part that depends on it alone).
  public static func userAgentSignals(_ header: String, _ parsed: UserAgent) -> [String: String] {
    [
      "user_agent": header, "browser": parsed.browserWithVersion, "browser_family": parsed.browser,
      "os": parsed.osWithVersion, "os_family": parsed.os, "device": parsed.device, "device_type": parsed.deviceType,
    ]
  }

  /// The signals of a context other than its user agent's: address and prefix, locale, time zone, screen.
  public static func contextSignals(_ context: [String: Value]) -> [String: String] {
    var out: [String: String] = [:]
    out.reserveCapacity(12)
    if let raw = text(context["ip"]), let ip = IPAddress.normalizeWithPrefix(raw) {
      out["ip"] = ip.address
      out["ip_prefix"] = ip.prefix
    }
    if let l = text(context["locale"]) { out["locale"] = l.replacingUnderscores() }
    if let t = text(context["timezone"]) { out["timezone"] = t }
    if case .map(let screen)? = context["screen"], let w = screen["width"]?.doubleValue,
      let h = screen["height"]?.doubleValue, w > 0, h > 0
    {
      out["screen"] = "\(Int(w))x\(Int(h))"
    } else if let s = text(context["screen"]) {
      out["screen"] = s
    }
    return out
  }

  /// The signals of a record of a file (`tessera link`): its columns named like the context fields
  /// (`ip`, `user_agent` or `userAgent`, `locale`, `timezone`, `screen` as `1440x900`), also with `context.`
  /// before the name. `column(name)` gives a column's text (nil when absent).
  public static func derive(
    columns column: (String) -> String?, parse: (String) -> UserAgent = UserAgent.parse
  ) -> [String: String] {
    var context: [String: Value] = [:]
    for key in contextKeys {
      if let v = column(key) ?? column("context." + key) { context[key] = .string(v) }
    }
    return derive(context, parse: parse)
  }

  /// The column names `derive(columns:)` reads.
  public static var recordColumns: [String] { contextKeys + contextKeys.map { "context." + $0 } }

  static func text(_ v: Value?) -> String? {
    guard let v, case .string(let s) = v else { return nil }
    let t = Normalize.trim(s)
    return t.isEmpty ? nil : t
  }
}

extension String {
  /// `en_US` → `en-US`: locales compare in one spelling.
  fileprivate func replacingUnderscores() -> String {
    utf8.contains(0x5F) ? String(map { $0 == "_" ? "-" : $0 }) : self
  }
}
