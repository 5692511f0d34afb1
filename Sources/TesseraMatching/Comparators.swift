/// String, number and date comparators for Fellegi–Sunter comparison levels.
///
/// Strings are compared as buffers of code points: Unicode scalar values (`UnsafeBufferPointer<UInt32>`), or
/// bytes when every value of a column is ASCII (`UnsafeBufferPointer<UInt8>`; the results are the same as for
/// the scalars of the same text). The matcher keeps the distinct values of a column in one buffer with offsets,
/// and hands slices of it to these functions. The buffer
/// versions do not touch the heap for ordinary names: their working memory comes from
/// `withUnsafeTemporaryAllocation` (the stack, unless a string is very long). The `String` overloads convert
/// with `unicodeScalars` and call the buffer versions; they are meant for tests and one-off use.
///
/// No normalization happens here: case, accents and white space are compared as given (`"Zoë"` and `"Zoe"`
/// differ by one scalar when `ë` is precomposed).
public enum Comparators {
  public typealias Scalars = UnsafeBufferPointer<UInt32>
  /// A text as a buffer of code points: Unicode scalars, or bytes of ASCII text.
  public typealias Text<T> = UnsafeBufferPointer<T>

  // MARK: - Jaro and Jaro–Winkler

  /// The Jaro similarity in [0, 1].
  ///
  /// Characters match when equal and at most `max(|a|, |b|) / 2 - 1` positions apart (each character of `b`
  /// matches at most once, first come first served scanning `a`). With `m` matches and `t` the number of
  /// matched characters out of order divided by two (rounded down, as in Winkler's `strcmp95`),
  /// `jaro = (m/|a| + m/|b| + (m - t)/m) / 3`; 0 when `m` is 0. Two empty strings give 1, one empty string 0.
  public static func jaro<T: FixedWidthInteger>(_ a: Text<T>, _ b: Text<T>) -> Double {
    let la = a.count
    let lb = b.count
    if la == 0 && lb == 0 { return 1 }
    if la == 0 || lb == 0 { return 0 }
    let window = max(0, max(la, lb) / 2 - 1)
    if la <= 64 && lb <= 64 { return jaroShort(a, b, window: window) }
    let wordsA = (la + 63) >> 6
    let wordsB = (lb + 63) >> 6
    return withUnsafeTemporaryAllocation(of: UInt64.self, capacity: wordsA + wordsB) { bits in
      bits.initialize(repeating: 0)
      guard let base = bits.baseAddress else { return 0 }
      let flagsA = base
      let flagsB = base + wordsA
      func isSet(_ flags: UnsafeMutablePointer<UInt64>, _ i: Int) -> Bool {
        flags[i &>> 6] & (1 &<< UInt64(truncatingIfNeeded: i & 63)) != 0
      }
      func set(_ flags: UnsafeMutablePointer<UInt64>, _ i: Int) {
        flags[i &>> 6] |= 1 &<< UInt64(truncatingIfNeeded: i & 63)
      }
      var matches = 0
      for i in 0..<la {
        let lo = max(0, i - window)
        let hi = min(lb - 1, i + window)
        if lo > hi { continue }
        let c = a[i]
        for j in lo...hi where !isSet(flagsB, j) && b[j] == c {
          set(flagsB, j)
          set(flagsA, i)
          matches += 1
          break
        }
      }
      if matches == 0 { return 0 }
      var outOfOrder = 0
      var j = 0
      for i in 0..<la where isSet(flagsA, i) {
        while !isSet(flagsB, j) { j += 1 }
        if a[i] != b[j] { outOfOrder += 1 }
        j += 1
      }
      return jaroFormula(matches: matches, outOfOrder: outOfOrder, la, lb)
    }
  }

