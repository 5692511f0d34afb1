import TesseraCompiler
import TesseraModel
import TesseraRuntime
import Testing

/// A profile's traits by name in a small sorted array (`TraitStates`) behave as the dictionary they replace.
@Suite struct TraitStatesTests {
  static func state(_ value: String, _ seconds: Int) -> TraitState? {
    UnificationFixture.policy(.most_recent).add(
      UnificationFixture.obs(.string(value), "web", "e\(seconds)", seconds), to: nil)
  }

  @Test func namesAreSetReplacedAndRemovedAndStayInOrder() throws {
    var traits: TraitStates = [:]
    #expect(traits.isEmpty)
    for (n, name) in ["plan", "email", "first_name", "zip", "city"].enumerated() {
      traits[name] = Self.state(name.uppercased(), n)
    }
    #expect(traits.keys == ["city", "email", "first_name", "plan", "zip"])
    #expect(traits.count == 5)
    #expect(traits["plan"]?.value == .string("PLAN"))
    #expect(traits["nope"] == nil)
    traits["email"] = Self.state("new@example.com", 9)
    #expect(traits["email"]?.value == .string("new@example.com"))
    #expect(traits.count == 5)
    traits["city"] = nil
    traits["zip"] = nil
    traits["absent"] = nil
    #expect(traits.keys == ["email", "first_name", "plan"])
    #expect(traits.map(\.key) == ["email", "first_name", "plan"])
    #expect(traits.map { $0.value.value } == [.string("new@example.com"), .string("FIRST_NAME"), .string("PLAN")])
    let kept = traits.filter { $0.key.hasSuffix("name") || $0.key == "plan" }
    #expect(kept.keys == ["first_name", "plan"])
    let literal: TraitStates = ["b": try #require(Self.state("2", 2)), "a": try #require(Self.state("1", 1))]
    #expect(literal.keys == ["a", "b"])
  }
}
