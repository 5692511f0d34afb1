import Foundation
import TesseraModel
import TesseraReceiver
import TesseraSQLite
import TesseraStore
import Testing

@Suite("tessera serve, the executable")
struct ServeCommandTests {
  /// The `tessera` executable built with the tests (next to the test bundle), else the usual debug folder.
  static let binary: String? = {
    let beside = URL(fileURLWithPath: CommandLine.arguments.first ?? "").deletingLastPathComponent()
      .appendingPathComponent("tessera").path
    return [beside, Paths.packageRoot + "/.build/debug/tessera"].first {
      FileManager.default.isExecutableFile(atPath: $0)
    }
  }()

  /// `tessera serve` as a child process on a free port, its stderr in a file.
  struct Child {
    let process: ChildProcess
    let port: Int
    let dir: String
    let errPath: String

    /// `store`: a `--store` value (a PostgreSQL URL); nil: a SQLite file in the child's directory.
    static func start(
      pipeline: String, environment: [String: String] = [:], store: String? = nil, arguments: [String] = []
    ) async throws -> Child {
      let binary = try #require(ServeCommandTests.binary)
      let dir = FileManager.default.temporaryDirectory.appendingPathComponent("tessera-cli-\(UUID().uuidString)").path
      try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
      try pipeline.write(toFile: dir + "/p.yaml", atomically: true, encoding: .utf8)
      let errPath = dir + "/stderr"
      let process = try ChildProcess.spawn(
        binary, ["serve", dir + "/p.yaml", "--store", store ?? dir + "/s.sqlite", "--port", "0"] + arguments,
        environment: ProcessInfo.processInfo.environment.merging(environment) { _, new in new },
        standardError: .file(errPath))
      // The port, from "tessera serve: listening on http://127.0.0.1:PORT (…)".
      var port = 0
      for _ in 0..<500 where port == 0 {
        let text = (try? String(contentsOfFile: errPath, encoding: .utf8)) ?? ""
        if let r = text.range(of: "listening on http://127.0.0.1:") {
          port = Int(text[r.upperBound...].prefix { $0.isNumber }) ?? 0
        } else {
          try await Task.sleep(for: .milliseconds(20))
        }
      }
      #expect(port > 0)
      return Child(process: process, port: port, dir: dir, errPath: errPath)
    }

    /// SIGKILL: no shutdown, no drain (a crash); the exit status.
    func kill() async -> Int32 {
      process.signal(SIGKILL)
      return await process.wait(atMost: .seconds(60)) ?? -1
    }

    /// SIGTERM; the exit status, -1 when the server still ran 2 minutes later (then killed, so a shutdown that
    /// hangs fails the test instead of the whole run).
    func stop() async -> Int32 {
      process.signal(SIGTERM)
      return await process.wait(atMost: .seconds(120)) ?? -1
    }
  }

  @Test("serves on the port it prints, commits what it acknowledged, and exits 0 on SIGTERM")
  func sigterm() async throws {
    let child = try await Child.start(pipeline: testPipeline)
    let h = Harness.client(port: child.port)
    let answer = try await h.track(trackBatch(ids: ["cli-1", "cli-2"], user: "u1"))
    #expect(answer.status == 200)
    #expect(answer["stored"] == .int(2))
    #expect(await child.stop() == 0)
    let text = try String(contentsOfFile: child.errPath, encoding: .utf8)
    #expect(text.contains("stopped: requests drained and the pipeline committed"))
    let store = try SQLiteStore(path: child.dir + "/s.sqlite")
    #expect(try await store.stats().events == 2)
  }

  /// `testPipeline` with a webhook destination `audience` (the `buyers` segment's changes, to `/audience` on
  /// the receiver's port) and further keys of it in `keys` (one per line).
  static func audience(hook: Int, _ keys: String) -> String {
    testPipeline + """

      destinations:
        audience:
          kind: webhook
          url: http://127.0.0.1:\(hook)/audience
          on: segment_changes
          segments: [buyers]

      """ + keys.split(separator: "\n").map { "    \($0)\n" }.joined()
  }

