import Foundation
import TesseraConnectors
import TesseraModel
import TesseraPostgres
import TesseraPostgresCluster
import TesseraRuntime
import TesseraSQLite
import TesseraStore

/// `tessera-bench compare-pg`: the same generated events through the same pipeline into SQLite and into
/// PostgreSQL, in one run. PostgreSQL is a throwaway cluster (initdb + pg_ctl in a temporary directory on a
/// free port, as the `postgres` user when running as root) unless `--pg-url` names a database.
enum PostgresBench {
  /// `commitEvents`: the PostgreSQL part's transaction size (`tessera run --commit-events`); the SQLite part
  /// keeps the default.
  static func run(
    events: Int, workers: Int, url: String?, commitEvents: Int = PipelineRunner.defaultCommitEvents
  ) async throws {
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

    var cluster: PostgresCluster?
    defer { cluster?.stop() }
    let target: String
    if let url {
      target = url
    } else {
      let c = try PostgresCluster(settings: "-c shared_buffers=512MB -c max_wal_size=4GB")
      cluster = c
      target = c.url
    }
    let pg = try await PostgresStore(url: target)
    var runner = PipelineRunner(
      plan: plan, store: pg, readers: [0: FileSourceReader(source: plan.config.sources[0])], workers: workers,
      now: now)
    runner.commitEvents = commitEvents
    let p = try await runner.run()
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
}
