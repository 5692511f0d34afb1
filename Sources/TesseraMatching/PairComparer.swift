import Foundation

/// The compared pairs of one stretch of blocking work (`Blocking.Stretch`): per pair its two records
/// (left < right) and which of the stretch's distinct (pattern, rule mask) combinations it showed.
struct ComparedStretch: Sendable {
  /// The blocking rule whose pairs these are.
  var rule = 0
  var left: [Int32] = []
  var right: [Int32] = []
  /// Per pair: an index into `combos`.
  var combo: [UInt32] = []
  /// The distinct `pattern << ruleBits | mask` of the stretch (see `PairComparer`), in order of first
  /// appearance, and how many pairs showed each.
  var combos: [UInt64] = []
  var counts: [Int] = []
  var count: Int { left.count }
}

/// Compares the candidate pairs of a blocking, stretch by stretch on all cores: each pair once (the rule
/// that generates it first), with its pattern of levels (`MatchModel.radices`) and the mask of the rules
/// whose keys it shares.
///
/// Records are read from one row-major table built for the run: per record the key codes of every blocking
/// rule, the value code of every compared column, and for the columns whose values are mostly unique
/// (emails, phones, streets) where the value's text starts, its length and its character set, so that the
/// bounds that rule a similarity out read nothing but the two rows. The level of two different values of a
/// column whose values repeat (first names, surnames, birth dates) is remembered per pair of value codes in a
/// small table per stretch, so the similarity of "james" and "jamie" is computed once per stretch, not once
/// per pair. The loop over a stretch's pairs reads the columns and level tests through pointers taken once
/// per stretch (`ColumnPointers`): it touches no shared object, so the two cores never contend for a
/// reference count.
struct PairComparer: Sendable {
  let records: RecordSet
  let blocking: Blocking
  let rules: Int
  let ruleBits: UInt64
  /// Per record: `rules` key codes, one value code per column, then 4 words per carried column.
  let rows: [UInt32]
  let stride: Int
  let levels: LevelPlans
  var plans: [LevelPlans.Plan] { levels.plans }

  init(model: MatchModel, records: RecordSet, blocking: Blocking) {
    self.records = records
    self.blocking = blocking
    rules = records.keys.count
    ruleBits = UInt64(max(1, rules))
    let levels = LevelPlans(model: model, records: records, carryFrom: rules + records.columns.count)
    let width = levels.width
    var rows = [UInt32](repeating: 0, count: records.count * width)
    for r in 0..<rules {
      for (i, code) in blocking.keyCodes[r].enumerated() { rows[i * width + r] = code }
    }
    for (f, column) in records.columns.enumerated() {
      for (i, code) in column.codes.enumerated() { rows[i * width + rules + f] = code }
      let at = levels.carriedAt[f]
      guard at >= 0 else { continue }
      for (i, code) in column.codes.enumerated() {
        let v = Int(code)
        let set = column.characters[v]
        rows[i * width + at] = UInt32(column.offsets[v])
        rows[i * width + at + 1] = UInt32(column.offsets[v + 1] - column.offsets[v])
        rows[i * width + at + 2] = UInt32(truncatingIfNeeded: set)
        rows[i * width + at + 3] = UInt32(truncatingIfNeeded: set >> 32)
      }
    }
    if levels.timedAt.contains(where: { $0 >= 0 }) {
      rows.withUnsafeMutableBufferPointer { all in
        // Safe: without records there is no row to fill.
        guard let base = all.baseAddress else { return }
        for i in 0..<records.count { levels.fillTimes(records, i, base + i * width) }
      }
    }
    self.rows = rows
    self.levels = levels
    stride = width
  }

  /// Compares every stretch of `blocking` on all cores; the results in stretch order.
  static func compareAll(
    model: MatchModel, records: RecordSet, blocking: Blocking, pairsPerStretch: Int = 200_000
  ) async -> [ComparedStretch] {
    let comparer = PairComparer(model: model, records: records, blocking: blocking)
    let stretches = blocking.stretches(pairsPerStretch: pairsPerStretch)
    var results = [ComparedStretch](repeating: ComparedStretch(), count: stretches.count)
    await withTaskGroup(of: (Int, ComparedStretch).self) { group in
      var next = 0
      let width = max(2, ProcessInfo.processInfo.activeProcessorCount * 2)
      while next < stretches.count && next < width {
        let k = next
        group.addTask { (k, comparer.compare(stretches[k])) }
        next += 1
      }
      for await (k, compared) in group {
        results[k] = compared
        if next < stretches.count {
          let k = next
          group.addTask { (k, comparer.compare(stretches[k])) }
          next += 1
        }
      }
    }
    return results
  }

