import GRDB
import GRDBSQLite
import TesseraModel
import TesseraStore

/// A cached statement executed row by row through SQLite's C API, for the store writer's hot inserts.
///
/// GRDB's `execute(arguments:)` costs about half a microsecond per row before SQLite starts: the arguments
/// become an array of existentials, then `DatabaseValue`s, bound through nested closures. The batch writer runs
/// millions of rows per run with a few column types, so it binds them directly (1.69M computed-trait rows:
/// 6.4 s → 5.5 s). The statement still comes from, and stays owned by, GRDB's statement cache, and runs inside
/// the transaction GRDB opened.
struct RowStatement {
  private let statement: Statement
  private let handle: OpaquePointer
  private let parameters: Int32

  init(_ statement: Statement) {
    self.statement = statement
    self.handle = statement.sqliteStatement
    self.parameters = sqlite3_bind_parameter_count(handle)
  }

  /// Binds one value per parameter, in order, runs the statement and resets it for the next row.
  func run<each V: RowValue>(_ values: repeat each V) throws {
    var index: Int32 = 0
    var code = SQLITE_OK
    for v in repeat each values {
      index += 1
      // A value SQLite refuses (too big, out of memory) fails the row instead of running it with what was bound.
      if code == SQLITE_OK { code = v.bind(to: handle, at: index) }
    }
    precondition(index == parameters, "one value per parameter of \(statement.sql)")
    if code == SQLITE_OK { code = sqlite3_step(handle) }
    if code == SQLITE_DONE || code == SQLITE_ROW {
      sqlite3_reset(handle)
      return
    }
    // The message belongs to this step: read it before the reset.
    let message = String(cString: sqlite3_errmsg(sqlite3_db_handle(handle)))
    sqlite3_reset(handle)
    throw DatabaseError(resultCode: ResultCode(rawValue: code), message: message, sql: statement.sql)
  }
}

/// A Swift value bound to a statement parameter as SQLite's matching type; `bind` returns SQLite's result code.
protocol RowValue {
  func bind(to statement: OpaquePointer, at index: Int32) -> Int32
}

extension Int64: RowValue {
  func bind(to statement: OpaquePointer, at index: Int32) -> Int32 { sqlite3_bind_int64(statement, index, self) }
}

extension Int: RowValue {
  func bind(to statement: OpaquePointer, at index: Int32) -> Int32 { sqlite3_bind_int64(statement, index, Int64(self)) }
}

extension Bool: RowValue {
  func bind(to statement: OpaquePointer, at index: Int32) -> Int32 {
    sqlite3_bind_int64(statement, index, self ? 1 : 0)
  }
}

extension Double: RowValue {
  func bind(to statement: OpaquePointer, at index: Int32) -> Int32 { sqlite3_bind_double(statement, index, self) }
}

/// SQLite's `SQLITE_TRANSIENT`: SQLite copies the bytes before the bind returns.
private let transient = unsafeBitCast(Int(-1), to: sqlite3_destructor_type.self)

extension String: RowValue {
  func bind(to statement: OpaquePointer, at index: Int32) -> Int32 {
    var s = self
    return s.withUTF8 { bytes in
      bytes.withMemoryRebound(to: CChar.self) { text in
        // A null pointer would bind NULL: the empty string gets a pointer to an empty C string instead.
        guard let base = text.baseAddress, !text.isEmpty else {
          return sqlite3_bind_text(statement, index, "", 0, transient)
        }
        return sqlite3_bind_text64(statement, index, base, sqlite3_uint64(text.count), transient, UInt8(SQLITE_UTF8))
      }
    }
  }
}

/// Bytes bound as a BLOB (an event's record as received).
struct Blob: RowValue {
  let bytes: RecordBytes
  func bind(to statement: OpaquePointer, at index: Int32) -> Int32 {
    bytes.withUnsafeBytes { b in
      guard let base = b.baseAddress, !b.isEmpty else { return sqlite3_bind_zeroblob(statement, index, 0) }
      return sqlite3_bind_blob64(statement, index, base, sqlite3_uint64(b.count), transient)
    }
  }
}

