import TesseraCompiler
import TesseraLanguage
import TesseraModel

/// A profile entering or leaving a segment.
public struct SegmentChange: Sendable, Hashable, CustomStringConvertible {
  public enum Kind: String, Sendable, Hashable { case entered, exited }

  public var kind: Kind
  public var segment: String
  public var profile: ProfileID
  /// When the change was decided (the `now` the engine was given).
  public var time: Timestamp
  /// What the condition read when it decided: `traits.orders_90d`, `identifiers.email`, `segments.vip`,
  /// `profile.id` → value. Empty for exits caused by a merge.
  public var values: [String: Value]
  /// Set on the exits of a profile that was absorbed into this one by a merge.
  public var mergedInto: ProfileID?

  public init(
    kind: Kind, segment: String, profile: ProfileID, time: Timestamp, values: [String: Value],
    mergedInto: ProfileID? = nil
  ) {
    self.kind = kind
    self.segment = segment
    self.profile = profile
    self.time = time
    self.values = values
    self.mergedInto = mergedInto
  }

  public var entered: Bool { kind == .entered }

  public var description: String { "\(profile) \(kind.rawValue) \(segment) at \(time.iso8601)" }
}

/// What a segment condition reads of one profile.
public struct ProfileInputs: Sendable, Hashable {
  /// Declared and computed trait values by name; a missing trait reads as null.
  public var traits: [String: Value]
  /// One value per identifier kind (the strongest); a missing kind reads as null.
  public var identifiers: [String: Value]

  /// The faster, positional form: trait values in the engine's `traitOrder` and identifier values in its
  /// `identifierOrder`. When set, they are read instead of `traits` / `identifiers`.
  public var traitValues: [Value]?
  public var identifierValues: [Value]?

  public init(traits: [String: Value] = [:], identifiers: [String: Value] = [:]) {
    self.traits = traits
    self.identifiers = identifiers
  }

  public init(traitValues: [Value], identifierValues: [Value] = []) {
    self.traits = [:]
    self.identifiers = [:]
    self.traitValues = traitValues
    self.identifierValues = identifierValues
  }

  /// Takes the first identifier of each kind, so pass them strongest first.
  public init(traits: [String: Value], identifiers: [Identifier]) {
    var ids: [String: Value] = [:]
    for i in identifiers where ids[i.kind] == nil { ids[i.kind] = .string(i.value) }
    self.init(traits: traits, identifiers: ids)
  }
}

/// A set of small indexes: segments (memberships), computed traits (which changed), trait positions.
///
/// The first 64 indexes are kept inline and only the rest in an array, so the sets of a pipeline with up to
/// 64 computed traits, segments and trait positions allocate nothing. One is made for every event that feeds a
/// computed trait and for every segment evaluation, and one is kept per profile (its memberships): with the
/// words in an array each was a heap allocation, and reading a profile's memberships a second cache miss.
public struct IndexBits: Sendable, Hashable {
  /// Indexes 0..<64.
  var low: UInt64 = 0
  /// Indexes 64 and up, 64 per word; empty (no storage) when the set holds at most 64 indexes.
  var high: [UInt64]

  public init(count: Int) { high = count > 64 ? Array(repeating: 0, count: (count - 1) / 64) : [] }

  public func contains(_ i: Int) -> Bool {
    if i < 64 { return i >= 0 && low & (1 << UInt64(i)) != 0 }
    let w = (i - 64) >> 6
    return w < high.count && high[w] & (1 << UInt64(i & 63)) != 0
  }

  func intersects(_ o: IndexBits) -> Bool {
    if low & o.low != 0 { return true }
    for w in high.indices where w < o.high.count && high[w] & o.high[w] != 0 { return true }
    return false
  }

  public mutating func set(_ i: Int, _ on: Bool) {
    precondition(i >= 0, "a negative index")
    if i < 64 {
      if on { low |= 1 << UInt64(i) } else { low &= ~(1 << UInt64(i)) }
      return
    }
    let w = (i - 64) >> 6
    if on { high[w] |= 1 << UInt64(i & 63) } else { high[w] &= ~(1 << UInt64(i & 63)) }
  }

