import Foundation
import HTTPTypes
import Hummingbird
import Logging
import NIOCore
import Synchronization
import TesseraModel

/// A real HTTP receiver on loopback for webhook tests and benchmarks: answers each path's requests from a
/// script (then OK, or a random share of 500s), and keeps what it accepted, de-duplicated by idempotency key
/// the way a careful receiver would.
public final class WebhookReceiver: Sendable {
  /// How to answer one request.
  public enum Reply: Sendable, Hashable {
    case ok
    /// Answer this status (not accepted), with an optional `Retry-After` header.
    case status(Int, retryAfter: String? = nil)
    /// Accept the batch but answer only after this many seconds (a client with a shorter timeout gives up).
    case slow(seconds: Double)
  }

  /// One request as received.
  public struct Request: Sendable, Hashable {
    public var path: String
    public var key: String
    public var status: Int
    public var body: String
  }

  struct State {
    var scripts: [String: [Reply]]
    var requests: [Request] = []
    /// Accepted batches' bodies by idempotency key (first acceptance only).
    var accepted: [String: String] = [:]
    var duplicates = 0
    var rng: SplitMix64
  }

  let state: Mutex<State>
  let failureRate: Double
  let task = Mutex<Task<Void, any Error>?>(nil)

  public init(script: [String: [Reply]] = [:], failureRate: Double = 0, seed: UInt64 = 1) {
    state = Mutex(State(scripts: script, rng: SplitMix64(seed: seed)))
    self.failureRate = failureRate
  }

  /// Every request in arrival order.
  public var requests: [Request] { state.withLock { $0.requests } }
  /// Accepted batches' items (JSON text of each, keys sorted), by idempotency key. Bodies are parsed here,
  /// not while receiving, so a benchmark's receiver costs little more than reading the request.
  public var accepted: [String: [String]] {
    state.withLock { $0.accepted }.mapValues { body in
      guard let object = try? JSONSerialization.jsonObject(with: Data(body.utf8)) as? [String: Any],
        let batch = object["batch"] as? [Any]
      else { return [] }
      return batch.compactMap { item in
        (try? JSONSerialization.data(withJSONObject: item, options: [.sortedKeys])).map {
          String(decoding: $0, as: UTF8.self)
        }
      }
    }
  }
  /// Batches accepted again under a key already accepted (dropped by de-duplication).
  public var duplicates: Int { state.withLock { $0.duplicates } }

  func reply(path: String) -> Reply {
    state.withLock { s in
      if var list = s.scripts[path], !list.isEmpty {
        let r = list.removeFirst()
        s.scripts[path] = list
        return r
      }
      guard failureRate > 0 else { return .ok }
      // Reproducible failures for a seed.
      let z = s.rng.next()
      return Double(z >> 11) / Double(1 << 53) < failureRate ? .status(500) : .ok
    }
  }

  func record(path: String, key: String, status: Int, body: String, accept: Bool) {
    state.withLock { s in
      s.requests.append(Request(path: path, key: key, status: status, body: body))
      guard accept else { return }
      if s.accepted[key] == nil { s.accepted[key] = body } else { s.duplicates += 1 }
    }
  }

  /// Starts listening on a free loopback port; returns the port.
  public func start() async throws -> Int {
    let router = Router()
    router.post("**") { request, _ -> Response in
      let path = request.uri.path
      let key = HTTPField.Name("Idempotency-Key").flatMap { request.headers[$0] } ?? ""
      let body = String(buffer: try await request.body.collect(upTo: 64 << 20))
      switch self.reply(path: path) {
      case .ok:
        self.record(path: path, key: key, status: 200, body: body, accept: true)
        return Response(status: .ok, body: ResponseBody(byteBuffer: ByteBuffer(string: #"{"ok":true}"#)))
      case .slow(let seconds):
        self.record(path: path, key: key, status: 200, body: body, accept: true)
        try await Task.sleep(for: .milliseconds(Int(seconds * 1000)))
        return Response(status: .ok)
      case .status(let code, let retryAfter):
        self.record(path: path, key: key, status: code, body: body, accept: false)
        var headers = HTTPFields()
        if let retryAfter, let name = HTTPField.Name("Retry-After") { headers[name] = retryAfter }
        return Response(
          status: HTTPResponse.Status(code: code), headers: headers,
          body: ResponseBody(byteBuffer: ByteBuffer(string: #"{"error":"scripted \#(code)"}"#)))
      }
    }
    return try await serveOnLoopback(router, task: task)
  }

  public func stop() { task.withLock { $0?.cancel() } }
}

/// Serves `router` on a free loopback port until `task`'s task is cancelled; returns the port.
func serveOnLoopback(_ router: Router<BasicRequestContext>, task: borrowing Mutex<Task<Void, any Error>?>)
  async throws -> Int
{
  let (stream, continuation) = AsyncStream.makeStream(of: Int.self)
  var logger = Logger(label: "receiver")
  logger.logLevel = .critical
  let app = Application(
    router: router, configuration: .init(address: .hostname("127.0.0.1", port: 0)),
    onServerRunning: { channel in continuation.yield(channel.localAddress?.port ?? 0) },
    logger: logger)
  let t = Task {
    // A server that cannot start ends the wait for its port instead of leaving it hanging.
    defer { continuation.finish() }
    try await app.runService(gracefulShutdownSignals: [])
  }
  task.withLock { $0 = t }
  for await port in stream { return port }
  throw CancellationError()
}