  /// Jaro of strings of at most 64 scalars: the matched flags fit in one word each.
  @inline(__always)
  static func jaroShort<T: FixedWidthInteger>(_ a: Text<T>, _ b: Text<T>, window: Int) -> Double {
    let la = a.count
    let lb = b.count
    var flagsA: UInt64 = 0
    var flagsB: UInt64 = 0
    var matches = 0
    for i in 0..<la {
      let lo = max(0, i - window)
      let hi = min(lb - 1, i + window)
      if lo > hi { continue }
      let c = a[i]
      var j = lo
      while j <= hi {
        let bit: UInt64 = 1 &<< UInt64(truncatingIfNeeded: j)
        if b[j] == c && flagsB & bit == 0 {
          flagsB |= bit
          flagsA |= 1 &<< UInt64(truncatingIfNeeded: i)
          matches &+= 1
          break
        }
        j &+= 1
      }
    }
    if matches == 0 { return 0 }
    // Walk the matched characters of both sides in order.
    var outOfOrder = 0
    while flagsA != 0 {
      if a[flagsA.trailingZeroBitCount] != b[flagsB.trailingZeroBitCount] { outOfOrder += 1 }
      flagsA &= flagsA &- 1
      flagsB &= flagsB &- 1
    }
    return jaroFormula(matches: matches, outOfOrder: outOfOrder, la, lb)
  }

  @inline(__always)
  static func jaroFormula(matches: Int, outOfOrder: Int, _ la: Int, _ lb: Int) -> Double {
    let m = Double(matches)
    let t = Double(outOfOrder / 2)
    return (m / Double(la) + m / Double(lb) + (m - t) / m) / 3
  }

  /// The Jaro–Winkler similarity in [0, 1]: `jaro + ℓ · prefixScale · (1 - jaro)`, where `ℓ` is the length of
  /// the common prefix, at most 4. The boost applies only when `jaro > boostThreshold` (Winkler used 0.7; the
  /// default 0 always boosts). `prefixScale` should not exceed 0.25, or the result can pass 1.
  public static func jaroWinkler<T: FixedWidthInteger>(
    _ a: Text<T>, _ b: Text<T>, prefixScale: Double = 0.1, boostThreshold: Double = 0.0
  ) -> Double {
    let j = jaro(a, b)
    guard j > boostThreshold else { return j }
    let limit = min(4, a.count, b.count)
    var prefix = 0
    while prefix < limit && a[prefix] == b[prefix] { prefix += 1 }
    return j + Double(prefix) * prefixScale * (1 - j)
  }

  // MARK: - Edit distances

  /// The Levenshtein distance (insertions, deletions and substitutions cost 1), or `cap + 1` as soon as it is
  /// known to be more than `cap`. Only the band of width `2·cap + 1` around the diagonal is computed, after the
  /// common prefix and suffix are set aside; the work is `O(cap · min(|a|, |b|))`. `cap` must not be negative.
  public static func levenshtein<T: FixedWidthInteger>(_ a: Text<T>, _ b: Text<T>, cap: Int) -> Int {
    editDistance(a, b, cap: cap, transpositions: false)
  }

  /// The optimal string alignment distance (Damerau–Levenshtein restricted to edits that do not overlap: an
  /// adjacent transposition costs 1, but a substring is edited at most once), or `cap + 1` as soon as it is
  /// known to be more than `cap`. Banded like ``levenshtein(_:_:cap:)``.
  public static func damerauLevenshtein<T: FixedWidthInteger>(_ a: Text<T>, _ b: Text<T>, cap: Int) -> Int {
    editDistance(a, b, cap: cap, transpositions: true)
  }

