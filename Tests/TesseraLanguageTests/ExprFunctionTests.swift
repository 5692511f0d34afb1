import Testing

@testable import TesseraLanguage
@testable import TesseraModel

@Suite("Expression built-in functions")
struct ExprFunctionTests {
  typealias F = Fixture

  @Test("every built-in is covered by this suite")
  func allFunctionsKnown() {
    let covered: Set<String> = [
      "lower", "upper", "trim", "contains", "starts_with", "ends_with", "matches", "sha256", "normalize_email",
      "phone_e164", "double", "int", "string", "timestamp", "duration", "now", "size", "exists", "coalesce",
      "soundex", "nysiis", "url_host",
    ]
    #expect(Set(ExprFunctions.all.keys) == covered)
    for (name, f) in ExprFunctions.all {
      #expect(f.name == name)
      #expect(!f.summary.isEmpty)
      #expect(f.example.contains(name), "the example of \(name)")
    }
  }

  @Test("every function's documented example compiles in a permissive scope")
  func examplesCompile() {
    var scope = Scope(place: "an example")
    scope.addRawRecord()
    scope.addOpenNamespace("traits")
    for (name, f) in ExprFunctions.all {
      let (expr, errors) = ExprCompiler.compile(f.example, in: scope)
      #expect(expr != nil && errors.isEmpty, "\(name): \(f.example) -> \(errors.map(\.message))")
    }
  }

  @Test("url_host: the host of a URL, lowercased, without www., port or credentials")
  func urlHost() throws {
    #expect(try F.eval(#"url_host("https://www.Google.com/search?q=x")"#) == .string("google.com"))
    #expect(try F.eval(#"url_host("http://user@news.example.org:8080/a#b")"#) == .string("news.example.org"))
    #expect(try F.eval(#"url_host("android-app://com.google.android.gm")"#) == .string("com.google.android.gm"))
    #expect(try F.eval(#"url_host("not a url")"#) == .null)
    #expect(try F.eval(#"url_host("https:///path")"#) == .null)
    #expect(try F.eval(#"url_host(null)"#) == .null)
    // ASCII text is read byte by byte, other text by characters: the same rules either way.
    #expect(try F.eval(#"url_host("")"#) == .null)
    #expect(try F.eval(#"url_host(" HTTPS://WWW.Example.COM:443 ")"#) == .string("example.com"))
    #expect(try F.eval(#"url_host("https://www.Bücher.de:8443/ä?q")"#) == .string("bücher.de"))
    #expect(try F.eval(#"url_host("https://[::1]:8080/")"#) == .string("[::1]:8080"))
    #expect(try F.eval(#"url_host("https://ä@[::1]/")"#) == .string("[::1]"))
    #expect(try F.eval(#"url_host("a://")"#) == .null)
    #expect(try F.eval(#"url_host("://www.")"#) == .null)
  }

  @Test("string case and white space")
  func stringCase() throws {
    #expect(try F.eval("lower(\"AdA Ÿ\")") == .string("ada ÿ"))
    #expect(try F.eval("upper(\"gb\")") == .string("GB"))
    #expect(try F.eval("trim(\"  a b \\t\")") == .string("a b"))
    #expect(try F.eval("trim(name)", ["name": .string("\n x \n")]) == .string("x"))
  }

  @Test("contains, starts_with and ends_with")
  func substringTests() throws {
    #expect(try F.eval("contains(\"hello\", \"ell\")") == .bool(true))
    #expect(try F.eval("contains(\"hello\", \"xyz\")") == .bool(false))
    #expect(try F.eval("contains(\"hello\", \"\")") == .bool(true))
    #expect(try F.eval("starts_with(\"GIFT-1\", \"GIFT-\")") == .bool(true))
    #expect(try F.eval("starts_with(\"gift-1\", \"GIFT-\")") == .bool(false))
    #expect(try F.eval("ends_with(\"ada@example.com\", \"@example.com\")") == .bool(true))
    #expect(try F.eval("ends_with(\"ada@example.org\", \"@example.com\")") == .bool(false))
  }

  @Test("matches uses a literal ICU regular expression")
  func matchesRegex() throws {
    #expect(try F.eval("matches(\"12345\", \"^[0-9]{5}$\")") == .bool(true))
    #expect(try F.eval("matches(\"1234\", \"^[0-9]{5}$\")") == .bool(false))
    #expect(try F.eval("matches(name, \"^[0-9]{5}$\")", ["name": .string("90210")]) == .bool(true))
    #expect(try F.eval("matches(name, \"b+\")", ["name": .string("abbbc")]) == .bool(true))
    #expect(try F.eval("matches(name, \"(?i)^ADA\")", ["name": .string("ada lovelace")]) == .bool(true))
    #expect(try F.eval("matches(d, \"x\")", ["d": .int(1)]) == .null)
    #expect(try F.compile("matches(name, \"a\")").type == .bool)
  }

