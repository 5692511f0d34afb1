import Foundation
import TesseraCompiler
import TesseraLanguage
import TesseraModel

/// The values of one compared field while records are added: every distinct folded value once (its UTF-8
/// bytes, a hash for exact agreement, and what the field's levels need: a parsed date, a number, a phonetic
/// code, nickname groups), and per record the code of its value. Records with equal folded values share a
/// code, so exact agreement is one integer comparison and anything computed from a value is computed once.
public struct FieldColumn: Sendable {
  /// Per record: 0 when it has no value, else the code of its value (an index into the per-value arrays).
  var codes: [UInt32] = []
  /// Per value, index 0 being the absent value: a hash of the folded text (never 0 for a value).
  var hashes: [UInt64] = [0]
  /// The folded texts as UTF-8, value `v` at `offsets[v]..<offsets[v + 1]`.
  var utf8: [UInt8] = []
  var offsets: [Int32] = [0, 0]
  /// Days since 1970-01-01 and `year*10000+month*100+day`, `Int32.min` when absent or not a date.
  var day: [Int32] = []
  var ymd: [Int32] = []
  var number: [Double] = []
  /// A hash of the Soundex code, 0 when the value has none.
  var phonetic: [UInt64] = []
  /// `Nicknames.packedGroups` of each value.
  var nickname: [UInt64] = []
  /// Whether every value is ASCII (then its UTF-8 bytes are its scalars).
  var ascii = true
  /// hash → code, once there are more values than a short search handles.
  var lookup = HashIndex()
  let wantsDate: Bool
  let wantsNumber: Bool
  let wantsPhonetic: Bool
  let wantsNickname: Bool

  /// Values searched in order before `lookup` is built (a record set of one event and its candidates needs
  /// no table).
  static let linearSearch = 16

  /// A column prepared for every comparison in `users` that reads it.
  init(_ users: [MatchModel.Comparison]) {
    wantsDate = users.contains { $0.needsDate }
    wantsNumber = users.contains { $0.needsNumber }
    wantsPhonetic = users.contains { $0.needsPhonetic }
    wantsNickname = users.contains { $0.needsNickname }
    appendDerived(nil)
  }

  public var count: Int { codes.count }
  /// Distinct values, the absent one included.
  var valueCount: Int { hashes.count }

  /// The code of the value with hash `h`, 0 when there is none yet.
  func code(ofHash h: UInt64) -> UInt32 {
    if hashes.count <= FieldColumn.linearSearch {
      for v in 1..<hashes.count where hashes[v] == h { return UInt32(v) }
      return 0
    }
    return lookup.code(of: h)
  }

  mutating func append(_ raw: String?) {
    guard var raw else {
      codes.append(0)
      return
    }
    // ASCII values are folded into a buffer on the stack and looked up by the hash of those bytes: a value
    // seen before costs no string.
    let found = raw.withUTF8 { bytes -> UInt32? in
      guard bytes.allSatisfy({ $0 < 0x80 }) else { return nil }
      return withUnsafeTemporaryAllocation(of: UInt8.self, capacity: bytes.count + 1) { buffer in
        let folded = UnsafeBufferPointer(rebasing: buffer[..<FieldColumn.foldASCII(bytes, into: buffer)])
        if folded.isEmpty { return 0 }
        let h = StableHash.of(bytes: folded) | 1
        let known = self.code(ofHash: h)
        if known != 0 { return known }
        return addValue(hash: h, utf8: folded) { String(decoding: folded, as: UTF8.self) }
      }
    }
    if let found {
      codes.append(found)
      return
    }
    let text = FieldColumn.fold(raw)
    if text.isEmpty {
      codes.append(0)
      return
    }
    let h = StableHash.of(text) | 1
    var code = code(ofHash: h)
    if code == 0 {
      code = addValue(hash: h, utf8: text.utf8) { text }
    }
    codes.append(code)
  }

  /// Adds a distinct value; `text()` gives it as a string when a derived value needs it.
  mutating func addValue(hash h: UInt64, utf8 bytes: some Collection<UInt8>, text: () -> String) -> UInt32 {
    let code = UInt32(hashes.count)
    hashes.append(h)
    for b in bytes {
      if b >= 0x80 { ascii = false }
      utf8.append(b)
    }
    offsets.append(Int32(utf8.count))
    if wantsDate || wantsNumber || wantsPhonetic || wantsNickname {
      appendDerived(text())
    } else {
      appendDerived(nil)
    }
    index(h, code)
    return code
  }

