import Foundation
import GRDB
import TesseraCompiler
import TesseraModel
import TesseraStore

/// Keeps a table in sync, warehouse-style: one row per profile (`on: profile_changes`), per segment member
/// (`on: segment_changes`: an enter upserts the row, an exit deletes it) or per event (`on: events`), with a
/// column per payload key and `updated_at`. The table lives in the store's own SQLite file or in another one
/// (`database:`); it is created on first use and gains a column when the payload gains a key.
public actor TableTarget: DeliveryTarget {
  public let table: String
  public let trigger: Trigger
  public let columns: [String]
  let db: DatabaseQueue
  let clock: @Sendable () -> Timestamp

  /// The key columns of each trigger.
  static func keys(_ trigger: Trigger) -> [String] {
    switch trigger {
    case .profile_changes: return ["profile_id"]
    case .segment_changes: return ["segment", "profile_id"]
    case .events: return ["event_id"]
    }
  }

  public init(
    database: String, table: String, trigger: Trigger, columns: [String], clock: @escaping @Sendable () -> Timestamp
  ) throws {
    var config = Configuration()
    config.busyMode = .timeout(30)
    db = try DatabaseQueue(path: database, configuration: config)
    self.table = table
    self.trigger = trigger
    let keys = Self.keys(trigger)
    self.columns = columns.filter { !keys.contains($0) && $0 != "updated_at" }
    self.clock = clock
    let all = keys + (trigger == .events ? ["profile_id"] : []) + self.columns + ["updated_at"]
    try db.write { db in
      let q = Self.quote
      if try !db.tableExists(table) {
        try db.execute(
          sql:
            "CREATE TABLE \(q(table)) (\(all.map(q).joined(separator: ", ")), PRIMARY KEY (\(keys.map(q).joined(separator: ", "))))"
        )
        if trigger == .events || trigger == .segment_changes {
          try db.execute(sql: "CREATE INDEX \(q(table + "_profile")) ON \(q(table)) (\(q("profile_id")))")
        }
      } else {
        let have = Set(try db.columns(in: table).map(\.name))
        for c in all where !have.contains(c) { try db.execute(sql: "ALTER TABLE \(q(table)) ADD COLUMN \(q(c))") }
      }
    }
  }

  static func quote(_ name: String) -> String { "\"" + name.replacingOccurrences(of: "\"", with: "\"\"") + "\"" }

  /// A payload value as SQLite stores it: numbers and text as such, booleans as 0/1, timestamps as ISO 8601,
  /// lists and maps as JSON.
  static func sql(_ v: Value) -> (any DatabaseValueConvertible)? {
    switch v {
    case .null: return nil
    case .bool(let b): return b ? 1 : 0
    case .int(let i): return i
    case .double(let d): return d
    case .string(let s): return s
    case .timestamp(let t): return t.iso8601
    case .list, .map: return JSON.encode(v)
    default: return v.plainText
    }
  }

  public func send(_ batch: DeliveryBatchRecord, _ rows: [OutboxRecord]) async -> SendOutcome {
    let q = Self.quote
    let keys = Self.keys(trigger)
    let all = keys + (trigger == .events ? ["profile_id"] : []) + columns + ["updated_at"]
    let upsert =
      "INSERT INTO \(q(table)) (\(all.map(q).joined(separator: ", "))) VALUES (\(all.map { _ in "?" }.joined(separator: ", "))) "
      + "ON CONFLICT (\(keys.map(q).joined(separator: ", "))) DO UPDATE SET "
      + (all.filter { !keys.contains($0) }.map { "\(q($0)) = excluded.\(q($0))" }.joined(separator: ", "))
    let now = clock().iso8601
    do {
      try await db.write { db in
        for r in rows {
          guard case .map(let m) = r.payload else { continue }
          switch r.op {
          case .delete,
            .exit where self.trigger != .segment_changes:
            // A person erased or without consent any more: every row of theirs goes.
            var ids = [r.profile.description]
            if case .list(let l) = m["profiles"] ?? .null { ids += l.map(\.plainText) }
            for id in Set(ids) {
              try db.execute(sql: "DELETE FROM \(q(self.table)) WHERE \(q("profile_id")) = ?", arguments: [id])
            }
          case .exit:
            try db.execute(
              sql: "DELETE FROM \(q(self.table)) WHERE \(q("segment")) = ? AND \(q("profile_id")) = ?",
              arguments: [r.key, r.profile.description])
          case .upsert, .enter, .event:
            var values: [(any DatabaseValueConvertible)?] = []
            switch self.trigger {
            case .profile_changes: values.append(r.profile.description)
            case .segment_changes: values += [r.key, r.profile.description]
            case .events: values += [r.key, r.profile.description]
            }
            for c in self.columns { values.append(Self.sql(m[c] ?? .null)) }
            values.append(now)
            try db.execute(sql: upsert, arguments: StatementArguments(values))
          }
        }
      }
      return .delivered
    } catch {
      return .retry(status: nil, error: "\(error)", after: nil)
    }
  }

  public func close() async throws {}
}
