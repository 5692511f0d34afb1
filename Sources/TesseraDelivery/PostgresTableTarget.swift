import Foundation
import Logging
import PostgresNIO
import TesseraCompiler
import TesseraLanguage
import TesseraModel
import TesseraPostgres
import TesseraStore

/// A `table` destination in PostgreSQL (`database: postgres://…`): the same rows as `TableTarget` (one per
/// profile, per segment member or per event, a column per payload key and `updated_at`), written as batched
/// upserts — one `INSERT … SELECT … FROM json_populate_recordset … ON CONFLICT DO UPDATE` per run of rows —
/// in one transaction per delivery batch. The table is created on first use with a column type per payload
/// expression type, and gains a column when the payload gains a key. Deletion notices delete the person's
/// rows (every profile id of the family).
public actor PostgresTableTarget: DeliveryTarget {
  public let table: String
  public let trigger: Trigger
  /// Payload columns (not the keys) with their SQL types.
  public let columns: [(name: String, type: String)]
  let client: PostgresClient
  let runner: Task<Void, Never>
  let clock: @Sendable () -> Timestamp
  let logger = Logger(label: "tessera.table", factory: { _ in SwiftLogNoOpLogHandler() })
  /// The table exists with every column (checked once, on the first batch).
  var prepared = false

  public init(
    url: String, table: String, trigger: Trigger, payload: [(key: String, type: ExprType)],
    clock: @escaping @Sendable () -> Timestamp
  ) throws {
    let configuration = try PostgresStore.configuration(url: url, maximumConnections: 1)
    let client = PostgresClient(configuration: configuration)
    self.client = client
    self.runner = Task { await client.run() }
    self.table = table
    self.trigger = trigger
    let keys = TableTarget.keys(trigger)
    self.columns = payload.filter { !keys.contains($0.key) && $0.key != "updated_at" && $0.key != "profile_id" }.map {
      ($0.key, Self.sqlType($0.type))
    }
    self.clock = clock
  }

  /// The column type of a payload expression's type; values of unknown type keep their JSON form.
  static func sqlType(_ t: ExprType) -> String {
    switch t {
    case .bool: return "BOOLEAN"
    case .int, .double: return "NUMERIC"
    case .string: return "TEXT"
    case .timestamp: return "TIMESTAMPTZ"
    default: return "JSONB"
    }
  }

  var keyColumns: [(name: String, type: String)] {
    TableTarget.keys(trigger).map { ($0, "TEXT") } + (trigger == .events ? [("profile_id", "TEXT")] : [])
  }
  var allColumns: [(name: String, type: String)] { keyColumns + columns + [("updated_at", "TIMESTAMPTZ")] }
  var name: String { TableTarget.quote(table) }

  /// Creates the table, or adds the columns it lacks.
  func prepare(_ conn: PostgresConnection) async throws {
    let q = TableTarget.quote
    let keys = TableTarget.keys(trigger)
    let cols = allColumns.map { "\(q($0.name)) \($0.type)" }.joined(separator: ", ")
    try await conn.query(
      PostgresQuery(
        unsafeSQL: "CREATE TABLE IF NOT EXISTS \(name) (\(cols), PRIMARY KEY (\(keys.map(q).joined(separator: ", "))))"),
      logger: logger)
    if trigger != .profile_changes {
      try await conn.query(
        PostgresQuery(unsafeSQL: "CREATE INDEX IF NOT EXISTS \(q(table + "_profile")) ON \(name) (\(q("profile_id")))"),
        logger: logger)
    }
    for c in allColumns {
      try await conn.query(
        PostgresQuery(unsafeSQL: "ALTER TABLE \(name) ADD COLUMN IF NOT EXISTS \(q(c.name)) \(c.type)"), logger: logger)
    }
  }

  /// A payload value in the JSON row `json_populate_recordset` reads: timestamps as ISO 8601, the rest as JSON.
  static func json(_ v: Value) -> Value {
    switch v {
    case .timestamp(let t): return .string(t.iso8601)
    case .null, .bool, .int, .double, .string, .list, .map: return v
    default: return .string(v.plainText)
    }
  }

  public func send(_ batch: DeliveryBatchRecord, _ rows: [OutboxRecord]) async -> SendOutcome {
    let q = TableTarget.quote
    let keys = TableTarget.keys(trigger)
    let all = allColumns.map(\.name)
    let list = all.map(q).joined(separator: ", ")
    let updates = all.filter { !keys.contains($0) }.map { "\(q($0)) = excluded.\(q($0))" }.joined(separator: ", ")
    let upsert = """
      INSERT INTO \(name) (\(list)) SELECT \(list) FROM json_populate_recordset(NULL::\(name), $1::json)
      ON CONFLICT (\(keys.map(q).joined(separator: ", "))) DO UPDATE SET \(updates)
      """
    let now = Value.string(clock().iso8601)
    do {
      try await client.withConnection { conn in
        try await conn.query("BEGIN", logger: logger)
        do {
          if !prepared { try await prepare(conn) }
          // Upserts are gathered, last row per key, and written when a deletion (which must come after what was
          // upserted before it) or the end of the batch arrives.
          var pending: [String: Value] = [:]
          var order: [String] = []
          func flush() async throws {
            guard !order.isEmpty else { return }
            let json = JSON.encode(.list(order.compactMap { pending[$0] }))
            var b = PostgresBindings()
            b.append(json)
            try await conn.query(PostgresQuery(unsafeSQL: upsert, binds: b), logger: logger)
            pending = [:]
            order = []
          }
          for r in rows {
            guard case .map(let m) = r.payload else { continue }
            switch r.op {
            case .exit where trigger == .segment_changes:
              try await flush()
              var b = PostgresBindings()
              b.append(r.key)
              b.append(r.profile.description)
              try await conn.query(
                PostgresQuery(
                  unsafeSQL: "DELETE FROM \(name) WHERE \(q("segment")) = $1 AND \(q("profile_id")) = $2", binds: b),
                logger: logger)
            case .delete, .exit:
              // A person erased, or without consent any more: every row of theirs goes.
              try await flush()
              var ids = [r.profile.description]
              if case .list(let l) = m["profiles"] ?? .null { ids += l.map(\.plainText) }
              var b = PostgresBindings()
              b.append(Array(Set(ids)).sorted())
              try await conn.query(
                PostgresQuery(unsafeSQL: "DELETE FROM \(name) WHERE \(q("profile_id")) = ANY($1::text[])", binds: b),
                logger: logger)
            case .upsert, .enter, .event:
              var row: [String: Value] = ["updated_at": now]
              let key: String
              switch trigger {
              case .profile_changes:
                row["profile_id"] = .string(r.profile.description)
                key = r.profile.description
              case .segment_changes:
                row["segment"] = .string(r.key)
                row["profile_id"] = .string(r.profile.description)
                key = r.key + "\u{1F}" + r.profile.description
              case .events:
                row["event_id"] = .string(r.key)
                row["profile_id"] = .string(r.profile.description)
                key = r.key
              }
              for c in columns { row[c.name] = Self.json(m[c.name] ?? .null) }
              if pending.updateValue(.map(row), forKey: key) == nil { order.append(key) }
            }
          }
          try await flush()
          try await conn.query("COMMIT", logger: logger)
        } catch {
          _ = try? await conn.query("ROLLBACK", logger: logger)
          throw error
        }
      }
      prepared = true
      return .delivered
    } catch {
      return .retry(status: nil, error: Self.describe(error), after: nil)
    }
  }

  static func describe(_ error: any Error) -> String {
    if let e = error as? PSQLError, let message = e.serverInfo?[.message] {
      return "PostgreSQL: \(message) (SQLSTATE \(e.serverInfo?[.sqlState] ?? "?"))"
    }
    return String(describing: error)
  }

  public func close() async throws {
    runner.cancel()
    _ = await runner.value
  }
}
