import Foundation
import Synchronization
import TesseraModel
import TesseraPostgres
import TesseraPostgresCluster
import TesseraStore
import Testing

/// Several `tessera serve` processes on one PostgreSQL database (issue 9): one is the writer, the others journal
/// what they accept for it; the result must be what one server makes of the same events, and a writer killed
/// mid-load must lose nothing it or anyone acknowledged.
@Suite(
  .serialized,
  .enabled(if: PostgresCluster.available, "PostgreSQL server binaries not found; skipping (set TESSERA_PG_BIN)"),
  .enabled(if: ServeCommandTests.binary != nil, "the tessera executable is not built"))
struct SeveralServersTests {
  /// Batches answered so far, and ports that stopped answering.
  final class Tally: Sendable {
    let count = Mutex(0)
    let down = Mutex(Set<Int>())
  }

  /// People whose identifiers arrive in pieces: two anonymous ids, an email and a user id, linked only by later
  /// events, with distinct timestamps (so `most_recent` has one answer whatever the arrival order).
  static func messages(people: Int) -> [(id: String, json: String)] {
    var out: [(String, String)] = []
    for k in 0..<people {
      func at(_ j: Int) -> String {
        let t = Timestamp(microseconds: 1_793_534_400_000_000 + Int64(k * 10 + j) * 1_000_000)
        return t.iso8601
      }
      let email = "p\(k)@example.com"
      let plan = ["free", "pro", "team"][k % 3]
      let m = [
        #"{"type":"identify","anonymousId":"a\#(k)-1","traits":{"email":"\#(email)","plan":"trial"},"timestamp":"\#(at(1))""#,
        #"{"type":"track","anonymousId":"a\#(k)-2","event":"Viewed","timestamp":"\#(at(2))""#,
        #"{"type":"identify","userId":"u\#(k)","anonymousId":"a\#(k)-2","traits":{"plan":"\#(plan)"},"timestamp":"\#(at(3))""#,
        #"{"type":"track","userId":"u\#(k)","event":"Order Completed","timestamp":"\#(at(4))""#,
        #"{"type":"identify","userId":"u\#(k)","anonymousId":"a\#(k)-1","timestamp":"\#(at(5))""#,
        #"{"type":"identify","anonymousId":"a\#(k)-3","traits":{"email":"\#(email)"},"timestamp":"\#(at(6))""#,
      ]
      for (j, text) in m.enumerated() {
        let id = "m-\(k)-\(j)"
        out.append((id, text + #","messageId":"\#(id)"}"#))
      }
    }
    return out
  }

  /// The messages shuffled (fixed seed) into request bodies of `size` messages.
  static func batches(_ messages: [(id: String, json: String)], size: Int) -> [(ids: [String], body: String)] {
    var rng = SplitMix64(seed: 9)
    let shuffled = messages.shuffled(using: &rng)
    return stride(from: 0, to: shuffled.count, by: size).map { start in
      let part = shuffled[start..<min(start + size, shuffled.count)]
      return (part.map(\.id), "{\"batch\":[\(part.map(\.json).joined(separator: ","))]}")
    }
  }

  /// Sends every body, batch i to `ports[i % ports.count]`, `lanes` requests at a time. A request that fails (a
  /// killed server) goes to the next port and the failed port gets no more requests, as a load balancer would
  /// send the SDK's retry; the messageIds of every answered batch are returned. `answered` counts answered
  /// batches as they come.
  static func send(
    _ batches: [(ids: [String], body: String)], to ports: [Int], lanes: Int, answered: Tally = Tally()
  ) async throws -> [String] {
    try await withThrowingTaskGroup(of: [String].self) { group in
      for lane in 0..<lanes {
        group.addTask {
          var acked: [String] = []
          for i in stride(from: lane, to: batches.count, by: lanes) {
            var target = i % ports.count
            var done = false
            for _ in 0..<200 where !done {
              if answered.down.withLock({ $0.contains(ports[target]) }) {
                target = (target + 1) % ports.count
                continue
              }
              let answer = try? await Harness.client(port: ports[target]).track(batches[i].body, timeout: .seconds(10))
              if let answer, answer.status == 200, answer["rejected"].listCount == 0 {
                acked += batches[i].ids
                done = true
                answered.count.withLock { $0 += 1 }
              } else {
                if answer == nil { answered.down.withLock { _ = $0.insert(ports[target]) } }
                target = (target + 1) % ports.count
                try await Task.sleep(for: .milliseconds(50))
              }
            }
            #expect(done, "batch \(i) was never acknowledged")
          }
          return acked
        }
      }
      var all: [String] = []
      for try await part in group { all += part }
      return all
    }
  }

  /// Every live profile as text without its id: identifiers, traits, computed traits and segments.
  static func canonical(_ url: String) async throws -> [String] {
    let store = try await PostgresStore(url: url, maximumConnections: 2)
    var out: [String] = []
    for (p, ids) in try await store.loadIdentity().profiles {
      let identifiers = ids.map { "\($0.0)" }.sorted().joined(separator: ",")
      let traits = try await store.traits(of: p).map { "\($0.trait)=\($0.value.plainText)" }.sorted()
      let computed = try await store.computed(of: p).map { "\($0.trait)=\($0.value.plainText)" }.sorted()
      let segments = try await store.memberships(of: p).map(\.segment).sorted()
      out.append(
        [identifiers, traits.joined(separator: ","), computed.joined(separator: ","), segments.joined(separator: ",")]
          .joined(separator: " | "))
    }
    await store.close()
    return out.sorted()
  }

  /// Waits until the journal is empty (the writer resolved everything the followers accepted).
  static func settle(_ url: String) async throws {
    let store = try await PostgresStore(url: url, maximumConnections: 1)
    var left = -1
    for _ in 0..<600 {
      left = try await store.readJournal(limit: 1).count
      if left == 0 { break }
      try await Task.sleep(for: .milliseconds(100))
    }
    await store.close()
    #expect(left == 0, "the journal was not resolved within a minute")
  }

  static func role(_ port: Int) async -> String {
    guard let answer = try? await Harness.client(port: port).request(.GET, "/health") else { return "down" }
    return answer["role"].plainText
  }

  /// The role a server settles in once it has asked the store (it answers `starting` until then).
  static func settledRole(_ port: Int) async throws -> String {
    var role = "starting"
    for _ in 0..<200 {
      role = await Self.role(port)
      if role != "starting" { break }
      try await Task.sleep(for: .milliseconds(50))
    }
    return role
  }

  /// Runs the `tessera` executable to the end; its standard output.
  static func tessera(_ arguments: [String]) async throws -> String {
    let out = NSTemporaryDirectory() + "tessera-out-\(UUID().uuidString)"
    defer { try? FileManager.default.removeItem(atPath: out) }
    _ = try await ChildProcess.run(
      try #require(ServeCommandTests.binary), arguments, standardOutput: .file(out), standardError: .standardOutput,
      atMost: .seconds(300))
    return try String(contentsOfFile: out, encoding: .utf8)
  }

  /// One server over the batches; the canonical result.
  static func reference(_ cluster: PostgresCluster, _ batches: [(ids: [String], body: String)]) async throws
    -> [String]
  {
    let url = try await cluster.newDatabase("single")
    let one = try await ServeCommandTests.Child.start(pipeline: testPipeline, store: url)
    #expect(try await settledRole(one.port) == "writer")
    let acked = try await send(batches, to: [one.port], lanes: 4)
    #expect(acked.count == batches.flatMap(\.ids).count)
    #expect(await one.stop() == 0)
    return try await canonical(url)
  }

  @Test("two servers on one database fed the same people at once make the profiles one server makes")
  func twoServersMatchOne() async throws {
    try await withCluster { cluster in
      let batches = Self.batches(Self.messages(people: 60), size: 12)
      let expected = try await Self.reference(cluster, batches)
      #expect(expected.count == 60)
      #expect(expected.first?.contains("anonymous_id:a0-1,anonymous_id:a0-2,anonymous_id:a0-3") == true)

      let url = try await cluster.newDatabase("pair")
      let a = try await ServeCommandTests.Child.start(pipeline: testPipeline, store: url)
      #expect(try await Self.settledRole(a.port) == "writer")
      let b = try await ServeCommandTests.Child.start(pipeline: testPipeline, store: url)
      #expect(try await Self.settledRole(b.port) == "follower")
      let acked = try await Self.send(batches, to: [a.port, b.port], lanes: 4)
      #expect(acked.count == 360)
      try await Self.settle(url)
      let got = try await Self.canonical(url)
      #expect(got.count == expected.count)
      #expect(got == expected)
      // `tessera delete` from a third process while both serve: the writer reads its state again (the epoch
      // moved) and drops the person's later events, whichever server accepts them.
      let deleted = try await Self.tessera(["delete", "user_id:u5", "--store", url])
      #expect(deleted.contains("erased prf_"), "\(deleted)")
      let late = try await Harness.client(port: b.port).track(
        #"{"batch":[{"type":"identify","userId":"u5","traits":{"plan":"back"},"messageId":"late-5"}]}"#)
      #expect(late.status == 200)
      try await Self.settle(url)
      let store = try await PostgresStore(url: url, maximumConnections: 1)
      #expect(try await store.profile(for: Identifier("user_id", "u5")) == nil)
      #expect(try await store.existingEvents([EventKey(source: "web", id: "late-5")]).isEmpty)
      #expect(try await store.loadIdentity().profiles.count == 59)
      await store.close()
      #expect(await a.stop() == 0)
      #expect(await b.stop() == 0)
      // The follower answered with what it journaled: its stderr names its role.
      let text = try String(contentsOfFile: b.errPath, encoding: .utf8)
      #expect(text.contains("follower"), "\(text)")
    }
  }

  @Test("kill -9 of the writer mid-load: the follower takes over and nothing acknowledged is lost")
  func writerKilledMidLoad() async throws {
    try await withCluster { cluster in
      let batches = Self.batches(Self.messages(people: 100), size: 6)
      let expected = try await Self.reference(cluster, batches)
      let url = try await cluster.newDatabase("killed")
      let a = try await ServeCommandTests.Child.start(pipeline: testPipeline, store: url)
      #expect(try await Self.settledRole(a.port) == "writer")
      let b = try await ServeCommandTests.Child.start(pipeline: testPipeline, store: url)
      #expect(try await Self.settledRole(b.port) == "follower")
      let answered = Tally()
      let sending = Task { try await Self.send(batches, to: [a.port, b.port], lanes: 4, answered: answered) }
      while answered.count.withLock({ $0 }) < batches.count / 3 { try await Task.sleep(for: .milliseconds(5)) }
      #expect(await a.kill() == SIGKILL)
      let acked = try await sending.value
      #expect(Set(acked).count == 600)
      // The follower became the writer and resolved the journal, its own and the dead writer's.
      var role = ""
      for _ in 0..<100 where role != "writer" {
        role = await Self.role(b.port)
        try await Task.sleep(for: .milliseconds(100))
      }
      #expect(role == "writer")
      try await Self.settle(url)
      #expect(await b.stop() == 0)
      let store = try await PostgresStore(url: url, maximumConnections: 1)
      let keys = acked.map { EventKey(source: "web", id: $0) }
      let stored = try await store.existingEvents(keys)
      #expect(stored.count == keys.count, "acknowledged but missing: \(Set(keys).subtracting(stored).prefix(5))")
      await store.close()
      #expect(try await Self.canonical(url) == expected)
    }
  }
}
