import Foundation
import GRDB
import TesseraIdentity
import TesseraModel
import TesseraStore
import TesseraStoreSuite
import Testing

@testable import TesseraSQLite

/// A store path holding something else is refused with a reason, and the file is left byte for byte as it
/// was, with no side file (`-wal`, `-shm`, `-intake`, `-writer`) created beside it.
@Suite struct WrongFileTests {
  static let sideFiles = ["-wal", "-shm", "-intake", "-writer", "-journal"]

  /// Opens `path` as a store, expecting a refusal; checks the bytes and side files are unchanged.
  func refused(_ path: String) throws -> any Error {
    let before = try Data(contentsOf: URL(fileURLWithPath: path))
    let sidesBefore = Self.sideFiles.filter { FileManager.default.fileExists(atPath: path + $0) }
    var failure: (any Error)?
    do {
      let store = try SQLiteStore(path: path)
      try store.close()
    } catch {
      failure = error
    }
    let after = try Data(contentsOf: URL(fileURLWithPath: path))
    #expect(after == before, "the file changed: \(before.count) → \(after.count) bytes")
    let sidesAfter = Self.sideFiles.filter { FileManager.default.fileExists(atPath: path + $0) }
    #expect(sidesAfter == sidesBefore, "side files appeared: \(sidesAfter)")
    return try #require(failure, "\(path) was opened as a store")
  }

  @Test func aTextFileIsRefused() throws {
    let dir = try TempDir()
    let path = dir.path("notes.sqlite")
    try "name,email\nAda,ada@example.com\n".write(toFile: path, atomically: true, encoding: .utf8)
    let error = try refused(path)
    let message = String(describing: error)
    #expect(error is NotATesseraStore)
    #expect(message.contains("`\(path)` is not a Tessera store: it is not a SQLite database"), "\(message)")
    #expect(message.contains("it begins `name,email·Ada,ada@examp`"), "\(message)")
    #expect(message.contains("left untouched"), "\(message)")
  }

  @Test func anotherApplicationsDatabaseIsRefused() throws {
    let dir = try TempDir()
    let path = dir.path("crm.db")
    let queue = try DatabaseQueue(path: path)
    try queue.write { db in
      try db.execute(sql: "CREATE TABLE contacts (id INTEGER PRIMARY KEY, email TEXT)")
      try db.execute(sql: "CREATE TABLE deals (id INTEGER PRIMARY KEY, amount REAL)")
      try db.execute(sql: "INSERT INTO contacts (email) VALUES ('ada@example.com')")
    }
    try queue.close()
    let error = try refused(path)
    #expect(
      String(describing: error).contains(
        "is not a Tessera store: it is a SQLite database of another application "
          + "(tables: contacts, deals)"), "\(error)")
  }

  /// Another application's database in WAL mode, its tables still in the write-ahead log (its process is
  /// running): read through the log, and refused all the same.
  @Test func anotherApplicationsLiveWALDatabaseIsRefused() throws {
    let dir = try TempDir()
    let path = dir.path("live.db")
    let pool = try DatabasePool(path: path)
    try pool.writeWithoutTransaction { db in
      try db.execute(sql: "PRAGMA wal_autocheckpoint = 0")
      try db.execute(sql: "CREATE TABLE sessions (id TEXT PRIMARY KEY)")
    }
    let error = try refused(path)
    #expect(String(describing: error).contains("another application (tables: sessions)"), "\(error)")
    try pool.close()
  }

  @Test func aNewerStoreIsRefusedAndLeftAsItWas() throws {
    let dir = try TempDir()
    let path = dir.path("newer.sqlite")
    try SQLiteStore(path: path).close()
    let queue = try DatabaseQueue(path: path)
    let newer = SQLiteStore.schemaVersion + 1
    try queue.write { db in
      try db.execute(sql: "UPDATE meta SET value = ? WHERE key = 'schema_version'", arguments: [newer])
    }
    try queue.close()
    for side in Self.sideFiles { try? FileManager.default.removeItem(atPath: path + side) }
    let error = try refused(path)
    guard case .schemaTooNew(let found, let supported)? = error as? StoreError else {
      Issue.record("expected StoreError.schemaTooNew, got \(error)")
      return
    }
    #expect(found == newer)
    #expect(supported == SQLiteStore.schemaVersion)
  }

  @Test func aDamagedDatabaseAndADirectoryAreRefused() throws {
    let dir = try TempDir()
    let damaged = dir.path("damaged.sqlite")
    var bytes = Data("SQLite format 3\u{0}".utf8)
    bytes.append(Data(repeating: 0xAB, count: 8192))
    try bytes.write(to: URL(fileURLWithPath: damaged))
    #expect(String(describing: try refused(damaged)).contains("it is a damaged SQLite database"))
    do {
      _ = try SQLiteStore(path: dir.url.path)
      Issue.record("a directory was opened as a store")
    } catch {
      #expect(String(describing: error).contains("it is a directory"), "\(error)")
    }
  }

  /// What may become a store still does: no file, an empty file, an empty SQLite database, a store.
  @Test func newAndExistingStoresOpen() async throws {
    let dir = try TempDir()
    let empty = dir.path("empty.sqlite")
    #expect(FileManager.default.createFile(atPath: empty, contents: Data()))
    let emptyDatabase = dir.path("empty.db")
    let queue = try DatabaseQueue(path: emptyDatabase)
    try await queue.write { db in try db.execute(sql: "PRAGMA user_version = 7") }
    try queue.close()
    for path in [dir.path("new.sqlite"), empty, emptyDatabase] {
      let store = try SQLiteStore(path: path)
      #expect(try await store.stats().events == 0)
      try store.close()
      // And a second time, now that it is a store.
      try SQLiteStore(path: path).close()
    }
  }

  /// A store restored without its `-intake` file (or with an older one) used to number new journal entries
  /// from 1 again, below the main file's cursor of entries already resolved: the next append deleted them as
  /// done, and acknowledged events were never resolved. New entries now start above the cursor.
  @Test func aStoreRestoredWithoutItsIntakeKeepsNewJournalEntries() async throws {
    let dir = try TempDir()
    let path = dir.path("restored.sqlite")
    let email = Identifier("email", "ada@example.com")
    func events(_ ids: [String]) -> [Event] {
      ids.map { StoreSuite.event($0, at: StoreSuite.t(1), ids: [email], profile: ProfileID(1)).event }
    }
    var store: SQLiteStore? = try SQLiteStore(path: path)
    _ = try await store?.appendJournal(events(["a", "b", "c"]), rejected: [])
    let entries = try await store?.readJournal(limit: 10) ?? []
    #expect(entries.map(\.seq) == [1, 2, 3])
    var done = CommitBatch()
    done.journalDone = entries.map(\.seq)
    try await store?.commit(done)
    try store?.close()
    store = nil
    for side in ["-intake", "-intake-wal", "-intake-shm"] { try? FileManager.default.removeItem(atPath: path + side) }

    let restored = try SQLiteStore(path: path)
    _ = try await restored.appendJournal(events(["d"]), rejected: [])
    _ = try await restored.appendJournal(events(["e"]), rejected: [])
    let waiting = try await restored.readJournal(limit: 10)
    #expect(waiting.map(\.event.id) == ["d", "e"])
    #expect(waiting.allSatisfy { $0.seq > 3 }, "\(waiting.map(\.seq))")
    #expect(try await restored.journalBacklog() == 2)
    try restored.close()
  }
}
