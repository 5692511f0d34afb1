import CZstd
import Foundation
import GRDB
import Synchronization
import TesseraModel
import TesseraStore

/// A zstd dictionary for logged records, trained from the store's own records (`RecordCodec`).
///
/// A Segment-shaped event of ~380 bytes compresses 1.5× on its own and 5× with a 16 KiB dictionary (the keys,
/// the library and locale, URL prefixes that every record repeats), at ~1.5 µs to compress and ~0.5 µs to
/// decompress (measured with libzstd 1.5.4 on the benchmark's records).
final class RecordDictionary: @unchecked Sendable {
  // @unchecked: `cdict` and `ddict` are made in `init`, never replaced, and freed in `deinit`. zstd documents
  // both as read-only once made and usable by several threads at once ("a ZSTD_CDict can be shared by
  // multiple threads concurrently", zstd.h); what a call changes lives in the context it is given, which each
  // caller holds for itself (`CompressionContext`, `RecordDecompressor`).
  let id: UInt32
  let bytes: [UInt8]
  fileprivate let cdict: OpaquePointer
  fileprivate let ddict: OpaquePointer

  /// The compression level, zstd's default: on the benchmark's records level 1 was 2 % larger and 7 % faster
  /// (5.45× at 1.44 µs against 5.54× at 1.55 µs), a difference the writer does not feel.
  static let level: Int32 = 3

  /// nil when `bytes` is not a zstd dictionary with an id (`ZDICT_trainFromBuffer`'s), which every frame
  /// compressed with it names, so that a reader finds it.
  init?(bytes: [UInt8]) {
    let id = bytes.withUnsafeBytes { ZSTD_getDictID_fromDict($0.baseAddress, $0.count) }
    guard id != 0 else { return nil }
    guard let c = bytes.withUnsafeBytes({ ZSTD_createCDict($0.baseAddress, $0.count, Self.level) }) else { return nil }
    guard let d = bytes.withUnsafeBytes({ ZSTD_createDDict($0.baseAddress, $0.count) }) else {
      ZSTD_freeCDict(c)
      return nil
    }
    (self.id, self.bytes, self.cdict, self.ddict) = (id, bytes, c, d)
  }

  deinit {
    ZSTD_freeCDict(cdict)
    ZSTD_freeDDict(ddict)
  }

  /// The dictionary's size, and how many samples, it is trained to: 16 KiB compressed the benchmark's records
  /// 5.5×, 4 KiB 5.2× and 64 KiB no better.
  static let capacity = 16 * 1024
  static let samples = 4000
  /// Fewer samples than this train no dictionary yet (zstd's trainer wants ~100× its size in samples).
  static let minimumSamples = 1000
  /// A string or number of a sample stays in what the dictionary learns from only when it occurs in the
  /// records of at least this many profiles; the others are emptied first (`skeletons`). So the dictionary,
  /// which is kept as long as the events compressed with it, holds the shape of the records and the values
  /// many people share (a library, a locale, a page title), never a value of one person — an email, a name,
  /// an address or an IP address of someone whose data is later erased.
  static let minimumProfiles = 8

  /// A logged record offered for training: its bytes and the profile it was resolved to.
  struct Sample {
    var profile: Int64
    var bytes: [UInt8]
  }

  /// Trains a dictionary from `samples` (JSON records; others are skipped), or nil when they are too few or
  /// zstd's trainer finds nothing to learn.
  static func train(_ samples: [Sample]) -> RecordDictionary? {
    let json = samples.filter { $0.bytes.first(where: { !isSpace($0) }) == UInt8(ascii: "{") }
    guard json.count >= minimumSamples else { return nil }
    let shapes = skeletons(json)
    var all: [UInt8] = []
    all.reserveCapacity(shapes.reduce(0) { $0 + $1.count })
    for s in shapes { all.append(contentsOf: s) }
    let sizes = shapes.map(\.count)
    var dictionary = [UInt8](repeating: 0, count: capacity)
    let size = dictionary.withUnsafeMutableBytes { d in
      all.withUnsafeBytes { a in
        sizes.withUnsafeBufferPointer { s in
          ZDICT_trainFromBuffer(d.baseAddress, d.count, a.baseAddress, s.baseAddress, UInt32(s.count))
        }
      }
    }
    guard ZDICT_isError(size) == 0, size > 0 else { return nil }
    return RecordDictionary(bytes: Array(dictionary.prefix(size)))
  }