  /// Enters a new value's hash in `lookup` once there are too many values to search in order.
  mutating func index(_ h: UInt64, _ code: UInt32) {
    guard hashes.count > FieldColumn.linearSearch else { return }
    if lookup.isEmpty {
      for v in 1..<hashes.count { lookup.insert(hashes[v], UInt32(v)) }
    } else {
      lookup.insert(h, code)
    }
  }

  /// The derived values of a value (`nil`: the absent value, or none wanted).
  mutating func appendDerived(_ text: String?) {
    if wantsDate {
      if let text, let d = SimpleDate(parsing: text) {
        day.append(Int32(d.dayNumber))
        ymd.append(d.packed)
      } else {
        day.append(.min)
        ymd.append(.min)
      }
    }
    if wantsNumber { number.append(text.flatMap { Double($0) } ?? .nan) }
    if wantsNickname { nickname.append(text.map(Nicknames.packedGroups) ?? 0) }
    if wantsPhonetic {
      let code = text.map(Phonetic.soundex) ?? ""
      phonetic.append(code.isEmpty ? 0 : StableHash.of(code) | 1)
    }
  }

  /// Trims, lowercases, collapses inner whitespace and removes diacritics (`José` → `jose`).
  public static func fold(_ raw: String) -> String {
    // Most values are already lowercase ASCII with single inner spaces: keep them as they are.
    var clean = true
    var previousSpace = true
    for b in raw.utf8 {
      if b >= 0x80 || (b >= 0x41 && b <= 0x5A) || b == 0x09 || b == 0x0A || b == 0x0D || (b == 0x20 && previousSpace) {
        clean = false
        break
      }
      previousSpace = b == 0x20
    }
    if clean && !previousSpace { return raw }
    var s = raw
    if s.utf8.allSatisfy({ $0 < 0x80 }) {
      return s.withUTF8 { bytes in
        withUnsafeTemporaryAllocation(of: UInt8.self, capacity: bytes.count + 1) { buffer in
          String(decoding: buffer[..<FieldColumn.foldASCII(bytes, into: buffer)], as: UTF8.self)
        }
      }
    }
    s = s.folding(options: [.diacriticInsensitive, .caseInsensitive], locale: nil)
    s = s.lowercased()
    let parts = s.split(whereSeparator: { $0 == " " || $0 == "\t" || $0 == "\n" || $0 == "\r" })
    return parts.count == 1 ? String(parts[0]) : parts.joined(separator: " ")
  }

  /// `fold` of ASCII text: lowercases A–Z and joins the words with single spaces, byte by byte, into `out`
  /// (as long as `bytes` at least); returns the folded length. As in the split of characters of other
  /// text, "\r\n" is one character, not a separator.
  static func foldASCII(_ bytes: UnsafeBufferPointer<UInt8>, into out: UnsafeMutableBufferPointer<UInt8>) -> Int {
    var n = 0
    var space = false
    for k in bytes.indices {
      let b = bytes[k]
      let crlf =
        (b == 0x0D && k + 1 < bytes.count && bytes[k + 1] == 0x0A) || (b == 0x0A && k > 0 && bytes[k - 1] == 0x0D)
      if !crlf && (b == 0x20 || b == 0x09 || b == 0x0A || b == 0x0D) {
        space = n > 0
        continue
      }
      if space {
        out[n] = 0x20
        n += 1
        space = false
      }
      out[n] = b >= 0x41 && b <= 0x5A ? b | 0x20 : b
      n += 1
    }
    return n
  }

  /// Appends another builder's records (loading in parallel chunks): its values this column lacks are added,
  /// and its records' codes translated.
  mutating func append(contentsOf other: FieldColumn) {
    var translate = [UInt32](repeating: 0, count: other.valueCount)
    for v in 1..<other.valueCount {
      let h = other.hashes[v]
      var code = code(ofHash: h)
      if code == 0 {
        let bytes = other.utf8[Int(other.offsets[v])..<Int(other.offsets[v + 1])]
        code = UInt32(hashes.count)
        hashes.append(h)
        utf8 += bytes
        offsets.append(Int32(utf8.count))
        if wantsDate {
          day.append(other.day[v])
          ymd.append(other.ymd[v])
        }
        if wantsNumber { number.append(other.number[v]) }
        if wantsNickname { nickname.append(other.nickname[v]) }
        if wantsPhonetic { phonetic.append(other.phonetic[v]) }
        index(h, code)
      }
      translate[v] = code
    }
    ascii = ascii && other.ascii
    codes.reserveCapacity(codes.count + other.codes.count)
    for c in other.codes { codes.append(translate[Int(c)]) }
  }
}

