import AsyncHTTPClient
import Foundation
import NIOCore
import TesseraModel
import TesseraReceiver
import TesseraStore
import Testing

/// A destination out of service while events keep coming, in small: the server takes tracking batches while
/// one of its two webhook destinations answers 503. The soak run of this (10 minutes at 5,000 events/s) is
/// `tessera-soak` in the Benchmarks package, its figures in docs/BENCHMARKS.md.
@Suite("A destination down under load")
struct DestinationDownTests {
  static func pipeline(steady: Int, down: Int) -> String {
    func destination(_ name: String, _ port: Int) -> String {
      """
        \(name):
          kind: webhook
          url: http://127.0.0.1:\(port)/\(name)
          on: events
          payload: { id: message_id, profile: profile.id }
          batch: { max_events: 200, max_wait: 200ms }
          retry: { attempts: 1000, backoff: 100ms..500ms, max_age: 1h }
      """
    }
    return """
      pipeline: down_test
      identifiers:
        user_id:      { normalize: trim, max_per_profile: 1, priority: 1 }
        anonymous_id: { normalize: trim, max_per_profile: 50, priority: 9 }
      deterministic:
        strong_ids: { link_on: [user_id, anonymous_id] }
      sources:
        web: { kind: http, write_key: test_key }
      destinations:
      \(destination("steady", steady))
      \(destination("down", down))
      """
  }

  static func body(_ request: Int, events: Int) -> String {
    let messages = (0..<events).map { n in
      let person = (request * events + n) % 300
      return #"{"type":"track","messageId":"m-\#(request)-\#(n)","anonymousId":"a-\#(person)","#
        + #""userId":"u-\#(person)","event":"Product Viewed","timestamp":"2026-11-29T12:00:00Z"}"#
    }
    return #"{"batch":["# + messages.joined(separator: ",") + "]}"
  }

  /// Polls `condition` every 100 ms for up to `seconds`.
  static func eventually(_ seconds: Double, _ condition: () async throws -> Bool) async throws -> Bool {
    let deadline = ContinuousClock.now + .milliseconds(Int(seconds * 1000))
    while ContinuousClock.now < deadline {
      if try await condition() { return true }
      try await Task.sleep(for: .milliseconds(100))
    }
    return try await condition()
  }

  @Test("the outbox of the down destination grows, the other keeps pace, and after recovery each gets all, once")
  func downUnderLoad() async throws {
    let steady = CountingReceiver(idField: "id")
    let down = CountingReceiver(idField: "id")
    defer {
      steady.stop()
      down.stop()
    }
    let steadyPort = try await steady.start()
    let downPort = try await down.start()
    down.setDown(true)
    let h = try await Harness.start(pipeline: Self.pipeline(steady: steadyPort, down: downPort), deliver: true)
    defer { try? FileManager.default.removeItem(atPath: h.dir) }
    let store = try h.store

    // Load in rounds; after each, the steady destination has caught up and the down one's outbox grown.
    var acked = 0
    var waiting: [Int] = []
    for round in 0..<4 {
      try await withThrowingTaskGroup(of: Int.self) { group in
        for r in 0..<5 {
          group.addTask {
            let answer = try await h.track(Self.body(round * 5 + r, events: 100))
            #expect(answer.status == 200, "\(answer.text)")
            guard case .int(let stored) = answer["stored"] else { return 0 }
            return Int(stored)
          }
        }
        for try await stored in group { acked += stored }
      }
      let total = acked
      #expect(try await Self.eventually(30) { steady.counts.distinct == total }, "\(steady.counts) of \(total)")
      let outbox = try await store.outboxSummary()["down"] ?? OutboxSummary()
      #expect(outbox.deliveredItems == 0 && outbox.dead == 0, "\(outbox)")
      waiting.append(total - down.counts.distinct)
    }
    #expect(acked == 2_000)
    #expect(waiting == [500, 1_000, 1_500, 2_000])
    #expect(down.counts.refused > 0 && down.counts.distinct == 0)

    down.setDown(false)
    #expect(try await Self.eventually(60) { down.counts.distinct == acked }, "\(down.counts) of \(acked)")
    try await Task.sleep(for: .milliseconds(500))
    for (name, receiver) in [("steady", steady), ("down", down)] {
      let c = receiver.counts
      #expect(c.distinct == acked && c.items == acked && c.repeatedItems == 0, "\(name): \(c)")
    }
    let summary = try await store.outboxSummary()
    for name in ["steady", "down"] {
      let s = summary[name] ?? OutboxSummary()
      #expect(s.deliveredItems == acked && s.dead == 0 && s.pending == 0 && s.queued == 0, "\(name): \(s)")
    }
    try await h.stop()
  }
}
