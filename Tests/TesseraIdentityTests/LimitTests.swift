import TesseraIdentity
import TesseraModel
import Testing

@Suite("Identity graph: limits, priorities and conflicts")
struct LimitTests {
  @Test("300 people sharing one device and one phone stay 300 profiles, each with its own user id")
  func sharedDeviceAndPhone() throws {
    var h = Harness()
    let device = anon("shared-tablet")
    let household = phone("+15550100")
    for n in 1...300 { h.see(uid("user-\(n)"), device, household) }
    // Everyone comes back on the shared device, and on the shared phone alone with their user id.
    for n in 1...300 { h.see(device, uid("user-\(n)")) }
    for n in stride(from: 300, through: 1, by: -1) { h.see(household, uid("user-\(n)")) }

    #expect(h.graph.profileCount == 300)
    #expect(h.merges.isEmpty)
    var profiles = Set<ProfileID>()
    for n in 1...300 {
      let p = try #require(h.graph.profile(of: uid("user-\(n)")))
      profiles.insert(p)
      #expect(h.graph.values(of: "user_id", in: p) == ["user-\(n)"])
    }
    #expect(profiles.count == 300)
    // The shared identifiers stay with the first person who brought them.
    let first = try #require(h.graph.profile(of: uid("user-1")))
    #expect(h.graph.profile(of: device) == first)
    #expect(h.graph.profile(of: household) == first)
    // Each of the other 299 people is refused a merge with the first on each of their three events.
    #expect(h.conflicts.count == 3 * 299)
    for c in h.conflicts {
      #expect(c.kind == "user_id")
      #expect(c.other == first)
      #expect(c.kept != first)
      #expect(c.reason.contains("more than 1 user_id value"))
    }
    // Every event landed on the profile of its user id, its strongest identifier.
    for r in h.log.dropFirst(300) {
      #expect(h.graph.identifiers(of: r.profile).contains { $0.kind == "user_id" })
    }
    checkInvariants(h.graph)
  }

  @Test("a device seen anonymously before anyone signs in joins only the first person who does")
  func anonymousDeviceFirst() throws {
    var h = Harness()
    let device = anon("kiosk")
    let p = h.see(device, phone("+15550100")).profile
    for n in 1...300 { h.see(uid("user-\(n)"), device, email("person\(n)@x.com")) }
    #expect(h.graph.profileCount == 300)
    #expect(h.graph.profile(of: uid("user-1")) == p)
    for n in 2...300 {
      let q = try #require(h.graph.profile(of: uid("user-\(n)")))
      #expect(q != p)
      #expect(h.graph.profile(of: email("person\(n)@x.com")) == q)
      #expect(h.graph.values(of: "user_id", in: q) == ["user-\(n)"])
    }
    #expect(h.conflicts.count == 299)
    #expect(h.merges.isEmpty)
    checkInvariants(h.graph)
  }

  @Test("a refused merge keeps the event on the profile of its strongest identifier and records the conflict")
  func refusedMerge() throws {
    var h = Harness()
    let p1 = h.see(uid("u1"), email("a@x.com")).profile
    let p2 = h.see(uid("u2"), phone("+15550002")).profile
    let r = h.see(phone("+15550002"), email("a@x.com"), at: day(2))
    #expect(r.profile == p1)  // email outranks phone
    #expect(r.merges.isEmpty)
    let c = try #require(r.conflicts.first)
    #expect(r.conflicts.count == 1)
    #expect(c.kept == p1)
    #expect(c.other == p2)
    #expect(c.kind == "user_id")
    #expect(c.reason == "merging would give the profile more than 1 user_id value")
    #expect(Set(c.identifiers) == [email("a@x.com"), phone("+15550002")])
    #expect(c.eventID == "e3")
    #expect(c.at == day(2))
    #expect(h.graph.profileCount == 2)
    #expect(h.graph.profile(of: phone("+15550002")) == p2)
    // With the user id of the second person the same identifiers land on the second profile.
    let r2 = h.see(phone("+15550002"), email("a@x.com"), uid("u2"))
    #expect(r2.profile == p2)
    #expect(r2.conflicts.map(\.other) == [p1])
    checkInvariants(h.graph)
  }