  static func editDistance<T: FixedWidthInteger>(_ a0: Text<T>, _ b0: Text<T>, cap: Int, transpositions: Bool) -> Int {
    precondition(cap >= 0, "the cap of an edit distance must not be negative")
    // Rows run over the longer string, columns over the shorter one: less working memory.
    var a = a0.count >= b0.count ? a0 : b0
    var b = a0.count >= b0.count ? b0 : a0
    if a.count - b.count > cap { return cap + 1 }
    // A common prefix or suffix never changes the distance (also with transpositions).
    var start = 0
    while start < b.count && a[start] == b[start] { start += 1 }
    var endA = a.count
    var endB = b.count
    while endB > start && a[endA - 1] == b[endB - 1] {
      endA -= 1
      endB -= 1
    }
    a = Text(rebasing: a[start..<endA])
    b = Text(rebasing: b[start..<endB])
    let la = a.count
    let lb = b.count
    if lb == 0 { return la <= cap ? la : cap + 1 }
    if cap == 0 { return 1 }
    if cap == 1 {
      // Both sides now start and end differently: one substitution leaves one scalar on each side, one
      // adjacent transposition two swapped ones (an insertion leaves nothing on the shorter side); anything
      // else takes two edits or more.
      if la == 1 { return 1 }
      if transpositions && la == 2 && lb == 2 && a[0] == b[1] && a[1] == b[0] { return 1 }
      return 2
    }
    // The distance is at most `la`, so a wider band is never needed.
    let k = min(cap, la)
    let inf = k + 1
    let rows = transpositions ? 3 : 2
    let width = lb + 1
    let d = withUnsafeTemporaryAllocation(of: Int.self, capacity: rows * width) { memory -> Int in
      guard let base = memory.baseAddress else { return inf }
      var prev2 = base + (transpositions ? 2 * width : 0)
      var prev = base
      var cur = base + width
      for j in 0...min(lb, k) { prev[j] = j }
      if k + 1 <= lb { prev[k + 1] = inf }
      // The smallest value of the previous row, for the early exit with transpositions, which can skip a row.
      var prevMin = 0
      for i in 1...la {
        let lo = max(1, i - k)
        let hi = min(lb, i + k)
        if lo > hi { return inf }
        cur[lo - 1] = lo == 1 ? min(i, inf) : inf
        var rowMin = cur[lo - 1]
        let ca = a[i - 1]
        for j in lo...hi {
          let cb = b[j - 1]
          var v = prev[j - 1] + (ca == cb ? 0 : 1)
          v = min(v, prev[j] + 1, cur[j - 1] + 1)
          if transpositions && i > 1 && j > 1 && ca == b[j - 2] && a[i - 2] == cb {
            v = min(v, prev2[j - 2] + 1)
          }
          v = min(v, inf)
          cur[j] = v
          rowMin = min(rowMin, v)
        }
        if hi < lb { cur[hi + 1] = inf }
        if transpositions {
          if rowMin > k && prevMin > k { return inf }
          prevMin = rowMin
          (prev2, prev, cur) = (prev, cur, prev2)
        } else {
          if rowMin > k { return inf }
          (prev, cur) = (cur, prev)
        }
      }
      return prev[lb]
    }
    return d > k ? cap + 1 : d
  }

  // MARK: - Bounds

  /// Which characters a text holds, as 64 bits: one per letter a–z and digit, the rest hashed into 28 bits.
  /// With the lengths it bounds what two texts can have in common (`commonUpperBound`) without reading them.
  public static func characterSet<T: FixedWidthInteger>(_ s: Text<T>) -> UInt64 {
    var set: UInt64 = 0
    for c in s {
      let v = UInt64(truncatingIfNeeded: c)
      let bit: UInt64
      switch v {
      case 0x61...0x7A: bit = v - 0x61
      case 0x30...0x39: bit = 26 + v - 0x30
      default: bit = 36 + v % 28
      }
      set |= 1 << bit
    }
    return set
  }

  /// At least as many characters as two texts can pair up, each with an equal one of the other (counted with
  /// repeats): one per character class of `characterSet` both hold, plus the repeats of the side that has
  /// fewer. Characters of a class only one side holds pair with nothing.
  @inline(__always)
  public static func commonUpperBound(_ a: UInt64, _ la: Int, _ b: UInt64, _ lb: Int) -> Int {
    (a & b).nonzeroBitCount + min(la - a.nonzeroBitCount, lb - b.nonzeroBitCount)
  }

