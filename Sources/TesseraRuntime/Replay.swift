import Foundation
import TesseraCompiler
import TesseraIdentity
import TesseraModel
import TesseraStore

/// What re-resolving a store's event log under the current configuration would change: profiles that
/// would merge or split, traits and segment memberships that would differ (`tessera replay --dry-run`).
public struct ReplayReport: Sendable {
  /// Stored profiles whose events would end in one profile.
  public struct Merge: Sendable {
    public var profiles: [ProfileID]
    public var events: Int
  }
  /// A stored profile whose events would end in several profiles: the event ids of each part.
  public struct Split: Sendable {
    public var profile: ProfileID
    public var parts: [[String]]
  }
  public struct TraitChange: Sendable {
    public var profile: ProfileID
    public var trait: String
    public var before: Value?
    public var after: Value?
  }
  public struct MembershipChange: Sendable {
    public var profile: ProfileID
    public var segment: String
    public var entered: Bool
  }

  public var events = 0
  public var profilesBefore = 0
  public var profilesAfter = 0
  public var merges: [Merge] = []
  public var splits: [Split] = []
  public var traitChanges: [TraitChange] = []
  public var membershipChanges: [MembershipChange] = []

  public var isEmpty: Bool {
    merges.isEmpty && splits.isEmpty && traitChanges.isEmpty && membershipChanges.isEmpty
  }

