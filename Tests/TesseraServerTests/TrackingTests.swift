import AsyncHTTPClient
import Foundation
import Hummingbird
import TesseraModel
import TesseraSQLite
import TesseraStore
import Testing

@Suite("Tracking API over real HTTP")
struct TrackingTests {
  /// The body of a captured SDK request, re-encoded as the SDK sent it (JSON text).
  static func fixture(_ sdk: String) throws -> (body: String, auth: String, gzip: Bool, messages: Int) {
    let data = try Data(contentsOf: URL(fileURLWithPath: Paths.sdkFixtures + "/\(sdk)/request.json"))
    let object = try #require(try JSONSerialization.jsonObject(with: data) as? [String: Any])
    let body = try #require(object["body"] as? [String: Any])
    let headers = try #require(object["headers"] as? [String: String])
    let text = String(decoding: try JSONSerialization.data(withJSONObject: body), as: UTF8.self)
    return (
      text, try #require(headers["Authorization"]), object["content_encoding"] as? String == "gzip",
      (body["batch"] as? [Any])?.count ?? 0
    )
  }

  @Test("the Segment and RudderStack SDK requests are stored, resolved and unified", arguments: ["segment", "rudder"])
  func sdkRequests(_ sdk: String) async throws {
    let h = try await Harness.start()
    let f = try Self.fixture(sdk)
    #expect(f.messages == 10)
    var buffer = ByteBuffer(string: f.body)
    var headers = [("Content-Type", "application/json"), ("Authorization", f.auth)]
    if f.gzip {
      buffer = try buffer.compress(with: .gzip())
      headers.append(("Content-Encoding", "gzip"))
    }
    let answer = try await h.request(.POST, "/v1/batch", body: buffer, headers: headers)
    #expect(answer.status == 200)
    #expect(answer["success"] == .bool(true))
    #expect(answer["stored"] == .int(10))
    #expect(answer["rejected"] == .list([]))
    #expect(try await h.store.stats().events == 10)

    // Right after the 200 the profile shows the events' effect: identifiers from userId, anonymousId and
    // (context.)traits, the identify traits, the segment they put the profile in.
    let profile = try await h.admin(.GET, "/v1/profiles?identifier=email:ada@example.com")
    #expect(profile.status == 200)
    let ids = Set(
      profile["identifiers"].list.compactMap { v -> String? in
        guard case .map(let m) = v, let k = m["kind"]?.stringValue, let val = m["value"]?.stringValue else {
          return nil
        }
        return "\(k):\(val)"
      })
    #expect(ids.isSuperset(of: ["user_id:user-1001", "email:ada@example.com", "anonymous_id:anon-7f3c2a91"]))
    #expect(profile["traits.plan.value"] == .string("pro"))
    #expect(profile["traits.plan.source"] == .string("web"))
    #expect(profile["segments"].list.contains { $0.lookup(["segment"]) == .string("pro") })
    // Unknown and unmodelled fields are kept with the event.
    let id = try #require(profile["id"].stringValue)
    let events = try await h.admin(.GET, "/v1/profiles/\(id)/events?limit=100")
    #expect(events.status == 200)
    // Six of the ten messages are Ada's (userId user-1001 or her anonymousId); the others are other people.
    #expect(events["items"].listCount == 6)
    // A numeric userId (42) is read as the string "42"; the anonymous-only visitor has their own profile.
    #expect(try await h.admin(.GET, "/v1/profiles?identifier=user_id:42").status == 200)
    let anon = try await h.admin(.GET, "/v1/profiles?identifier=anonymous_id:anon-only-1")
    let anonID = try #require(anon["id"].stringValue)
    #expect(anonID != id)
    #expect(try await h.admin(.GET, "/v1/profiles/\(anonID)/events")["items"].listCount == 2)
    let group = try #require(events["items"].list.first { $0.lookup(["type"]) == .string("group") })
    #expect(group.lookup(["context", "tracking", "groupId"]) == .string("acme-inc"))
    #expect(group.lookup(["properties", "traits", "name"]) == .string("Acme Inc"))
    if sdk == "rudder" {
      #expect(group.lookup(["context", "tracking", "channel"]) == .string("server"))
    }
    try await h.stop()
  }

