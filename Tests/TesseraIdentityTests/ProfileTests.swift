import TesseraIdentity
import TesseraModel
import Testing

@Suite("Identity graph: profiles and merges")
struct ProfileTests {
  @Test("an event with unknown identifiers creates a profile that owns them")
  func createsProfile() {
    var h = Harness()
    let r = h.see(uid("u1"), email("a@x.com"))
    #expect(r.created)
    #expect(r.profile == ProfileID(1))
    #expect(Set(r.attached) == [uid("u1"), email("a@x.com")])
    #expect(r.merges.isEmpty && r.conflicts.isEmpty && r.expired.isEmpty)
    #expect(h.graph.profile(of: uid("u1")) == r.profile)
    #expect(h.graph.profile(of: email("a@x.com")) == r.profile)
    #expect(h.graph.profile(of: email("nobody@x.com")) == nil)
    #expect(h.graph.profileCount == 1)
    checkInvariants(h.graph)
  }

  @Test("a known identifier resolves to its profile and the event's new identifiers attach to it")
  func attaches() {
    var h = Harness()
    let p = h.see(uid("u1")).profile
    let r = h.see(email("a@x.com"), uid("u1"))
    #expect(!r.created)
    #expect(r.profile == p)
    #expect(r.attached == [email("a@x.com")])
    #expect(r.merges.isEmpty && r.conflicts.isEmpty)
    let again = h.see(email("a@x.com"))
    #expect(again.profile == p && !again.created && again.attached.isEmpty)
    #expect(h.graph.identifiers(of: p) == [uid("u1"), email("a@x.com")])
    #expect(h.graph.profileCount == 1)
  }

  @Test("a new strongest identifier joins the profile the event's weaker identifiers reach")
  func provisionalJoinsExisting() {
    var h = Harness()
    let p = h.see(anon("dev-1")).profile
    let r = h.see(uid("u1"), anon("dev-1"))
    #expect(r.profile == p && !r.created)
    #expect(r.attached == [uid("u1")])
    #expect(r.merges.isEmpty && r.conflicts.isEmpty)
    #expect(h.graph.profile(of: uid("u1")) == p)
  }

  @Test("profile ids increase and are never reused, even after a merge")
  func stableIDs() {
    var h = Harness()
    #expect(h.see(email("a@x.com")).profile == ProfileID(1))
    #expect(h.see(email("b@x.com")).profile == ProfileID(2))
    #expect(h.see(email("a@x.com"), email("b@x.com")).profile == ProfileID(1))
    #expect(h.see(email("c@x.com")).profile == ProfileID(3))
    #expect(h.graph.profileCount == 2)
    #expect(h.graph.nextID == 4)
  }

  @Test("the order of identifiers in an event does not change the outcome")
  func identifierOrder() {
    let ids = [phone("+15550001"), uid("u1"), anon("d1"), email("a@x.com"), ip("10.0.0.1")]
    var a = Harness()
    var b = Harness()
    let ra = a.see(ids)
    let rb = b.see(ids.reversed())
    #expect(ra == rb)
    #expect(a.graph.members == b.graph.members)
    #expect(a.graph.owner == b.graph.owner)
  }

  @Test("an event reaching two profiles merges them; the older id survives and the other stays resolvable")
  func mergeOlderSurvives() throws {
    var h = Harness()
    let p1 = h.see(email("a@x.com")).profile
    let p2 = h.see(phone("+15550001"), ip("10.0.0.9")).profile
    let r = h.see(phone("+15550001"), email("a@x.com"), at: day(3))
    #expect(r.profile == p1 && !r.created)
    let m = try #require(r.merges.first)
    #expect(r.merges.count == 1)
    #expect(m.survivor == p1)
    #expect(m.absorbed == p2)
    #expect(m.rule == "by_phone")
    #expect(Set(m.evidence) == [email("a@x.com"), phone("+15550001")])
    #expect(m.eventID == "e3")
    #expect(m.at == day(3))
    #expect(m.score == 1)
    #expect(h.graph.canonical(p2) == p1)
    #expect(h.graph.canonical(p1) == p1)
    #expect(h.graph.aliases[p2] == p1)
    #expect(h.graph.members[p2] == nil)
    #expect(h.graph.profileCount == 1)
    #expect(h.graph.profile(of: phone("+15550001")) == p1)
    #expect(Set(h.graph.identifiers(of: p2)) == [email("a@x.com"), phone("+15550001"), ip("10.0.0.9")])
    #expect(h.graph.identifiers(of: p2) == h.graph.identifiers(of: p1))
    checkInvariants(h.graph)
  }

  @Test("the older profile survives even when the younger one is reached by the stronger identifier")
  func olderSurvivesWeakerLink() throws {
    var h = Harness()
    let older = h.see(anon("dev-1")).profile
    let younger = h.see(uid("u1"), email("a@x.com")).profile
    #expect(older < younger)
    let r = h.see(anon("dev-1"), uid("u1"))
    let m = try #require(r.merges.first)
    #expect(m.survivor == older && m.absorbed == younger)
    #expect(m.rule == "by_device")
    #expect(Set(m.evidence) == [uid("u1"), anon("dev-1")])
    #expect(r.profile == older)
    #expect(h.graph.profile(of: uid("u1")) == older)
    #expect(h.graph.canonical(younger) == older)
    checkInvariants(h.graph)
  }

  @Test("a merge's evidence is the identifiers that reached the two profiles, not a new id the event brought")
  func mergeEvidence() throws {
    var h = Harness()
    let p1 = h.see(email("a@x.com")).profile
    let p2 = h.see(phone("+15550001")).profile
    let r = h.see(uid("u3"), email("a@x.com"), phone("+15550001"))
    let m = try #require(r.merges.first)
    #expect(m.survivor == p1 && m.absorbed == p2)
    #expect(Set(m.evidence) == [email("a@x.com"), phone("+15550001")])
    #expect(r.attached == [uid("u3")])
  }

