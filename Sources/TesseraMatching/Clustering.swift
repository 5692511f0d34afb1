/// Joins records into clusters, strongest pairs first, refusing a join that would make a cluster larger than
/// `maxSize` or hold more distinct identifiers of a kind than its `max_per_profile` — so a chain of weak links
/// (A~B, B~C, C~D …) or a shared device cannot glue many people into one profile.
public struct Clusterer: Sendable {
  public enum Outcome: Sendable, Equatable {
    case joined
    case alreadyTogether
    case refusedSize(Int)
    case refusedIdentifier(String)
  }

  var parent: [Int32]
  var size: [Int32]
  let maxSize: Int
  let identifiers: [IdentifierColumn]
  /// Distinct identifier values per kind of each cluster root that holds any.
  var held: [Int32: [[UInt64]]] = [:]

  public init(count: Int, maxSize: Int, identifiers: [IdentifierColumn] = []) {
    parent = (0..<Int32(count)).map { $0 }
    size = Array(repeating: 1, count: count)
    self.maxSize = maxSize
    self.identifiers = identifiers
    for i in 0..<count {
      let values = identifiers.map { $0.hash[i] == 0 ? [] : [$0.hash[i]] }
      if values.contains(where: { !$0.isEmpty }) { held[Int32(i)] = values }
    }
  }

  public mutating func find(_ x: Int) -> Int {
    var r = Int32(x)
    while parent[Int(r)] != r { r = parent[Int(r)] }
    var c = Int32(x)
    while parent[Int(c)] != r {
      let next = parent[Int(c)]
      parent[Int(c)] = r
      c = next
    }
    return Int(r)
  }

  /// What joining the clusters of `a` and `b` would do, without doing it.
  public mutating func check(_ a: Int, _ b: Int) -> Outcome {
    let ra = find(a)
    let rb = find(b)
    if ra == rb { return .alreadyTogether }
    let joined = Int(size[ra] + size[rb])
    if joined > maxSize { return .refusedSize(joined) }
    if let ha = held[Int32(ra)], let hb = held[Int32(rb)] {
      for (k, column) in identifiers.enumerated() {
        let union = Set(ha[k]).union(hb[k])
        if union.count > column.limit { return .refusedIdentifier(column.kind) }
      }
    }
    return .joined
  }

  @discardableResult
  public mutating func union(_ a: Int, _ b: Int) -> Outcome {
    let outcome = check(a, b)
    guard outcome == .joined else { return outcome }
    var ra = find(a)
    var rb = find(b)
    if size[ra] < size[rb] { swap(&ra, &rb) }
    parent[rb] = Int32(ra)
    size[ra] += size[rb]
    if let hb = held.removeValue(forKey: Int32(rb)) {
      if var ha = held[Int32(ra)] {
        for k in ha.indices { ha[k] = Array(Set(ha[k]).union(hb[k])).sorted() }
        held[Int32(ra)] = ha
      } else {
        held[Int32(ra)] = hb
      }
    }
    return .joined
  }

  public func clusterSize(root: Int) -> Int { Int(size[root]) }

  /// Each record's cluster as the index of the cluster's first record, so ids do not depend on join order.
  public mutating func representatives() -> [Int] {
    var first: [Int: Int] = [:]
    var out = Array(repeating: 0, count: parent.count)
    for i in 0..<parent.count {
      let r = find(i)
      if let f = first[r] {
        out[i] = f
      } else {
        first[r] = i
        out[i] = i
      }
    }
    return out
  }
}
