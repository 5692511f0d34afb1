import TesseraIdentity
import TesseraModel
import TesseraStore

/// The behaviour every `Store` shows, checked through the protocol only.
///
/// Each check gets a fresh store from `make`, commits batches and compares what the queries return with what
/// `MemoryStore` (the reference) returns by construction. A mismatch becomes one message naming the check,
/// the query, what was expected and what came back; an empty list means the store passes.
public enum StoreSuite {
  public typealias Make = () async throws -> any Store

  /// Every check, by name.
  public static var checks: [(String, (any Store, inout Failures) async throws -> Void)] {
    [
      ("events, identifiers and traits read back", readBack),
      ("duplicate events are ignored", duplicates),
      ("the log keeps records as received, and mapped fields of events without one", records),
      ("existingEvents over many keys", manyKeys),
      ("logRows read the log's columns a page at a time, identifiers and body when asked", logRows),
      ("a merge moves identifiers, traits and events", merge),
      ("chains of merges resolve to the live profile", chains),
      ("merges of profiles the same transaction created, or gave again", mergesOfNewProfiles),
      ("aliases: each merged profile and the one it went into, as loadIdentity's; gone when erased", aliases),
      ("conflicts are kept for both profiles", conflicts),
      ("released identifiers disappear; last_seen keeps the newest", released),
      ("trait upserts replace", traitUpsert),
      ("trait policies are kept with the trait rows they explain, and replayed", traitPolicies),
      ("loadIdentity rebuilds the same graph", identityRoundTrip),
      ("values round-trip exactly", valueRoundTrip),
      ("rejected records are kept in order", rejectedRecords),
      ("stats count what is stored", statsCounts),
      ("an empty batch changes nothing", emptyBatch),
      ("computed-trait states upsert, delete and read back", computedStates),
      ("segment changes keep memberships and a log", segmentMemberships),
      ("a merge drops the absorbed profile's computed states and memberships", mergeCleansSegments),
      ("match links are logged with ids and change status", matchLinks),
      ("replacing the derived state moves events, identifiers and traits, keeps aliases", replaceDerived),
      ("erasing a person removes the family and everything about it, and suppresses", erasePerson),
      ("device-signal sightings are replaced whole, merged away, pruned, erased and replayed", sightings),
      ("pages: timeline, members, links by probability, histogram", pages),
    ] + outboxChecks + journalChecks
  }

  /// Runs every check, each on a fresh store; returns the failures (empty when the store passes).
  public static func run(_ make: Make) async throws -> [String] {
    var failures = Failures()
    for (name, check) in checks {
      failures.check = name
      let store = try await make()
      do { try await check(store, &failures) } catch { failures.fail("threw \(error)") }
    }
    return failures.messages
  }

  /// Collects mismatches.
  public struct Failures: Sendable {
    public internal(set) var messages: [String] = []
    var check = ""
    public init() {}

    public mutating func fail(_ what: String) { messages.append("[\(check)] \(what)") }

    public mutating func expect<T: Equatable>(_ actual: T, _ expected: T, _ what: String) {
      if actual != expected { fail("\(what): expected \(expected), got \(actual)") }
    }

    /// Lists: names the first element that differs instead of printing both lists whole.
    public mutating func expect<T: Equatable>(_ actual: [T], _ expected: [T], _ what: String) {
      if actual == expected { return }
      if let i = (0..<min(actual.count, expected.count)).first(where: { actual[$0] != expected[$0] }) {
        fail("\(what): element \(i) of \(expected.count): expected \(expected[i]), got \(actual[i])")
      } else {
        fail("\(what): expected \(expected.count) elements \(expected), got \(actual.count) \(actual)")
      }
    }
  }

  // MARK: - Fixtures

  public static func t(_ seconds: Int64) -> Timestamp {
    Timestamp(microseconds: 1_700_000_000_000_000 + seconds * 1_000_000)
  }
  public static func p(_ n: Int64) -> ProfileID { ProfileID(n) }

  public static func event(
    _ id: String, source: String = "web", type: String = "track", name: String? = "Clicked", at: Timestamp,
    ids: [Identifier] = [], traits: [String: Value] = [:], properties: [String: Value] = [:],
    context: [String: Value] = [:], profile: ProfileID
  ) -> StoredEvent {
    StoredEvent(
      event: Event(
        id: id, source: source, type: type, name: name, timestamp: at, receivedAt: at + TimeSpan(microseconds: 1500),
        identifiers: ids, traits: traits, properties: properties, context: context),
      profile: profile)
  }

  public static func trait(
    _ profile: ProfileID, _ name: String, _ value: Value, event: String = "e1", at: Timestamp = t(0),
    state: Value = .null
  ) -> TraitRecord {
    TraitRecord(profile: profile, trait: name, value: value, source: "web", eventID: event, timestamp: at, state: state)
  }

  public static func conflict(
    kept: ProfileID, other: ProfileID?, kind: String, reason: String = "limit", identifiers: [Identifier],
    eventID: String, at: Timestamp
  ) -> ConflictRecord {
    ConflictRecord(
      kept: kept, other: other, kind: kind, reason: reason, identifiers: identifiers, eventID: eventID, at: at)
  }

  static func render(_ ids: [(Identifier, Timestamp)]) -> [String] { ids.map { "\($0.0)@\($0.1.microseconds)" } }

  static func keys(_ events: [StoredEvent]) -> [String] { events.map { "\($0.event.source)/\($0.event.id)" } }

  static let email = Identifier("email", "ada@example.com")
  static let email2 = Identifier("email", "grace@example.com")
  static let user1 = Identifier("user_id", "u1")
  static let user2 = Identifier("user_id", "u2")
  static let anon = Identifier("anonymous_id", "a-1")
  static let device = Identifier("device", "d-1")

  /// A store's whole observable state, as text: equal renderings mean equal stores. Profiles 1...`upTo` are
  /// queried one by one.
  public static func snapshot(of store: any Store, upTo: Int64 = 10) async throws -> [String] {
    var out: [String] = []
    let s = try await store.stats()
    out.append(
      "stats events=\(s.events) profiles=\(s.profiles) identifiers=\(s.identifiers) merges=\(s.merges) "
        + "conflicts=\(s.conflicts) rejected=\(s.rejected)")
    let snap = try await store.loadIdentity()
    for (p, ids) in snap.profiles { out.append("identity \(p): \(render(ids))") }
    for a in snap.aliases { out.append("alias \(a.absorbed) -> \(a.survivor)") }
    for tr in try await store.loadTraits() { out.append("trait \(describe(tr))") }
    for n in 1...max(1, upTo) {
      let id = p(n)
      out.append("canonical \(id) = \(String(describing: try await store.canonical(id)))")
      out.append("identifiers \(id) = \(render(try await store.identifiers(of: id)))")
      out.append("traits \(id) = \(try await store.traits(of: id).map(describe))")
      out.append("merges \(id) = \(try await store.merges(involving: id))")
      out.append("conflicts \(id) = \(try await store.conflicts(involving: id))")
      out.append("events \(id) = \(try await store.events(of: id, limit: 1000).map(describe))")
    }
    out.append("rejected = \(try await store.rejected(limit: 1000))")
    for c in try await store.loadComputed() { out.append("computed \(describe(c))") }
    for m in try await store.loadMemberships() { out.append("membership \(describe(m))") }
    return out
  }

  static func describe(_ tr: TraitRecord) -> String {
    "\(tr.profile).\(tr.trait)=\(exact(tr.value)) from \(tr.source)/\(tr.eventID)@\(tr.timestamp.microseconds) "
      + "state \(exact(tr.state))"
  }

  static func describe(_ e: StoredEvent) -> String {
    let v = e.event
    return "\(v.source)/\(v.id) \(v.type) \(v.name ?? "-") @\(v.timestamp.microseconds)/\(v.receivedAt.microseconds) "
      + "\(e.profile) ids=\(v.identifiers) traits=\(exact(.map(v.traits))) props=\(exact(.map(v.properties))) "
      + "ctx=\(exact(.map(v.context)))"
  }

  /// A rendering that tells every value apart: types, -0.0, NaN, and map keys in order.
  public static func exact(_ v: Value) -> String {
    switch v {
    case .null: return "null"
    case .bool(let b): return "bool(\(b))"
    case .int(let i): return "int(\(i))"
    case .double(let d): return "double(\(d.sign == .minus ? "-" : "+")\(d.magnitude))"
    case .string(let s): return "string(\(s.debugDescription))"
    case .timestamp(let ts): return "timestamp(\(ts.microseconds))"
    case .duration(let d): return "duration(\(d.microseconds))"
    case .list(let l): return "[" + l.map(exact).joined(separator: ",") + "]"
    case .map(let m):
      return "{" + m.keys.sorted().map { "\($0.debugDescription):\(exact(m[$0] ?? .null))" }.joined(separator: ",")
        + "}"
    }
  }

  // MARK: - Checks

