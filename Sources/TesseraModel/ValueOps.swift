extension Value {
  /// Equality as the expression language sees it: ints and doubles compare by numeric value,
  /// `null == null` is true, and values of different kinds are unequal.
  @inlinable public static func equal(_ a: Value, _ b: Value) -> Bool {
    switch (a, b) {
    case (.int(let x), .int(let y)): return x == y
    case (.string(let x), .string(let y)): return x == y
    case (.int(let x), .double(let y)): return Double(x) == y
    case (.double(let x), .int(let y)): return x == Double(y)
    case (.double(let x), .double(let y)): return x == y
    case (.list(let x), .list(let y)):
      return x.count == y.count && zip(x, y).allSatisfy { equal($0, $1) }
    case (.map(let x), .map(let y)):
      return x.count == y.count && x.allSatisfy { key, v in y[key].map { equal(v, $0) } ?? false }
    default: return a == b
    }
  }

  /// Ordering of two values of comparable kinds (numbers, strings, timestamps, durations, bools);
  /// nil when they cannot be ordered (including any `null`), which comparisons read as false.
  @inlinable public static func compare(_ a: Value, _ b: Value) -> Int? {
    switch (a, b) {
    case (.int(let x), .int(let y)): return x < y ? -1 : (x == y ? 0 : 1)
    case (.double(let x), .double(let y)): return x < y ? -1 : (x == y ? 0 : (x > y ? 1 : nil))
    case (.int(let x), .double(let y)):
      let dx = Double(x)
      return dx < y ? -1 : (dx == y ? 0 : (dx > y ? 1 : nil))
    case (.double(let x), .int(let y)):
      let dy = Double(y)
      return x < dy ? -1 : (x == dy ? 0 : (x > dy ? 1 : nil))
    case (.string(let x), .string(let y)): return x < y ? -1 : (x == y ? 0 : 1)
    case (.timestamp(let x), .timestamp(let y)): return x < y ? -1 : (x == y ? 0 : 1)
    case (.duration(let x), .duration(let y)): return x < y ? -1 : (x == y ? 0 : 1)
    case (.bool(let x), .bool(let y)): return x == y ? 0 : (!x ? -1 : 1)
    default: return nil
    }
  }

  /// One total order over all values: kind first, then the expression language's ordering, then the literal
  /// text. Used where two values compare equal but differ (`1` and `1.0`), so outcomes never depend on the
  /// order values arrived in.
  public static func precedes(_ a: Value, _ b: Value) -> Bool {
    func group(_ v: Value) -> Int {
      switch v {
      case .null: return 0
      case .bool: return 1
      case .int, .double: return 2
      case .string: return 3
      case .timestamp: return 4
      case .duration: return 5
      case .list: return 6
      case .map: return 7
      }
    }
    let (ga, gb) = (group(a), group(b))
    if ga != gb { return ga < gb }
    if let c = compare(a, b), c != 0 { return c < 0 }
    return a.literal < b.literal
  }
}
