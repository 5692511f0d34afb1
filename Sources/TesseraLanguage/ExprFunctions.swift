import Crypto
import Foundation
import TesseraModel

/// A built-in function of the expression language.
public struct ExprFunction: Sendable {
  public enum Impl: Sendable {
    case one(@Sendable (Value) -> Value)
    case two(@Sendable (Value, Value) -> Value)
    case many(@Sendable ([Value]) -> Value)
    case env(@Sendable (Env) -> Value)
  }
  public let name: String
  /// Parameter types; `dyn` accepts anything.
  public let params: [ExprType]
  /// How many trailing parameters may be left out.
  public let optional: Int
  /// The last parameter repeats.
  public let variadic: Bool
  /// When false, a `null` argument makes the result `null` without calling the function.
  public let takesNull: Bool
  public let result: @Sendable ([ExprType]) -> ExprType
  public let impl: Impl
  public let summary: String
  public let example: String
}

public enum ExprFunctions {
  /// The host of an absolute URL (`https://www.example.com/a` → `example.com`), lowercased, `www.` dropped.
  static func urlHost(_ text: String) -> String? {
    let t = Normalize.trim(text)
    let bytes = Array(t.utf8)
    if bytes.allSatisfy({ $0 < 0x80 }) { return asciiURLHost(bytes) }
    guard let scheme = t.range(of: "://") else { return nil }
    var rest = t[scheme.upperBound...]
    if let end = rest.firstIndex(where: { $0 == "/" || $0 == "?" || $0 == "#" }) { rest = rest[..<end] }
    if let at = rest.lastIndex(of: "@") { rest = rest[rest.index(after: at)...] }
    if let colon = rest.lastIndex(of: ":"), !rest.hasPrefix("[") { rest = rest[..<colon] }
    var host = rest.lowercased()
    if host.hasPrefix("www.") { host.removeFirst(4) }
    return host.isEmpty ? nil : host
  }

  /// `urlHost` of ASCII text, byte by byte: each character is one byte there, so the same steps give the
  /// same host without Foundation's search (a report calls this on every page view's referrer).
  static func asciiURLHost(_ b: [UInt8]) -> String? {
    let colon = UInt8(ascii: ":")
    let slash = UInt8(ascii: "/")
    guard b.count >= 3,
      let scheme = (0...(b.count - 3)).first(where: { b[$0] == colon && b[$0 + 1] == slash && b[$0 + 2] == slash })
    else { return nil }
    var rest = b[(scheme + 3)...]
    if let end = rest.firstIndex(where: { $0 == slash || $0 == UInt8(ascii: "?") || $0 == UInt8(ascii: "#") }) {
      rest = rest[..<end]
    }
    if let at = rest.lastIndex(of: UInt8(ascii: "@")) { rest = rest[(at + 1)...] }
    if let c = rest.lastIndex(of: colon), rest.first != UInt8(ascii: "[") { rest = rest[..<c] }
    var host = rest.map { $0 >= UInt8(ascii: "A") && $0 <= UInt8(ascii: "Z") ? $0 + 32 : $0 }
    if host.starts(with: Array("www.".utf8)) { host.removeFirst(4) }
    return host.isEmpty ? nil : String(decoding: host, as: UTF8.self)
  }

  static func str(_ f: @escaping @Sendable (String) -> Value) -> ExprFunction.Impl {
    .one { v in
      if case .string(let s) = v { return f(s) }
      return .null
    }
  }
  static func str2(_ f: @escaping @Sendable (String, String) -> Value) -> ExprFunction.Impl {
    .two { a, b in
      if case .string(let x) = a, case .string(let y) = b { return f(x, y) }
      return .null
    }
  }
  static func fixed(_ t: ExprType) -> @Sendable ([ExprType]) -> ExprType { { _ in t } }

  static func def(
    _ name: String, _ params: [ExprType], optional: Int = 0, variadic: Bool = false, takesNull: Bool = false,
    result: @escaping @Sendable ([ExprType]) -> ExprType, _ impl: ExprFunction.Impl, _ summary: String,
    example: String
  ) -> ExprFunction {
    ExprFunction(
      name: name, params: params, optional: optional, variadic: variadic, takesNull: takesNull, result: result,
      impl: impl, summary: summary, example: example)
  }

