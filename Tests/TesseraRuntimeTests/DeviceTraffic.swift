import Foundation
import TesseraCompiler
import TesseraConnectors
import TesseraModel
import TesseraRuntime
import TesseraStore
import Testing

/// Generated web and app traffic for device signals, labelled with the true person of every anonymous id:
/// households of 2–5 people behind one home address (a fifth with a family computer every member browses on),
/// offices of 50–500 people behind one address, mobile carriers with thousands of people per address and a
/// new address per session, people with 2–3 browsers on one laptop (a third of their sessions followed by
/// another browser minutes later), and travel (a hotel's address for a few days).
struct DeviceTraffic {
  /// Per event (in time order): its anonymous id, and the person it is signed in as (-1: anonymous).
  var eventAnon: [Int32] = []
  var eventUser: [Int32] = []
  /// Per person who signs in: the time of their first signed-in event.
  var signedInSince: [Int32: Int64] = [:]
  /// Per anonymous id: its person, and what it is (0 a laptop's browser, 1 a family computer's, 2 a phone's).
  var anonPerson: [Int32] = []
  var anonKind: [UInt8] = []
  /// Per person: their household.
  var household: [Int] = []
  /// Per event: where its address is (0 home, 1 office, 2 carrier, 3 hotel).
  var eventPlace: [UInt8] = []
  /// Anonymous ids whose first event came after another of the same person's, without a user id known by
  /// then: the ones a device link can find.
  var linkable = 0
  var people = 0
  var bytes = 0

  static let regions: [(tz: String, locale: String)] = [
    ("Europe/Berlin", "de-DE"), ("America/New_York", "en-US"), ("America/Los_Angeles", "en-US"),
    ("Europe/London", "en-GB"), ("Asia/Tokyo", "ja-JP"),
  ]
  static let macScreens = ["1440x900", "1512x982", "1728x1117", "2560x1440"]
  static let pcScreens = ["1920x1080", "1366x768", "1536x864", "2560x1440"]
  static let phoneScreens = ["390x844", "393x852", "430x932", "412x915", "360x800"]

  struct Browser {
    var anon: Int32
    var ua: String
    var screen: String
  }

  struct Session {
    var at: Int64
    var person: Int32
    var browser: Browser
    var ip: String
    var user: Bool
    var events: Int
  }

  static func browser(_ rng: inout SplitMix64, mac: Bool, kind: Int) -> String {
    let chrome = 118 + rng.int(0..<4)
    if mac {
      let system = "Macintosh; Intel Mac OS X 10_15_7"
      switch kind % 3 {
      case 0:
        return
          "Mozilla/5.0 (\(system)) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/\(chrome).0.0.0 Safari/537.36"
      case 1:
        return
          "Mozilla/5.0 (\(system)) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/17.\(rng.int(0..<3)) Safari/605.1.15"
      default: return "Mozilla/5.0 (\(system); rv:121.0) Gecko/20100101 Firefox/\(119 + rng.int(0..<3)).0"
      }
    }
    let system = "Windows NT 10.0; Win64; x64"
    switch kind % 3 {
    case 0:
      return "Mozilla/5.0 (\(system)) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/\(chrome).0.0.0 Safari/537.36"
    case 1:
      return
        "Mozilla/5.0 (\(system)) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/\(chrome).0.0.0 Safari/537.36 Edg/\(chrome).0.0.0"
    default: return "Mozilla/5.0 (\(system); rv:121.0) Gecko/20100101 Firefox/\(119 + rng.int(0..<3)).0"
    }
  }

  static func phone(_ rng: inout SplitMix64) -> String {
    if rng.chance(0.55) {
      let v = "\(16 + rng.int(0..<2))_\(rng.int(0..<6))"
      return
        "Mozilla/5.0 (iPhone; CPU iPhone OS \(v) like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/17.0 Mobile/15E148 Safari/604.1"
    }
    let model = ["Pixel 7", "Pixel 8", "SM-S911B", "SM-A546B", "K"][rng.int(0..<5)]
    return
      "Mozilla/5.0 (Linux; Android \(12 + rng.int(0..<3)); \(model)) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/120.0.0.0 Mobile Safari/537.36"
  }

  static func ip(_ a: Int, _ n: Int) -> String { "\(a).\((n >> 16) & 255).\((n >> 8) & 255).\(n & 255)" }

