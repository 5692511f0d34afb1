import TesseraCompiler
import TesseraIdentity
import TesseraModel
import TesseraStore

/// Counts of what resolution did, for the progress line and the run summary.
public struct ResolveStats: Sendable, Hashable {
  public var events = 0
  public var duplicates = 0
  public var profilesCreated = 0
  public var merges = 0
  public var conflicts = 0
  public var rejected = 0
  public var invalidIdentifiers = 0
  public init() {}

  public mutating func add(_ o: ResolveStats) {
    events += o.events
    duplicates += o.duplicates
    profilesCreated += o.profilesCreated
    merges += o.merges
    conflicts += o.conflicts
    rejected += o.rejected
    invalidIdentifiers += o.invalidIdentifiers
  }
}

/// The single writer of identity and profile state: resolves each event to a profile, re-applies the
/// precedence policies on merges, and turns a batch of events into one `CommitBatch`.
public struct Resolver: Sendable {
  public private(set) var graph: IdentityGraph
  /// Trait summaries of every live profile.
  public private(set) var profiles: [ProfileID: [String: TraitState]] = [:]
  let policies: [String: TraitPolicy]
  let defaultPolicy: TraitPolicy
  /// Events resolved during this run, so duplicates are skipped before they reach the store.
  var seen: Set<EventKey> = []

  public init(config: PipelineConfig, identity: IdentitySnapshot = IdentitySnapshot(), traits: [TraitRecord] = []) {
    self.graph = identity.graph(rules: Resolver.kindRules(config))
    var policies: [String: TraitPolicy] = [:]
    for t in config.traits { policies[t.name] = TraitPolicy(kind: t.policy, sources: t.sources) }
    self.policies = policies
    self.defaultPolicy = TraitPolicy(kind: config.defaultPolicy)
    for t in traits {
      guard let state = TraitState(encoded: t.state) else { continue }
      profiles[t.profile, default: [:]][t.trait] = state
    }
  }

  /// Identifier kinds as the identity graph sees them.
  public static func kindRules(_ config: PipelineConfig) -> [String: KindRule] {
    var rules: [String: KindRule] = [:]
    for id in config.identifiers {
      let rule = config.deterministic.first { $0.linkOn.contains(id.name) }?.name
      rules[id.name] = KindRule(
        priority: id.priority, maxPerProfile: id.maxPerProfile, blocked: id.blocked, expiresAfter: id.expiresAfter,
        rule: rule)
    }
    return rules
  }

  public func policy(for trait: String) -> TraitPolicy { policies[trait] ?? defaultPolicy }

  /// Resolves and unifies a batch. `stored` names the events the store already holds.
  public mutating func apply(_ batch: MappedBatch, stored: Set<EventKey>) -> (CommitBatch, ResolveStats) {
    var commit = CommitBatch()
    var stats = ResolveStats()
    stats.rejected = batch.rejected.count
    stats.invalidIdentifiers = batch.invalidIdentifiers
    commit.rejected = batch.rejected
    var dirty: Set<TraitKey> = []
    for event in batch.events {
      let key = EventKey(source: event.source, id: event.id)
      if stored.contains(key) || !seen.insert(key).inserted {
        stats.duplicates += 1
        continue
      }
      let r = graph.resolve(event.identifiers, eventID: event.id, at: event.timestamp)
      if r.created {
        commit.newProfiles.append((r.profile, event.timestamp))
        stats.profilesCreated += 1
      }
      for m in r.merges {
        if let absorbed = profiles.removeValue(forKey: m.absorbed) {
          var survivor = profiles[m.survivor] ?? [:]
          for (trait, state) in absorbed {
            survivor[trait] = policy(for: trait).merge(survivor[trait], state)
          }
          profiles[m.survivor] = survivor
        }
        // Every trait of the survivor may have changed; the absorbed profile's rows go with the merge.
        for trait in (profiles[m.survivor] ?? [:]).keys { dirty.insert(TraitKey(profile: m.survivor, trait: trait)) }
        dirty = Set(dirty.map { $0.profile == m.absorbed ? TraitKey(profile: m.survivor, trait: $0.trait) : $0 })
      }
      commit.merges += r.merges
      commit.conflicts += r.conflicts
      stats.merges += r.merges.count
      stats.conflicts += r.conflicts.count
      for i in r.attached + r.touched { commit.identifiers.append((i, r.profile, event.timestamp)) }
      commit.released += r.expired
      var state = profiles[r.profile] ?? [:]
      for (trait, value) in event.traits where !value.isNull {
        let o = Observation(value: value, source: event.source, eventID: event.id, timestamp: event.timestamp)
        state[trait] = policy(for: trait).add(o, to: state[trait])
        dirty.insert(TraitKey(profile: r.profile, trait: trait))
      }
      profiles[r.profile] = state
      var resolved = event
      resolved.identifiers = event.identifiers.sorted()
      commit.events.append(StoredEvent(event: resolved, profile: r.profile))
      stats.events += 1
    }
    for k in dirty.sorted(by: { ($0.profile, $0.trait) < ($1.profile, $1.trait) }) {
      let p = graph.canonical(k.profile)
      guard let s = profiles[p]?[k.trait] else { continue }
      var state = s.encoded
      if case .map(var m) = state {
        m["why"] = .string(policy(for: k.trait).explain(s))
        state = .map(m)
      }
      commit.traits.append(
        TraitRecord(
          profile: p, trait: k.trait, value: s.value, source: s.winner.source, eventID: s.winner.eventID,
          timestamp: s.winner.timestamp, state: state))
    }
    return (commit, stats)
  }
}

struct TraitKey: Hashable {
  var profile: ProfileID
  var trait: String
}