  /// Every bit off, keeping the storage.
  mutating func clear() {
    low = 0
    for w in high.indices { high[w] = 0 }
  }

  mutating func formUnion(_ o: IndexBits) {
    low |= o.low
    for w in o.high.indices where w < high.count { high[w] |= o.high[w] }
  }

  var isEmpty: Bool { low == 0 && high.allSatisfy { $0 == 0 } }

  /// The indexes in the set, ascending.
  var indexes: [Int] {
    var out: [Int] = []
    func add(_ word: UInt64, from base: Int) {
      var rest = word
      while rest != 0 {
        out.append(base + rest.trailingZeroBitCount)
        rest &= rest - 1
      }
    }
    add(low, from: 0)
    for (w, word) in high.enumerated() { add(word, from: 64 + w << 6) }
    return out
  }
}

/// Keeps every profile's segment memberships and re-evaluates them when the caller says a profile's inputs
/// changed (an event, a merge, a window expiry). Produces `entered`/`exited` changes only when a membership
/// flips, so re-evaluating an unchanged profile, or a restart with restored memberships, announces nothing.
///
/// Segments are evaluated in dependency order (a segment after the segments it reads, `dependsOn`), within one
/// pass, so `segments.high_value` in another condition reads the fresh membership. Time is always given by the
/// caller (`now`), which is also what `now()` reads in the conditions.
///
/// **Merges.** When profile A is absorbed into B, A ends: an `exited` change (with `mergedInto: B` and no
/// values) for each segment A was in, then B is re-evaluated over the merged inputs, which may enter B into
/// segments (or leave it where it was, announcing nothing).
public struct SegmentEngine: Sendable {
  struct Read: Sendable {
    var name: String
    var slot: Int
  }

  /// Segment names in declaration order (the order of their slots).
  public let names: [String]
  /// Segment names in evaluation order: every segment after the segments it depends on.
  public let evaluationOrder: [String]
  /// Trait names in the order of their slots (`PipelineConfig.segmentTraitOrder`).
  public let traitOrder: [String]
  /// Identifier kinds in the order of their slots.
  public let identifierOrder: [String]
  // Per segment, in declaration order: the condition, what it reads, its own slot.
  let conditions: [Evaluator]
  let reads: [[Read]]
  let ownSlots: [Int]
  let order: [Int]
  let index: [String: Int]
  let traitSlots: [Int]
  let identifierSlots: [Int]
  let idSlot: Int?
  let slotCount: Int
  var members: [ProfileID: IndexBits] = [:]
  /// The memberships of a profile in no segment (shared, not allocated per evaluation).
  let noMembers: IndexBits
  /// Slots reused by `evaluate` (see there).
  var scratch: [Value] = []
  /// The selection of the previous `evaluate`, reused for the next one's.
  var selectedScratch: [Bool] = []
  /// Per slot, whether some condition reads it.
  let isRead: [Bool]
  /// Whether some condition reads an identifier (else the caller need not look them up).
  public let readsIdentifiers: Bool
  /// Per segment, in declaration order: the positions (in `traitOrder`) of the traits its condition reads, the
  /// segments it reads, and whether it is evaluated whenever its profile is (it reads the clock, an identifier
  /// or the profile id: inputs the caller does not report as changed).
  let traitInputs: [IndexBits]
  let segmentInputs: [[Int]]
  let volatile: [Bool]
  /// The positions of each trait name in `traitOrder` (a repeated name has several).
  let traitPositions: [String: [Int]]
  /// Members per segment, in declaration order.
  public private(set) var memberCounts: [Int]

