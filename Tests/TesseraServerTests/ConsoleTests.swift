import AsyncHTTPClient
import Foundation
import NIOCore
import TesseraModel
import TesseraReceiver
import Testing

/// The console at `/ui`: its guard (token, session cookie, CSRF, content security policy) over plain HTTP, and
/// every page driven in headless Chromium through WebDriver.
@Suite("Console at /ui", .serialized)
struct ConsoleTests {
  /// Deterministic and probabilistic identity, a segment that reads a trait, and a webhook destination.
  static func pipeline(hook: Int = 9) -> String {
    """
    pipeline: console_test
    identifiers:
      user_id:      { normalize: trim, max_per_profile: 1, priority: 1 }
      email:        { normalize: email, max_per_profile: 5, priority: 2 }
      anonymous_id: { normalize: trim, max_per_profile: 50, priority: 9 }
    deterministic:
      strong_ids: { link_on: [user_id, email, anonymous_id] }
    profile:
      default_policy: most_recent
      traits:
        plan: { type: string, policy: most_recent }
        first_name: { type: string }
        last_name: { type: string }
        dob: { type: string }
    segments:
      pro:
        description: On the pro plan.
        when: traits.plan == "pro"
      named:
        description: Has a first name.
        when: traits.first_name != null
    probabilistic:
      person:
        blocking:
          - [traits.dob]
        compare:
          first_name:
            - { level: exact, m: 0.9, u: 0.01 }
            - { level: else, m: 0.1, u: 0.99 }
          last_name:
            - { level: exact, m: 0.9, u: 0.005 }
            - { level: else, m: 0.1, u: 0.995 }
          dob:
            - { level: exact, m: 0.9, u: 0.001 }
            - { level: else, m: 0.1, u: 0.999 }
        thresholds: { merge: 0.99, review: 0.9 }
        prior: 0.001
    sources:
      web: { kind: http, write_key: test_key }
    destinations:
      hook:
        kind: webhook
        url: http://127.0.0.1:\(hook)/hook
        on: events
        payload: { id: message_id, profile: profile.id }
        batch: { max_events: 100, max_wait: 50ms }
        retry: { attempts: 1, backoff: 50ms..100ms, max_age: 1h }
    """
  }