  /// At least the Jaro–Winkler similarity (default scale and boost) of two non-empty texts of lengths `la` and
  /// `lb` with at most `common` characters in common (`commonUpperBound`) and a common prefix of `prefix`
  /// characters (at most 4 count): Jaro with every common character matched and none out of order.
  @inline(__always)
  public static func jaroWinklerUpperBound(common: Int, _ la: Int, _ lb: Int, prefix: Int) -> Double {
    let m = Double(min(common, la, lb))
    guard m > 0 else { return 0 }
    let j = (m / Double(la) + m / Double(lb) + 1) / 3
    return j + Double(min(prefix, 4)) * 0.1 * (1 - j)
  }

  /// The common prefix of two texts, up to `limit` characters.
  @inline(__always)
  static func commonPrefix<T: FixedWidthInteger>(_ a: Text<T>, _ b: Text<T>, limit: Int) -> Int {
    let n = min(limit, a.count, b.count)
    var p = 0
    while p < n && a[p] == b[p] { p += 1 }
    return p
  }

  // MARK: - Token sets

  /// Similarity of multi-word values whose words may come in another order ("maria del carmen" and
  /// "carmen maria del"); like fuzzywuzzy's `token_set_ratio`, with Jaro–Winkler in place of its ratio.
  ///
  /// Each side is split into tokens on spaces, hyphens and commas (empty tokens dropped; the text is compared
  /// as given, so lowercase it first). Duplicate tokens count once. With `I` the tokens on both sides, `A` and
  /// `B` those only on one side, each list sorted by scalar values and joined with single spaces:
  /// - when both sides have no tokens the result is 1; when one side has none, 0;
  /// - when the tokens of one side are a subset of the other's (`A` or `B` empty), 1;
  /// - otherwise the maximum of `JW(I, I+A)`, `JW(I, I+B)` and `JW(I+A, I+B)`, where `I+A` is `I`, a space and
  ///   `A` (just `A` when `I` is empty; `JW` of an empty `I` with anything is then 0).
  ///
  /// `JW` is ``jaroWinkler(_:_:prefixScale:boostThreshold:)`` with its defaults.
  public static func tokenSetSimilarity<T: FixedWidthInteger>(_ a: Text<T>, _ b: Text<T>) -> Double {
    // Token bounds: at most (n + 1) / 2 tokens of a string of n scalars, two Ints each (and never an empty
    // allocation, whose base address could be nil).
    let capA = (a.count + 1) / 2
    let capB = (b.count + 1) / 2
    return withUnsafeTemporaryAllocation(of: Int.self, capacity: 2 * (capA + capB) + 2) { bounds -> Double in
      guard let base = bounds.baseAddress else { return 0 }
      let tokensA = Tokens(base: base, count: tokenize(a, into: base))
      let tokensB = Tokens(base: base + 2 * capA, count: tokenize(b, into: base + 2 * capA))
      let countA = sortUnique(tokensA, in: a)
      let countB = sortUnique(tokensB, in: b)
      if countA == 0 && countB == 0 { return 1 }
      if countA == 0 || countB == 0 { return 0 }
      // Three joined strings, each no longer than both inputs together.
      let room = a.count + b.count + 1
      return withUnsafeTemporaryAllocation(of: T.self, capacity: 3 * room) { text -> Double in
        guard let t = text.baseAddress else { return 0 }
        var inter = 0
        let sI = t
        let sA = t + room
        let sB = t + 2 * room
        var i = 0
        var j = 0
        var onlyA = 0
        var onlyB = 0
        // Intersection first: tokens of I precede those of A and B in the joined strings.
        while i < countA && j < countB {
          let order = compare(a, tokensA, i, b, tokensB, j)
          if order == 0 {
            appendToken(i, of: tokensA, in: a, to: sI, &inter)
            i += 1
            j += 1
          } else if order < 0 {
            i += 1
            onlyA += 1
          } else {
            j += 1
            onlyB += 1
          }
        }
        onlyA += countA - i
        onlyB += countB - j
        if onlyA == 0 || onlyB == 0 { return 1 }
        for p in 0..<inter {
          sA[p] = sI[p]
          sB[p] = sI[p]
        }
        var withA = inter
        var withB = inter
        i = 0
        j = 0
        while i < countA || j < countB {
          let order = i == countA ? 1 : j == countB ? -1 : compare(a, tokensA, i, b, tokensB, j)
          if order == 0 {
            i += 1
            j += 1
          } else if order < 0 {
            appendToken(i, of: tokensA, in: a, to: sA, &withA)
            i += 1
          } else {
            appendToken(j, of: tokensB, in: b, to: sB, &withB)
            j += 1
          }
        }
        let joinedI = Text(start: sI, count: inter)
        let joinedA = Text(start: sA, count: withA)
        let joinedB = Text(start: sB, count: withB)
        return max(jaroWinkler(joinedI, joinedA), jaroWinkler(joinedI, joinedB), jaroWinkler(joinedA, joinedB))
      }
    }
  }

