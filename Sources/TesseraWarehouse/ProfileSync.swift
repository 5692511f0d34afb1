import Foundation
import Logging
import PostgresNIO
import TesseraCompiler
import TesseraModel
import TesseraPostgres
import TesseraRuntime
import TesseraStore

/// `tessera sync`: keeps the tables of a `sync:` declaration equal to what the store holds, in one PostgreSQL
/// transaction per sync (analysts never see half of one):
///
/// | table | one row per | columns |
/// |---|---|---|
/// | `profiles` | live profile | `profile_id`, `traits` (jsonb of the visible values, computed traits included) |
/// | `profile_traits` | profile and trait | `value` (jsonb), `value_text`, `source` (the winning source), `event_id`, `observed_at`, `computed` |
/// | `identifiers` | identifier | `kind`, `value`, `profile_id`, `last_seen` |
/// | `profile_aliases` | absorbed profile | `absorbed_id`, `profile_id` (the live profile it resolves to) |
/// | `segment_memberships` | segment and member | `segment`, `profile_id`, `since` |
/// | `segment_changes` | entry or exit | `segment`, `profile_id` (live now), `entered`, `at` |
/// | `merge_log` | merge or unmerge | `kind`, `survivor_id`, `absorbed_id`, `profile_id` (live now), `rule`, `evidence`, `event_id`, `at`, `score` |
/// | `events` | event | `source`, `event_id`, `profile_id` (live now), `type`, `name`, `timestamp`, `properties`, `traits` |
///
/// Incremental: every row carries `sync_hash` (a hash of its columns); a sync reads the keys and hashes the
/// table holds, writes only the rows that are new or changed (batched upserts from `json_populate_recordset`)
/// and deletes the rows the store no longer has (absorbed by a merge, split by an unmerge, erased). So the
/// tables after any sequence of syncs equal those of a fresh sync of the same store.
public struct ProfileSync: Sendable {
  public let sync: SyncDecl
  public let config: PipelineConfig
  public let store: any Store
  let logger: Logger
  /// Rows per statement.
  let batchRows: Int

  public init(sync: SyncDecl, config: PipelineConfig, store: any Store, batchRows: Int = 5000) {
    self.sync = sync
    self.config = config
    self.store = store
    self.logger = Logger(label: "tessera.sync", factory: { _ in SwiftLogNoOpLogHandler() })
    self.batchRows = max(1, batchRows)
  }

  /// What a sync did to one table.
  public struct TableReport: Sendable, Hashable {
    public var table: String
    /// Rows the table holds after the sync.
    public var rows: Int
    /// Rows written (new or changed).
    public var written: Int
    public var deleted: Int
  }

  public struct Report: Sendable {
    public var tables: [TableReport]
    public var seconds: Double
    public var rowsWritten: Int { tables.reduce(0) { $0 + $1.written } }
    public var rows: Int { tables.reduce(0) { $0 + $1.rows } }
  }

  public struct Failure: Error, CustomStringConvertible {
    public var description: String
  }

  /// A table as the sync keeps it: its columns (SQL types), its key, and the rows the store says it should hold.
  struct Table {
    var name: String
    var columns: [(name: String, type: String)]
    var key: [String]
    var rows: [[String: Value]] = []

    var ddl: String {
      let cols = columns.map { "\($0.name) \($0.type)" } + ["sync_hash TEXT NOT NULL"]
      return "(\(cols.joined(separator: ", ")), PRIMARY KEY (\(key.joined(separator: ", "))))"
    }
  }

