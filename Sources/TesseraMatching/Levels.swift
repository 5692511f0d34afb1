import TesseraCompiler

/// One comparison level in the form the hot loop tests: no strings, nothing to retain.
enum LevelTest: Sendable {
  case exact
  case jaroWinkler(Double)
  case jaro(Double)
  case tokenSet(Double)
  case levenshtein(Int)
  case damerauLevenshtein(Int)
  case withinDays(Double)
  case withinMonths(Double)
  case withinYears(Double)
  case withinNumber(Double)
  case transposedDayMonth
  case soundex
  case nickname
  case swapped
  /// The same value seen within this many seconds by both records (`dt`, see `LevelKernel.level`).
  case seenWithin(Int64)

  init(_ level: ComparisonLevel) {
    switch level {
    case .exact: self = .exact
    case .jaroWinkler(let t): self = .jaroWinkler(t)
    case .jaro(let t): self = .jaro(t)
    case .tokenSet(let t): self = .tokenSet(t)
    case .levenshtein(let n): self = .levenshtein(n)
    case .damerauLevenshtein(let n): self = .damerauLevenshtein(n)
    case .within(let n, .some(.days)): self = .withinDays(n)
    case .within(let n, .some(.months)): self = .withinMonths(n)
    case .within(let n, .some(.years)): self = .withinYears((n * 365.25).rounded(.down))
    case .within(let n, .none): self = .withinNumber(n)
    // Minutes and hours measure sightings (the compiler turns them into `seenWithin` on device signals).
    case .within(let n, .some(let unit)): self = .seenWithin(Int64((n * unit.seconds).rounded(.down)))
    case .transposedDayMonth: self = .transposedDayMonth
    case .soundex: self = .soundex
    case .nickname: self = .nickname
    case .swappedWith: self = .swapped
    case .seenWithin(let n, let unit): self = .seenWithin(Int64((n * unit.seconds).rounded(.down)))
    }
  }

  /// Whether two equal values always reach this level (whatever the value).
  var acceptsEqualValues: Bool {
    switch self {
    case .exact, .jaroWinkler, .jaro, .tokenSet, .levenshtein, .damerauLevenshtein, .nickname: return true
    case .withinDays, .withinMonths, .withinYears, .withinNumber, .transposedDayMonth, .soundex, .swapped,
      .seenWithin:
      return false
    }
  }
}

/// The level tests of one comparison, immutable and shared, so scoring a pair copies nothing.
///
/// Levels are tested on value codes (`Column.codes`): equal codes are equal folded values, so exact agreement
/// costs one integer comparison, and so does every level that equal values always reach. Different values go
/// through the tests in order; each similarity or distance is computed at most once per pair, and not at all
/// when the lengths and character sets of the two values (`Comparators.commonUpperBound`) show that no level
/// still to be tested can accept it.
public final class LevelKernel: Sendable {
  let tests: [LevelTest]
  /// The columns compared (several for a comparison `of` several traits).
  let columns: [Int]
  /// The column a `swapped_with` level reads, -1 without one.
  let swap: Int
  /// The largest edit count any edit-distance level accepts.
  let cap: Int
  /// The level two equal values reach, -1 when that depends on the value (a date that does not parse, say).
  let equalLevel: Int
  /// Whether the level of two values depends on nothing but the two values (not on another column's), so it
  /// may be remembered per pair of value codes.
  let dependsOnValuesOnly: Bool
  /// Whether some level computes a similarity or distance of the texts (the costly ones, worth remembering).
  let comparesTexts: Bool

  init(_ c: MatchModel.Comparison) {
    tests = c.levels.map(LevelTest.init)
    columns = c.columns
    swap = c.swapIndex ?? -1
    cap = c.editCap
    var equal = tests.count
    for (k, t) in tests.enumerated() {
      if t.acceptsEqualValues {
        equal = k
        break
      }
      // A conditional level before any that takes equal values: the value decides.
      equal = -1
      break
    }
    equalLevel = equal
    dependsOnValuesOnly =
      columns.count == 1 && swap < 0 && !tests.contains { if case .seenWithin = $0 { true } else { false } }
    comparesTexts = tests.contains {
      switch $0 {
      case .jaroWinkler, .jaro, .tokenSet, .levenshtein, .damerauLevenshtein: return true
      default: return false
      }
    }
  }