  /// Each sample with every string and number that occurs in fewer than `minimumProfiles` profiles' samples
  /// emptied (`""`, `0`): keys, shared values and the JSON around them stay as they were.
  static func skeletons(_ samples: [Sample]) -> [[UInt8]] {
    var seen: [ArraySlice<UInt8>: Set<Int64>] = [:]
    let tokens = samples.map { tokenRanges($0.bytes) }
    for (sample, ranges) in zip(samples, tokens) {
      for r in ranges {
        let token = sample.bytes[r.range]
        if seen[token, default: []].count < minimumProfiles { seen[token, default: []].insert(sample.profile) }
      }
    }
    return zip(samples, tokens).map { sample, ranges in
      var out: [UInt8] = []
      out.reserveCapacity(sample.bytes.count)
      var at = 0
      for r in ranges where (seen[sample.bytes[r.range]]?.count ?? 0) < minimumProfiles {
        out.append(contentsOf: sample.bytes[at..<r.range.lowerBound])
        if !r.isString { out.append(UInt8(ascii: "0")) }
        at = r.range.upperBound
      }
      out.append(contentsOf: sample.bytes[at...])
      return out
    }
  }

  /// The strings (their contents, between the quotes) and numbers of a JSON text, found by a scan that needs no
  /// valid JSON: a record that is not parses into fewer or odd tokens, which only makes the dictionary worse.
  static func tokenRanges(_ bytes: [UInt8]) -> [(range: Range<Int>, isString: Bool)] {
    var out: [(range: Range<Int>, isString: Bool)] = []
    var i = 0
    while i < bytes.count {
      let b = bytes[i]
      if b == UInt8(ascii: "\"") {
        var j = i + 1
        while j < bytes.count, bytes[j] != UInt8(ascii: "\"") { j += bytes[j] == UInt8(ascii: "\\") ? 2 : 1 }
        let end = min(j, bytes.count)
        out.append((i + 1..<end, true))
        i = end + 1
      } else if b == UInt8(ascii: "-") || (b >= UInt8(ascii: "0") && b <= UInt8(ascii: "9")) {
        var j = i + 1
        while j < bytes.count, isNumberByte(bytes[j]) { j += 1 }
        out.append((i..<j, false))
        i = j
      } else {
        i += 1
      }
    }
    return out
  }

  private static func isNumberByte(_ b: UInt8) -> Bool {
    (b >= UInt8(ascii: "0") && b <= UInt8(ascii: "9")) || b == UInt8(ascii: ".") || b == UInt8(ascii: "e")
      || b == UInt8(ascii: "E") || b == UInt8(ascii: "+") || b == UInt8(ascii: "-")
  }

  private static func isSpace(_ b: UInt8) -> Bool {
    b == UInt8(ascii: " ") || b == UInt8(ascii: "\n") || b == UInt8(ascii: "\r") || b == UInt8(ascii: "\t")
  }
}

/// A zstd compression context and its output buffer, reused from one transaction to the next: a context's
/// workspace is about a megabyte, which a new context per transaction (a server commits hundreds a second)
/// would allocate and fault in each time.
final class CompressionContext: @unchecked Sendable {
  // @unchecked: a context is used by one thread at a time. It lives in `RecordCodec.contexts` while idle and
  // `RecordCodec.withContext` takes it out of that Mutex for the duration of one use and puts it back after,
  // so no two callers ever hold the same context (or its buffer) at once.
  let pointer: OpaquePointer
  var buffer: [UInt8] = []

  init?() {
    guard let p = ZSTD_createCCtx() else { return nil }
    pointer = p
  }

  deinit { ZSTD_freeCCtx(pointer) }

  /// Compresses `record` into `buffer`; the compressed size, or nil when it is not smaller (or zstd failed).
  func compress(_ record: RecordBytes, _ dictionary: RecordDictionary) -> Int? {
    let bound = ZSTD_compressBound(record.count)
    if buffer.count < bound { buffer = [UInt8](repeating: 0, count: max(bound, 4096)) }
    let (context, cdict) = (pointer, dictionary.cdict)
    let size = record.withUnsafeBytes { src in
      buffer.withUnsafeMutableBytes { dst in
        ZSTD_compress_usingCDict(context, dst.baseAddress, dst.count, src.baseAddress, src.count, cdict)
      }
    }
    return ZSTD_isError(size) == 0 && size < record.count ? size : nil
  }
}

/// Records compressed before their transaction (`RecordCodec.precompress`), one entry per event: the
/// compressed bytes, or nil for an event logged as it is; and each event's identifiers as the log stores them
/// (`StoredValue.encode`), encoded in the same parallel pass instead of on the store's one writer thread.
struct PackedRecords: Sendable {
  let dictionary: UInt32
  let bodies: [[UInt8]?]
  let identifiers: [String]
}

/// Compresses records with one dictionary, inside the write transaction.
struct RecordCompressor {
  let codec: RecordCodec
  let dictionary: RecordDictionary