  public func run() async throws -> Report {
    let started = ContinuousClock.now
    let tables = try await desiredTables()
    let configuration: PostgresClient.Configuration
    do {
      configuration = try PostgresStore.configuration(url: sync.database, maximumConnections: 1)
    } catch {
      throw Failure(description: "sync `\(sync.name)`: \(error)")
    }
    if PostgresSourceReader.plain(sync.database) {
      do { try await PostgresStore.probe(configuration) } catch let e as PostgresStore.OpenError {
        throw Failure(
          description: "sync `\(sync.name)`: cannot open \(e.place): \(PostgresSourceReader.describe(e.underlying))")
      }
    }
    let client = PostgresClient(configuration: configuration)
    let runner = Task { await client.run() }
    defer { runner.cancel() }
    var reports: [TableReport] = []
    do {
      try await client.withConnection { conn in
        try await conn.query("BEGIN", logger: logger)
        do {
          // One sync at a time per schema (a second waits for the first).
          try await conn.query(
            PostgresQuery(unsafeSQL: "SELECT pg_advisory_xact_lock(hashtext('tessera.sync.' || '\(sync.schema)'))"),
            logger: logger)
          try await conn.query(PostgresQuery(unsafeSQL: "CREATE SCHEMA IF NOT EXISTS \(schema)"), logger: logger)
          for t in tables {
            try await conn.query(
              PostgresQuery(unsafeSQL: "CREATE TABLE IF NOT EXISTS \(schema).\(t.name) \(t.ddl)"), logger: logger)
            reports.append(try await apply(t, conn))
          }
          try await conn.query("COMMIT", logger: logger)
        } catch {
          _ = try? await conn.query("ROLLBACK", logger: logger)
          throw error
        }
      }
    } catch let e as Failure {
      throw e
    } catch {
      throw Failure(description: "sync `\(sync.name)`: \(PostgresSourceReader.describe(error))")
    }
    return Report(tables: reports, seconds: (ContinuousClock.now - started) / .seconds(1))
  }

  var schema: String { PostgresSourceReader.quote(sync.schema) }

  /// Brings one table to its rows: reads the keys and hashes it holds, upserts what differs, deletes the rest.
  func apply(_ t: Table, _ conn: PostgresConnection) async throws -> TableReport {
    // A row's key: its key columns (all text) joined with U+001F, in Swift and in SQL alike.
    let keySQL = "concat_ws(chr(31), \(t.key.joined(separator: ", ")))"
    var held: [String: String] = [:]
    let rows = try await conn.query(
      PostgresQuery(unsafeSQL: "SELECT \(keySQL), sync_hash FROM \(schema).\(t.name)"), logger: logger)
    for try await (k, h) in rows.decode((String, String).self) { held[k] = h }
    var changed: [String] = []
    var wanted: Set<String> = []
    for row in t.rows {
      let key = t.key.map { row[$0]?.stringValue ?? "" }.joined(separator: "\u{1F}")
      wanted.insert(key)
      let body = JSON.encode(.map(row))
      let hash = Self.hash(body)
      if held[key] == hash { continue }
      var withHash = row
      withHash["sync_hash"] = .string(hash)
      changed.append(JSON.encode(.map(withHash)))
    }
    let gone = held.keys.filter { !wanted.contains($0) }
    let columns = t.columns.map(\.name) + ["sync_hash"]
    let list = columns.joined(separator: ", ")
    let updates = columns.filter { !t.key.contains($0) }.map { "\($0) = excluded.\($0)" }.joined(separator: ", ")
    var start = 0
    while start < gone.count {
      var b = PostgresBindings()
      b.append(Array(gone[start..<min(gone.count, start + batchRows)]))
      try await conn.query(
        PostgresQuery(unsafeSQL: "DELETE FROM \(schema).\(t.name) WHERE \(keySQL) = ANY($1::text[])", binds: b),
        logger: logger)
      start += batchRows
    }
    start = 0
    while start < changed.count {
      let part = changed[start..<min(changed.count, start + batchRows)]
      let json = "[" + part.joined(separator: ",") + "]"
      try await conn.query(
        PostgresQuery(
          unsafeSQL: """
            INSERT INTO \(schema).\(t.name) (\(list))
            SELECT \(list) FROM json_populate_recordset(NULL::\(schema).\(t.name), $1::json)
            ON CONFLICT (\(t.key.joined(separator: ", "))) DO UPDATE SET \(updates)
            """, binds: Self.bind(json)), logger: logger)
      start += batchRows
    }
    return TableReport(table: t.name, rows: t.rows.count, written: changed.count, deleted: gone.count)
  }