/// Codes of values by their hash (`StableHash`, never 0): open addressing over the hashes themselves, which
/// are already well mixed, so a lookup hashes nothing again.
struct HashIndex: Sendable {
  /// Per slot its hash (0: empty) and, next to it so one cache line holds both, its code.
  var slots: [UInt64] = []
  var count = 0

  var isEmpty: Bool { count == 0 }

  /// The code stored for `h`, 0 when there is none.
  @inline(__always)
  func code(of h: UInt64) -> UInt32 {
    guard !slots.isEmpty else { return 0 }
    let mask = slots.count / 2 - 1
    var slot = Int(truncatingIfNeeded: h >> 17) & mask
    while true {
      let k = slots[2 * slot]
      if k == h { return UInt32(truncatingIfNeeded: slots[2 * slot + 1]) }
      if k == 0 { return 0 }
      slot = (slot + 1) & mask
    }
  }

  /// Stores `code` for `h` (not yet stored).
  mutating func insert(_ h: UInt64, _ code: UInt32) {
    if (count + 1) * 4 > slots.count { grow() }
    let mask = slots.count / 2 - 1
    var slot = Int(truncatingIfNeeded: h >> 17) & mask
    while slots[2 * slot] != 0 { slot = (slot + 1) & mask }
    slots[2 * slot] = h
    slots[2 * slot + 1] = UInt64(code)
    count += 1
  }

  mutating func grow() {
    let old = slots
    slots = [UInt64](repeating: 0, count: max(128, old.count * 2))
    count = 0
    for s in stride(from: 0, to: old.count, by: 2) where old[s] != 0 { insert(old[s], UInt32(old[s + 1])) }
  }
}

/// A column of a `RecordSet`: the prepared values of one field, immutable and shared, so reading a pair
/// copies nothing. Per record the code of its value (0: none); per value (index 0 is the absent value) its
/// text, hash, length, character set and the derived values the field's levels need.
public final class Column: Sendable {
  /// Per record.
  public let codes: [UInt32]
  /// Per value.
  public let valueHash: [UInt64]
  /// Whether the texts are ASCII bytes (`bytes`) rather than Unicode scalars (`scalars`).
  let ascii: Bool
  let bytes: [UInt8]
  let scalars: [UInt32]
  /// Value `v`'s text is at `offsets[v]..<offsets[v + 1]` of `bytes` or `scalars`.
  let offsets: [Int32]
  /// `Comparators.characterSet` of each value.
  let characters: [UInt64]
  let day: [Int32]
  let ymd: [Int32]
  let number: [Double]
  let phonetic: [UInt64]
  let nickname: [UInt64]

  init(_ b: FieldColumn) {
    codes = b.codes
    valueHash = b.hashes
    ascii = b.ascii
    var characters: [UInt64] = []
    characters.reserveCapacity(b.valueCount)
    if b.ascii {
      bytes = b.utf8
      scalars = []
      offsets = b.offsets
      b.utf8.withUnsafeBufferPointer { all in
        for v in 0..<b.valueCount {
          characters.append(
            Comparators.characterSet(UnsafeBufferPointer(rebasing: all[Int(b.offsets[v])..<Int(b.offsets[v + 1])])))
        }
      }
    } else {
      var scalars: [UInt32] = []
      var offsets: [Int32] = [0]
      for v in 0..<b.valueCount {
        let text = String(decoding: b.utf8[Int(b.offsets[v])..<Int(b.offsets[v + 1])], as: UTF8.self)
        let start = scalars.count
        for u in text.unicodeScalars { scalars.append(u.value) }
        offsets.append(Int32(scalars.count))
        characters.append(
          scalars.withUnsafeBufferPointer { Comparators.characterSet(UnsafeBufferPointer(rebasing: $0[start...])) })
      }
      bytes = []
      self.scalars = scalars
      self.offsets = offsets
    }
    self.characters = characters
    day = b.day
    ymd = b.ymd
    number = b.number
    phonetic = b.phonetic
    nickname = b.nickname
  }

