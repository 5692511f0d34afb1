import Foundation
import GRDB
import TesseraModel
import TesseraStore
import TesseraStoreSuite
import Testing

@testable import TesseraSQLite

/// The SQLite store keeps logged records compressed with a dictionary trained from its own records, and every
/// read gives the records back byte for byte.
@Suite struct RecordCompressionTests {
  /// A Segment-shaped record: the shape and the library, locale and page titles are shared by everyone; the
  /// email, name, IP address and ids are one person's.
  static func record(_ n: Int, person: Int) -> String {
    """
    {"messageId":"m-\(n)","type":"track","userId":"u-\(person)","anonymousId":"anon-\(person)-\(n % 3)",\
    "timestamp":"2026-01-0\(1 + n % 9)T10:\(10 + n % 50):00.\(100_000 + n)Z","event":"Product Viewed",\
    "properties":{"sku":"SKU-\(n % 40)","title":"Trailhead Outfitters","price":\(n % 90).99},\
    "context":{"ip":"198.51.\(person % 250).\(person % 199)","library":{"name":"analytics.js","version":"4.1.0"},\
    "locale":"en-US","traits":{"email":"person-\(person)@example.com","name":"Given\(person) Family\(person)"}}}
    """
  }

  static func batch(_ range: Range<Int>, people: Int = 400) -> CommitBatch {
    var b = CommitBatch()
    for n in range {
      let person = n % people
      let bytes = Array(record(n, person: person).utf8)
      b.events.append(
        StoredEvent(
          event: Event(
            id: "m-\(n)", source: "web", type: "track", name: "Product Viewed", timestamp: StoreSuite.t(Int64(n)),
            receivedAt: StoreSuite.t(Int64(n)), identifiers: [Identifier("user_id", "u-\(person)")],
            record: RecordBytes(bytes)),
          profile: ProfileID(Int64(person + 1))))
    }
    b.newProfiles = (0..<people).map { NewProfile(ProfileID(Int64($0 + 1)), createdAt: StoreSuite.t(0)) }
    return b
  }

  static func formats(_ path: String) throws -> [Int: Int] {
    let queue = try DatabaseQueue(path: path)
    defer { try? queue.close() }
    return try queue.read { db in
      var out: [Int: Int] = [:]
      for row in try Row.fetchAll(db, sql: "SELECT format, count(*) FROM events GROUP BY format") {
        out[row[0]] = row[1]
      }
      return out
    }
  }

  static func scalar(_ path: String, _ sql: String) throws -> Int {
    let queue = try DatabaseQueue(path: path)
    defer { try? queue.close() }
    return try queue.read { db in try Int.fetchOne(db, sql: sql) ?? -1 }
  }

  /// Every way the log is read answers the record as received, in the `record` format.
  static func expectRecordsReadBack(_ store: SQLiteStore, _ range: Range<Int>, people: Int = 400) async throws {
    let page = try await store.eventPage(after: 0, limit: range.count + 10)
    #expect(page.events.count == range.count)
    for (e, n) in zip(page.events, range) {
      #expect(e.event.record.map { Array($0.bytes) } == Array(record(n, person: n % people).utf8), "event \(n)")
      #expect(e.event.identifiers == [Identifier("user_id", "u-\(n % people)")], "event \(n)'s identifiers")
    }
    let rows = try await store.logRows(after: 0, through: Int64.max, parts: [.body, .identifiers])
    #expect(rows.count == range.count)
    #expect(rows.allSatisfy { $0.format == EventLogFormat.record })
    for (row, n) in zip(rows, range) {
      #expect(row.body == Array(record(n, person: n % people).utf8), "row \(n)")
    }
    let columnsOnly = try await store.logRows(after: 0, through: Int64.max, parts: [])
    #expect(columnsOnly.allSatisfy { $0.format == EventLogFormat.record && $0.body == nil })
    let person7 = try await store.events(of: ProfileID(8), limit: 100)
    #expect(!person7.isEmpty)
    for e in person7 {
      let n = Int(e.event.id.dropFirst(2)) ?? -1
      #expect(e.event.record.map { Array($0.bytes) } == Array(record(n, person: 7).utf8))
    }
  }

