/// Pure normalization functions shared by the expression language (`normalize_email`, `phone_e164`) and
/// identity resolution. They live in the model because both need them and neither may import the other.
public enum Normalize {
  public static func trim(_ s: String) -> String {
    // Fast path: nothing to trim when the first and last bytes are visible ASCII (or non-ASCII text that the
    // slow path below checks properly).
    if let f = s.utf8.first, let l = s.utf8.last, f > 0x20, f < 0x80, l > 0x20, l < 0x80 { return s }
    var sub = Substring(s)
    while let f = sub.first, f.isWhitespace { sub.removeFirst() }
    while let l = sub.last, l.isWhitespace { sub.removeLast() }
    return sub.count == s.count ? s : String(sub)
  }

  /// Provider-specific email rules an operator opts into.
  public struct EmailRules: Sendable, Hashable {
    /// Drop dots in the local part for these domains (Gmail ignores them).
    public var ignoreDotsDomains: Set<String>
    /// Drop a `+suffix` in the local part for these domains (`*` for every domain).
    public var plusSuffixDomains: Set<String>
    public init(ignoreDotsDomains: Set<String> = [], plusSuffixDomains: Set<String> = []) {
      self.ignoreDotsDomains = ignoreDotsDomains
      self.plusSuffixDomains = plusSuffixDomains
    }
    public static let none = EmailRules()
    /// Gmail's rules: dots and `+suffix` do not matter for gmail.com and googlemail.com.
    public static let gmail = EmailRules(
      ignoreDotsDomains: ["gmail.com", "googlemail.com"], plusSuffixDomains: ["gmail.com", "googlemail.com"])
  }

  /// Trims and lowercases an email, applying opt-in provider rules. Returns nil when it is not an email
  /// (no single `@` with text on both sides and a dot in the domain).
  public static func email(_ raw: String, rules: EmailRules = .none) -> String? {
    if let ascii = asciiEmail(raw, rules: rules) { return ascii }
    return characterEmail(raw, rules: rules)
  }

  /// What `email` gives, for text that is all ASCII, byte by byte (it runs for every record that maps an
  /// email, and the version over `Character`s was a quarter of mapping); `.none` when the text is not ASCII,
  /// `.some(nil)` when it is no email.
  static func asciiEmail(_ raw: String, rules: EmailRules) -> String?? {
    var bytes = Array(raw.utf8)
    guard !bytes.contains(where: { $0 >= 0x80 }) else { return nil }
    func space(_ b: UInt8) -> Bool { b == 0x20 || (0x09...0x0D).contains(b) }
    var start = 0
    var end = bytes.count
    while start < end, space(bytes[start]) { start += 1 }
    while end > start, space(bytes[end - 1]) { end -= 1 }
    bytes = Array(bytes[start..<end])
    for i in bytes.indices where (0x41...0x5A).contains(bytes[i]) { bytes[i] += 0x20 }
    guard let at = bytes.lastIndex(of: UInt8(ascii: "@")) else { return .some(nil) }
    var local = Array(bytes[..<at])
    let domain = Array(bytes[(at + 1)...])
    guard !local.isEmpty, !domain.isEmpty, domain.contains(UInt8(ascii: ".")), !local.contains(UInt8(ascii: "@")),
      domain.first != UInt8(ascii: "."), domain.last != UInt8(ascii: "."), !bytes.contains(where: space)
    else { return .some(nil) }
    let domainText = String(decoding: domain, as: UTF8.self)
    if rules.plusSuffixDomains.contains(domainText) || rules.plusSuffixDomains.contains("*"),
      let plus = local.firstIndex(of: UInt8(ascii: "+"))
    {
      local.removeSubrange(plus...)
    }
    if rules.ignoreDotsDomains.contains(domainText) { local.removeAll { $0 == UInt8(ascii: ".") } }
    guard !local.isEmpty else { return .some(nil) }
    return .some(String(decoding: local + [UInt8(ascii: "@")] + domain, as: UTF8.self))
  }

