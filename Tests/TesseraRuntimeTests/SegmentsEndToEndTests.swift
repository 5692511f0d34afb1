import Foundation
import TesseraModel
import TesseraRuntime
import TesseraStore
import Testing

/// Computed traits and segments wired into `tessera run`: the example pipeline's audiences as of 2026-06-30,
/// stored memberships, and no duplicate `entered` after a restart.
@Suite("End to end: computed traits and segments")
struct SegmentsEndToEndTests {
  enum Expect {
    /// The members examples/README.md lists, by `user_id` (visitor C by its anonymous id).
    static let members: [String: [String]] = [
      "high_value": ["user_id:100101", "user_id:100102", "user_id:100120", "user_id:100123", "user_id:100126"],
      "vip_newsletter": ["user_id:100101", "user_id:100120", "user_id:100123", "user_id:100126"],
      "lapsed": ["user_id:100114", "user_id:100117", "user_id:100121", "user_id:100122"],
      "browsers": ["anonymous_id:" + visitorC, "user_id:100115"],
    ]
    static let visitorC = "18b50c88-54ef-553a-84c4-9f481b69c3ef"

    /// A profile named by its `user_id`, else its first anonymous id, else its id.
    static func name(_ store: any Store, _ p: ProfileID) async throws -> String {
      let ids = try await store.identifiers(of: p).map(\.0)
      if let u = ids.first(where: { $0.kind == "user_id" }) { return "user_id:\(u.value)" }
      if let a = ids.first(where: { $0.kind == "anonymous_id" }) { return "anonymous_id:\(a.value)" }
      return "\(p)"
    }

    /// Every segment's members as names, sorted.
    static func members(of store: any Store) async throws -> [String: [String]] {
      var out: [String: [String]] = [:]
      for segment in members.keys {
        var names: [String] = []
        for m in try await store.members(of: segment) { names.append(try await name(store, m.profile)) }
        out[segment] = names.sorted()
      }
      return out
    }

    /// Every logged change of every example segment.
    static func changes(of store: any Store) async throws -> [SegmentChangeRecord] {
      var out: [SegmentChangeRecord] = []
      for segment in members.keys.sorted() { out += try await store.segmentChanges(of: segment, limit: 10_000) }
      return out
    }
  }