  /// Replays and compares, then writes the replayed state into `store`: profiles keep their ids (a merged
  /// group keeps its oldest, the others become its aliases; the larger part of a split keeps the id, the
  /// others get new ids), and each merge and split is recorded.
  public static func apply(plan: PipelinePlan, store: any Store, now: Timestamp, workers: Int = 1) async throws
    -> ReplayReport
  {
    var replayed: MemoryStore?
    let report = try await compare(plan: plan, store: store, now: now, workers: workers, keep: { replayed = $0 })
    guard let replayed else { return report }
    let log = try await store.loadEvents()
    let newLog = try await replayed.loadEvents()
    var firstSeen: [ProfileID: Int] = [:]
    var oldOfEvent: [String: ProfileID] = [:]
    var liveOf: [ProfileID: ProfileID] = [:]
    for e in log {
      if liveOf[e.profile] == nil { liveOf[e.profile] = try await store.canonical(e.profile) ?? e.profile }
      oldOfEvent["\(e.event.source)\u{1F}\(e.event.id)"] = liveOf[e.profile]
    }
    var newOfEvent: [String: ProfileID] = [:]
    var counts: [ProfileID: [ProfileID: Int]] = [:]  // new → old → events
    for (n, e) in newLog.enumerated() {
      let key = "\(e.event.source)\u{1F}\(e.event.id)"
      let new = await replayed.canonical(e.profile) ?? e.profile
      newOfEvent[key] = new
      if firstSeen[new] == nil { firstSeen[new] = n }
      if let old = oldOfEvent[key] { counts[new, default: [:]][old, default: 0] += 1 }
    }
    // Ids: in order of each new profile's first event, the old id holding most of its events that is free.
    let snapshot = try await store.loadIdentity()
    var maxID = snapshot.profiles.map(\.0.raw).max() ?? 0
    maxID = max(maxID, snapshot.aliases.map(\.absorbed.raw).max() ?? 0)
    var assigned: [ProfileID: ProfileID] = [:]
    var taken: Set<ProfileID> = []
    // The ids each live profile absorbed: a part split off a profile gets one of them back (an unmerge
    // gives the absorbed profile its id again).
    var absorbedInto: [ProfileID: [ProfileID]] = [:]
    for a in snapshot.aliases {
      absorbedInto[try await store.canonical(a.survivor) ?? a.survivor, default: []].append(a.absorbed)
    }
    for new in firstSeen.keys.sorted(by: { (firstSeen[$0] ?? 0) < (firstSeen[$1] ?? 0) }) {
      let olds = (counts[new] ?? [:]).sorted { ($0.value, $1.key) > ($1.value, $0.key) }.map(\.key)
      if let free = olds.first(where: { !taken.contains($0) }) {
        assigned[new] = free
        taken.insert(free)
      } else if let revived = olds.flatMap({ (absorbedInto[$0] ?? []).sorted() }).first(where: { !taken.contains($0) })
      {
        assigned[new] = revived
        taken.insert(revived)
      } else {
        maxID += 1
        assigned[new] = ProfileID(maxID)
      }
    }
    func id(_ p: ProfileID) -> ProfileID { assigned[p] ?? p }
    var state = DerivedState()
    let created = Dictionary(newLog.map { (id($0.profile), $0.event.timestamp) }, uniquingKeysWith: { min($0, $1) })
    var aliases: [ProfileID: ProfileID] = [:]
    // Old ids no new profile kept: aliases of the profile that has most of their events.
    for (new, olds) in counts {
      for old in olds.keys where !taken.contains(old) && aliases[old] == nil { aliases[old] = id(new) }
    }
    for a in snapshot.aliases where aliases[a.absorbed] == nil && !taken.contains(a.absorbed) {
      let live = try await store.canonical(a.survivor) ?? a.survivor
      aliases[a.absorbed] = taken.contains(live) ? live : (aliases[live] ?? live)
    }
    let allIDs = Set(snapshot.profiles.map(\.0)).union(snapshot.aliases.map(\.absorbed)).union(assigned.values)
    for p in allIDs.sorted() { state.profiles.append(NewProfile(p, createdAt: created[p] ?? now)) }
    state.aliases = aliases.sorted { $0.key < $1.key }.map { Alias($0.key, into: $0.value) }
    for (p, ids) in await replayed.loadIdentity().profiles {
      for (i, seen) in ids { state.identifiers.append(IdentifierRow(i, of: id(p), seen: seen)) }
    }
    state.traits = await replayed.loadTraits().map {
      var t = $0; t.profile = id(t.profile); return t
    }
    state.traitPolicies = await replayed.traitPolicies()
    state.computed = await replayed.loadComputed().map {
      var c = $0; c.profile = id(c.profile); return c
    }
    state.sightings = await replayed.loadSightings().map {
      var r = $0; r.profile = id(r.profile); return r
    }
    state.memberships = await replayed.loadMemberships().map {
      MembershipRecord(segment: $0.segment, profile: id($0.profile), since: $0.since)
    }
    for (key, p) in newOfEvent {
      let parts = key.split(separator: "\u{1F}", maxSplits: 1).map(String.init)
      state.eventProfiles.append(EventProfile(EventKey(source: parts[0], id: parts.count > 1 ? parts[1] : ""), id(p)))
    }
    for m in report.merges {
      guard let survivor = m.profiles.first(where: { taken.contains($0) }) else { continue }
      for absorbed in m.profiles where absorbed != survivor {
        state.merges.append(
          MergeRecord(
            survivor: survivor, absorbed: absorbed, rule: "replay", evidence: [], eventID: "replay", at: now))
      }
    }
    for s in report.splits {
      let moved = Set(newOfEvent.filter { oldOfEvent[$0.key] == s.profile }.map { id($0.value) }).subtracting([
        s.profile
      ])
      for other in moved.sorted() {
        state.conflicts.append(
          ConflictRecord(
            kept: s.profile, other: other, kind: "replay", reason: "split by replay: events moved to \(other)",
            identifiers: [], eventID: "replay", at: now))
      }
    }
    try await store.replaceDerivedState(state)
    return report
  }