  /// Writes about `count` page views over 30 days to `path` as NDJSON.
  static func write(count: Int, to path: String, seed: UInt64 = 7) throws -> DeviceTraffic {
    var rng = SplitMix64(seed: seed)
    var out = DeviceTraffic()
    let people = max(10, count / 20)
    out.people = people
    let start = Timestamp(iso8601: "2026-05-01T00:00:00Z")?.microseconds ?? 0
    let span: Int64 = 30 * 86_400 * 1_000_000
    // Households: consecutive people, 2–5 each.
    var household = [Int](repeating: 0, count: people)
    var families: [Int: [Browser]] = [:]
    var h = 0
    var p = 0
    while p < people {
      let size = 2 + rng.int(0..<4)
      for q in p..<min(people, p + size) { household[q] = h }
      h += 1
      p += size
    }
    // Offices: 40% of people, in offices of 50–500.
    var office = [Int](repeating: -1, count: people)
    var o = 0
    var workers = (0..<people).filter { _ in rng.chance(0.4) }
    workers.shuffle(using: &rng)
    var w = 0
    while w < workers.count {
      let size = 50 + rng.int(0..<451)
      for q in workers[w..<min(workers.count, w + size)] { office[q] = o }
      o += 1
      w += size
    }
    out.household = household
    let carrierPool = max(1, people / 2000)
    func newAnon(_ person: Int, kind: UInt8 = 0) -> Int32 {
      out.anonPerson.append(Int32(person))
      out.anonKind.append(kind)
      return Int32(out.anonPerson.count - 1)
    }
    var sessions: [Session] = []
    sessions.reserveCapacity(count / 3)
    for person in 0..<people {
      let region = regions[household[person] % regions.count]
      _ = region
      let mac = rng.chance(0.45)
      let screen = (mac ? macScreens : pcScreens)[rng.int(0..<4)]
      let browsers = rng.chance(0.7) ? 1 : (rng.chance(0.73) ? 2 : 3)
      var laptop = (0..<browsers).map { k in
        Browser(anon: newAnon(person), ua: browser(&rng, mac: mac, kind: k), screen: screen)
      }
      // The family computer: one browser per member who uses it.
      if household[person] % 5 == 0, rng.chance(0.6) {
        if families[household[person]] == nil {
          let pc = browser(&rng, mac: false, kind: 0)
          families[household[person]] = [Browser(anon: 0, ua: pc, screen: pcScreens[0])]
        }
        if var family = families[household[person]]?.first {
          family.anon = newAnon(person, kind: 1)
          laptop.append(family)
        }
      }
      let phone: Browser? =
        rng.chance(0.8)
        ? Browser(anon: newAnon(person, kind: 2), ua: Self.phone(&rng), screen: phoneScreens[rng.int(0..<5)]) : nil
      let account = rng.chance(0.5)
      let traveller = rng.chance(0.05)
      let tripStart = start + Int64(rng.int(0..<27)) * 86_400_000_000
      let hotel = rng.int(0..<2000)
      let home = ip(100, household[person])
      let sessionCount = max(1, 20 / 4 + rng.int(-2..<3))
      for _ in 0..<sessionCount {
        let at = start + Int64(rng.int(0..<Int(span)))
        let hour = (at / 3_600_000_000) % 24
        let travelling = traveller && at >= tripStart && at < tripStart + 3 * 86_400_000_000
        let events = 1 + rng.int(0..<6)
        let user = account && rng.chance(0.25)
        if let phone, rng.chance(0.4) {
          let addr =
            travelling
            ? ip(192, hotel) : (rng.chance(0.65) ? ip(172, rng.int(0..<3) * 65_536 + rng.int(0..<carrierPool)) : home)
          sessions.append(
            Session(at: at, person: Int32(person), browser: phone, ip: addr, user: user, events: events))
          continue
        }
        let atWork = office[person] >= 0 && hour >= 8 && hour < 17 && rng.chance(0.7)
        let addr = travelling ? ip(192, hotel) : (atWork ? ip(198, office[person]) : home)
        let b = rng.int(0..<laptop.count)
        sessions.append(
          Session(at: at, person: Int32(person), browser: laptop[b], ip: addr, user: user, events: events))
        // Another browser on the same laptop, minutes later (read the newsletter in one, buy in the other).
        if laptop.count > 1, rng.chance(0.35) {
          let other = (b + 1 + rng.int(0..<(laptop.count - 1))) % laptop.count
          sessions.append(
            Session(
              at: at + Int64(5 + rng.int(0..<35)) * 60_000_000, person: Int32(person), browser: laptop[other], ip: addr,
              user: account && rng.chance(0.25), events: 1 + rng.int(0..<6)))
        }
      }
    }
    // Page views in time order.
    var views: [(at: Int64, session: Int32)] = []
    for (k, s) in sessions.enumerated() {
      var t = s.at
      for _ in 0..<s.events {
        views.append((t, Int32(k)))
        t += Int64(20 + rng.int(0..<220)) * 1_000_000
      }
    }
    views.sort { ($0.at, $0.session) < ($1.at, $1.session) }
    FileManager.default.createFile(atPath: path, contents: nil)
    guard let file = FileHandle(forWritingAtPath: path) else { throw CocoaError(.fileWriteNoPermission) }
    defer { try? file.close() }
    var buffer = ""
    buffer.reserveCapacity(1 << 20)
    var seenAnon = Set<Int32>()
    var seenUser = Set<Int32>()
    var personSeen = Set<Int32>()
    out.eventAnon.reserveCapacity(views.count)
    for (n, v) in views.enumerated() {
      let s = sessions[Int(v.session)]
      let region = regions[household[Int(s.person)] % regions.count]
      if seenAnon.insert(s.browser.anon).inserted {
        if personSeen.contains(s.person) && !(s.user && seenUser.contains(s.person)) { out.linkable += 1 }
        personSeen.insert(s.person)
      }
      if s.user { seenUser.insert(s.person) }
      out.eventAnon.append(s.browser.anon)
      out.eventPlace.append(
        s.ip.hasPrefix("100.") ? 0 : s.ip.hasPrefix("198.") ? 1 : s.ip.hasPrefix("172.") ? 2 : 3)
      out.eventUser.append(s.user ? s.person : -1)
      if s.user, out.signedInSince[s.person] == nil { out.signedInSince[s.person] = v.at }
      let ts = Timestamp(microseconds: v.at).iso8601
      let size = s.browser.screen.split(separator: "x")
      buffer +=
        "{\"messageId\":\"d-\(n)\",\"type\":\"page\",\"anonymousId\":\"a-\(s.browser.anon)\",\"userId\":"
        + (s.user ? "\"u-\(s.person)\"" : "null") + ",\"timestamp\":\"\(ts)\",\"name\":\"Home\","
        + "\"context\":{\"ip\":\"\(s.ip)\",\"userAgent\":\"\(s.browser.ua)\",\"locale\":\"\(region.locale)\","
        + "\"timezone\":\"\(region.tz)\",\"screen\":{\"width\":\(size[0]),\"height\":\(size[1])}}}\n"
      if buffer.utf8.count > (1 << 20) - 2048 {
        out.bytes += buffer.utf8.count
        file.write(Data(buffer.utf8))
        buffer.removeAll(keepingCapacity: true)
      }
    }
    out.bytes += buffer.utf8.count
    file.write(Data(buffer.utf8))
    return out
  }
}

