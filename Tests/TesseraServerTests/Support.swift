import AsyncHTTPClient
import CompressNIO
import Foundation
import Hummingbird
import NIOCore
import NIOHTTP1
import TesseraCompiler
import TesseraDelivery
import TesseraModel
import TesseraRuntime
import TesseraSQLite
import TesseraServer
import TesseraStore
import Testing

/// Where the package and the captured SDK requests are.
enum Paths {
  static let packageRoot = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
    .deletingLastPathComponent().path
  /// Request bodies captured from the Segment and RudderStack Python SDKs (copied from the shared fixtures;
  /// kept outside the test target's folder so SwiftPM does not treat them as resources).
  static let sdkFixtures = packageRoot + "/Tests/Fixtures/sdk"
}

/// A pipeline with two http sources (`web` with the default limits, `app` with small ones), the four usual
/// identifier kinds, one deterministic rule, a declared trait, a computed trait and two segments.
let testPipeline = """
  pipeline: serve_test
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
  segments:
    pro:
      description: On the pro plan.
      when: traits.plan == "pro"
    buyers:
      description: Ordered at least once.
      when: traits.orders >= 1
  sources:
    web: { kind: http, write_key: test_key }
    app: { kind: http, write_key: app-key, max_request_bytes: 200000, max_event_bytes: 4096 }
  """

struct HTTPAnswer {
  var status: Int
  var text: String
  var headers: [(String, String)]
  var json: Value { (try? JSON.parse(text)) ?? .null }
  subscript(_ key: String) -> Value { json.lookup(key.split(separator: ".").map(String.init)) }
}

/// A real server on a free loopback port with a temporary SQLite store.
struct Harness {
  static let token = "admin-secret"
  let dir: String
  let storePath: String
  let server: TesseraHTTPServer?
  let port: Int
  let running: Task<Void, any Error>?
  /// The destinations' HTTP client, when the server delivers.
  var deliveryClient: HTTPClient? = nil

  /// `deliver`: send the pipeline's destinations from the server, as `tessera serve` does.
  static func start(
    pipeline: String = testPipeline, token: String? = Harness.token,
    acknowledge: LivePipeline.Acknowledge = .resolved, journalGrace: Duration = .seconds(5), dir reused: String? = nil,
    deliver: Bool = false, store given: (any Store)? = nil
  ) async throws -> Harness {
    let dir =
      reused
      ?? FileManager.default.temporaryDirectory.appendingPathComponent("tessera-serve-\(UUID().uuidString)").path
    try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
    try pipeline.write(toFile: dir + "/pipeline.yaml", atomically: true, encoding: .utf8)
    let result = Compiler().compile(pipeline: dir + "/pipeline.yaml")
    let plan = try #require(result.plan, "\(result.rendered())")
    let storePath = dir + "/store.sqlite"
    let store = try given ?? SQLiteStore(path: storePath)
    let client = deliver ? DeliveryQueue.makeClient() : nil
    let engine = try client.map { client in
      let clock: @Sendable () -> Timestamp = { Timestamp(Date()) }
      let queues = try DeliveryQueue.plan(plan.config, storePath: storePath, client: client, clock: clock)
      return DeliveryEngine(store: store, queues: queues, clock: clock)
    }
    let server = TesseraHTTPServer(
      plan: plan, store: store,
      options: .init(
        host: "127.0.0.1", port: 0, adminToken: token, benchmarkRoutes: true, logLevel: "warning",
        acknowledge: acknowledge, journalGrace: journalGrace),
      deliveries: engine)
    let (ports, continuation) = AsyncStream.makeStream(of: Int.self)
    let running = Task { try await server.run { continuation.yield($0) } }
    var port = 0
    for await p in ports {
      port = p
      break
    }
    return Harness(
      dir: dir, storePath: storePath, server: server, port: port, running: running, deliveryClient: client)
  }

  /// The server's store (tests that start the server in process; a client of another process has none).
  var store: any Store {
    get throws { try #require(server).store }
  }

  /// The log's events in write order, each mapped as the pipeline's sources map its record (`EventReader`).
  func loggedEvents() async throws -> [StoredEvent] {
    let server = try #require(server)
    let reader = EventReader(config: server.config)
    return try await server.store.loadEvents().map {
      StoredEvent(event: try reader.mapped($0.event), profile: $0.profile)
    }
  }

  /// A client of a server started elsewhere (`tessera serve` in a child process).
  static func client(port: Int) -> Harness {
    Harness(dir: "", storePath: "", server: nil, port: port, running: nil)
  }

  /// Graceful shutdown; returns once the server has drained and stopped.
  func stop() async throws {
    await server?.shutdown()
    try await running?.value
    try await deliveryClient?.shutdown()
  }

  func request(
    _ method: HTTPMethod, _ path: String, body: ByteBuffer? = nil, headers: [(String, String)] = [],
    timeout: TimeAmount = .seconds(60)
  ) async throws -> HTTPAnswer {
    var req = HTTPClientRequest(url: "http://127.0.0.1:\(port)\(path)")
    req.method = method
    for (k, v) in headers { req.headers.add(name: k, value: v) }
    if let body { req.body = .bytes(body) }
    let response = try await HTTPClient.shared.execute(req, timeout: timeout)
    let bytes = try await response.body.collect(upTo: 64 << 20)
    return HTTPAnswer(
      status: Int(response.status.code), text: String(buffer: bytes),
      headers: response.headers.map { ($0.name, $0.value) })
  }

  static func basic(_ key: String) -> String { "Basic " + Data("\(key):".utf8).base64EncodedString() }

  /// POSTs a tracking body with the write key as Basic user (nil: no header), optionally gzipped.
  func track(_ body: String, key: String? = "test_key", gzip: Bool = false, timeout: TimeAmount = .seconds(60))
    async throws -> HTTPAnswer
  {
    try await track("/v1/batch", body, key: key, gzip: gzip, timeout: timeout)
  }

  func track(
    _ path: String, _ body: String, key: String? = "test_key", gzip: Bool = false, timeout: TimeAmount = .seconds(60)
  ) async throws -> HTTPAnswer {
    var headers = [("Content-Type", "application/json")]
    if let key { headers.append(("Authorization", Self.basic(key))) }
    var buffer = ByteBuffer(string: body)
    if gzip {
      buffer = try buffer.compress(with: .gzip())
      headers.append(("Content-Encoding", "gzip"))
    }
    return try await request(.POST, path, body: buffer, headers: headers, timeout: timeout)
  }

  func admin(_ method: HTTPMethod, _ path: String, token: String? = Harness.token) async throws -> HTTPAnswer {
    try await request(method, path, headers: token.map { [("Authorization", "Bearer \($0)")] } ?? [])
  }
}

/// A `{"batch": [...]}` body of track messages with the given ids for one user.
func trackBatch(ids: [String], user: String, event: String = "Viewed", extra: String = "") -> String {
  let messages = ids.map {
    """
    {"type":"track","messageId":"\($0)","userId":"\(user)","event":"\(event)",\
    "timestamp":"2026-11-01T10:00:00Z","properties":{"n":1}\(extra)}
    """
  }
  return "{\"batch\":[\(messages.joined(separator: ","))]}"
}

extension Value {
  var listCount: Int {
    if case .list(let l) = self { return l.count }
    return -1
  }
  var list: [Value] {
    if case .list(let l) = self { return l }
    return []
  }
}
