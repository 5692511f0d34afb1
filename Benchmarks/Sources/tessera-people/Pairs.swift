/// Labelled record pairs for tuning: every true-match pair, as many hard non-matches (same surname, postcode,
/// date of birth, or surname and postcode together, but different persons) and half as many random non-matches.
enum Pairs {
  struct Pair {
    var left: Int
    var right: Int
    var isMatch: Bool
  }

  /// `personOfRecord` lists the records of each person contiguously (generation order).
  static func sample(personOfRecord: [Int32], keys: [PairKeys], rng: inout SplitMix64) -> [Pair] {
    let count = personOfRecord.count
    var pairs: [Pair] = []
    var seen: Set<UInt64> = []
    func key(_ a: Int, _ b: Int) -> UInt64 { UInt64(min(a, b)) << 32 | UInt64(max(a, b)) }

    var start = 0
    while start < count {
      var end = start + 1
      while end < count && personOfRecord[end] == personOfRecord[start] { end += 1 }
      for i in start..<end {
        for j in (i + 1)..<end {
          pairs.append(Pair(left: i, right: j, isMatch: true))
          seen.insert(key(i, j))
        }
      }
      start = end
    }
    let matches = pairs.count

    // Buckets are filled in record order, so their contents do not depend on hashing.
    var buckets: [[String: [Int]]] = Array(repeating: [:], count: 4)
    func bucketKey(_ kind: Int, _ record: Int) -> String {
      let k = keys[record]
      switch kind {
      case 0: return k.surname
      case 1: return k.postcode
      case 2: return k.dob
      default: return k.surname.isEmpty || k.postcode.isEmpty ? "" : k.surname + "|" + k.postcode
      }
    }
    for record in 0..<count {
      for kind in 0..<4 {
        let value = bucketKey(kind, record)
        if !value.isEmpty { buckets[kind][value, default: []].append(record) }
      }
    }
    var hard = 0
    var attempts = 0
    while hard < matches && attempts < matches * 200 + 1000 {
      attempts += 1
      let i = rng.below(count)
      let kind = rng.below(4)
      let value = bucketKey(kind, i)
      guard !value.isEmpty, let bucket = buckets[kind][value], bucket.count > 1 else { continue }
      let j = bucket[rng.below(bucket.count)]
      guard personOfRecord[i] != personOfRecord[j], seen.insert(key(i, j)).inserted else { continue }
      pairs.append(Pair(left: i, right: j, isMatch: false))
      hard += 1
    }
    var random = 0
    attempts = 0
    while random < matches / 2 && attempts < matches * 100 + 1000 {
      attempts += 1
      let i = rng.below(count)
      let j = rng.below(count)
      guard personOfRecord[i] != personOfRecord[j], seen.insert(key(i, j)).inserted else { continue }
      pairs.append(Pair(left: i, right: j, isMatch: false))
      random += 1
    }
    rng.shuffle(&pairs)
    return pairs
  }
}
