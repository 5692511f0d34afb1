import Foundation
import TesseraModel
import Testing

/// `ChildProcess`: what the tests that start `tessera`, chromedriver and `pg_ctl` rely on.
@Suite struct ChildProcessTests {
  static func temp() -> String { NSTemporaryDirectory() + "tessera-child-\(UUID().uuidString)" }

  @Test func exitCodeOutputEnvironmentAndDirectory() async throws {
    let out = Self.temp()
    defer { try? FileManager.default.removeItem(atPath: out) }
    let status = try await ChildProcess.run(
      "/bin/sh", ["-c", "echo \"$GREETING\"; pwd; echo oops >&2; exit 3"], environment: ["GREETING": "hello"],
      directory: "/tmp", standardOutput: .file(out), standardError: .standardOutput)
    #expect(status == 3)
    #expect(try String(contentsOfFile: out, encoding: .utf8) == "hello\n/tmp\noops\n")
  }

  @Test func aSignalThatEndsTheChildIsItsStatus() async throws {
    let child = try ChildProcess.spawn("/bin/sleep", ["30"])
    #expect(child.status == nil)
    child.signal(SIGKILL)
    #expect(await child.wait() == SIGKILL)
    #expect(child.status == SIGKILL)
    child.signal(SIGTERM)  // reaped: nothing is sent (the pid may belong to another process by now)
  }

  /// A child still running at the limit is killed and reported, so a test waiting for one fails instead of
  /// hanging; one that ends in time gives its status.
  @Test func aBoundedWaitKillsAChildStillRunning() async throws {
    let slow = try ChildProcess.spawn("/bin/sleep", ["30"])
    let started = ContinuousClock.now
    #expect(await slow.wait(atMost: .milliseconds(300)) == nil)
    #expect(ContinuousClock.now - started < .seconds(10))
    #expect(slow.status == SIGKILL)
    let quick = try ChildProcess.spawn("/bin/sh", ["-c", "exit 4"])
    #expect(await quick.wait(atMost: .seconds(30)) == 4)
    let error = await #expect(throws: ChildProcess.Failure.self) {
      try await ChildProcess.run("/bin/sleep", ["30"], atMost: .milliseconds(300))
    }
    #expect(error?.description.hasPrefix("/bin/sleep 30 still ran after") == true)
  }

  @Test func theChildHoldsNoneOfTheParentsDescriptors() async throws {
    let held = Self.temp()
    let fd = open(held, O_WRONLY | O_CREAT, 0o644)  // no O_CLOEXEC: inherited unless closed for the child
    #expect(fd > 2)
    defer {
      close(fd)
      try? FileManager.default.removeItem(atPath: held)
    }
    let out = Self.temp()
    defer { try? FileManager.default.removeItem(atPath: out) }
    // The shell's own descriptors: 0, 1 and 2, and the one `ls` opens for the directory it lists.
    _ = try await ChildProcess.run("/bin/sh", ["-c", "ls /proc/self/fd"], standardOutput: .file(out))
    let listed = try String(contentsOfFile: out, encoding: .utf8).split(separator: "\n").compactMap { Int($0) }
    #expect(!listed.contains(Int(fd)), "\(listed)")
    #expect(listed.prefix(3) == [0, 1, 2])
  }

  @Test func manyAtOnce() async throws {
    let codes = try await withThrowingTaskGroup(of: (Int32, Int32).self) { group in
      for i in Int32(0)..<64 {
        group.addTask { (i % 7, try await ChildProcess.run("/bin/sh", ["-c", "exit \(i % 7)"])) }
      }
      return try await group.reduce(into: []) { $0.append($1) }
    }
    #expect(codes.count == 64)
    #expect(codes.allSatisfy { $0.0 == $0.1 })
  }

  @Test func aProgramThatDoesNotExistIsAnError() throws {
    #expect(throws: ChildProcess.Failure.self) { try ChildProcess.spawn("/nonexistent/program", []) }
  }
}
