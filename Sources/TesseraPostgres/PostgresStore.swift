import Foundation
import Logging
import PostgresNIO
import Synchronization
import TesseraIdentity
import TesseraModel
import TesseraStore

/// The store for several Tessera processes sharing one PostgreSQL database, through PostgresNIO.
///
/// - A `PostgresClient` (connection pool) runs for the store's lifetime; `close()` stops it.
/// - Every `CommitBatch` is one transaction, written with one statement per table and part of the batch: rows
///   travel as parallel arrays and are expanded by `unnest` (multi-row inserts without building SQL text).
/// - Several processes may commit at once (see "PostgreSQL: several processes, one database" in
///   `docs/ARCHITECTURE.md`): events are de-duplicated by their primary key, a commit first takes transaction
///   advisory locks on its identifiers in a fixed order, and after writing it re-checks those identifiers
///   against the database, merging profiles that another process gave the same identifier. A transaction that
///   fails with a serialization failure or a deadlock (SQLSTATE 40001, 40P01) is retried.
///
/// Schema: the same tables, versions and meanings as the SQLite store; timestamps are BIGINT microseconds,
/// profile ids BIGINT, values TEXT in the `StoredValue` form (exact round trips; JSONB would reorder keys and
/// refuse `\u0000`), scores DOUBLE PRECISION (which holds NaN, unlike SQLite's REAL).
public final class PostgresStore: Store {
  /// The schema version this build writes and understands (the SQLite store's numbering).
  public static let schemaVersion = 14

  let client: PostgresClient
  let runner: Task<Void, Never>
  let logger: Logger
  /// Re-check each commit's identifiers against the database and merge profiles that share one (on for
  /// several processes; a single writer never needs it, but it is cheap and stays on by default).
  let reconcile: Bool
  /// Whether a bulk writer's next events go in without the conflict check (`commit`): true until one of them
  /// repeats a stored event, and again after `finishWriting`.
  let bulkAppend = Mutex(true)
  /// The writer role while this process holds it (see `acquireWriter`).
  let lease = Mutex(WriterLease())
  /// Whether the server answers (watched on a connection of its own; see `Reachability`).
  let reachability = Reachability()
  let watcher: Task<Void, Never>?

  /// Opens the store at `url` (`postgres://user[:password]@host[:port]/database[?sslmode=disable|prefer|require]`),
  /// creating or upgrading the schema.
  public convenience init(url: String, maximumConnections: Int = 8, reconcile: Bool = true) async throws {
    let configuration = try Self.configuration(url: url, maximumConnections: maximumConnections)
    let sslmode = URLComponents(string: url)?.queryItems?.first { $0.name == "sslmode" }?.value ?? "disable"
    if sslmode == "disable" { try await Self.probe(configuration) }
    try await self.init(
      configuration: configuration, reconcile: reconcile,
      watch: sslmode == "disable" ? Self.direct(configuration) : nil)
  }

  /// Connects once outside the pool, so a wrong host, login or database fails at once with the server's
  /// reason (the pool retries for a minute and then reports only that its circuit breaker tripped). Only for
  /// plain connections (`sslmode=disable`, the default): a TLS context is the pool's business.
  public static func probe(_ c: PostgresClient.Configuration) async throws {
    guard let host = c.host, let config = direct(c) else { return }
    let place = "\(host):\(c.port ?? 5432)/\(c.database ?? "")"
    do {
      let connection = try await PostgresConnection.connect(
        configuration: config, id: 0,
        logger: Logger(label: "tessera.postgres", factory: { _ in SwiftLogNoOpLogHandler() }))
      try await connection.close()
    } catch {
      throw OpenError(place: place, underlying: error)
    }
  }

  /// A plain connection's configuration to the pool's server (nil for a Unix socket).
  static func direct(_ c: PostgresClient.Configuration) -> PostgresConnection.Configuration? {
    guard let host = c.host else { return nil }
    var config = PostgresConnection.Configuration(
      host: host, port: c.port ?? 5432, username: c.username, password: c.password, database: c.database,
      tls: .disable)
    config.options.connectTimeout = .seconds(5)
    return config
  }