  /// `traits` and `identifiers` in the order the compiler built the segment scope with
  /// (`PipelineConfig.segmentTraitOrder`, `config.identifiers`). `memberships` restores stored memberships.
  public init(
    segments: [SegmentDecl], traits: [String], identifiers: [String], memberships: [ProfileID: Set<String>] = [:]
  ) {
    let names = segments.map(\.name)
    let scope = Scopes.profile(
      place: "a segment condition", traits: traits.map { ($0, ExprType.dyn) }, identifiers: identifiers,
      segments: names)
    func slot(_ reference: String) -> Int? {
      if let v = scope.variables[reference] { return v.slot }
      let parts = reference.split(separator: ".", maxSplits: 1).map(String.init)
      guard parts.count == 2 else { return nil }
      return scope.namespaces[parts[0]]?.fields[parts[1]]?.slot
    }
    self.names = names
    self.conditions = segments.map { s in
      let c = s.condition
      return { c.evaluate($0) }
    }
    self.reads = segments.map { s in
      s.condition.references.sorted().compactMap { r in slot(r).map { Read(name: r, slot: $0) } }
    }
    self.ownSlots = segments.map { slot("segments.\($0.name)") ?? 0 }
    self.index = Dictionary(names.enumerated().map { ($1, $0) }, uniquingKeysWith: { a, _ in a })
    self.traitOrder = traits
    self.identifierOrder = identifiers
    // Every name has a slot; a repeated name keeps the slot of its first occurrence, as the scope does.
    self.traitSlots = traits.map { slot("traits.\($0)") ?? 0 }
    self.identifierSlots = identifiers.map { slot("identifiers.\($0)") ?? 0 }
    self.idSlot = slot("profile.id")
    self.slotCount = scope.slotCount
    var isRead = Array(repeating: false, count: scope.slotCount)
    for r in reads.joined() where r.slot < isRead.count { isRead[r.slot] = true }
    self.isRead = isRead
    self.readsIdentifiers = identifierSlots.contains { $0 < isRead.count && isRead[$0] }
    // Every position whose slot a condition reads (positions sharing a slot — a repeated name — all count).
    var positionsOfSlot: [Int: [Int]] = [:]
    for (n, s) in traitSlots.enumerated() { positionsOfSlot[s, default: []].append(n) }
    var segmentOfSlot: [Int: Int] = [:]
    for (i, s) in ownSlots.enumerated() where segmentOfSlot[s] == nil { segmentOfSlot[s] = i }
    let personal = Set(identifierSlots + (idSlot.map { [$0] } ?? []))
    self.traitInputs = reads.map { rs in
      var bits = IndexBits(count: traits.count)
      for r in rs { for n in positionsOfSlot[r.slot] ?? [] { bits.set(n, true) } }
      return bits
    }
    var traitPositions: [String: [Int]] = [:]
    for (n, name) in traits.enumerated() { traitPositions[name, default: []].append(n) }
    self.traitPositions = traitPositions
    self.segmentInputs = reads.map { rs in rs.compactMap { segmentOfSlot[$0.slot] } }
    self.volatile = zip(segments, reads).map { s, rs in
      s.condition.readsClock || rs.contains { personal.contains($0.slot) }
    }
    let order = Self.topologicalOrder(segments)
    self.order = order
    self.evaluationOrder = order.map { names[$0] }
    self.memberCounts = Array(repeating: 0, count: names.count)
    self.noMembers = IndexBits(count: names.count)
    for (p, set) in memberships {
      var bits = IndexBits(count: names.count)
      for name in set {
        guard let i = index[name] else { continue }
        bits.set(i, true)
        memberCounts[i] += 1
      }
      if !bits.isEmpty { members[p] = bits }
    }
  }

  public init(config: PipelineConfig, memberships: [ProfileID: Set<String>] = [:]) {
    self.init(
      segments: config.segments, traits: config.segmentTraitOrder, identifiers: config.identifiers.map(\.name),
      memberships: memberships)
  }