  /// Hands `record` compressed to `body` (valid only during the call) and answers true; false when
  /// compressing did not make it smaller or failed, so that the record is logged as it is.
  func compress(_ record: RecordBytes, _ body: (UnsafeRawBufferPointer) throws -> Void) throws -> Bool {
    try codec.withContext { context in
      guard let size = context.compress(record, dictionary) else { return false }
      try context.buffer.withUnsafeBytes { try body(UnsafeRawBufferPointer(rebasing: $0[..<size])) }
      return true
    } ?? false
  }
}

/// Decompresses logged records through a context of its own (made at the first compressed record), finding
/// each record's dictionary by the id its frame names (`RecordCodec`). One per read, on the reading thread.
final class RecordDecompressor {
  let codec: RecordCodec
  private var context: OpaquePointer?

  init(_ codec: RecordCodec) { self.codec = codec }

  deinit { if let context { ZSTD_freeDCtx(context) } }

  /// The record `compressed` holds. `db` reads a dictionary this process has not seen yet (another process
  /// trained it after this one opened the store).
  func record(_ compressed: UnsafeRawBufferPointer, _ db: Database) throws -> [UInt8] {
    let id = ZSTD_getDictID_fromFrame(compressed.baseAddress, compressed.count)
    let size = ZSTD_getFrameContentSize(compressed.baseAddress, compressed.count)
    if context == nil { context = ZSTD_createDCtx() }
    // ZSTD_CONTENTSIZE_UNKNOWN and _ERROR are the two largest values; a record is never near 1 GiB.
    guard let context, size < 1 << 30, let dictionary = try codec.dictionary(id, db) else {
      throw StoreError.corrupt("a logged record is compressed with dictionary \(id), which the store does not hold")
    }
    var out = [UInt8](repeating: 0, count: Int(size))
    let written = out.withUnsafeMutableBytes { dst in
      ZSTD_decompress_usingDDict(
        context, dst.baseAddress, dst.count, compressed.baseAddress, compressed.count, dictionary.ddict)
    }
    guard ZSTD_isError(written) == 0, written == out.count else {
      throw StoreError.corrupt("a logged record does not decompress: \(String(cString: ZSTD_getErrorName(written)))")
    }
    return out
  }

  /// The format readers are given for a row stored in `stored`: a compressed record is a record.
  static func format(_ stored: Int) -> Int {
    stored == SQLiteStore.compressedRecordFormat ? EventLogFormat.record : stored
  }

  /// A row's format and body as the log's readers get them: a compressed record decompressed (and answered
  /// as `EventLogFormat.record`), any other body as it is.
  func body(format: Int, _ bytes: UnsafeRawBufferPointer, _ db: Database) throws -> (format: Int, body: [UInt8]) {
    guard format == SQLiteStore.compressedRecordFormat else { return (format, Array(bytes)) }
    return (Self.format(format), try record(bytes, db))
  }
}

/// The SQLite store's compression of logged records: the dictionaries in `record_dictionaries`, the one new
/// records are compressed with, and the samples gathered until there are enough to train one.
///
/// Records are stored compressed (`SQLiteStore.compressedRecordFormat`) once the store has a dictionary, and
/// every read of the log decompresses them: what leaves the store is the record as received, byte for byte.
/// The first dictionary is trained from the first records written: `RecordDictionary.samples` spread over a
/// bulk run's first transaction, or a server's first `RecordDictionary.minimumSamples` or so, kept in memory
/// meanwhile; records written before it stay as they are. Another process on the same file uses the dictionary the first one wrote.
final class RecordCodec: Sendable {
  struct State {
    var known: [UInt32: RecordDictionary] = [:]
    /// The dictionary new records are compressed with: the newest in the table.
    var current: RecordDictionary?
    var samples: [RecordDictionary.Sample] = []
    /// Training attempts that found nothing to learn; after a few the store stops gathering samples.
    var failed = 0
    /// A dictionary trained in the transaction being written: current once that transaction committed
    /// (`finished`).
    var trained: RecordDictionary?
  }

  let state = Mutex(State())
  /// Idle compression contexts, kept between transactions (`withContext`).
  let contexts = Mutex<[CompressionContext]>([])

  /// Runs `body` with a context of its own (an idle one, else a new one), which goes back to the idle ones
  /// after; nil when zstd cannot make one (out of memory).
  func withContext<R>(_ body: (CompressionContext) throws -> R) rethrows -> R? {
    guard let context = contexts.withLock({ $0.popLast() }) ?? CompressionContext() else { return nil }
    defer { contexts.withLock { $0.append(context) } }
    return try body(context)
  }