  /// `watch`: a plain connection's configuration to watch the server on (`Reachability`); nil: not watched
  /// (operations then wait for the pool while the server is away).
  public init(
    configuration: PostgresClient.Configuration, reconcile: Bool = true,
    watch: PostgresConnection.Configuration? = nil
  ) async throws {
    let client = PostgresClient(configuration: configuration)
    self.client = client
    self.runner = Task { await client.run() }
    let logger = Logger(label: "tessera.postgres", factory: { _ in SwiftLogNoOpLogHandler() })
    self.logger = logger
    let reachability = self.reachability
    self.watcher = watch.map { config in Task { await reachability.watch(config, logger: logger) } }
    self.reconcile = reconcile
    do { try await migrate() } catch {
      runner.cancel()
      watcher?.cancel()
      if error is StoreError { throw error }
      throw OpenError(
        place: "\(configuration.host ?? configuration.unixSocketPath ?? "?"):\(configuration.port ?? 5432)"
          + "/\(configuration.database ?? "")", underlying: error)
    }
  }

  /// Stops the connection pool; the store must not be used afterwards.
  public func close() async {
    if let holder = lease.withLock({ $0.holder }) {
      holder.cancel()
      await holder.value
    }
    watcher?.cancel()
    await watcher?.value
    runner.cancel()
    _ = await runner.value
  }

  /// The database could not be opened (no server, refused login, missing database, …).
  public struct OpenError: Error, CustomStringConvertible {
    public var place: String
    public var underlying: any Error
    public var description: String {
      // PSQLError's description hides the server's message (it may hold data); the SQLSTATE and message of
      // a connection or login failure are what an operator needs.
      if let e = underlying as? PSQLError, let message = e.serverInfo?[.message] {
        return "cannot open the PostgreSQL store at \(place): \(message) (SQLSTATE \(e.serverInfo?[.sqlState] ?? "?"))"
      }
      return "cannot open the PostgreSQL store at \(place): \(String(reflecting: underlying))"
    }
  }

  public enum URLError: Error, CustomStringConvertible {
    case invalid(String)
    public var description: String {
      switch self {
      case .invalid(let why): return "invalid PostgreSQL URL: \(why)"
      }
    }
  }

  /// Parses a `postgres://` or `postgresql://` URL into a client configuration.
  public static func configuration(url: String, maximumConnections: Int = 8) throws -> PostgresClient.Configuration {
    guard let c = URLComponents(string: url), let scheme = c.scheme, scheme == "postgres" || scheme == "postgresql"
    else { throw URLError.invalid("`\(url)` is not postgres://user@host:port/database") }
    guard let host = c.host, !host.isEmpty else { throw URLError.invalid("`\(url)` names no host") }
    let database = c.path.hasPrefix("/") ? String(c.path.dropFirst()) : c.path
    let tls: PostgresClient.Configuration.TLS
    switch c.queryItems?.first(where: { $0.name == "sslmode" })?.value ?? "disable" {
    case "disable": tls = .disable
    case "prefer", "allow": tls = .prefer(.makeClientConfiguration())
    case "require", "verify-ca", "verify-full": tls = .require(.makeClientConfiguration())
    case let other: throw URLError.invalid("sslmode `\(other)` is not disable, prefer or require")
    }
    var config = PostgresClient.Configuration(
      host: host, port: c.port ?? 5432, username: c.user ?? "postgres", password: c.password,
      database: database.isEmpty ? nil : database, tls: tls)
    config.options.maximumConnections = maximumConnections
    config.options.connectTimeout = .seconds(5)
    return config
  }

  // MARK: - Transactions

  /// SQLSTATEs after which the whole transaction is run again: serialization failure, deadlock detected.
  static let retryable: Set<String> = ["40001", "40P01"]

  /// Runs `body` in one transaction on one pooled connection; retries it (up to 20 times, with a short
  /// randomised back-off) when PostgreSQL aborts it for a serialization failure or a deadlock.
  func transaction<T: Sendable>(_ body: (PostgresConnection) async throws -> T) async throws -> T {
    try reachability.check()
    do { return try await retrying(body) } catch { throw PostgresFault.classify(error) }
  }

  func retrying<T: Sendable>(_ body: (PostgresConnection) async throws -> T) async throws -> T {
    var attempt = 0
    while true {
      do {
        return try await leased { conn in
          try await conn.query("BEGIN", logger: logger)
          do {
            let value = try await body(conn)
            try await conn.query("COMMIT", logger: logger)
            return value
          } catch {
            // The original error is what matters; a failed ROLLBACK (connection gone) adds nothing.
            _ = try? await conn.query("ROLLBACK", logger: logger)
            throw error
          }
        }
      } catch let error as PSQLError {
        guard let state = error.serverInfo?[.sqlState], Self.retryable.contains(state), attempt < 20 else {
          throw error
        }
        attempt += 1
        try await Task.sleep(for: .milliseconds(Int.random(in: 1...(5 * attempt))))
      }
    }
  }