  @Test("sha256 is lowercase hex of the UTF-8 bytes")
  func sha256() throws {
    #expect(
      try F.eval("sha256(\"abc\")") == .string("ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"))
    #expect(try F.eval("sha256(\"\")") == .string("e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"))
    #expect(
      try F.eval("sha256(normalize_email(name))", ["name": .string(" ABC@Example.com ")])
        == F.eval("sha256(\"abc@example.com\")"))
  }

  @Test("normalize_email trims and lowercases, null when not an email")
  func normalizeEmail() throws {
    #expect(try F.eval("normalize_email(\" Ada@Example.COM \")") == .string("ada@example.com"))
    #expect(try F.eval("normalize_email(\"not an email\")") == .null)
    #expect(try F.eval("normalize_email(\"a@b@c.com\")") == .null)
    #expect(try F.eval("normalize_email(traits.email)", ["traits.email": .string("X@Y.Z")]) == .string("x@y.z"))
  }

  @Test("phone_e164 reads national numbers in a region, US by default")
  func phoneE164() throws {
    #expect(try F.eval("phone_e164(\"(415) 555-0123\")") == .string("+14155550123"))
    #expect(try F.eval("phone_e164(\"(415) 555-0123\", \"US\")") == .string("+14155550123"))
    #expect(try F.eval("phone_e164(\"020 7946 0958\", \"GB\")") == .string("+442079460958"))
    #expect(try F.eval("phone_e164(\"+44 20 7946 0958\")") == .string("+442079460958"))
    #expect(try F.eval("phone_e164(\"030 12345678\", \"DE\")") == .string("+493012345678"))
    #expect(try F.eval("phone_e164(\"123\")") == .null)
    #expect(
      try F.eval("phone_e164(name, d)", ["name": .string("020 7946 0958"), "d": .string("GB")])
        == .string("+442079460958"))
    // An unknown region at run time reads as no number.
    #expect(try F.eval("phone_e164(name, d)", ["name": .string("020 7946 0958"), "d": .string("XX")]) == .null)
  }

  @Test("double and int convert numbers, numeric strings and bools")
  func numericConversions() throws {
    #expect(try F.eval("double(\"3.5\")") == .double(3.5))
    #expect(try F.eval("double(\" 3.5 \")") == .double(3.5))
    #expect(try F.eval("double(2)") == .double(2))
    #expect(try F.eval("double(true)") == .double(1))
    #expect(try F.eval("double(\"x\")") == .null)
    #expect(try F.eval("double(1h)") == .null)
    #expect(try F.eval("int(\"42\")") == .int(42))
    #expect(try F.eval("int(3.9)") == .int(3))
    #expect(try F.eval("int(-3.9)") == .int(-3))
    #expect(try F.eval("int(\"4.7\")") == .int(4))
    #expect(try F.eval("int(false)") == .int(0))
    #expect(try F.eval("int(\"x\")") == .null)
    #expect(try F.eval("int(1e19)") == .null)
    #expect(try F.eval("int(d)", ["d": .double(.nan)]) == .null)
    #expect(try F.compile("int(d)").type == .int)
    #expect(try F.compile("double(d)").type == .double)
  }

  @Test("string renders any value")
  func stringConversion() throws {
    #expect(try F.eval("string(42)") == .string("42"))
    #expect(try F.eval("string(1.5)") == .string("1.5"))
    #expect(try F.eval("string(2.0)") == .string("2.0"))
    #expect(try F.eval("string(true)") == .string("true"))
    #expect(try F.eval("string(90d)") == .string("90d"))
    #expect(try F.eval("string(\"x\")") == .string("x"))
    #expect(try F.eval("string([1, \"a\"])") == .string("[1, \"a\"]"))
    #expect(try F.eval("string(now())") == .string("2024-05-01T00:00:00Z"))
  }

  @Test("timestamp reads ISO 8601 text and epoch seconds")
  func timestampConversion() throws {
    #expect(try F.eval("timestamp(\"2024-05-01T10:20:30Z\")") == F.ts("2024-05-01T10:20:30Z"))
    #expect(try F.eval("timestamp(\" 2024-05-01 \")") == F.ts("2024-05-01T00:00:00Z"))
    #expect(try F.eval("timestamp(0)") == F.ts("1970-01-01T00:00:00Z"))
    #expect(try F.eval("timestamp(1714521600)") == F.ts("2024-05-01T00:00:00Z"))
    #expect(try F.eval("timestamp(1.5)") == .timestamp(Timestamp(microseconds: 1_500_000)))
    #expect(try F.eval("timestamp(\"1714521600\")") == F.ts("2024-05-01T00:00:00Z"))
    #expect(try F.eval("timestamp(\"yesterday\")") == .null)
    #expect(try F.eval("timestamp(true)") == .null)
    #expect(try F.eval("timestamp(ts)", ["ts": F.ts("2024-01-01")]) == F.ts("2024-01-01"))
  }

  @Test("duration parses text, null when the text at run time is not a duration")
  func durationConversion() throws {
    #expect(try F.eval("duration(\"90d\")") == F.span("90d"))
    #expect(try F.eval("duration(\"90d\") == 90d") == .bool(true))
    #expect(try F.eval("duration(\"1h30m\")") == .duration(TimeSpan(microseconds: 5_400_000_000)))
    #expect(try F.eval("duration(name)", ["name": .string("soon")]) == .null)
    #expect(try F.eval("duration(name)", ["name": .string("250ms")]) == F.span("250ms"))
  }

  @Test("now reads the environment's clock")
  func nowReadsEnv() throws {
    #expect(try F.eval("now()") == .timestamp(F.now))
    let later = Timestamp(microseconds: F.now.microseconds + 42)
    #expect(try F.eval("now()", now: later) == .timestamp(later))
    let e = try F.compile("now()")
    #expect(e.constant == nil)
    #expect(e.evaluate(Env(slots: [], now: Timestamp(microseconds: 7))) == .timestamp(Timestamp(microseconds: 7)))
  }

  @Test("size counts characters, list items and map entries")
  func size() throws {
    #expect(try F.eval("size(\"héllo\")") == .int(5))
    #expect(try F.eval("size(\"\")") == .int(0))
    #expect(try F.eval("size([1, 2, 3])") == .int(3))
    #expect(try F.eval("size(tags)", ["tags": .list([.string("a")])]) == .int(1))
    #expect(try F.eval("size(m)", ["m": .map(["a": .int(1), "b": .int(2)])]) == .int(2))
    #expect(try F.eval("size(42)") == .null)
  }

  @Test("exists tests presence, coalesce picks the first present value")
  func existsAndCoalesce() throws {
    #expect(try F.eval("exists(null)") == .bool(false))
    #expect(try F.eval("exists(0)") == .bool(true))
    #expect(try F.eval("exists(name)", ["name": .string("")]) == .bool(true))
    #expect(try F.eval("coalesce(name, \"anon\")", [:]) == .string("anon"))
    #expect(try F.eval("coalesce(name, \"anon\")", ["name": .string("Ada")]) == .string("Ada"))
    #expect(try F.eval("coalesce(d, n, 0)", ["n": .int(5)]) == .int(5))
    #expect(try F.compile("coalesce(name, \"anon\")").type == .string)
    #expect(try F.compile("coalesce(n, 1.5)").type == .double)
    #expect(try F.compile("coalesce(n, \"x\")").type == .dyn)
  }

  @Test(
    "soundex codes names",
    arguments: [
      ("Robert", "R163"), ("Rupert", "R163"), ("Tymczak", "T522"), ("Ashcraft", "A261"), ("Pfister", "P236"),
      ("Honeyman", "H555"), ("Lee", "L000"), ("o'Brien", "O165"), ("", ""), ("123", ""),
    ])
  func soundex(name: String, code: String) throws {
    #expect(try F.eval("soundex(name)", ["name": .string(name)]) == .string(code))
    #expect(Phonetic.soundex(name) == code)
    #expect(Phonetic.characterSoundex(name) == code)
  }

  @Test("soundex of ASCII text byte by byte gives the code of its characters")
  func soundexBytes() {
    var rng = SplitMix64(seed: 12)
    let alphabet = Array("abcdefghijklmnopqrstuvwxyzHWAEIOUYBCDLMR '-.19")
    for _ in 0..<3000 {
      let s = String((0..<rng.int(0..<10)).map { _ in alphabet[rng.int(0..<alphabet.count)] })
      #expect(Phonetic.asciiSoundex(s) == Phonetic.characterSoundex(s), "\(s)")
    }
    #expect(Phonetic.soundex("Straße") == Phonetic.characterSoundex("Straße"))
  }
}
