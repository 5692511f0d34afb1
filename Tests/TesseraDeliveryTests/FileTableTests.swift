import Foundation
import GRDB
import Synchronization
import TesseraCompiler
import TesseraModel
import TesseraSQLite
import TesseraStore
import Testing

@testable import TesseraDelivery

@Suite("File and table destinations") struct FileTableTests {
  func batch(_ id: Int64) -> DeliveryBatchRecord {
    DeliveryBatchRecord(
      id: id, destination: "f", key: "f-\(id)", status: .sending, attempts: 0, items: 0, bytes: 0, createdAt: wall(),
      nextAttemptAt: wall())
  }

  func row(_ op: OutboxOp, _ profile: Int64, _ payload: [String: Value], key: String = "") -> OutboxRecord {
    OutboxRecord(destination: "f", op: op, profile: ProfileID(profile), key: key, payload: .map(payload), at: wall())
  }

  @Test("NDJSON rotated by size: whole files renamed into place, every line once and in order")
  func rotationBySize() async throws {
    let dir = try TempDir()
    let target = try FileTarget(
      path: dir.file("out/profiles.ndjson"), format: "ndjson", columns: ["n"], rotateBytes: 40, rotateEvery: nil,
      clock: wall)
    for b in 0..<5 {
      let rows = (0..<3).map { i in row(.upsert, 1, ["n": .int(Int64(b * 3 + i))]) }
      #expect(await target.send(batch(Int64(b + 1)), rows) == .delivered)
    }
    try await target.close()
    let names = try FileManager.default.contentsOfDirectory(atPath: dir.file("out")).sorted()
    // 3 lines of `{"n":N}\n` (8–9 bytes) make 24–27 bytes: a file is rotated after its second batch.
    #expect(names.count == 3, "\(names)")
    #expect(names.allSatisfy { $0.hasPrefix("profiles-") && $0.hasSuffix(".ndjson") })
    var numbers: [Int] = []
    for name in names {
      let text = try String(contentsOfFile: dir.file("out/" + name), encoding: .utf8)
      #expect(text.hasSuffix("\n"))
      for line in text.split(separator: "\n") {
        let o = try JSONSerialization.jsonObject(with: Data(line.utf8)) as? [String: Any]
        numbers.append(o?["n"] as? Int ?? -1)
      }
    }
    #expect(numbers == Array(0..<15))
  }

  @Test("rotated by time; CSV with a header and quoting")
  func rotationByTimeCSV() async throws {
    let dir = try TempDir()
    let clock = Clock()
    let target = try FileTarget(
      path: dir.file("audience.csv"), format: "csv", columns: ["email", "note"], rotateBytes: nil,
      rotateEvery: TimeSpan(seconds: 3600), clock: { clock.now })
    _ = await target.send(
      batch(1), [row(.enter, 1, ["email": .string("a@x.com"), "note": .string("said \"hi\", left")])])
    clock.advance(1800)
    _ = await target.send(batch(2), [row(.enter, 2, ["email": .string("b@x.com")])])
    clock.advance(1801)
    _ = await target.send(batch(3), [row(.enter, 3, ["email": .string("c@x.com"), "note": .int(3)])])
    // While open, the newest file is hidden; a reader sees only finished files.
    let visible = try FileManager.default.contentsOfDirectory(atPath: dir.path).filter { !$0.hasPrefix(".") }.sorted()
    #expect(visible.count == 1)
    try await target.close()
    let names = try FileManager.default.contentsOfDirectory(atPath: dir.path).sorted()
    #expect(names.count == 2)
    let first = try String(contentsOfFile: dir.file(names[0]), encoding: .utf8)
    #expect(first == "email,note\na@x.com,\"said \"\"hi\"\", left\"\nb@x.com,\n")
    let second = try String(contentsOfFile: dir.file(names[1]), encoding: .utf8)
    #expect(second == "email,note\nc@x.com,3\n")
  }

