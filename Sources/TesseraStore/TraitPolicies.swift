import TesseraModel

/// How the pipeline that last wrote a store's trait rows unifies each trait: the policy and, for
/// `source_priority`, the sources in order of trust.
///
/// Readers explain a trait's value from it ("why": `most recent (…)`, `source priority (crm > pos > web): …`),
/// so the trait rows do not each carry that sentence. They did: it was two thirds of every trait row's bytes, and
/// a bulk run rewrites the rows of every profile it touches in each transaction (~9 % of a 1M-event SQLite run's
/// store and ~10 % of its time). Stores write it with each transaction that writes trait rows.
public struct TraitPolicies: Sendable, Hashable {
  public struct Policy: Sendable, Hashable {
    /// `PolicyKind`'s raw value.
    public var kind: String
    public var sources: [String]
    public init(kind: String, sources: [String] = []) {
      self.kind = kind
      self.sources = sources
    }
  }
  /// The declared traits' policies.
  public var traits: [String: Policy]
  /// The policy of traits the pipeline does not declare.
  public var other: Policy
  /// The policy of consent states (`consent.PURPOSE`) the pipeline does not declare.
  public var consent: Policy

  public init(traits: [String: Policy], other: Policy, consent: Policy) {
    self.traits = traits
    self.other = other
    self.consent = consent
  }

  public func policy(for trait: String) -> Policy {
    if let p = traits[trait] { return p }
    return trait.hasPrefix("consent.") ? consent : other
  }

  /// As a store keeps it: a JSON object (`{"traits": {name: {"policy": …, "sources": […]}}, "other": …, "consent": …}`).
  public var encoded: String {
    func value(_ p: Policy) -> Value {
      p.sources.isEmpty
        ? .map(["policy": .string(p.kind)])
        : .map(["policy": .string(p.kind), "sources": .list(p.sources.map { .string($0) })])
    }
    return JSON.encode(
      .map([
        "traits": .map(traits.mapValues(value)), "other": value(other), "consent": value(consent),
      ]))
  }

  /// Reads what `encoded` wrote; nil for anything else.
  public init?(encoded text: String) {
    guard case .map(let m)? = try? JSON.parse(text) else { return nil }
    func policy(_ v: Value?) -> Policy? {
      guard case .map(let p)? = v, case .string(let kind)? = p["policy"] else { return nil }
      var sources: [String] = []
      if case .list(let l)? = p["sources"] { sources = l.compactMap(\.stringValue) }
      return Policy(kind: kind, sources: sources)
    }
    guard let other = policy(m["other"]), let consent = policy(m["consent"]) else { return nil }
    var traits: [String: Policy] = [:]
    if case .map(let t)? = m["traits"] {
      for (name, v) in t { if let p = policy(v) { traits[name] = p } }
    }
    self.init(traits: traits, other: other, consent: consent)
  }
}
