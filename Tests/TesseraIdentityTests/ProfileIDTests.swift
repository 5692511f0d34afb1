import TesseraIdentity
import TesseraModel
import Testing

/// The graph keeps per-profile state in arrays indexed by the profile id (ids are handed out densely); ids far
/// beyond the others, as a store from elsewhere may hold, must behave exactly the same.
@Suite("Identity graph: profile ids of any size")
struct ProfileIDTests {
  @Test("profiles restored with ids far apart resolve, merge and count like any others")
  func farApart() {
    var g = IdentityGraph(rules: Kinds.rules)
    let huge = ProfileID(5_000_000_000_000)
    let huger = ProfileID(7_000_000_000_000)
    g.restore(profile: ProfileID(3), identifiers: [(uid("u3"), epoch)])
    g.restore(profile: huge, identifiers: [(email("a@x.com"), epoch)])
    g.restore(profile: huger, identifiers: [(email("b@x.com"), epoch)])
    g.restoreAlias(ProfileID(9_000_000_000_000), into: huger)
    #expect(g.profileCount == 3)
    #expect(g.canonical(ProfileID(9_000_000_000_000)) == huger)
    #expect(g.profile(of: email("a@x.com")) == huge)

    // One event joins the small and a huge profile: the smaller id survives, and the alias chain follows.
    let r = g.resolve([uid("u3"), email("a@x.com")], eventID: "e1", at: day(1))
    #expect(r.profile == ProfileID(3))
    #expect(r.merges.map(\.absorbed) == [huge])
    #expect(g.canonical(huge) == ProfileID(3))
    #expect(g.identifiers(of: huge) == [uid("u3"), email("a@x.com")])
    #expect(g.profileCount == 2)

    // A new profile takes the next id after the largest seen, and is found again.
    let fresh = g.resolve([email("c@x.com")], eventID: "e2", at: day(2))
    #expect(fresh.created && fresh.profile == ProfileID(9_000_000_000_001))
    #expect(g.resolve([email("c@x.com")], eventID: "e3", at: day(3)).profile == fresh.profile)
    #expect(g.aliases == [huge: ProfileID(3), ProfileID(9_000_000_000_000): huger])
    #expect(Set(g.members.keys) == [ProfileID(3), huger, fresh.profile])
    checkInvariants(g)
  }

  @Test("an id restored ahead of the others is still found once the dense ids reach it")
  func caughtUp() {
    var g = IdentityGraph(rules: Kinds.rules)
    g.restore(profile: ProfileID(70_000), identifiers: [(uid("far"), epoch)])
    g.restore(profile: ProfileID(60_000), identifiers: [(uid("near"), epoch)])
    g.restore(profile: ProfileID(70_001), identifiers: [(uid("next"), epoch)])
    g.restoreAlias(ProfileID(70_005), into: ProfileID(70_000))
    #expect(g.profileCount == 3)
    #expect(g.identifiers(of: ProfileID(70_000)) == [uid("far")])
    #expect(g.identifiers(of: ProfileID(70_005)) == [uid("far")])
    let r = g.resolve([uid("far"), email("f@x.com")], eventID: "e1", at: day(1))
    #expect(r.profile == ProfileID(70_000) && !r.created)
    #expect(g.identifiers(of: ProfileID(70_000)) == [uid("far"), email("f@x.com")])
    #expect(g.resolve([uid("zzz")], eventID: "e2", at: day(2)).profile == ProfileID(70_006))
    checkInvariants(g)
  }
}