  @Test("delivers segment changes to a webhook while serving, and a deletion notice after DELETE /v1/profiles")
  func deliversWhileServing() async throws {
    let receiver = WebhookReceiver()
    let hook = try await receiver.start()
    defer { receiver.stop() }
    let pipeline = Self.audience(
      hook: hook,
      """
      deletion_url: http://127.0.0.1:\(hook)/forget
      payload: { user: identifiers.user_id, action: 'change.entered ? "add" : "remove"' }
      batch: { max_events: 100, max_wait: 100ms }
      """)
    let child = try await Child.start(pipeline: pipeline, environment: ["TESSERA_ADMIN_TOKEN": Harness.token])
    let h = Harness.client(port: child.port)
    let answer = try await h.track(trackBatch(ids: ["o-1"], user: "buyer-7", event: "Order Completed"))
    #expect(answer.status == 200)
    func arrived(_ path: String) async throws -> [String] {
      for _ in 0..<250 {
        let bodies = receiver.requests.filter { $0.path == path && $0.status == 200 }.map(\.body)
        if !bodies.isEmpty { return bodies }
        try await Task.sleep(for: .milliseconds(20))
      }
      return []
    }
    let audience = try await arrived("/audience")
    #expect(audience.count == 1)
    #expect(audience.first?.contains(#"{"action":"add","user":"buyer-7"}"#) == true, "\(audience)")
    let deleted = try await h.admin(.DELETE, "/v1/profiles?identifier=user_id:buyer-7")
    #expect(deleted.status == 202)
    let forget = try await arrived("/forget")
    #expect(forget.first?.contains(#""type":"deletion""#) == true, "\(forget)")
    #expect(forget.first?.contains("buyer-7") == false)
    #expect(await child.stop() == 0)
  }

  @Test("--no-deliver: the server queues changes for destinations and leaves the sending to another process")
  func noDeliver() async throws {
    let receiver = WebhookReceiver()
    let hook = try await receiver.start()
    defer { receiver.stop() }
    let pipeline = Self.audience(
      hook: hook,
      """
      payload: { user: identifiers.user_id }
      batch: { max_events: 1, max_wait: 10ms }
      """)
    let child = try await Child.start(pipeline: pipeline, arguments: ["--no-deliver"])
    let answer = try await Harness.client(port: child.port).track(
      trackBatch(ids: ["n-1"], user: "buyer-8", event: "Order Completed"))
    #expect(answer.status == 200)
    try await Task.sleep(for: .milliseconds(500))
    #expect(receiver.requests.isEmpty)
    #expect(await child.stop() == 0)
    let store = try SQLiteStore(path: child.dir + "/s.sqlite")
    #expect(try await store.outboxSummary()["audience"]?.queued == 1)
    try store.close()
  }

  /// `testPipeline` with a file source, for `tessera run` next to a server.
  static let withFileSource =
    testPipeline + "\n" + """
        crm:
          kind: ndjson
          path: people.ndjson
          emit: identify
          id: id
          timestamp: at
          map:
            user_id: uid
            traits.plan: plan

      """

  /// The intake file and the writer's cursor across processes and a crash: two servers acknowledging after
  /// the journal on one SQLite file, the writer killed mid-load, the follower taking over.
  @Test("journaled on SQLite: kill -9 of the writer mid-load loses nothing acknowledged")
  func journaledWriterKilled() async throws {
    let batches = SeveralServersTests.batches(SeveralServersTests.messages(people: 100), size: 6)
    let a = try await Child.start(pipeline: testPipeline, arguments: ["--acknowledge", "journaled"])
    let path = a.dir + "/s.sqlite"
    #expect(try await SeveralServersTests.settledRole(a.port) == "writer")
    let b = try await Child.start(pipeline: testPipeline, store: path, arguments: ["--acknowledge", "journaled"])
    #expect(try await SeveralServersTests.settledRole(b.port) == "follower")
    let answered = SeveralServersTests.Tally()
    let sending = Task {
      try await SeveralServersTests.send(batches, to: [a.port, b.port], lanes: 4, answered: answered)
    }
    while answered.count.withLock({ $0 }) < batches.count / 3 { try await Task.sleep(for: .milliseconds(5)) }
    #expect(await a.kill() == SIGKILL)
    let acked = try await sending.value
    #expect(Set(acked).count == 600)
    let store = try SQLiteStore(path: path)
    #expect(try await Self.eventually { try await store.readJournal(limit: 1).isEmpty })
    #expect(await SeveralServersTests.role(b.port) == "writer")
    #expect(await b.stop() == 0)
    let keys = acked.map { EventKey(source: "web", id: $0) }
    let stored = try await store.existingEvents(keys)
    #expect(stored.count == keys.count, "acknowledged but missing: \(Set(keys).subtracting(stored).prefix(5))")
    // Every person's pieces (three anonymous ids, an email, a user id) came together once, whichever process and
    // whichever order resolved them.
    #expect(try await store.stats().profiles == 100)
    #expect(try await store.loadIdentity().profiles.allSatisfy { $0.1.count == 5 })
    try store.close()
  }

