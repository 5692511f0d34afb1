import TesseraModel

/// Values kept per profile id, found without hashing.
///
/// The graph hands profile ids out in increasing order from 1, so the ids it meets are small, dense numbers:
/// those live in an array indexed by the id. Resolution asks for a profile's identifiers and for where an
/// absorbed profile went several times per event, and a dictionary hashed the id on every one of them. An
/// id far beyond the others (a store's data from elsewhere, or nonsense) lives in a dictionary instead, so
/// no id can make the array huge.
struct ProfileTable<Value: Sendable>: Sendable {
  private var dense: [Value?] = []
  private var sparse: [Int64: Value] = [:]
  /// How many profiles hold a value.
  private(set) var count = 0

  /// How far past the end of the array an id may land and still grow it: the array at most doubles (and
  /// starts with room for this many ids).
  private static var reach: Int { 1 << 16 }

  subscript(_ p: ProfileID) -> Value? {
    get {
      let r = p.raw
      if r >= 0 && r < dense.count { return dense[Int(r)] }
      return sparse.isEmpty ? nil : sparse[r]
    }
    set { modify(p) { $0 = newValue } }
  }

  /// Changes the value of `p` in place (an array held here is not copied to be changed).
  mutating func modify<R>(_ p: ProfileID, _ body: (inout Value?) -> R) -> R {
    let r = p.raw
    if r >= 0 && r >= dense.count && r < dense.count + max(dense.count, Self.reach) {
      grow(to: Int(r) + 1)
    }
    if r >= 0 && r < dense.count {
      let had = dense[Int(r)] != nil
      let result = body(&dense[Int(r)])
      count += (dense[Int(r)] != nil ? 1 : 0) - (had ? 1 : 0)
      return result
    }
    var value = sparse.removeValue(forKey: r)
    let had = value != nil
    let result = body(&value)
    if let value { sparse[r] = value }
    count += (value != nil ? 1 : 0) - (had ? 1 : 0)
    return result
  }

  private mutating func grow(to size: Int) {
    let old = dense.count
    dense.append(contentsOf: repeatElement(nil, count: size - old))
    // Ids that were too far ahead before may fit now.
    guard !sparse.isEmpty else { return }
    for (r, v) in sparse where r >= old && r < size {
      dense[Int(r)] = v
      sparse[r] = nil
    }
  }

  /// Every profile holding a value, with it (in no particular order).
  var all: [(ProfileID, Value)] {
    var out: [(ProfileID, Value)] = []
    out.reserveCapacity(count)
    for (r, v) in dense.enumerated() { if let v { out.append((ProfileID(Int64(r)), v)) } }
    for (r, v) in sparse { out.append((ProfileID(r), v)) }
    return out
  }

  var isEmpty: Bool { count == 0 }
}
