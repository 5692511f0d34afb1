import TesseraStore

/// Joins what the identity stage and the profile partitions wrote about one store transaction into the one
/// `CommitBatch` the store commits, in an order that does not depend on the number of partitions: rows by
/// settle (`phase`) and profile, outbox rows by `OutboxOrder`.
enum CommitAssembly {
  static func assemble(_ identity: IdentityPart, _ parts: [ProfilePart]) -> CommitBatch {
    var commit = identity.commit
    let sections =
      parts.count == 1
      ? parts[0].sections
      : parts.flatMap(\.sections).sorted { ($0.phase, $0.profile) < ($1.phase, $1.profile) }
    for s in sections {
      commit.traits += s.traits
      commit.computed += s.computed
      commit.segmentChanges += s.segmentChanges
    }
    commit.outbox = parts.flatMap(\.outbox).sorted { $0.key < $1.key }.map(\.row)
    return commit
  }

  /// The transaction's stats: the identity stage's, with the partitions' routing counts.
  static func stats(_ identity: IdentityPart, _ parts: [ProfilePart]) -> ResolveStats {
    var stats = identity.stats
    for p in parts {
      stats.queued += p.stats.queued
      stats.withheld.merge(p.stats.withheld, uniquingKeysWith: +)
    }
    return stats
  }
}