  /// Token bounds stored as pairs (start, end) in a caller's buffer.
  struct Tokens {
    let base: UnsafeMutablePointer<Int>
    let count: Int
    func start(_ i: Int) -> Int { base[2 * i] }
    func end(_ i: Int) -> Int { base[2 * i + 1] }
    func swapAt(_ i: Int, _ j: Int) {
      let (s, e) = (base[2 * i], base[2 * i + 1])
      base[2 * i] = base[2 * j]
      base[2 * i + 1] = base[2 * j + 1]
      base[2 * j] = s
      base[2 * j + 1] = e
    }
  }

  /// Appends token `i` of `s` to `dest[0..<n]`, after a space unless `n` is 0.
  static func appendToken<T: FixedWidthInteger>(
    _ i: Int, of tokens: Tokens, in s: Text<T>, to dest: UnsafeMutablePointer<T>, _ n: inout Int
  ) {
    if n > 0 {
      dest[n] = 0x20
      n += 1
    }
    for p in tokens.start(i)..<tokens.end(i) {
      dest[n] = s[p]
      n += 1
    }
  }

  static func isSeparator<T: FixedWidthInteger>(_ c: T) -> Bool { c == 0x20 || c == 0x2D || c == 0x2C }

  /// Writes the (start, end) of each token of `s` to `out`; returns the number of tokens.
  static func tokenize<T: FixedWidthInteger>(_ s: Text<T>, into out: UnsafeMutablePointer<Int>) -> Int {
    var n = 0
    var p = 0
    while p < s.count {
      while p < s.count && isSeparator(s[p]) { p += 1 }
      if p == s.count { break }
      let start = p
      while p < s.count && !isSeparator(s[p]) { p += 1 }
      out[2 * n] = start
      out[2 * n + 1] = p
      n += 1
    }
    return n
  }

  /// Lexicographic order of two tokens by scalar value: negative, zero or positive.
  static func compare<T: FixedWidthInteger>(_ s: Text<T>, _ ts: Tokens, _ i: Int, _ u: Text<T>, _ tu: Tokens, _ j: Int)
    -> Int
  {
    var p = ts.start(i)
    var q = tu.start(j)
    let endP = ts.end(i)
    let endQ = tu.end(j)
    while p < endP && q < endQ {
      if s[p] != u[q] { return s[p] < u[q] ? -1 : 1 }
      p += 1
      q += 1
    }
    return (endP - p) - (endQ - q)
  }

