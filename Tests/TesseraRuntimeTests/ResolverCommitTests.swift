import TesseraCompiler
import TesseraIdentity
import TesseraModel
import TesseraRuntime
import TesseraStore
import Testing

/// What the resolver hands the store must match the identity graph at the end of the batch.
@Suite("Resolver commits")
struct ResolverCommitTests {
  static let yaml = """
    pipeline: t
    sources:
      s:
        kind: ndjson
        path: none.ndjson
        emit: track
        event: e
        map: { user_id: u, anonymous_id: a }
    identifiers:
      user_id: { max_per_profile: 1, priority: 1 }
      anonymous_id: { max_per_profile: 50, priority: 9, expires_after: 30d }
    deterministic:
      ids: { link_on: [user_id, anonymous_id] }
    """

  static func plan() throws -> PipelinePlan {
    let files = ["p.yaml": yaml]
    let result = Compiler(environment: [:], readFile: { files[$0] }).compile(pipeline: "p.yaml")
    return try #require(result.plan, "\(result.rendered())")
  }

  static func config() throws -> PipelineConfig { try plan().config }

  static func event(_ n: Int, day: Int, _ ids: [(String, String)]) -> Event {
    Event(
      id: "m\(n)", source: "s", type: "track", name: "e",
      timestamp: Timestamp(microseconds: Int64(day) * 86_400_000_000), receivedAt: Timestamp(microseconds: 0),
      identifiers: ids.map { Identifier($0.0, $0.1) })
  }

  @Test("identifiers attached to a profile merged away later in the same batch are written for the survivor")
  func mergeWithinBatch() async throws {
    var resolver = Resolver(config: try Self.config())
    let batch = MappedBatch(
      seq: 0,
      events: [
        Self.event(1, day: 1, [("anonymous_id", "a2")]),
        Self.event(2, day: 2, [("anonymous_id", "a1"), ("user_id", "u1")]),
        Self.event(3, day: 3, [("anonymous_id", "a2"), ("user_id", "u1")]),
      ], rejected: [], invalidIdentifiers: 0)
    let (commit, stats) = resolver.apply(batch, stored: [])
    #expect(stats.merges == 1)
    let survivor = try #require(commit.merges.first?.survivor)
    for row in commit.identifiers {
      #expect(row.profile == survivor, "\(row.identifier) written for \(row.profile), merged into \(survivor)")
    }
    #expect(
      Set(commit.identifiers.map(\.identifier)) == [
        Identifier("anonymous_id", "a1"), Identifier("anonymous_id", "a2"), Identifier("user_id", "u1"),
      ])
    let store = MemoryStore()
    try await store.commit(commit)
    let snapshot = await store.loadIdentity()
    #expect(snapshot.profiles.count == 1)
    #expect(snapshot.profiles.first?.1.count == 3)
  }

  @Test("an identifier attached and then expired within one batch is written only where it ends")
  func expiryWithinBatch() throws {
    var resolver = Resolver(config: try Self.config())
    let batch = MappedBatch(
      seq: 0,
      events: [
        Self.event(1, day: 1, [("anonymous_id", "shared"), ("user_id", "u1")]),
        Self.event(2, day: 100, [("anonymous_id", "shared"), ("user_id", "u2")]),
      ], rejected: [], invalidIdentifiers: 0)
    let (commit, _) = resolver.apply(batch, stored: [])
    let rows = commit.identifiers.filter { $0.identifier == Identifier("anonymous_id", "shared") }
    #expect(rows.count == 1)
    #expect(rows.first?.profile == resolver.graph.profile(of: Identifier("user_id", "u2")))
  }
}