  /// The level records `i` and `j` reach (see `MatchModel.level`).
  @inline(__always)
  func level(_ records: RecordSet, _ i: Int, _ j: Int) -> Int {
    if columns.count == 1 {
      let col = records.columns[columns[0]]
      let s = swap < 0 ? nil : records.columns[swap]
      return level(
        col, col.codes[i], col.codes[j], swap: s, s.map { $0.codes[i] } ?? 0, s.map { $0.codes[j] } ?? 0,
        dt: LevelKernel.apart(records.seen[columns[0]], i, j))
    }
    var best = -1
    for f in columns {
      let col = records.columns[f]
      let l = level(col, col.codes[i], col.codes[j], swap: nil, 0, 0, dt: LevelKernel.apart(records.seen[f], i, j))
      if l >= 0 && (best < 0 || l < best) { best = l }
      if best == 0 { break }
    }
    return best
  }

  /// The level of values `a` and `b` (codes of `col`, the left record's first); `sa` and `sb` are the
  /// records' codes in the `swap` column. -1 when a value is missing.
  /// How far apart two records' sightings are, in seconds (`Int64.max` when either is unknown).
  @inline(__always)
  static func apart(_ seen: [Int64], _ i: Int, _ j: Int) -> Int64 {
    seen.isEmpty ? .max : apart(seen[i], seen[j])
  }

  /// How far apart two times are, in seconds (`Int64.max` when either is unknown, `Int64.min`).
  @inline(__always)
  static func apart(_ a: Int64, _ b: Int64) -> Int64 {
    guard a != .min, b != .min else { return .max }
    let d = a.subtractingReportingOverflow(b)
    return d.overflow || d.partialValue == .min ? .max : abs(d.partialValue)
  }

  @inline(__always)
  func level(
    _ col: Column, _ a: UInt32, _ b: UInt32, swap: Column?, _ sa: UInt32, _ sb: UInt32, dt: Int64 = .max
  ) -> Int {
    if a == 0 || b == 0 { return -1 }
    if a == b && equalLevel >= 0 { return equalLevel }
    let (x, y) = (Int(a), Int(b))
    let (setA, setB) = (col.characters[x], col.characters[y])
    return tests.withUnsafeBufferPointer { tests in
      if col.ascii {
        return col.bytes.withUnsafeBufferPointer {
          let (ta, tb) = (col.text(of: x, in: $0), col.text(of: y, in: $0))
          return LevelKernel.level(tests, cap: cap, col, x, y, ta, tb, setA, setB, swap: swap, sa, sb, dt: dt)
        }
      }
      return col.scalars.withUnsafeBufferPointer {
        let (ta, tb) = (col.text(of: x, in: $0), col.text(of: y, in: $0))
        return LevelKernel.level(tests, cap: cap, col, x, y, ta, tb, setA, setB, swap: swap, sa, sb, dt: dt)
      }
    }
  }