  @Test("each message type has its own route; numeric ids become strings")
  func singleRoutes() async throws {
    let h = try await Harness.start()
    let identify = try await h.track(
      "/v1/identify", #"{"userId": 4711, "traits": {"email": "Bob@Example.com", "plan": "pro"}, "messageId": "m-1"}"#)
    #expect(identify.status == 200)
    #expect(identify["stored"] == .int(1))
    let track = try await h.track("/v1/track", #"{"userId": "4711", "event": "Order Completed", "messageId": "m-2"}"#)
    #expect(track["stored"] == .int(1))
    let page = try await h.track("/v1/page", #"{"anonymousId": "a-9", "name": "Home", "messageId": "m-3"}"#)
    #expect(page["stored"] == .int(1))
    let alias = try await h.track("/v1/alias", #"{"userId": "4711", "previousId": "a-9", "messageId": "m-4"}"#)
    #expect(alias["stored"] == .int(1))
    let profile = try await h.admin(.GET, "/v1/profiles?identifier=user_id:4711")
    #expect(profile.status == 200)
    #expect(profile["traits.plan.value"] == .string("pro"))
    #expect(profile["computed.orders"] == .int(1))
    let segments = Set(profile["segments"].list.compactMap { $0.lookup(["segment"]).stringValue })
    #expect(segments == ["pro", "buyers"])
    // The alias joined the anonymous page view to the user.
    let byAnon = try await h.admin(.GET, "/v1/profiles?identifier=anonymous_id:a-9")
    #expect(byAnon["id"] == profile["id"])
    try await h.stop()
  }

  @Test("an http source's own map adds identifiers and fields to the tracking defaults")
  func sourceMap() async throws {
    let pipeline = testPipeline.replacingOccurrences(
      of: "  web: { kind: http, write_key: test_key }",
      with: [
        "  web:", "    kind: http", "    write_key: test_key", "    map:", "      phone: properties.phone",
        "      traits.locale: context.locale", "      properties.channel: coalesce(channel, \"web\")",
      ].joined(separator: "\n"))
    #expect(pipeline != testPipeline)
    let h = try await Harness.start(pipeline: pipeline)
    let answer = try await h.track(
      "/v1/track",
      #"{"userId": "u1", "event": "Called", "properties": {"phone": "(415) 555-0123"}, "context": {"locale": "de-DE"}, "messageId": "p-1"}"#
    )
    #expect(answer["stored"] == .int(1))
    let profile = try await h.admin(.GET, "/v1/profiles?identifier=phone:+14155550123")
    #expect(profile.status == 200)
    #expect(profile["traits.locale.value"] == .string("de-DE"))
    let event = try #require(try await h.loggedEvents().first)
    #expect(event.event.properties["channel"] == .string("web"))
    #expect(event.event.identifiers.contains(Identifier("phone", "+14155550123")))
    try await h.stop()
  }

  @Test("the write key: Basic user name or body field, per source; wrong or missing is 401 with JSON")
  func auth() async throws {
    let h = try await Harness.start()
    let body = trackBatch(ids: ["k-1"], user: "u1")
    let missing = try await h.track(body, key: nil)
    #expect(missing.status == 401)
    #expect(missing["code"] == .string("unauthorized"))
    #expect(missing["message"].stringValue?.contains("write key") == true)
    let wrong = try await h.track(body, key: "nope")
    #expect(wrong.status == 401)
    #expect(wrong["code"] == .string("unauthorized"))
    #expect(try await h.store.stats().events == 0)
    // writeKey in the body names the source.
    let inBody = try await h.track(
      #"{"writeKey": "app-key", "batch": [{"type": "identify", "userId": "u2", "messageId": "k-2"}]}"#, key: nil)
    #expect(inBody.status == 200)
    let wrongInBody = try await h.track(#"{"writeKey": "zzz", "batch": []}"#, key: nil)
    #expect(wrongInBody.status == 401)
    // Each source has its own key: events are stored under the source whose key was used.
    _ = try await h.track(trackBatch(ids: ["k-3"], user: "u3"), key: "app-key")
    let events = try await h.loggedEvents()
    #expect(
      Dictionary(uniqueKeysWithValues: events.map { ($0.event.id, $0.event.source) }) == ["k-2": "app", "k-3": "app"])
    try await h.stop()
  }

  @Test("gzip bodies are read; a body that is not gzip is a 400")
  func gzip() async throws {
    let h = try await Harness.start()
    let ok = try await h.track(trackBatch(ids: ["g-1", "g-2"], user: "u1"), gzip: true)
    #expect(ok.status == 200)
    #expect(ok["stored"] == .int(2))
    let bad = try await h.request(
      .POST, "/v1/batch", body: ByteBuffer(string: "not gzip at all"),
      headers: [("Authorization", Harness.basic("test_key")), ("Content-Encoding", "gzip")])
    #expect(bad.status == 400)
    #expect(bad["code"] == .string("bad_encoding"))
    #expect(bad["message"].stringValue != nil)
    try await h.stop()
  }

  @Test(
    "limits: a request over max_request_bytes is a 413 naming the limit; a message over max_event_bytes is rejected alone"
  )
  func limits() async throws {
    let h = try await Harness.start()
    let padding = String(repeating: "x", count: 5000)
    let big = trackBatch(ids: (0..<45).map { "big-\($0)" }, user: "u1", extra: #","pad":"\#(padding)""#)
    let tooLarge = try await h.track(big, key: "app-key")
    #expect(tooLarge.status == 413)
    #expect(tooLarge["code"] == .string("request_too_large"))
    #expect(tooLarge["message"].stringValue?.contains("200000") == true)
    // Gzip does not get around the limit: it applies to the decompressed body.
    let zipped = try await h.track(big, key: "app-key", gzip: true)
    #expect(zipped.status == 413)
    // The web source has the 4 MiB default: the same body is fine there.
    let fine = try await h.track(big, key: "test_key")
    #expect(fine.status == 200)
    #expect(fine["stored"] == .int(45))

    let mixed = """
      {"batch": [{"type":"track","userId":"u9","event":"Big","messageId":"e-big","pad":"\(padding)"},
                 {"type":"track","userId":"u9","event":"Small","messageId":"e-small"}]}
      """
    let answer = try await h.track(mixed, key: "app-key")
    #expect(answer.status == 200)
    #expect(answer["stored"] == .int(1))
    let rejected = answer["rejected"].list
    #expect(rejected.count == 1)
    #expect(rejected.first?.lookup(["index"]) == .int(0))
    #expect(rejected.first?.lookup(["code"]) == .string("too_large"))
    #expect(rejected.first?.lookup(["reason"]).stringValue?.contains("4096") == true)
    let rows = try await h.store.rejected(limit: 10)
    #expect(rows.count == 1)
    #expect(rows.first?.source == "app")
    #expect(rows.first?.reason.contains("message 0") == true)
    #expect(rows.first?.record.hasPrefix(#"{"type":"track","userId":"u9","event":"Big""#) == true)
    try await h.stop()
  }

  @Test("unreadable requests are 400 with code and message")
  func unreadable() async throws {
    let h = try await Harness.start()
    for (body, code) in [
      ("this is not json", "malformed_json"), (#"{"batch": [{"type": "track""#, "malformed_json"),
      (#"{"messages": []}"#, "no_batch"), ("[1, 2]", "not_an_object"),
    ] {
      let answer = try await h.track(body)
      #expect(answer.status == 400, "\(body)")
      #expect(answer["code"] == .string(code), "\(body)")
      #expect(answer["message"].stringValue?.isEmpty == false)
    }
    let unknownRoute = try await h.track("/v1/nothing", "{}")
    #expect(unknownRoute.status == 404)
    #expect(unknownRoute["code"] == .string("not_found"))
    #expect(unknownRoute["message"].stringValue != nil)
    try await h.stop()
  }

  @Test("invalid messages in a readable batch are rejected one by one; the valid ones are stored")
  func invalidMessages() async throws {
    let h = try await Harness.start()
    let body = """
      {"batch": [
        {"type": "track", "userId": "u1", "event": "Ok", "messageId": "v-0"},
        {"type": "track", "event": "No ids", "messageId": "v-1", "userId": null, "anonymousId": null},
        {"type": "identify", "userId": {"id": 1}, "messageId": "v-2"},
        {"type": "track", "userId": "u1", "event": "Props", "properties": [1, 2], "messageId": "v-3"},
        {"type": "launch", "userId": "u1", "messageId": "v-4"},
        {"type": "track", "userId": "u1", "messageId": "v-5"},
        {"type": "identify", "anonymousId": "a1", "timestamp": "yesterday", "messageId": "v-6"},
        {"type": "identify", "anonymousId": "a1", "messageId": "v-7", "someNewField": {"kept": true}}
      ]}
      """
    let answer = try await h.track(body)
    #expect(answer.status == 200)
    #expect(answer["stored"] == .int(2))
    let rejected = answer["rejected"].list
    #expect(rejected.compactMap { $0.lookup(["index"]) } == [1, 2, 3, 4, 5, 6].map { Value.int($0) })
    #expect(
      rejected.compactMap { $0.lookup(["code"]).stringValue } == [
        "no_identifier", "wrong_type", "wrong_type", "unknown_type", "missing_field", "bad_timestamp",
      ])
    #expect(rejected.allSatisfy { $0.lookup(["reason"]).stringValue?.isEmpty == false })
    #expect(try await h.store.rejected(limit: 100).count == 6)
    // Counted in the metrics by reason.
    let metrics = try await h.request(.GET, "/metrics")
    #expect(metrics.text.contains(#"tessera_events_rejected_total{reason="wrong_type",source="web"} 2"#))
    #expect(metrics.text.contains(#"tessera_events_rejected_total{reason="no_identifier",source="web"} 1"#))
    #expect(metrics.text.contains(#"tessera_events_accepted_total{source="web"} 2"#))
    // Unknown fields are kept.
    let stored = try await h.loggedEvents().first { $0.event.id == "v-7" }
    #expect(stored?.event.context["tracking"]?.lookup(["someNewField", "kept"]) == .bool(true))
    try await h.stop()
  }

  @Test("sentAt corrects the client's clock: timestamp = receivedAt - (sentAt - timestamp)")
  func clockSkew() async throws {
    let h = try await Harness.start()
    let before = Timestamp(Date())
    let body = """
      {"sentAt": "2020-01-01T00:00:10Z", "batch": [
        {"type": "track", "userId": "u1", "event": "Skewed", "messageId": "s-1", "timestamp": "2020-01-01T00:00:00Z"},
        {"type": "track", "userId": "u1", "event": "Own sentAt", "messageId": "s-2", "timestamp": "2020-01-01T00:00:00Z",
         "sentAt": "2020-01-01T00:01:00Z"}
      ]}
      """
    let answer = try await h.track(body)
    let after = Timestamp(Date())
    #expect(answer["stored"] == .int(2))
    let events = Dictionary(uniqueKeysWithValues: try await h.loggedEvents().map { ($0.event.id, $0.event) })
    let s1 = try #require(events["s-1"])
    #expect(s1.timestamp.microseconds == s1.receivedAt.microseconds - 10_000_000)
    #expect(s1.receivedAt >= before && s1.receivedAt <= after)
    let s2 = try #require(events["s-2"])
    #expect(s2.timestamp.microseconds == s2.receivedAt.microseconds - 60_000_000)
    // Without sentAt the client's timestamp is kept as sent.
    _ = try await h.track(
      #"{"batch": [{"type": "track", "userId": "u1", "event": "E", "messageId": "s-3", "timestamp": "2020-01-01T00:00:00Z"}]}"#
    )
    let s3 = try #require(try await h.loggedEvents().first { $0.event.id == "s-3" })
    #expect(s3.event.timestamp == Timestamp(iso8601: "2020-01-01T00:00:00Z"))
    try await h.stop()
  }

  @Test("a retried batch (same messageIds) is accepted again and stored once, also when both arrive at once")
  func duplicates() async throws {
    let h = try await Harness.start()
    let body = trackBatch(ids: (0..<20).map { "d-\($0)" }, user: "u1")
    let first = try await h.track(body)
    #expect(first.status == 200)
    #expect(first["stored"] == .int(20))
    let retry = try await h.track(body)
    #expect(retry.status == 200)
    #expect(retry["stored"] == .int(0))
    #expect(retry["duplicates"] == .int(20))
    // Concurrent retries of a new batch.
    let body2 = trackBatch(ids: (0..<20).map { "e-\($0)" }, user: "u2")
    let answers = try await withThrowingTaskGroup(of: HTTPAnswer.self) { group in
      for _ in 0..<4 { group.addTask { try await h.track(body2) } }
      return try await group.reduce(into: []) { $0.append($1) }
    }
    #expect(answers.allSatisfy { $0.status == 200 })
    #expect(answers.map { $0["stored"].intValue ?? -1 }.reduce(0, +) == 20)
    #expect(try await h.store.stats().events == 40)
    // The same messageId from another source is another event.
    let other = try await h.track(trackBatch(ids: ["d-0"], user: "u1"), key: "app-key")
    #expect(other["stored"] == .int(1))
    try await h.stop()
  }

  @Test("concurrent clients: every acknowledged event is stored, and requests share commits")
  func concurrentClients() async throws {
    let h = try await Harness.start()
    let clients = 8
    let requests = 15
    try await withThrowingTaskGroup(of: Void.self) { group in
      for c in 0..<clients {
        group.addTask {
          for r in 0..<requests {
            let ids = (0..<50).map { "c\(c)-r\(r)-\($0)" }
            let answer = try await h.track(trackBatch(ids: ids, user: "user-\(c)-\(r % 3)"))
            #expect(answer.status == 200)
            #expect(answer["stored"] == .int(50))
          }
        }
      }
      try await group.waitForAll()
    }
    #expect(try await h.store.stats().events == clients * requests * 50)
    #expect(try await h.store.stats().profiles == clients * 3)
    let metrics = try await h.request(.GET, "/metrics").text
    let groups = metrics.split(separator: "\n").first { $0.hasPrefix("tessera_commit_events_count") }
    let count = Int(groups?.split(separator: " ").last ?? "") ?? .max
    // Group commit: fewer transactions than requests.
    #expect(count < clients * requests)
    try await h.stop()
  }
}

extension TrackingTests {
  /// Polls until `condition` holds (at most ~10 s); whether it did.
  static func eventually(_ condition: () async throws -> Bool) async throws -> Bool {
    for _ in 0..<500 {
      if try await condition() { return true }
      try await Task.sleep(for: .milliseconds(20))
    }
    return false
  }

  @Test(
    "acknowledge journaled: answered once journaled, resolved a moment later, retries stored once, drained at shutdown")
  func journaledAcknowledgement() async throws {
    let h = try await Harness.start(acknowledge: .journaled)
    let body = trackBatch(ids: (0..<30).map { "j-\($0)" }, user: "ju1", event: "Order Completed")
    let first = try await h.track(body)
    #expect(first.status == 200)
    #expect(first["stored"] == .int(30))
    // A retry while the first may still be in the journal, and one after it is resolved: stored once.
    let retry = try await h.track(body)
    #expect(retry["stored"] == .int(0))
    #expect(retry["duplicates"] == .int(30))
    let store = try h.store
    #expect(try await Self.eventually { try await store.stats().events == 30 })
    #expect(try await Self.eventually { try await store.readJournal(limit: 1).isEmpty })
    let profile = try #require(try await store.profile(for: Identifier("user_id", "ju1")))
    #expect(try await store.computed(of: profile).first { $0.trait == "orders" }?.value == .int(30))
    #expect(try await store.memberships(of: profile).map(\.segment) == ["buyers"])
    #expect(try await h.track(body)["duplicates"] == .int(30))
    // Concurrent clients, then an immediate shutdown: everything acknowledged is resolved before the exit.
    try await Self.fourClients(h, prefix: "k")
    try await h.stop()
    let reopened = try SQLiteStore(path: h.storePath)
    #expect(try await reopened.stats().events == 30 + 4 * 5 * 40)
    #expect(try await reopened.readJournal(limit: 1).isEmpty)
    #expect(try await reopened.stats().profiles == 5)
    try reopened.close()
  }

  /// Four clients at once, five batches of 40 new events each, for the people `<prefix>u0` … `<prefix>u3`.
  static func fourClients(_ h: Harness, prefix: String) async throws {
    try await withThrowingTaskGroup(of: Void.self) { group in
      for c in 0..<4 {
        group.addTask {
          for r in 0..<5 {
            let answer = try await h.track(
              trackBatch(ids: (0..<40).map { "\(prefix)\(c)-\(r)-\($0)" }, user: "\(prefix)u\(c)"))
            #expect(answer["stored"] == .int(40))
          }
        }
      }
      try await group.waitForAll()
    }
  }

  /// A shutdown resolves the journal for `journalGrace` only; what is left is resolved by the next start,
  /// and nothing acknowledged is lost in between.
  @Test("shutdown leaves the unresolved journal to the next start")
  func journaledShutdownLeavesTheRest() async throws {
    let h = try await Harness.start(acknowledge: .journaled, journalGrace: .zero)
    try await Self.fourClients(h, prefix: "s")
    // More journaled behind the server's back (as a follower would), then a stop: how much of it the writer
    // resolved before the stop depends on timing (LivePipelineTests.journalGrace checks the grace itself).
    let store = try h.store
    let late = (0..<12_000).map { n in
      Event(
        id: "late-\(n)", source: "web", type: "track", name: "Clicked",
        timestamp: Timestamp(microseconds: 1_000 + Int64(n)),
        receivedAt: Timestamp(microseconds: 1_000), identifiers: [Identifier("user_id", "su\(n % 4)")])
    }
    #expect(try await store.appendJournal(late, rejected: []).appended.count == 12_000)
    try await h.stop()
    // The process would end here; its store (and the writer lock with it) goes.
    try #require(store as? SQLiteStore).close()
    let reopened = try SQLiteStore(path: h.storePath)
    let resolved = try await reopened.stats().events
    let waiting = try await reopened.readJournal(limit: 20_000).count
    #expect(resolved + waiting == 12_800)
    try reopened.close()

    let again = try await Harness.start(acknowledge: .journaled, dir: h.dir)
    let store2 = try again.store
    #expect(try await Self.eventually { try await store2.readJournal(limit: 1).isEmpty })
    #expect(try await store2.stats().events == 12_800)
    #expect(try await store2.stats().profiles == 4)
    try await again.stop()
  }
}

extension Value {
  var intValue: Int? {
    if case .int(let i) = self { return Int(i) }
    return nil
  }
}