  static func readBack(_ store: any Store, _ f: inout Failures) async throws {
    var b = CommitBatch()
    b.newProfiles = [NewProfile(p(1), createdAt: t(0)), NewProfile(p(2), createdAt: t(1))]
    let e1 = event(
      "e1", at: t(10), ids: [email, anon], traits: ["plan": .string("pro")], properties: ["price": .double(9.5)],
      context: ["ip": .string("10.0.0.1")], profile: p(1))
    let e2 = event("e2", type: "identify", name: nil, at: t(20), ids: [email], profile: p(1))
    // Same timestamp as e2: newest first means (timestamp, id) descending, so "e3" before "e2".
    let e3 = event("e3", source: "app", type: "page", name: "Home", at: t(20), profile: p(1))
    let e4 = event("e4", at: t(5), ids: [user2], profile: p(2))
    b.events = [e1, e3, e2, e4]  // e3 stored first: the tie must be broken by id, not by arrival
    b.identifiers = [
      IdentifierRow(email, of: p(1), seen: t(20)), IdentifierRow(anon, of: p(1), seen: t(10)),
      IdentifierRow(user2, of: p(2), seen: t(5)),
    ]
    b.traits = [trait(p(1), "plan", .string("pro")), trait(p(1), "age", .int(36)), trait(p(2), "plan", .null)]
    try await store.commit(b)

    f.expect(try await store.events(of: p(1), limit: 10).map(describe), [e3, e2, e1].map(describe), "events(of: 1)")
    f.expect(keys(try await store.events(of: p(1), limit: 2)), keys([e3, e2]), "events(of: 1, limit: 2)")
    f.expect(keys(try await store.events(of: p(1), limit: 0)), [], "events(of: 1, limit: 0)")
    f.expect(keys(try await store.events(of: p(2), limit: 10)), keys([e4]), "events(of: 2)")
    f.expect(keys(try await store.events(of: p(9), limit: 10)), [], "events(of: unknown)")
    f.expect(
      render(try await store.identifiers(of: p(1))), render([(anon, t(10)), (email, t(20))]), "identifiers(of: 1)")
    f.expect(render(try await store.identifiers(of: p(9))), [], "identifiers(of: unknown)")
    f.expect(
      try await store.traits(of: p(1)).map(describe),
      [trait(p(1), "age", .int(36)), trait(p(1), "plan", .string("pro"))].map(describe), "traits(of: 1)")
    f.expect(
      try await store.traits(of: p(2)).map(describe), [trait(p(2), "plan", .null)].map(describe), "traits(of: 2)")
    f.expect(try await store.profile(for: email), p(1), "profile(for: email)")
    f.expect(try await store.profile(for: user2), p(2), "profile(for: user2)")
    f.expect(try await store.profile(for: Identifier("email", "nobody@example.com")), nil, "profile(for: unknown)")
    f.expect(try await store.canonical(p(1)), p(1), "canonical(1)")
    f.expect(try await store.canonical(p(99)), nil, "canonical(unknown)")
    f.expect(try await store.merges(involving: p(1)), [], "merges(involving: 1)")
    f.expect(try await store.conflicts(involving: p(1)), [], "conflicts(involving: 1)")
  }

  /// The log keeps an event's record as received, byte for byte, with its identifiers apart (`EventLogFormat`);
  /// an event without a record keeps its mapped fields. Both read back in write order and by profile.
  static func records(_ store: any Store, _ f: inout Failures) async throws {
    let line = #"{"messageId":"r1","type":"track","event":"Order Completed","properties":{"price":9.5}}"#
    // The record is a slice of a larger buffer (a batch of lines), as the readers hand it over.
    let buffer = Array(("junk\n" + line + "\nmore").utf8)
    var logged = event(
      "r1", at: t(1), ids: [email, anon], properties: ["price": .double(9.5)], profile: p(1))
    logged.event.record = RecordBytes(buffer, 5..<(5 + line.utf8.count))
    let plain = event(
      "r2", at: t(2), ids: [email], traits: ["plan": .string("pro")], context: ["ip": .string("203.0.113.9")],
      profile: p(1))
    var b = CommitBatch()
    b.newProfiles = [NewProfile(p(1), createdAt: t(0))]
    b.events = [logged, plain]
    try await store.commit(b)
    let back = try await store.loadEvents()
    f.expect(back.map(\.event.id), ["r1", "r2"], "loadEvents order")
    f.expect(back.first?.event.record?.description, line, "the record as received")
    f.expect(back.first?.event.identifiers, [email, anon], "the record's identifiers")
    f.expect(back.first?.event.properties, [:], "a record's fields are the mapping's to make again")
    f.expect(back.first?.event.type, "track", "a record's columns")
    f.expect(back.last?.event.record, nil, "no record")
    f.expect(back.last?.event.traits, ["plan": .string("pro")], "mapped fields kept")
    f.expect(back.last?.event.context, ["ip": .string("203.0.113.9")], "mapped fields kept")
    let mine = try await store.events(of: p(1), limit: 10)
    f.expect(mine.map(\.event.id), ["r2", "r1"], "events(of:) newest first")
    f.expect(mine.last?.event.record?.description, line, "events(of:) record")
  }

  /// The log as columns (`logRows`): every page in write order with the columns `eventPage` gives; the
  /// identifiers and the body only when asked for, and then the same event as `eventPage` builds.
  static func logRows(_ store: any Store, _ f: inout Failures) async throws {
    var b = CommitBatch()
    b.newProfiles = [NewProfile(p(1), createdAt: t(0)), NewProfile(p(2), createdAt: t(0))]
    b.events = (0..<9).map { n in
      // Every third event keeps its record as received; the others their mapped fields.
      var e = event(
        "r\(n)", type: n % 3 == 0 ? "page" : "track", name: n % 3 == 0 ? nil : "Step \(n)", at: t(Int64(9 - n)),
        ids: n % 2 == 0 ? [email, anon] : [anon], properties: ["n": .int(Int64(n))], profile: p(1 + Int64(n % 2)))
      let line = #"{"messageId":"r\#(n)","type":"page","context":{"page":{"path":"/"}}}"#
      if n % 3 == 0 { e.event.record = RecordBytes(Array(line.utf8)) }
      return e
    }
    try await store.commit(b)
    let events = try await store.loadEvents()
    for parts: LogRow.Parts in [[], [.identifiers], [.body], [.identifiers, .body]] {
      // Ranges of 4 positions up to the end, read at once, and one past the end.
      let end = try await store.logEnd()
      let pages = try await withThrowingTaskGroup(of: (Int64, [LogRow]).self) { group in
        for after in stride(from: Int64(0), through: end, by: 4) {
          group.addTask { (after, try await store.logRows(after: after, through: after + 4, parts: parts)) }
        }
        var out: [(Int64, [LogRow])] = []
        for try await page in group { out.append(page) }
        return out.sorted { $0.0 < $1.0 }.map(\.1)
      }
      let rows = pages.flatMap { $0 }
      let what = "logRows \(parts.rawValue)"
      f.expect(pages.map(\.count), [4, 4, 1], "\(what): 9 events in ranges of 4, none after the end")
      f.expect(rows.map { "\($0.source)/\($0.id)" }, keys(events), "\(what): the log in write order")
      f.expect(rows.map(\.type), events.map(\.event.type), "\(what): types")
      f.expect(rows.map(\.name), events.map(\.event.name), "\(what): names")
      f.expect(rows.map(\.timestamp), events.map(\.event.timestamp.microseconds), "\(what): times")
      f.expect(rows.map(\.receivedAt), events.map(\.event.receivedAt.microseconds), "\(what): reception")
      f.expect(rows.map(\.profile), events.map(\.profile), "\(what): profiles")
      f.expect(
        rows.map(\.format), events.map { EventLogFormat.format(of: $0.event) }, "\(what): formats")
      f.expect(rows.map { $0.body != nil }, Array(repeating: parts.contains(.body), count: 9), "\(what): body read")
      // Asked for, or in a mapped body read with it.
      let expectedIdentifiers = events.map { e in
        parts.isEmpty || parts == .body && e.event.record != nil ? [] : e.event.identifiers.map(\.description)
      }
      f.expect(
        try rows.map { try $0.decodedIdentifiers().map(\.description) }, expectedIdentifiers,
        "\(what): identifiers when asked (a mapped body holds them too)")
      if parts.contains(.body) {
        let built = try rows.map { try $0.stored() }
        if parts.contains(.identifiers) {
          f.expect(built, events, "\(what): the events eventPage gives")
        }
        f.expect(
          built.map { $0.event.record?.description }, events.map { $0.event.record?.description },
          "\(what): records as received")
        f.expect(built.map(\.event.properties), events.map(\.event.properties), "\(what): mapped fields")
      } else {
        f.expect(rows.compactMap { try? $0.event() }.count, 0, "\(what): no event without the body")
      }
    }
  }

  static func duplicates(_ store: any Store, _ f: inout Failures) async throws {
    var b = CommitBatch()
    b.newProfiles = [NewProfile(p(1), createdAt: t(0)), NewProfile(p(2), createdAt: t(0))]
    let original = event("m1", at: t(1), properties: ["n": .int(1)], profile: p(1))
    // The same (source, id) again in the same batch: the first one wins.
    b.events = [original, event("m1", at: t(2), properties: ["n": .int(2)], profile: p(2))]
    try await store.commit(b)
    f.expect(
      try await store.existingEvents([
        EventKey(source: "web", id: "m1"), EventKey(source: "app", id: "m1"), EventKey(source: "web", id: "m2"),
      ]), [EventKey(source: "web", id: "m1")], "existingEvents after the first commit")
    f.expect(try await store.existingEvents([]), [], "existingEvents([])")

    // The same id again in a later batch: ignored; from another source: a second event.
    var again = CommitBatch()
    again.events = [
      event("m1", type: "identify", at: t(3), properties: ["n": .int(3)], profile: p(2)),
      event("m1", source: "app", at: t(4), profile: p(2)),
    ]
    try await store.commit(again)
    f.expect(try await store.stats().events, 2, "stats.events")
    f.expect(try await store.events(of: p(1), limit: 10).map(describe), [describe(original)], "events(of: 1)")
    f.expect(keys(try await store.events(of: p(2), limit: 10)), ["app/m1"], "events(of: 2)")
    f.expect(
      try await store.existingEvents([EventKey(source: "web", id: "m1"), EventKey(source: "app", id: "m1")]),
      [EventKey(source: "web", id: "m1"), EventKey(source: "app", id: "m1")], "existingEvents after the second commit")
    // The whole log, in the order it was written (the duplicates left out).
    f.expect(keys(try await store.loadEvents()), ["web/m1", "app/m1"], "loadEvents")
  }