  @Test func recordsAreStoredCompressedAndReadBackByteForByte() async throws {
    let dir = try TempDir()
    let path = dir.path("z.sqlite")
    let store = try SQLiteStore(path: path)
    try await store.commit(Self.batch(0..<3000))
    try await Self.expectRecordsReadBack(store, 0..<3000)
    try store.close()

    #expect(try Self.formats(path) == [SQLiteStore.compressedRecordFormat: 3000])
    #expect(try Self.scalar(path, "SELECT count(*) FROM record_dictionaries") == 1)
    let stored = try Self.scalar(path, "SELECT sum(length(body)) FROM events")
    let raw = (0..<3000).reduce(0) { $0 + Self.record($1, person: $1 % 400).utf8.count }
    #expect(stored * 2 < raw, "\(stored) bytes stored for \(raw) bytes of records")

    // Opened again (another process): the dictionary comes from the file.
    let again = try SQLiteStore(path: path)
    try await Self.expectRecordsReadBack(again, 0..<3000)
    try await again.commit(Self.batch(3000..<3100))
    try again.close()
    #expect(try Self.formats(path) == [SQLiteStore.compressedRecordFormat: 3100])
    #expect(try Self.scalar(path, "SELECT count(*) FROM record_dictionaries") == 1, "the file's dictionary, reused")
  }

  /// A bulk transaction's records are compressed before it, in parallel slices, once the store has a
  /// dictionary; what is logged is the same as when the writer compresses them.
  @Test func bulkRecordsAreCompressedBeforeTheirTransaction() async throws {
    let dir = try TempDir()
    let path = dir.path("ahead.sqlite")
    let store = try SQLiteStore(path: path)
    let big = Self.batch(3000..<13000).events
    #expect(await store.records.precompress(big) == nil, "no dictionary yet")
    try await store.commit(Self.batch(0..<3000))
    let packed = try #require(await store.records.precompress(big))
    #expect(packed.bodies.count == 10000 && packed.bodies.allSatisfy { $0 != nil })
    // The identifiers' column text is encoded in the same pass, as the writer would encode it.
    #expect(packed.identifiers == big.map { StoredValue.encode($0.event.identifiers) })
    #expect(await store.records.precompress(Array(big.prefix(100))) == nil, "a server's batch: on the writer")
    try await store.commit(Self.batch(3000..<13000))
    try await Self.expectRecordsReadBack(store, 0..<13000)
    try store.close()
    #expect(try Self.formats(path) == [SQLiteStore.compressedRecordFormat: 13000])
    // The bytes written ahead are those the writer would have written (one dictionary, deterministic zstd).
    let writer = try SQLiteStore(path: dir.path("writer.sqlite"))
    try await writer.commit(Self.batch(0..<3000))
    for start in stride(from: 3000, to: 13000, by: 1000) { try await writer.commit(Self.batch(start..<start + 1000)) }
    try writer.close()
    let sql = "SELECT sum(length(body)) FROM events"
    #expect(try Self.scalar(path, sql) == Self.scalar(dir.path("writer.sqlite"), sql))
  }

  /// A server writes a hundred events at a time: its records are logged as they are until enough were seen to
  /// train a dictionary, and compressed from then on.
  @Test func smallBatchesAreCompressedOnceEnoughRecordsWereSeen() async throws {
    let dir = try TempDir()
    let path = dir.path("small.sqlite")
    let store = try SQLiteStore(path: path)
    for start in stride(from: 0, to: 1500, by: 100) { try await store.commit(Self.batch(start..<start + 100)) }
    try await Self.expectRecordsReadBack(store, 0..<1500)
    try store.close()
    #expect(try Self.formats(path) == [EventLogFormat.record: 900, SQLiteStore.compressedRecordFormat: 600])
  }