/// Bytes bound as a BLOB from a buffer that lives only during the bind (SQLite copies them).
struct RawBlob: RowValue {
  let bytes: UnsafeRawBufferPointer
  func bind(to statement: OpaquePointer, at index: Int32) -> Int32 {
    guard let base = bytes.baseAddress, !bytes.isEmpty else { return sqlite3_bind_zeroblob(statement, index, 0) }
    return sqlite3_bind_blob64(statement, index, base, sqlite3_uint64(bytes.count), transient)
  }
}

extension Optional: RowValue where Wrapped: RowValue {
  func bind(to statement: OpaquePointer, at index: Int32) -> Int32 {
    if let value = self { return value.bind(to: statement, at: index) }
    return sqlite3_bind_null(statement, index)
  }
}

/// The rows of `logRows`' query (`source, id, type, name, timestamp, received_at, profile_id, format,
/// identifiers, body`, two integer parameters) read through SQLite's C API: columns are copied straight out of
/// SQLite's buffers, the body into one array. The statement comes from GRDB's cache and is reset when the rows
/// end or fail.
struct LogRowCursor {
  private let statement: Statement
  private let handle: OpaquePointer
  private let records: RecordDecompressor
  private let db: Database
  private var done = false

  /// `records` decompresses the bodies stored compressed (`SQLiteStore.compressedRecordFormat`); such a row is
  /// answered as `EventLogFormat.record`, whether or not its body was read.
  init(_ statement: Statement, after: Int64, through: Int64, records: RecordDecompressor, _ db: Database) throws {
    self.statement = statement
    self.handle = statement.sqliteStatement
    self.records = records
    self.db = db
    sqlite3_reset(handle)
    sqlite3_clear_bindings(handle)
    precondition(sqlite3_bind_parameter_count(handle) == 2, "two parameters in \(statement.sql)")
    var code = sqlite3_bind_int64(handle, 1, after)
    if code == SQLITE_OK { code = sqlite3_bind_int64(handle, 2, through) }
    guard code == SQLITE_OK else { throw failure(code) }
  }

  /// The next row; nil after the last.
  mutating func next() throws -> LogRow? {
    if done { return nil }
    let code = sqlite3_step(handle)
    if code == SQLITE_DONE {
      done = true
      sqlite3_reset(handle)
      return nil
    }
    guard code == SQLITE_ROW else {
      done = true
      let error = failure(code)
      sqlite3_reset(handle)
      throw error
    }
    let stored = Int(sqlite3_column_int64(handle, 7))
    var format = RecordDecompressor.format(stored)
    var body: [UInt8]?
    if sqlite3_column_type(handle, 9) != SQLITE_NULL {
      // The blob's pointer first, then its size (SQLite's documented order for a value it may convert).
      let p = sqlite3_column_blob(handle, 9)
      let bytes = UnsafeRawBufferPointer(start: p, count: p == nil ? 0 : Int(sqlite3_column_bytes(handle, 9)))
      (format, body) = try records.body(format: stored, bytes, db)
    }
    return LogRow(
      source: text(0) ?? "", id: text(1) ?? "", type: text(2) ?? "", name: text(3),
      timestamp: sqlite3_column_int64(handle, 4), receivedAt: sqlite3_column_int64(handle, 5),
      profile: ProfileID(sqlite3_column_int64(handle, 6)), format: format, identifiers: text(8), body: body)
  }

  private func text(_ column: Int32) -> String? {
    guard sqlite3_column_type(handle, column) != SQLITE_NULL, let p = sqlite3_column_text(handle, column) else {
      return nil
    }
    return String(
      decoding: UnsafeBufferPointer(start: p, count: Int(sqlite3_column_bytes(handle, column))), as: UTF8.self)
  }

  private func failure(_ code: Int32) -> DatabaseError {
    DatabaseError(
      resultCode: ResultCode(rawValue: code), message: String(cString: sqlite3_errmsg(sqlite3_db_handle(handle))),
      sql: statement.sql)
  }
}