  static func manyKeys(_ store: any Store, _ f: inout Failures) async throws {
    var b = CommitBatch()
    b.newProfiles = [NewProfile(p(1), createdAt: t(0))]
    b.events = (0..<700).map { event("k\($0 * 2)", at: t(Int64($0)), profile: p(1)) }
    try await store.commit(b)
    // The log a page at a time: the same events in the same order as loadEvents, the last page saying so.
    var paged: [String] = []
    var after: Int64 = 0
    var pages = 0
    while pages < 10 {
      let page = try await store.eventPage(after: after, limit: 256)
      paged += keys(page.events)
      pages += 1
      guard let next = page.next else { break }
      after = next
    }
    f.expect(paged, keys(try await store.loadEvents()), "eventPage pages read the whole log in write order")
    f.expect(pages, 3, "eventPage: 700 events in pages of 256")
    // Every other key exists; odd sizes and repeats exercise any chunking.
    for count in [1, 255, 256, 257, 1001] {
      var asked = (0..<count).map { EventKey(source: "web", id: "k\($0)") }
      asked.append(contentsOf: asked.prefix(3))
      let expected = Set((0..<count).filter { $0 % 2 == 0 && $0 < 1400 }.map { EventKey(source: "web", id: "k\($0)") })
      let got = try await store.existingEvents(asked)
      f.expect(got.count, expected.count, "existingEvents of \(count) keys: count")
      f.expect(got == expected, true, "existingEvents of \(count) keys: the set")
    }
  }

  /// Profile 1 (email, user1, traits plan and age) and profile 2 (email2, device, traits plan and city), with
  /// an identifier both hold.
  public static func twoProfiles() -> CommitBatch {
    var b = CommitBatch()
    b.newProfiles = [NewProfile(p(1), createdAt: t(0)), NewProfile(p(2), createdAt: t(1))]
    b.events = [
      event("a1", at: t(10), ids: [email, user1], profile: p(1)),
      event("b1", at: t(11), ids: [email2, device], profile: p(2)),
      event("b2", at: t(30), ids: [email2], profile: p(2)),
    ]
    let shared = Identifier("phone", "+15550000")
    b.identifiers = [
      IdentifierRow(email, of: p(1), seen: t(10)), IdentifierRow(user1, of: p(1), seen: t(10)),
      IdentifierRow(shared, of: p(1), seen: t(12)),
      IdentifierRow(email2, of: p(2), seen: t(30)), IdentifierRow(device, of: p(2), seen: t(11)),
      IdentifierRow(shared, of: p(2), seen: t(25)),
    ]
    b.traits = [
      trait(p(1), "plan", .string("gold")), trait(p(1), "age", .int(36)),
      trait(p(2), "plan", .string("silver"), event: "b1"), trait(p(2), "city", .string("Paris"), event: "b1"),
    ]
    return b
  }

  static func merge(_ store: any Store, _ f: inout Failures) async throws {
    try await store.commit(twoProfiles())
    let m = MergeRecord(
      survivor: p(1), absorbed: p(2), rule: "email", evidence: [email, email2], eventID: "c1", at: t(40), score: 1)
    var b = CommitBatch()
    b.events = [event("c1", at: t(40), ids: [email, email2], profile: p(1))]
    b.merges = [m]
    b.identifiers = [IdentifierRow(email, of: p(1), seen: t(40))]
    // The policy re-applied after the merge: only the upserted trait survives from the absorbed side.
    b.traits = [trait(p(1), "city", .string("Paris"), event: "b1")]
    try await store.commit(b)

    let ids = [
      (device, t(11)), (email, t(40)), (email2, t(30)), (Identifier("phone", "+15550000"), t(25)), (user1, t(10)),
    ]
    f.expect(render(try await store.identifiers(of: p(1))), render(ids), "identifiers(of: survivor)")
    f.expect(render(try await store.identifiers(of: p(2))), render(ids), "identifiers(of: absorbed)")
    let traits = [
      trait(p(1), "age", .int(36)), trait(p(1), "city", .string("Paris"), event: "b1"),
      trait(p(1), "plan", .string("gold")),
    ].map(describe)
    f.expect(try await store.traits(of: p(1)).map(describe), traits, "traits(of: survivor)")
    f.expect(try await store.traits(of: p(2)).map(describe), traits, "traits(of: absorbed)")
    f.expect(try await store.loadTraits().map(describe), traits, "loadTraits (no traits left on the absorbed id)")
    f.expect(try await store.canonical(p(2)), p(1), "canonical(absorbed)")
    f.expect(try await store.canonical(p(1)), p(1), "canonical(survivor)")
    f.expect(try await store.profile(for: email2), p(1), "profile(for: identifier of the absorbed)")
    f.expect(try await store.profile(for: device), p(1), "profile(for: device)")
    let events = try await store.events(of: p(1), limit: 10)
    f.expect(keys(events), ["web/c1", "web/b2", "web/b1", "web/a1"], "events(of: survivor)")
    f.expect(events.map(\.profile), [p(1), p(2), p(2), p(1)], "events keep the profile they arrived on")
    f.expect(keys(try await store.events(of: p(2), limit: 10)), keys(events), "events(of: absorbed)")
    f.expect(try await store.merges(involving: p(1)), [m], "merges(involving: survivor)")
    f.expect(try await store.merges(involving: p(2)), [m], "merges(involving: absorbed)")
    let s = try await store.stats()
    f.expect(s.profiles, 1, "stats.profiles")
    f.expect(s.merges, 1, "stats.merges")
    f.expect(s.identifiers, 5, "stats.identifiers (the shared identifier counted once)")
    let snap = try await store.loadIdentity()
    f.expect(snap.profiles.map { "\($0.0): \(render($0.1))" }, ["prf_1: \(render(ids))"], "loadIdentity profiles")
    f.expect(snap.aliases.map { "\($0.absorbed)->\($0.survivor)" }, ["prf_2->prf_1"], "loadIdentity aliases")
  }

  static func chains(_ store: any Store, _ f: inout Failures) async throws {
    // a → b in one batch, b → c in the next; then, in one batch, d → e and e → c applied in order.
    var b = CommitBatch()
    b.newProfiles = (Int64(1)...5).map { NewProfile(p($0), createdAt: t($0)) }
    b.events = (Int64(1)...5).map {
      event("e\($0)", at: t(10 * $0), ids: [Identifier("user_id", "u\($0)")], profile: p($0))
    }
    b.identifiers = (Int64(1)...5).map { IdentifierRow(Identifier("user_id", "u\($0)"), of: p($0), seen: t(10 * $0)) }
    try await store.commit(b)
    let m1 = MergeRecord(survivor: p(2), absorbed: p(3), rule: "r", evidence: [], eventID: "x1", at: t(100))
    let m2 = MergeRecord(survivor: p(1), absorbed: p(2), rule: "r", evidence: [], eventID: "x2", at: t(101))
    let m3 = MergeRecord(
      survivor: p(4), absorbed: p(5), rule: "r", evidence: [], eventID: "x3", at: t(102), score: 0.875)
    let m4 = MergeRecord(survivor: p(1), absorbed: p(4), rule: "r", evidence: [], eventID: "x3", at: t(102))
    var first = CommitBatch()
    first.merges = [m1]
    try await store.commit(first)
    var second = CommitBatch()
    second.merges = [m2]
    try await store.commit(second)
    f.expect(try await store.canonical(p(3)), p(1), "canonical(3) after 3→2, 2→1")
    f.expect(try await store.profile(for: Identifier("user_id", "u3")), p(1), "profile(for: u3)")
    f.expect(try await store.merges(involving: p(3)), [m1, m2], "merges(involving: 3)")
    f.expect(try await store.merges(involving: p(4)), [], "merges(involving: 4) before its merges")
    var third = CommitBatch()
    third.merges = [m3, m4]
    try await store.commit(third)
    for n in Int64(1)...5 { f.expect(try await store.canonical(p(n)), p(1), "canonical(\(n))") }
    f.expect(try await store.merges(involving: p(5)), [m1, m2, m3, m4], "merges(involving: 5)")
    f.expect(
      keys(try await store.events(of: p(3), limit: 10)), ["web/e5", "web/e4", "web/e3", "web/e2", "web/e1"],
      "events(of: 3)")
    f.expect(
      render(try await store.identifiers(of: p(5))),
      render((Int64(1)...5).map { (Identifier("user_id", "u\($0)"), t(10 * $0)) }), "identifiers(of: 5)")
    let snap = try await store.loadIdentity()
    f.expect(snap.profiles.map { "\($0.0)" }, ["prf_1"], "loadIdentity profiles")
    f.expect(
      snap.aliases.map { "\($0.absorbed)->\($0.survivor)" },
      ["prf_2->prf_1", "prf_3->prf_2", "prf_4->prf_1", "prf_5->prf_4"],
      "loadIdentity aliases")
    f.expect(try await store.stats().profiles, 1, "stats.profiles")
  }