  /// The new pairs of one stretch, compared.
  func compare(_ stretch: Blocking.Stretch) -> ComparedStretch {
    levels.withRowLevels(records, values: rules) { compare(stretch, $0) }
  }

  func compare(_ stretch: Blocking.Stretch, _ levels: RowLevels) -> ComparedStretch {
    var out = ComparedStretch()
    out.rule = stretch.rule
    out.left.reserveCapacity(stretch.pairs)
    out.right.reserveCapacity(stretch.pairs)
    out.combo.reserveCapacity(stretch.pairs)
    let r = stretch.rule
    let earlier: UInt32 = (1 << UInt32(r)) &- 1
    let order = blocking.sorted[r]
    let runs = blocking.runs[r]
    let linkOnly = blocking.mode == .linkOnly
    let origin = records.origin
    let rules = self.rules
    let stride = self.stride
    let ruleBits = self.ruleBits
    var table = ComboTable()
    // The rows of a run's records, copied next to each other: the pairs of a run read them over and over.
    var gathered: [UInt32] = []
    rows.withUnsafeBufferPointer { all in
      for k in stretch.runs {
        let run = runs[k]
        gathered.removeAll(keepingCapacity: true)
        for p in run {
          let start = Int(order[p]) * stride
          gathered.append(contentsOf: all[start..<(start + stride)])
        }
        gathered.withUnsafeBufferPointer { local in
          // Safe: a run holds at least two records, so `gathered` is not empty.
          guard let base = local.baseAddress else { return }
          for p in stretch.rows ?? run {
            let a = Int(order[p])
            let rowA = base + (p - run.lowerBound) * stride
            for q in (p + 1)..<run.upperBound {
              let b = Int(order[q])
              if linkOnly && origin[a] == origin[b] { continue }
              let rowB = base + (q - run.lowerBound) * stride
              var mask: UInt32 = 0
              for rule in 0..<rules {
                let key = rowA[rule]
                if key != 0 && key == rowB[rule] { mask |= 1 << UInt32(rule) }
              }
              // An earlier rule generates this pair: it was compared there.
              if mask & earlier != 0 { continue }
              let (i, j, rowI, rowJ) = a < b ? (a, b, rowA, rowB) : (b, a, rowB, rowA)
              let pattern = levels.pattern(rowI, rowJ)
              let id = table.id(of: pattern << ruleBits | UInt64(mask), in: &out)
              out.left.append(Int32(i))
              out.right.append(Int32(j))
              out.combo.append(id)
            }
          }
        }
      }
    }
    return out
  }
}

/// What `RowLevels` needs of a model's comparisons, as plain values: built once per run, shared by the tasks.
struct LevelPlans: Sendable {
  /// What the loop needs of one comparison.
  struct Plan: Sendable {
    /// The column of a comparison of one trait, -1 for one of several (`columns`).
    var column: Int
    var columns: Range<Int>
    /// The column of its `swapped_with` level, -1 without one.
    var swap: Int
    /// Whether its levels are remembered per pair of value codes.
    var remembered: Bool
    /// Where a row holds the start, length and character set (two words) of the value, -1 when it does not.
    var carried: Int
    var tests: Range<Int>
    var cap: Int
    var equalLevel: Int
    var radix: UInt64
  }

  let plans: [Plan]
  /// The level tests of every comparison, comparison `c`'s at `plans[c].tests`.
  let tests: [LevelTest]
  /// The columns of comparisons of several traits, comparison `c`'s at `plans[c].columns`.
  let columnLists: [Int]
  /// Per column: where a row carries its value's text place and character set, -1 when it does not.
  let carriedAt: [Int]
  /// Per column: where a row carries when the record was seen with its value (two words of the seconds,
  /// `RecordSet.seen`), -1 for columns no `within N minutes` level reads.
  let timedAt: [Int]
  /// The words of a row: `carryFrom` (else the value codes) plus 4 per carried column and 2 per timed one.
  let width: Int

  /// Entries of each table that remembers levels per pair of value codes.
  static let memorySlots = 1 << 14

