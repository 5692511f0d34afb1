import Testing

@testable import TesseraModel

@Suite("Normalize")
struct NormalizeTests {
  @Test("trim removes leading and trailing white space only")
  func trim() {
    #expect(Normalize.trim("  a b \t\n") == "a b")
    #expect(Normalize.trim("ab") == "ab")
    #expect(Normalize.trim("   ") == "")
    #expect(Normalize.trim("") == "")
  }

  @Test(
    "email is trimmed and lowercased",
    arguments: [
      (" Ada@Example.COM ", "ada@example.com"), ("ada.lovelace+x@example.co.uk", "ada.lovelace+x@example.co.uk"),
      ("John.Smith+news@Gmail.com", "john.smith+news@gmail.com"), ("\tBOB@EXAMPLE.ORG\n", "bob@example.org"),
    ])
  func emailBasics(raw: String, expected: String) {
    #expect(Normalize.email(raw) == expected)
  }

  @Test(
    "strings that are not emails normalize to nil",
    arguments: [
      "", "ada", "@example.com", "ada@", "ada@example", "ada@.example.com", "ada@example.com.", "a da@example.com",
      "ada@exa mple.com", "a@b@example.com", "@", "  ",
    ])
  func emailInvalid(raw: String) {
    #expect(Normalize.email(raw) == nil)
  }

  @Test("gmail dot and plus rules apply only when opted in and only to their domains")
  func gmailRules() {
    #expect(Normalize.email("John.Smith+news@Gmail.com", rules: .none) == "john.smith+news@gmail.com")
    #expect(Normalize.email("John.Smith+news@Gmail.com", rules: .gmail) == "johnsmith@gmail.com")
    #expect(Normalize.email("j.o.h.n+a+b@googlemail.com", rules: .gmail) == "john@googlemail.com")
    #expect(Normalize.email("john.smith+news@example.com", rules: .gmail) == "john.smith+news@example.com")
    // A local part that is only a suffix leaves nothing.
    #expect(Normalize.email("+news@gmail.com", rules: .gmail) == nil)
    #expect(Normalize.email("...@gmail.com", rules: .gmail) == nil)
  }

  @Test("dot and plus rules are independent, and `*` drops plus suffixes everywhere")
  func customRules() {
    let dotsOnly = Normalize.EmailRules(ignoreDotsDomains: ["gmail.com"])
    #expect(Normalize.email("john.smith+news@gmail.com", rules: dotsOnly) == "johnsmith+news@gmail.com")
    let plusEverywhere = Normalize.EmailRules(plusSuffixDomains: ["*"])
    #expect(Normalize.email("john.smith+news@example.com", rules: plusEverywhere) == "john.smith@example.com")
    #expect(Normalize.email("john.smith@example.com", rules: plusEverywhere) == "john.smith@example.com")
  }

  @Test(
    "phone numbers in E.164",
    arguments: [
      ("(415) 555-0123", "US", "+14155550123"), ("415.555.0123", "US", "+14155550123"),
      ("1 415 555 0123", "US", "+14155550123"), ("+1 415-555-0123", "US", "+14155550123"),
      ("+44 20 7946 0958", "US", "+442079460958"), ("0044 20 7946 0958", "US", "+442079460958"),
      ("020 7946 0958", "GB", "+442079460958"), ("020 7946 0958", "gb", "+442079460958"),
      ("030 12345678", "DE", "+493012345678"),
      ("030 123456", "DE", "+4930123456"), ("0151 12345678", "DE", "+4915112345678"),
      ("+49 30 12345678", "US", "+493012345678"), ("4915112345678", "DE", "+4915112345678"),
      ("01 23 45 67 89", "FR", "+33123456789"), ("612 345 678", "ES", "+34612345678"),
      ("(415) 555-0123 x12", "US", "+14155550123"), ("415-555-0123 X 7", "US", "+14155550123"),
      ("415-555-0123#99", "US", "+14155550123"), ("  (415) 555-0123  ", "US", "+14155550123"),
    ])
  func phoneValid(raw: String, region: String, expected: String) {
    #expect(Normalize.phoneE164(raw, defaultRegion: region) == expected)
  }

  @Test(
    "strings that are not phone numbers normalize to nil",
    arguments: [
      ("12345", "US"), ("+1 23", "US"), ("415-555-CALL", "US"), ("", "US"), ("+", "US"), ("++1 415 555 0123", "US"),
      ("+0 415 555 0123", "US"), ("415 555 0123 4567", "US"), ("+1234567890123456", "US"), ("4155550123", "ZZ"),
      ("415-555-0123 ext. 12", "US"), ("1+415 555 0123", "US"), ("１４１５５５５０１２３", "US"), ("12", "DE"),
    ])
  func phoneInvalid(raw: String, region: String) {
    #expect(Normalize.phoneE164(raw, defaultRegion: region) == nil)
  }

  @Test("the default region is US")
  func phoneDefaultRegion() {
    #expect(Normalize.phoneE164("(415) 555-0123") == "+14155550123")
  }

  @Test("known regions are case-insensitive ISO codes")
  func knownRegions() {
    #expect(Normalize.isKnownRegion("GB"))
    #expect(Normalize.isKnownRegion("de"))
    #expect(!Normalize.isKnownRegion("XX"))
    #expect(!Normalize.isKnownRegion(""))
  }

  /// The byte-by-byte path for ASCII text gives what the path over `Character`s gives, on random text built
  /// from the characters emails and their mistakes are made of (seeded, so a failure repeats).
  @Test("ASCII emails: the fast path agrees with the general one")
  func asciiEmailAgrees() {
    let alphabet = Array("aZ.+@ \t-_xG9\r\n.@com")
    let domains = ["gmail.com", "example.org", "Gmail.COM", "a.b", ".x", "y."]
    var state: UInt64 = 42
    func next(_ n: Int) -> Int {
      state = state &* 6_364_136_223_846_793_005 &+ 1_442_695_040_888_963_407
      return Int((state >> 33) % UInt64(n))
    }
    for n in 0..<50_000 {
      var text = String((0..<next(12)).map { _ in alphabet[next(alphabet.count)] })
      if n % 2 == 0 { text += "@" + domains[next(domains.count)] + (n % 4 == 0 ? " " : "") }
      for rules in [Normalize.EmailRules.none, .gmail, Normalize.EmailRules(plusSuffixDomains: ["*"])] {
        let fast = Normalize.asciiEmail(text, rules: rules)
        let general = Normalize.characterEmail(text, rules: rules)
        #expect(fast == .some(general), "\(text.debugDescription)")
        if fast != .some(general) { return }
      }
    }
    #expect(Normalize.asciiEmail("josé@example.com", rules: .none) == .none, "not ASCII: the general path")
  }
}