  /// Merges whose profiles the transaction itself lists as new: a profile created there holds nothing yet
  /// unless an earlier merge of the transaction gave it identifiers, and one listed again (already stored) keeps
  /// all it had — both are moved or dropped like any absorbed profile's rows.
  static func mergesOfNewProfiles(_ store: any Store, _ f: inout Failures) async throws {
    let (u1, u2, u5) = (Identifier("user_id", "u1"), Identifier("user_id", "u2"), Identifier("user_id", "u5"))
    var a = CommitBatch()
    a.newProfiles = [NewProfile(p(1), createdAt: t(0)), NewProfile(p(2), createdAt: t(1))]
    a.identifiers = [IdentifierRow(u1, of: p(1), seen: t(10)), IdentifierRow(u2, of: p(2), seen: t(20))]
    a.traits = [trait(p(1), "name", .string("Ada")), trait(p(2), "plan", .string("gold"))]
    a.computed = [computedRecord(p(2), "orders", 3)]
    a.segmentChanges = [SegmentChangeRecord(segment: "vip", profile: p(2), entered: true, at: t(20))]
    try await store.commit(a)
    var b = CommitBatch()
    // 2 is listed again (already stored, with rows); 3, 4 and 5 are new.
    b.newProfiles = [2, 3, 4, 5].map { NewProfile(p($0), createdAt: t(30)) }
    let m1 = MergeRecord(survivor: p(3), absorbed: p(2), rule: "r", evidence: [u2], eventID: "x1", at: t(30))
    let m2 = MergeRecord(survivor: p(1), absorbed: p(3), rule: "r", evidence: [u2], eventID: "x2", at: t(31))
    let m3 = MergeRecord(survivor: p(4), absorbed: p(5), rule: "r", evidence: [], eventID: "x3", at: t(32), score: 0.5)
    b.merges = [m1, m2, m3]
    b.identifiers = [IdentifierRow(u5, of: p(4), seen: t(32))]
    b.traits = [trait(p(4), "plan", .string("silver"))]
    try await store.commit(b)
    for (n, live) in [(1, 1), (2, 1), (3, 1), (4, 4), (5, 4)] as [(Int64, Int64)] {
      f.expect(try await store.canonical(p(n)), p(live), "canonical(\(n))")
    }
    f.expect(
      render(try await store.identifiers(of: p(1))), render([(u1, t(10)), (u2, t(20))]),
      "identifiers(of: 1): 2's identifier, through 3")
    f.expect(try await store.profile(for: u2), p(1), "profile(for: u2)")
    f.expect(render(try await store.identifiers(of: p(5))), render([(u5, t(32))]), "identifiers(of: 5)")
    f.expect(
      try await store.loadTraits().map(describe),
      [trait(p(1), "name", .string("Ada")), trait(p(4), "plan", .string("silver"))].map(describe),
      "loadTraits: the absorbed profile's trait dropped")
    f.expect(try await store.loadComputed().map(describe), [], "loadComputed: 2's state dropped")
    f.expect(try await store.loadMemberships().map(describe), [], "loadMemberships: 2's membership dropped")
    f.expect(try await store.loadMerges(), [m1, m2, m3], "loadMerges")
    f.expect(try await store.merges(involving: p(5)), [m3], "merges(involving: 5)")
    f.expect(try await store.stats().profiles, 2, "stats.profiles")
  }

  static func conflicts(_ store: any Store, _ f: inout Failures) async throws {
    var b = CommitBatch()
    b.newProfiles = [
      NewProfile(p(1), createdAt: t(0)), NewProfile(p(2), createdAt: t(0)), NewProfile(p(3), createdAt: t(0)),
    ]
    let c1 = conflict(
      kept: p(1), other: p(2), kind: "user_id", reason: "merging would give the profile more than 1 user_id values",
      identifiers: [user1, user2], eventID: "e1", at: t(5))
    let c2 = conflict(
      kept: p(1), other: nil, kind: "email", reason: "the profile already has 1 email value", identifiers: [email2],
      eventID: "e2", at: t(6))
    b.conflicts = [c1, c2]
    try await store.commit(b)
    f.expect(try await store.conflicts(involving: p(1)), [c1, c2], "conflicts(involving: kept)")
    f.expect(try await store.conflicts(involving: p(2)), [c1], "conflicts(involving: other)")
    f.expect(try await store.conflicts(involving: p(3)), [], "conflicts(involving: uninvolved)")
    f.expect(try await store.stats().conflicts, 2, "stats.conflicts")
    // Once 3 merges into 2, 3's family shares 2's conflicts.
    var m = CommitBatch()
    m.merges = [MergeRecord(survivor: p(2), absorbed: p(3), rule: "r", evidence: [], eventID: "e3", at: t(7))]
    try await store.commit(m)
    f.expect(try await store.conflicts(involving: p(3)), [c1], "conflicts(involving: 3) after 3→2")
  }

  static func released(_ store: any Store, _ f: inout Failures) async throws {
    var b = CommitBatch()
    b.newProfiles = [
      NewProfile(p(1), createdAt: t(0)), NewProfile(p(2), createdAt: t(0)), NewProfile(p(3), createdAt: t(0)),
    ]
    b.identifiers = [
      IdentifierRow(anon, of: p(1), seen: t(10)), IdentifierRow(email, of: p(1), seen: t(10)),
      IdentifierRow(device, of: p(3), seen: t(1)), IdentifierRow(device, of: p(2), seen: t(2)),
    ]
    try await store.commit(b)
    // Identifiers held by two profiles: the lowest id answers.
    f.expect(try await store.profile(for: device), p(2), "profile(for: identifier held by 2 and 3)")

    var r = CommitBatch()
    r.released = [
      ReleasedIdentifier(anon, from: p(1)), ReleasedIdentifier(email, from: p(2)),
      ReleasedIdentifier(device, from: p(2)),
    ]
    // last_seen only moves forward.
    r.identifiers = [IdentifierRow(email, of: p(1), seen: t(5)), IdentifierRow(device, of: p(3), seen: t(9))]
    try await store.commit(r)
    f.expect(render(try await store.identifiers(of: p(1))), render([(email, t(10))]), "identifiers(of: 1)")
    f.expect(try await store.profile(for: anon), nil, "profile(for: released)")
    f.expect(try await store.profile(for: device), p(3), "profile(for: device) after release from 2")
    f.expect(render(try await store.identifiers(of: p(3))), render([(device, t(9))]), "identifiers(of: 3)")
    f.expect(try await store.stats().identifiers, 2, "stats.identifiers")

    // Released and attached again in one batch: releases come first.
    var again = CommitBatch()
    again.released = [ReleasedIdentifier(email, from: p(1))]
    again.identifiers = [IdentifierRow(email, of: p(1), seen: t(3))]
    try await store.commit(again)
    f.expect(render(try await store.identifiers(of: p(1))), render([(email, t(3))]), "identifiers(of: 1) re-attached")
  }

  static func traitUpsert(_ store: any Store, _ f: inout Failures) async throws {
    var b = CommitBatch()
    b.newProfiles = [NewProfile(p(1), createdAt: t(0))]
    b.traits = [
      trait(p(1), "plan", .string("free"), event: "e1", at: t(1), state: .map(["seen": .int(1)])),
      trait(p(1), "plan", .string("pro"), event: "e2", at: t(2), state: .map(["seen": .int(2)])),
    ]
    try await store.commit(b)
    f.expect(try await store.traits(of: p(1)).map(describe), [describe(b.traits[1])], "the last upsert in a batch wins")
    var c = CommitBatch()
    let newer = TraitRecord(
      profile: p(1), trait: "plan", value: .int(3), source: "crm", eventID: "e9", timestamp: t(9), state: .list([]))
    c.traits = [newer]
    try await store.commit(c)
    f.expect(try await store.traits(of: p(1)).map(describe), [describe(newer)], "a later upsert replaces")
    f.expect(try await store.loadTraits().map(describe), [describe(newer)], "loadTraits")
  }

  /// The trait policies readers explain trait values by: none before any, written with a transaction that
  /// writes trait rows (not by one without), replaced by a later one, and by a replay's derived state.
  static func traitPolicies(_ store: any Store, _ f: inout Failures) async throws {
    f.expect(try await store.traitPolicies() == nil, true, "no policies before any trait row")
    let first = TraitPolicies(
      traits: [
        "first_name": .init(kind: "source_priority", sources: ["crm", "pos", "web"]), "plan": .init(kind: "max"),
      ],
      other: .init(kind: "first_seen"), consent: .init(kind: "most_recent"))
    var b = CommitBatch()
    b.newProfiles = [NewProfile(p(1), createdAt: t(0))]
    b.traits = [trait(p(1), "plan", .string("pro"), event: "e1", at: t(1))]
    b.traitPolicies = first
    try await store.commit(b)
    f.expect(try await store.traitPolicies(), first, "written with the trait rows")
    f.expect(
      try await store.traitPolicies()?.policy(for: "consent.email").kind, "most_recent", "consent states' policy")
    f.expect(try await store.traitPolicies()?.policy(for: "city").kind, "first_seen", "undeclared traits' policy")
    var second = first
    second.traits["plan"] = .init(kind: "most_recent")
    var quiet = CommitBatch()
    quiet.newProfiles = [NewProfile(p(2), createdAt: t(2))]
    quiet.traitPolicies = second
    try await store.commit(quiet)
    f.expect(try await store.traitPolicies(), first, "a transaction without trait rows leaves them")
    var c = CommitBatch()
    c.traits = [trait(p(2), "plan", .string("free"), event: "e2", at: t(2))]
    c.traitPolicies = second
    try await store.commit(c)
    f.expect(try await store.traitPolicies(), second, "the latest trait rows' policies")
    var derived = DerivedState()
    derived.profiles = [NewProfile(p(1), createdAt: t(0))]
    derived.traits = [trait(p(1), "plan", .string("pro"), event: "e1", at: t(1))]
    derived.traitPolicies = first
    try await store.replaceDerivedState(derived)
    f.expect(try await store.traitPolicies(), first, "a replay's")
  }