  /// Sorts the tokens (insertion sort: names have few words) and drops duplicates; returns the new count.
  static func sortUnique<T: FixedWidthInteger>(_ tokens: Tokens, in s: Text<T>) -> Int {
    if tokens.count < 2 { return tokens.count }
    for i in 1..<tokens.count {
      var j = i
      while j > 0 && compare(s, tokens, j - 1, s, tokens, j) > 0 {
        tokens.swapAt(j - 1, j)
        j -= 1
      }
    }
    var kept = 1
    for i in 1..<tokens.count where compare(s, tokens, kept - 1, s, tokens, i) != 0 {
      if kept != i { tokens.swapAt(kept, i) }
      kept += 1
    }
    return kept
  }

  // MARK: - Numbers and dates

  /// Whether `|a - b| <= tolerance`.
  public static func withinNumber(_ a: Double, _ b: Double, tolerance: Double) -> Bool {
    abs(a - b) <= tolerance
  }

  /// Whether the dates are at most `days` days apart.
  public static func withinDays(_ a: SimpleDate, _ b: SimpleDate, days: Double) -> Bool {
    Double(abs(Int(a.dayNumber) - Int(b.dayNumber))) <= days
  }

  /// Whether the calendar months of the dates (the day ignored) are at most `months` apart:
  /// `|(y₁·12 + m₁) - (y₂·12 + m₂)| <= months`.
  public static func withinMonths(_ a: SimpleDate, _ b: SimpleDate, months: Double) -> Bool {
    let ma = Int(a.year) * 12 + Int(a.month)
    let mb = Int(b.year) * 12 + Int(b.month)
    return Double(abs(ma - mb)) <= months
  }

  /// Whether the dates are at most `⌊years · 365.25⌋` days apart.
  public static func withinYears(_ a: SimpleDate, _ b: SimpleDate, years: Double) -> Bool {
    Double(abs(Int(a.dayNumber) - Int(b.dayNumber))) <= (years * 365.25).rounded(.down)
  }

  /// Whether `b` is `a` with day and month swapped (a common keying error): same year, `a.month == b.day`,
  /// `a.day == b.month`, and `a.month != a.day` (otherwise the dates are simply equal).
  public static func transposedDayMonth(_ a: SimpleDate, _ b: SimpleDate) -> Bool {
    a.year == b.year && a.month == b.day && a.day == b.month && a.month != a.day
  }

  // MARK: - String conveniences

  /// `jaro` of the strings' Unicode scalars.
  public static func jaro(_ a: String, _ b: String) -> Double {
    withScalars(a, b) { jaro($0, $1) }
  }

  /// `jaroWinkler` of the strings' Unicode scalars.
  public static func jaroWinkler(
    _ a: String, _ b: String, prefixScale: Double = 0.1, boostThreshold: Double = 0.0
  ) -> Double {
    withScalars(a, b) { jaroWinkler($0, $1, prefixScale: prefixScale, boostThreshold: boostThreshold) }
  }

  /// `levenshtein` of the strings' Unicode scalars.
  public static func levenshtein(_ a: String, _ b: String, cap: Int) -> Int {
    withScalars(a, b) { levenshtein($0, $1, cap: cap) }
  }

  /// `damerauLevenshtein` of the strings' Unicode scalars.
  public static func damerauLevenshtein(_ a: String, _ b: String, cap: Int) -> Int {
    withScalars(a, b) { damerauLevenshtein($0, $1, cap: cap) }
  }

  /// `tokenSetSimilarity` of the strings' Unicode scalars.
  public static func tokenSetSimilarity(_ a: String, _ b: String) -> Double {
    withScalars(a, b) { tokenSetSimilarity($0, $1) }
  }

  static func withScalars<R>(_ a: String, _ b: String, _ body: (Scalars, Scalars) -> R) -> R {
    let sa = Array(a.unicodeScalars.map(\.value))
    let sb = Array(b.unicodeScalars.map(\.value))
    return sa.withUnsafeBufferPointer { pa in sb.withUnsafeBufferPointer { pb in body(pa, pb) } }
  }
}

