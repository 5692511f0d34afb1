import Foundation
import TesseraCompiler
import TesseraMatching
import TesseraModel
import TesseraStore
import Testing

@testable import TesseraRuntime

/// Device signals in streaming: anonymous browsers joined to people by address, user agent and time, never
/// merging households, offices or two signed-in people.
@Suite("Device signals")
struct DeviceSignalTests {
  static let mac =
    "Mozilla/5.0 (Macintosh; Intel Mac OS X 10_15_7) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/120.0.0.0 Safari/537.36"
  static let macSafari =
    "Mozilla/5.0 (Macintosh; Intel Mac OS X 10_15_7) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/17.2 Safari/605.1.15"
  static let windows = "Mozilla/5.0 (Windows NT 10.0; Win64; x64; rv:121.0) Gecko/20100101 Firefox/121.0"

  /// A device rule; `extra` adds keys to it (`thresholds`, `consent`, `signals`).
  static func yaml(_ extra: String = "thresholds: { review: 0.9 }") -> String {
    """
    pipeline: t
    sources:
      web:
        kind: ndjson
        path: none.ndjson
        emit: page
        map: { anonymous_id: a, user_id: u, context.ip: ip, context.userAgent: ua, context.timezone: tz }
    identifiers:
      user_id: { max_per_profile: 1, priority: 1 }
      anonymous_id: { max_per_profile: 50, expires_after: 730d, priority: 9 }
    deterministic:
      ids: { link_on: [user_id, anonymous_id] }
    probabilistic:
      device:
        blocking: [[signals.ip]]
        compare:
          signals.ip:
            - { level: within 30 minutes, m: 0.7, u: 0.0005 }
            - { level: within 1 day, m: 0.2, u: 0.005 }
            - { level: else, m: 0.1, u: 0.9945 }
          signals.os:
            - { level: exact, m: 0.95, u: 0.1 }
            - { level: else, m: 0.05, u: 0.9 }
          signals.timezone:
            - { level: exact, m: 0.98, u: 0.3 }
            - { level: else, m: 0.02, u: 0.7 }
        prior: 0.001
        \(extra.split(separator: "\n").joined(separator: "\n    "))
    """
  }

  static func config(_ extra: String = "thresholds: { review: 0.9 }") throws -> PipelineConfig {
    let files = ["p.yaml": yaml(extra)]
    let result = Compiler(environment: [:], readFile: { files[$0] }).compile(pipeline: "p.yaml")
    return try #require(result.plan, "\(result.rendered())").config
  }

  static let start = Timestamp(microseconds: 1_780_000_000_000_000)

  /// A page view at `minutes` after the start.
  static func view(
    _ id: String, anon: String, user: String? = nil, minutes: Double, ip: String = "198.51.100.7", ua: String = mac,
    consent: Bool? = nil
  ) -> Event {
    var ids = [Identifier("anonymous_id", anon)]
    if let user { ids.append(Identifier("user_id", user)) }
    return Event(
      id: id, source: "web", type: "page", name: nil,
      timestamp: Timestamp(microseconds: start.microseconds + Int64(minutes * 60_000_000)),
      receivedAt: Timestamp(microseconds: 0), identifiers: ids,
      traits: consent.map { ["consent.personalization": .bool($0)] } ?? [:],
      context: ["ip": .string(ip), "userAgent": .string(ua), "timezone": .string("Europe/Berlin")])
  }

  static func batch(_ events: [Event]) -> MappedBatch {
    MappedBatch(seq: 0, events: events, rejected: [], invalidIdentifiers: 0)
  }

  /// The prior and the weights of the rule's levels.
  static let prior = log2(0.001 / 0.999)
  static let ipRecent = log2(0.7 / 0.0005)
  static let osSame = log2(0.95 / 0.1)
  static let tzSame = log2(0.98 / 0.3)