  /// Runs reads on one pooled connection (no transaction: each statement sees what is committed).
  func read<T: Sendable>(_ body: (PostgresConnection) async throws -> T) async throws -> T {
    try reachability.check()
    do { return try await leased(body) } catch {
      throw PostgresFault.classify(error)
    }
  }

  /// Runs `body` on a pooled connection. With the server watched, the wait for the connection is raced against
  /// the watcher: an operation that asked the pool just before the server went away fails with
  /// `connectionLost` as soon as the watcher notices, instead of waiting for the pool (which waited on, without
  /// end, for a server that stayed away). A child task holds the pool's lease and lends the connection (`Lending`).
  func leased<T: Sendable>(_ body: (PostgresConnection) async throws -> T) async throws -> T {
    guard watcher != nil else { return try await client.withConnection { conn in try await body(conn) } }
    let lending = Lending()
    let client = self.client
    return try await withThrowingTaskGroup(of: Void.self, returning: T.self) { group in
      group.addTask {
        do { try await client.withConnection { conn in await lending.lend(conn) } } catch { lending.fail(error) }
      }
      let conn: PostgresConnection
      do { conn = try await reachability.connection(lending) } catch {
        group.cancelAll()
        throw error
      }
      defer { lending.giveBack() }
      return try await body(conn)
    }
  }

  // MARK: - Schema

