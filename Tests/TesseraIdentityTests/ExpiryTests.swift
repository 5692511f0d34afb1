import TesseraIdentity
import TesseraModel
import Testing

@Suite("Identity graph: expiry of anonymous identifiers")
struct ExpiryTests {
  @Test("an anonymous id last seen 800 days ago (expiry 730d) no longer links")
  func expiredStartsNewProfile() throws {
    var h = Harness()
    let p1 = h.see(uid("u1"), anon("dev-1"), at: day(0)).profile
    let r = h.see(anon("dev-1"), at: day(800))
    #expect(r.created)
    #expect(r.profile != p1)
    let released = try #require(r.expired.first)
    #expect(r.expired.count == 1)
    #expect(released.0 == anon("dev-1"))
    #expect(released.1 == p1)
    #expect(r.attached == [anon("dev-1")])
    #expect(r.merges.isEmpty && r.conflicts.isEmpty)
    #expect(h.graph.profile(of: anon("dev-1")) == r.profile)
    #expect(h.graph.identifiers(of: p1) == [uid("u1")])
    #expect(h.graph.owner[anon("dev-1")]?.lastSeen == day(800))
    checkInvariants(h.graph)
  }

  @Test("an anonymous id seen 700 days ago still links, and the event moves its last-seen time")
  func withinExpiryLinks() {
    var h = Harness()
    let p1 = h.see(uid("u1"), anon("dev-1"), at: day(0)).profile
    let r = h.see(anon("dev-1"), at: day(700))
    #expect(r.profile == p1 && !r.created)
    #expect(r.expired.isEmpty)
    #expect(r.touched == [anon("dev-1")])
    #expect(h.graph.owner[anon("dev-1")]?.lastSeen == day(700))
  }

  @Test("expiry is measured from the last sighting: 729 days links, 731 days does not")
  func boundary() {
    for (gap, links) in [(729.0, true), (731.0, false)] {
      var h = Harness()
      let p = h.see(anon("d"), at: day(10)).profile
      let r = h.see(anon("d"), at: day(10 + gap))
      #expect((r.profile == p) == links, "gap \(gap)")
      #expect(r.expired.isEmpty == links, "gap \(gap)")
    }
  }

  @Test("a device in regular use never expires: each event moves last seen forward")
  func slidingWindow() {
    var h = Harness()
    let p = h.see(uid("u1"), anon("dev-1"), at: day(0)).profile
    for d in stride(from: 700.0, through: 3500, by: 700) {
      let r = h.see(anon("dev-1"), at: day(d))
      #expect(r.profile == p, "day \(d)")
      #expect(r.expired.isEmpty)
      #expect(r.touched == [anon("dev-1")])
      #expect(h.graph.owner[anon("dev-1")]?.lastSeen == day(d))
    }
    // Any event of the profile that carries the device refreshes it, not only anonymous ones.
    let r = h.see(uid("u1"), anon("dev-1"), at: day(4000))
    #expect(r.touched == [anon("dev-1")])
    #expect(h.see(anon("dev-1"), at: day(4700)).profile == p)
  }

  @Test("an expired id joins whatever profile the rest of the event resolves to")
  func expiredJoinsOther() throws {
    var h = Harness()
    let p1 = h.see(uid("u1"), anon("dev-1"), at: day(0)).profile
    let p2 = h.see(uid("u2"), at: day(790)).profile
    let r = h.see(uid("u2"), anon("dev-1"), at: day(800))
    #expect(r.profile == p2)
    #expect(r.merges.isEmpty && r.conflicts.isEmpty)
    #expect(r.expired.map(\.1) == [p1])
    #expect(r.attached == [anon("dev-1")])
    #expect(h.graph.profile(of: anon("dev-1")) == p2)
    #expect(!h.graph.identifiers(of: p1).contains(anon("dev-1")))
    checkInvariants(h.graph)
  }

  @Test("an expired id reattaches to its own profile when the event's other identifiers lead there")
  func expiredReattachesToOwner() {
    var h = Harness()
    let p1 = h.see(uid("u1"), anon("dev-1"), at: day(0)).profile
    let r = h.see(uid("u1"), anon("dev-1"), at: day(800))
    #expect(r.profile == p1)
    #expect(r.expired.map(\.0) == [anon("dev-1")])
    #expect(r.attached == [anon("dev-1")])
    #expect(h.graph.profile(of: anon("dev-1")) == p1)
    #expect(h.graph.owner[anon("dev-1")]?.lastSeen == day(800))
  }

  @Test("an event older than the last sighting neither expires the id nor moves last seen back")
  func lateEvent() {
    var h = Harness()
    let p = h.see(anon("dev-1"), at: day(0)).profile
    h.see(anon("dev-1"), at: day(700))
    let late = h.see(anon("dev-1"), at: day(100))
    #expect(late.profile == p)
    #expect(late.touched.isEmpty && late.expired.isEmpty)
    #expect(h.graph.owner[anon("dev-1")]?.lastSeen == day(700))
    #expect(h.see(anon("dev-1"), at: day(1400)).profile == p)
  }

  @Test("kinds without expires_after never expire and are not reported as touched")
  func nonExpiringKinds() {
    var h = Harness()
    let p = h.see(email("a@x.com"), uid("u1"), at: day(0)).profile
    let r = h.see(email("a@x.com"), at: day(5000))
    #expect(r.profile == p)
    #expect(r.expired.isEmpty && r.touched.isEmpty)
    #expect(h.graph.owner[email("a@x.com")]?.lastSeen == day(5000))
  }

  @Test("a new anonymous id is attached, not touched")
  func attachedNotTouched() {
    var h = Harness()
    let r = h.see(uid("u1"), anon("d1"), at: day(1))
    #expect(r.attached.contains(anon("d1")))
    #expect(r.touched.isEmpty)
  }
}
