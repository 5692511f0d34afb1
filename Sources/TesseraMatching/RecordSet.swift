import Foundation
import TesseraCompiler
import TesseraLanguage
import TesseraModel

/// The values of one compared field for every record, prepared once so that comparing a pair allocates
/// nothing: case-folded text as Unicode scalars in one buffer, a hash for exact matches, and, where the
/// field's levels need them, a parsed date, a number and a phonetic code.
public struct FieldColumn: Sendable {
  public var scalars: [UInt32] = []
  /// Start of record i's text in `scalars`; `offsets[i + 1]` is its end.
  public var offsets: [Int32] = [0]
  /// 0: no value.
  public var hash: [UInt64] = []
  /// Days since 1970-01-01 and `year*10000+month*100+day`, `Int32.min` when absent or not a date.
  public var day: [Int32] = []
  public var ymd: [Int32] = []
  public var number: [Double] = []
  public var phonetic: [UInt64] = []
  /// `Nicknames.packedGroups` of each value.
  public var nickname: [UInt64] = []
  let wantsDate: Bool
  let wantsNumber: Bool
  let wantsPhonetic: Bool
  let wantsNickname: Bool

  /// A column prepared for every comparison in `users` that reads it.
  init(_ users: [MatchModel.Comparison]) {
    wantsDate = users.contains { $0.needsDate }
    wantsNumber = users.contains { $0.needsNumber }
    wantsPhonetic = users.contains { $0.needsPhonetic }
    wantsNickname = users.contains { $0.needsNickname }
  }

  public var count: Int { hash.count }

  mutating func append(_ raw: String?) {
    let text = raw.map(FieldColumn.fold) ?? ""
    if text.isEmpty {
      offsets.append(Int32(scalars.count))
      hash.append(0)
      if wantsDate {
        day.append(.min)
        ymd.append(.min)
      }
      if wantsNumber { number.append(.nan) }
      if wantsPhonetic { phonetic.append(0) }
      if wantsNickname { nickname.append(0) }
      return
    }
    for s in text.unicodeScalars { scalars.append(s.value) }
    offsets.append(Int32(scalars.count))
    hash.append(StableHash.of(text) | 1)
    if wantsDate {
      if let d = SimpleDate(parsing: text) {
        day.append(Int32(d.dayNumber))
        ymd.append(d.packed)
      } else {
        day.append(.min)
        ymd.append(.min)
      }
    }
    if wantsNumber { number.append(Double(text) ?? .nan) }
    if wantsNickname { nickname.append(Nicknames.packedGroups(text)) }
    if wantsPhonetic {
      let code = Phonetic.soundex(text)
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
    if !s.utf8.allSatisfy({ $0 < 0x80 }) {
      s = s.folding(options: [.diacriticInsensitive, .caseInsensitive], locale: nil)
    }
    s = s.lowercased()
    let parts = s.split(whereSeparator: { $0 == " " || $0 == "\t" || $0 == "\n" || $0 == "\r" })
    return parts.count == 1 ? String(parts[0]) : parts.joined(separator: " ")
  }

  /// Appends another builder's records (loading in parallel chunks).
  mutating func append(contentsOf other: FieldColumn) {
    let base = Int32(scalars.count)
    scalars += other.scalars
    offsets += other.offsets.dropFirst().map { $0 + base }
    hash += other.hash
    day += other.day
    ymd += other.ymd
    number += other.number
    phonetic += other.phonetic
    nickname += other.nickname
  }
}

/// A column of a `RecordSet`: the prepared values of one field, immutable and shared, so reading a pair
/// copies nothing.
public final class Column: Sendable {
  public let scalars: [UInt32]
  public let offsets: [Int32]
  public let hash: [UInt64]
  public let day: [Int32]
  public let ymd: [Int32]
  public let number: [Double]
  public let phonetic: [UInt64]
  public let nickname: [UInt64]

  init(_ b: FieldColumn) {
    scalars = b.scalars
    offsets = b.offsets
    hash = b.hash
    day = b.day
    ymd = b.ymd
    number = b.number
    phonetic = b.phonetic
    nickname = b.nickname
  }

  public var count: Int { hash.count }

  public func isNull(_ i: Int) -> Bool { hash[i] == 0 }

  public func text(_ i: Int) -> String {
    var s = String.UnicodeScalarView()
    for v in scalars[Int(offsets[i])..<Int(offsets[i + 1])] {
      if let u = Unicode.Scalar(v) { s.append(u) }
    }
    return String(s)
  }

  @inline(__always)
  func withText<R>(_ i: Int, _ j: Int, _ body: (UnsafeBufferPointer<UInt32>, UnsafeBufferPointer<UInt32>) -> R) -> R {
    scalars.withUnsafeBufferPointer { all in
      let a = UnsafeBufferPointer(rebasing: all[Int(offsets[i])..<Int(offsets[i + 1])])
      let b = UnsafeBufferPointer(rebasing: all[Int(offsets[j])..<Int(offsets[j + 1])])
      return body(a, b)
    }
  }
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
      var counts: [UInt64: Int32] = [:]
      var total = 0
      for h in column.hash where h != 0 {
        counts[h, default: 0] += 1
        total += 1
      }
      // Frequencies from a handful of values say nothing: below `minimumTermFrequencyValues` the exact
      // level keeps its u.
      guard total >= RecordSet.minimumTermFrequencyValues else {
        tfAdjust[c] = nil
        continue
      }
      let u = comparison.u[level]
      tfAdjust[c] = column.hash.map { h in
        guard h != 0, let n = counts[h] else { return 0 }
        return RecordSet.termFrequencyAdjustment(u: u, count: n, total: total)
      }
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