  @Test("one laptop, two browsers 20 minutes apart: a candidate link for review, with its evidence")
  func twoBrowsers() throws {
    var resolver = Resolver(config: try Self.config())
    let (commit, stats) = resolver.apply(
      Self.batch([
        Self.view("e1", anon: "chrome", minutes: 0),
        Self.view("e2", anon: "safari", minutes: 20, ua: Self.macSafari),
      ]), stored: [])
    #expect(stats.profilesCreated == 2 && stats.reviewLinks == 1 && stats.probabilisticJoins == 0)
    let link = try #require(commit.matchLinks.first)
    #expect(link.status == .review && link.rule == "device" && link.eventID == "e2")
    #expect(link.profile == ProfileID(2) && link.candidate == ProfileID(1))
    #expect(abs(link.weight - (Self.prior + Self.ipRecent + Self.osSame + Self.tzSame)) < 1e-9)
    #expect(link.reason.contains("signals.ip within 30 minutes +10.45"), "\(link.reason)")
    #expect(link.reason.contains("signals.os exact +3.25"), "\(link.reason)")
  }

  @Test("with a merge threshold, the second browser joins the person")
  func joins() throws {
    var resolver = Resolver(config: try Self.config("thresholds: { merge: 0.95, review: 0.9 }"))
    let (commit, stats) = resolver.apply(
      Self.batch([
        Self.view("e1", anon: "chrome", user: "ada", minutes: 0),
        Self.view("e2", anon: "safari", minutes: 20, ua: Self.macSafari),
        // Later views of the second browser reach the profile through its anonymous id.
        Self.view("e3", anon: "safari", minutes: 300, ua: Self.macSafari),
      ]), stored: [])
    #expect(stats.profilesCreated == 1 && stats.probabilisticJoins == 1)
    #expect(commit.events.map(\.profile) == [ProfileID(1), ProfileID(1), ProfileID(1)])
  }

  @Test("the same address 3 days later is not linked")
  func staleAddress() throws {
    var resolver = Resolver(config: try Self.config())
    let (commit, stats) = resolver.apply(
      Self.batch([
        Self.view("e1", anon: "chrome", minutes: 0),
        Self.view("e2", anon: "other", minutes: 3 * 24 * 60),
      ]), stored: [])
    #expect(stats.profilesCreated == 2 && stats.reviewLinks == 0 && commit.matchLinks.isEmpty)
  }

