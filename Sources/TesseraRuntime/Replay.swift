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

  /// Replays the log of `store` into a fresh in-memory store under `config` at `now`, and compares.
  public static func compare(config: PipelineConfig, store: any Store, now: Timestamp) async throws -> ReplayReport {
    let log = try await store.loadEvents()
    let replayed = MemoryStore()
    var resolver = Resolver(config: config, now: now)
    var seq = 0
    for start in stride(from: 0, to: log.count, by: 8192) {
      let events = log[start..<min(start + 8192, log.count)].map(\.event)
      let (commit, _) = resolver.apply(
        MappedBatch(seq: seq, events: events, rejected: [], invalidIdentifiers: 0), stored: [])
      try await replayed.commit(commit)
      seq += 1
    }
    try await replayed.commit(resolver.tick())
    var r = ReplayReport()
    r.events = log.count
    // The two partitions of the events, by live profile.
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
    var newOf: [String: ProfileID] = [:]
    for e in await replayed.loadEvents() {
      newOf["\(e.event.source)\u{1F}\(e.event.id)"] = try await replayed.canonical(e.profile) ?? e.profile
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
      _ = new
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