  @Test("merges chain: a profile absorbed twice over still resolves to the live survivor")
  func mergeChain() {
    var h = Harness()
    let p1 = h.see(anon("d1")).profile
    let p2 = h.see(phone("+15550002")).profile
    let p3 = h.see(email("c@x.com")).profile
    #expect(h.see(phone("+15550002"), email("c@x.com")).profile == p2)
    #expect(h.graph.aliases[p3] == p2)
    #expect(h.see(anon("d1"), phone("+15550002")).profile == p1)
    #expect(h.graph.aliases[p2] == p1)
    #expect(h.graph.canonical(p3) == p1)
    #expect(h.graph.profile(of: email("c@x.com")) == p1)
    #expect(Set(h.graph.identifiers(of: p3)) == [anon("d1"), phone("+15550002"), email("c@x.com")])
    #expect(h.graph.profileCount == 1)
    checkInvariants(h.graph)
  }

  @Test("one event reaching three profiles merges all of them into the oldest, recording each merge")
  func threeWayMerge() {
    var h = Harness()
    let p1 = h.see(anon("d1")).profile
    let p2 = h.see(phone("+15550002")).profile
    let p3 = h.see(email("c@x.com")).profile
    let r = h.see(email("c@x.com"), anon("d1"), phone("+15550002"), ip("10.1.1.1"))
    #expect(r.profile == p1)
    #expect(r.merges.count == 2)
    #expect(Set(r.merges.map(\.absorbed)) == [p2, p3])
    #expect(r.merges.last?.survivor == p1)
    #expect(r.attached == [ip("10.1.1.1")])
    for m in r.merges {
      #expect(m.survivor < m.absorbed)
      #expect(m.eventID == "e4")
    }
    #expect(h.graph.canonical(p2) == p1 && h.graph.canonical(p3) == p1)
    #expect(h.graph.linkPartition == [[anon("d1"), phone("+15550002"), email("c@x.com")]])
    checkInvariants(h.graph)
  }

  @Test("union is transitive across events: people linked through a chain of shared identifiers are one profile")
  func transitiveUnion() {
    var h = Harness()
    h.see(uid("u1"), email("a@x.com"))
    h.see(email("a@x.com"), phone("+15550001"))
    h.see(phone("+15550001"), anon("d1"))
    h.see(anon("d2"))
    let r = h.see(anon("d1"), anon("d2"))
    #expect(r.profile == ProfileID(1))
    #expect(h.graph.profileCount == 1)
    #expect(
      h.graph.linkPartition == [[uid("u1"), email("a@x.com"), phone("+15550001"), anon("d1"), anon("d2")]])
  }

  @Test("every merge is recorded with both profiles, the rule, the identifiers that linked them, the event, the time")
  func mergeRecords() {
    var h = Harness()
    var rng = SplitMix64(seed: 7)
    for n in 0..<200 {
      let ids = (0..<rng.int(1..<4)).map { _ -> Identifier in
        switch rng.int(0..<3) {
        case 0: return email("m\(rng.int(0..<40))@x.com")
        case 1: return phone("+1555\(rng.int(0..<40))")
        default: return anon("d\(rng.int(0..<40))")
        }
      }
      h.see(ids, at: day(Double(n) / 10))
    }
    #expect(!h.merges.isEmpty)
    #expect(h.merges.count == h.graph.aliases.count)
    for (k, r) in h.log.enumerated() {
      for m in r.merges {
        #expect(m.eventID == "e\(k + 1)")
        #expect(m.at == day(Double(k) / 10))
        #expect(h.graph.aliases[m.absorbed] == m.survivor)
        #expect(m.survivor < m.absorbed)
        #expect(m.evidence.count == 2)
        #expect(m.evidence.contains { Kinds.rules[$0.kind]?.rule == m.rule })
        for i in m.evidence { #expect(h.graph.profile(of: i) == h.graph.canonical(m.survivor)) }
      }
      if let last = r.merges.last { #expect(last.survivor == r.profile) }
    }
    checkInvariants(h.graph)
  }

  @Test("identifiers of kinds without a linking rule are stored on the profile but never link")
  func nonLinkingKinds() {
    var h = Harness()
    let p1 = h.see(uid("u1"), ip("10.0.0.1")).profile
    let p2 = h.see(uid("u2"), ip("10.0.0.1")).profile
    #expect(p1 != p2)
    #expect(h.graph.identifiers(of: p1).contains(ip("10.0.0.1")))
    #expect(h.graph.identifiers(of: p2).contains(ip("10.0.0.1")))
    #expect(h.graph.profile(of: ip("10.0.0.1")) == nil)
    #expect(h.graph.owner[ip("10.0.0.1")] == nil)
    let alone = h.see(ip("10.0.0.1"))
    #expect(alone.created)
    #expect(h.graph.profileCount == 3)
    // Seen again on the same profile, it is not listed twice.
    let again = h.see(uid("u1"), ip("10.0.0.1"))
    #expect(again.profile == p1 && again.attached.isEmpty)
    #expect(h.graph.identifiers(of: p1).filter { $0 == ip("10.0.0.1") }.count == 1)
    #expect(h.merges.isEmpty && h.conflicts.isEmpty)
    // A kind the rules do not mention at all is stored the same way.
    let r = h.see(uid("u1"), Identifier("loyalty_card", "LC-1"))
    #expect(r.profile == p1 && r.attached == [Identifier("loyalty_card", "LC-1")])
    #expect(h.graph.profile(of: Identifier("loyalty_card", "LC-1")) == nil)
    checkInvariants(h.graph)
  }
}
