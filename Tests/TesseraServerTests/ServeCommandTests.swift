import Foundation
import TesseraModel
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

  @Test("serves on the port it prints, commits what it acknowledged, and exits 0 on SIGTERM")
  func sigterm() async throws {
    let binary = try #require(Self.binary)
    let dir = FileManager.default.temporaryDirectory.appendingPathComponent("tessera-cli-\(UUID().uuidString)").path
    try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
    try testPipeline.write(toFile: dir + "/p.yaml", atomically: true, encoding: .utf8)
    let errPath = dir + "/stderr"
    FileManager.default.createFile(atPath: errPath, contents: nil)
    let process = Process()
    process.executableURL = URL(fileURLWithPath: binary)
    process.arguments = ["serve", dir + "/p.yaml", "--store", dir + "/s.sqlite", "--port", "0"]
    process.standardInput = FileHandle.nullDevice
    process.standardOutput = FileHandle.nullDevice
    process.standardError = try FileHandle(forWritingTo: URL(fileURLWithPath: errPath))
    let (ended, continuation) = AsyncStream.makeStream(of: Int32.self)
    process.terminationHandler = {
      continuation.yield($0.terminationStatus)
      continuation.finish()
    }
    try process.run()
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
    let h = Harness.client(port: port)
    let answer = try await h.track(trackBatch(ids: ["cli-1", "cli-2"], user: "u1"))
    #expect(answer.status == 200)
    #expect(answer["stored"] == .int(2))
    process.terminate()  // SIGTERM
    var status: Int32 = -1
    for await s in ended { status = s }
    #expect(status == 0)
    let text = try String(contentsOfFile: errPath, encoding: .utf8)
    #expect(text.contains("stopped: requests drained and the pipeline committed"))
    let store = try SQLiteStore(path: dir + "/s.sqlite")
    #expect(try await store.stats().events == 2)
  }
}
