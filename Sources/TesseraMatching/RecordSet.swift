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
  var lookup: [UInt64: UInt32] = [:]
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
    return lookup[h] ?? 0
  }

  mutating func append(_ raw: String?) {
    let text = raw.map(FieldColumn.fold) ?? ""
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
      for v in 1..<hashes.count { lookup[hashes[v]] = UInt32(v) }
    } else {
      lookup[h] = code
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
      // ASCII: lowercase A–Z and join the words with single spaces, byte by byte. As in the split of
      // characters below, "\r\n" is one character, not a separator.
      let bytes = Array(s.utf8)
      var out: [UInt8] = []
      out.reserveCapacity(bytes.count)
      var space = false
      for (k, b) in bytes.enumerated() {
        let crlf =
          (b == 0x0D && k + 1 < bytes.count && bytes[k + 1] == 0x0A) || (b == 0x0A && k > 0 && bytes[k - 1] == 0x0D)
        if !crlf && (b == 0x20 || b == 0x09 || b == 0x0A || b == 0x0D) {
          space = !out.isEmpty
          continue
        }
        if space {
          out.append(0x20)
          space = false
        }
        out.append(b >= 0x41 && b <= 0x5A ? b | 0x20 : b)
      }
      return String(decoding: out, as: UTF8.self)
    }
    s = s.folding(options: [.diacriticInsensitive, .caseInsensitive], locale: nil)
    s = s.lowercased()
    let parts = s.split(whereSeparator: { $0 == " " || $0 == "\t" || $0 == "\n" || $0 == "\r" })
    return parts.count == 1 ? String(parts[0]) : parts.joined(separator: " ")
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

  public var count: Int { ids.count }

  init(columns: [Column], keys: [[UInt64]], identifiers: [IdentifierColumn], comparisons: Int) {
    self.columns = columns
    self.keys = keys
    self.identifiers = identifiers
    tfAdjust = Array(repeating: nil, count: comparisons)
  }

  /// Term-frequency adjustments start when a field holds this many values.
  public static let minimumTermFrequencyValues = 1000

  /// log2(u / frequency of the value): a value rarer than the typical agreement weighs more, a common one less.
  public static func termFrequencyAdjustment(u: Double, count: some BinaryInteger, total: Int) -> Float {
    Float(log2(u / (Double(max(count, 1)) / Double(total))))
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
  var columns: [FieldColumn]
  var keys: [[UInt64]]
  var identifiers: [IdentifierColumn]
  let model: MatchModel
  let blocking: [[CompiledExpr]]
  /// Slot layout of the rule's scope: `profile.id`, traits, identifiers.
  let traitSlots: [(name: String, type: ExprType)]
  let identifierSlots: [IdentifierDecl]
  let identifierLimits: [(slot: Int, column: Int)]
  var slots: [Value]

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
    slots = Array(repeating: .null, count: 1 + traitSlots.count + identifierSlots.count)
  }

  /// Adds one record; `value(name)` gives the raw text of a trait or identifier kind (nil when absent).
  public mutating func append(id: String, origin: UInt16 = 0, truth: String? = nil, value: (String) -> String?) {
    ids.append(id)
    self.origin.append(origin)
    if let truth {
      if self.truth == nil { self.truth = [] }
      self.truth?.append(truth)
    }
    slots[0] = .string(id)
    for (i, t) in traitSlots.enumerated() {
      let raw = value(t.name)
      slots[1 + i] = raw.map { Convert.to(t.type, .string($0)) ?? .null } ?? .null
    }
    var identifierHashes: [UInt64] = []
    for (i, id) in identifierSlots.enumerated() {
      let normalized = value(id.name).flatMap(id.normalize)
      let usable = normalized.flatMap { id.blocked.contains($0) ? nil : $0 }
      slots[1 + traitSlots.count + i] = usable.map(Value.string) ?? .null
      identifierHashes.append(usable.map { StableHash.of($0) | 1 } ?? 0)
    }
    for (slot, column) in identifierLimits { identifiers[column].hash.append(identifierHashes[slot]) }
    for (f, field) in model.fields.enumerated() { columns[f].append(value(field)) }
    let env = Env(slots: slots)
    for (r, exprs) in blocking.enumerated() {
      var h: UInt64 = 0xcbf2_9ce4_8422_2325
      var complete = true
      for key in exprs {
        let v = key.evaluate(env)
        guard !v.isNull, v != .string("") else {
          complete = false
          break
        }
        h = StableHash.combine(h, StableHash.of(v.description))
      }
      keys[r].append(complete ? (h | 1) : 0)
    }
  }

  public var count: Int { ids.count }

  /// Appends the records of a builder of the same rule (built in parallel over another part of a file).
  public mutating func append(contentsOf other: RecordSetBuilder) {
    ids += other.ids
    origin += other.origin
    if let t = other.truth { truth = (truth ?? []) + t }
    for f in columns.indices { columns[f].append(contentsOf: other.columns[f]) }
    for r in keys.indices { keys[r] += other.keys[r] }
    for k in identifiers.indices { identifiers[k].hash += other.identifiers[k].hash }
  }

  public func finish() -> RecordSet {
    var records = RecordSet(
      columns: columns.map(Column.init), keys: keys, identifiers: identifiers, comparisons: model.comparisons.count)
    records.ids = ids
    records.origin = origin
    records.truth = truth
    records.computeTermFrequencies(model)
    return records
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

  public static func combine(_ a: UInt64, _ b: UInt64) -> UInt64 { mix(a ^ (b &+ 0x9e37_79b9_7f4a_7c15 &+ (a << 6))) }

  /// The SplitMix64 finaliser, so nearby inputs spread over all bits.
  @inline(__always) static func mix(_ x: UInt64) -> UInt64 {
    var z = x &+ 0x9e37_79b9_7f4a_7c15
    z = (z ^ (z >> 30)) &* 0xbf58_476d_1ce4_e5b9
    z = (z ^ (z >> 27)) &* 0x94d0_49bb_1331_11eb
    return z ^ (z >> 31)
  }
}