  /// `carryFrom`: where a row's carried words start, nil to carry nothing (rows of value codes only).
  init(model: MatchModel, records: RecordSet, carryFrom: Int?) {
    var plans: [Plan] = []
    var tests: [LevelTest] = []
    var columnLists: [Int] = []
    var carriedAt = [Int](repeating: -1, count: records.columns.count)
    var width = carryFrom ?? records.columns.count
    for (kernel, radix) in zip(model.kernels, model.radices) {
      let single = kernel.columns.count == 1 ? kernel.columns[0] : -1
      // Worth it when values repeat: far fewer distinct values than records, and codes that fit an entry.
      var remembered = false
      if kernel.dependsOnValuesOnly, kernel.comparesTexts, single >= 0 {
        let values = records.columns[single].valueCount
        remembered = values < (1 << 28) && values * 4 < records.count
      }
      if carryFrom != nil, single >= 0, !remembered, kernel.comparesTexts, carriedAt[single] < 0 {
        carriedAt[single] = width
        width += 4
      }
      plans.append(
        Plan(
          column: single, columns: columnLists.count..<(columnLists.count + kernel.columns.count), swap: kernel.swap,
          remembered: remembered, carried: single >= 0 ? carriedAt[single] : -1,
          tests: tests.count..<(tests.count + kernel.tests.count), cap: kernel.cap, equalLevel: kernel.equalLevel,
          radix: radix))
      tests += kernel.tests
      columnLists += kernel.columns
    }
    var timedAt = [Int](repeating: -1, count: records.columns.count)
    for f in model.timedColumns {
      timedAt[f] = width
      width += 2
    }
    self.plans = plans
    self.tests = tests
    self.columnLists = columnLists
    self.carriedAt = carriedAt
    self.timedAt = timedAt
    self.width = width
  }

  /// Writes into `row` when record `i` was seen with the value of each timed column.
  func fillTimes(_ records: RecordSet, _ i: Int, _ row: UnsafeMutablePointer<UInt32>) {
    for (f, at) in timedAt.enumerated() where at >= 0 {
      let t = records.seen[f].isEmpty ? Int64.min : records.seen[f][i]
      let bits = UInt64(bitPattern: t)
      row[at] = UInt32(truncatingIfNeeded: bits)
      row[at + 1] = UInt32(truncatingIfNeeded: bits >> 32)
    }
  }

  /// Calls `body` with the levels of `records` read from rows whose value codes start at `values`, and a
  /// fresh memory of remembered levels; the pointers it holds are valid only during the call.
  func withRowLevels<R>(_ records: RecordSet, values: Int, _ body: (RowLevels) -> R) -> R {
    Column.withPointers(records.columns[...]) { columns in
      columns.withUnsafeBufferPointer { columns in
        tests.withUnsafeBufferPointer { tests in
          plans.withUnsafeBufferPointer { plans in
            columnLists.withUnsafeBufferPointer { lists in
              timedAt.withUnsafeBufferPointer { timedAt in
                let memory = LevelMemory(comparisons: plans.map(\.remembered))
                defer { memory.release() }
                return body(
                  RowLevels(
                    columns: columns, tests: tests, plans: plans, lists: lists, timedAt: timedAt, memory: memory,
                    values: values))
              }
            }
          }
        }
      }
    }
  }
}

/// The levels of a pair from the two records' rows (see `PairComparer`), for one stretch: everything it reads
/// is a pointer valid while the stretch is compared.
struct RowLevels {
  let columns: UnsafeBufferPointer<ColumnPointers>
  let tests: UnsafeBufferPointer<LevelTest>
  let plans: UnsafeBufferPointer<LevelPlans.Plan>
  let lists: UnsafeBufferPointer<Int>
  /// Per column, where a row holds its record's time (`LevelPlans.timedAt`).
  let timedAt: UnsafeBufferPointer<Int>
  let memory: LevelMemory
  /// Where a row's value codes start (after the key codes).
  let values: Int

  /// The pattern of two records (`rowI` is the left record's).
  @inline(__always)
  func pattern(_ rowI: UnsafePointer<UInt32>, _ rowJ: UnsafePointer<UInt32>) -> UInt64 {
    var pattern: UInt64 = 0
    var scale: UInt64 = 1
    for c in plans.indices {
      let l = level(c, rowI, rowJ)
      pattern &+= scale &* UInt64(bitPattern: Int64(l + 1))
      scale &*= plans[c].radix
    }
    return pattern
  }

