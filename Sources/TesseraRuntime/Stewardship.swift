import Foundation
import TesseraCompiler
import TesseraIdentity
import TesseraMatching
import TesseraModel
import TesseraStore

/// What a data steward does to the identity graph: undo a merge, decide candidate links, see why two sides
/// score what they score. Shared by `tessera unmerge`, `tessera review` and the server's console API.
public enum Stewardship {
  /// A request the store's state cannot satisfy; `description` says why and what to do instead.
  public struct Refusal: Error, Sendable, CustomStringConvertible {
    public var description: String
    public init(_ description: String) { self.description = description }
  }

  /// What `unmerge` undid and what the re-resolution changed.
  public struct Unmerged: Sendable {
    public var merge: MergeRecord
    /// The identifier pair that no longer links the two, or nil when a confirmed link was rejected.
    public var separated: (Identifier, Identifier)?
    public var report: ReplayReport
  }

  /// Undoes the last merge of live profile `live` that absorbed `absorbed`: a deterministic merge by separating
  /// the two identifiers that linked the profiles, a confirmed one by rejecting its link; then re-resolves the
  /// store under `plan` (`ReplayReport.apply`). The caller makes sure nothing else writes meanwhile.
  public static func unmerge(
    _ live: ProfileID, absorbed: ProfileID, plan: PipelinePlan, store: any Store, now: Timestamp, workers: Int
  ) async throws -> Unmerged {
    let merges = try await store.merges(involving: live)
    guard let m = merges.last(where: { $0.absorbed == absorbed }) else {
      let listed = merges.map { "\($0.absorbed) → \($0.survivor)" }.joined(separator: ", ")
      throw Refusal("\(live) has no merge absorbing \(absorbed)" + (listed.isEmpty ? "" : "; its merges: \(listed)"))
    }
    var batch = CommitBatch()
    var separated: (Identifier, Identifier)?
    if m.evidence.count >= 2 {
      batch.separations = [Separation(m.evidence[0], m.evidence[1])]
      separated = (m.evidence[0], m.evidence[1])
    } else {
      let links = try await store.matchLinks(status: .merged, limit: .max).filter {
        Set([$0.profile, $0.candidate]) == Set([m.absorbed, m.survivor])
      }
      guard !links.isEmpty else {
        throw Refusal(
          "the merge \(m.absorbed) → \(m.survivor) (rule \(m.rule)) has no identifier pair or confirmed link to undo")
      }
      batch.linkStatus = links.map { LinkStatusChange($0.id, to: .rejected) }
    }
    try await store.commit(batch)
    let report = try await ReplayReport.apply(plan: plan, store: store, now: now, workers: workers)
    return Unmerged(merge: m, separated: separated, report: report)
  }

  /// Records a reviewer's decision on links waiting for review; refuses (storing nothing) when one is not.
  public static func decide(_ ids: [Int64], _ status: MatchLinkRecord.Status, store: any Store) async throws {
    for id in ids {
      guard try await store.matchLink(id: id)?.status == .review else {
        throw Refusal("link \(id) is not waiting for review; `tessera review` lists those that are")
      }
    }
    var batch = CommitBatch()
    batch.linkStatus = ids.map { LinkStatusChange($0, to: status) }
    try await store.commit(batch)
  }

  /// Confirms links and merges them at once: a run without sources applies the decisions under `plan`.
  public static func confirm(_ ids: [Int64], plan: PipelinePlan, store: any Store, now: Timestamp) async throws
    -> RunSummary
  {
    try await decide(ids, .confirmed, store: store)
    var runner = PipelineRunner(plan: plan, store: store, readers: [:])
    runner.now = now
    return try await runner.run()
  }

  /// One side of a comparison: the value of a field (a trait or an identifier kind) as text, nil when absent.
  public typealias Side = (id: String, value: @Sendable (String) -> String?)

  /// A live profile as a side: its current traits, then its identifiers.
  public static func side(of profile: ProfileID, in store: any Store) async throws -> Side {
    let traits = try await store.traits(of: profile)
    let identifiers = try await store.identifiers(of: profile)
    return (
      profile.description,
      { field in
        if let t = traits.first(where: { $0.trait == field }) { return t.value.isNull ? nil : t.value.plainText }
        return identifiers.first(where: { $0.0.kind == field })?.0.value
      }
    )
  }

  /// A mapped event as a side: its traits, then its identifiers.
  public static func side(of event: Event) -> Side {
    (
      "event \(event.id)",
      { field in
        if let v = event.traits[field], !v.isNull { return v.plainText }
        return event.identifiers.first(where: { $0.kind == field })?.value
      }
    )
  }

  /// A profile as its own events made it (mapped, newest first): each trait's newest value, its identifiers. What
  /// an absorbed profile and its survivor looked like before a merge, from the events each held.
  public static func side(of profile: ProfileID, events: [Event]) -> Side {
    var traits: [String: String] = [:]
    var identifiers: [String: String] = [:]
    for e in events {
      for (k, v) in e.traits where traits[k] == nil && !v.isNull { traits[k] = v.plainText }
      for i in e.identifiers where identifiers[i.kind] == nil { identifiers[i.kind] = i.value }
    }
    let (t, i) = (traits, identifiers)
    return (profile.description, { t[$0] ?? i[$0] })
  }

  /// Each comparison of `rule` between two sides: level, m, u, weight and the running total (the waterfall).
  public static func explain(
    _ a: Side, _ b: Side, rule: ProbabilisticRule, config: PipelineConfig, model: MatchModel? = nil
  ) -> Explanation {
    let model = model ?? MatchModel(rule: rule)
    return explain(a, b, model: model, template: RecordSetBuilder(model: model, rule: rule, config: config))
  }

  /// `explain` with the rule's model and an empty builder made once for many pairs (a page of the review queue):
  /// making them costs more than comparing one pair.
  public static func explain(_ a: Side, _ b: Side, model: MatchModel, template: RecordSetBuilder) -> Explanation {
    var builder = template
    builder.append(id: a.id, value: a.value)
    builder.append(id: b.id, value: b.value)
    return Explanation(model: model, records: builder.finish(), 0, 1)
  }
}