  /// Replays the log of `store` into a fresh in-memory store under `plan` at `now`, and compares.
  ///
  /// The log runs through the plan's graph, fed in write order; then the links reviewers confirmed are merged
  /// again, and the clock ticks at `now`.
  public static func compare(
    plan: PipelinePlan, store: any Store, now: Timestamp, workers: Int = 1, keep: ((MemoryStore) -> Void)? = nil
  ) async throws -> ReplayReport {
    let log = try await store.loadEvents()
    // The log keeps records as received: the sources' mappings make their fields again.
    let reader = EventReader(config: plan.config, demand: EventDemand(config: plan.config))
    let replayed = MemoryStore()
    let state = PipelineState(separations: try await store.loadSeparations())
    let graph = StageGraph(
      plan: plan,
      options: StageGraph.Options(workers: workers, cut: CutPolicy(events: 8192), now: now, checksStore: false),
      fileSources: [], fed: true)
    let merged = try await store.matchLinks(status: .merged, limit: .max)
    // What the old store said about each event, for the decisions and the comparison.
    var oldOf: [String: ProfileID] = [:]
    var oldCache: [ProfileID: ProfileID] = [:]
    for e in log {
      let key = "\(e.event.source)\u{1F}\(e.event.id)"
      if let c = oldCache[e.profile] {
        oldOf[key] = c
      } else {
        let c = try await store.canonical(e.profile) ?? e.profile
        oldCache[e.profile] = c
        oldOf[key] = c
      }
    }
    try await withThrowingTaskGroup(of: Void.self) { group in
      group.addTask {
        try await graph.run(readers: [:], state: state, store: replayed, sink: StoreSink(replayed))
      }
      let intake = graph.intake
      // Rejected links are decisions too: their events are never linked again. The old profile ids mean
      // nothing to the replay, so the links go by event (profile 0).
      let rejected = try await store.matchLinks(status: .rejected, limit: .max).map { l in
        var byEvent = l
        byEvent.profile = ProfileID(0)
        byEvent.candidate = ProfileID(0)
        return byEvent
      }
      if !rejected.isEmpty { await intake.send(.decisions(rejected, marking: false)) }
      var last: Ticket?
      for start in stride(from: 0, to: log.count, by: 8192) {
        let events = try log[start..<min(start + 8192, log.count)].map { try reader.mapped($0.event) }
        last = await intake.submit(
          MappedBatch(seq: 0, events: events, rejected: [], invalidIdentifiers: 0), source: events.first?.source ?? "")
      }
      // Links reviewers confirmed are decisions, not rules: merge them again, between the new profiles of the
      // event that raised the link and of the profile it was linked to.
      if !merged.isEmpty {
        // Everything so far committed, so the replayed profiles can be read.
        await intake.send(.cut)
        if let last, case .failed(let e) = await last.outcome() { throw e }
        var byKey: [String: ProfileID] = [:]
        for e in try await replayed.loadEvents() { byKey["\(e.event.source)\u{1F}\(e.event.id)"] = e.profile }
        var newOfEvent: [String: ProfileID] = [:]
        var eventsOfOld: [ProfileID: [(id: String, new: ProfileID)]] = [:]
        for e in log {
          let key = "\(e.event.source)\u{1F}\(e.event.id)"
          guard let new = byKey[key], let old = oldOf[key] else { continue }
          newOfEvent[e.event.id] = new
          eventsOfOld[old, default: []].append((e.event.id, new))
        }
        var redo: [MatchLinkRecord] = []
        for link in merged {
          let candidate = try await store.canonical(link.candidate) ?? link.candidate
          // The other side: an event of the merged profile that is not the one that raised the link.
          guard let a = newOfEvent[link.eventID],
            let b = eventsOfOld[candidate]?.first(where: { $0.id != link.eventID && $0.new != a })?.new
          else { continue }
          var again = link
          again.profile = a
          again.candidate = b
          again.status = .confirmed
          redo.append(again)
        }
        // The links stay `merged`.
        if !redo.isEmpty { await intake.send(.decisions(redo, marking: false)) }
      }
      await intake.send(.tick(now))
      intake.finish()
      try await group.waitForAll()
    }
    keep?(replayed)
    var r = ReplayReport()
    r.events = log.count
    // The two partitions of the events, by live profile.
    var newOf: [String: ProfileID] = [:]
    for e in try await replayed.loadEvents() {
      newOf["\(e.event.source)\u{1F}\(e.event.id)"] = await replayed.canonical(e.profile) ?? e.profile
    }
    var oldToNew: [ProfileID: Set<ProfileID>] = [:]
    var newToOld: [ProfileID: Set<ProfileID>] = [:]
    var partsOfOld: [ProfileID: [ProfileID: [String]]] = [:]
    for (key, old) in oldOf {
      guard let new = newOf[key] else { continue }
      oldToNew[old, default: []].insert(new)
      newToOld[new, default: []].insert(old)
      partsOfOld[old, default: [:]][new, default: []].append(String(key.split(separator: "\u{1F}").last ?? ""))
    }
    r.profilesBefore = try await store.stats().profiles
    r.profilesAfter = await replayed.stats().profiles
    for (new, olds) in newToOld where olds.count > 1 {
      let events = newOf.values.filter { $0 == new }.count
      r.merges.append(Merge(profiles: olds.sorted(), events: events))
    }
    r.merges.sort { $0.profiles[0] < $1.profiles[0] }
    for (old, news) in oldToNew where news.count > 1 {
      let parts = (partsOfOld[old] ?? [:]).values.map { $0.sorted() }.sorted { ($0.first ?? "") < ($1.first ?? "") }
      r.splits.append(Split(profile: old, parts: parts))
    }
    r.splits.sort { $0.profile < $1.profile }
    // Profiles that stay one profile (same events before and after): their traits and memberships.
    for (old, news) in oldToNew.sorted(by: { $0.key < $1.key }) {
      guard news.count == 1, let new = news.first, newToOld[new]?.count == 1 else { continue }
      var before: [String: Value] = [:]
      for t in try await store.traits(of: old) { before[t.trait] = t.value }
      for c in try await store.computed(of: old) { before[c.trait] = c.value }
      var after: [String: Value] = [:]
      for t in await replayed.traits(of: new) { after[t.trait] = t.value }
      for c in await replayed.computed(of: new) { after[c.trait] = c.value }
      for name in Set(before.keys).union(after.keys).sorted() {
        let b = before[name].flatMap { $0.isNull ? nil : $0 }
        let a = after[name].flatMap { $0.isNull ? nil : $0 }
        if b == a { continue }
        if let b, let a, Value.equal(b, a) == true { continue }
        r.traitChanges.append(TraitChange(profile: old, trait: name, before: b, after: a))
      }
      let was = Set(try await store.memberships(of: old).map(\.segment))
      let will = Set(await replayed.memberships(of: new).map(\.segment))
      for s in will.subtracting(was).sorted() {
        r.membershipChanges.append(MembershipChange(profile: old, segment: s, entered: true))
      }
      for s in was.subtracting(will).sorted() {
        r.membershipChanges.append(MembershipChange(profile: old, segment: s, entered: false))
      }
    }
    return r
  }
}