  /// Migrations in order; `migrations[n]` brings the schema from version n to n + 1.
  static let migrations: [String] = [
    // v1
    """
    CREATE TABLE meta (key TEXT PRIMARY KEY, value BIGINT NOT NULL);
    INSERT INTO meta (key, value) VALUES ('schema_version', 1);
    CREATE TABLE profiles (
      id BIGINT PRIMARY KEY,
      created_at BIGINT NOT NULL,
      merged_into BIGINT CHECK (merged_into IS NULL OR merged_into <> id)
    );
    CREATE INDEX profiles_merged_into ON profiles (merged_into) WHERE merged_into IS NOT NULL;
    -- seq keeps the order events were written in (what replay reads).
    CREATE TABLE events (
      source TEXT NOT NULL,
      id TEXT NOT NULL,
      seq BIGINT GENERATED ALWAYS AS IDENTITY,
      type TEXT NOT NULL,
      name TEXT,
      timestamp BIGINT NOT NULL,
      received_at BIGINT NOT NULL,
      profile_id BIGINT NOT NULL,
      body TEXT NOT NULL,
      PRIMARY KEY (source, id)
    );
    CREATE INDEX events_profile ON events (profile_id, timestamp);
    CREATE INDEX events_seq ON events (seq);
    CREATE TABLE identifiers (
      kind TEXT NOT NULL,
      value TEXT NOT NULL,
      profile_id BIGINT NOT NULL,
      last_seen BIGINT NOT NULL,
      PRIMARY KEY (kind, value, profile_id)
    );
    CREATE INDEX identifiers_profile ON identifiers (profile_id);
    CREATE TABLE traits (
      profile_id BIGINT NOT NULL,
      trait TEXT NOT NULL,
      value TEXT NOT NULL,
      source TEXT NOT NULL,
      event_id TEXT NOT NULL,
      timestamp BIGINT NOT NULL,
      state TEXT NOT NULL,
      PRIMARY KEY (profile_id, trait)
    );
    CREATE TABLE merges (
      id BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
      survivor BIGINT NOT NULL,
      absorbed BIGINT NOT NULL,
      rule TEXT NOT NULL,
      evidence TEXT NOT NULL,
      event_id TEXT NOT NULL,
      at BIGINT NOT NULL,
      score DOUBLE PRECISION NOT NULL
    );
    CREATE INDEX merges_survivor ON merges (survivor);
    CREATE INDEX merges_absorbed ON merges (absorbed);
    CREATE TABLE conflicts (
      id BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
      kept BIGINT NOT NULL,
      other BIGINT,
      kind TEXT NOT NULL,
      reason TEXT NOT NULL,
      identifiers TEXT NOT NULL,
      event_id TEXT NOT NULL,
      at BIGINT NOT NULL
    );
    CREATE INDEX conflicts_kept ON conflicts (kept);
    CREATE INDEX conflicts_other ON conflicts (other) WHERE other IS NOT NULL;
    CREATE TABLE rejected (
      id BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
      source TEXT NOT NULL,
      line BIGINT,
      record TEXT NOT NULL,
      reason TEXT NOT NULL,
      at BIGINT NOT NULL
    );
    """,
    // v2: a record rejected again on a later run over the same files is kept once. The index is on md5 of the
    // text: a btree entry must fit in a third of a page, and rejected records can be long.
    """
    DELETE FROM rejected WHERE id NOT IN (SELECT min(id) FROM rejected GROUP BY source, reason, record);
    CREATE UNIQUE INDEX rejected_once ON rejected (source, md5(reason), md5(record));
    UPDATE meta SET value = 2 WHERE key = 'schema_version';
    """,
    // v3: computed-trait states, segment memberships and the log of segment changes.
    """
    CREATE TABLE computed_traits (
      profile_id BIGINT NOT NULL,
      trait TEXT NOT NULL,
      value TEXT NOT NULL,
      state TEXT NOT NULL,
      PRIMARY KEY (profile_id, trait)
    );
    CREATE TABLE memberships (
      segment TEXT NOT NULL,
      profile_id BIGINT NOT NULL,
      since BIGINT NOT NULL,
      PRIMARY KEY (segment, profile_id)
    );
    CREATE INDEX memberships_profile ON memberships (profile_id);
    CREATE TABLE segment_changes (
      id BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
      segment TEXT NOT NULL,
      profile_id BIGINT NOT NULL,
      entered BOOLEAN NOT NULL,
      at BIGINT NOT NULL,
      "values" TEXT NOT NULL,
      merged_into BIGINT
    );
    CREATE INDEX segment_changes_segment ON segment_changes (segment, id);
    UPDATE meta SET value = 3 WHERE key = 'schema_version';
    """,
    // v4: the log of probabilistic decisions.
    """
    CREATE TABLE match_links (
      id BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
      rule TEXT NOT NULL,
      profile_id BIGINT NOT NULL,
      candidate_id BIGINT NOT NULL,
      event_id TEXT NOT NULL,
      probability DOUBLE PRECISION NOT NULL,
      weight DOUBLE PRECISION NOT NULL,
      status TEXT NOT NULL,
      reason TEXT NOT NULL,
      at BIGINT NOT NULL
    );
    CREATE INDEX match_links_status ON match_links (status, id);
    UPDATE meta SET value = 4 WHERE key = 'schema_version';
    """,
    // v5: identifier pairs people separated (tessera unmerge).
    """
    CREATE TABLE separations (
      kind_a TEXT NOT NULL, value_a TEXT NOT NULL, kind_b TEXT NOT NULL, value_b TEXT NOT NULL,
      PRIMARY KEY (kind_a, value_a, kind_b, value_b)
    );
    UPDATE meta SET value = 5 WHERE key = 'schema_version';
    """,
    // v6: hashes of deleted people's identifiers.
    """
    CREATE TABLE suppressions (hash TEXT PRIMARY KEY);
    UPDATE meta SET value = 6 WHERE key = 'schema_version';
    """,
    // v7: the outbox and its delivery batches.
    """
    CREATE TABLE delivery_batches (
      id BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
      destination TEXT NOT NULL,
      key TEXT NOT NULL,
      status TEXT NOT NULL,
      attempts BIGINT NOT NULL,
      items BIGINT NOT NULL,
      bytes BIGINT NOT NULL,
      created_at BIGINT NOT NULL,
      next_attempt_at BIGINT NOT NULL,
      lease_until BIGINT,
      last_status BIGINT,
      last_error TEXT NOT NULL,
      finished_at BIGINT
    );
    CREATE INDEX delivery_batches_due ON delivery_batches (destination, status, next_attempt_at);
    CREATE TABLE outbox (
      id BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
      destination TEXT NOT NULL,
      op TEXT NOT NULL,
      profile_id BIGINT NOT NULL,
      key TEXT NOT NULL,
      payload TEXT NOT NULL,
      at BIGINT NOT NULL,
      batch_id BIGINT REFERENCES delivery_batches (id)
    );
    CREATE INDEX outbox_waiting ON outbox (destination, id) WHERE batch_id IS NULL;
    CREATE INDEX outbox_batch ON outbox (batch_id) WHERE batch_id IS NOT NULL;
    CREATE INDEX outbox_profile ON outbox (profile_id);
    CREATE VIEW dead_letters AS
      SELECT id, destination, key, attempts, items, last_status, last_error, created_at, finished_at
      FROM delivery_batches WHERE status = 'dead';
    UPDATE meta SET value = 7 WHERE key = 'schema_version';
    """,
    // v8
    """
    CREATE TABLE journal (
      seq BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
      source TEXT NOT NULL,
      id TEXT NOT NULL,
      type TEXT NOT NULL,
      name TEXT,
      timestamp BIGINT NOT NULL,
      received_at BIGINT NOT NULL,
      body TEXT NOT NULL,
      UNIQUE (source, id)
    );
    INSERT INTO meta (key, value) VALUES ('epoch', 0);
    UPDATE meta SET value = 8 WHERE key = 'schema_version';
    """,
    // v9: the event log keeps each event's record as received, with its identifiers apart
    // (`EventLogFormat`); earlier events keep their mapped bodies (format 0). The journal keeps the record
    // beside the mapped fields, for the writer's log.
    """
    ALTER TABLE events ADD COLUMN identifiers TEXT, ADD COLUMN format INT NOT NULL DEFAULT 0,
      ADD COLUMN record BYTEA;
    ALTER TABLE events ALTER COLUMN body DROP NOT NULL;
    ALTER TABLE journal ADD COLUMN record BYTEA;
    UPDATE meta SET value = 9 WHERE key = 'schema_version';
    """,
    // v10: how far each table source has read (`CommitBatch.sourceCursors`), written with its events.
    """
    CREATE TABLE source_cursors (source TEXT PRIMARY KEY, value TEXT NOT NULL);
    UPDATE meta SET value = 10 WHERE key = 'schema_version';
    """,
    // v11: each profile's recent device-signal sightings (`CommitBatch.sightings`), written with the events
    // that produced them; pruned by `expires`. (SQLite's v12.)
    """
    CREATE TABLE sightings (profile_id BIGINT PRIMARY KEY, expires BIGINT NOT NULL, sightings TEXT NOT NULL);
    CREATE INDEX sightings_expires ON sightings (expires);
    UPDATE meta SET value = 11 WHERE key = 'schema_version';
    """,
    // v12: no table changes; trait summaries may leave out their winner (SQLite's v14: builds before it could
    // not read them, and now refuse the database).
    """
    UPDATE meta SET value = 12 WHERE key = 'schema_version';
    """,
    // v13: the text columns of the large keys compare bytewise (COLLATE "C"): the order of SQLite's BINARY
    // keys, and no locale comparison (strcoll) per key compared — a database made with a locale such as
    // en_US.UTF-8 or C.UTF-8 compares through the C library otherwise. Identifier and trait rows leave a fifth
    // of each page free, so the upsert of a row seen again (a new last_seen, a new trait state: no key column
    // changes) can stay on its page without new index entries (a HOT update). Only the indexes are rebuilt.
    """
    ALTER TABLE events ALTER COLUMN source TYPE TEXT COLLATE "C", ALTER COLUMN id TYPE TEXT COLLATE "C";
    ALTER TABLE journal ALTER COLUMN source TYPE TEXT COLLATE "C", ALTER COLUMN id TYPE TEXT COLLATE "C";
    ALTER TABLE identifiers ALTER COLUMN kind TYPE TEXT COLLATE "C", ALTER COLUMN value TYPE TEXT COLLATE "C",
      SET (fillfactor = 80);
    ALTER TABLE traits ALTER COLUMN trait TYPE TEXT COLLATE "C", SET (fillfactor = 80);
    UPDATE meta SET value = 13 WHERE key = 'schema_version';
    """,
    // v14: settings kept as text (`meta` holds numbers): the trait policies readers explain trait values by
    // (`TraitPolicies`; SQLite keeps them in its `meta`).
    """
    CREATE TABLE settings (key TEXT PRIMARY KEY, value TEXT NOT NULL);
    UPDATE meta SET value = 14 WHERE key = 'schema_version';
    """,
  ]