  /// Records.
  public var count: Int { codes.count }
  /// Distinct values, the absent one included.
  public var valueCount: Int { valueHash.count }

  /// Per record, the hash of its folded value (0: none).
  public struct Hashes: Sendable {
    let column: Column
    public subscript(i: Int) -> UInt64 { column.valueHash[Int(column.codes[i])] }
  }

  /// Per record, the hash of its folded value (0: none): records agree exactly when their hashes are equal.
  public var hash: Hashes { Hashes(column: self) }

  public func isNull(_ i: Int) -> Bool { codes[i] == 0 }

  /// Record `i`'s folded value ("" when it has none).
  public func text(_ i: Int) -> String { text(value: Int(codes[i])) }

  func text(value v: Int) -> String {
    let range = Int(offsets[v])..<Int(offsets[v + 1])
    if ascii { return String(decoding: bytes[range], as: UTF8.self) }
    var s = String.UnicodeScalarView()
    for u in scalars[range] {
      if let scalar = Unicode.Scalar(u) { s.append(scalar) }
    }
    return String(s)
  }

  /// The length in characters of value `v`.
  @inline(__always) func length(_ v: Int) -> Int { Int(offsets[v + 1] - offsets[v]) }

  /// Value `v`'s text in `all` (this column's `bytes` or `scalars`).
  @inline(__always)
  func text<T>(of v: Int, in all: UnsafeBufferPointer<T>) -> UnsafeBufferPointer<T> {
    UnsafeBufferPointer(rebasing: all[Int(offsets[v])..<Int(offsets[v + 1])])
  }

  /// Calls `body` with pointers to this column's per-value arrays, valid only during the call.
  func withPointers<R>(_ body: (ColumnPointers) -> R) -> R {
    codes.withUnsafeBufferPointer { codes in
      bytes.withUnsafeBufferPointer { bytes in
        scalars.withUnsafeBufferPointer { scalars in
          offsets.withUnsafeBufferPointer { offsets in
            characters.withUnsafeBufferPointer { characters in
              valueHash.withUnsafeBufferPointer { valueHash in
                day.withUnsafeBufferPointer { day in
                  ymd.withUnsafeBufferPointer { ymd in
                    number.withUnsafeBufferPointer { number in
                      phonetic.withUnsafeBufferPointer { phonetic in
                        nickname.withUnsafeBufferPointer { nickname in
                          body(
                            ColumnPointers(
                              codes: codes, ascii: ascii, bytes: bytes, scalars: scalars, offsets: offsets,
                              characters: characters,
                              valueHash: valueHash, day: day, ymd: ymd, number: number, phonetic: phonetic,
                              nickname: nickname))
                        }
                      }
                    }
                  }
                }
              }
            }
          }
        }
      }
    }
  }

  /// Calls `body` with pointers to the per-value arrays of every column in `columns`, in order.
  static func withPointers<R>(
    _ columns: ArraySlice<Column>, _ done: [ColumnPointers] = [], _ body: ([ColumnPointers]) -> R
  ) -> R {
    guard let first = columns.first else { return body(done) }
    return first.withPointers { withPointers(columns.dropFirst(), done + [$0], body) }
  }
}

/// Pointers to the per-value arrays of a `Column` (see `Column.withPointers`): what the compare path reads
/// per pair without touching the column object, whose reference count both cores would otherwise update.
struct ColumnPointers: LevelValues {
  /// Per record.
  let codes: UnsafeBufferPointer<UInt32>
  let ascii: Bool
  let bytes: UnsafeBufferPointer<UInt8>
  let scalars: UnsafeBufferPointer<UInt32>
  let offsets: UnsafeBufferPointer<Int32>
  let characters: UnsafeBufferPointer<UInt64>
  let valueHash: UnsafeBufferPointer<UInt64>
  let day: UnsafeBufferPointer<Int32>
  let ymd: UnsafeBufferPointer<Int32>
  let number: UnsafeBufferPointer<Double>
  let phonetic: UnsafeBufferPointer<UInt64>
  let nickname: UnsafeBufferPointer<UInt64>