  @Test("an event carrying two new user ids keeps one, whatever their order, and records a conflict")
  func twoNewUserIDs() throws {
    for ids in [[uid("b"), uid("a"), email("x@x.com")], [email("x@x.com"), uid("a"), uid("b")]] {
      var h = Harness()
      let r = h.see(ids)
      #expect(r.created)
      #expect(Set(r.attached) == [uid("a"), email("x@x.com")])
      let c = try #require(r.conflicts.first)
      #expect(r.conflicts.count == 1)
      #expect(c.kept == r.profile && c.other == nil)
      #expect(c.kind == "user_id")
      #expect(c.identifiers == [uid("b")])
      #expect(c.reason == "attaching would give the profile more than 1 user_id value")
      #expect(h.graph.profile(of: uid("a")) == r.profile)
      #expect(h.graph.profile(of: uid("b")) == nil)
      #expect(!h.graph.identifiers(of: r.profile).contains(uid("b")))
      // The dropped user id is free to become its own person.
      let later = h.see(uid("b"))
      #expect(later.created && later.profile != r.profile)
      checkInvariants(h.graph)
    }
  }

  @Test("an event carrying a known and a new user id joins the known profile and attaches none of its new ids")
  func knownAndNewUserID() throws {
    var h = Harness()
    let p = h.see(uid("u1"), email("a@x.com")).profile
    // The new phone came with two people's user ids: which one it belongs to cannot be told, so it waits.
    let r = h.see(uid("u9"), uid("u1"), phone("+15550009"))
    #expect(r.profile == p && !r.created)
    #expect(r.attached.isEmpty)
    let c = try #require(r.conflicts.first)
    #expect(r.conflicts.count == 1)
    #expect(c.kept == p && c.other == nil && c.kind == "user_id")
    #expect(c.identifiers == [uid("u9"), phone("+15550009")])
    #expect(h.graph.profile(of: uid("u9")) == nil)
    #expect(h.graph.profile(of: phone("+15550009")) == nil)
    // With only the known user id, a new identifier attaches as usual.
    #expect(h.see(uid("u1"), phone("+15550009")).attached == [phone("+15550009")])
    checkInvariants(h.graph)
  }

  @Test("a conflict names the profile the event finally joined, even when a later merge absorbed the anchor")
  func conflictKeptIsFinalProfile() {
    var h = Harness()
    let p1 = h.see(anon("d1")).profile
    let p2 = h.see(uid("u2"), phone("+15550002")).profile
    let p3 = h.see(uid("u1"), email("a@x.com")).profile
    // Anchors on p3 (email), is refused p2 (a second user id), then merges p1 (device) into the older p1.
    let r = h.see(email("a@x.com"), phone("+15550002"), anon("d1"))
    #expect(r.profile == p1)
    #expect(r.merges.map(\.absorbed) == [p3])
    #expect(r.conflicts.map(\.other) == [p2])
    #expect(r.conflicts.map(\.kept) == [p1])
    #expect(h.graph.canonical(p3) == p1)
    #expect(h.graph.profile(of: uid("u2")) == p2)
    checkInvariants(h.graph)
  }

  @Test("an event carrying the user ids of two profiles keeps them apart")
  func twoKnownUserIDs() throws {
    var h = Harness()
    let p1 = h.see(uid("u1")).profile
    let p2 = h.see(uid("u2")).profile
    let r = h.see(uid("u2"), uid("u1"), email("shared@x.com"))
    #expect(r.profile == p1)
    #expect(r.merges.isEmpty)
    #expect(r.conflicts.map(\.other) == [p2])
    #expect(h.graph.profile(of: email("shared@x.com")) == p1)
    #expect(h.graph.profileCount == 2)
  }