  /// A reader opened before another connection trained the dictionary finds it in the file when it first
  /// meets a record compressed with it.
  @Test func aReaderOpenedBeforeTheDictionaryFindsIt() async throws {
    let dir = try TempDir()
    let path = dir.path("two.sqlite")
    let writer = try SQLiteStore(path: path)
    let reader = try SQLiteStore(path: path)
    try await writer.commit(Self.batch(0..<2000))
    #expect(reader.records.state.withLock { $0.known.isEmpty })
    try await Self.expectRecordsReadBack(reader, 0..<2000)
    try writer.close()
    try reader.close()
  }

  /// A transaction that trained a dictionary and then failed leaves neither the dictionary nor records
  /// compressed with it; the next one trains again.
  @Test func aDictionaryOfARolledBackTransactionIsNeverUsed() async throws {
    let dir = try TempDir()
    let path = dir.path("full.sqlite")
    let store = try SQLiteStore(path: path)
    try await store.limitSize(toBytes: try await store.pageCount() * SQLiteStore.pageSize)
    await #expect(throws: (any Error).self) { try await store.commit(Self.batch(0..<2000)) }
    #expect(store.records.state.withLock { $0.current == nil })
    try await store.limitSize(toBytes: nil)
    try await store.commit(Self.batch(0..<2000))
    try await Self.expectRecordsReadBack(store, 0..<2000)
    try store.close()
    #expect(try Self.formats(path) == [SQLiteStore.compressedRecordFormat: 2000])
    #expect(try Self.scalar(path, "SELECT count(*) FROM record_dictionaries") == 1)
  }

  /// The dictionary is kept as long as the events compressed with it, so it must hold no value of one person:
  /// it learns from the records with every string and number fewer than eight profiles share emptied.
  @Test func theDictionaryHoldsTheSharedShapeAndNoPersonsValue() throws {
    let samples = (0..<2000).map { n in
      RecordDictionary.Sample(profile: Int64(n % 400), bytes: Array(Self.record(n, person: n % 400).utf8))
    }
    let shapes = RecordDictionary.skeletons(samples)
    let first = String(decoding: shapes[0], as: UTF8.self)
    #expect(first.contains(#""library":{"name":"analytics.js","version":"4.1.0"}"#))
    #expect(first.contains(#""email":"""#), "the email emptied: \(first)")
    #expect(first.contains(#""messageId":"""#))
    #expect(!first.contains("person-0@"))

    let dictionary = try #require(RecordDictionary.train(samples))
    let text = String(decoding: dictionary.bytes, as: UTF8.self)
    #expect(text.contains("analytics.js"))
    #expect(text.contains("Trailhead Outfitters"))
    for person in 0..<400 {
      #expect(!text.contains("person-\(person)@"), "person \(person)'s email in the dictionary")
      #expect(!text.contains("Given\(person) "), "person \(person)'s name in the dictionary")
      #expect(!text.contains("anon-\(person)-"), "person \(person)'s anonymous id in the dictionary")
    }
    // Values eight or more profiles share stay (the sku of 40 products, seen by 400 people).
    #expect(String(decoding: shapes[5], as: UTF8.self).contains("SKU-5"))
    #expect(RecordDictionary.train(Array(samples.prefix(RecordDictionary.minimumSamples - 1))) == nil)
  }

  @Test func tokensAreTheStringsAndNumbersOfAnyText() {
    let bytes = Array(#"{"a":"x\"y","n":-12.5e3,"t":true,"s":[1,"z"]}"#.utf8)
    let tokens = RecordDictionary.tokenRanges(bytes).map {
      (String(decoding: bytes[$0.range], as: UTF8.self), $0.isString)
    }
    #expect(tokens.map(\.0) == ["a", #"x\"y"#, "n", "-12.5e3", "t", "s", "1", "z"])
    #expect(tokens.map(\.1) == [true, true, true, false, true, true, false, true])
    // An unterminated string (here ending in an escape) ends the text rather than reading past it.
    #expect(RecordDictionary.tokenRanges(Array(#"{"a":"unterminated\"#.utf8)).map(\.range) == [2..<3, 6..<19])
  }
}