  @inline(__always) func day(of v: Int) -> Int32 { day[v] }
  @inline(__always) func ymd(of v: Int) -> Int32 { ymd[v] }
  @inline(__always) func number(of v: Int) -> Double { number[v] }
  @inline(__always) func phonetic(of v: Int) -> UInt64 { phonetic[v] }
  @inline(__always) func nickname(of v: Int) -> UInt64 { nickname[v] }
  @inline(__always) func hash(of v: Int) -> UInt64 { valueHash[v] }
}

/// An identifier kind whose `max_per_profile` limits which clusters may join.
public struct IdentifierColumn: Sendable {
  public var kind: String
  public var limit: Int
  /// 0: the record has no valid value of this kind.
  public var hash: [UInt64] = []

  public init(kind: String, limit: Int, hash: [UInt64] = []) {
    self.kind = kind
    self.limit = limit
    self.hash = hash
  }
}

/// Records prepared for matching: ids, the file each came from, one column per compared field, one key
/// per blocking rule, identifier values for the limits, and the true cluster when the data is labelled.
public struct RecordSet: Sendable {
  public var ids: [String] = []
  public var origin: [UInt16] = []
  /// One per `MatchModel.fields`.
  public var columns: [Column]
  /// Per blocking rule, per record: a hash of the joined key values; 0 when a key part is null.
  public var keys: [[UInt64]]
  public var identifiers: [IdentifierColumn]
  public var truth: [String]?
  /// Per compared field with a term-frequency level: per record, log2(u_exact / frequency of its value).
  public var tfAdjust: [[Float]?]
  /// Per column compared by a `within N minutes` level of a device signal: per record, when it was seen with
  /// its value (seconds since the epoch; `Int64.min`: unknown). Empty for other columns.
  public var seen: [[Int64]]
  /// Per comparison whose agreement weighs less when many profiles share the value (`frequency` of a device
  /// rule): per record, the distinct profiles seen with its value in the window; nil for other comparisons.
  public var sharing: [[Int32]?]

  public var count: Int { ids.count }

  init(columns: [Column], keys: [[UInt64]], identifiers: [IdentifierColumn], comparisons: Int) {
    self.columns = columns
    self.keys = keys
    self.identifiers = identifiers
    tfAdjust = Array(repeating: nil, count: comparisons)
    seen = Array(repeating: [], count: columns.count)
    sharing = Array(repeating: nil, count: comparisons)
  }

  /// The number of profiles (records, in batch) sharing the value compared by `c` of a pair, the larger of the
  /// two records' counts; nil when `c` is not weighed by sharing.
  @inline(__always)
  public func sharedBy(_ c: Int, _ i: Int, _ j: Int) -> Int32? {
    guard let n = sharing[c] else { return nil }
    return max(n[i], n[j])
  }

  /// Counts, for every frequency-weighed comparison of a device rule (`MatchModel.frequencyComparisons`), the
  /// *other* records holding each record's value — those seen within `signals.window` of it when the records
  /// have times (`times`, seconds; `Int64.min`: unknown, counted as always in the window), else all of them.
  /// A batch's counterpart of the distinct profiles a streaming run counts on a value.
  public mutating func computeSharing(_ model: MatchModel, times: [Int64]?) {
    let window = (model.signals?.window.microseconds ?? 0) / 1_000_000
    for (c, _) in model.frequencyComparisons {
      let codes = columns[model.comparisons[c].columns[0]].codes
      var groups: [UInt32: [Int]] = [:]
      for (i, v) in codes.enumerated() where v != 0 { groups[v, default: []].append(i) }
      var counts = [Int32](repeating: 0, count: count)
      for (_, members) in groups {
        guard let times, window > 0 else {
          for i in members { counts[i] = Int32(clamping: members.count - 1) }
          continue
        }
        // Records without a time are in every window; the others slide over their times in order.
        let untimed = members.filter { times[$0] == .min }
        let timed = members.filter { times[$0] != .min }.sorted { times[$0] < times[$1] }
        for i in untimed { counts[i] = Int32(clamping: members.count - 1) }
        var lo = 0
        var hi = 0
        for (k, i) in timed.enumerated() {
          let t = times[i]
          while times[timed[lo]] < t - window { lo += 1 }
          if hi < k { hi = k }
          while hi + 1 < timed.count && times[timed[hi + 1]] <= t + window { hi += 1 }
          counts[i] = Int32(clamping: hi - lo + untimed.count)
        }
      }
      sharing[c] = counts
    }
  }