  static func bind(_ text: String) -> PostgresBindings {
    var b = PostgresBindings()
    b.append(text)
    return b
  }

  /// 64-bit FNV-1a of the row's JSON, as hex: equal rows, equal hashes, in every process.
  static func hash(_ text: String) -> String {
    var h: UInt64 = 0xcbf2_9ce4_8422_2325
    for b in text.utf8 {
      h ^= UInt64(b)
      h = h &* 0x100_0000_01b3
    }
    return String(h, radix: 16)
  }

  // MARK: what the store holds

  func desiredTables() async throws -> [Table] {
    let identity = try await store.loadIdentity()
    var live: [ProfileID: ProfileID] = [:]
    for (p, _) in identity.profiles { live[p] = p }
    for a in identity.aliases { live[a.absorbed] = a.survivor }
    func resolved(_ p: ProfileID) -> ProfileID {
      var p = p
      var seen = 0
      while let next = live[p], next != p, seen < 1000 {
        p = next
        seen += 1
      }
      return p
    }
    func id(_ p: ProfileID) -> Value { .string(p.description) }
    func time(_ t: Timestamp) -> Value { .string(t.iso8601) }

    var profiles = Table(name: "profiles", columns: [("profile_id", "TEXT"), ("traits", "JSONB")], key: ["profile_id"])
    var traitRows = Table(
      name: "profile_traits",
      columns: [
        ("profile_id", "TEXT"), ("trait", "TEXT"), ("value", "JSONB"), ("value_text", "TEXT"), ("source", "TEXT"),
        ("event_id", "TEXT"), ("observed_at", "TIMESTAMPTZ"), ("computed", "BOOLEAN"),
      ], key: ["profile_id", "trait"])
    var visible: [ProfileID: [String: Value]] = [:]
    for t in try await store.loadTraits() where !t.value.isNull {
      visible[t.profile, default: [:]][t.trait] = t.value
      traitRows.rows.append([
        "profile_id": id(t.profile), "trait": .string(t.trait), "value": t.value, "value_text": Self.text(t.value),
        "source": .string(t.source), "event_id": .string(t.eventID), "observed_at": time(t.timestamp),
        "computed": .bool(false),
      ])
    }
    for c in try await store.loadComputed() where !c.value.isNull {
      visible[c.profile, default: [:]][c.trait] = c.value
      traitRows.rows.append([
        "profile_id": id(c.profile), "trait": .string(c.trait), "value": c.value, "value_text": Self.text(c.value),
        "source": .string("computed"), "computed": .bool(true),
      ])
    }
    var identifiers = Table(
      name: "identifiers",
      columns: [("kind", "TEXT"), ("value", "TEXT"), ("profile_id", "TEXT"), ("last_seen", "TIMESTAMPTZ")],
      key: ["kind", "value", "profile_id"])
    for (p, ids) in identity.profiles {
      profiles.rows.append(["profile_id": id(p), "traits": .map(visible[p] ?? [:])])
      for (i, seen) in ids {
        identifiers.rows.append([
          "kind": .string(i.kind), "value": .string(i.value), "profile_id": id(p), "last_seen": time(seen),
        ])
      }
    }
    var aliases = Table(
      name: "profile_aliases", columns: [("absorbed_id", "TEXT"), ("profile_id", "TEXT")], key: ["absorbed_id"])
    for a in identity.aliases {
      aliases.rows.append(["absorbed_id": id(a.absorbed), "profile_id": id(resolved(a.survivor))])
    }
    var memberships = Table(
      name: "segment_memberships", columns: [("segment", "TEXT"), ("profile_id", "TEXT"), ("since", "TIMESTAMPTZ")],
      key: ["segment", "profile_id"])
    for m in try await store.loadMemberships() {
      memberships.rows.append(["segment": .string(m.segment), "profile_id": id(m.profile), "since": time(m.since)])
    }
    var changes = Table(
      name: "segment_changes",
      columns: [
        ("change_key", "TEXT"), ("segment", "TEXT"), ("profile_id", "TEXT"), ("entered", "BOOLEAN"),
        ("at", "TIMESTAMPTZ"),
      ], key: ["change_key"])
    for segment in config.segments.map(\.name) {
      var seen: [String: Int] = [:]
      for c in try await store.segmentChanges(of: segment, limit: .max) {
        let base = "\(segment)/\(c.profile)/\(c.at.microseconds)/\(c.entered ? "in" : "out")"
        let n = seen[base, default: 0]
        seen[base] = n + 1
        changes.rows.append([
          "change_key": .string(n == 0 ? base : "\(base)#\(n)"), "segment": .string(segment),
          "profile_id": id(resolved(c.mergedInto ?? c.profile)), "entered": .bool(c.entered), "at": time(c.at),
        ])
      }
    }
    var merges = Table(
      name: "merge_log",
      columns: [
        ("merge_key", "TEXT"), ("kind", "TEXT"), ("survivor_id", "TEXT"), ("absorbed_id", "TEXT"),
        ("profile_id", "TEXT"), ("rule", "TEXT"), ("evidence", "JSONB"), ("event_id", "TEXT"),
        ("at", "TIMESTAMPTZ"), ("score", "DOUBLE PRECISION"),
      ], key: ["merge_key"])
    var seenKeys: [String: Int] = [:]
    for m in try await store.loadMerges() {
      let base = "\(m.survivor)<\(m.absorbed)@\(m.at.microseconds)/\(m.eventID)/\(m.rule)"
      let n = seenKeys[base, default: 0]
      seenKeys[base] = n + 1
      merges.rows.append([
        "merge_key": .string(n == 0 ? base : "\(base)#\(n)"), "kind": .string("merge"), "survivor_id": id(m.survivor),
        "absorbed_id": id(m.absorbed), "profile_id": id(resolved(m.survivor)), "rule": .string(m.rule),
        "evidence": .list(m.evidence.map { .string("\($0.kind):\($0.value)") }), "event_id": .string(m.eventID),
        "at": time(m.at), "score": m.score.isFinite ? .double(m.score) : .null,
      ])
    }
    for s in try await store.loadSeparations() {
      let pair = [s.first, s.second].map { "\($0.kind):\($0.value)" }
      merges.rows.append([
        "merge_key": .string("unmerge:" + pair.joined(separator: "|")), "kind": .string("unmerge"),
        "rule": .string("unmerge"), "evidence": .list(pair.map(Value.string)),
      ])
    }
    var out = [profiles, traitRows, identifiers, aliases, memberships, changes, merges]
    if sync.events {
      var events = Table(
        name: "events",
        columns: [
          ("source", "TEXT"), ("event_id", "TEXT"), ("profile_id", "TEXT"), ("type", "TEXT"), ("name", "TEXT"),
          ("timestamp", "TIMESTAMPTZ"), ("properties", "JSONB"), ("traits", "JSONB"),
        ], key: ["source", "event_id"])
      let reader = EventReader(config: config)
      for s in try await store.loadEvents() {
        // The log keeps records as received; the source's mapping reads them (a source no longer declared, or
        // a record its mapping no longer reads, keeps the fields the log has).
        let e = (try? reader.mapped(s.event)) ?? s.event
        events.rows.append([
          "source": .string(e.source), "event_id": .string(e.id), "profile_id": id(resolved(s.profile)),
          "type": .string(e.type), "name": e.name.map(Value.string) ?? .null, "timestamp": time(e.timestamp),
          "properties": .map(e.properties), "traits": .map(e.traits),
        ])
      }
      out.append(events)
    }
    return out
  }

  /// A value as text for SQL that wants it plain (`value_text::numeric`): strings as they are, others as JSON.
  static func text(_ v: Value) -> Value {
    switch v {
    case .null: return .null
    case .string(let s): return .string(s)
    default: return .string(JSON.encode(v))
    }
  }
}
