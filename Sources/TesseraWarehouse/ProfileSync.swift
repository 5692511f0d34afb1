import Foundation
import Logging
import NIOCore
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

  /// A table as the sync keeps it: its columns (SQL types), its key, and the rows the store says it should hold,
  /// each already written as a line of `COPY … FROM STDIN` text (`bytes[range]`, columns in order, without the
  /// hash), with its key (the key columns joined with U+001F) and the 64-bit FNV-1a hash of that line.
  struct Table {
    var name: String
    var columns: [(name: String, type: String)]
    var key: [String]
    var keyIndexes: [Int]
    var bytes: [UInt8] = []
    var rows: [(key: String, range: Range<Int>, hash: UInt64)] = []

    init(name: String, columns: [(name: String, type: String)], key: [String]) {
      self.name = name
      self.columns = columns
      self.key = key
      self.keyIndexes = key.compactMap { k in columns.firstIndex { $0.name == k } }
    }

    var ddl: String {
      let cols = columns.map { "\($0.name) \($0.type)" } + ["sync_hash TEXT NOT NULL"]
      return "(\(cols.joined(separator: ", ")), PRIMARY KEY (\(key.joined(separator: ", "))))"
    }

    /// Appends a row, one cell per column in order.
    mutating func append(_ cells: [Cell]) {
      let start = bytes.count
      var key = ""
      for (i, c) in cells.enumerated() {
        if i > 0 { bytes.append(9) }
        c.write(to: &bytes)
        if let k = keyIndexes.firstIndex(of: i) {
          if k > 0 { key.unicodeScalars.append("\u{1F}") }
          if case .text(let s) = c { key += s }
        }
      }
      var h: UInt64 = 0xcbf2_9ce4_8422_2325
      for b in bytes[start...] {
        h ^= UInt64(b)
        h = h &* 0x100_0000_01b3
      }
      rows.append((key, start..<bytes.count, h))
    }
  }

  /// One column's value in a row, written as `COPY` text.
  enum Cell {
    case null
    case text(String)
    case json(Value)
    case time(Timestamp)
    case bool(Bool)
    case double(Double)

    init(_ text: String?) { self = text.map(Cell.text) ?? .null }

    func write(to out: inout [UInt8]) {
      switch self {
      case .null: out.append(contentsOf: [0x5C, 0x4E])  // \N
      case .text(let s): Self.escape(s.utf8, into: &out)
      case .json(let v):
        var w = JSONWriter(capacity: 64)
        w.value(v)
        Self.escape(w.bytes, into: &out)
      case .time(let t): out.append(contentsOf: t.iso8601.utf8)
      case .bool(let b): out.append(b ? 0x74 : 0x66)
      case .double(let d):
        if d.isFinite { out.append(contentsOf: String(d).utf8) } else { out.append(contentsOf: [0x5C, 0x4E]) }
      }
    }

    /// COPY text escapes: backslash, tab, newline and carriage return.
    static func escape(_ bytes: some Sequence<UInt8>, into out: inout [UInt8]) {
      for b in bytes {
        switch b {
        case 0x5C: out.append(contentsOf: [0x5C, 0x5C])
        case 0x09: out.append(contentsOf: [0x5C, 0x74])
        case 0x0A: out.append(contentsOf: [0x5C, 0x6E])
        case 0x0D: out.append(contentsOf: [0x5C, 0x72])
        default: out.append(b)
        }
      }
    }
  }

  public func run() async throws -> Report {
    let started = ContinuousClock.now
    // The tables are built from the store while the ones built before them are written: building the next
    // (reading the store, encoding rows) takes this process's CPU while PostgreSQL takes in the last.
    let (tables, made) = AsyncThrowingStream.makeStream(of: Table.self)
    let maker = Task {
      do {
        try await desiredTables { made.yield($0) }
        made.finish()
      } catch {
        made.finish(throwing: error)
      }
    }
    defer { maker.cancel() }
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
          // `COPY` names its table unqualified: the sync's schema comes first (temporary tables still before it).
          try await conn.query(PostgresQuery(unsafeSQL: "SET LOCAL search_path TO \(schema)"), logger: logger)
          for try await t in tables {
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
    let order = Self.tableNames
    reports.sort { (order.firstIndex(of: $0.table) ?? order.count) < (order.firstIndex(of: $1.table) ?? order.count) }
    return Report(tables: reports, seconds: (ContinuousClock.now - started) / .seconds(1))
  }

  var schema: String { PostgresSourceReader.quote(sync.schema) }

  /// Brings one table to its rows: reads the keys and hashes it holds, deletes the rows the store no longer has,
  /// and writes the new and changed ones with `COPY` — straight into the table when it is empty (a first sync),
  /// otherwise into a temporary table merged with one `INSERT … ON CONFLICT DO UPDATE`.
  func apply(_ t: Table, _ conn: PostgresConnection) async throws -> TableReport {
    // A row's key: its key columns (all text) joined with U+001F, in Swift and in SQL alike.
    let keySQL = "concat_ws(chr(31), \(t.key.joined(separator: ", ")))"
    var held: [String: UInt64] = [:]
    let rows = try await conn.query(
      PostgresQuery(unsafeSQL: "SELECT \(keySQL), sync_hash FROM \(schema).\(t.name)"), logger: logger)
    for try await (k, h) in rows.decode((String, String).self) { held[k] = UInt64(h, radix: 16) ?? 0 }
    var changed: [Int] = []
    var gone: [String] = []
    let empty = held.isEmpty
    if empty {
      changed = Array(t.rows.indices)
    } else {
      // What is left of `held` once the store's rows took theirs out is what the store no longer has.
      for (i, row) in t.rows.enumerated() where held.removeValue(forKey: row.key) != row.hash {
        changed.append(i)
      }
      gone = Array(held.keys)
    }
    var start = 0
    while start < gone.count {
      var b = PostgresBindings()
      b.append(Array(gone[start..<min(gone.count, start + batchRows)]))
      try await conn.query(
        PostgresQuery(unsafeSQL: "DELETE FROM \(schema).\(t.name) WHERE \(keySQL) = ANY($1::text[])", binds: b),
        logger: logger)
      start += batchRows
    }
    let columns = t.columns.map(\.name) + ["sync_hash"]
    if empty {
      try await copy(t, changed, into: t.name, columns: columns, conn)
    } else if !changed.isEmpty {
      let stage = "tessera_sync_\(t.name)"
      try await conn.query(
        PostgresQuery(unsafeSQL: "CREATE TEMPORARY TABLE \(stage) (LIKE \(schema).\(t.name)) ON COMMIT DROP"),
        logger: logger)
      try await copy(t, changed, into: stage, columns: columns, conn)
      let list = columns.joined(separator: ", ")
      let updates = columns.filter { !t.key.contains($0) }.map { "\($0) = excluded.\($0)" }.joined(separator: ", ")
      try await conn.query(
        PostgresQuery(
          unsafeSQL: """
            INSERT INTO \(schema).\(t.name) (\(list)) SELECT \(list) FROM \(stage)
            ON CONFLICT (\(t.key.joined(separator: ", "))) DO UPDATE SET \(updates)
            """), logger: logger)
      try await conn.query(PostgresQuery(unsafeSQL: "DROP TABLE \(stage)"), logger: logger)
    }
    return TableReport(table: t.name, rows: t.rows.count, written: changed.count, deleted: gone.count)
  }

  /// Streams the rows `indexes` of `t` (each line with its hash) into `table` with `COPY … FROM STDIN`.
  func copy(_ t: Table, _ indexes: [Int], into table: String, columns: [String], _ conn: PostgresConnection)
    async throws
  {
    guard !indexes.isEmpty else { return }
    try await conn.copyFrom(table: table, columns: columns, logger: logger) { writer in
      var chunk: [UInt8] = []
      chunk.reserveCapacity(1 << 18)
      for i in indexes {
        let row = t.rows[i]
        chunk.append(contentsOf: t.bytes[row.range])
        chunk.append(9)
        chunk.append(contentsOf: String(row.hash, radix: 16).utf8)
        chunk.append(10)
        if chunk.count >= 1 << 18 {
          try await writer.write(ByteBuffer(bytes: chunk))
          chunk.removeAll(keepingCapacity: true)
        }
      }
      if !chunk.isEmpty { try await writer.write(ByteBuffer(bytes: chunk)) }
    }
  }

  // MARK: what the store holds

  /// The tables in the order a report lists them.
  static let tableNames = [
    "profiles", "profile_traits", "identifiers", "profile_aliases", "segment_memberships", "segment_changes",
    "merge_log", "events",
  ]

  /// Builds each table from the store and hands it to `emit` as soon as it is complete.
  func desiredTables(_ emit: (Table) -> Void) async throws {
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
    func id(_ p: ProfileID) -> Cell { .text(p.description) }

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
      traitRows.append([
        id(t.profile), .text(t.trait), .json(t.value), Cell(Self.text(t.value)), .text(t.source), .text(t.eventID),
        .time(t.timestamp), .bool(false),
      ])
    }
    for c in try await store.loadComputed() where !c.value.isNull {
      visible[c.profile, default: [:]][c.trait] = c.value
      traitRows.append([
        id(c.profile), .text(c.trait), .json(c.value), Cell(Self.text(c.value)), .text("computed"), .null, .null,
        .bool(true),
      ])
    }
    emit(traitRows)
    var identifiers = Table(
      name: "identifiers",
      columns: [("kind", "TEXT"), ("value", "TEXT"), ("profile_id", "TEXT"), ("last_seen", "TIMESTAMPTZ")],
      key: ["kind", "value", "profile_id"])
    for (p, ids) in identity.profiles {
      profiles.append([id(p), .json(.map(visible[p] ?? [:]))])
      for (i, seen) in ids {
        identifiers.append([.text(i.kind), .text(i.value), id(p), .time(seen)])
      }
    }
    emit(profiles)
    emit(identifiers)
    var aliases = Table(
      name: "profile_aliases", columns: [("absorbed_id", "TEXT"), ("profile_id", "TEXT")], key: ["absorbed_id"])
    for a in identity.aliases {
      aliases.append([id(a.absorbed), id(resolved(a.survivor))])
    }
    emit(aliases)
    var memberships = Table(
      name: "segment_memberships", columns: [("segment", "TEXT"), ("profile_id", "TEXT"), ("since", "TIMESTAMPTZ")],
      key: ["segment", "profile_id"])
    for m in try await store.loadMemberships() {
      memberships.append([.text(m.segment), id(m.profile), .time(m.since)])
    }
    emit(memberships)
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
        changes.append([
          .text(n == 0 ? base : "\(base)#\(n)"), .text(segment), id(resolved(c.mergedInto ?? c.profile)),
          .bool(c.entered), .time(c.at),
        ])
      }
    }
    emit(changes)
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
      merges.append([
        .text(n == 0 ? base : "\(base)#\(n)"), .text("merge"), id(m.survivor), id(m.absorbed), id(resolved(m.survivor)),
        .text(m.rule), .json(.list(m.evidence.map { .string("\($0.kind):\($0.value)") })), .text(m.eventID),
        .time(m.at), m.score.isFinite ? .double(m.score) : .null,
      ])
    }
    for s in try await store.loadSeparations() {
      let pair = [s.first, s.second].map { "\($0.kind):\($0.value)" }
      merges.append([
        .text("unmerge:" + pair.joined(separator: "|")), .text("unmerge"), .null, .null, .null, .text("unmerge"),
        .json(.list(pair.map(Value.string))), .null, .null, .null,
      ])
    }
    emit(merges)
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
        events.append([
          .text(e.source), .text(e.id), id(resolved(s.profile)), .text(e.type), Cell(e.name), .time(e.timestamp),
          .json(.map(e.properties)), .json(.map(e.traits)),
        ])
      }
      emit(events)
    }
  }

  /// A value as text for SQL that wants it plain (`value_text::numeric`): strings as they are, others as JSON.
  static func text(_ v: Value) -> String? {
    switch v {
    case .null: return nil
    case .string(let s): return s
    default: return JSON.encode(v)
    }
  }
}