  /// The level of comparison `c` (see `MatchModel.level`).
  @inline(__always)
  func level(_ c: Int, _ rowI: UnsafePointer<UInt32>, _ rowJ: UnsafePointer<UInt32>) -> Int {
    let plan = plans[c]
    let f = plan.column
    guard f >= 0 else {
      var best = -1
      for g in lists[plan.columns] {
        let l = level(plan, g, rowI[values + g], rowJ[values + g], rowI, rowJ, carried: -1)
        if l >= 0 && (best < 0 || l < best) { best = l }
        if best == 0 { break }
      }
      return best
    }
    let a = rowI[values + f]
    let b = rowJ[values + f]
    guard plan.remembered, a != 0, b != 0, a != b else {
      return level(plan, f, a, b, rowI, rowJ, carried: plan.carried)
    }
    if let l = memory.recall(c, a, b) { return l }
    let l = level(plan, f, a, b, rowI, rowJ, carried: -1)
    memory.remember(c, a, b, l)
    return l
  }

  /// The level of values `a` and `b` of column `f`; `carried`: where the rows hold their texts' places and
  /// character sets, -1 to read them from the column.
  @inline(__always)
  func level(
    _ plan: LevelPlans.Plan, _ f: Int, _ a: UInt32, _ b: UInt32, _ rowI: UnsafePointer<UInt32>,
    _ rowJ: UnsafePointer<UInt32>, carried: Int
  ) -> Int {
    if a == 0 || b == 0 { return -1 }
    if a == b && plan.equalLevel >= 0 { return plan.equalLevel }
    let dt = timedAt[f] < 0 ? Int64.max : RowLevels.apart(rowI + timedAt[f], rowJ + timedAt[f])
    let col = columns[f]
    let (x, y) = (Int(a), Int(b))
    let startA: Int
    let startB: Int
    let countA: Int
    let countB: Int
    let setA: UInt64
    let setB: UInt64
    if carried >= 0 {
      (startA, countA) = (Int(rowI[carried]), Int(rowI[carried + 1]))
      (startB, countB) = (Int(rowJ[carried]), Int(rowJ[carried + 1]))
      setA = UInt64(rowI[carried + 2]) | UInt64(rowI[carried + 3]) << 32
      setB = UInt64(rowJ[carried + 2]) | UInt64(rowJ[carried + 3]) << 32
    } else {
      (startA, countA) = (Int(col.offsets[x]), Int(col.offsets[x + 1] - col.offsets[x]))
      (startB, countB) = (Int(col.offsets[y]), Int(col.offsets[y + 1] - col.offsets[y]))
      (setA, setB) = (col.characters[x], col.characters[y])
    }
    let tests = UnsafeBufferPointer(rebasing: self.tests[plan.tests])
    guard plan.swap < 0 else {
      let (swap, sa, sb) = (columns[plan.swap], rowI[values + plan.swap], rowJ[values + plan.swap])
      return text(col, startA, countA, startB, countB) {
        LevelKernel.level(tests, cap: plan.cap, col, x, y, $0, $1, setA, setB, swap: swap, sa, sb, dt: dt)
      } scalars: {
        LevelKernel.level(tests, cap: plan.cap, col, x, y, $0, $1, setA, setB, swap: swap, sa, sb, dt: dt)
      }
    }
    return text(col, startA, countA, startB, countB) {
      LevelKernel.level(tests, cap: plan.cap, col, x, y, $0, $1, setA, setB, swap: nil, 0, 0, dt: dt)
    } scalars: {
      LevelKernel.level(tests, cap: plan.cap, col, x, y, $0, $1, setA, setB, swap: nil, 0, 0, dt: dt)
    }
  }

  /// How far apart two rows' times are (two words each, see `LevelPlans.fillTimes`), as `LevelKernel.apart`.
  @inline(__always)
  static func apart(_ a: UnsafePointer<UInt32>, _ b: UnsafePointer<UInt32>) -> Int64 {
    let x = Int64(bitPattern: UInt64(a[0]) | UInt64(a[1]) << 32)
    let y = Int64(bitPattern: UInt64(b[0]) | UInt64(b[1]) << 32)
    return LevelKernel.apart(x, y)
  }