  @Test("a profile seen on the address before the longest window is scored only when it could still reach review")
  func staleCandidatesArePrunedOnlyWhenTheyCannotReachReview() throws {
    // Without an agreeing sighting level the best a pair can weigh is the prior, os and timezone (the address's
    // `else` level is negative and a missing value adds nothing).
    let config = try Self.config()
    let model = MatchModel(rule: try #require(config.probabilistic.first))
    let bound = try #require(model.weightBoundWithoutSightings)
    #expect(abs(bound - (Self.prior + Self.osSame + Self.tzSame)) < 1e-9)
    #expect(bound < model.reviewWeight)
    #expect(model.comparisons.map(\.sightingWindow) == [86_400, nil, nil])
    // An address shared by 8 profiles: its best level loses log2(8) = 3.
    let shared8 = try #require(model.weightBound(sharing: [0: 8]))
    #expect(abs(shared8 - (Self.prior + Self.ipRecent - 3 + Self.osSame + Self.tzSame)) < 1e-9)
    #expect(abs((model.weightBound(sharing: [:]) ?? 0) - (shared8 + 3)) < 1e-9)
    // A review threshold so low that the stale pair reaches it: the profile must still be scored, and linked.
    var low = Resolver(config: try Self.config("thresholds: { review: 0.0001 }"))
    let (commit, stats) = low.apply(
      Self.batch([
        Self.view("e1", anon: "chrome", minutes: 0),
        Self.view("e2", anon: "other", minutes: 3 * 24 * 60),
      ]), stored: [])
    #expect(stats.reviewLinks == 1)
    let ipElse = log2(0.1 / 0.9945)
    #expect(abs((commit.matchLinks.first?.weight ?? 0) - (Self.prior + ipElse + Self.osSame + Self.tzSame)) < 1e-9)
    // Review at 0.5 (weight 0): a day less a minute apart the `within 1 day` level agrees (+5.32) and the pair
    // is proposed; a day and a minute apart the profile is not scored, and nothing is proposed.
    for (minutes, links) in [(24 * 60 - 1, 1), (24 * 60 + 1, 0)] {
      var half = Resolver(config: try Self.config("thresholds: { review: 0.5 }"))
      let (_, stats) = half.apply(
        Self.batch([
          Self.view("e1", anon: "chrome", minutes: 0),
          Self.view("e2", anon: "other", minutes: Double(minutes)),
        ]), stored: [])
      #expect(stats.reviewLinks == links, "\(minutes) minutes apart")
    }
  }

  @Test("two signed-in people of one household are never linked, whatever they share")
  func household() throws {
    var resolver = Resolver(config: try Self.config("thresholds: { merge: 0.95, review: 0.9 }"))
    let (commit, stats) = resolver.apply(
      Self.batch([
        Self.view("e1", anon: "laptop-a", user: "ada", minutes: 0),
        // The same laptop, another browser, another signed-in user, ten minutes later.
        Self.view("e2", anon: "laptop-b", user: "bob", minutes: 10, ua: Self.macSafari),
        // Bob's later anonymous views reach his own profile.
        Self.view("e3", anon: "laptop-b", minutes: 12, ua: Self.macSafari),
      ]), stored: [])
    #expect(stats.profilesCreated == 2 && stats.merges == 0 && commit.matchLinks.isEmpty)
    #expect(commit.events.map(\.profile) == [ProfileID(1), ProfileID(2), ProfileID(2)])
  }

  @Test("an office address seen on 300 profiles adds nothing; a household's on 4 adds less")
  func office() throws {
    var events = (0..<300).map { k in
      Self.view("o\(k)", anon: "desk-\(k)", user: "worker-\(k)", minutes: Double(k) / 10, ip: "203.0.113.10")
    }
    events.append(Self.view("visitor", anon: "new-browser", minutes: 31, ip: "203.0.113.10"))
    var resolver = Resolver(config: try Self.config())
    let (commit, _) = resolver.apply(Self.batch(events), stored: [])
    #expect(commit.matchLinks.isEmpty, "\(commit.matchLinks.map(\.reason))")
    // Without frequency weighting the same visitor would be proposed (the address agrees within 30 minutes).
    var plain = Resolver(config: try Self.config("thresholds: { review: 0.9 }\nsignals: { frequency: [] }"))
    let (proposed, _) = plain.apply(Self.batch(events), stored: [])
    #expect(proposed.matchLinks.count == 1)
    // The weight of an agreement: less by log2(n) when n profiles share the value, nothing past max_sharing.
    let model = MatchModel(rule: try #require(try Self.config().probabilistic.first))
    var ip = model.comparisons[0]
    ip.maxSharing = 50
    #expect(abs(ip.weight(ofLevel: 0, sharedBy: 1) - Self.ipRecent) < 1e-9)
    #expect(abs(ip.weight(ofLevel: 0, sharedBy: 4) - (Self.ipRecent - 2)) < 1e-9)
    #expect(ip.weight(ofLevel: 0, sharedBy: 300) == 0)
    #expect(ip.weight(ofLevel: 2, sharedBy: 300) == ip.weight(ofLevel: 2), "disagreement keeps its weight")
  }

  @Test("after a restart the office address still adds nothing: the shared counts are rebuilt from the store")
  func officeAfterRestart() async throws {
    let events = (0..<300).map { k in
      Self.view("o\(k)", anon: "desk-\(k)", user: "worker-\(k)", minutes: Double(k) / 10, ip: "203.0.113.10")
    }
    let visitor = Self.view("visitor", anon: "new-browser", minutes: 31, ip: "203.0.113.10")
    func afterRestart(_ config: PipelineConfig) async throws -> [MatchLinkRecord] {
      let store = MemoryStore()
      var first = try await Resolver.restored(config: config, from: store, now: nil)
      try await store.commit(first.apply(Self.batch(events), stored: []).0)
      #expect(try await store.loadSightings().count == 300)
      var next = try await Resolver.restored(config: config, from: store, now: nil)
      return next.apply(Self.batch([visitor]), stored: []).0.matchLinks
    }
    #expect(try await afterRestart(try Self.config()).isEmpty)
    // Without frequency weighting the restarted writer proposes the visitor: the stored sightings reach it.
    let plain = try await afterRestart(try Self.config("thresholds: { review: 0.9 }\nsignals: { frequency: [] }"))
    #expect(plain.count == 1)
  }

  @Test("a household of four on one address: the second browser of one of them is still proposed")
  func householdOfFour() throws {
    var events = (0..<4).map { k in
      Self.view(
        "h\(k)", anon: "member-\(k)", user: "member-\(k)", minutes: Double(k), ua: k == 0 ? Self.mac : Self.windows)
    }
    events.append(Self.view("second", anon: "member-0-safari", minutes: 10, ua: Self.macSafari))
    var resolver = Resolver(config: try Self.config())
    let (commit, _) = resolver.apply(Self.batch(events), stored: [])
    let link = try #require(commit.matchLinks.first)
    #expect(commit.matchLinks.count == 1 && link.candidate == ProfileID(1))
    // The address is shared by four profiles: its agreement weighs log2(4) = 2 less.
    #expect(abs(link.weight - (Self.prior + Self.ipRecent - 2 + Self.osSame + Self.tzSame)) < 1e-9)
    #expect(link.reason.contains("(shared by 4)"), "\(link.reason)")
  }

  @Test("a rule requiring consent uses no signal of anyone who did not give it")
  func consent() throws {
    let config = try Self.config("thresholds: { review: 0.9 }\nconsent: personalization")
    func links(_ first: Bool?, _ second: Bool?) -> Int {
      var resolver = Resolver(config: config)
      let (commit, _) = resolver.apply(
        Self.batch([
          Self.view("e1", anon: "chrome", minutes: 0, consent: first),
          Self.view("e2", anon: "safari", minutes: 20, ua: Self.macSafari, consent: second),
        ]), stored: [])
      return commit.matchLinks.count
    }
    #expect(links(true, true) == 1)
    #expect(links(nil, true) == 0, "the profile never consented")
    #expect(links(false, true) == 0, "the profile refused")
    #expect(links(true, nil) == 0, "the event carries no consent")
    #expect(links(true, false) == 0)
  }

  @Test("sightings are bounded per profile and expire")
  func sightings() throws {
    var matcher = StreamingMatcher(
      config: try Self.config("thresholds: { review: 0.9 }\nsignals: { per_profile: 2, keep: 1h }"))
    let p = ProfileID(1)
    func at(_ minutes: Int64) -> Timestamp { Timestamp(microseconds: Self.start.microseconds + minutes * 60_000_000) }
    func sight(_ ip: String, _ minutes: Int64) -> Bool { matcher.sight(p, ["signals.ip": ip], at: at(minutes)) }
    #expect(sight("198.51.100.1", 0))
    #expect(!sight("198.51.100.1", 1), "seen again: nothing to index")
    #expect(sight("198.51.100.2", 2))
    #expect(sight("198.51.100.3", 3))
    #expect(matcher.sightedValues(p, "signals.ip") == ["198.51.100.3", "198.51.100.2"])
    // An hour and more later, the old ones are gone.
    #expect(sight("198.51.100.4", 64))
    #expect(matcher.sightedValues(p, "signals.ip") == ["198.51.100.4"])
  }

  @Test("only the signals the rules read are derived and kept; a context is derived once")
  func onlySignalsRead() throws {
    let config = try Self.config()
    #expect(StreamingMatcher.signalsRead(config) == ["signals.ip", "signals.os", "signals.timezone"])
    var matcher = StreamingMatcher(config: config)
    let context: [String: Value] = [
      "ip": .string("198.51.100.7"), "userAgent": .string(Self.windows), "timezone": .string("Europe/Berlin"),
      "locale": .string("de_DE"), "screen": .map(["width": .int(1920), "height": .int(1080)]),
    ]
    let signals = matcher.signals(of: context)
    #expect(signals == ["signals.ip": "198.51.100.7", "signals.os": "Windows 10", "signals.timezone": "Europe/Berlin"])
    // Everything derive says, of which the rules read three.
    #expect(DeviceSignals.derive(context).count == 12)
    var deriver = SignalDeriver(keeping: StreamingMatcher.signalsRead(config))
    let first = deriver.derived(of: context)
    #expect(first.signals == signals && first.combination == StreamingMatcher.combination(signals))
    // The same fields in another context: the known derivation; another address: another.
    var again = context
    again["page"] = .string("/checkout")
    #expect(deriver.derived(of: again).combination == first.combination)
    again["ip"] = .string("198.51.100.8")
    #expect(deriver.derived(of: again).signals["signals.ip"] == "198.51.100.8")
    #expect(deriver.contexts.count == 2)
  }
}