  /// Kahn's algorithm, taking ready segments in declaration order. Cycles (which the compiler rejects) are
  /// appended in declaration order rather than dropped.
  static func topologicalOrder(_ segments: [SegmentDecl]) -> [Int] {
    let index = Dictionary(segments.enumerated().map { ($1.name, $0) }, uniquingKeysWith: { a, _ in a })
    var pending = segments.map { s in Set(s.dependsOn.compactMap { index[$0] }) }
    var done = Array(repeating: false, count: segments.count)
    var out: [Int] = []
    var progress = true
    while out.count < segments.count && progress {
      progress = false
      for i in segments.indices where !done[i] && pending[i].isEmpty {
        done[i] = true
        out.append(i)
        progress = true
        for j in segments.indices { pending[j].remove(i) }
        break
      }
    }
    for i in segments.indices where !done[i] { out.append(i) }
    return out
  }

  // MARK: evaluation

  /// Re-evaluates one profile whose inputs changed; returns the memberships that flipped.
  public mutating func evaluate(_ profile: ProfileID, inputs: ProfileInputs, now: Timestamp) -> [SegmentChange] {
    if let traits = inputs.traitValues, let ids = inputs.identifierValues {
      return evaluate(
        profile, now: now, trait: { n in n < traits.count ? traits[n] : .null },
        identifier: { n in n < ids.count ? ids[n] : .null })
    }
    let (traitOrder, identifierOrder) = (self.traitOrder, self.identifierOrder)
    return evaluate(
      profile, now: now,
      trait: { n in
        if let values = inputs.traitValues { return n < values.count ? values[n] : .null }
        return inputs.traits[traitOrder[n]] ?? .null
      },
      identifier: { n in
        if let values = inputs.identifierValues { return n < values.count ? values[n] : .null }
        return inputs.identifiers[identifierOrder[n]] ?? .null
      })
  }

  /// The same, reading the inputs positionally: `trait(n)` is the value of `traitOrder[n]`, `identifier(n)`
  /// that of `identifierOrder[n]`. The resolver's path: no `ProfileInputs` is built.
  ///
  /// `changed`: when given, the trait positions that may hold another value than at the profile's previous
  /// evaluation; only the segments that read one of them (or a segment evaluated in this pass, or the clock,
  /// an identifier or the profile id) are evaluated, the others keep their membership — which is what
  /// evaluating them would give, their inputs being the same. Nil: every segment is evaluated.
  public mutating func evaluate(
    _ profile: ProfileID, now: Timestamp, changed: IndexBits? = nil, trait: (Int) -> Value,
    identifier: (Int) -> Value
  ) -> [SegmentChange] {
    guard !conditions.isEmpty else { return [] }
    var selected: [Bool]?
    if let changed {
      // The previous call's array, refilled: every position is written below.
      var sel =
        selectedScratch.count == conditions.count ? selectedScratch : Array(repeating: false, count: conditions.count)
      selectedScratch = []
      var any = false
      // Dependency order: a segment's inputs among the segments are decided before it.
      for i in order {
        sel[i] = volatile[i] || traitInputs[i].intersects(changed) || segmentInputs[i].contains { sel[$0] }
        any = any || sel[i]
      }
      defer { selectedScratch = sel }
      if !any { return [] }
      selected = sel
    }
    // The slots of the previous evaluation are filled again rather than allocated per profile: every slot
    // written below is written on each evaluation, so nothing of the previous profile is read.
    var env = Env(
      slots: scratch.count == slotCount ? scratch : Array(repeating: Value.null, count: slotCount), now: now)
    scratch = []
    defer { scratch = env.slots }
    // Only the slots some condition reads are filled (the others are never read).
    if let idSlot, isRead[idSlot] { env.slots[idSlot] = .string(profile.description) }
    if let selected {
      // Only the traits the selected conditions read; the other slots hold whatever an earlier profile left,
      // and no selected condition reads them.
      var needed = IndexBits(count: traitSlots.count)
      for i in conditions.indices where selected[i] { needed.formUnion(traitInputs[i]) }
      for n in needed.indexes { env.slots[traitSlots[n]] = trait(n) }
    } else {
      for (n, s) in traitSlots.enumerated() where isRead[s] { env.slots[s] = trait(n) }
    }
    for (n, s) in identifierSlots.enumerated() where isRead[s] { env.slots[s] = identifier(n) }
    let current = members[profile] ?? noMembers
    for (i, s) in ownSlots.enumerated() { env.slots[s] = .bool(current.contains(i)) }
    var next = current
    var changes: [SegmentChange] = []
    for i in order {
      if let selected, !selected[i] { continue }
      let isIn = conditions[i](env).isTrue
      env.slots[ownSlots[i]] = .bool(isIn)
      guard isIn != current.contains(i) else { continue }
      next.set(i, isIn)
      memberCounts[i] += isIn ? 1 : -1
      var values: [String: Value] = [:]
      values.reserveCapacity(reads[i].count)
      for r in reads[i] { values[r.name] = env.slots[r.slot] }
      changes.append(
        SegmentChange(kind: isIn ? .entered : .exited, segment: names[i], profile: profile, time: now, values: values))
    }
    if next != current { members[profile] = next.isEmpty ? nil : next }
    return changes
  }