  /// Term-frequency adjustments start when a field holds this many values.
  public static let minimumTermFrequencyValues = 1000

  /// log2(u / frequency of the value): a value rarer than the typical agreement weighs more, a common one less.
  public static func termFrequencyAdjustment(u: Double, count: some BinaryInteger, total: Int) -> Float {
    Float(log2(u / (Double(max(count, 1)) / Double(total))))
  }

  /// The first id that appears again: the index of its first appearance and of the repeat (the earliest such
  /// repeat), nil when every id is unique. Ids are compared by their stable hashes and only a match of hashes
  /// by their texts.
  public static func firstRepeat(_ ids: [String]) -> (first: Int, again: Int)? {
    var index = HashIndex()
    for (k, id) in ids.enumerated() {
      let h = StableHash.of(id) | 1
      let known = index.code(of: h)
      guard known == 0 else {
        let first = Int(known) - 1
        if ids[first] == id { return (first, k) }
        // Two ids with one hash: rare enough to settle with a dictionary over all of them.
        var seen: [String: Int] = [:]
        for (k, id) in ids.enumerated() {
          if let first = seen.updateValue(k, forKey: id) { return (first, k) }
        }
        return nil
      }
      index.insert(h, UInt32(k + 1))
    }
    return nil
  }

  /// Term frequencies of the values of fields with a `tf: true` exact level, as weight adjustments.
  public mutating func computeTermFrequencies(_ model: MatchModel) {
    for (c, comparison) in model.comparisons.enumerated() {
      guard let level = comparison.tfLevel else {
        tfAdjust[c] = nil
        continue
      }
      let column = columns[comparison.columns[0]]
      var counts = [Int32](repeating: 0, count: column.valueCount)
      var total = 0
      for v in column.codes where v != 0 {
        counts[Int(v)] += 1
        total += 1
      }
      // Frequencies from a handful of values say nothing: below `minimumTermFrequencyValues` the exact
      // level keeps its u.
      guard total >= RecordSet.minimumTermFrequencyValues else {
        tfAdjust[c] = nil
        continue
      }
      let u = comparison.u[level]
      let perValue = counts.enumerated().map { v, n in
        v == 0 ? 0 : RecordSet.termFrequencyAdjustment(u: u, count: n, total: total)
      }
      tfAdjust[c] = column.codes.map { perValue[Int($0)] }
    }
  }
}

/// Builds a `RecordSet` from named values, evaluating the rule's blocking keys in the profile scope the
/// compiler checked them in.
public struct RecordSetBuilder: Sendable {
  public private(set) var ids: [String] = []
  var origin: [UInt16] = []
  var truth: [String]?
  /// Per record, when it was seen (seconds since the epoch, `Int64.min`: unknown), once a record was given
  /// a time (the records of a file with a time column, for `within N minutes` levels of device signals).
  var times: [Int64]?
  var columns: [FieldColumn]
  var keys: [[UInt64]]
  var identifiers: [IdentifierColumn]
  let model: MatchModel
  let blocking: [[CompiledExpr]]
  /// Slot layout of the rule's scope: `profile.id`, traits, identifiers.
  let traitSlots: [(name: String, type: ExprType)]
  let identifierSlots: [IdentifierDecl]
  let identifierLimits: [(slot: Int, column: Int)]
  /// The device signals the blocking keys read (slots after the identifiers), as `signals.NAME`.
  let signalSlots: [String]
  var slots: [Value]
  /// Whether `append` computes each record's blocking keys: a set that is only compared (the streaming
  /// matcher's event and candidates) needs none, and keys are most of a small set's cost.
  public var computesKeys = true

  public init(model: MatchModel, rule: ProbabilisticRule, config: PipelineConfig) {
    self.model = model
    blocking = rule.blocking
    traitSlots = config.traits.map { ($0.name, $0.type) } + config.computed.map { ($0.name, $0.type) }
    identifierSlots = config.identifiers
    var columns: [IdentifierColumn] = []
    var limits: [(Int, Int)] = []
    for (i, id) in config.identifiers.enumerated() {
      guard let limit = id.maxPerProfile else { continue }
      limits.append((i, columns.count))
      columns.append(IdentifierColumn(kind: id.name, limit: limit))
    }
    identifierLimits = limits
    identifiers = columns
    self.columns = model.fields.indices.map { f in
      FieldColumn(model.comparisons.filter { $0.columns.contains(f) })
    }
    keys = Array(repeating: [], count: rule.blocking.count)
    let readsSignals = rule.blocking.contains { $0.contains { $0.references.contains { $0.hasPrefix("signals.") } } }
    signalSlots = readsSignals ? DeviceSignals.names.map { "signals." + $0 } : []
    slots = Array(repeating: .null, count: 1 + traitSlots.count + identifierSlots.count + DeviceSignals.names.count)
  }