  /// Drives a real identity graph, commits what each resolution changed as the writer would, and rebuilds a
  /// graph from `loadIdentity`.
  /// The merged profiles alone (`aliases`, what a report reads instead of the identity snapshot): one step
  /// each, by absorbed id, the same as `loadIdentity()`'s; an erased family's are gone.
  static func aliases(_ store: any Store, _ f: inout Failures) async throws {
    var b = CommitBatch()
    b.newProfiles = (Int64(1)...6).map { NewProfile(p($0), createdAt: t($0)) }
    b.events = (Int64(1)...6).map {
      event("e\($0)", at: t(10 * $0), ids: [Identifier("user_id", "u\($0)")], profile: p($0))
    }
    b.identifiers = (Int64(1)...6).map { IdentifierRow(Identifier("user_id", "u\($0)"), of: p($0), seen: t(10 * $0)) }
    try await store.commit(b)
    f.expect(try await store.aliases(), [], "no merge, no alias")
    // 3 → 2, then 2 → 1 (a chain), and 6 → 4 → 5 in one batch.
    let batches: [[(Int64, Int64)]] = [[(2, 3)], [(1, 2)], [(4, 6), (5, 4)]]
    for merges in batches {
      var m = CommitBatch()
      m.merges = merges.map {
        MergeRecord(survivor: p($0.0), absorbed: p($0.1), rule: "r", evidence: [], eventID: "e\($0.1)", at: t(100))
      }
      try await store.commit(m)
    }
    let pairs: [(Int64, Int64)] = [(2, 1), (3, 2), (4, 5), (6, 4)]
    let expected = pairs.map { ProfileAlias(absorbed: p($0.0), survivor: p($0.1)) }
    f.expect(try await store.aliases(), expected, "aliases, one step each, by absorbed id")
    f.expect(
      try await store.loadIdentity().aliases.map { ProfileAlias(absorbed: $0.absorbed, survivor: $0.survivor) },
      expected, "loadIdentity's aliases are the same")
    _ = try await store.erase(profile: p(6), values: ["u4", "u5", "u6"], suppress: [])
    f.expect(
      try await store.aliases(), Array(expected.prefix(2)), "the erased family's aliases are gone, the other's kept")
  }

  static func identityRoundTrip(_ store: any Store, _ f: inout Failures) async throws {
    let rules: [String: KindRule] = [
      "user_id": KindRule(priority: 0, maxPerProfile: 1, rule: "user_id"),
      "email": KindRule(priority: 1, rule: "email"),
      "anonymous_id": KindRule(priority: 2, expiresAfter: TimeSpan(seconds: 86_400), rule: "anonymous_id"),
      "device": KindRule(priority: 3),
    ]
    var graph = IdentityGraph(rules: rules)
    let steps: [(String, [Identifier], Timestamp)] = [
      ("e1", [Identifier("anonymous_id", "a1"), Identifier("email", "x@example.com")], t(0)),
      ("e2", [Identifier("anonymous_id", "a2"), Identifier("user_id", "u1")], t(10)),
      ("e3", [Identifier("email", "x@example.com"), Identifier("user_id", "u1")], t(20)),
      ("e4", [Identifier("user_id", "u2"), Identifier("anonymous_id", "a3"), Identifier("device", "d9")], t(30)),
      ("e5", [Identifier("user_id", "u2"), Identifier("email", "x@example.com")], t(40)),
      ("e6", [Identifier("anonymous_id", "a1"), Identifier("device", "d1")], t(200_000)),
      ("e7", [Identifier("email", "y@example.com"), Identifier("anonymous_id", "a3")], t(40)),
    ]
    for (id, ids, at) in steps {
      let r = graph.resolve(ids, eventID: id, at: at)
      var b = CommitBatch()
      if r.created { b.newProfiles = [NewProfile(r.profile, createdAt: at)] }
      b.events = [event(id, at: at, ids: ids, profile: r.profile)]
      b.released = r.expired.map { ReleasedIdentifier($0.0, from: $0.1) }
      b.merges = r.merges
      b.conflicts = r.conflicts
      let held = Set(graph.identifiers(of: r.profile))
      b.identifiers = ids.filter { held.contains($0) }.map { IdentifierRow($0, of: r.profile, seen: at) }
      try await store.commit(b)
    }
    let restored = try await store.loadIdentity().graph(rules: rules)
    f.expect(restored.nextID, graph.nextID, "nextID")
    f.expect(restored.profileCount, graph.profileCount, "profileCount")
    for n in Int64(1)..<graph.nextID {
      f.expect(restored.canonical(p(n)), graph.canonical(p(n)), "canonical(\(n))")
      f.expect(Set(restored.identifiers(of: p(n))), Set(graph.identifiers(of: p(n))), "identifiers(of: \(n))")
    }
    let owners = graph.owner.keys.sorted()
    f.expect(restored.owner.keys.sorted(), owners, "owned identifiers")
    for i in owners {
      f.expect(restored.profile(of: i), graph.profile(of: i), "owner of \(i)")
      f.expect(restored.owner[i]?.lastSeen, graph.owner[i]?.lastSeen, "last seen of \(i)")
    }
    // The graph owns only linking identifiers; the store answers for all it holds.
    for i in owners { f.expect(try await store.profile(for: i), graph.profile(of: i), "store.profile(for: \(i))") }
    for (_, ids, _) in steps {
      for i in ids where graph.owner[i] == nil {
        let p = try await store.profile(for: i)
        let holds = p.map { graph.identifiers(of: $0).contains(i) } ?? false
        f.expect(holds, true, "store.profile(for: \(i)) = \(String(describing: p)) holds it")
      }
    }
    f.expect(try await store.stats().profiles, graph.profileCount, "stats.profiles")
  }

  /// Values a trait or event may carry, including those plain JSON cannot tell apart.
  public static let tricky: [String: Value] = [
    "int": .int(42), "double": .double(42.0), "fraction": .double(0.1), "negzero": .double(-0.0),
    "inf": .double(.infinity), "neginf": .double(-.infinity), "huge": .double(1e300),
    "tiny": .double(.leastNonzeroMagnitude),
    "big": .double(1.2345678901234568e20), "intmax": .int(.max), "intmin": .int(.min),
    "true": .bool(true), "null": .null,
    "ts": .timestamp(Timestamp(microseconds: 1_714_557_630_123_456)), "negts": .timestamp(Timestamp(microseconds: -1)),
    "dur": .duration(TimeSpan(seconds: 5400)),
    "text": .string("quote \" backslash \\ newline \n tab \t cr \r nul \u{0} bell \u{7} é 中文 🎉 \u{2028}"),
    "empty": .string(""), "dollar": .string("{\"$t\":1}"),
    "list": .list([.int(1), .double(1), .string("1"), .list([]), .map([:]), .null]),
    "map": .map([
      "a": .list([.timestamp(Timestamp(microseconds: 0))]), "b": .map(["c": .duration(TimeSpan(microseconds: 1))]),
    ]),
    "reserved": .map(["$t": .int(1)]), "reserved2": .map(["$m": .string("x")]),
    "reserved3": .map(["$x": .map(["$d": .int(2)])]),
    "twokeys": .map(["$t": .int(1), "$d": .int(2)]), "emptymap": .map([:]), "emptylist": .list([]),
  ]

  static func valueRoundTrip(_ store: any Store, _ f: inout Failures) async throws {
    var b = CommitBatch()
    b.newProfiles = [NewProfile(p(1), createdAt: t(0))]
    b.traits = tricky.keys.sorted().map { k in
      trait(p(1), k, tricky[k] ?? .null, state: .map(["last": tricky[k] ?? .null, "all": .list(Array(tricky.values))]))
    }
    b.traits.append(trait(p(1), "nan", .double(.nan), state: .list([.double(.nan)])))
    b.traits.append(trait(p(1), "ключ \"é\" 🎉", .string("unicode name")))
    b.events = [
      event(
        "ev \"1\" é", source: "src/🎉", name: "Name \"with\" quotes\nand newline", at: t(1),
        ids: [Identifier("email", "q\"uote@example.com"), Identifier("phone", "+1 555")], traits: tricky,
        properties: ["nested": .map(tricky), "reserved": .map(["$m": .map(["$t": .int(3)])])], context: tricky,
        profile: p(1))
    ]
    try await store.commit(b)
    let expected = b.traits.sorted { $0.trait < $1.trait }
    let loaded = try await store.loadTraits()
    let byName = try await store.traits(of: p(1))
    f.expect(loaded.map(describe), expected.map(describe), "loadTraits")
    f.expect(byName.map(describe), expected.map(describe), "traits(of:)")
    // `exact` renders NaN as "nan" whatever its payload; check NaN is still a double NaN.
    for tr in loaded where tr.trait == "nan" {
      if case .double(let d) = tr.value, d.isNaN {} else { f.fail("NaN came back as \(exact(tr.value))") }
    }
    f.expect(
      try await store.events(of: p(1), limit: 1).map(describe), b.events.map(describe), "event body round trip")
  }