/// Device links on generated traffic against the truth: precision and recall per threshold, and no link
/// between two people signed in as different users. `TESSERA_DEVICE_EVENTS=N` sets the size (1,000,000 for the
/// figures in docs/BENCHMARKS.md); `TESSERA_DEVICE_DIR=DIR` keeps the events and the pipelines with and without
/// the rule there, for `tessera-bench pipeline DIR/with.yaml` (release throughput).
@Suite("Device links on generated households, offices and carriers")
struct DeviceAccuracyTests {
  /// The pipeline, with the device rule at `review` (no merge threshold) or without it.
  static func pipeline(review: Double?) -> String {
    var yaml = """
      pipeline: devices
      sources:
        web:
          kind: ndjson
          path: events.ndjson
          emit: page
          id: messageId
          timestamp: timestamp
          map:
            user_id: userId
            anonymous_id: anonymousId
            context: context
      identifiers:
        user_id: { normalize: trim, max_per_profile: 1, priority: 1 }
        anonymous_id: { normalize: trim, max_per_profile: 50, expires_after: 730d, priority: 9 }
      deterministic:
        ids: { link_on: [user_id, anonymous_id] }

      """
    guard let review else { return yaml }
    yaml += """
      probabilistic:
        device:
          blocking: [[signals.ip]]
          compare:
            signals.ip:
              - { level: within 30 minutes, m: 0.6, u: 0.00005 }
              - { level: within 1 day, m: 0.3, u: 0.0005 }
              - { level: else, m: 0.1, u: 0.99945 }
            signals.os:
              - { level: exact, m: 0.97, u: 0.25 }
              - { level: else, m: 0.03, u: 0.75 }
            signals.screen:
              - { level: exact, m: 0.97, u: 0.15 }
              - { level: else, m: 0.03, u: 0.85 }
            signals.device:
              - { level: exact, m: 0.98, u: 0.5 }
              - { level: else, m: 0.02, u: 0.5 }
            signals.timezone:
              - { level: exact, m: 0.99, u: 0.3 }
              - { level: else, m: 0.01, u: 0.7 }
            signals.locale:
              - { level: exact, m: 0.99, u: 0.4 }
              - { level: else, m: 0.01, u: 0.6 }
          prior: 0.0001
          thresholds: { review: \(review) }

      """
    return yaml
  }

