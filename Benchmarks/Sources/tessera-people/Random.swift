import Foundation

/// SplitMix64 (Steele, Lea and Flood, 2014): a tiny, fast generator fully determined by its seed. Every random
/// choice the generator makes goes through one instance, so a seed reproduces a file byte for byte.
struct SplitMix64 {
  private var state: UInt64

  init(seed: UInt64) { state = seed }

  mutating func next() -> UInt64 {
    state &+= 0x9E37_79B9_7F4A_7C15
    var z = state
    z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
    z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
    return z ^ (z >> 31)
  }

  /// Uniform in `0..<n` (multiply-shift; the bias is below 2^-40 for the sizes used here).
  mutating func below(_ n: Int) -> Int {
    precondition(n > 0, "empty range")
    return Int(next().multipliedFullWidth(by: UInt64(n)).high)
  }

  mutating func int(_ range: Range<Int>) -> Int { range.lowerBound + below(range.count) }

  mutating func int(_ range: ClosedRange<Int>) -> Int { range.lowerBound + below(range.count) }

  /// Uniform in `[0, 1)`.
  mutating func unit() -> Double { Double(next() >> 11) * 0x1p-53 }

  mutating func chance(_ probability: Double) -> Bool { unit() < probability }

  mutating func pick<T>(_ values: [T]) -> T { values[below(values.count)] }

  /// Fisher–Yates.
  mutating func shuffle<T>(_ values: inout [T]) {
    var i = values.count - 1
    while i > 0 {
      values.swapAt(i, below(i + 1))
      i -= 1
    }
  }
}

/// Draws indices with the given relative weights (binary search over the cumulative sums).
struct WeightedTable: Sendable {
  private let cumulative: [Double]

  init(weights: [Double]) {
    precondition(!weights.isEmpty, "no weights")
    var sum = 0.0
    cumulative = weights.map { weight in
      sum += weight
      return sum
    }
  }

  /// Zipf-like weights `1 / (rank + offset)^exponent` for ranks `0..<count`.
  static func zipf(count: Int, offset: Double, exponent: Double) -> WeightedTable {
    WeightedTable(weights: (0..<count).map { 1 / pow(Double($0) + offset, exponent) })
  }

  var count: Int { cumulative.count }

  func probability(of index: Int) -> Double {
    let total = cumulative[cumulative.count - 1]
    return (cumulative[index] - (index == 0 ? 0 : cumulative[index - 1])) / total
  }

  func sample(_ rng: inout SplitMix64) -> Int {
    let target = rng.unit() * cumulative[cumulative.count - 1]
    var low = 0
    var high = cumulative.count - 1
    while low < high {
      let mid = (low + high) / 2
      if cumulative[mid] > target { high = mid } else { low = mid + 1 }
    }
    return low
  }
}