  @Test("the example pipeline gives the hand-checked members", arguments: E2E.StoreKind.allCases)
  func exampleMembers(kind: E2E.StoreKind) async throws {
    let dir = try E2E.TempDir()
    defer { dir.remove() }
    let store = try E2E.makeStore(kind, in: dir)
    let plan = try E2E.compile(E2E.retailPipeline)
    _ = try await E2E.run(plan, store)
    let members = try await Expect.members(of: store)
    for (segment, expected) in Expect.members { #expect(members[segment] == expected, "\(segment)") }
    let counts = try await store.segmentCounts()
    #expect(counts == Expect.members.mapValues(\.count))
    // Every membership was announced once, with when and why.
    let changes = try await Expect.changes(of: store)
    let entered = changes.filter(\.entered)
    #expect(entered.count - changes.filter { !$0.entered }.count == Expect.members.values.map(\.count).reduce(0, +))
    for c in entered { #expect(c.at == E2E.now, "\(c)") }
    // Ada's computed traits, as the README's table gives them.
    let ada = try await E2E.profile(store, "user_id", "100101")
    let computed = Dictionary(
      try await store.computed(of: ada).map { ($0.trait, $0.value) }, uniquingKeysWith: { a, _ in a })
    #expect(computed["orders_90d"] == .int(2))
    #expect(computed["pages_30d"] == .int(3))
    if case .double(let revenue)? = computed["revenue_total"] {
      #expect(abs(revenue - 647.30) < 1e-9)
    } else {
      Issue.record("revenue_total: \(String(describing: computed["revenue_total"]))")
    }
    let adaSegments = try await store.memberships(of: ada).map(\.segment)
    #expect(adaSegments == ["high_value", "vip_newsletter"])
    // Near misses: Dmitri (one order of 640), Pablo (352.50), Amelia (a late March order outside the window).
    for userID in ["100104", "100118", "100129"] {
      let p = try await E2E.profile(store, "user_id", userID)
      #expect(try await store.memberships(of: p).isEmpty, "\(userID)")
    }
  }

  @Test("a second run adds no segment changes and keeps the members", arguments: E2E.StoreKind.allCases)
  func secondRun(kind: E2E.StoreKind) async throws {
    let dir = try E2E.TempDir()
    defer { dir.remove() }
    let store = try E2E.makeStore(kind, in: dir)
    let plan = try E2E.compile(E2E.retailPipeline)
    _ = try await E2E.run(plan, store)
    let before = try await Expect.changes(of: store)
    let computedBefore = try await store.loadComputed()
    _ = try await E2E.run(plan, store)
    let after = try await Expect.changes(of: store)
    #expect(after.count == before.count)
    #expect(try await store.loadComputed() == computedBefore)
    let members = try await Expect.members(of: store)
    for (segment, expected) in Expect.members { #expect(members[segment] == expected, "\(segment)") }
  }

  @Test("a later clock: windows expire at the end of the run and members exit")
  func laterClock() async throws {
    let dir = try E2E.TempDir()
    defer { dir.remove() }
    let store = try E2E.makeStore(.sqlite, in: dir)
    let plan = try E2E.compile(E2E.retailPipeline)
    _ = try await E2E.run(plan, store)
    // 2026-10-01: every order is older than 90 days and every page view older than 30.
    var runner = E2E.runner(plan, store)
    runner.now = E2E.ts("2026-10-01T00:00:00Z")
    _ = try await runner.run()
    #expect(try await store.members(of: "high_value").isEmpty)
    #expect(try await store.members(of: "vip_newsletter").isEmpty)
    #expect(try await store.members(of: "browsers").isEmpty)
    // Everyone with revenue has now lapsed: the four before, and every customer who ordered.
    let lapsed = try await store.members(of: "lapsed")
    #expect(lapsed.count > 4)
    let exits = try await store.segmentChanges(of: "high_value", limit: 100).filter { !$0.entered }
    #expect(exits.count == 5)
    for e in exits { #expect(e.at == E2E.ts("2026-10-01T00:00:00Z")) }
  }
}

/// `tessera segments` and `tessera segments members` over a store `tessera run --now` filled.
@Suite(
  "End to end: tessera segments",
  .enabled(if: E2E.CLI.binary != nil, "no built `tessera`; run `swift build --build-tests` first"))
struct SegmentsCLITests {
  typealias CLI = E2E.CLI

  @Test("segments lists counts; members lists profiles as text, json and csv")
  func segments() async throws {
    let dir = try E2E.TempDir()
    defer { dir.remove() }
    let store = dir.file("x.sqlite")
    let run = try await CLI.tessera(["run", "pipelines/retail.yaml", "--store", store, "--now", "2026-06-30T00:00:00Z"])
    try #require(run.status == 0, "\(run.stderr)")

    let list = try await CLI.tessera(["segments", "--store", store])
    #expect(list.status == 0, "\(list.stderr)")
    #expect(
      list.stdout.split(separator: "\n").map { $0.split(separator: " ").joined(separator: " ") } == [
        "segment members", "browsers 2", "high_value 5", "lapsed 4", "vip_newsletter 4",
      ], "\(list.stdout)")

    let json = try await CLI.tessera([
      "segments", "--store", store, "--pipeline", "pipelines/retail.yaml", "--format", "json",
    ])
    #expect(json.status == 0, "\(json.stderr)")
    let object = try JSONSerialization.jsonObject(with: Data(json.stdout.utf8)) as? [String: Any]
    let segments = (object?["segments"] as? [[String: Any]]) ?? []
    #expect(segments.map { $0["name"] as? String ?? "" } == ["high_value", "lapsed", "browsers", "vip_newsletter"])
    #expect(segments.map { $0["members"] as? Int ?? -1 } == [5, 4, 2, 4])

    let csv = try await CLI.tessera(["segments", "members", "vip_newsletter", "--store", store, "--format", "csv"])
    #expect(csv.status == 0, "\(csv.stderr)")
    let rows = csv.stdout.split(separator: "\n").map { $0.split(separator: ",", omittingEmptySubsequences: false) }
    #expect(rows.first == ["profile", "user_id", "email", "since"])
    #expect(rows.dropFirst().map { String($0[1]) } == ["100101", "100120", "100123", "100126"])
    #expect(rows.dropFirst().allSatisfy { $0[3] == "2026-06-30T00:00:00Z" && $0[2].contains("@") })

    let members = try await CLI.tessera(["segments", "members", "browsers", "--store", store, "--format", "json"])
    #expect(members.status == 0, "\(members.stderr)")
    let m = try JSONSerialization.jsonObject(with: Data(members.stdout.utf8)) as? [String: Any]
    let list2 = (m?["members"] as? [[String: Any]]) ?? []
    #expect(list2.count == 2)
    #expect(list2.compactMap { $0["user_id"] as? String } == ["100115"])

    let text = try await CLI.tessera(["segments", "members", "high_value", "--store", store])
    #expect(text.stdout.hasPrefix("high_value: 5 members\n"), "\(text.stdout)")

    let unknown = try await CLI.tessera([
      "segments", "members", "nope", "--store", store, "--pipeline", "pipelines/retail.yaml",
    ])
    #expect(unknown.status != 0)

    let profile = try await CLI.tessera(["profile", "user_id:100101", "--store", store, "--format", "json"])
    #expect(profile.status == 0, "\(profile.stderr)")
    let p = try JSONSerialization.jsonObject(with: Data(profile.stdout.utf8)) as? [String: Any]
    let inSegments = (p?["segments"] as? [[String: Any]])?.compactMap { $0["segment"] as? String }
    #expect(inSegments == ["high_value", "vip_newsletter"])
    #expect(((p?["computed"] as? [String: Any])?["orders_90d"] as? Int) == 2)

    // A second run announces nothing new.
    let again = try await CLI.tessera([
      "run", "pipelines/retail.yaml", "--store", store, "--now", "2026-06-30T00:00:00Z",
    ])
    #expect(again.status == 0, "\(again.stderr)")
    let after = try await CLI.tessera(["segments", "--store", store])
    #expect(after.stdout == list.stdout)
  }
}
