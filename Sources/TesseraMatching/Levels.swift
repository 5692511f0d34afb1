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
    case .transposedDayMonth: self = .transposedDayMonth
    case .soundex: self = .soundex
    case .nickname: self = .nickname
    case .swappedWith: self = .swapped
    }
  }
}

/// The level tests of one comparison, immutable and shared, so scoring a pair copies nothing.
public final class LevelKernel: Sendable {
  let tests: [LevelTest]
  /// The columns compared (several for a comparison `of` several traits).
  let columns: [Int]
  /// The column a `swapped_with` level reads, -1 without one.
  let swap: Int
  /// The largest edit count any edit-distance level accepts.
  let cap: Int

  init(_ c: MatchModel.Comparison) {
    tests = c.levels.map(LevelTest.init)
    columns = c.columns
    swap = c.swapIndex ?? -1
    cap = c.editCap
  }

  /// The level records `i` and `j` reach (see `MatchModel.level`).
  @inline(__always)
  func level(_ records: RecordSet, _ i: Int, _ j: Int) -> Int {
    if columns.count == 1 {
      return level(records.columns[columns[0]], i, j, swap: swap < 0 ? nil : records.columns[swap])
    }
    var best = -1
    for f in columns {
      let l = level(records.columns[f], i, j, swap: nil)
      if l >= 0 && (best < 0 || l < best) { best = l }
      if best == 0 { break }
    }
    return best
  }

  @inline(__always)
  func level(_ col: Column, _ i: Int, _ j: Int, swap: Column?) -> Int {
    let hi = col.hash[i]
    let hj = col.hash[j]
    if hi == 0 || hj == 0 { return -1 }
    let equal = hi == hj
    var jw = -1.0
    var jaro = -1.0
    var tokens = -1.0
    var lev = -1
    var dl = -1
    for k in tests.indices {
      switch tests[k] {
      case .exact:
        if equal { return k }
      case .jaroWinkler(let t):
        if equal { return k }
        if jw < 0 { jw = col.withText(i, j) { Comparators.jaroWinkler($0, $1) } }
        if jw >= t { return k }
      case .jaro(let t):
        if equal { return k }
        if jaro < 0 { jaro = col.withText(i, j) { Comparators.jaro($0, $1) } }
        if jaro >= t { return k }
      case .tokenSet(let t):
        if equal { return k }
        if tokens < 0 { tokens = col.withText(i, j) { Comparators.tokenSetSimilarity($0, $1) } }
        if tokens >= t { return k }
      case .levenshtein(let n):
        if equal { return k }
        if lev < 0 { lev = col.withText(i, j) { Comparators.levenshtein($0, $1, cap: cap) } }
        if lev <= n { return k }
      case .damerauLevenshtein(let n):
        if equal { return k }
        if dl < 0 { dl = col.withText(i, j) { Comparators.damerauLevenshtein($0, $1, cap: cap) } }
        if dl <= n { return k }
      case .withinDays(let n), .withinYears(let n):
        let a = col.day[i]
        let b = col.day[j]
        if a != .min, b != .min, Double(abs(a - b)) <= n { return k }
      case .withinMonths(let n):
        let a = col.ymd[i]
        let b = col.ymd[j]
        guard a != .min, b != .min else { continue }
        let ma = (a / 10000) * 12 + (a / 100) % 100
        let mb = (b / 10000) * 12 + (b / 100) % 100
        if Double(abs(ma - mb)) <= n { return k }
      case .withinNumber(let n):
        let a = col.number[i]
        let b = col.number[j]
        if !a.isNaN, !b.isNaN, abs(a - b) <= n { return k }
      case .transposedDayMonth:
        let a = col.ymd[i]
        let b = col.ymd[j]
        guard a != .min, b != .min, a / 10000 == b / 10000 else { continue }
        let (ma, da) = ((a / 100) % 100, a % 100)
        let (mb, db) = ((b / 100) % 100, b % 100)
        if ma == db && da == mb && ma != da { return k }
      case .soundex:
        let a = col.phonetic[i]
        if a != 0 && a == col.phonetic[j] { return k }
      case .nickname:
        if equal || Nicknames.share(col.nickname[i], col.nickname[j]) { return k }
      case .swapped:
        guard let swap else { continue }
        let si = swap.hash[i]
        let sj = swap.hash[j]
        if si != 0 && sj != 0 && hi == sj && hj == si { return k }
      }
    }
    return tests.count
  }
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
        w += comparison.weight(ofLevel: l)
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