  @Test("a second tessera serve on the same SQLite file is a follower; tessera run journals while one serves")
  func sharedSQLiteFile() async throws {
    let a = try await Child.start(pipeline: Self.withFileSource)
    let path = a.dir + "/s.sqlite"
    #expect(try await SeveralServersTests.settledRole(a.port) == "writer")
    let b = try await Child.start(pipeline: Self.withFileSource, store: path)
    #expect(try await SeveralServersTests.settledRole(b.port) == "follower")
    let answer = try await Harness.client(port: b.port).track(trackBatch(ids: ["f-1", "f-2"], user: "fu"))
    #expect(answer["stored"] == .int(2))
    // The writer resolves what the follower journaled.
    let store = try SQLiteStore(path: path)
    #expect(try await Self.eventually { try await store.readJournal(limit: 1).isEmpty })
    #expect(try await store.profile(for: Identifier("user_id", "fu")) != nil)
    #expect(try await store.stats().events == 2)
    // A run would be a second resolver: it journals the file's events for the writer instead.
    try """
    {"id": "c1", "uid": "fu", "plan": "team", "at": "2026-11-02T10:00:00Z"}
    {"id": "c2", "uid": "cu2", "plan": "pro", "at": "2026-11-02T11:00:00Z"}

    """.write(toFile: a.dir + "/people.ndjson", atomically: true, encoding: .utf8)
    let run = try await SeveralServersTests.tessera(["run", a.dir + "/p.yaml", "--store", path])
    #expect(run.contains("is the store's writer; the events were journaled"), "\(run)")
    #expect(Self.row("events journaled", in: run) == "2", "\(run)")
    #expect(try await Self.eventually { try await store.stats().events == 4 })
    #expect(try await Self.eventually { try await store.profile(for: Identifier("user_id", "cu2")) != nil })
    let fu = try #require(try await store.profile(for: Identifier("user_id", "fu")))
    #expect(try await store.traits(of: fu).first { $0.trait == "plan" }?.value == .string("team"))
    // Running the same file again journals nothing new.
    let again = try await SeveralServersTests.tessera(["run", a.dir + "/p.yaml", "--store", path])
    #expect(Self.row("duplicates skipped", in: again) == "2", "\(again)")
    #expect(Self.row("events journaled", in: again) == "0", "\(again)")
    try store.close()
    #expect(await a.stop() == 0)
    // With the writer gone, the follower takes the role.
    #expect(try await Self.eventuallyWriter(b.port))
    #expect(await b.stop() == 0)
  }

  /// The value of a row of a summary table (`  name   value`).
  static func row(_ name: String, in text: String) -> String? {
    text.split(separator: "\n").first { $0.trimmingCharacters(in: .whitespaces).hasPrefix(name) }
      .map {
        String($0.trimmingCharacters(in: .whitespaces).dropFirst(name.count)).trimmingCharacters(in: .whitespaces)
      }
  }

  static func eventually(_ condition: () async throws -> Bool) async throws -> Bool {
    for _ in 0..<200 {
      if try await condition() { return true }
      try await Task.sleep(for: .milliseconds(50))
    }
    return false
  }

  static func eventuallyWriter(_ port: Int) async throws -> Bool {
    for _ in 0..<100 {
      if await SeveralServersTests.role(port) == "writer" { return true }
      try await Task.sleep(for: .milliseconds(50))
    }
    return false
  }
}
