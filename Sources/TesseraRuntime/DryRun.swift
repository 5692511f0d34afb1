import Foundation
import TesseraCompiler
import TesseraIdentity
import TesseraLanguage
import TesseraModel
import TesseraStore

/// What a run over sample records did, from the batches it committed to a throwaway store: the report of
/// `tessera dry-run` and what `tessera test` checks expectations against.
public struct DryRunReport: Sendable {
  public struct TraitChange: Sendable {
    public var profile: ProfileID
    public var trait: String
    /// The value before the run (from the store the dry run started from); nil when there was none.
    public var before: Value?
    public var after: Value
    public var source: String
    /// The precedence policy's explanation of why this value wins.
    public var why: String
    /// When the winning value was observed.
    public var at: Timestamp
  }

  /// A payload a destination would have received (nothing is sent in a dry run).
  public struct Payload: Sendable {
    public var destination: String
    public var trigger: String
    public var profile: ProfileID
    public var body: [String: Value]
  }

  public var records = 0
  public var events = 0
  public var duplicates = 0
  public var profilesCreated: [ProfileID] = []
  /// The identifiers each profile received in the run.
  public var identifiers: [ProfileID: [String]] = [:]
  public var merges: [MergeRecord] = []
  public var links: [MatchLinkRecord] = []
  public var conflicts: [ConflictRecord] = []
  public var traitChanges: [TraitChange] = []
  public var segmentChanges: [SegmentChangeRecord] = []
  public var payloads: [Payload] = []
  public var rejected: [RejectedRecord] = []
  public var notes: [String] = []

  public init() {}

  /// Builds the report from the committed batches; `before` holds the trait rows the store had before the
  /// run, `store` the state after it (for payloads, which read whole profiles).
  public static func build(
    config: PipelineConfig, summary: RunSummary, batches: [CommitBatch], before: [TraitRecord], store: any Store
  ) async throws -> DryRunReport {
    var r = DryRunReport()
    r.records = summary.recordsRead
    r.events = summary.stats.events
    r.duplicates = summary.stats.duplicates
    var traits: [String: TraitRecord] = [:]
    var changedTraits: [ProfileID: Set<String>] = [:]
    for b in batches {
      r.profilesCreated += b.newProfiles.map(\.0)
      for (i, p, _) in b.identifiers where !(r.identifiers[p] ?? []).contains(i.description) {
        r.identifiers[p, default: []].append(i.description)
      }
      r.merges += b.merges
      r.links += b.matchLinks
      r.conflicts += b.conflicts
      r.segmentChanges += b.segmentChanges
      r.rejected += b.rejected
      for t in b.traits {
        traits["\(t.profile.raw)\u{1F}\(t.trait)"] = t
        changedTraits[t.profile, default: []].insert(t.trait)
      }
    }
    var previous: [String: Value] = [:]
    for t in before { previous["\(t.profile.raw)\u{1F}\(t.trait)"] = t.value }
    let absorbed = Set(r.merges.map(\.absorbed))
    for key in traits.keys.sorted() {
      guard let t = traits[key], !absorbed.contains(t.profile) else { continue }
      let old = previous[key]
      if old == t.value { continue }
      let why: String
      if case .map(let m) = t.state, case .string(let s) = m["why"] ?? .null { why = s } else { why = "" }
      r.traitChanges.append(
        TraitChange(
          profile: t.profile, trait: t.trait, before: old, after: t.value, source: t.source, why: why, at: t.timestamp))
    }
    r.traitChanges.sort { ($0.profile, $0.trait) < ($1.profile, $1.trait) }
    try await r.evaluatePayloads(config, changedTraits: changedTraits, batches: batches, store: store)
    return r
  }

