import Foundation
import TesseraModel

/// Which pairs a link run compares.
public enum LinkMode: String, Sendable, CaseIterable {
  /// Every pair, whatever file the records came from.
  case dedupe
  /// Only pairs of records from different files.
  case linkOnly = "link_only"
}

/// Candidate pairs of records, from the blocking rules: records that agree on every key of one rule are
/// compared. The candidates are the union over rules; a pair that an earlier rule already generates is not
/// generated again, so nothing is compared or counted twice.
public struct Blocking: Sendable {
  public let records: RecordSet
  public let mode: LinkMode
  /// Per rule: the record indices with a key, sorted by key, and the runs of equal keys in that order.
  let sorted: [[Int32]]
  let runs: [[Range<Int>]]
  /// Per rule, per record: a code of its key, equal for equal keys (the position of the key's first record
  /// in `sorted`, plus one), 0 without a key. Pairs compare these rather than the keys' 64-bit hashes.
  let keyCodes: [[UInt32]]

  public init(records: RecordSet, mode: LinkMode = .dedupe) {
    self.init(records: records, mode: mode, rules: records.keys.map(Blocking.sortRule))
  }

  init(records: RecordSet, mode: LinkMode, rules: [SortedRule]) {
    self.records = records
    self.mode = mode
    sorted = rules.map(\.sorted)
    runs = rules.map(\.runs)
    keyCodes = rules.map(\.codes)
  }

  /// As `init(records:mode:)`, the rules sorted on all cores.
  public static func build(records: RecordSet, mode: LinkMode = .dedupe) async -> Blocking {
    var rules = [SortedRule?](repeating: nil, count: records.keys.count)
    await withTaskGroup(of: (Int, SortedRule).self) { group in
      for (r, keys) in records.keys.enumerated() { group.addTask { (r, Blocking.sortRule(keys)) } }
      for await (r, rule) in group { rules[r] = rule }
    }
    return Blocking(records: records, mode: mode, rules: rules.compactMap { $0 })
  }

  /// One rule's records sorted by key, its runs and its key codes.
  struct SortedRule: Sendable {
    var sorted: [Int32]
    var runs: [Range<Int>]
    var codes: [UInt32]
  }

  static func sortRule(_ keys: [UInt64]) -> SortedRule {
    // The key above the record index: sorting the numbers sorts by key, ties in record order.
    var entries: [(key: UInt64, index: Int32)] = []
    entries.reserveCapacity(keys.count)
    for (i, k) in keys.enumerated() where k != 0 { entries.append((k, Int32(i))) }
    entries.sort { $0.key < $1.key || ($0.key == $1.key && $0.index < $1.index) }
    var runs: [Range<Int>] = []
    var codes = [UInt32](repeating: 0, count: keys.count)
    var start = 0
    // (A rule no record has a key for has no runs: `1...0` would trap.)
    for p in stride(from: 1, through: entries.count, by: 1)
    where p == entries.count || entries[p].key != entries[start].key {
      if p - start > 1 { runs.append(start..<p) }
      for e in entries[start..<p] { codes[Int(e.index)] = UInt32(start + 1) }
      start = p
    }
    return SortedRule(sorted: entries.map(\.index), runs: runs, codes: codes)
  }

  /// A stretch of one rule's pairs, compared as one piece of work: whole runs, or some rows of one large run
  /// (row `p` pairs the run's record at `p` with those after it).
  struct Stretch: Sendable {
    var rule: Int
    var runs: Range<Int>
    var rows: Range<Int>?
    /// Pairs the stretch holds before pairs of earlier rules are set aside.
    var pairs: Int
  }

  /// The pairs of every rule, in rule, run and row order, cut into stretches of about `pairsPerStretch`
  /// pairs: runs are grouped, and a run larger than that is cut into rows, so the stretches can be compared
  /// on all cores with about equal work each.
  func stretches(pairsPerStretch: Int) -> [Stretch] {
    var out: [Stretch] = []
    for r in runs.indices {
      var start = 0
      var size = 0
      for (k, run) in runs[r].enumerated() {
        let n = pairsIn(run, rule: r, upperBound: true)
        if n > pairsPerStretch {
          if start < k { out.append(Stretch(rule: r, runs: start..<k, rows: nil, pairs: size)) }
          var from = run.lowerBound
          var rows = 0
          for p in run {
            rows += run.upperBound - p - 1
            if rows >= pairsPerStretch || p == run.upperBound - 1 {
              out.append(Stretch(rule: r, runs: k..<(k + 1), rows: from..<(p + 1), pairs: rows))
              from = p + 1
              rows = 0
            }
          }
          start = k + 1
          size = 0
          continue
        }
        size += n
        if size >= pairsPerStretch {
          out.append(Stretch(rule: r, runs: start..<(k + 1), rows: nil, pairs: size))
          start = k + 1
          size = 0
        }
      }
      if start < runs[r].count { out.append(Stretch(rule: r, runs: start..<runs[r].count, rows: nil, pairs: size)) }
    }
    return out
  }

  public struct RuleCount: Sendable, Equatable {
    /// Pairs the rule generates on its own.
    public var pairs: Int
    /// Of those, pairs no earlier rule generates (what the rule adds to the union).
    public var newPairs: Int
    /// The largest group of records sharing one key.
    public var largestBlock: Int
    public var blocks: Int
  }