  /// The threshold the rule ships with. At 0.99, 1,000,000 events gave precision 0.9867: household members on
  /// the same kind of machine at home minutes apart, and a family computer's browsers, are different people no
  /// device signal tells apart (a 7-day sharing window gave 0.9883, a `within 5 minutes` level 0.9861); from
  /// 0.996 only near-complete agreement on an address hardly anyone else used that day links (0.9923).
  static let shipped = 0.996

  @Test("at the shipped threshold (review 0.996) precision is at least 0.99; signed-in people are never linked")
  func accuracy() async throws {
    let env = ProcessInfo.processInfo.environment
    let events = env["TESSERA_DEVICE_EVENTS"].flatMap { Int($0) } ?? 20_000
    let temp = try E2E.TempDir()
    defer { temp.remove() }
    let dir = env["TESSERA_DEVICE_DIR"] ?? temp.path
    try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
    let traffic = try DeviceTraffic.write(count: events, to: dir + "/events.ndjson")
    if env["TESSERA_DEVICE_DIR"] != nil {
      // The truth beside the events, for scoring runs of the release CLI (`Benchmarks/devices/evaluate.py`):
      // per anonymous id its person, household and kind; per event where it was and who it signed in as.
      let anons = traffic.anonPerson.indices.map { a in
        "a-\(a)\t\(traffic.anonPerson[a])\t\(traffic.household[Int(traffic.anonPerson[a])])\t\(traffic.anonKind[a])"
      }
      try (anons.joined(separator: "\n") + "\n").write(toFile: dir + "/anons.tsv", atomically: true, encoding: .utf8)
      let evs = traffic.eventAnon.indices.map { n in "d-\(n)\t\(traffic.eventPlace[n])\t\(traffic.eventUser[n])" }
      try (evs.joined(separator: "\n") + "\n").write(toFile: dir + "/events.tsv", atomically: true, encoding: .utf8)
      print("devices: truth written to \(dir)/anons.tsv and \(dir)/events.tsv (linkable \(traffic.linkable))")
    }
    try Self.pipeline(review: nil).write(toFile: dir + "/without.yaml", atomically: true, encoding: .utf8)
    try Self.pipeline(review: Self.shipped).write(toFile: dir + "/with.yaml", atomically: true, encoding: .utf8)
    // Links are recorded from 0.5 so the table can show lower thresholds; review-band links change nothing
    // else, so each threshold's links are those a rule at that threshold would propose.
    try Self.pipeline(review: 0.5).write(toFile: dir + "/sweep.yaml", atomically: true, encoding: .utf8)
    let result = Compiler(environment: [:]).compile(pipeline: dir + "/sweep.yaml")
    let plan = try #require(result.plan, "\(result.rendered())")
    let store = MemoryStore()
    let summary = try await E2E.run(plan, store)
    print(
      "devices: \(traffic.eventAnon.count) events, \(traffic.people) people, \(traffic.anonPerson.count) anonymous ids, "
        + "\(traffic.linkable) linkable by a device link; \(summary.summary.stats.reviewLinks) links at ≥ 0.5")
    let table = try await Self.evaluate(store, traffic)
    for row in table.rows {
      print(
        String(
          format: "  threshold %.3f: %d links, %d correct, precision %.4f, recall %.4f", row.threshold, row.links,
          row.correct, row.precision, row.recall))
    }
    print("  links of an event signed in as another user than the candidate's: \(table.signedInApart)")
    for (kind, n) in table.falseAtShipped.sorted(by: { $0.value > $1.value }) {
      print("  false at \(Self.shipped): \(kind) \(n)")
    }
    let shipped = try #require(table.rows.first { $0.threshold == Self.shipped })
    // The default 20,000 events give ~80 links at the shipped threshold, where one false link is 1.2 %: the
    // 0.99 of the issue is measured from 200,000 events up (docs/BENCHMARKS.md: 1,000,000).
    let floor = events >= 200_000 ? 0.99 : 0.98
    #expect(shipped.links > 0 && shipped.precision >= floor, "\(table.rows)")
    #expect(table.signedInApart == 0)
  }

  struct Row: Sendable {
    var threshold: Double
    var links: Int
    var correct: Int
    var precision: Double
    var recall: Double
  }