  mutating func evaluatePayloads(
    _ config: PipelineConfig, changedTraits: [ProfileID: Set<String>], batches: [CommitBatch], store: any Store
  ) async throws {
    guard !config.destinations.isEmpty else { return }
    var profileCache: [ProfileID: ProfileState] = [:]
    func state(_ p: ProfileID) async throws -> ProfileState {
      if let s = profileCache[p] { return s }
      let s = try await ProfileState.load(p, from: store)
      profileCache[p] = s
      return s
    }
    var withheld: [String: Int] = [:]
    for d in config.destinations {
      // A destination that needs a purpose gets only profiles that consented to it (consent is the profile
      // state `consent.PURPOSE`, most recent decision wins; no decision is no consent).
      func consents(_ s: ProfileState) -> Bool {
        guard let purpose = d.consent else { return true }
        if s.fields["traits"]?["consent." + purpose] == .bool(true) { return true }
        withheld[purpose, default: 0] += 1
        return false
      }
      switch d.trigger {
      case .segment_changes:
        // A withdrawal in this run: the destination is told to remove the person from each audience it holds.
        if let purpose = d.consent {
          for t in traitChanges
          where t.trait == "consent." + purpose && t.before == .bool(true) && t.after == .bool(false) {
            let live = try await store.canonical(t.profile) ?? t.profile
            let s0 = try await state(live)
            for segment in d.segments where s0.fields["segments"]?[segment] == .bool(true) {
              var s = s0
              s.variables["change.segment"] = .string(segment)
              s.variables["change.entered"] = .bool(false)
              s.variables["change.exited"] = .bool(true)
              s.variables["change.at"] = .timestamp(t.at)
              payloads.append(
                Payload(destination: d.name, trigger: "consent_withdrawn", profile: live, body: s.evaluate(d)))
            }
          }
        }
        for c in segmentChanges where d.segments.isEmpty || d.segments.contains(c.segment) {
          let live = try await store.canonical(c.profile) ?? c.profile
          var s = try await state(live)
          guard consents(s) else { continue }
          s.variables["change.segment"] = .string(c.segment)
          s.variables["change.entered"] = .bool(c.entered)
          s.variables["change.exited"] = .bool(!c.entered)
          s.variables["change.at"] = .timestamp(c.at)
          payloads.append(Payload(destination: d.name, trigger: "segment_changes", profile: live, body: s.evaluate(d)))
        }
      case .profile_changes:
        var live: [ProfileID: Set<String>] = [:]
        for (p, names) in changedTraits {
          let l = try await store.canonical(p) ?? p
          live[l, default: []].formUnion(names)
        }
        for p in live.keys.sorted() {
          var s = try await state(p)
          guard consents(s) else { continue }
          s.variables["changed"] = .list((live[p] ?? []).sorted().map(Value.string))
          if let f = d.filter, !f.evaluate(s.env(d.scope)).isTrue { continue }
          payloads.append(Payload(destination: d.name, trigger: "profile_changes", profile: p, body: s.evaluate(d)))
        }
      case .events:
        for b in batches {
          for e in b.events {
            var s = ProfileState()
            s.variables = [
              "event": e.event.name.map(Value.string) ?? .null, "type": .string(e.event.type),
              "source": .string(e.event.source), "timestamp": .timestamp(e.event.timestamp),
              "message_id": .string(e.event.id), "profile.id": .string(e.profile.description),
            ]
            s.open = [
              "properties": .map(e.event.properties), "traits": .map(e.event.traits), "context": .map(e.event.context),
            ]
            for i in e.event.identifiers where s.fields["identifiers"]?[i.kind] == nil {
              s.fields["identifiers", default: [:]][i.kind] = .string(i.value)
            }
            if let f = d.filter, !f.evaluate(s.env(d.scope)).isTrue { continue }
            let live = try await store.canonical(e.profile) ?? e.profile
            if d.consent != nil, !consents(try await state(live)) { continue }
            payloads.append(Payload(destination: d.name, trigger: "events", profile: live, body: s.evaluate(d)))
          }
        }
      }
    }
    for (purpose, n) in withheld.sorted(by: { $0.key < $1.key }) {
      notes.append("\(n) payload\(n == 1 ? "" : "s") withheld: the profile has not consented to `\(purpose)`")
    }
  }

  /// The values a payload expression can read about one profile.
  struct ProfileState {
    var variables: [String: Value] = [:]
    var fields: [String: [String: Value]] = [:]
    var open: [String: Value] = [:]

    static func load(_ p: ProfileID, from store: any Store) async throws -> ProfileState {
      var s = ProfileState()
      s.variables["profile.id"] = .string(p.description)
      for t in try await store.traits(of: p) { s.fields["traits", default: [:]][t.trait] = t.value }
      for c in try await store.computed(of: p) { s.fields["traits", default: [:]][c.trait] = c.value }
      for (i, _) in try await store.identifiers(of: p).sorted(by: { $0.0 < $1.0 })
      where s.fields["identifiers"]?[i.kind] == nil {
        s.fields["identifiers", default: [:]][i.kind] = .string(i.value)
      }
      for m in try await store.memberships(of: p) { s.fields["segments", default: [:]][m.segment] = .bool(true) }
      return s
    }

    /// The slots of `scope` filled by name; what the profile lacks reads as null (segments as false).
    func env(_ scope: Scope) -> Env {
      var slots = Array(repeating: Value.null, count: scope.slotCount)
      for (name, v) in scope.variables { slots[v.slot] = variables[name] ?? .null }
      for (ns, namespace) in scope.namespaces {
        for (name, v) in namespace.fields {
          slots[v.slot] = fields[ns]?[name] ?? variables["\(ns).\(name)"] ?? (ns == "segments" ? .bool(false) : .null)
        }
        if let o = namespace.openSlot { slots[o] = open[ns] ?? .map([:]) }
      }
      return Env(slots: slots)
    }