  /// The tests in order on two different values `a` and `b` of a column: their texts `ta` and `tb` (bytes
  /// or scalars) and character sets (`Comparators.characterSet`), and what else the tests read of them in
  /// `values`; `sa` and `sb` are the records' codes in the `swap` column. Reads nothing but its arguments,
  /// so the compare path can run it on pointers (`ColumnPointers`) with no reference counting per pair.
  /// `dt`: how far apart the two records were seen with their values, in seconds (`Int64.max`: unknown,
  /// as on the batch path, where `within N minutes` levels are never reached).
  @inline(__always)
  static func level<T: FixedWidthInteger, V: LevelValues>(
    _ tests: UnsafeBufferPointer<LevelTest>, cap: Int, _ values: V, _ a: Int, _ b: Int,
    _ ta: UnsafeBufferPointer<T>, _ tb: UnsafeBufferPointer<T>, _ setA: UInt64, _ setB: UInt64,
    swap: V?, _ sa: UInt32, _ sb: UInt32, dt: Int64 = .max
  ) -> Int {
    let equal = a == b
    var jw = -1.0
    var jaro = -1.0
    var tokens = -1.0
    var lev = -1
    var dl = -1
    // Upper bounds from the character sets, computed when first needed.
    var common = -1
    var jwBound = -1.0
    var jaroBound = -1.0
    func commonBound() -> Int {
      if common < 0 { common = Comparators.commonUpperBound(setA, ta.count, setB, tb.count) }
      return common
    }
    // A margin well below the smallest difference of two Jaro–Winkler values of short texts, so that
    // rounding in the bound can never skip a level the similarity reaches.
    let margin = 1e-9
    for k in tests.indices {
      switch tests[k] {
      case .exact:
        if equal { return k }
      case .jaroWinkler(let t):
        if equal { return k }
        if jw < 0 {
          if jwBound < 0 {
            jwBound = Comparators.jaroWinklerUpperBound(
              common: commonBound(), ta.count, tb.count, prefix: Comparators.commonPrefix(ta, tb, limit: 4))
          }
          if jwBound + margin < t { continue }
          jw = Comparators.jaroWinkler(ta, tb)
        }
        if jw >= t { return k }
      case .jaro(let t):
        if equal { return k }
        if jaro < 0 {
          if jaroBound < 0 {
            jaroBound = Comparators.jaroWinklerUpperBound(common: commonBound(), ta.count, tb.count, prefix: 0)
          }
          if jaroBound + margin < t { continue }
          jaro = Comparators.jaro(ta, tb)
        }
        if jaro >= t { return k }
      case .tokenSet(let t):
        if equal { return k }
        if tokens < 0 { tokens = Comparators.tokenSetSimilarity(ta, tb) }
        if tokens >= t { return k }
      case .levenshtein(let n):
        if equal { return k }
        if lev < 0 {
          // Every character of the longer text that pairs with none of the other's costs an edit.
          lev =
            max(ta.count, tb.count) - commonBound() > cap
            ? cap + 1 : Comparators.levenshtein(ta, tb, cap: cap)
        }
        if lev <= n { return k }
      case .damerauLevenshtein(let n):
        if equal { return k }
        if dl < 0 {
          dl =
            max(ta.count, tb.count) - commonBound() > cap
            ? cap + 1 : Comparators.damerauLevenshtein(ta, tb, cap: cap)
        }
        if dl <= n { return k }
      case .withinDays(let n), .withinYears(let n):
        let x = values.day(of: a)
        let y = values.day(of: b)
        if x != .min, y != .min, Double(abs(x - y)) <= n { return k }
      case .withinMonths(let n):
        let x = values.ymd(of: a)
        let y = values.ymd(of: b)
        guard x != .min, y != .min else { continue }
        let mx = (x / 10000) * 12 + (x / 100) % 100
        let my = (y / 10000) * 12 + (y / 100) % 100
        if Double(abs(mx - my)) <= n { return k }
      case .withinNumber(let n):
        let x = values.number(of: a)
        let y = values.number(of: b)
        if !x.isNaN, !y.isNaN, abs(x - y) <= n { return k }
      case .transposedDayMonth:
        let x = values.ymd(of: a)
        let y = values.ymd(of: b)
        guard x != .min, y != .min, x / 10000 == y / 10000 else { continue }
        let (mx, dx) = ((x / 100) % 100, x % 100)
        let (my, dy) = ((y / 100) % 100, y % 100)
        if mx == dy && dx == my && mx != dx { return k }
      case .soundex:
        let x = values.phonetic(of: a)
        if x != 0 && x == values.phonetic(of: b) { return k }
      case .nickname:
        if equal || Nicknames.share(values.nickname(of: a), values.nickname(of: b)) { return k }
      case .seenWithin(let n):
        if equal && dt <= n { return k }
      case .swapped:
        // This trait of each record equals the other trait of the other record.
        guard let swap, sa != 0, sb != 0 else { continue }
        if values.hash(of: a) == swap.hash(of: Int(sb)) && values.hash(of: b) == swap.hash(of: Int(sa)) {
          return k
        }
      }
    }
    return tests.count
  }
}

