import Foundation
import TesseraCompiler
import TesseraConnectors
import TesseraMeasurement
import TesseraModel
import TesseraRuntime
import TesseraSQLite
import TesseraStore
import Testing

/// A pipeline with one NDJSON source of Segment-shaped events and a `measurement` section, run into a real
/// SQLite store in a temporary folder.
struct Fixture {
  let dir: String
  let store: SQLiteStore

  static let pipeline = """
    pipeline: measured
    identifiers:
      user_id: {}
      email: { normalize: email }
      anonymous_id: {}
    deterministic:
      people: { link_on: [user_id, email, anonymous_id] }
    sources:
      web:
        kind: ndjson
        path: events.ndjson
        id: id
        timestamp: ts
        map:
          type: type
          event: 'coalesce(name, "")'
          anonymous_id: anon
          user_id: user
          properties: properties
          context: context
    measurement:
      touchpoints:
        visit:
          where: type == "page"
          channel: coalesce(context.campaign.medium, url_host(context.page.referrer))
          campaign: context.campaign.name
      conversions:
        purchase:
          where: event == "Order Completed"
          value: properties.revenue
      funnels:
        checkout:
          steps:
            - { name: viewed, where: 'event == "Product Viewed"' }
            - { name: cart, where: 'event == "Added to Cart"' }
            - { name: ordered, where: 'event == "Order Completed"' }
          window: 1h
      attribution:
        credit:
          conversion: purchase
          lookback: 14d
          time_decay: { half_life: 7d }
        by_campaign:
          conversion: purchase
          lookback: 14d
          credit_to: campaign
    """

  init(events: [String]) async throws {
    dir = FileManager.default.temporaryDirectory.appendingPathComponent("tessera-measure-\(UUID().uuidString)").path
    try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
    try Self.pipeline.write(toFile: dir + "/pipeline.yaml", atomically: true, encoding: .utf8)
    store = try SQLiteStore(path: dir + "/store.sqlite")
    try await run(events)
  }

  var plan: PipelinePlan {
    get throws {
      let r = Compiler(environment: [:]).compile(pipeline: dir + "/pipeline.yaml")
      return try #require(r.plan, "\(r.rendered())")
    }
  }

  /// Writes the events file (replacing it) and runs the pipeline over it; stored events are skipped.
  func run(_ events: [String]) async throws {
    try (events.joined(separator: "\n") + "\n").write(toFile: dir + "/events.ndjson", atomically: true, encoding: .utf8)
    let plan = try plan
    var readers: [Int: any SourceReader] = [:]
    for (i, s) in plan.config.sources.enumerated() { readers[i] = FileSourceReader(source: s) }
    let runner = PipelineRunner(plan: plan, store: store, readers: readers, workers: 2, now: Fixture.day(30, "00:00"))
    _ = try await runner.run()
  }

  func report(
    _ name: String, by units: [CountingUnit] = [.people], from: Timestamp? = nil, to: Timestamp? = nil,
    pageSize: Int = 16_384
  ) async throws -> MeasurementReport {
    let config = try plan.config
    let q = try ReportQuery(config: config, name: name, from: from, to: to, units: units)
    return try await Measurement.report(q, config: config, store: store, pageSize: pageSize)
  }

  func remove() { try? FileManager.default.removeItem(atPath: dir) }

  /// 2026-06-DD at HH:MM UTC.
  static func day(_ d: Int, _ hm: String) -> Timestamp {
    let text = String(format: "2026-06-%02dT%@:00Z", d, hm)
    guard let t = Timestamp(iso8601: text) else { preconditionFailure(text) }
    return t
  }

  /// One NDJSON event.
  static func event(
    _ id: String, _ type: String, _ name: String? = nil, anon: String? = nil, user: String? = nil, at: Timestamp,
    medium: String? = nil, campaign: String? = nil, referrer: String? = nil, revenue: Double? = nil
  ) -> String {
    var m: [String: Value] = ["id": .string(id), "type": .string(type), "ts": .string(at.iso8601)]
    if let name { m["name"] = .string(name) }
    if let anon { m["anon"] = .string(anon) }
    if let user { m["user"] = .string(user) }
    var context: [String: Value] = [:]
    var c: [String: Value] = [:]
    if let medium { c["medium"] = .string(medium) }
    if let campaign { c["name"] = .string(campaign) }
    if !c.isEmpty { context["campaign"] = .map(c) }
    if let referrer { context["page"] = .map(["referrer": .string(referrer)]) }
    if !context.isEmpty { m["context"] = .map(context) }
    if let revenue { m["properties"] = .map(["revenue": .double(revenue)]) }
    return JSON.encode(.map(m))
  }
}