  /// Calls `bytes` or `scalars` (as the column holds its texts) with two texts of `col`.
  @inline(__always)
  func text(
    _ col: ColumnPointers, _ startA: Int, _ countA: Int, _ startB: Int, _ countB: Int,
    bytes: (UnsafeBufferPointer<UInt8>, UnsafeBufferPointer<UInt8>) -> Int,
    scalars: (UnsafeBufferPointer<UInt32>, UnsafeBufferPointer<UInt32>) -> Int
  ) -> Int {
    if col.ascii {
      return bytes(
        UnsafeBufferPointer(rebasing: col.bytes[startA..<(startA + countA)]),
        UnsafeBufferPointer(rebasing: col.bytes[startB..<(startB + countB)]))
    }
    return scalars(
      UnsafeBufferPointer(rebasing: col.scalars[startA..<(startA + countA)]),
      UnsafeBufferPointer(rebasing: col.scalars[startB..<(startB + countB)]))
  }
}

/// Ids of the distinct (pattern, mask) keys of one stretch: open addressing over 64-bit keys (0 is never a
/// key: a pair's mask holds the bit of the rule that generated it).
struct ComboTable {
  var keys = [UInt64](repeating: 0, count: 1024)
  var ids = [UInt32](repeating: 0, count: 1024)
  var used = 0

  @inline(__always)
  mutating func id(of key: UInt64, in stretch: inout ComparedStretch) -> UInt32 {
    var slot = ComboTable.slot(key, keys.count)
    while true {
      let k = keys[slot]
      if k == key {
        let id = ids[slot]
        stretch.counts[Int(id)] += 1
        return id
      }
      if k == 0 { break }
      slot = (slot + 1) & (keys.count - 1)
    }
    let id = UInt32(stretch.combos.count)
    stretch.combos.append(key)
    stretch.counts.append(1)
    keys[slot] = key
    ids[slot] = id
    used += 1
    if used * 2 > keys.count { grow() }
    return id
  }

  @inline(__always)
  static func slot(_ key: UInt64, _ size: Int) -> Int {
    Int(truncatingIfNeeded: (key &* 0x9E37_79B9_7F4A_7C15) >> 40) & (size - 1)
  }

  mutating func grow() {
    let oldKeys = keys
    let oldIds = ids
    keys = [UInt64](repeating: 0, count: oldKeys.count * 2)
    ids = [UInt32](repeating: 0, count: oldKeys.count * 2)
    for (k, key) in oldKeys.enumerated() where key != 0 {
      var slot = ComboTable.slot(key, keys.count)
      while keys[slot] != 0 { slot = (slot + 1) & (keys.count - 1) }
      keys[slot] = key
      ids[slot] = oldIds[k]
    }
  }
}

/// The levels of pairs of different values already computed in a stretch, per comparison that remembers
/// them: a direct-mapped table whose entries hold both value codes (28 bits each) and the level, so a
/// collision only forgets, never answers wrongly. Owned by one task, freed when the stretch is done.
struct LevelMemory {
  let base: UnsafeMutablePointer<UInt64>?
  let offsets: [Int]

  init(comparisons: [Bool]) {
    var offsets: [Int] = []
    var n = 0
    for remembered in comparisons {
      offsets.append(remembered ? n : -1)
      if remembered { n += LevelPlans.memorySlots }
    }
    self.offsets = offsets
    if n > 0 {
      let memory = UnsafeMutablePointer<UInt64>.allocate(capacity: n)
      memory.initialize(repeating: 0, count: n)
      base = memory
    } else {
      base = nil
    }
  }

  func release() { base?.deallocate() }

  @inline(__always)
  func entry(_ c: Int, _ a: UInt32, _ b: UInt32) -> (slot: UnsafeMutablePointer<UInt64>, tag: UInt64)? {
    guard let base else { return nil }
    let tag = UInt64(a) << 28 | UInt64(b)
    let slot = Int(truncatingIfNeeded: (tag &* 0x9E37_79B9_7F4A_7C15) >> 50) & (LevelPlans.memorySlots - 1)
    return (base + offsets[c] + slot, tag)
  }

  @inline(__always)
  func recall(_ c: Int, _ a: UInt32, _ b: UInt32) -> Int? {
    guard let (slot, tag) = entry(c, a, b) else { return nil }
    let e = slot.pointee
    guard e != 0, e >> 8 == tag else { return nil }
    return Int(e & 0xFF) - 1
  }

  @inline(__always)
  func remember(_ c: Int, _ a: UInt32, _ b: UInt32, _ level: Int) {
    guard let (slot, tag) = entry(c, a, b) else { return }
    slot.pointee = tag << 8 | UInt64(level + 1)
  }
}