  /// Re-evaluates the profiles whose inputs changed, in profile order; `inputs` gives each one's inputs (nil
  /// skips the profile).
  public mutating func evaluate(
    _ profiles: some Sequence<ProfileID>, now: Timestamp, inputs: (ProfileID) -> ProfileInputs?
  ) -> [SegmentChange] {
    var out: [SegmentChange] = []
    for p in Set(profiles).sorted() {
      guard let i = inputs(p) else { continue }
      out += evaluate(p, inputs: i, now: now)
    }
    return out
  }

  /// Profile `absorbed` was merged into `survivor`: the absorbed profile exits every segment it was in, then
  /// the survivor is re-evaluated over its merged inputs.
  public mutating func merge(
    absorbed: ProfileID, into survivor: ProfileID, survivorInputs: ProfileInputs, now: Timestamp
  ) -> [SegmentChange] {
    var out = end(absorbed, now: now, mergedInto: survivor)
    out += evaluate(survivor, inputs: survivorInputs, now: now)
    return out
  }

  /// The profile is gone (deleted, or about to be rebuilt): it exits every segment it was in.
  public mutating func remove(_ profile: ProfileID, now: Timestamp) -> [SegmentChange] {
    end(profile, now: now, mergedInto: nil)
  }

  mutating func end(_ profile: ProfileID, now: Timestamp, mergedInto: ProfileID?) -> [SegmentChange] {
    guard let bits = members.removeValue(forKey: profile) else { return [] }
    var out: [SegmentChange] = []
    for i in order where bits.contains(i) {
      memberCounts[i] -= 1
      out.append(
        SegmentChange(
          kind: .exited, segment: names[i], profile: profile, time: now, values: [:], mergedInto: mergedInto))
    }
    return out
  }

  // MARK: queries

  public func isMember(_ profile: ProfileID, of segment: String) -> Bool {
    guard let i = index[segment], let bits = members[profile] else { return false }
    return bits.contains(i)
  }

  /// The segments a profile is in, in declaration order.
  public func segments(of profile: ProfileID) -> [String] {
    guard let bits = members[profile] else { return [] }
    return names.indices.filter { bits.contains($0) }.map { names[$0] }
  }

  /// A segment's members, in profile order.
  public func members(of segment: String) -> [ProfileID] {
    guard let i = index[segment] else { return [] }
    return members.compactMap { $0.value.contains(i) ? $0.key : nil }.sorted()
  }

  public func memberCount(of segment: String) -> Int { index[segment].map { memberCounts[$0] } ?? 0 }

  /// Every membership, to store (and to restore through `init(…, memberships:)`).
  public var memberships: [ProfileID: Set<String>] {
    members.mapValues { bits in Set(names.indices.filter { bits.contains($0) }.map { names[$0] }) }
  }
}