  static func rejectedRecords(_ store: any Store, _ f: inout Failures) async throws {
    let r1 = RejectedRecord(source: "csv", line: 1, record: "a,b", reason: "missing id", at: t(1))
    let r2 = RejectedRecord(source: "api", line: nil, record: "{\"x\": \"é\n\"}", reason: "no identifiers", at: t(2))
    let r3 = RejectedRecord(source: "csv", line: 7, record: "", reason: "empty", at: t(3))
    var b = CommitBatch()
    b.rejected = [r1, r2]
    try await store.commit(b)
    var c = CommitBatch()
    c.rejected = [r3]
    try await store.commit(c)
    f.expect(try await store.rejected(limit: 10), [r1, r2, r3], "rejected(limit: 10)")
    f.expect(try await store.rejected(limit: 2), [r1, r2], "rejected(limit: 2)")
    f.expect(try await store.rejected(limit: 0), [], "rejected(limit: 0)")
    f.expect(try await store.stats().rejected, 3, "stats.rejected")
  }

  static func statsCounts(_ store: any Store, _ f: inout Failures) async throws {
    var expected = StoreStats()
    f.expect(try await store.stats(), expected, "stats of an empty store")
    try await store.commit(twoProfiles())
    var b = CommitBatch()
    b.newProfiles = [NewProfile(p(3), createdAt: t(2)), NewProfile(p(1), createdAt: t(99))]  // 1 again: ignored
    b.merges = [MergeRecord(survivor: p(1), absorbed: p(2), rule: "r", evidence: [email], eventID: "z", at: t(50))]
    b.rejected = [RejectedRecord(source: "s", line: 3, record: "r", reason: "bad", at: t(50))]
    b.conflicts = [conflict(kept: p(1), other: p(3), kind: "user_id", identifiers: [], eventID: "z", at: t(50))]
    try await store.commit(b)
    expected.events = 3
    expected.profiles = 2
    expected.identifiers = 5
    expected.merges = 1
    expected.conflicts = 1
    expected.rejected = 1
    f.expect(try await store.stats(), expected, "stats")
    f.expect(try await store.canonical(p(3)), p(3), "canonical(3)")
  }

  static func emptyBatch(_ store: any Store, _ f: inout Failures) async throws {
    try await store.commit(CommitBatch())
    f.expect(try await store.stats(), StoreStats(), "stats after an empty batch on an empty store")
    try await store.commit(twoProfiles())
    let before = try await snapshot(of: store, upTo: 3)
    try await store.commit(CommitBatch())
    f.expect(try await snapshot(of: store, upTo: 3), before, "state after an empty batch")
  }

  // MARK: - Computed traits and segments

  static func describe(_ c: ComputedRecord) -> String {
    "\(c.profile) \(c.trait)=\(exact(c.value)) \((try? c.state()).map(exact) ?? "unreadable state")"
  }
  static func describe(_ m: MembershipRecord) -> String { "\(m.segment) \(m.profile) since \(m.since.microseconds)" }
  static func describe(_ c: SegmentChangeRecord) -> String {
    "\(c.profile) \(c.entered ? "entered" : "exited") \(c.segment) at \(c.at.microseconds) "
      + "\(exact(.map(c.values))) merged into \(c.mergedInto.map(\.description) ?? "-")"
  }

  static func computedRecord(_ profile: ProfileID, _ trait: String, _ n: Int64) -> ComputedRecord {
    ComputedRecord(
      profile: profile, trait: trait, state: .map(["a": .string("count"), "w": .int(0), "b": .list([.int(n)])]),
      value: .int(n))
  }

  static func computedStates(_ store: any Store, _ f: inout Failures) async throws {
    var b = twoProfiles()
    b.computed = [
      computedRecord(p(1), "orders", 2), computedRecord(p(1), "pages", 5), computedRecord(p(2), "orders", 1),
    ]
    try await store.commit(b)
    f.expect(
      try await store.loadComputed().map(describe),
      [computedRecord(p(1), "orders", 2), computedRecord(p(1), "pages", 5), computedRecord(p(2), "orders", 1)].map(
        describe), "loadComputed")
    var c = CommitBatch()
    // An upsert replaces; a null state deletes.
    c.computed = [
      computedRecord(p(1), "orders", 3), ComputedRecord(profile: p(1), trait: "pages", state: .null, value: .int(0)),
    ]
    try await store.commit(c)
    f.expect(
      try await store.computed(of: p(1)).map(describe), [describe(computedRecord(p(1), "orders", 3))], "computed(of:)")
    f.expect(
      try await store.loadComputed().map(describe),
      [computedRecord(p(1), "orders", 3), computedRecord(p(2), "orders", 1)].map(describe), "loadComputed after")
  }

  static func segmentMemberships(_ store: any Store, _ f: inout Failures) async throws {
    var b = twoProfiles()
    b.segmentChanges = [
      SegmentChangeRecord(segment: "vip", profile: p(1), entered: true, at: t(50), values: ["traits.x": .int(1)]),
      SegmentChangeRecord(segment: "vip", profile: p(2), entered: true, at: t(51)),
      SegmentChangeRecord(segment: "new", profile: p(2), entered: true, at: t(52)),
    ]
    try await store.commit(b)
    var c = CommitBatch()
    c.segmentChanges = [
      SegmentChangeRecord(segment: "vip", profile: p(2), entered: false, at: t(60), values: ["traits.x": .null])
    ]
    try await store.commit(c)
    f.expect(
      try await store.members(of: "vip").map(describe), ["vip prf_1 since \(t(50).microseconds)"], "members(of: vip)")
    f.expect(try await store.members(of: "none").map(describe), [], "members(of: unknown)")
    f.expect(try await store.segmentCounts(), ["vip": 1, "new": 1], "segmentCounts")
    f.expect(
      try await store.loadMemberships().map(describe),
      ["new prf_2 since \(t(52).microseconds)", "vip prf_1 since \(t(50).microseconds)"], "loadMemberships")
    f.expect(try await store.memberships(of: p(2)).map(\.segment), ["new"], "memberships(of: 2)")
    f.expect(
      try await store.segmentChanges(of: "vip", limit: 10).map(describe),
      [b.segmentChanges[0], b.segmentChanges[1], c.segmentChanges[0]].map(describe), "segmentChanges(of: vip)")
    f.expect(try await store.segmentChanges(of: "vip", limit: 1).count, 1, "segmentChanges limit")
  }

  static func describe(_ l: MatchLinkRecord) -> String {
    "#\(l.id) \(l.rule) \(l.profile)~\(l.candidate) \(l.eventID) p=\(l.probability) w=\(l.weight) \(l.status.rawValue) "
      + "'\(l.reason)' @\(l.at.microseconds)"
  }

  static func matchLinks(_ store: any Store, _ f: inout Failures) async throws {
    var b = CommitBatch()
    b.newProfiles = [NewProfile(p(1), createdAt: t(0)), NewProfile(p(2), createdAt: t(1))]
    b.matchLinks = [
      MatchLinkRecord(
        rule: "person", profile: p(1), candidate: p(1), eventID: "e1", probability: 0.999, weight: 9.97,
        status: .joined, at: t(2)),
      MatchLinkRecord(
        rule: "person", profile: p(2), candidate: p(1), eventID: "e2", probability: 0.95, weight: 4.25, status: .review,
        reason: "between review and merge", at: t(3)),
    ]
    try await store.commit(b)
    f.expect(
      try await store.matchLinks(status: nil, limit: 10).map(describe),
      [
        "#1 person prf_1~prf_1 e1 p=0.999 w=9.97 joined '' @1700000002000000",
        "#2 person prf_2~prf_1 e2 p=0.95 w=4.25 review 'between review and merge' @1700000003000000",
      ], "all links")
    f.expect(try await store.matchLinks(status: .review, limit: 10).map(\.id), [2], "links to review")
    f.expect(try await store.matchLinks(status: nil, limit: 1).map(\.id), [1], "limit")
    var decide = CommitBatch()
    decide.linkStatus = [LinkStatusChange(2, to: .confirmed)]
    try await store.commit(decide)
    f.expect(try await store.matchLinks(status: .review, limit: 10).map(\.id), [], "none left to review")
    f.expect(try await store.matchLinks(status: .confirmed, limit: 10).map(\.id), [2], "confirmed")
    // Separations (tessera unmerge) are kept sorted and once.
    var separate = CommitBatch()
    let user = Identifier("user_id", "1")
    let device = Identifier("anonymous_id", "x")
    separate.separations = [Separation(user, device), Separation(device, user)]
    try await store.commit(separate)
    f.expect(try await store.loadSeparations(), [Separation(device, user)], "loadSeparations")
  }