/// A calendar date without time or zone (proleptic Gregorian), as compared by the date levels.
public struct SimpleDate: Sendable, Hashable, Comparable, CustomStringConvertible {
  public let year: Int32
  public let month: Int32
  public let day: Int32

  /// Nil unless the month is 1…12 and the day exists in that month (29 February only in leap years);
  /// the year must be 0…9999.
  public init?(year: Int32, month: Int32, day: Int32) {
    guard (0...9999).contains(year), (1...12).contains(month), day >= 1,
      day <= SimpleDate.daysInMonth(year: year, month: month)
    else { return nil }
    self.year = year
    self.month = month
    self.day = day
  }

  /// Reads `YYYY-MM-DD`, `YYYY/MM/DD` or `YYYYMMDD` (ASCII digits, nothing before or after); nil when the
  /// text has another shape or the date does not exist.
  public init?(parsing text: some StringProtocol) {
    var y: Int32 = 0
    var m: Int32 = 0
    var d: Int32 = 0
    var digits = 0
    var separator: UInt8?
    var position = 0
    for byte in text.utf8 {
      defer { position += 1 }
      switch byte {
      case UInt8(ascii: "0")...UInt8(ascii: "9"):
        let v = Int32(byte - UInt8(ascii: "0"))
        switch digits {
        case 0..<4: y = y * 10 + v
        case 4..<6: m = m * 10 + v
        case 6..<8: d = d * 10 + v
        default: return nil
        }
        digits += 1
      case UInt8(ascii: "-"), UInt8(ascii: "/"):
        // Separators only after the year and after the month, and the same both times.
        guard position == 4 || position == 7 else { return nil }
        if let separator, separator != byte { return nil }
        separator = byte
      default:
        return nil
      }
    }
    guard digits == 8, position == (separator == nil ? 8 : 10) else { return nil }
    self.init(year: y, month: m, day: d)
  }

  /// `year·10000 + month·100 + day`, e.g. `20240229`.
  public var packed: Int32 { year * 10000 + month * 100 + day }

  /// The date of a ``packed`` value; nil when it is not a valid date.
  public init?(packed: Int32) {
    guard packed >= 0 else { return nil }
    self.init(year: packed / 10000, month: packed / 100 % 100, day: packed % 100)
  }

  /// Days since 1970-01-01 (negative before).
  public var dayNumber: Int32 {
    // Howard Hinnant's days_from_civil, with years starting in March.
    let y = Int(year) - (month <= 2 ? 1 : 0)
    let era = (y >= 0 ? y : y - 399) / 400
    let yearOfEra = y - era * 400
    let m = Int(month)
    let dayOfYear = (153 * (m > 2 ? m - 3 : m + 9) + 2) / 5 + Int(day) - 1
    let dayOfEra = yearOfEra * 365 + yearOfEra / 4 - yearOfEra / 100 + dayOfYear
    return Int32(era * 146097 + dayOfEra - 719468)
  }

  public static func isLeapYear(_ year: Int32) -> Bool {
    year % 4 == 0 && (year % 100 != 0 || year % 400 == 0)
  }

  public static func daysInMonth(year: Int32, month: Int32) -> Int32 {
    switch month {
    case 2: return isLeapYear(year) ? 29 : 28
    case 4, 6, 9, 11: return 30
    default: return 31
    }
  }

  public static func < (l: SimpleDate, r: SimpleDate) -> Bool { l.packed < r.packed }

  /// `YYYY-MM-DD`.
  public var description: String {
    func pad(_ v: Int32, _ width: Int) -> String {
      let s = String(v)
      return String(repeating: "0", count: max(0, width - s.count)) + s
    }
    return "\(pad(year, 4))-\(pad(month, 2))-\(pad(day, 2))"
  }
}