  /// Precision and recall of the links (an anonymous id's first event proposed for a profile) per threshold.
  static func evaluate(_ store: MemoryStore, _ traffic: DeviceTraffic) async throws -> (
    rows: [Row], signedInApart: Int, falseAtShipped: [String: Int]
  ) {
    let links = await store.matchLinks(status: nil, limit: .max)
    var personOf: [ProfileID: (person: Int32, users: Set<Int32>)] = [:]
    func person(_ p: ProfileID) async -> (person: Int32, users: Set<Int32>) {
      if let known = personOf[p] { return known }
      var anons: [Int32] = []
      var users: Set<Int32> = []
      let live = await store.canonical(p) ?? p
      for (i, _) in await store.identifiers(of: live) {
        if i.kind == "anonymous_id", let n = Int32(i.value.dropFirst(2)) { anons.append(traffic.anonPerson[Int(n)]) }
        if i.kind == "user_id", let n = Int32(i.value.dropFirst(2)) { users.insert(n) }
      }
      let found = (anons.first ?? -1, users)
      personOf[p] = found
      return found
    }
    // Which profile each signed-in event resolved to, and the merges with their times (loaded when needed).
    struct History {
      var byUser: [Int32: [(profile: ProfileID, at: Int64)]] = [:]
      var absorbedBy: [ProfileID: (survivor: ProfileID, at: Timestamp)] = [:]
      /// The profile `p` had become by `t`.
      func canonical(_ p: ProfileID, _ t: Timestamp) -> ProfileID {
        var p = p
        while let m = absorbedBy[p], m.at <= t { p = m.survivor }
        return p
      }
    }
    var loaded: History?
    func history() async throws -> History {
      if let loaded { return loaded }
      var h = History()
      for e in try await store.loadEvents() {
        guard let n = Int(e.event.id.dropFirst(2)), traffic.eventUser[n] >= 0 else { continue }
        h.byUser[traffic.eventUser[n], default: []].append((e.profile, e.event.timestamp.microseconds))
      }
      for m in await store.loadMerges() { h.absorbedBy[m.absorbed] = (m.survivor, m.at) }
      loaded = h
      return h
    }
    var scored: [(p: Double, correct: Bool, anon: Int32)] = []
    var signedInApart = 0
    // The false links at the shipped threshold by what the event's browser is, where it was, and whether the
    // candidate is of the event's household.
    var falseAtShipped: [String: Int] = [:]
    for l in links {
      guard let n = Int(l.eventID.dropFirst(2)) else { continue }
      let anon = traffic.eventAnon[n]
      let candidate = await person(l.candidate)
      // The event was signed in as one user, and the candidate held another's id by then: first the users its
      // profile holds now that had signed in somewhere by then (cheap, approximate), then, for those, whether
      // one of that user's events had resolved to a profile that was the candidate at the link's time.
      let user = traffic.eventUser[n]
      let suspects = candidate.users.filter {
        $0 != user && (traffic.signedInSince[$0] ?? .max) <= l.at.microseconds
      }
      if user >= 0, !suspects.isEmpty {
        let held = try await history()
        if suspects.contains(where: { q in
          (held.byUser[q] ?? []).contains {
            $0.at <= l.at.microseconds && held.canonical($0.profile, l.at) == l.candidate
          }
        }) {
          signedInApart += 1
        }
      }
      let correct = candidate.person == traffic.anonPerson[Int(anon)]
      scored.append((l.probability, correct, anon))
      if !correct, l.probability >= Self.shipped, candidate.person >= 0 {
        let same =
          traffic.household[Int(candidate.person)] == traffic.household[Int(traffic.anonPerson[Int(anon)])]
        let key =
          ["laptop", "family-pc", "phone"][Int(traffic.anonKind[Int(anon)])] + " at "
          + ["home", "office", "carrier", "hotel"][Int(traffic.eventPlace[n])] + (same ? ", same household" : "")
        falseAtShipped[key, default: 0] += 1
      }
    }
    var rows: [Row] = []
    for t in [0.5, 0.8, 0.9, 0.95, 0.99, 0.992, 0.994, 0.996, 0.998, 0.999] {
      let kept = scored.filter { $0.p >= t }
      let correct = kept.filter { $0.correct }
      rows.append(
        Row(
          threshold: t, links: kept.count, correct: correct.count,
          precision: kept.isEmpty ? 1 : Double(correct.count) / Double(kept.count),
          recall: Double(Set(correct.map { $0.anon }).count) / Double(max(1, traffic.linkable))))
    }
    return (rows, signedInApart, falseAtShipped)
  }
}