  /// Adds one record; `value(name)` gives the raw text of a trait or identifier kind (nil when absent).
  /// `time`: when the record was seen, in seconds since the epoch (for `within N minutes` levels).
  public mutating func append(
    id: String, origin: UInt16 = 0, truth: String? = nil, time: Int64? = nil, value: (String) -> String?
  ) {
    if let time {
      if times == nil { times = Array(repeating: .min, count: ids.count) }
      times?.append(time)
    } else if times != nil {
      times?.append(.min)
    }
    ids.append(id)
    self.origin.append(origin)
    if let truth {
      if self.truth == nil { self.truth = [] }
      self.truth?.append(truth)
    }
    if computesKeys {
      let identifierHashes = fillSlots(id: id, value: value)
      for (slot, column) in identifierLimits { identifiers[column].hash.append(identifierHashes[slot]) }
      for (r, key) in blockingKeys().enumerated() { keys[r].append(key) }
    } else {
      for (slot, column) in identifierLimits { identifiers[column].hash.append(identifierHash(slot, value)) }
      for r in keys.indices { keys[r].append(0) }
    }
    for (f, field) in model.fields.enumerated() { columns[f].append(value(field)) }
  }

  /// The hash of identifier slot `i`'s usable value (0: none).
  func identifierHash(_ i: Int, _ value: (String) -> String?) -> UInt64 {
    let id = identifierSlots[i]
    guard let v = value(id.name).flatMap(id.normalize), !id.blocked.contains(v) else { return 0 }
    return StableHash.of(v) | 1
  }

  /// The blocking keys of one record (0 where a blocking rule has none), as `append` would give them, without
  /// adding the record: the streaming matcher looks an event up and re-keys a changed profile with this alone.
  public mutating func keys(id: String, value: (String) -> String?) -> [UInt64] {
    _ = fillSlots(id: id, value: value)
    return blockingKeys()
  }

  /// The hash a column gives a raw value (0 when it folds to nothing), as `append` and `Column.hash` do.
  public static func valueHash(_ raw: String) -> UInt64 {
    let text = FieldColumn.fold(raw)
    return text.isEmpty ? 0 : StableHash.of(text) | 1
  }

  /// Sets the scope's slots (`profile.id`, traits, identifiers, signals) from a record's values; returns the
  /// hash of each identifier slot's usable value (0: none).
  mutating func fillSlots(id: String, value: (String) -> String?) -> [UInt64] {
    slots[0] = .string(id)
    for (i, t) in traitSlots.enumerated() {
      let raw = value(t.name)
      slots[1 + i] = raw.map { Convert.to(t.type, .string($0)) ?? .null } ?? .null
    }
    var identifierHashes: [UInt64] = []
    identifierHashes.reserveCapacity(identifierSlots.count)
    for (i, id) in identifierSlots.enumerated() {
      let normalized = value(id.name).flatMap(id.normalize)
      let usable = normalized.flatMap { id.blocked.contains($0) ? nil : $0 }
      slots[1 + traitSlots.count + i] = usable.map(Value.string) ?? .null
      identifierHashes.append(usable.map { StableHash.of($0) | 1 } ?? 0)
    }
    let signalBase = 1 + traitSlots.count + identifierSlots.count
    for (i, name) in signalSlots.enumerated() { slots[signalBase + i] = value(name).map(Value.string) ?? .null }
    return identifierHashes
  }

  /// Each blocking rule's key over the slots `fillSlots` set (0: some key expression is null or empty).
  func blockingKeys() -> [UInt64] {
    let env = Env(slots: slots)
    return blocking.map { exprs in
      var h: UInt64 = 0xcbf2_9ce4_8422_2325
      for key in exprs {
        let v = key.evaluate(env)
        guard !v.isNull, v != .string("") else { return 0 }
        h = StableHash.combine(h, StableHash.of(v.description))
      }
      return h | 1
    }
  }