  @Test("max_per_profile above one allows that many values and refuses the next")
  func limitAboveOne() throws {
    var h = Harness()
    let p = h.see(uid("u1"), email("e1@x.com")).profile
    h.see(uid("u1"), email("e2@x.com"))
    h.see(uid("u1"), email("e3@x.com"))
    #expect(h.graph.values(of: "email", in: p) == ["e1@x.com", "e2@x.com", "e3@x.com"])
    #expect(h.conflicts.isEmpty)
    let r = h.see(uid("u1"), email("e4@x.com"))
    #expect(r.profile == p && r.attached.isEmpty)
    let c = try #require(r.conflicts.first)
    #expect(c.kind == "email" && c.other == nil)
    #expect(c.identifiers == [email("e4@x.com")])
    #expect(c.reason == "attaching would give the profile more than 3 email values")
    #expect(h.graph.profile(of: email("e4@x.com")) == nil)
    // A merge that would bring the count over the limit is refused too.
    let q = h.see(email("e4@x.com"), email("e5@x.com")).profile
    let m = h.see(email("e1@x.com"), email("e5@x.com"))
    #expect(m.profile == p && m.merges.isEmpty)
    #expect(m.conflicts.map(\.other) == [q])
    #expect(m.conflicts.map(\.kind) == ["email"])
    checkInvariants(h.graph)
  }

  @Test("a limit is still enforced against a profile reached after the event's other profiles merged")
  func limitAfterMerge() {
    var h = Harness()
    let p1 = h.see(email("a@x.com")).profile
    let p2 = h.see(phone("+15550001")).profile
    let p3 = h.see(uid("u4"), anon("d1")).profile
    // The new user id u3 anchors, joins p1 by email, merges p2 by phone; p3 holds another user id.
    let r = h.see(uid("u3"), email("a@x.com"), phone("+15550001"), anon("d1"))
    #expect(r.profile == p1)
    #expect(r.merges.map(\.absorbed) == [p2])
    #expect(r.conflicts.map(\.other) == [p3])
    #expect(r.conflicts.map(\.kind) == ["user_id"])
    #expect(h.graph.values(of: "user_id", in: p1) == ["u3"])
    #expect(h.graph.profile(of: uid("u4")) == p3)
    #expect(h.graph.profile(of: anon("d1")) == p3)
    checkInvariants(h.graph)
  }

  @Test("a blocked email used by many people never glues them together")
  func blockedEmail() {
    var h = Harness()
    for n in 1...100 { h.see(uid("user-\(n)"), email("test@example.com")) }
    for n in 1...100 { h.see(email("test@example.com"), phone("+1555\(n)")) }
    #expect(h.graph.profileCount == 200)
    #expect(h.merges.isEmpty)
    #expect(h.graph.profile(of: email("test@example.com")) == nil)
    #expect(h.graph.owner[email("test@example.com")] == nil)
    checkInvariants(h.graph)
  }

  @Test("a blocked phone alone never resolves to an existing profile")
  func blockedPhone() {
    var h = Harness()
    let a = h.see(phone("+10000000000"))
    let b = h.see(phone("+10000000000"))
    #expect(a.created && b.created && a.profile != b.profile)
    #expect(h.graph.profile(of: phone("+10000000000")) == nil)
  }

  @Test("a blocked value does not use up max_per_profile, so the person's real value still links")
  func blockedDoesNotCount() throws {
    var rules = Kinds.rules
    rules["email"] = KindRule(priority: 2, maxPerProfile: 1, blocked: ["a-test@example.com"], rule: "by_email")
    var h = Harness(rules: rules)
    let r = h.see(uid("u1"), email("a-test@example.com"), email("zoe@x.com"))
    #expect(r.conflicts.isEmpty)
    #expect(h.graph.profile(of: email("zoe@x.com")) == r.profile)
    #expect(h.see(email("zoe@x.com")).profile == r.profile)
    // The placeholder on a later event is stored, not a conflict.
    let again = h.see(uid("u1"), email("a-test@example.com"))
    #expect(again.profile == r.profile && again.conflicts.isEmpty)
    checkInvariants(h.graph)
  }

  @Test("a kind's priority decides where the event goes: lower number is stronger")
  func priorityDecides() {
    var rules = Kinds.rules
    // Make phone stronger than email.
    rules["phone"] = KindRule(priority: 0, rule: "by_phone")
    var h = Harness(rules: rules)
    let pe = h.see(uid("u1"), email("a@x.com")).profile
    let pp = h.see(uid("u2"), phone("+15550002")).profile
    #expect(h.see(email("a@x.com"), phone("+15550002")).profile == pp)
    var d = Harness()
    let de = d.see(uid("u1"), email("a@x.com")).profile
    d.see(uid("u2"), phone("+15550002"))
    #expect(d.see(email("a@x.com"), phone("+15550002")).profile == de)
    #expect(pe != pp)
  }
}
