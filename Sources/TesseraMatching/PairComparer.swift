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
/// rule, then the value code of every compared column, so that a pair reads one row of each record rather
/// than one cache line per rule and column. The level of two different values of a column whose values
/// repeat (first names, surnames, birth dates) is remembered per pair of value codes in a small table per
/// stretch, so the similarity of "james" and "jamie" is computed once per stretch, not once per pair.
struct PairComparer: Sendable {
  let model: MatchModel
  let records: RecordSet
  let blocking: Blocking
  let rules: Int
  let ruleBits: UInt64
  /// Per record: `rules` key codes, then one value code per column.
  let rows: [UInt32]
  let stride: Int
  let radices: [UInt64]
  /// Per comparison: its column when it compares one trait (else -1), the column of its `swapped_with`
  /// level (else -1), and whether its levels are remembered per pair of value codes.
  let single: [Int]
  let swap: [Int]
  let remembered: [Bool]

  /// Entries of each table that remembers levels per pair of value codes.
  static let memorySlots = 1 << 14

  init(model: MatchModel, records: RecordSet, blocking: Blocking) {
    self.model = model
    self.records = records
    self.blocking = blocking
    rules = records.keys.count
    ruleBits = UInt64(max(1, rules))
    stride = rules + records.columns.count
    var rows = [UInt32](repeating: 0, count: records.count * stride)
    for r in 0..<rules {
      for (i, code) in blocking.keyCodes[r].enumerated() { rows[i * stride + r] = code }
    }
    for (f, column) in records.columns.enumerated() {
      for (i, code) in column.codes.enumerated() { rows[i * stride + rules + f] = code }
    }
    self.rows = rows
    radices = model.radices
    single = model.kernels.map { $0.columns.count == 1 ? $0.columns[0] : -1 }
    swap = model.kernels.map(\.swap)
    remembered = model.kernels.map { kernel in
      // Worth it when values repeat: far fewer distinct values than records, and codes that fit an entry.
      guard kernel.dependsOnValuesOnly, kernel.comparesTexts, let f = kernel.columns.first else { return false }
      let values = records.columns[f].valueCount
      return values < (1 << 28) && values * 4 < records.count
    }
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
    var table = ComboTable()
    let memory = LevelMemory(comparisons: remembered)
    defer { memory.release() }
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
              let pattern = self.pattern(rowI + rules, rowJ + rules, memory)
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

  /// The pattern of two records given their value codes (`valuesI` is the left record's).
  @inline(__always)
  func pattern(_ valuesI: UnsafePointer<UInt32>, _ valuesJ: UnsafePointer<UInt32>, _ memory: LevelMemory) -> UInt64 {
    var pattern: UInt64 = 0
    var scale: UInt64 = 1
    for c in radices.indices {
      let l = level(c, valuesI, valuesJ, memory)
      pattern &+= scale &* UInt64(bitPattern: Int64(l + 1))
      scale &*= radices[c]
    }
    return pattern
  }

  /// The level of comparison `c` (see `MatchModel.level`), from value codes.
  @inline(__always)
  func level(_ c: Int, _ valuesI: UnsafePointer<UInt32>, _ valuesJ: UnsafePointer<UInt32>, _ memory: LevelMemory)
    -> Int
  {
    let kernel = model.kernels[c]
    let f = single[c]
    guard f >= 0 else {
      var best = -1
      for g in kernel.columns {
        let l = kernel.level(records.columns[g], valuesI[g], valuesJ[g], swap: nil, 0, 0)
        if l >= 0 && (best < 0 || l < best) { best = l }
        if best == 0 { break }
      }
      return best
    }
    let a = valuesI[f]
    let b = valuesJ[f]
    if a == 0 || b == 0 { return -1 }
    if a == b && kernel.equalLevel >= 0 { return kernel.equalLevel }
    if remembered[c] {
      if let l = memory.recall(c, a, b) { return l }
      let l = kernel.level(records.columns[f], a, b, swap: nil, 0, 0)
      memory.remember(c, a, b, l)
      return l
    }
    let s = swap[c]
    if s < 0 { return kernel.level(records.columns[f], a, b, swap: nil, 0, 0) }
    return kernel.level(records.columns[f], a, b, swap: records.columns[s], valuesI[s], valuesJ[s])
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
      if remembered { n += PairComparer.memorySlots }
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
    let slot = Int(truncatingIfNeeded: (tag &* 0x9E37_79B9_7F4A_7C15) >> 50) & (PairComparer.memorySlots - 1)
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
