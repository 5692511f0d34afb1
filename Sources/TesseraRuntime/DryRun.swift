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
    /// The precedence policy's explanation of why this value wins; for a computed trait, its definition.
    public var why: String
    /// When the winning value was observed; nil for a computed trait (its value sums up many events).
    public var at: Timestamp?
  }

  /// A payload a destination would have received (nothing is sent in a dry run).
  public struct Payload: Sendable {
    public var destination: String
    public var trigger: String
    /// What the destination is asked to do (`OutboxOp`): upsert, enter, exit, event, delete.
    public var op: String
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
  /// Identifier values dropped by normalizers, fields never mapped to a value, records without identifiers.
  public var mapping = MappingReport()
  public var notes: [String] = []

  public init() {}

  /// Builds the report from the committed batches; `before` and `computedBefore` hold the trait and
  /// computed-trait rows the store had before the run. Payloads are the outbox rows the batches carry.
  public static func build(
    config: PipelineConfig, summary: RunSummary, batches: [CommitBatch], before: [TraitRecord],
    computedBefore: [ComputedRecord] = []
  ) -> DryRunReport {
    var r = DryRunReport()
    r.records = summary.recordsRead
    r.events = summary.stats.events
    r.duplicates = summary.stats.duplicates
    r.mapping = MappingReport(notes: summary.stats.notes, batches: batches)
    r.notes += r.mapping.overflow
    var traits: [String: TraitRecord] = [:]
    var computed: [String: ComputedRecord] = [:]
    let policies = batches.last { $0.traitPolicies != nil }?.traitPolicies
    for b in batches {
      r.profilesCreated += b.newProfiles.map(\.id)
      for row in b.identifiers where !(r.identifiers[row.profile] ?? []).contains(row.identifier.description) {
        r.identifiers[row.profile, default: []].append(row.identifier.description)
      }
      r.merges += b.merges
      r.links += b.matchLinks
      r.conflicts += b.conflicts
      r.segmentChanges += b.segmentChanges
      r.rejected += b.rejected
      for t in b.traits {
        traits["\(t.profile.raw)\u{1F}\(t.trait)"] = t
      }
      for c in b.computed {
        computed["\(c.profile.raw)\u{1F}\(c.trait)"] = c
      }
    }
    var previous: [String: Value] = [:]
    for t in before { previous["\(t.profile.raw)\u{1F}\(t.trait)"] = t.value }
    let absorbed = Set(r.merges.map(\.absorbed))
    for key in traits.keys.sorted() {
      guard let t = traits[key], !absorbed.contains(t.profile) else { continue }
      let old = previous[key]
      if old == t.value { continue }
      let why = t.why(policies: policies) ?? ""
      r.traitChanges.append(
        TraitChange(
          profile: t.profile, trait: t.trait, before: old, after: t.value, source: t.source, why: why, at: t.timestamp))
    }
    // Computed traits change with the events they count, and with time (a window's old buckets expiring).
    var computedPrevious: [String: Value] = [:]
    for c in computedBefore { computedPrevious["\(c.profile.raw)\u{1F}\(c.trait)"] = c.value }
    let definitions = Dictionary(config.computed.map { ($0.name, Self.definition($0)) }) { a, _ in a }
    for key in computed.keys.sorted() {
      guard let c = computed[key], !absorbed.contains(c.profile) else { continue }
      let old = computedPrevious[key]
      if (old ?? .null) == c.value { continue }
      r.traitChanges.append(
        TraitChange(
          profile: c.profile, trait: c.trait, before: old, after: c.value, source: "computed",
          why: definitions[c.trait] ?? "", at: nil))
    }
    r.traitChanges.sort { ($0.profile, $0.trait) < ($1.profile, $1.trait) }
    // What destinations would receive: the outbox rows the run committed (nothing is sent).
    let triggers = Dictionary(config.destinations.map { ($0.name, $0.trigger.rawValue) }) { a, _ in a }
    for b in batches {
      for o in b.outbox {
        guard case .map(let body) = o.payload else { continue }
        r.payloads.append(
          Payload(
            destination: o.destination, trigger: triggers[o.destination] ?? "", op: o.op.rawValue, profile: o.profile,
            body: body))
      }
    }
    for (purpose, n) in summary.stats.withheld.sorted(by: { $0.key < $1.key }) {
      r.notes.append("\(n) payload\(n == 1 ? "" : "s") withheld: the profile has not consented to `\(purpose)`")
    }
    return r
  }
}

extension DryRunReport {
  /// A computed trait's definition as the report shows it: `count where event == "Order Completed" over 90d`.
  static func definition(_ d: ComputedTraitDecl) -> String {
    var out = d.aggregate.rawValue
    if let of = d.of { out += " of \(of.text)" }
    if let filter = d.filter { out += " where \(filter.text)" }
    if let window = d.window { out += " over \(window)" }
    return out
  }

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
            "destination": .string(p.destination), "trigger": .string(p.trigger), "op": .string(p.op),
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
      "mapping": .map(mapping.json),
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
      payloads.map { p in "\(p.destination) ← \(p.profile) \(p.op): " + JSON.encode(.map(p.body)) })
    section(
      "rejected records",
      rejected.map { r in "\(r.source)\(r.line.map { ":\($0)" } ?? ""): \(r.reason)" })
    section("identifier values dropped by normalizers", mapping.droppedLines)
    section("mapped fields null on every record", mapping.nullLines)
    section("records without an identifier", mapping.unidentifiedLines)
    for n in notes { out += "\nnote: \(n)\n" }
    return out
  }
}
