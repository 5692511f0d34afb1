import TesseraModel
import TesseraRuntime
import TesseraStore
import Testing

/// Trait rows no longer carry why their value won: readers tell it from the store's trait policies.
@Suite("Trait explanations")
struct TraitWhyTests {
  static let policies = TraitPolicies(
    traits: [
      "first_name": .init(kind: "source_priority", sources: ["crm", "pos", "web"]),
      "lifetime_value": .init(kind: "max"),
    ],
    other: .init(kind: "most_recent"), consent: .init(kind: "most_recent"))

  static func row(_ trait: String, state: Value, source: String = "crm") -> TraitRecord {
    TraitRecord(
      profile: ProfileID(1), trait: trait, value: .string("x"), source: source, eventID: "e1",
      timestamp: Timestamp(microseconds: 1_780_000_000_000_000), state: state)
  }

  @Test("the policy of the trait (or of undeclared traits) explains the row's value")
  func fromPolicies() {
    #expect(
      Self.row("first_name", state: .map(["n": .int(3)])).why(policies: Self.policies)
        == "source priority (crm > pos > web): crm is the most trusted source with a value")
    #expect(
      Self.row("lifetime_value", state: .map(["n": .int(2)])).why(policies: Self.policies) == "largest of 2 values")
    #expect(
      Self.row("city", state: .map(["n": .int(1)])).why(policies: Self.policies)
        == "most recent (2026-05-28T20:26:40Z)")
  }

  @Test("a row written by an earlier version keeps its own sentence; nothing to go by gives nil")
  func storedOrNone() {
    let old = Self.row("first_name", state: .map(["n": .int(2), "why": .string("as written then")]))
    #expect(old.why(policies: Self.policies) == "as written then")
    #expect(old.why(policies: nil) == "as written then")
    #expect(Self.row("first_name", state: .map(["n": .int(2)])).why(policies: nil) == nil)
    #expect(Self.row("first_name", state: .null).why(policies: Self.policies) == nil)
  }
}
