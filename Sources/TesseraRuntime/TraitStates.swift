/// A profile's unified traits by name: what `[String: TraitState]` was, in a small sorted array.
///
/// A profile holds two traits on average (eight at most in the example rules), and a Swift dictionary of two
/// allocates four buckets of a 16-byte key and a 184-byte state beside its header: ~890 bytes against ~430 for
/// the array. Over the 270,000 profiles of a 1M-event run that was ~100 MB of the run's memory, in the
/// partitions and again in the identity stage's copy of the traits the probabilistic rules read. Lookups are a
/// binary search over a handful of names; iteration is in name order, so whatever is built from it does not
/// depend on hashing.
public struct TraitStates: Sendable, Sequence, ExpressibleByDictionaryLiteral {
  public typealias Element = (key: String, value: TraitState)
  private var entries: [Element] = []

  public init() {}

  public init(dictionaryLiteral elements: (String, TraitState)...) {
    for (k, v) in elements { self[k] = v }
  }

  public var count: Int { entries.count }
  public var isEmpty: Bool { entries.isEmpty }
  /// The names, in order.
  public var keys: [String] { entries.map(\.key) }

  private func position(_ name: String) -> (found: Bool, at: Int) {
    var (low, high) = (0, entries.count)
    while low < high {
      let mid = (low + high) / 2
      if entries[mid].key < name { low = mid + 1 } else { high = mid }
    }
    return (low < entries.count && entries[low].key == name, low)
  }

  /// The state of `name`; setting nil removes it.
  public subscript(name: String) -> TraitState? {
    get {
      let (found, at) = position(name)
      return found ? entries[at].value : nil
    }
    set {
      let (found, at) = position(name)
      switch (found, newValue) {
      case (true, let v?): entries[at].value = v
      case (true, nil): entries.remove(at: at)
      case (false, let v?): entries.insert((name, v), at: at)
      case (false, nil): break
      }
    }
  }

  /// The states whose name `keep` accepts.
  public func filter(_ keep: (Element) throws -> Bool) rethrows -> TraitStates {
    var out = TraitStates()
    out.entries = try entries.filter(keep)
    return out
  }

  public func makeIterator() -> IndexingIterator<[Element]> { entries.makeIterator() }
}
