import Foundation
import HTTPTypes
import Hummingbird
import NIOCore
import Synchronization
import TesseraModel

/// A webhook receiver for long runs: it keeps counts, not bodies. Each accepted batch is de-duplicated by its
/// `Idempotency-Key`, as a careful receiver would, and every item's `idField` is counted, so a run can tell
/// that each item arrived exactly once. While `down`, it answers every request 503 (a destination that is
/// out of service) and counts the refusals.
public final class CountingReceiver: Sendable {
  public struct Counts: Sendable, Hashable {
    public var requests = 0
    /// Requests answered 503 while down.
    public var refused = 0
    /// Batches accepted under a key not seen before, and their items.
    public var batches = 0
    public var items = 0
    /// Batches accepted again under a key already accepted (the sender retried after its answer was lost).
    public var repeatedBatches = 0
    /// Items whose id came in two batches with different keys: delivered more than once.
    public var repeatedItems = 0
    /// Distinct ids accepted.
    public var distinct = 0
  }

  struct State {
    var counts = Counts()
    var keys = Set<String>()
    var ids = Set<String>()
    var down = false
  }

  let state = Mutex(State())
  let idField: String
  let task = Mutex<Task<Void, any Error>?>(nil)

  /// `idField`: the payload field that names an item (`id: message_id` in the destination's payload).
  public init(idField: String) { self.idField = idField }

  public var counts: Counts { state.withLock { $0.counts } }

  /// Answers 503 from now on (`true`) or accepts again (`false`).
  public func setDown(_ down: Bool) { state.withLock { $0.down = down } }

  func receive(key: String, body: ByteBuffer) -> Bool {
    let isDown = state.withLock { s in
      s.counts.requests += 1
      if s.down { s.counts.refused += 1 }
      return s.down
    }
    if isDown { return false }
    // Parsed outside the lock; a body that does not parse counts as a batch of no items.
    var ids: [String] = []
    let parsed = body.withUnsafeReadableBytes { raw in
      raw.withMemoryRebound(to: UInt8.self) { try? JSON.parse($0) }
    }
    if case .list(let items)? = parsed?.lookup(["batch"]) {
      ids = items.compactMap { $0.lookup([idField]).stringValue }
    }
    state.withLock { s in
      guard s.keys.insert(key).inserted else {
        s.counts.repeatedBatches += 1
        return
      }
      s.counts.batches += 1
      s.counts.items += ids.count
      for id in ids {
        if s.ids.insert(id).inserted { s.counts.distinct += 1 } else { s.counts.repeatedItems += 1 }
      }
    }
    return true
  }

  /// Starts listening on a free loopback port; returns the port.
  public func start() async throws -> Int {
    let router = Router()
    router.post("**") { request, _ -> Response in
      let key = HTTPField.Name("Idempotency-Key").flatMap { request.headers[$0] } ?? ""
      let body = try await request.body.collect(upTo: 64 << 20)
      guard self.receive(key: key, body: body) else {
        return Response(
          status: .serviceUnavailable,
          body: ResponseBody(byteBuffer: ByteBuffer(string: #"{"error":"out of service"}"#)))
      }
      return Response(status: .ok, body: ResponseBody(byteBuffer: ByteBuffer(string: #"{"ok":true}"#)))
    }
    return try await serveOnLoopback(router, task: task)
  }

  public func stop() { task.withLock { $0?.cancel() } }
}
