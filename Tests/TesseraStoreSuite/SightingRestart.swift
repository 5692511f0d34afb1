import TesseraCompiler
import TesseraIdentity
import TesseraModel
import TesseraRuntime
import TesseraStore

/// A writer that restarts decides as if it had never stopped: the device sightings it kept are in the store,
/// written with the events that produced them, read back when the next writer starts, and gone with an erased
/// person. Run against each store, opened afresh (`open`) for every writer as a restarted process opens it.
public enum SightingRestart {
  static let pipeline = """
    pipeline: t
    sources:
      web: { kind: ndjson, path: none.ndjson, emit: page, map: { anonymous_id: a, context.ip: ip } }
    identifiers:
      user_id: { max_per_profile: 1, priority: 1 }
      anonymous_id: { max_per_profile: 50, expires_after: 730d, priority: 9 }
    deterministic:
      ids: { link_on: [user_id, anonymous_id] }
    probabilistic:
      device:
        blocking: [[signals.ip]]
        compare:
          signals.ip:
            - { level: within 30 minutes, m: 0.7, u: 0.0005 }
            - { level: else, m: 0.3, u: 0.9995 }
          signals.os:
            - { level: exact, m: 0.95, u: 0.1 }
            - { level: else, m: 0.05, u: 0.9 }
        prior: 0.001
        thresholds: { merge: 0.9, review: 0.8 }
    """

  static let mac =
    "Mozilla/5.0 (Macintosh; Intel Mac OS X 10_15_7) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/120.0.0.0 Safari/537.36"
  static let macSafari =
    "Mozilla/5.0 (Macintosh; Intel Mac OS X 10_15_7) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/17.2 Safari/605.1.15"

  static func view(_ id: String, anon: String, user: String? = nil, minutes: Int64, ua: String) -> Event {
    var ids = [Identifier("anonymous_id", anon)]
    if let user { ids.append(Identifier("user_id", user)) }
    let at = Timestamp(microseconds: 1_780_000_000_000_000 + minutes * 60_000_000)
    return Event(
      id: id, source: "web", type: "page", name: nil, timestamp: at, receivedAt: at, identifiers: ids,
      context: ["ip": .string("198.51.100.7"), "userAgent": .string(ua)])
  }

  /// A writer started on the store as it is now resolves `events` as one transaction and commits it.
  static func resolve(_ events: [Event], _ config: PipelineConfig, _ store: any Store) async throws -> CommitBatch {
    var resolver = try await Resolver.restored(config: config, from: store, now: nil)
    let (commit, _) = resolver.apply(
      MappedBatch(seq: 0, events: events, rejected: [], invalidIdentifiers: 0), stored: [])
    try await store.commit(commit)
    return commit
  }

  /// The failures (empty when the store passes).
  public static func run(open: () async throws -> any Store) async throws -> [String] {
    var f = StoreSuite.Failures()
    let result = Compiler(environment: [:], readFile: { $0 == "p.yaml" ? pipeline : nil }).compile(pipeline: "p.yaml")
    guard let config = result.plan?.config else { return ["the pipeline does not compile: \(result.rendered())"] }
    // Ada signs in on Chrome; the writer stops.
    let first = try await resolve(
      [view("e1", anon: "chrome", user: "ada", minutes: 0, ua: mac)], config, try await open())
    f.expect(first.sightings.map(\.profile), [ProfileID(1)], "the first writer's sightings, written with its event")
    // A new writer: Safari on the same machine 20 minutes later joins Ada through her stored sighting.
    let store = try await open()
    f.expect(
      try await store.loadSightings().first?.sightings.map { $0.signals["signals.ip"] ?? "" }, ["198.51.100.7"],
      "the stored sighting")
    let second = try await resolve([view("e2", anon: "safari", minutes: 20, ua: macSafari)], config, store)
    f.expect(second.matchLinks.map(\.status), [.joined], "the link after a restart")
    f.expect(second.events.map(\.profile), [ProfileID(1)], "the second browser's profile")
    // Ada is erased: her sightings go with her, and a third browser minutes later reaches nobody.
    let erased = try await open()
    _ = try await erased.erase(profile: ProfileID(1), values: [], suppress: [])
    f.expect(try await erased.loadSightings().count, 0, "sightings after erasing the person")
    let third = try await resolve([view("e3", anon: "edge", minutes: 25, ua: mac)], config, try await open())
    f.expect(third.matchLinks.count, 0, "links to an erased person")
    f.expect(third.newProfiles.count, 1, "the third browser's own profile")
    return f.messages
  }
}