    func evaluate(_ d: DestinationDecl) -> [String: Value] {
      let e = env(d.scope)
      var body: [String: Value] = [:]
      for (key, expr) in d.payload { body[key] = expr.evaluate(e) }
      return body
    }
  }
}

extension DryRunReport {
  public var json: Value {
    func opt(_ v: Value?) -> Value { v ?? .null }
    return .map([
      "records": .int(Int64(records)), "events": .int(Int64(events)), "duplicates": .int(Int64(duplicates)),
      "profiles_created": .list(
        profilesCreated.map { p in
          .map(["profile": .string(p.description), "identifiers": .list((identifiers[p] ?? []).map(Value.string))])
        }),
      "merges": .list(
        merges.map { m in
          .map([
            "survivor": .string(m.survivor.description), "absorbed": .string(m.absorbed.description),
            "rule": .string(m.rule), "probability": .double(m.score),
            "evidence": .list(m.evidence.map { .string($0.description) }), "event_id": .string(m.eventID),
          ])
        }),
      "match_links": .list(
        links.map { l in
          .map([
            "rule": .string(l.rule), "status": .string(l.status.rawValue), "profile": .string(l.profile.description),
            "candidate": .string(l.candidate.description), "probability": .double(l.probability),
            "event_id": .string(l.eventID), "reason": .string(l.reason),
          ])
        }),
      "conflicts": .list(
        conflicts.map { c in
          .map([
            "kept": .string(c.kept.description), "other": opt(c.other.map { .string($0.description) }),
            "kind": .string(c.kind), "reason": .string(c.reason), "event_id": .string(c.eventID),
          ])
        }),
      "trait_changes": .list(
        traitChanges.map { t in
          .map([
            "profile": .string(t.profile.description), "trait": .string(t.trait), "before": opt(t.before),
            "after": t.after, "source": .string(t.source), "why": .string(t.why),
          ])
        }),
      "segment_changes": .list(
        segmentChanges.map { c in
          .map([
            "segment": .string(c.segment), "profile": .string(c.profile.description),
            "change": .string(c.entered ? "entered" : "exited"), "at": .string(c.at.iso8601),
          ])
        }),
      "payloads": .list(
        payloads.map { p in
          .map([
            "destination": .string(p.destination), "trigger": .string(p.trigger),
            "profile": .string(p.profile.description), "body": .map(p.body),
          ])
        }),
      "rejected": .list(
        rejected.map { r in
          .map([
            "source": .string(r.source), "line": opt(r.line.map { .int(Int64($0)) }), "reason": .string(r.reason),
            "record": .string(r.record),
          ])
        }),
      "notes": .list(notes.map(Value.string)),
    ])
  }

  public var text: String {
    var out = "dry run: \(records) records → \(events) events (\(duplicates) duplicates), nothing written or sent\n"
    func section(_ title: String, _ lines: [String]) {
      out += "\n\(title) (\(lines.count))\n"
      out += lines.isEmpty ? "  none\n" : lines.map { "  " + $0 + "\n" }.joined()
    }
    section(
      "profiles created",
      profilesCreated.map { p in
        p.description + ((identifiers[p] ?? []).isEmpty ? "" : "  " + (identifiers[p] ?? []).joined(separator: ", "))
      })
    section(
      "merges",
      merges.map { m in
        "\(m.absorbed) → \(m.survivor)  rule \(m.rule)"
          + (m.evidence.isEmpty
            ? String(format: "  probability %.6f", m.score)
            : " on " + m.evidence.map(\.description).joined(separator: " + "))
          + "  (event \(m.eventID))"
      })
    section(
      "probabilistic matches",
      links.map { l in
        String(
          format: "%@ %@ ~ %@  %.6f  (event %@)", l.status.rawValue, l.profile.description,
          l.candidate.description, l.probability, l.eventID) + (l.reason.isEmpty ? "" : "  \(l.reason)")
      })
    section("conflicts (refused)", conflicts.map { "\($0.kept) × \($0.other?.description ?? "—")  \($0.reason)" })
    section(
      "trait changes",
      traitChanges.map { t in
        "\(t.profile) \(t.trait): \(t.before.map(\.plainText) ?? "∅") → \(t.after.plainText)  from \(t.source) — \(t.why)"
      })
    section(
      "segment changes",
      segmentChanges.map { "\($0.profile) \($0.entered ? "enters" : "exits") \($0.segment) at \($0.at.iso8601)" })
    section(
      "destination payloads (not sent)",
      payloads.map { p in "\(p.destination) ← \(p.profile): " + JSON.encode(.map(p.body)) })
    section(
      "rejected records",
      rejected.map { r in "\(r.source)\(r.line.map { ":\($0)" } ?? ""): \(r.reason)" })
    for n in notes { out += "\nnote: \(n)\n" }
    return out
  }
}