  /// Every built-in, by name.
  public static let all: [String: ExprFunction] = {
    var fns: [ExprFunction] = [
      def(
        "lower", [.string], result: fixed(.string), str { .string($0.lowercased()) }, "lowercase a string",
        example: #"lower("Ada") == "ada""#),
      def(
        "upper", [.string], result: fixed(.string), str { .string($0.uppercased()) }, "uppercase a string",
        example: #"upper("gb") == "GB""#),
      def(
        "trim", [.string], result: fixed(.string), str { .string(Normalize.trim($0)) },
        "remove leading and trailing white space", example: #"trim("  a ") == "a""#),
      def(
        "url_host", [.string], result: fixed(.string), str { ExprFunctions.urlHost($0).map(Value.string) ?? .null },
        "the host of a URL, lowercased and without a leading `www.`; null when the text is no URL with a host",
        example: #"url_host("https://www.Google.com/search?q=x") == "google.com""#),
      def(
        "contains", [.string, .string], result: fixed(.bool), str2 { .bool($1.isEmpty || $0.contains($1)) },
        "whether the first string contains the second", example: #"contains(email, "@")"#),
      def(
        "starts_with", [.string, .string], result: fixed(.bool), str2 { .bool($0.hasPrefix($1)) },
        "whether the first string starts with the second", example: #"starts_with(sku, "GIFT-")"#),
      def(
        "ends_with", [.string, .string], result: fixed(.bool), str2 { .bool($0.hasSuffix($1)) },
        "whether the first string ends with the second", example: #"ends_with(email, "@example.com")"#),
      def(
        "matches", [.string, .string], result: fixed(.bool), .two { _, _ in .null },
        "whether the string matches a regular expression (ICU syntax; the pattern must be a literal and is checked when the configuration compiles)",
        example: #"matches(postcode, "^[0-9]{5}$")"#),
      def(
        "sha256", [.string], result: fixed(.string),
        str { s in .string(SHA256.hash(data: Data(s.utf8)).map { String(format: "%02x", $0) }.joined()) },
        "lowercase hex SHA-256 of the UTF-8 bytes", example: #"sha256(normalize_email(traits.email))"#),
      def(
        "normalize_email", [.string], result: fixed(.string),
        str { Normalize.email($0).map(Value.string) ?? .null },
        "trim and lowercase an email; null when it is not an email", example: #"normalize_email(" Ada@Example.COM ")"#),
      def(
        "phone_e164", [.string, .string], optional: 1, result: fixed(.string),
        .many { args in
          guard case .string(let s) = args[0] else { return .null }
          let region = args.count > 1 ? (args[1].stringValue ?? "US") : "US"
          return Normalize.phoneE164(s, defaultRegion: region).map(Value.string) ?? .null
        }, "a phone number in E.164, read in the given region (default US); null when it is not a phone number",
        example: #"phone_e164("(415) 555-0123", "US") == "+14155550123""#),
      def(
        "double", [.dyn], result: fixed(.double), .one(Convert.toDouble),
        "convert a number or numeric string to double; null when it cannot", example: #"double(total) > 100.0"#),
      def(
        "int", [.dyn], result: fixed(.int), .one(Convert.toInt),
        "convert to an integer (doubles truncate); null when it cannot", example: #"int("42") == 42"#),
      def(
        "string", [.dyn], result: fixed(.string), .one { .string($0.description) }, "render any value as a string",
        example: #"string(customer_no)"#),
      def(
        "timestamp", [.dyn], result: fixed(.timestamp), .one(Convert.toTimestamp),
        "an ISO 8601 string or epoch seconds as a timestamp; null when it cannot", example: #"timestamp(updated_at)"#),
      def(
        "duration", [.string], result: fixed(.duration),
        str { TimeSpan(parsing: $0).map(Value.duration) ?? .null }, "a duration from text like `90d` or `1h30m`",
        example: #"duration("90d") == 90d"#),
      def(
        "now", [], result: fixed(.timestamp), .env { .timestamp($0.now) },
        "the pipeline's current time (injected by the runtime, so dry runs and tests are reproducible)",
        example: #"now() - traits.last_seen < 30d"#),
      def(
        "size", [.dyn], result: fixed(.int),
        .one { v in
          switch v {
          case .string(let s): return .int(Int64(s.count))
          case .list(let l): return .int(Int64(l.count))
          case .map(let m): return .int(Int64(m.count))
          default: return .null
          }
        }, "length of a string, list or map", example: #"size(traits.tags) > 0"#),
      def(
        "exists", [.dyn], takesNull: true, result: fixed(.bool), .one { .bool(!$0.isNull) },
        "whether a value is present (not null)", example: #"exists(traits.email)"#),
      def(
        "coalesce", [.dyn], variadic: true, takesNull: true,
        result: { types in types.dropFirst().reduce(types.first ?? .null) { ExprType.unify($0, $1) ?? .dyn } },
        .many { args in args.first { !$0.isNull } ?? .null }, "the first argument that is not null",
        example: #"coalesce(traits.nickname, traits.first_name)"#),
      def(
        "soundex", [.string], result: fixed(.string), str { .string(Phonetic.soundex($0)) },
        "the American Soundex code of a name, for blocking", example: #"soundex("Robert") == "R163""#),
      def(
        "nysiis", [.string], result: fixed(.string), str { .string(Phonetic.nysiis($0)) },
        "the NYSIIS code of a name (original rules, at most 6 letters), for blocking",
        example: #"nysiis("Knuth") == "NAT""#),
    ]
    fns.sort { $0.name < $1.name }
    return Dictionary(uniqueKeysWithValues: fns.map { ($0.name, $0) })
  }()
}

/// Conversions used by `double()`, `int()`, `timestamp()` and by source schemas.
public enum Convert {
  @Sendable public static func toDouble(_ v: Value) -> Value {
    switch v {
    case .double: return v
    case .int(let i): return .double(Double(i))
    case .string(let s): return Double(Normalize.trim(s)).map(Value.double) ?? .null
    case .bool(let b): return .double(b ? 1 : 0)
    default: return .null
    }
  }
  @Sendable public static func toInt(_ v: Value) -> Value {
    switch v {
    case .int: return v
    case .double(let d): return d.isFinite && abs(d) < 9.2e18 ? .int(Int64(d)) : .null
    case .string(let s):
      let t = Normalize.trim(s)
      if let i = Int64(t) { return .int(i) }
      return Double(t).flatMap { $0.isFinite && abs($0) < 9.2e18 ? Value.int(Int64($0)) : nil } ?? .null
    case .bool(let b): return .int(b ? 1 : 0)
    default: return .null
    }
  }
  @Sendable public static func toTimestamp(_ v: Value) -> Value {
    switch v {
    case .timestamp: return v
    case .int(let i):
      let (micros, overflow) = i.multipliedReportingOverflow(by: 1_000_000)
      return overflow ? .null : .timestamp(Timestamp(microseconds: micros))
    case .double(let d): return fromEpochSeconds(d)
    case .string(let s):
      if let t = Timestamp(iso8601: Normalize.trim(s)) { return .timestamp(t) }
      if let d = Double(s) { return fromEpochSeconds(d) }
      return .null
    default: return .null
    }
  }
  /// Epoch seconds as a timestamp; null when not finite or out of range.
  static func fromEpochSeconds(_ d: Double) -> Value {
    guard d.isFinite, abs(d) < 9.2e12 else { return .null }
    return .timestamp(Timestamp(seconds: d))
  }
  @Sendable public static func toBool(_ v: Value) -> Value {
    switch v {
    case .bool: return v
    case .string(let s):
      switch Normalize.trim(s).lowercased() {
      case "true", "yes", "1", "y": return .bool(true)
      case "false", "no", "0", "n": return .bool(false)
      default: return .null
      }
    case .int(let i): return .bool(i != 0)
    default: return .null
    }
  }

  /// Converts a raw value to a declared type, or nil when it cannot be (null stays null).
  public static func to(_ type: ExprType, _ v: Value) -> Value? {
    if v.isNull { return .null }
    switch type {
    case .dyn: return v
    case .string:
      if case .string = v { return v }
      if case .map = v { return nil }
      if case .list = v { return nil }
      return .string(v.description)
    case .int: let r = toInt(v); return r.isNull ? nil : r
    case .double: let r = toDouble(v); return r.isNull ? nil : r
    case .bool: let r = toBool(v); return r.isNull ? nil : r
    case .timestamp: let r = toTimestamp(v); return r.isNull ? nil : r
    case .duration:
      if case .duration = v { return v }
      if case .string(let s) = v, let d = TimeSpan(parsing: s) { return .duration(d) }
      return nil
    case .list:
      if case .list = v { return v }
      return nil
    case .map:
      if case .map = v { return v }
      return nil
    case .null: return nil
    }
  }
}

public enum Phonetic {
  /// American Soundex: first letter and three digits (`Robert` → `R163`, `Tymczak` → `T522`).
  public static func soundex(_ s: String) -> String {
    s.utf8.allSatisfy({ $0 < 0x80 }) ? asciiSoundex(s) : characterSoundex(s)
  }

  /// `soundex` on characters: uppercasing may turn a letter into ASCII ones (`ß` → `SS`).
  static func characterSoundex(_ s: String) -> String {
    func code(_ c: Character) -> Character? {
      switch c {
      case "B", "F", "P", "V": return "1"
      case "C", "G", "J", "K", "Q", "S", "X", "Z": return "2"
      case "D", "T": return "3"
      case "L": return "4"
      case "M", "N": return "5"
      case "R": return "6"
      default: return nil
      }
    }
    let letters = s.uppercased().filter { $0.isASCII && $0.isLetter }
    guard let first = letters.first else { return "" }
    var out = String(first)
    var last = code(first)
    for c in letters.dropFirst() {
      let d = code(c)
      if let d, d != last { out.append(d) }
      if out.count == 4 { break }
      // H and W do not separate equal codes; vowels do.
      if c != "H" && c != "W" { last = d }
    }
    return out.padding(toLength: 4, withPad: "0", startingAt: 0)
  }

  /// `soundex` of ASCII text, byte by byte (the same code: uppercased letters only, the same rules).
  static func asciiSoundex(_ s: String) -> String {
    func code(_ c: UInt8) -> UInt8 {
      switch c {
      case UInt8(ascii: "B"), UInt8(ascii: "F"), UInt8(ascii: "P"), UInt8(ascii: "V"): return UInt8(ascii: "1")
      case UInt8(ascii: "C"), UInt8(ascii: "G"), UInt8(ascii: "J"), UInt8(ascii: "K"), UInt8(ascii: "Q"),
        UInt8(ascii: "S"), UInt8(ascii: "X"), UInt8(ascii: "Z"):
        return UInt8(ascii: "2")
      case UInt8(ascii: "D"), UInt8(ascii: "T"): return UInt8(ascii: "3")
      case UInt8(ascii: "L"): return UInt8(ascii: "4")
      case UInt8(ascii: "M"), UInt8(ascii: "N"): return UInt8(ascii: "5")
      case UInt8(ascii: "R"): return UInt8(ascii: "6")
      default: return 0
      }
    }
    var out: [UInt8] = []
    var last: UInt8 = 0
    for b in s.utf8 {
      let c = b >= UInt8(ascii: "a") && b <= UInt8(ascii: "z") ? b - 32 : b
      guard c >= UInt8(ascii: "A") && c <= UInt8(ascii: "Z") else { continue }
      let d = code(c)
      if out.isEmpty {
        out.append(c)
        last = d
        continue
      }
      if d != 0 && d != last {
        out.append(d)
        if out.count == 4 { break }
      }
      // H and W do not separate equal codes; vowels do.
      if c != UInt8(ascii: "H") && c != UInt8(ascii: "W") { last = d }
    }
    if out.isEmpty { return "" }
    while out.count < 4 { out.append(UInt8(ascii: "0")) }
    return String(decoding: out, as: UTF8.self)
  }

  /// NYSIIS (New York State Identification and Intelligence System, Taft 1970), truncated to 6 letters as in the
  /// original standard: `Knuth` → `NAT`, `Macintosh` → `MCANT`, `Westerlund` → `WASTAR`.
  /// ASCII letters only (after uppercasing); `""` when there are none.
  public static func nysiis(_ s: String) -> String { nysiis(s, maxLength: 6) }

  /// NYSIIS with the key cut to `maxLength` letters, or not cut when nil (`Westerlund` → `WASTARLAD`).
  ///
  /// The rules of the original algorithm as published (Wikipedia, dropby.com; the same as Apache Commons
  /// Codec's `Nysiis`):
  /// 1. leading `MAC` → `MCC`, `KN` → `NN`, `K` → `C`, `PH`/`PF` → `FF`, `SCH` → `SSS`;
  /// 2. trailing `EE`/`IE` → `Y`, `DT`/`RT`/`RD`/`NT`/`ND` → `D`;
  /// 3. the key starts with the first letter; every later letter is transcoded in place, left to right:
  ///    `EV` → `AF`, other vowels → `A`, `Q` → `G`, `Z` → `S`, `M` → `N`, `KN` → `NN`, other `K` → `C`,
  ///    `SCH` → `SSS`, `PH` → `FF`, `H` → the previous letter when the previous or the next is not a vowel,
  ///    `W` → the previous letter when that is a vowel; the result joins the key unless it equals the
  ///    (transcoded) letter before it;
  /// 4. a final `S` is dropped, then a final `AY` becomes `Y`, else a final `A` is dropped — but the first
  ///    letter is never dropped (`As` → `A`, where Commons Codec gives `""`).
  public static func nysiis(_ s: String, maxLength: Int?) -> String {
    let A = UInt8(ascii: "A")
    func isVowel(_ c: UInt8) -> Bool {
      c == A || c == UInt8(ascii: "E") || c == UInt8(ascii: "I") || c == UInt8(ascii: "O") || c == UInt8(ascii: "U")
    }
    func ascii(_ text: String) -> [UInt8] { Array(text.utf8) }
    var n: [UInt8] = s.uppercased().utf8.filter { $0 >= A && $0 <= UInt8(ascii: "Z") }
    guard !n.isEmpty else { return "" }
    func hasPrefix(_ p: String) -> Bool { n.starts(with: p.utf8) }
    func hasSuffix(_ p: String) -> Bool { n.count >= p.utf8.count && n.suffix(p.utf8.count).elementsEqual(p.utf8) }
    func replacePrefix(_ count: Int, _ with: String) { n.replaceSubrange(0..<count, with: ascii(with)) }
    func replaceSuffix(_ count: Int, _ with: String) {
      n.replaceSubrange((n.count - count)..<n.count, with: ascii(with))
    }
    if hasPrefix("MAC") {
      replacePrefix(3, "MCC")
    } else if hasPrefix("KN") {
      replacePrefix(2, "NN")
    } else if hasPrefix("K") {
      replacePrefix(1, "C")
    } else if hasPrefix("PH") || hasPrefix("PF") {
      replacePrefix(2, "FF")
    } else if hasPrefix("SCH") {
      replacePrefix(3, "SSS")
    }
    if hasSuffix("EE") || hasSuffix("IE") {
      replaceSuffix(2, "Y")
    } else if ["DT", "RT", "RD", "NT", "ND"].contains(where: hasSuffix) {
      replaceSuffix(2, "D")
    }
    var key: [UInt8] = [n[0]]
    let space = UInt8(ascii: " ")
    for i in 1..<n.count {
      let prev = n[i - 1]
      let cur = n[i]
      let next = i + 1 < n.count ? n[i + 1] : space
      let afterNext = i + 2 < n.count ? n[i + 2] : space
      let out: String?
      switch cur {
      case UInt8(ascii: "E") where next == UInt8(ascii: "V"): out = "AF"
      case _ where isVowel(cur): out = "A"
      case UInt8(ascii: "Q"): out = "G"
      case UInt8(ascii: "Z"): out = "S"
      case UInt8(ascii: "M"): out = "N"
      case UInt8(ascii: "K"): out = next == UInt8(ascii: "N") ? "NN" : "C"
      case UInt8(ascii: "S") where next == UInt8(ascii: "C") && afterNext == UInt8(ascii: "H"): out = "SSS"
      case UInt8(ascii: "P") where next == UInt8(ascii: "H"): out = "FF"
      case UInt8(ascii: "H") where !isVowel(prev) || !isVowel(next), UInt8(ascii: "W") where isVowel(prev):
        out = nil
        n[i] = prev
      default: out = nil
      }
      if let out {
        for (offset, c) in out.utf8.enumerated() { n[i + offset] = c }
      }
      if n[i] != n[i - 1] { key.append(n[i]) }
    }
    if key.count > 1 {
      var last = key[key.count - 1]
      if last == UInt8(ascii: "S") {
        key.removeLast()
        last = key[key.count - 1]
      }
      if key.count > 2 && key[key.count - 2] == A && last == UInt8(ascii: "Y") {
        key.remove(at: key.count - 2)
      } else if last == A && key.count > 1 {
        key.removeLast()
      }
    }
    if let maxLength, key.count > max(0, maxLength) { key.removeLast(key.count - max(0, maxLength)) }
    return String(decoding: key, as: UTF8.self)
  }
}
