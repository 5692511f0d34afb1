import TesseraModel

/// What a fuzz run did: inputs tried, how they were answered, and every broken promise (the first 20 in full).
public struct FuzzReport: Sendable, CustomStringConvertible {
  public var target: String
  public var seed: UInt64
  public var first: Int
  public var inputs = 0
  public var seconds = 0.0
  /// Outcomes by a short label (`200`, `400 malformed_json`, `rejected`, `error`), counted.
  public var outcomes: [String: Int] = [:]
  public var failures: [String] = []
  public var failureCount = 0
  /// Target-specific figures (events stored, records read, slowest input).
  public var notes: [String] = []

  public init(target: String, seed: UInt64, first: Int) {
    self.target = target
    self.seed = seed
    self.first = first
  }

  public mutating func fail(_ index: Int, _ what: String) {
    failureCount += 1
    if failures.count < 20 { failures.append("input \(index) (seed \(seed)): \(what)") }
  }

  public mutating func count(_ outcome: String, _ n: Int = 1) { outcomes[outcome, default: 0] += n }

  public mutating func add(_ other: FuzzReport) {
    inputs += other.inputs
    outcomes.merge(other.outcomes, uniquingKeysWith: +)
    failureCount += other.failureCount
    failures += other.failures.prefix(max(0, 20 - failures.count))
  }

  public var description: String {
    let rate = seconds > 0 ? Double(inputs) / seconds : 0
    var out =
      "\(target): inputs \(first)..<\(first + inputs) of seed \(seed), \(inputs) in \(String(format: "%.1f", seconds)) s "
      + "(\(String(format: "%.0f", rate))/s), \(failureCount) failures\n"
    for (k, v) in outcomes.sorted(by: { $0.value > $1.value }) { out += "  \(v)\t\(k)\n" }
    for n in notes { out += "  \(n)\n" }
    for f in failures { out += "  FAIL \(f)\n" }
    return out
  }
}

extension Mutator {
  /// The mutator of input `index` of a run seeded `seed`: each input has its own, so any one input can be made
  /// again without the ones before it (`tessera-fuzz … --first N --count 1`).
  public static func forInput(_ index: Int, seed: UInt64) -> Mutator {
    var mix = SplitMix64(seed: seed ^ (UInt64(index) &* 0x9E37_79B9_7F4A_7C15))
    return Mutator(seed: mix.next())
  }
}
