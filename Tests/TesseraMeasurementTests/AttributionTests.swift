import Foundation
import TesseraCompiler
import TesseraMeasurement
import TesseraModel
import TesseraRuntime
import TesseraStore
import Testing

/// Reports over hand-built logs, with every figure computed by hand.
@Suite struct AttributionTests {
  typealias F = Fixture

  /// One person on a laptop and a phone: an email click and a direct visit on the laptop, an identify on
  /// each device, the purchase on the phone.
  static let twoDevices = [
    F.event("l1", "page", anon: "L", at: F.day(1, "10:00"), medium: "email", campaign: "june"),
    F.event("l2", "page", anon: "L", at: F.day(1, "12:00")),
    F.event("p1", "identify", anon: "P", user: "u1", at: F.day(1, "13:00")),
    F.event("l3", "identify", anon: "L", user: "u1", at: F.day(1, "13:30")),
    F.event("p2", "track", "Order Completed", anon: "P", user: "u1", at: F.day(1, "14:00"), revenue: 100),
  ]

  @Test func onePersonOnTwoDevicesIsOneConvertingPerson() async throws {
    let f = try await Fixture(events: Self.twoDevices)
    defer { f.remove() }
    let r = try await f.report("credit", by: [.people, .devices, .sessions])
    let people = try #require(r.attribution(.people))
    #expect(people.units == 1)
    #expect(people.conversions == 1)
    #expect(people.convertingUnits == 1)
    #expect(people.unattributed == 0)
    #expect(people.value == 100)
    #expect(people.paths.map(\.text) == ["email → direct"])
    #expect(people.paths.first?.units == 1)
    #expect(people.paths.first?.value == 100)
    #expect(people.credit(.first_touch, "email") == Credit(key: "email", conversions: 1, value: 100))
    #expect(people.credit(.last_touch, "direct") == Credit(key: "direct", conversions: 1, value: 100))
    #expect(people.credit(.last_touch, "email") == nil)
    #expect(people.credit(.last_non_direct, "email") == Credit(key: "email", conversions: 1, value: 100))
    #expect(people.credit(.linear, "email")?.conversions == 0.5)
    #expect(people.credit(.position_based, "direct")?.conversions == 0.5)

    // By device: the laptop touched but did not buy; the phone bought with no touch.
    let devices = try #require(r.attribution(.devices))
    #expect(devices.units == 2)
    #expect(devices.conversions == 1)
    #expect(devices.unattributed == 1)
    #expect(devices.unattributedValue == 100)
    #expect(devices.models.allSatisfy { $0.credits.isEmpty })
    #expect(devices.paths.map(\.text) == ["(no touch)"])

    // Sessions (30 minutes): the laptop's 10:00 and 12:00 visits are two sessions, the purchase a third.
    let sessions = try #require(r.attribution(.sessions))
    #expect(sessions.units == 3)
    #expect(sessions.unattributed == 1)
  }

  @Test func everyModelOnAThreeTouchPathAndTheLookBackEdge() async throws {
    let t = F.day(20, "12:00")
    let f = try await Fixture(events: [
      // One microsecond before the 14-day look-back: left out.
      F.event(
        "t0", "page", anon: "A", at: Timestamp(microseconds: t.microseconds - 14 * 86_400_000_000 - 1),
        medium: "cpc", campaign: "old"),
      // Exactly 14 days before: in.
      F.event(
        "t1", "page", anon: "A", at: Timestamp(microseconds: t.microseconds - 14 * 86_400_000_000), medium: "email",
        campaign: "spring"),
      F.event("t2", "page", anon: "A", at: F.day(13, "12:00"), referrer: "https://www.Facebook.com/x"),
      F.event("t3", "page", anon: "A", at: t),
      F.event("c1", "track", "Order Completed", anon: "A", at: t, revenue: 70),
    ])
    defer { f.remove() }
    let r = try await f.report("credit")
    let a = try #require(r.attribution(.people))
    #expect(a.conversions == 1)
    #expect(a.paths.map(\.text) == ["email → facebook.com → direct"])
    func credit(_ m: AttributionModel) -> [String: Double] {
      Dictionary(
        uniqueKeysWithValues: (a.models.first { $0.model == m }?.credits ?? []).map { ($0.key, $0.conversions) })
    }
    #expect(credit(.first_touch) == ["email": 1])
    #expect(credit(.last_touch) == ["direct": 1])
    #expect(credit(.last_non_direct) == ["facebook.com": 1])
    let linear = credit(.linear)
    #expect(linear.keys.sorted() == ["direct", "email", "facebook.com"])
    #expect(linear.values.allSatisfy { abs($0 - 1.0 / 3) < 1e-12 })
    let pb = credit(.position_based)
    #expect(abs((pb["email"] ?? 0) - 0.4) < 1e-12)
    #expect(abs((pb["facebook.com"] ?? 0) - 0.2) < 1e-12)
    #expect(abs((pb["direct"] ?? 0) - 0.4) < 1e-12)
    // Half-life 7 days: touches 14, 7 and 0 days old weigh 1/4, 1/2 and 1, so 1/7, 2/7 and 4/7.
    let td = credit(.time_decay)
    #expect(abs((td["email"] ?? 0) - 1.0 / 7) < 1e-12)
    #expect(abs((td["facebook.com"] ?? 0) - 2.0 / 7) < 1e-12)
    #expect(abs((td["direct"] ?? 0) - 4.0 / 7) < 1e-12)
    let tdValue = a.models.first { $0.model == .time_decay }?.credits.first { $0.key == "direct" }?.value ?? 0
    #expect(abs(tdValue - 40) < 1e-9)

    // The log read in pages of one to three events (each next page read while the last is evaluated) gives the
    // same reports, for every counting unit.
    for size in [1, 2, 3] {
      for name in ["credit", "by_campaign"] {
        let paged = try await f.report(name, by: [.people, .devices, .sessions], pageSize: size)
        #expect(paged.json == (try await f.report(name, by: [.people, .devices, .sessions])).json, "\(name), \(size)")
        #expect(paged.events == 5)
      }
    }

    // By campaign: the touches without a campaign are `(none)`.
    let c = try #require(try await f.report("by_campaign").attribution(.people))
    #expect(c.credit(.first_touch, "spring")?.conversions == 1)
    #expect(c.credit(.last_touch, "(none)")?.conversions == 1)
    #expect(c.credit(.first_touch, "old") == nil)
  }