extension ReplayReport {
  public var text: String {
    var out =
      "replay of \(events) events under the current configuration: \(profilesBefore) profiles now, \(profilesAfter) after\n"
    func section(_ title: String, _ lines: [String]) {
      out += "\n\(title) (\(lines.count))\n"
      out += lines.isEmpty ? "  none\n" : lines.map { "  " + $0 + "\n" }.joined()
    }
    section(
      "profiles that would merge",
      merges.map { "\($0.profiles.map(\.description).joined(separator: " + ")) (\($0.events) events)" })
    section(
      "profiles that would split",
      splits.map { s in
        "\(s.profile) → " + s.parts.map { "[" + $0.joined(separator: ", ") + "]" }.joined(separator: " ")
      })
    section(
      "trait changes",
      traitChanges.map { "\($0.profile) \($0.trait): \($0.before?.plainText ?? "∅") → \($0.after?.plainText ?? "∅")" })
    section(
      "segment memberships",
      membershipChanges.map { "\($0.profile) would \($0.entered ? "enter" : "exit") \($0.segment)" })
    return out
  }

  public var json: Value {
    .map([
      "events": .int(Int64(events)), "profiles_before": .int(Int64(profilesBefore)),
      "profiles_after": .int(Int64(profilesAfter)),
      "merges": .list(
        merges.map {
          .map(["profiles": .list($0.profiles.map { .string($0.description) }), "events": .int(Int64($0.events))])
        }),
      "splits": .list(
        splits.map { s in
          .map(["profile": .string(s.profile.description), "parts": .list(s.parts.map { .list($0.map(Value.string)) })])
        }),
      "trait_changes": .list(
        traitChanges.map { t in
          .map([
            "profile": .string(t.profile.description), "trait": .string(t.trait), "before": t.before ?? .null,
            "after": t.after ?? .null,
          ])
        }),
      "membership_changes": .list(
        membershipChanges.map { m in
          .map([
            "profile": .string(m.profile.description), "segment": .string(m.segment),
            "change": .string(m.entered ? "enter" : "exit"),
          ])
        }),
    ])
  }
}
