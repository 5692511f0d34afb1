import AsyncHTTPClient
import Foundation
import NIOCore
import NIOHTTP1
import TesseraCompiler
import TesseraModel
import TesseraSQLite
import TesseraServer
import TesseraStore

/// The tracking API under hostile input: a real `tessera serve` (the HTTP server and its live pipeline on a
/// SQLite file) on a loopback port, sent `TrackingInputs` from concurrent keep-alive clients. Every answer
/// must pass `AnswerCheck`, and at the end the store must hold exactly the events the answers said were
/// stored.
public enum TrackingFuzz {
  public static let writeKey = "fuzz-key"

  /// Identifiers of every usual kind, a deterministic rule, a declared trait, a computed trait and segments,
  /// so accepted messages go through resolution, unification, computed traits and segments.
  public static let pipeline = """
    pipeline: fuzz
    identifiers:
      user_id:      { normalize: trim, max_per_profile: 1, priority: 1 }
      email:        { normalize: email, max_per_profile: 5, priority: 2 }
      phone:        { normalize: phone_e164, default_region: US, max_per_profile: 3, priority: 3 }
      anonymous_id: { normalize: trim, max_per_profile: 50, priority: 9 }
    deterministic:
      strong_ids: { link_on: [user_id, email, phone, anonymous_id] }
    profile:
      default_policy: most_recent
      traits:
        plan: { type: string, policy: most_recent }
    computed:
      orders:
        aggregate: count
        where: event == "Order Completed"
      revenue:
        aggregate: sum
        of: properties.revenue
        window: 90d
    segments:
      pro:
        when: traits.plan == "pro"
      buyers:
        when: traits.orders >= 1
    sources:
      web: { kind: http, write_key: \(writeKey) }
    """

  /// Runs inputs `first ..< first + count` of `seed` against a server on a fresh store in `dir`.
  public static func run(
    seed: UInt64, first: Int, count: Int, clients: Int, fixtures: String, dir: String
  ) async throws -> FuzzReport {
    let inputs = try TrackingInputs(fixtures: fixtures, writeKey: writeKey)
    try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
    try pipeline.write(toFile: dir + "/fuzz.yaml", atomically: true, encoding: .utf8)
    let compiled = Compiler(environment: [:]).compile(pipeline: dir + "/fuzz.yaml")
    guard let plan = compiled.plan else { throw FuzzSetupError(description: compiled.rendered()) }
    let server = TesseraHTTPServer(
      plan: plan, store: try SQLiteStore(path: dir + "/fuzz.sqlite"),
      options: .init(host: "127.0.0.1", port: 0, logLevel: "critical"))
    let (ports, continuation) = AsyncStream.makeStream(of: Int.self)
    let running = Task { try await server.run { continuation.yield($0) } }
    var port = 0
    for await p in ports {
      port = p
      break
    }
    var config = HTTPClient.Configuration()
    config.connectionPool = .init(idleTimeout: .seconds(60), concurrentHTTP1ConnectionsPerHostSoftLimit: clients)
    config.timeout.connect = .seconds(5)
    let client = HTTPClient(eventLoopGroupProvider: .singleton, configuration: config)
    let url = "http://127.0.0.1:\(port)"
    let started = ContinuousClock.now
    var report = FuzzReport(target: "tracking", seed: seed, first: first)
    var stored = 0
    do {
      try await withThrowingTaskGroup(of: (FuzzReport, Int).self) { group in
        for c in 0..<max(1, clients) {
          group.addTask {
            var part = FuzzReport(target: "tracking", seed: seed, first: first)
            var inputs = inputs
            var stored = 0
            for index in stride(from: first + c, to: first + count, by: max(1, clients)) {
              var m = Mutator.forInput(index, seed: seed)
              let r = inputs.next(&m)
              part.inputs += 1
              var request = HTTPClientRequest(url: url + r.path)
              request.method = .POST
              for (k, v) in r.headers { request.headers.add(name: k, value: v) }
              request.body = .bytes(ByteBuffer(bytes: r.body))
              do {
                let response = try await client.execute(request, timeout: .seconds(120))
                let body = String(buffer: try await response.body.collect(upTo: 16 << 20))
                switch AnswerCheck.check(status: Int(response.status.code), body: body) {
                case .success(.accepted(let s, let d, let rejected)):
                  stored += s
                  part.count("200")
                  part.count("events stored", s)
                  part.count("events duplicate", d)
                  part.count("messages rejected", rejected)
                case .success(.refused(let status, let code)):
                  part.count("\(status) \(code)")
                case .failure(let f):
                  part.count("broken answer")
                  part.fail(index, "\(r.label) (\(r.body.count) bytes): \(f)")
                }
              } catch {
                part.count("no answer")
                part.fail(index, "\(r.label) (\(r.body.count) bytes): no answer: \(error)")
              }
            }
            return (part, stored)
          }
        }
        for try await (part, s) in group {
          report.add(part)
          stored += s
        }
      }
    } catch {
      try? await client.shutdown()
      await server.shutdown()
      _ = try? await running.value
      throw error
    }
    let elapsed = ContinuousClock.now - started
    report.seconds = Double(elapsed.components.seconds) + Double(elapsed.components.attoseconds) / 1e18
    try await client.shutdown()
    // The server still answers, and the store holds exactly what the answers said was stored.
    let health = try? await HTTPClient.shared.get(url: url + "/health").get()
    if health?.status != .ok {
      report.fail(first + count, "GET /health after the run: \(String(describing: health?.status))")
    }
    let events = try await server.store.stats().events
    if events != stored {
      report.fail(first + count, "the answers say \(stored) events were stored; the store holds \(events)")
    } else {
      report.notes.append("the store holds \(events) events, as the answers said")
    }
    await server.shutdown()
    try await running.value
    return report
  }
}

public struct FuzzSetupError: Error, CustomStringConvertible {
  public var description: String
}