  /// `email` over `Character`s: any text.
  static func characterEmail(_ raw: String, rules: EmailRules) -> String? {
    let s = trim(raw).lowercased()
    guard let at = s.lastIndex(of: "@") else { return nil }
    var local = String(s[..<at])
    let domain = String(s[s.index(after: at)...])
    guard !local.isEmpty, !domain.isEmpty, domain.contains("."), !local.contains("@"), !domain.hasPrefix("."),
      !domain.hasSuffix("."), !s.contains(where: { $0.isWhitespace })
    else { return nil }
    if rules.plusSuffixDomains.contains(domain) || rules.plusSuffixDomains.contains("*"),
      let plus = local.firstIndex(of: "+")
    {
      local = String(local[..<plus])
    }
    if rules.ignoreDotsDomains.contains(domain) { local.removeAll { $0 == "." } }
    guard !local.isEmpty else { return nil }
    return local + "@" + domain
  }

  /// Country calling codes and national trunk prefixes by ISO 3166 region.
  public static let callingCodes: [String: (code: String, trunk: String, nationalLength: ClosedRange<Int>)] = [
    "US": ("1", "1", 10...10), "CA": ("1", "1", 10...10), "GB": ("44", "0", 9...10), "IE": ("353", "0", 7...9),
    "DE": ("49", "0", 6...12), "FR": ("33", "0", 9...9), "ES": ("34", "", 9...9), "IT": ("39", "", 6...11),
    "NL": ("31", "0", 9...9), "BE": ("32", "0", 8...9), "CH": ("41", "0", 9...9), "AT": ("43", "0", 4...13),
    "SE": ("46", "0", 7...9), "NO": ("47", "", 8...8), "DK": ("45", "", 8...8), "FI": ("358", "0", 5...12),
    "PL": ("48", "", 9...9), "PT": ("351", "", 9...9), "AU": ("61", "0", 9...9), "NZ": ("64", "0", 8...10),
    "JP": ("81", "0", 9...10), "IN": ("91", "0", 10...10), "BR": ("55", "0", 10...11), "MX": ("52", "", 10...10),
    "ZA": ("27", "0", 9...9), "SG": ("65", "", 8...8),
  ]

  public static func isKnownRegion(_ region: String) -> Bool { callingCodes[region.uppercased()] != nil }

  /// Normalizes a phone number to E.164 (`+14155550123`). Numbers written with `+` or `00` keep their
  /// country code; others are read as national numbers of `defaultRegion` (its trunk prefix dropped).
  /// Returns nil when there are too few or too many digits to be a phone number.
  public static func phoneE164(_ raw: String, defaultRegion: String = "US") -> String? {
    let s = trim(raw)
    var digits = ""
    var international = false
    for ch in s {
      if ch == "+" && digits.isEmpty && !international {
        international = true
      } else if ch.isASCII, let d = ch.wholeNumberValue {
        digits.append(Character(String(d)))
      } else if "()-. /".contains(ch) {
        continue
      } else if ch == "x" || ch == "X" || ch == "#" || ch == ";" {
        break  // an extension follows
      } else {
        return nil
      }
    }
    if !international && digits.hasPrefix("00") {
      international = true
      digits.removeFirst(2)
    }
    if international {
      guard (8...15).contains(digits.count), digits.first != "0" else { return nil }
      return "+" + digits
    }
    guard let info = callingCodes[defaultRegion.uppercased()] else { return nil }
    // A national number never starts with the trunk prefix, so drop it whenever what remains fits.
    if !info.trunk.isEmpty, digits.hasPrefix(info.trunk),
      info.nationalLength.contains(digits.count - info.trunk.count)
    {
      digits.removeFirst(info.trunk.count)
    }
    guard info.nationalLength.contains(digits.count) else {
      // Already carries the country code without '+' (e.g. 4915112345678).
      if digits.hasPrefix(info.code), info.nationalLength.contains(digits.count - info.code.count) {
        return "+" + digits
      }
      return nil
    }
    return "+" + info.code + digits
  }
}