  /// The console's pages (`PagedQueries`): each page holds the right items, in order, and the cursor of one page
  /// leads to the next without gaps or repeats; counts and the histogram match the stored rows.
  static func pages(_ store: any Store, _ f: inout Failures) async throws {
    // Profile 1 absorbs profile 2; 7 events between them at distinct times, two of them `page` views from `app`.
    var b = CommitBatch()
    b.newProfiles = [
      NewProfile(p(1), createdAt: t(0)), NewProfile(p(2), createdAt: t(0)), NewProfile(p(3), createdAt: t(0)),
    ]
    b.events = (0..<7).map { (i: Int) -> StoredEvent in
      let app = i % 3 == 0
      let owner = i % 2 == 0 ? p(1) : p(2)
      return event(
        "e\(i)", source: app ? "app" : "web", type: app ? "page" : "track", at: t(Int64(10 + i)), profile: owner)
    }
    b.events.append(event("other", at: t(12), profile: p(3)))
    b.merges = [
      MergeRecord(survivor: p(1), absorbed: p(2), rule: "ids", evidence: [email], eventID: "e6", at: t(16), score: 1)
    ]
    b.segmentChanges = (1...3).map { SegmentChangeRecord(segment: "vip", profile: p($0), entered: true, at: t(20)) }
    let links: [(Double, MatchLinkRecord.Status)] = [
      (0.95, .review), (0.97, .review), (0.999, .joined), (0.95, .review), (0.91, .review),
    ]
    for (i, x) in links.enumerated() {
      b.matchLinks.append(
        MatchLinkRecord(
          rule: i == 4 ? "other" : "person", profile: p(1), candidate: p(3), eventID: "e\(i)", probability: x.0,
          weight: 1, status: x.1, at: t(30)))
    }
    try await store.commit(b)

    // Timeline of the survivor (both profiles' events), newest first, 3 a page.
    var seen: [String] = []
    var cursor: TimelineCursor?
    var pageCount = 0
    repeat {
      let page = try await store.timeline(of: p(2), source: nil, type: nil, cursor: cursor, limit: 3)
      seen += page.events.map(\.event.id)
      cursor = page.next
      pageCount += 1
    } while cursor != nil && pageCount < 10
    f.expect(seen, ["e6", "e5", "e4", "e3", "e2", "e1", "e0"], "timeline pages, newest first")
    f.expect(pageCount, 3, "timeline page count")
    let second = try await store.timeline(
      of: p(1), source: nil, type: nil,
      cursor: try await store.timeline(of: p(1), source: nil, type: nil, cursor: nil, limit: 3).next, limit: 3)
    f.expect(second.events.map(\.event.id), ["e3", "e2", "e1"], "timeline page 2")
    let pagesOnly = try await store.timeline(of: p(1), source: "app", type: "page", cursor: nil, limit: 2)
    f.expect(pagesOnly.events.map(\.event.id), ["e6", "e3"], "timeline filtered by source and type")
    let rest = try await store.timeline(of: p(1), source: nil, type: "page", cursor: pagesOnly.next, limit: 2)
    f.expect(rest.events.map(\.event.id), ["e0"], "filtered timeline page 2")
    f.expect(rest.next == nil, true, "the last filtered page has no next")
    f.expect(
      try await store.timeline(of: p(1), source: "web", type: "page", cursor: nil, limit: 5).events.count, 0,
      "no event of that source and type")
    f.expect(try await store.ownEvents(of: p(2), limit: 10).map(\.event.id), ["e5", "e3", "e1"], "ownEvents")
    f.expect(try await store.ownEvents(of: p(1), limit: 2).map(\.event.id), ["e6", "e4"], "ownEvents limit")

    // Members in profile order after a cursor; the count.
    f.expect(try await store.members(of: "vip", after: nil, limit: 2).map(\.profile), [p(1), p(2)], "members page 1")
    f.expect(try await store.members(of: "vip", after: p(2), limit: 2).map(\.profile), [p(3)], "members page 2")
    f.expect(try await store.memberCount(of: "vip"), 3, "memberCount")
    f.expect(try await store.memberCount(of: "none"), 0, "memberCount of an unknown segment")

    // Links by probability, ties by id, both ways; the cursor continues after the last link.
    let byProbability = try await store.matchLinks(status: .review, descending: true, after: nil, limit: 2)
    f.expect(byProbability.map(\.id), [2, 4], "review links, most probable first (ties: higher id first)")
    let next = try await store.matchLinks(
      status: .review, descending: true, after: byProbability.last.map(LinkCursor.init), limit: 10)
    f.expect(next.map(\.id), [1, 5], "review links page 2")
    f.expect(
      try await store.matchLinks(status: .review, descending: false, after: nil, limit: 3).map(\.id), [5, 1, 4],
      "least probable first")
    f.expect(
      try await store.matchLinks(status: nil, descending: true, after: nil, limit: 1).map(\.id), [3], "every status")
    f.expect(try await store.matchLinkCount(status: .review), 4, "matchLinkCount(review)")
    f.expect(try await store.matchLinkCount(status: nil), 5, "matchLinkCount(all)")
    f.expect(
      try await store.matchLink(id: 3).map(describe),
      "#3 person prf_1~prf_3 e2 p=0.999 w=1.0 joined '' @\(t(30).microseconds)",
      "matchLink(id:)")
    f.expect(try await store.matchLink(id: 99) == nil, true, "matchLink of an unknown id")
    let histogram = try await store.matchLinkHistogram(buckets: 100)
    f.expect(histogram["person"] ?? [:], [95: 2, 97: 1, 99: 1], "histogram of person")
    f.expect(histogram["other"] ?? [:], [91: 1], "histogram of other")
  }

  static func erasePerson(_ store: any Store, _ f: inout Failures) async throws {
    try await store.commit(twoProfiles())
    // A third profile merged into profile 1, a segment membership and a conflict naming both.
    var more = CommitBatch()
    more.newProfiles = [NewProfile(p(3), createdAt: t(2))]
    more.events = [event("c1", at: t(40), ids: [Identifier("email", "c@x")], profile: p(3))]
    more.identifiers = [IdentifierRow(Identifier("email", "c@x"), of: p(3), seen: t(40))]
    more.merges = [MergeRecord(survivor: p(1), absorbed: p(3), rule: "r", evidence: [], eventID: "c1", at: t(41))]
    more.conflicts = [conflict(kept: p(2), other: p(1), kind: "user_id", identifiers: [], eventID: "c1", at: t(41))]
    more.segmentChanges = [
      SegmentChangeRecord(segment: "vip", profile: p(1), entered: true, at: t(42), values: [:], mergedInto: nil)
    ]
    more.rejected = [RejectedRecord(source: "crm", line: 3, record: "id,c@x", reason: "bad", at: t(43))]
    try await store.commit(more)
    let r = try await store.erase(profile: p(3), values: ["c@x", "a@x"], suppress: ["h1", "h2"])
    f.expect(r.profiles, 2, "profiles erased (1 and the one merged into it)")
    f.expect(r.events, 2, "events erased")
    f.expect(r.merges, 1, "merges erased")
    f.expect(r.conflicts, 1, "conflicts erased")
    f.expect(r.rejected, 1, "rejected records holding a value erased")
    f.expect(try await store.canonical(p(1)), nil, "canonical(1)")
    f.expect(try await store.canonical(p(3)), nil, "canonical(3)")
    f.expect(try await store.profile(for: Identifier("email", "c@x")), nil, "profile(for: c@x)")
    f.expect(try await store.traits(of: p(1)).count, 0, "traits(of: 1)")
    f.expect(try await store.members(of: "vip").count, 0, "members of vip")
    f.expect(try await store.segmentChanges(of: "vip", limit: 10).count, 0, "the segment-change log")
    f.expect(try await store.loadSuppressions(), ["h1", "h2"], "suppressions")
    // The other person is untouched.
    f.expect(try await store.canonical(p(2)), p(2), "canonical(2)")
    f.expect(keys(try await store.events(of: p(2), limit: 10)).sorted(), ["web/b1", "web/b2"], "events(of: 2)")
    f.expect(try await store.stats().profiles, 1, "live profiles")
  }

  static func replaceDerived(_ store: any Store, _ f: inout Failures) async throws {
    try await store.commit(twoProfiles())
    var s = DerivedState()
    // Everything ends on profile 1; profile 2 is its alias; a third profile holds nothing but exists.
    s.profiles = [
      NewProfile(p(1), createdAt: t(0)), NewProfile(p(2), createdAt: t(0)), NewProfile(p(3), createdAt: t(9)),
    ]
    s.aliases = [Alias(p(2), into: p(1))]
    s.identifiers = [
      IdentifierRow(Identifier("email", "a@x"), of: p(1), seen: t(5)),
      IdentifierRow(Identifier("email", "b@x"), of: p(1), seen: t(6)),
    ]
    s.traits = [trait(p(1), "city", .string("Oslo"), at: t(6))]
    s.memberships = [MembershipRecord(segment: "vip", profile: p(1), since: t(7))]
    s.eventProfiles = try await store.loadEvents().map {
      EventProfile(EventKey(source: $0.event.source, id: $0.event.id), p(1))
    }
    s.merges = [MergeRecord(survivor: p(1), absorbed: p(2), rule: "replay", evidence: [], eventID: "replay", at: t(8))]
    try await store.replaceDerivedState(s)
    f.expect(try await store.canonical(p(2)), p(1), "canonical(2)")
    f.expect(try await store.profile(for: Identifier("email", "b@x")), p(1), "profile(for: b@x)")
    f.expect(
      render(try await store.identifiers(of: p(1))),
      ["email:a@x@\(t(5).microseconds)", "email:b@x@\(t(6).microseconds)"], "identifiers(of: 1)")
    f.expect(
      try await store.traits(of: p(1)).map { "\($0.trait)=\(exact($0.value))" }, ["city=\(exact(.string("Oslo")))"],
      "traits(of: 1)")
    f.expect(try await store.events(of: p(1), limit: 10).count, 3, "events(of: 1)")
    f.expect(try await store.memberships(of: p(1)).map(\.segment), ["vip"], "memberships(of: 1)")
    f.expect(try await store.merges(involving: p(1)).map(\.rule).last, "replay", "the replay's merge is logged")
    f.expect(try await store.stats().profiles, 2, "live profiles")
  }