  public var count: Int { ids.count }

  /// Appends the records of a builder of the same rule (built in parallel over another part of a file).
  public mutating func append(contentsOf other: RecordSetBuilder) {
    appendTimes(other)
    ids += other.ids
    origin += other.origin
    if let t = other.truth { truth = (truth ?? []) + t }
    for f in columns.indices { columns[f].append(contentsOf: other.columns[f]) }
    for r in keys.indices { keys[r] += other.keys[r] }
    for k in identifiers.indices { identifiers[k].hash += other.identifiers[k].hash }
  }

  /// The times of another builder's records after this one's (before its ids are appended).
  mutating func appendTimes(_ other: RecordSetBuilder) {
    guard times != nil || other.times != nil else { return }
    times =
      (times ?? Array(repeating: .min, count: ids.count))
      + (other.times ?? Array(repeating: .min, count: other.ids.count))
  }

  public func finish() -> RecordSet { finish(columns: columns.map(Column.init)) }

  func finish(columns: [Column]) -> RecordSet {
    var records = RecordSet(
      columns: columns, keys: keys, identifiers: identifiers, comparisons: model.comparisons.count)
    records.ids = ids
    records.origin = origin
    records.truth = truth
    records.computeTermFrequencies(model)
    // Records with times are sightings of their values: `within N minutes` measures between them.
    if let times {
      for f in model.timedColumns { records.seen[f] = times }
      records.computeSharing(model, times: times)
    }
    return records
  }

  /// As `finish()`, the columns prepared on all cores.
  public func finished() async -> RecordSet {
    var columns = [Column?](repeating: nil, count: self.columns.count)
    await withTaskGroup(of: (Int, Column).self) { group in
      for (f, column) in self.columns.enumerated() { group.addTask { (f, Column(column)) } }
      for await (f, column) in group { columns[f] = column }
    }
    return finish(columns: columns.compactMap { $0 })
  }

  /// Appends the records of builders of the same rule in order (parts of files read in parallel), merging
  /// each column's values on a core of its own.
  public mutating func append(contentsOf parts: [RecordSetBuilder]) async {
    var merged = [FieldColumn?](repeating: nil, count: columns.count)
    await withTaskGroup(of: (Int, FieldColumn).self) { group in
      for (f, first) in columns.enumerated() {
        group.addTask {
          var column = first
          for part in parts { column.append(contentsOf: part.columns[f]) }
          return (f, column)
        }
      }
      for await (f, column) in group { merged[f] = column }
    }
    columns = merged.compactMap { $0 }
    for part in parts {
      appendTimes(part)
      ids += part.ids
      origin += part.origin
      if let t = part.truth { truth = (truth ?? []) + t }
      for r in keys.indices { keys[r] += part.keys[r] }
      for k in identifiers.indices { identifiers[k].hash += part.identifiers[k].hash }
    }
  }
}

/// FNV-1a over UTF-8: the same value hashes the same in every process (Swift's `Hasher` is seeded per run).
public enum StableHash {
  public static func of(_ s: String) -> UInt64 {
    var h: UInt64 = 0xcbf2_9ce4_8422_2325
    for b in s.utf8 {
      h ^= UInt64(b)
      h = h &* 0x100_0000_01b3
    }
    return mix(h)
  }

  /// `of` the text whose UTF-8 bytes these are.
  public static func of(bytes: UnsafeBufferPointer<UInt8>) -> UInt64 {
    var h: UInt64 = 0xcbf2_9ce4_8422_2325
    for b in bytes {
      h ^= UInt64(b)
      h = h &* 0x100_0000_01b3
    }
    return mix(h)
  }

  public static func combine(_ a: UInt64, _ b: UInt64) -> UInt64 { mix(a ^ (b &+ 0x9e37_79b9_7f4a_7c15 &+ (a << 6))) }

  /// The SplitMix64 finaliser, so nearby inputs spread over all bits.
  @inline(__always) static func mix(_ x: UInt64) -> UInt64 {
    var z = x &+ 0x9e37_79b9_7f4a_7c15
    z = (z ^ (z >> 30)) &* 0xbf58_476d_1ce4_e5b9
    z = (z ^ (z >> 27)) &* 0x94d0_49bb_1331_11eb
    return z ^ (z >> 31)
  }
}
