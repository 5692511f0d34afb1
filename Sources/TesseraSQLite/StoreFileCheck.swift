import Foundation
import GRDBSQLite
import TesseraStore

/// A path that holds something other than a Tessera store this build can open. The file was not changed.
public struct NotATesseraStore: Error, Sendable, CustomStringConvertible {
  public var path: String
  public var reason: String
  /// What to do instead, for the option that named the path.
  public var hint = "give --store the path of a Tessera store, or of a file that does not exist yet to create one"

  public var description: String {
    "`\(path)` is not a Tessera store: \(reason). The file was left untouched; \(hint)"
  }
}

extension SQLiteStore {
  /// Throws what opening `path` as a store would throw when it holds something else (`NotATesseraStore`,
  /// `StoreError.schemaTooNew`), without opening it for writing or changing anything.
  public static func check(_ path: String) throws {
    try StoreFileCheck.verify(path, supportedVersion: schemaVersion)
  }
}

/// Decides, before anything opens `path` for writing, whether it may become or be a Tessera store: absent, an
/// empty file or an empty SQLite database (a new store), or a SQLite database with Tessera's `meta` table
/// and its first migration (`v1` in `grdb_migrations`) at a schema version this build reads. A store written by a newer Tessera throws
/// `StoreError.schemaTooNew`; anything else — a text file, another application's database, a damaged file —
/// `NotATesseraStore`.
///
/// Opening a SQLite file for writing changes it even before a query runs (GRDB's pool turns on WAL mode,
/// closing a connection checkpoints, the migrator adds tables), so the check reads the file's header with
/// plain reads and looks at its tables through a read-only connection that writes nothing: with
/// `immutable=1`, which takes no locks and creates no side files, unless a non-empty `-wal` file beside it
/// holds changes that are not in the file yet (then the owner of that WAL already has its `-shm`).
enum StoreFileCheck {
  static let magic = Array("SQLite format 3\u{0}".utf8)

  static func verify(_ path: String, supportedVersion: Int) throws {
    func refuse(_ reason: String) -> NotATesseraStore { NotATesseraStore(path: path, reason: reason) }
    var isDirectory: ObjCBool = false
    guard FileManager.default.fileExists(atPath: path, isDirectory: &isDirectory) else { return }
    if isDirectory.boolValue { throw refuse("it is a directory") }
    guard let handle = FileHandle(forReadingAtPath: path) else {
      throw refuse("it cannot be read (\(String(cString: strerror(errno))))")
    }
    let header = (try? handle.read(upToCount: 100)) ?? nil
    try? handle.close()
    guard let header, !header.isEmpty else { return }
    guard header.starts(with: magic) else {
      throw refuse("it is not a SQLite database (it begins `\(preview(header))`)")
    }
    let wal = (try? FileManager.default.attributesOfItem(atPath: path + "-wal")[.size] as? Int) ?? 0
    let tables: [String]
    let migrations: [String]
    let version: Int?
    do {
      (tables, migrations, version) = try look(path, immutable: wal == 0)
    } catch {
      throw refuse("it is a damaged SQLite database (\(error.message))")
    }
    if tables.isEmpty { return }
    guard tables.contains("meta"), tables.contains("grdb_migrations"), migrations.contains("v1") else {
      let shown = tables.prefix(8).joined(separator: ", ") + (tables.count > 8 ? ", …" : "")
      throw refuse("it is a SQLite database of another application (tables: \(shown))")
    }
    guard let version else { throw refuse("its `meta` table holds no schema version") }
    if version > supportedVersion { throw StoreError.schemaTooNew(found: version, supported: supportedVersion) }
  }

  /// The printable start of a file, for the message.
  static func preview(_ bytes: Data) -> String {
    let text = String(decoding: bytes.prefix(24), as: UTF8.self)
    return String(text.map { $0.isASCII && !$0.isNewline && ($0.asciiValue ?? 0) >= 0x20 ? $0 : "·" })
  }

  struct SQLiteFailure: Error {
    var message: String
  }

  /// The database's table names, the migrations GRDB recorded and its `meta` schema version, read without
  /// writing anything.
  static func look(_ path: String, immutable: Bool) throws(SQLiteFailure) -> ([String], [String], Int?) {
    var db: OpaquePointer?
    let name = immutable ? "file:" + uriEscaped(path) + "?immutable=1" : path
    let flags = SQLITE_OPEN_READONLY | (immutable ? SQLITE_OPEN_URI : 0)
    defer { sqlite3_close_v2(db) }
    guard sqlite3_open_v2(name, &db, flags, nil) == SQLITE_OK, let db else {
      throw SQLiteFailure(message: db.map { String(cString: sqlite3_errmsg($0)) } ?? "cannot open")
    }
    func rows(_ sql: String) throws(SQLiteFailure) -> [[String?]] {
      var statement: OpaquePointer?
      defer { sqlite3_finalize(statement) }
      guard sqlite3_prepare_v2(db, sql, -1, &statement, nil) == SQLITE_OK else {
        throw SQLiteFailure(message: String(cString: sqlite3_errmsg(db)))
      }
      var out: [[String?]] = []
      while true {
        let code = sqlite3_step(statement)
        if code == SQLITE_DONE { return out }
        guard code == SQLITE_ROW else { throw SQLiteFailure(message: String(cString: sqlite3_errmsg(db))) }
        out.append(
          (0..<sqlite3_column_count(statement)).map { i in
            sqlite3_column_text(statement, i).map { String(cString: $0) }
          })
      }
    }
    let tables = try rows("SELECT name FROM sqlite_master WHERE type = 'table' ORDER BY name").compactMap { $0[0] }
    guard tables.contains("meta"), tables.contains("grdb_migrations") else { return (tables, [], nil) }
    let migrations = try rows("SELECT identifier FROM grdb_migrations").compactMap { $0[0] }
    let version = try rows("SELECT value FROM meta WHERE key = 'schema_version'").first?[0].flatMap { Int($0) }
    return (tables, migrations, version)
  }

  /// A path as the path of a `file:` URI: every byte but unreserved characters and `/` percent-encoded.
  static func uriEscaped(_ path: String) -> String {
    var out = ""
    for b in path.utf8 {
      switch b {
      case UInt8(ascii: "a")...UInt8(ascii: "z"), UInt8(ascii: "A")...UInt8(ascii: "Z"),
        UInt8(ascii: "0")...UInt8(ascii: "9"), UInt8(ascii: "-"), UInt8(ascii: "_"), UInt8(ascii: "."),
        UInt8(ascii: "~"), UInt8(ascii: "/"):
        out.append(Character(UnicodeScalar(b)))
      default:
        out += String(format: "%%%02X", b)
      }
    }
    return out
  }
}