  @Test func aMergeAfterTheConversionChangesTheReportAndAnUnmergeChangesItBack() async throws {
    let before = [
      F.event("l1", "page", anon: "L", at: F.day(2, "10:00"), medium: "email"),
      F.event("p1", "track", "Order Completed", anon: "P", user: "u1", at: F.day(2, "11:00"), revenue: 30),
    ]
    let f = try await Fixture(events: before)
    defer { f.remove() }
    var a = try #require(try await f.report("credit").attribution(.people))
    #expect(a.units == 2)
    #expect(a.unattributed == 1)

    // The laptop logs in after the purchase: its earlier touch now belongs to the buyer.
    try await f.run(before + [F.event("l2", "identify", anon: "L", user: "u1", at: F.day(2, "12:00"))])
    a = try #require(try await f.report("credit").attribution(.people))
    #expect(a.units == 1)
    #expect(a.unattributed == 0)
    #expect(a.credit(.first_touch, "email") == Credit(key: "email", conversions: 1, value: 30))

    // Unmerge: the pair that evidenced the merge no longer links, the store is re-resolved.
    let merges = try await f.store.merges(
      involving: try #require(await f.store.profile(for: Identifier("user_id", "u1"))))
    let m = try #require(merges.last)
    var batch = CommitBatch()
    batch.separations = [Separation(m.evidence[0], m.evidence[1])]
    try await f.store.commit(batch)
    _ = try await ReplayReport.apply(plan: try f.plan, store: f.store, now: F.day(30, "00:00"))
    a = try #require(try await f.report("credit").attribution(.people))
    #expect(a.units == 2)
    #expect(a.unattributed == 1)
  }

  @Test func anErasedPersonDisappears() async throws {
    let f = try await Fixture(
      events: Self.twoDevices + [
        F.event("o1", "page", anon: "O", at: F.day(3, "09:00"), medium: "cpc"),
        F.event("o2", "track", "Order Completed", anon: "O", at: F.day(3, "09:30"), revenue: 5),
      ])
    defer { f.remove() }
    var a = try #require(try await f.report("credit").attribution(.people))
    #expect(a.units == 2)
    #expect(a.conversions == 2)
    let person = try #require(await f.store.profile(for: Identifier("user_id", "u1")))
    _ = try await Deletion.erase(person, in: f.store, config: try f.plan.config, at: F.day(30, "00:00"))
    a = try #require(try await f.report("credit").attribution(.people))
    #expect(a.units == 1)
    #expect(a.conversions == 1)
    #expect(a.value == 5)
    #expect(a.credit(.last_touch, "cpc")?.conversions == 1)
    #expect(a.credit(.first_touch, "email") == nil)
  }

  /// A report maps a logged record again only for what it reads of it (name, type, properties, context): the
  /// event's time and identifiers are the log's. A mapping whose timestamp and identifier fields changed since
  /// the events were logged still reads them all, and gives the same report.
  @Test func theLoggedTimeAndIdentifiersStandWhateverTheMappingSaysNow() async throws {
    let f = try await Fixture(events: Self.twoDevices)
    defer { f.remove() }
    let before = try await f.report("credit")
    // Fields the logged records do not have: mapped again in full, no event would have a time or an identifier.
    let changed = Fixture.pipeline.replacingOccurrences(of: "timestamp: ts", with: "timestamp: sent_at")
      .replacingOccurrences(of: "anonymous_id: anon", with: "anonymous_id: device")
      .replacingOccurrences(of: "user_id: user", with: "user_id: uid")
    #expect(changed.contains("sent_at") && changed.contains("device") && changed.contains("uid"))
    try changed.write(toFile: f.dir + "/pipeline.yaml", atomically: true, encoding: .utf8)
    let after = try await f.report("credit")
    #expect(after.unreadable == 0)
    let people = try #require(after.attribution(.people))
    #expect(people.conversions == 1)
    #expect(people.value == 100)
    #expect(people.paths.map(\.text) == ["email → direct"])
    #expect(JSON.encode(after.json) == JSON.encode(before.json))
  }

  @Test func fromAndToBoundTheConversionsNotTheTouches() async throws {
    let f = try await Fixture(events: [
      F.event("t1", "page", anon: "A", at: F.day(1, "10:00"), medium: "email"),
      F.event("c1", "track", "Order Completed", anon: "A", at: F.day(2, "10:00"), revenue: 1),
      F.event("c2", "track", "Order Completed", anon: "A", at: F.day(3, "10:00"), revenue: 2),
    ])
    defer { f.remove() }
    let a = try #require(
      try await f.report("credit", from: F.day(2, "00:00"), to: F.day(3, "10:00")).attribution(.people))
    #expect(a.conversions == 1)
    #expect(a.value == 1)
    #expect(a.credit(.first_touch, "email")?.conversions == 1)
  }
}