  static func sighting(_ profile: Int64, _ ip: String, at seconds: Int64, keep: Int64 = 100) -> SightingRecord {
    SightingRecord(
      profile: p(profile),
      sightings: [
        StoredSighting(signals: ["signals.ip": ip, "signals.os": "macOS 10.15"], last: t(seconds)),
        StoredSighting(signals: ["signals.ip": "10.0.0.\(profile)"], last: t(seconds - 5)),
      ], expires: t(seconds + keep))
  }

  static func describe(_ r: SightingRecord) -> String {
    "\(r.profile) until \(r.expires.microseconds): "
      + r.sightings.map { s in
        s.signals.sorted { $0.key < $1.key }.map { "\($0.key)=\($0.value)" }.joined(separator: ",")
          + "@\(s.last.microseconds)"
      }.joined(separator: "; ")
  }

  static func sightings(_ store: any Store, _ f: inout Failures) async throws {
    var b = twoProfiles()
    b.sightings = [sighting(1, "203.0.113.7", at: 10), sighting(2, "203.0.113.7", at: 11)]
    try await store.commit(b)
    f.expect(
      try await store.loadSightings().map(describe),
      [sighting(1, "203.0.113.7", at: 10), sighting(2, "203.0.113.7", at: 11)].map(describe),
      "sightings read back")
    // A later transaction replaces profile 1's whole list and prunes what expired before t(112).
    var later = CommitBatch()
    later.events = [event("a2", at: t(50), ids: [email], profile: p(1))]
    later.sightings = [sighting(1, "198.51.100.1", at: 50)]
    later.sightingsExpireBefore = t(112)
    try await store.commit(later)
    f.expect(
      try await store.loadSightings().map(describe), [sighting(1, "198.51.100.1", at: 50)].map(describe),
      "replaced whole; profile 2's expired (t(111) < t(112))")
    // An empty list deletes the row; a merge drops the absorbed profile's.
    var again = CommitBatch()
    again.sightings = [sighting(2, "203.0.113.9", at: 60)]
    try await store.commit(again)
    var merge = CommitBatch()
    merge.merges = [MergeRecord(survivor: p(1), absorbed: p(2), rule: "r", evidence: [], eventID: "m", at: t(61))]
    try await store.commit(merge)
    f.expect(try await store.loadSightings().map(\.profile), [p(1)], "the absorbed profile's sightings go with a merge")
    var none = CommitBatch()
    none.sightings = [SightingRecord(profile: p(1), sightings: [], expires: t(0))]
    try await store.commit(none)
    f.expect(try await store.loadSightings().count, 0, "an empty list deletes the row")
    // Erasing a person deletes the sightings of the whole family, and only theirs.
    var both = CommitBatch()
    both.newProfiles = [NewProfile(p(3), createdAt: t(70))]
    both.events = [event("c1", at: t(70), ids: [Identifier("email", "c@x")], profile: p(3))]
    both.sightings = [sighting(1, "203.0.113.7", at: 70), sighting(3, "203.0.113.7", at: 70)]
    try await store.commit(both)
    _ = try await store.erase(profile: p(2), values: [], suppress: [])
    f.expect(
      try await store.loadSightings().map(\.profile), [p(3)], "erasing profile 2's person (1 and 2) removes theirs")
    // A replay's state replaces them all.
    var s = DerivedState()
    s.profiles = [NewProfile(p(3), createdAt: t(70)), NewProfile(p(4), createdAt: t(70))]
    s.sightings = [sighting(4, "192.0.2.1", at: 80)]
    try await store.replaceDerivedState(s)
    f.expect(
      try await store.loadSightings().map(describe), [sighting(4, "192.0.2.1", at: 80)].map(describe), "replayed")
  }

  static func mergeCleansSegments(_ store: any Store, _ f: inout Failures) async throws {
    var b = twoProfiles()
    b.computed = [computedRecord(p(1), "orders", 1), computedRecord(p(2), "orders", 1)]
    b.segmentChanges = [
      SegmentChangeRecord(segment: "vip", profile: p(2), entered: true, at: t(50)),
      SegmentChangeRecord(segment: "new", profile: p(2), entered: true, at: t(50)),
    ]
    try await store.commit(b)
    var c = CommitBatch()
    c.merges = [
      MergeRecord(
        survivor: p(1), absorbed: p(2), rule: "email", evidence: [email, email2], eventID: "c1", at: t(60), score: 1)
    ]
    // What the resolver writes: the merged state on the survivor, the absorbed profile's exits, the survivor's entry.
    c.computed = [computedRecord(p(1), "orders", 2)]
    c.segmentChanges = [
      SegmentChangeRecord(segment: "vip", profile: p(2), entered: false, at: t(60), mergedInto: p(1)),
      SegmentChangeRecord(segment: "new", profile: p(2), entered: false, at: t(60), mergedInto: p(1)),
      SegmentChangeRecord(segment: "vip", profile: p(1), entered: true, at: t(60)),
    ]
    try await store.commit(c)
    f.expect(
      try await store.loadComputed().map(describe), [describe(computedRecord(p(1), "orders", 2))], "loadComputed")
    f.expect(
      try await store.computed(of: p(2)).map(describe), [describe(computedRecord(p(1), "orders", 2))],
      "computed(of: absorbed)")
    f.expect(
      try await store.loadMemberships().map(describe), ["vip prf_1 since \(t(60).microseconds)"], "loadMemberships")
    f.expect(
      try await store.memberships(of: p(2)).map(\.segment), ["vip"], "memberships(of: absorbed) follows the merge")
    f.expect(try await store.segmentCounts(), ["vip": 1], "segmentCounts")
    // A merge alone (no exits in the batch) still leaves no rows on the absorbed profile.
    var d = CommitBatch()
    d.newProfiles = [NewProfile(p(3), createdAt: t(70))]
    d.computed = [computedRecord(p(3), "orders", 1)]
    d.segmentChanges = [SegmentChangeRecord(segment: "new", profile: p(3), entered: true, at: t(70))]
    try await store.commit(d)
    var e = CommitBatch()
    e.merges = [
      MergeRecord(survivor: p(1), absorbed: p(3), rule: "email", evidence: [email], eventID: "c2", at: t(80), score: 1)
    ]
    try await store.commit(e)
    f.expect(try await store.loadComputed().map(\.profile), [p(1)], "loadComputed after a bare merge")
    f.expect(try await store.loadMemberships().map(\.profile), [p(1)], "loadMemberships after a bare merge")
  }

  // MARK: - Atomicity

  /// For stores that can refuse a batch. Commits `twoProfiles`, then a batch that touches every part of the
  /// store (a new profile, events, a release, a merge, identifiers, a conflict, traits, a rejected record),
  /// poisoned by `poison` so that the store must refuse it partway. Checks that the commit throws and that the
  /// store's whole observable state is what it was before.
  public static func checkAtomicity(of store: any Store, poison: (inout CommitBatch) -> Void) async throws -> [String] {
    var f = Failures()
    f.check = "a refused batch leaves no trace"
    var first = twoProfiles()
    // Rows the merge below deletes (the absorbed profile's), which the rollback must bring back.
    first.computed = [computedRecord(p(1), "orders", 1), computedRecord(p(2), "orders", 2)]
    first.segmentChanges = [SegmentChangeRecord(segment: "vip", profile: p(2), entered: true, at: t(50))]
    try await store.commit(first)
    let before = try await snapshot(of: store, upTo: 4)
    var b = CommitBatch()
    b.newProfiles = [NewProfile(p(3), createdAt: t(60))]
    b.events = [event("z1", at: t(60), ids: [email, anon], profile: p(3)), event("z2", at: t(61), profile: p(1))]
    b.released = [ReleasedIdentifier(user1, from: p(1))]
    b.merges = [MergeRecord(survivor: p(1), absorbed: p(2), rule: "r", evidence: [email], eventID: "z1", at: t(60))]
    b.identifiers = [IdentifierRow(anon, of: p(3), seen: t(60)), IdentifierRow(email, of: p(1), seen: t(60))]
    b.conflicts = [conflict(kept: p(1), other: p(3), kind: "user_id", identifiers: [], eventID: "z1", at: t(60))]
    b.traits = [trait(p(1), "plan", .string("platinum")), trait(p(3), "new", .bool(true))]
    b.rejected = [RejectedRecord(source: "s", line: 1, record: "r", reason: "bad", at: t(60))]
    b.computed = [computedRecord(p(1), "orders", 3), computedRecord(p(3), "orders", 1)]
    b.segmentChanges = [
      SegmentChangeRecord(segment: "vip", profile: p(2), entered: false, at: t(60), mergedInto: p(1)),
      SegmentChangeRecord(segment: "vip", profile: p(1), entered: true, at: t(60)),
    ]
    poison(&b)
    do {
      try await store.commit(b)
      f.fail("the poisoned batch was accepted")
    } catch {}
    f.expect(
      try await store.existingEvents([EventKey(source: "web", id: "z1"), EventKey(source: "web", id: "z2")]), [],
      "events of the refused batch")
    let after = try await snapshot(of: store, upTo: 4)
    for (x, y) in zip(before, after) where x != y { f.fail("changed: expected \(x), got \(y)") }
    f.expect(after.count, before.count, "snapshot size")
    // The store still works afterwards.
    var ok = CommitBatch()
    ok.events = [event("z3", at: t(70), profile: p(1))]
    try await store.commit(ok)
    f.expect(try await store.stats().events, 4, "stats.events after a good batch")
    return f.messages
  }
}