  @Test("a .partial file a crash left behind is cut to its last whole line and renamed into place")
  func recovery() async throws {
    let dir = try TempDir()
    try dir.write(".p-20261129T000000Z-1.ndjson.partial", "{\"n\":1}\n{\"n\":2}\n{\"n\"")
    try dir.write(".p-20261129T000000Z-9.ndjson.partial", "{\"n\"")
    let target = try FileTarget(
      path: dir.file("p.ndjson"), format: "ndjson", columns: [], rotateBytes: nil, rotateEvery: nil, clock: wall)
    #expect(await target.finished == [dir.file("p-20261129T000000Z-1.ndjson")])
    let names = try FileManager.default.contentsOfDirectory(atPath: dir.path).sorted()
    #expect(names == ["p-20261129T000000Z-1.ndjson"])
    #expect(try String(contentsOfFile: dir.file(names[0]), encoding: .utf8) == "{\"n\":1}\n{\"n\":2}\n")
  }

  @Test("profile table: one row per profile, upserted; a new payload key adds a column; delete removes")
  func profileTable() async throws {
    let dir = try TempDir()
    let db = dir.file("warehouse.sqlite")
    let target = try TableTarget(
      database: db, table: "customers", trigger: .profile_changes, columns: ["email", "spend"], clock: wall)
    _ = await target.send(
      batch(1),
      [
        row(.upsert, 1, ["email": .string("a@x.com"), "spend": .double(10)]),
        row(.upsert, 2, ["email": .string("b@x.com"), "spend": .double(5)]),
        row(.upsert, 1, ["email": .string("a@x.com"), "spend": .double(30.5)]),
      ])
    let wider = try TableTarget(
      database: db, table: "customers", trigger: .profile_changes, columns: ["email", "spend", "vip"], clock: wall)
    _ = await wider.send(
      batch(2), [row(.upsert, 2, ["email": .string("b@x.com"), "spend": .int(7), "vip": .bool(true)])])
    _ = await wider.send(batch(3), [row(.delete, 3, ["profiles": .list([.string("prf_1")])])])
    let queue = try DatabaseQueue(path: db)
    let rows = try queue.read { db in
      try Row.fetchAll(db, sql: "SELECT profile_id, email, spend, vip FROM customers ORDER BY profile_id")
    }
    #expect(rows.count == 1)
    #expect(rows.first?["profile_id"] == "prf_2")
    #expect(rows.first?["spend"] == 7)
    #expect(rows.first?["vip"] == 1)
  }

  @Test("membership table: an enter adds (segment, profile), an exit removes it")
  func membershipTable() async throws {
    let dir = try TempDir()
    let db = dir.file("w.sqlite")
    let target = try TableTarget(
      database: db, table: "audience", trigger: .segment_changes, columns: ["email"], clock: wall)
    _ = await target.send(
      batch(1),
      [
        row(.enter, 1, ["email": .string("a@x.com")], key: "big"),
        row(.enter, 2, ["email": .string("b@x.com")], key: "big"),
        row(.enter, 1, ["email": .string("a@x.com")], key: "lapsed"),
        row(.exit, 1, ["email": .string("a@x.com")], key: "big"),
      ])
    let rows = try DatabaseQueue(path: db).read { db in
      try Row.fetchAll(db, sql: "SELECT segment, profile_id FROM audience ORDER BY segment, profile_id")
    }
    #expect(
      rows.map { "\($0["segment"] as String? ?? "")/\($0["profile_id"] as String? ?? "")" } == [
        "big/prf_2", "lapsed/prf_1",
      ])
  }
}

/// A clock tests move by hand.
final class Clock: Sendable {
  let state = Mutex(Timestamp(microseconds: 1_790_000_000_000_000))
  var now: Timestamp { state.withLock { $0 } }
  func advance(_ seconds: Double) { state.withLock { $0 = $0 + TimeSpan(seconds: seconds) } }
}