  /// Brings the schema to `schemaVersion`, one transaction per migration. A transaction advisory lock makes
  /// processes that start together migrate one after the other (the second finds the work done).
  func migrate() async throws {
    try await transaction { conn in
      for try await _ in try await conn.query("SELECT pg_advisory_xact_lock(\(Self.migrationLock))", logger: logger) {}
      var found = 0
      let exists = try await conn.query("SELECT to_regclass('meta') IS NOT NULL", logger: logger)
      for try await e in exists.decode(Bool.self) where e {
        let version = try await conn.query("SELECT value FROM meta WHERE key = 'schema_version'", logger: logger)
        for try await v in version.decode(Int64.self) { found = Int(v) }
      }
      if found > Self.schemaVersion { throw StoreError.schemaTooNew(found: found, supported: Self.schemaVersion) }
      for step in Self.migrations[found...] {
        // One statement at a time: PostgresNIO sends every query with the extended protocol, which takes one.
        for statement in step.split(separator: ";\n") {
          let sql = statement.trimmingCharacters(in: .whitespacesAndNewlines)
          if sql.isEmpty { continue }
          try await conn.query(PostgresQuery(unsafeSQL: sql), logger: logger)
        }
      }
    }
  }

  /// The advisory lock key of migrations (any fixed number no identifier lock takes in the same transaction).
  static let migrationLock: Int64 = 0x7465_7373_6572_6131
}