  /// Pairs, blocks and the largest block per rule, from the block sizes alone; `newPairs` is the rule's
  /// pairs as if no earlier rule generated any (`counts()` or a link run tells them apart).
  public func sizes() -> [RuleCount] {
    runs.indices.map { r in
      let total = runs[r].reduce(0) { $0 + pairsIn($1, rule: r) }
      return RuleCount(
        pairs: total, newPairs: total, largestBlock: runs[r].map(\.count).max() ?? (sorted[r].isEmpty ? 0 : 1),
        blocks: runs[r].count)
    }
  }

  /// Comparisons per rule before running anything (`tessera link --count-only`).
  public func counts() async -> [RuleCount] {
    var out: [RuleCount] = []
    for r in 0..<records.keys.count {
      let total = runs[r].reduce(0) { $0 + pairsIn($1, rule: r) }
      var fresh = 0
      await forEachChunk(rule: r) { _, _ in
        1
      } combine: {
        fresh += $0
      }
      out.append(
        RuleCount(
          pairs: total, newPairs: fresh, largestBlock: runs[r].map(\.count).max() ?? (sorted[r].isEmpty ? 0 : 1),
          blocks: runs[r].count))
    }
    return out
  }

  /// The pairs of a run (with `upperBound`, of a link-only run too: all of its pairs, whatever their files).
  func pairsIn(_ run: Range<Int>, rule r: Int, upperBound: Bool = false) -> Int {
    guard mode == .linkOnly && !upperBound else { return run.count * (run.count - 1) / 2 }
    var byOrigin: [UInt16: Int] = [:]
    for p in run { byOrigin[records.origin[Int(sorted[r][p])], default: 0] += 1 }
    let n = run.count
    return (n * n - byOrigin.values.reduce(0) { $0 + $1 * $1 }) / 2
  }

  /// Whether an earlier rule than `r` already pairs `i` and `j`.
  @inline(__always)
  func coveredEarlier(_ i: Int, _ j: Int, before r: Int) -> Bool {
    var k = 0
    while k < r {
      let a = records.keys[k][i]
      if a != 0 && a == records.keys[k][j] { return true }
      k += 1
    }
    return false
  }

  /// Visits every new pair of rule `r` (i < j by record order) in chunks on all cores; each chunk's
  /// `visit` results are folded into one value with `combine`, in chunk order so results are reproducible.
  public func forEachChunk<T: Sendable>(
    rule r: Int, chunkPairs: Int = 250_000, visit: @escaping @Sendable (Int, Int) -> T,
    combine: (T) -> Void
  ) async where T: AdditiveArithmetic {
    await forEachChunk(rule: r, chunkPairs: chunkPairs, initial: T.zero, visit: { acc, i, j in acc += visit(i, j) }) {
      combine($0)
    }
  }

  /// Visits the new pairs of rule `r` with a per-chunk accumulator.
  public func forEachChunk<Acc: Sendable>(
    rule r: Int, chunkPairs: Int = 250_000, initial: Acc,
    visit: @escaping @Sendable (inout Acc, Int, Int) -> Void, combine: (Acc) -> Void
  ) async {
    // Split the runs into chunks of about `chunkPairs` pairs.
    var chunks: [Range<Int>] = []
    var start = 0
    var size = 0
    for (k, run) in runs[r].enumerated() {
      size += run.count * (run.count - 1) / 2
      if size >= chunkPairs {
        chunks.append(start..<(k + 1))
        start = k + 1
        size = 0
      }
    }
    if start < runs[r].count { chunks.append(start..<runs[r].count) }
    let order = sorted[r]
    let myRuns = runs[r]
    let linkOnly = mode == .linkOnly
    let origin = records.origin
    await withTaskGroup(of: (Int, Acc).self) { group in
      var next = 0
      var results: [Int: Acc] = [:]
      var emitted = 0
      func launch(_ c: Int) {
        let range = chunks[c]
        group.addTask {
          var acc = initial
          for k in range {
            let run = myRuns[k]
            for p in run {
              let a = Int(order[p])
              for q in (p + 1)..<run.upperBound {
                let b = Int(order[q])
                if linkOnly && origin[a] == origin[b] { continue }
                let (i, j) = a < b ? (a, b) : (b, a)
                if self.coveredEarlier(i, j, before: r) { continue }
                visit(&acc, i, j)
              }
            }
          }
          return (c, acc)
        }
      }
      let width = max(2, ProcessInfo.processInfo.activeProcessorCount * 2)
      while next < chunks.count && next < width {
        launch(next)
        next += 1
      }
      for await (c, acc) in group {
        results[c] = acc
        if next < chunks.count {
          launch(next)
          next += 1
        }
        while let ready = results.removeValue(forKey: emitted) {
          combine(ready)
          emitted += 1
        }
      }
    }
  }

  /// Which rules pair `i` and `j` (bit r set when rule r's keys agree).
  @inline(__always)
  public func ruleMask(_ i: Int, _ j: Int) -> UInt32 {
    var mask: UInt32 = 0
    for (r, keys) in records.keys.enumerated() where keys[i] != 0 && keys[i] == keys[j] { mask |= 1 << UInt32(r) }
    return mask
  }
}