  static func identify(_ h: Harness, _ id: String, user: String? = nil, anonymous: String? = nil, traits: String)
    async throws
  {
    var fields = [#""messageId": "\#(id)""#, #""traits": \#(traits)"#, #""timestamp": "2026-11-01T10:00:00Z""#]
    if let user { fields.append(#""userId": "\#(user)""#) }
    if let anonymous { fields.append(#""anonymousId": "\#(anonymous)""#) }
    let answer = try await h.track("/v1/identify", "{" + fields.joined(separator: ", ") + "}")
    #expect(answer.status == 200, "\(answer.text)")
  }

  static func profileID(_ h: Harness, _ identifier: String) async throws -> String? {
    try await h.admin(.GET, "/v1/profiles?identifier=\(identifier)")["id"].stringValue
  }

  /// Opens the console and signs in with the keyboard alone: the token field has the focus, Enter submits.
  static func signIn(_ b: Browser, _ h: Harness) async throws {
    try await b.open("http://127.0.0.1:\(h.port)/ui")
    _ = try await b.find("#token")
    try await b.wait("the token field to have the focus", "return document.activeElement.id === 'token'")
    try await b.keys(Harness.token + "\u{E007}")
    try await b.wait("the search page", "return document.body.dataset.view === 'search'")
  }

  static func browse(_ body: (Browser) async throws -> Void) async throws {
    let b = try await Browser.start()
    do {
      try await body(b)
    } catch {
      _ = try? await b.screenshot("failure")
      await b.quit()
      throw error
    }
    await b.quit()
  }

  // MARK: the guard, over plain HTTP

  @Test("off without a token; with one, every page carries a strict policy and the token only signs in")
  func guardOverHTTP() async throws {
    let off = try await Harness.start(pipeline: Self.pipeline(), token: nil)
    let closed = try await off.request(.GET, "/ui")
    #expect(closed.status == 404)
    #expect(closed.text.contains("TESSERA_ADMIN_TOKEN"))
    try await off.stop()

    let h = try await Harness.start(pipeline: Self.pipeline())
    let page = try await h.request(.GET, "/ui")
    #expect(page.status == 200)
    let header = { (a: HTTPAnswer, name: String) in a.headers.first { $0.0.lowercased() == name }?.1 ?? "" }
    let csp = header(page, "content-security-policy")
    for directive in ["default-src 'none'", "script-src 'self'", "frame-ancestors 'none'", "require-trusted-types-for"]
    {
      #expect(csp.contains(directive), "\(csp)")
    }
    #expect(!csp.contains("unsafe"))
    #expect(header(page, "x-content-type-options") == "nosniff")
    #expect(!page.text.contains("<script>"), "no inline script")
    #expect(try await h.request(.GET, "/ui/assets/app.js").status == 200)
    #expect(try await h.request(.GET, "/ui/assets/nothing.js").status == 404)

    // Signing in: wrong token refused, right one answered with an HttpOnly SameSite=Strict cookie.
    let json = [("Content-Type", "application/json")]
    let wrong = try await h.request(.POST, "/ui/session", body: ByteBuffer(string: #"{"token":"nope"}"#), headers: json)
    #expect(wrong.status == 401)
    let right = try await h.request(
      .POST, "/ui/session", body: ByteBuffer(string: #"{"token":"\#(Harness.token)"}"#), headers: json)
    #expect(right.status == 200)
    let cookie = header(right, "set-cookie")
    #expect(cookie.contains("HttpOnly") && cookie.contains("SameSite=Strict"), "\(cookie)")
    let session = try #require(cookie.split(separator: ";").first.map(String.init))
    let csrf = try #require(right["csrf"].stringValue)
    #expect(!cookie.contains(Harness.token) && !right.text.contains(Harness.token))

    // The cookie reads; a change needs the CSRF token, from the same origin.
    #expect(try await h.request(.GET, "/v1/segments", headers: [("Cookie", session)]).status == 200)
    let noToken = try await h.request(.POST, "/v1/review/1/reject", headers: [("Cookie", session)])
    #expect(noToken.status == 403 && noToken["code"] == .string("csrf"))
    let crossSite = try await h.request(
      .POST, "/v1/review/1/reject",
      headers: [("Cookie", session), ("X-Tessera-CSRF", csrf), ("Origin", "http://evil.example")])
    #expect(crossSite.status == 403 && crossSite["code"] == .string("cross_origin"))
    let fetchSite = try await h.request(
      .POST, "/v1/review/1/reject",
      headers: [("Cookie", session), ("X-Tessera-CSRF", csrf), ("Sec-Fetch-Site", "cross-site")])
    #expect(fetchSite.status == 403)
    // Past the guard: link 1 does not exist, so the decision itself is refused.
    let passed = try await h.request(
      .POST, "/v1/review/1/reject",
      headers: [("Cookie", session), ("X-Tessera-CSRF", csrf), ("Origin", "http://127.0.0.1:\(h.port)")])
    #expect(passed.status == 409, "\(passed.text)")
    #expect(passed["message"].stringValue?.contains("not waiting for review") == true)
    // A state change through GET does not exist.
    #expect(try await h.request(.GET, "/v1/review/1/reject", headers: [("Cookie", session)]).status == 404)
    // Signing out ends the session.
    let out = try await h.request(.DELETE, "/ui/session", headers: [("Cookie", session), ("X-Tessera-CSRF", csrf)])
    #expect(out.status == 200)
    #expect(try await h.request(.GET, "/v1/segments", headers: [("Cookie", session)]).status == 401)
    try await h.stop()
  }

  // MARK: in the browser

  @Test(
    "search → profile → identity graph → why → unmerge: the profile splits",
    .enabled(if: Browser.available, "\(Browser.missing)"))
  func profileAndUnmerge() async throws {
    let h = try await Harness.start(pipeline: Self.pipeline())
    try await Self.identify(h, "i-1", anonymous: "anon-1", traits: #"{"plan": "pro"}"#)
    try await Self.identify(h, "i-2", user: "u1", traits: #"{"email": "ada@example.com", "first_name": "Ada"}"#)
    try await Self.identify(h, "i-3", user: "u1", anonymous: "anon-1", traits: #"{}"#)
    // A second user id on the merged profile is refused by the limit of one.
    try await Self.identify(h, "i-4", user: "u9", anonymous: "anon-1", traits: #"{}"#)
    let merged = try #require(try await Self.profileID(h, "user_id:u1"))
    #expect(try await Self.profileID(h, "anonymous_id:anon-1") == merged)

    try await Self.browse { b in
      try await Self.signIn(b, h)
      try await b.keys("user_id:u1\u{E007}")
      try await b.wait("the profile", "return document.body.dataset.view === 'profile'")
      #expect(try await b.text("h1") == "Profile \(merged)")
      #expect(try await b.text("#identifiers").contains("ada@example.com"))
      #expect(try await b.text("#traits").contains("web"))
      #expect(try await b.text("#segments").contains("pro"))
      #expect(try await b.run("return document.querySelectorAll('#identity-graph .profile-node').length") == .int(2))
      #expect(try await b.run("return document.querySelectorAll('#identity-graph .identifier').length") == .int(3))
      let edge = try await b.run("return document.querySelector('#identity-graph .merge-edge text').textContent")
      #expect(edge.stringValue?.contains("strong_ids") == true, "\(edge)")
      let refused = try await b.text("#conflicts")
      #expect(refused.contains("user_id"), "\(refused)")
      let rows = try await b.run("return document.querySelectorAll('#timeline tbody tr').length")
      #expect((rows.doubleValue ?? 0) >= 3, "\(rows)")
      try await b.screenshot("console-profile")
      try await b.click("#merges button.why")
      _ = try await b.find("#explanation h2")
      #expect(try await b.text("#explanation").contains("linked them on"))
      try await b.screenshot("console-why")

      try await b.click("#merges button.unmerge")
      try await b.wait("the confirmation", "return document.getElementById('confirm').open")
      // Cancel first: nothing changes.
      try await b.click("#confirm-no")
      #expect(try await Self.profileID(h, "anonymous_id:anon-1") == merged)
      try await b.click("#merges button.unmerge")
      try await b.wait("the confirmation", "return document.getElementById('confirm').open")
      try await b.click("#confirm-yes")
      try await b.wait("the unmerge", "return document.getElementById('status').textContent.startsWith('Unmerged')")
      try await b.wait(
        "the profile without the other's identifiers",
        "return !document.getElementById('identifiers').textContent.includes('ada@example.com')")
      try await b.screenshot("console-unmerged")
    }
    let user = try #require(try await Self.profileID(h, "user_id:u1"))
    let anonymous = try #require(try await Self.profileID(h, "anonymous_id:anon-1"))
    #expect(user != anonymous)
    try await h.stop()
  }

  /// The console's pages read a page at a time (issue 20's performance point): the timeline, segment members and
  /// the review queue follow cursors of their own, and the threshold slider counts from a histogram.
  @Test("timeline, members and review a page at a time; the slider's histogram counts every link")
  func pagesOverHTTP() async throws {
    let h = try await Harness.start(pipeline: Self.pipeline())
    try await Self.identify(
      h, "r-1", user: "u1", traits: #"{"first_name": "Katherine", "last_name": "Lindqvist", "dob": "1990-07-21"}"#)
    // Three candidate links: two at one probability (first name and birth date), one lower (last name, not first).
    try await Self.identify(h, "r-2", anonymous: "anon-2", traits: #"{"first_name": "Katherine", "dob": "1990-07-21"}"#)
    try await Self.identify(
      h, "r-3", anonymous: "anon-3", traits: #"{"first_name": "Kate", "last_name": "Lindqvist", "dob": "1990-07-21"}"#)
    try await Self.identify(h, "r-4", anonymous: "anon-4", traits: #"{"first_name": "Katherine", "dob": "1990-07-21"}"#)
    // Seven events of u1, a minute apart.
    let batch = (0..<7).map {
      #"{"type":"track","messageId":"t-\#($0)","userId":"u1","event":"Viewed","timestamp":"2026-11-02T10:0\#($0):00Z"}"#
    }
    #expect(try await h.track("{\"batch\":[\(batch.joined(separator: ","))]}").status == 200)
    let u1 = try #require(try await Self.profileID(h, "user_id:u1"))

    // Timeline: newest first, three a page; page 2 holds the next three; a filter pages on its own.
    func ids(_ a: HTTPAnswer) -> [String] { a["items"].list.compactMap { $0.lookup(["id"]).stringValue } }
    let first = try await h.admin(.GET, "/v1/profiles/\(u1)/events?limit=3")
    #expect(ids(first) == ["t-6", "t-5", "t-4"])
    let c1 = try #require(first["next_cursor"].stringValue)
    let second = try await h.admin(.GET, "/v1/profiles/\(u1)/events?limit=3&cursor=\(c1)")
    #expect(ids(second) == ["t-3", "t-2", "t-1"])
    let c2 = try #require(second["next_cursor"].stringValue)
    let third = try await h.admin(.GET, "/v1/profiles/\(u1)/events?limit=3&cursor=\(c2)")
    #expect(ids(third) == ["t-0", "r-1"])
    #expect(third["next_cursor"] == .null)
    let identifies = try await h.admin(.GET, "/v1/profiles/\(u1)/events?limit=3&type=identify")
    #expect(ids(identifies) == ["r-1"])
    #expect(identifies["next_cursor"] == .null)
    #expect(try await h.admin(.GET, "/v1/profiles/\(u1)/events?cursor=12").status == 400)

    // Members of `named` (all four have a first name) in profile order, three a page.
    let m1 = try await h.admin(.GET, "/v1/segments/named/members?limit=3")
    #expect(m1["total"] == .int(4))
    #expect(m1["items"].listCount == 3)
    let m2 = try await h.admin(.GET, "/v1/segments/named/members?limit=3&cursor=\(m1["next_cursor"].stringValue ?? "")")
    #expect(m2["items"].listCount == 1)
    #expect(m2["next_cursor"] == .null)
    let members = (m1["items"].list + m2["items"].list).compactMap { $0.lookup(["profile_id"]).stringValue }
    #expect(Set(members).count == 4)
    #expect(members.compactMap { ProfileID(parsing: $0) } == members.compactMap { ProfileID(parsing: $0) }.sorted())
    #expect(try await h.admin(.GET, "/v1/segments/named/members?cursor=nonsense").status == 400)

    // Review: most probable first, ties by the later link first, two a page; least probable first the other way.
    let r1 = try await h.admin(.GET, "/v1/review?limit=2")
    #expect(r1["total"] == .int(3))
    let p1 = r1["items"].list.compactMap { $0.lookup(["probability"]).doubleValue }
    let r2 = try await h.admin(.GET, "/v1/review?limit=2&cursor=\(r1["next_cursor"].stringValue ?? "")")
    #expect(r2["next_cursor"] == .null)
    let p2 = r2["items"].list.compactMap { $0.lookup(["probability"]).doubleValue }
    #expect(p1.count == 2 && p2.count == 1)
    #expect(p1[0] == p1[1] && p1[1] > p2[0], "\(p1) \(p2)")
    #expect(p1[0] > 0.98 && p1[0] < 0.99 && p2[0] > 0.9 && p2[0] < 0.95, "\(p1) \(p2)")
    let linkIDs = (r1["items"].list + r2["items"].list).compactMap { $0.lookup(["id"]).doubleValue }
    #expect(linkIDs[0] > linkIDs[1], "ties: the later link first")
    let ascending = try await h.admin(.GET, "/v1/review?sort=asc")
    #expect(ascending["items"].list.compactMap { $0.lookup(["id"]).doubleValue } == linkIDs.reversed())
    // The histogram: every stored link of the rule in its bucket of 0.0001.
    let rule = try #require(r1["rules"].list.first)
    #expect(rule.lookup(["links"]) == .int(3))
    #expect(rule.lookup(["histogram", "buckets"]) == .int(10_000))
    var expected: [Value] = []
    for (bucket, n) in Dictionary(grouping: p1 + p2, by: { Int(($0 * 10_000).rounded(.down)) }).sorted(by: {
      $0.key < $1.key
    }) {
      expected.append(.list([.int(Int64(bucket)), .int(Int64(n.count))]))
    }
    #expect(rule.lookup(["histogram", "counts"]) == .list(expected))
    #expect(try await h.admin(.GET, "/v1/review?cursor=3").status == 400)
    try await h.stop()
  }

  @Test(
    "review → compare → threshold → confirm: the profiles merge; segments and the pipeline drawn",
    .enabled(if: Browser.available, "\(Browser.missing)"))
  func reviewAndConfirm() async throws {
    let h = try await Harness.start(pipeline: Self.pipeline())
    try await Self.identify(
      h, "r-1", user: "u1", traits: #"{"first_name": "Katherine", "last_name": "Lindqvist", "dob": "1990-07-21"}"#)
    try await Self.identify(h, "r-2", anonymous: "anon-2", traits: #"{"first_name": "Katherine", "dob": "1990-07-21"}"#)
    let a = try #require(try await Self.profileID(h, "user_id:u1"))
    let b2 = try #require(try await Self.profileID(h, "anonymous_id:anon-2"))
    #expect(a != b2)

    try await Self.browse { b in
      try await Self.signIn(b, h)
      try await b.open("http://127.0.0.1:\(h.port)/ui#/review")
      _ = try await b.find("article.link")
      let card = try await b.text("article.link")
      #expect(card.contains("first_name") && card.contains("exact") && card.contains("katherine"), "\(card)")
      #expect(card.contains("probability 0.98"), "\(card)")
      let at = try await b.text("#at-person")
      #expect(at.contains("0 of 1 links would merge"), "\(at)")
      // Lower the threshold with the keyboard: the count follows.
      try await b.run(
        "const s = document.getElementById('threshold-person'); s.value = '0.95';"
          + "s.dispatchEvent(new Event('input'));")
      #expect(try await b.text("#at-person").contains("1 of 1 links would merge (1 more"))
      try await b.screenshot("console-review")
      try await b.click("article.link button.confirm")
      try await b.wait(
        "the confirmation", "return document.getElementById('status').textContent.includes('confirmed: 1 merge')")
      try await b.wait("the empty queue", "return !!document.getElementById('review-empty')")

      try await b.open("http://127.0.0.1:\(h.port)/ui#/segments/named")
      try await b.wait("the segment", "return document.body.dataset.view === 'segments'")
      let members = try await b.text("main")
      #expect(members.contains("1 members") && members.contains("entered"), "\(members)")
      try await b.screenshot("console-segment")

      try await b.open("http://127.0.0.1:\(h.port)/ui#/pipeline")
      _ = try await b.find("#pipeline-graph .plan-stage")
      let stages = try await b.run("return document.querySelectorAll('#pipeline-graph .plan-stage').length")
      #expect((stages.doubleValue ?? 0) >= 4, "\(stages)")
      #expect(
        try await b.run("return document.getElementById('pipeline-graph').textContent.includes('% busy')")
          == .bool(true),
        "live figures per stage")
      try await b.screenshot("console-pipeline")
    }
    #expect(try await Self.profileID(h, "anonymous_id:anon-2") == a)
    try await h.stop()
  }

  @Test("a dead-lettered delivery is re-queued and delivered", .enabled(if: Browser.available, "\(Browser.missing)"))
  func requeueDeadLetter() async throws {
    let receiver = WebhookReceiver(script: ["/hook": [.status(400)]])
    let port = try await receiver.start()
    let h = try await Harness.start(pipeline: Self.pipeline(hook: port), deliver: true)
    _ = try await h.track(trackBatch(ids: ["d-1"], user: "u1"))
    let dead = try await DestinationDownTests.eventually(15) {
      try await h.admin(.GET, "/v1/deliveries")["destinations.hook.dead"] == .int(1)
    }
    #expect(dead)

    try await Self.browse { b in
      try await Self.signIn(b, h)
      try await b.open("http://127.0.0.1:\(h.port)/ui#/deliveries")
      _ = try await b.find("button.requeue")
      let page = try await b.text("main")
      #expect(page.contains("HTTP 400") && page.contains("1 (1 changes)"), "\(page)")
      try await b.screenshot("console-deliveries")
      try await b.click("button.requeue")
      try await b.wait(
        "the re-queue", "return document.getElementById('status').textContent.startsWith('Re-queued 1 batch')")
    }
    let delivered = try await DestinationDownTests.eventually(15) {
      try await h.admin(.GET, "/v1/deliveries")["destinations.hook.delivered"] == .int(1)
    }
    #expect(delivered)
    #expect(receiver.accepted.values.flatMap { $0 }.count == 1)
    #expect(try await h.admin(.GET, "/v1/deliveries")["destinations.hook.dead"] == .int(0))
    try await h.stop()
    receiver.stop()
  }

  static let payloads = [
    "<script>window.__xss=1</script>", "<img src=x onerror=\\\"window.__xss=1\\\">", "javascript:window.__xss=1",
    "<svg onload=\\\"window.__xss=1\\\"><script>alert(1)</script></svg>", "</title><script>alert(1)</script>",
    "\\\"><iframe src=\\\"javascript:alert(1)\\\"></iframe>",
  ]

  @Test(
    "hostile traits, properties, names and identifiers are shown as text and nothing runs",
    .enabled(if: Browser.available, "\(Browser.missing)"))
  func nothingExecutes() async throws {
    let h = try await Harness.start(pipeline: Self.pipeline())
    let p = Self.payloads
    let traits = """
      {"first_name": "\(p[1])", "last_name": "\(p[0])", "dob": "1990-01-01", "plan": "\(p[3])", "website": "\(p[2])"}
      """
    try await Self.identify(h, "x-1", user: "<img src=x onerror=alert(1)>", traits: traits)
    // The same first name and birth date from an unknown visitor: a candidate link to review, showing both.
    try await Self.identify(
      h, "x-2", anonymous: "\(p[4])", traits: #"{"first_name": "\#(p[1])", "dob": "1990-01-01"}"#)
    let track = """
      {"type":"track","messageId":"x-3","userId":"<img src=x onerror=alert(1)>","event":"\(p[0])",\
      "properties":{"url":"\(p[2])","html":"\(p[5])","svg":"\(p[3])"},"timestamp":"2026-11-01T10:00:00Z"}
      """
    #expect(try await h.track("/v1/track", track).status == 200)
    let hostileUser = "user_id:<img src=x onerror=alert(1)>".addingPercentEncoding(
      withAllowedCharacters: .alphanumerics)
    let id = try #require(try await Self.profileID(h, hostileUser ?? ""))

    let safe = """
      return window.__xss === undefined
        && document.querySelectorAll('img, iframe, object, embed, main script, main svg script').length === 0
        && document.scripts.length === 1
        && [...document.querySelectorAll('*')].every(e => ![...e.attributes].some(a => a.name.startsWith('on')))
        && [...document.querySelectorAll('a')].every(a => a.getAttribute('href').startsWith('#'))
      """
    try await Self.browse { b in
      try await Self.signIn(b, h)
      for (page, shows) in [
        ("#/profile/\(id)", "<script>window.__xss=1</script>"), ("#/review", "probability"),
        ("#/segments/named", "<img src=x onerror="), ("#/segments/pro", "named"), ("#/deliveries", "Dead letters"),
      ] {
        try await b.open("http://127.0.0.1:\(h.port)/ui\(page)")
        try await b.wait(
          "\(page) to show `\(shows)`",
          "return document.querySelector('main').textContent.includes(\(JSON.encode(.string(shows))))")
        // Give anything that would run a moment to do so.
        try await Task.sleep(for: .milliseconds(300))
        #expect(try await b.alert() == nil, "an alert opened on \(page)")
        #expect(try await b.run(safe) == .bool(true), "something ran or was injected on \(page)")
        if page.hasPrefix("#/profile") {
          let text = try await b.text("main")
          for shown in ["<script>window.__xss=1</script>", "javascript:window.__xss=1", "<svg onload="] {
            #expect(text.contains(shown), "`\(shown)` is shown as text")
          }
          try await b.screenshot("console-hostile")
        }
      }
    }
    try await h.stop()
  }
}