/// What the level tests read of a column's values besides their texts, by value code: `Column` gives it from
/// its arrays, `ColumnPointers` from pointers to them.
protocol LevelValues {
  func day(of v: Int) -> Int32
  func ymd(of v: Int) -> Int32
  func number(of v: Int) -> Double
  func phonetic(of v: Int) -> UInt64
  func nickname(of v: Int) -> UInt64
  func hash(of v: Int) -> UInt64
}

extension Column: LevelValues {
  func day(of v: Int) -> Int32 { day[v] }
  func ymd(of v: Int) -> Int32 { ymd[v] }
  func number(of v: Int) -> Double { number[v] }
  func phonetic(of v: Int) -> UInt64 { phonetic[v] }
  func nickname(of v: Int) -> UInt64 { nickname[v] }
  func hash(of v: Int) -> UInt64 { valueHash[v] }
}

extension MatchModel {
  /// The first level records `i` and `j` reach on comparison `c`, `levels.count` for `else`, -1 when a value
  /// is missing on either side (the comparison then contributes nothing). A comparison of several traits
  /// takes the best level any of them reaches, skipping traits missing on either side. Similarities are
  /// computed once per pair however many levels test them.
  @inline(__always)
  public func level(_ c: Int, _ records: RecordSet, _ i: Int, _ j: Int) -> Int {
    kernels[c].level(records, i, j)
  }

  /// The pattern code of a pair (see `radices`) and its match weight including term-frequency adjustments.
  public func compare(_ records: RecordSet, _ i: Int, _ j: Int) -> (pattern: UInt64, weight: Double) {
    var pattern: UInt64 = 0
    var scale: UInt64 = 1
    var w = priorWeight
    for (c, comparison) in comparisons.enumerated() {
      let l = level(c, records, i, j)
      pattern += scale * UInt64(l + 1)
      scale *= UInt64(comparison.levelCount + 1)
      if l >= 0 {
        w += comparison.weight(ofLevel: l, sharedBy: records.sharedBy(c, i, j))
        if l == comparison.tfLevel, let tf = records.tfAdjust[c] { w += Double(tf[i]) }
      }
    }
    return (pattern, w)
  }

  /// The levels of a pair, one per comparison (-1: a value is missing).
  public func levels(_ records: RecordSet, _ i: Int, _ j: Int) -> [Int] {
    comparisons.indices.map { level($0, records, i, j) }
  }
}

extension MatchModel.Comparison {
  /// Of a level `within N minutes|hours` (measured between sightings), N in seconds; nil for other levels.
  public func sightingWindow(ofLevel l: Int) -> Int64? {
    guard l < levels.count, case .seenWithin(let n) = LevelTest(levels[l]) else { return nil }
    return n
  }

  /// The largest window of this comparison's sighting levels, nil when it has none.
  public var sightingWindow: Int64? { levels.indices.compactMap(sightingWindow(ofLevel:)).max() }
}

extension MatchModel {
  /// The highest weight any pair can reach when comparison `c` weighs its agreements as shared by
  /// `sharing[c]` profiles (`Comparison.weight(ofLevel:sharedBy:)`) and, unless `sightingLevels`, no
  /// `within N minutes|hours` level agrees: the prior and each comparison's best remaining level (a missing value
  /// adds nothing). Nil when a term-frequency level could raise a weight.
  public func weightBound(sharing: [Int: Int32] = [:], sightingLevels: Bool = true) -> Double? {
    guard !comparisons.contains(where: { $0.tfLevel != nil }) else { return nil }
    return comparisons.indices.reduce(priorWeight) { sum, c in
      let comparison = comparisons[c]
      let levels = (0..<comparison.levelCount).filter {
        sightingLevels || comparison.sightingWindow(ofLevel: $0) == nil
      }
      return sum + levels.map { comparison.weight(ofLevel: $0, sharedBy: sharing[c]) }.reduce(0, max)
    }
  }

  /// The highest weight a pair can reach when no sighting level of any comparison agrees (`weightBound`).
  public var weightBoundWithoutSightings: Double? { weightBound(sightingLevels: false) }
}
