import Foundation
import TesseraModel
import TesseraSQLite
import TesseraStore
import Testing

/// `tessera run` into a store on a real file system that fills up (a 1 MiB tmpfs, mounted for the test; needs
/// root): exit status 4 with the reason, what each source committed and the command to continue; after the
/// file system grows, the same command finishes and the profiles are a clean run's.
@Suite(
  "End to end: tessera run on a full file system",
  .serialized,
  .enabled(if: E2E.CLI.binary != nil, "no built `tessera`; run `swift build --build-tests` first"),
  .enabled(if: Tmpfs.canMount, "mounting a tmpfs needs root"))
struct StorageFaultCLITests {
  @Test("the run stops with status 4 and what was committed; after space returns it finishes like a clean run")
  func fullFileSystem() async throws {
    let dir = try E2E.TempDir()
    defer { dir.remove() }
    let pipeline = try E2E.writeGenerated(into: dir, seed: 23, people: 300, events: 4000)
    let disk = dir.file("disk")
    try FileManager.default.createDirectory(atPath: disk, withIntermediateDirectories: true)
    try Tmpfs.mount(["-t", "tmpfs", "-o", "size=1m", "tmpfs", disk])
    defer { Tmpfs.umount(disk) }
    let storePath = disk + "/store.sqlite"
    let command = ["run", pipeline, "--store", storePath, "--commit-events", "500", "--progress", "none"]

    let failed = try await E2E.CLI.tessera(command)
    Self.expectStopped(
      failed, "error: the store's disk is full: SQLite error 13: database or disk is full",
      "to continue: free space on the file system that holds the store (or raise its quota); then run "
        + "`tessera \(command.joined(separator: " "))` again")
    #expect(failed.stderr.contains("the run stopped; everything committed before is whole:"))

    // The file system grows; the same command finishes.
    try Tmpfs.mount(["-o", "remount,size=64m", disk])
    let again = try await E2E.CLI.tessera(command)
    #expect(again.status == 0, "\(again.stderr)")
    let store = try SQLiteStore(path: storePath)
    let clean = try SQLiteStore(path: dir.file("clean.sqlite"))
    _ = try await E2E.runner(try E2E.compile(pipeline), clean, workers: 2, commitEvents: 500).run()
    #expect(try await store.stats().events == clean.stats().events)
    E2E.expectSameCanonical(
      try await E2E.canonical(store), try await E2E.canonical(clean), "after the disk filled vs a clean run")
    try store.close()

    // The file system is remounted read-only (as after disk errors): refused at once, with the reason.
    try Tmpfs.mount(["-o", "remount,ro", disk])
    Self.expectStopped(
      try await E2E.CLI.tessera(command),
      "error: the store is read-only: `\(storePath)` is on a read-only file system",
      "to continue: make the store's file and directory writable")
  }

  /// Exit status 4, the error and the advice on standard error, and not ArgumentParser's generic `Error:`.
  static func expectStopped(
    _ r: E2E.CLI.Result, _ error: String, _ advice: String, sourceLocation: SourceLocation = #_sourceLocation
  ) {
    #expect(r.status == 4, "\(r.status): \(r.stderr)", sourceLocation: sourceLocation)
    #expect(r.stderr.contains(error), "\(r.stderr)", sourceLocation: sourceLocation)
    #expect(r.stderr.contains(advice), "\(r.stderr)", sourceLocation: sourceLocation)
    #expect(!r.stderr.contains("Error:"), "ArgumentParser's generic error: \(r.stderr)", sourceLocation: sourceLocation)
  }
}

/// Mounting a small file system of our own (root only).
enum Tmpfs {
  static let canMount: Bool = getuid() == 0 && FileManager.default.isExecutableFile(atPath: "/bin/mount")

  static func mount(_ arguments: [String]) throws {
    if try ChildProcess.runBlocking("/bin/mount", arguments) != 0 { throw CocoaError(.fileWriteUnknown) }
  }

  static func umount(_ path: String) {
    _ = try? ChildProcess.runBlocking("/bin/umount", [path])
  }
}