  /// A bulk transaction's records compressed ahead of it, in parallel slices, with the store's dictionary
  /// (when it has one): the writer thread then only binds them. Worth it from a few thousand events; nil for
  /// fewer (a server's batch), or before the first dictionary, and the writer compresses as it appends.
  func precompress(_ events: [StoredEvent]) async -> PackedRecords? {
    guard events.count >= 4096, let dictionary = state.withLock({ $0.current }) else { return nil }
    let slice = 8192
    let (bodies, identifiers) = await withTaskGroup(of: (Int, [[UInt8]?], [String]).self) { group in
      for start in stride(from: 0, to: events.count, by: slice) {
        let range = start..<min(start + slice, events.count)
        group.addTask {
          // Read in place: a copy of each `StoredEvent` (a dozen references to retain and release) cost a
          // fifth as much as compressing its record.
          let texts = events.withUnsafeBufferPointer { events in
            range.map { StoredValue.encode(events[$0].event.identifiers) }
          }
          let out = self.withContext { context in
            events.withUnsafeBufferPointer { events in
              range.map { n -> [UInt8]? in
                guard let record = events[n].event.record, let size = context.compress(record, dictionary) else {
                  return nil
                }
                return Array(context.buffer[..<size])
              }
            }
          }
          return (start, out ?? Array(repeating: nil, count: range.count), texts)
        }
      }
      var all = [[UInt8]?](repeating: nil, count: events.count)
      var texts = [String](repeating: "", count: events.count)
      for await (start, part, text) in group {
        all.replaceSubrange(start..<start + part.count, with: part)
        texts.replaceSubrange(start..<start + text.count, with: text)
      }
      return (all, texts)
    }
    return PackedRecords(dictionary: dictionary.id, bodies: bodies, identifiers: identifiers)
  }

  /// Reads the dictionaries the file holds (at open, and after a miss).
  func load(_ db: Database) throws {
    let ids = try Int64.fetchAll(db, sql: "SELECT id FROM record_dictionaries ORDER BY created_at, id")
    guard let newest = ids.last else { return }
    for id in ids where state.withLock({ $0.known[UInt32(truncatingIfNeeded: id)] == nil }) {
      let bytes = try Data.fetchOne(db, sql: "SELECT dictionary FROM record_dictionaries WHERE id = ?", arguments: [id])
      guard let d = bytes.flatMap({ RecordDictionary(bytes: Array($0)) }), Int64(d.id) == id else {
        throw StoreError.corrupt("record dictionary \(id) is not a zstd dictionary with that id")
      }
      state.withLock { $0.known[d.id] = d }
    }
    // Only a dictionary read from the table becomes the current one: one trained in a transaction that was
    // then rolled back is not there, and no record may be compressed with it.
    state.withLock { $0.current = $0.known[UInt32(truncatingIfNeeded: newest)] }
  }

  /// The dictionary with `id`, reading the table when this process does not know it yet.
  func dictionary(_ id: UInt32, _ db: Database) throws -> RecordDictionary? {
    if let d = state.withLock({ $0.known[id] }) { return d }
    try load(db)
    return state.withLock { $0.known[id] }
  }

  /// The dictionary to compress `events` with, inside the write transaction that appends them: the current
  /// one; else one another process wrote since; else one trained now, when the samples gathered so far and
  /// these events' records are enough (it is written to the table in this transaction). nil: log as received.
  func dictionary(for events: UnsafeBufferPointer<StoredEvent>, _ db: Database) throws -> RecordDictionary? {
    if let d = state.withLock({ $0.current }) { return d }
    try load(db)
    if let d = state.withLock({ $0.current }) { return d }
    let samples = state.withLock { s -> [RecordDictionary.Sample]? in
      guard s.failed < 3 else { return nil }
      let room = RecordDictionary.samples - s.samples.count
      let records = events.filter { $0.event.record != nil }
      // Spread over the batch rather than its first events: a bulk run's batch is one stretch of time.
      let step = max(1, records.count / max(room, 1))
      for n in stride(from: 0, to: records.count, by: step) where s.samples.count < RecordDictionary.samples {
        if let r = records[n].event.record {
          s.samples.append(RecordDictionary.Sample(profile: records[n].profile.raw, bytes: Array(r.bytes)))
        }
      }
      guard s.samples.count >= RecordDictionary.minimumSamples else { return nil }
      defer { s.samples = [] }
      return s.samples
    }
    guard let samples else { return nil }
    guard let trained = RecordDictionary.train(samples) else {
      state.withLock { $0.failed += 1 }
      return nil
    }
    try db.execute(
      sql: "INSERT OR IGNORE INTO record_dictionaries (id, dictionary, created_at) VALUES (?, ?, ?)",
      arguments: [Int64(trained.id), Data(trained.bytes), Timestamp(Date()).microseconds])
    // Known for reading; current only once its transaction committed (`finished`, or `load` in a later one).
    state.withLock { s in
      s.known[trained.id] = trained
      s.trained = trained
    }
    return trained
  }

  /// After a write transaction: a dictionary trained in it becomes the current one if it committed, and is
  /// forgotten as a candidate if it was rolled back.
  func finished(committed: Bool) {
    state.withLock { s in
      if committed, s.current == nil { s.current = s.trained }
      s.trained = nil
    }
  }
}
