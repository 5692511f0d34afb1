import Foundation
import TesseraConnectors
import TesseraModel
import TesseraPostgres
import TesseraRuntime
import TesseraSQLite
import TesseraStore

#if canImport(Glibc)
  import Glibc
#endif

/// `tessera-bench compare-pg`: the same generated events through the same pipeline into SQLite and into
/// PostgreSQL, in one run. PostgreSQL is a throwaway cluster (initdb + pg_ctl in a temporary directory on a
/// free port, as the `postgres` user when running as root) unless `--pg-url` names a database.
enum PostgresBench {
  static let binaries = ProcessInfo.processInfo.environment["TESSERA_PG_BIN"] ?? "/usr/lib/postgresql/15/bin"

  static func run(events: Int, workers: Int, url: String?) async throws {
    let dir = NSTemporaryDirectory() + "tessera-bench-\(events)"
    let (plan, bytes) = try PipelineBench.prepare(events: events, dir: dir)
    let mib = Double(bytes) / 1_048_576
    let now = Timestamp(iso8601: "2026-06-30T00:00:00Z") ?? Timestamp(microseconds: 0)

    let path = dir + "/bench.sqlite"
    for suffix in ["", "-wal", "-shm"] { try? FileManager.default.removeItem(atPath: path + suffix) }
    let sqlite = try SQLiteStore(path: path)
    let s = try await PipelineRunner(
      plan: plan, store: sqlite, readers: [0: FileSourceReader(source: plan.config.sources[0])], workers: workers,
      now: now
    ).run()
    let sqliteStats = try await sqlite.stats()
    print(
      String(
        format: "pipeline → sqlite: %d events (%.0f MiB), %d workers: %.2f s, %.0f events/s; %d profiles, %d merges",
        s.stats.events, mib, workers, s.seconds, Double(s.stats.events) / s.seconds, sqliteStats.profiles,
        sqliteStats.merges))
    fflush(nil)  // every stream: the figure is on screen before the PostgreSQL part starts

    var cluster: Cluster?
    defer { cluster?.stop() }
    let target: String
    if let url {
      target = url
    } else {
      let c = try Cluster()
      cluster = c
      target = c.url
    }
    let pg = try await PostgresStore(url: target)
    let p = try await PipelineRunner(
      plan: plan, store: pg, readers: [0: FileSourceReader(source: plan.config.sources[0])], workers: workers,
      now: now
    ).run()
    let pgStats = try await pg.stats()
    print(
      String(
        format:
          "pipeline → postgres: %d events (%.0f MiB), %d workers: %.2f s, %.0f events/s; %d profiles, %d merges",
        p.stats.events, mib, workers, p.seconds, Double(p.stats.events) / p.seconds, pgStats.profiles, pgStats.merges))
    print(
      "same result: \(sqliteStats == pgStats ? "yes" : "NO") (events, profiles, identifiers, merges, conflicts, rejected)"
    )
    await pg.close()
  }

  /// A throwaway cluster, as the PostgreSQL tests start it (fsync off: the figure is the store's work, not the
  /// disk's flush latency; `synchronous_commit` stays on).
  final class Cluster {
    let dir: String
    let port: Int
    let user: String
    let asRoot = getuid() == 0
    var url: String { "postgres://\(user)@127.0.0.1:\(port)/postgres" }

    init() throws {
      user = asRoot ? "postgres" : (ProcessInfo.processInfo.environment["USER"] ?? "postgres")
      dir = NSTemporaryDirectory() + "tessera-bench-pg-\(UUID().uuidString)"
      try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
      port = Int.random(in: 20_000...60_000)
      if asRoot { try Self.run("/bin/chown", ["postgres:postgres", dir]) }
      try command("initdb", ["-D", dir + "/data", "-A", "trust", "-U", user, "--no-sync", "-E", "UTF8"])
      try command(
        "pg_ctl",
        [
          "-D", dir + "/data", "-l", dir + "/server.log", "-w", "-o",
          "-h 127.0.0.1 -p \(port) -k \(dir) -c fsync=off -c shared_buffers=512MB -c max_wal_size=4GB", "start",
        ])
    }

    func stop() {
      try? command("pg_ctl", ["-D", dir + "/data", "-m", "fast", "-w", "stop"])
      try? FileManager.default.removeItem(atPath: dir)
    }

    func command(_ name: String, _ arguments: [String]) throws {
      if asRoot {
        try Self.run("/usr/sbin/runuser", ["-u", "postgres", "--", PostgresBench.binaries + "/" + name] + arguments)
      } else {
        try Self.run(PostgresBench.binaries + "/" + name, arguments)
      }
    }

    struct Failed: Error {
      var text: String
    }

    /// Runs a program to its end with `posix_spawn` and `waitpid`, its output in a temporary file. (Foundation's
    /// `Process` did not return from `pg_ctl start`: the server it leaves running keeps its parent's descriptors.)
    static func run(_ path: String, _ arguments: [String]) throws {
      let log = NSTemporaryDirectory() + "tessera-pg-cmd-\(UUID().uuidString).log"
      defer { try? FileManager.default.removeItem(atPath: log) }
      var actions = posix_spawn_file_actions_t()
      posix_spawn_file_actions_init(&actions)
      defer { posix_spawn_file_actions_destroy(&actions) }
      posix_spawn_file_actions_addopen(&actions, 0, "/dev/null", O_RDONLY, 0)
      posix_spawn_file_actions_addopen(&actions, 1, log, O_WRONLY | O_CREAT | O_TRUNC, 0o644)
      posix_spawn_file_actions_adddup2(&actions, 1, 2)
      let argv: [UnsafeMutablePointer<CChar>?] = ([path] + arguments).map { strdup($0) } + [nil]
      defer { for a in argv { free(a) } }
      var pid: pid_t = 0
      let spawned = posix_spawn(&pid, path, &actions, nil, argv, environ)
      guard spawned == 0 else { throw Failed(text: "\(path) failed to start: error \(spawned)") }
      var status: Int32 = 0
      while waitpid(pid, &status, 0) < 0 && errno == EINTR {}
      let text = (try? String(contentsOfFile: log, encoding: .utf8)) ?? ""
      // Exited normally with status 0: WIFEXITED and WEXITSTATUS spelled out (the macros are not imported).
      if status & 0x7f != 0 || (status >> 8) & 0xff != 0 {
        throw Failed(text: "\(path) \(arguments.joined(separator: " ")) failed (status \(status)): \(text)")
      }
    }
  }
}
