import Foundation
import TesseraMeasurement
import TesseraModel
import Testing

@Suite struct FunnelTests {
  typealias F = Fixture

  @Test func stepsInOrderWithinTheWindowAndItsEdge() async throws {
    let t = F.day(5, "10:00")
    func at(_ minutes: Int, _ seconds: Int = 0) -> Timestamp {
      Timestamp(microseconds: t.microseconds + Int64(minutes * 60 + seconds) * 1_000_000)
    }
    let f = try await Fixture(events: [
      // A: all three steps, the last exactly at the end of the 1-hour window.
      F.event("a1", "track", "Product Viewed", anon: "A", at: at(0)),
      F.event("a2", "track", "Added to Cart", anon: "A", at: at(10)),
      F.event("a3", "track", "Order Completed", anon: "A", at: at(60)),
      // B: orders one second too late.
      F.event("b1", "track", "Product Viewed", anon: "B", at: at(0)),
      F.event("b2", "track", "Added to Cart", anon: "B", at: at(20)),
      F.event("b3", "track", "Order Completed", anon: "B", at: at(60, 1)),
      // C: the cart before the view does not count as step 2.
      F.event("c1", "track", "Added to Cart", anon: "C", at: at(0)),
      F.event("c2", "track", "Product Viewed", anon: "C", at: at(5)),
    ])
    defer { f.remove() }
    let r = try await f.report("checkout", by: [.people, .devices])
    let funnel = try #require(r.funnel(.people))
    #expect(funnel.steps.map(\.name) == ["viewed", "cart", "ordered"])
    #expect(funnel.steps.map(\.units) == [3, 2, 1])
    #expect(abs(funnel.steps[1].conversion - 200.0 / 3) < 1e-9)
    #expect(funnel.steps[2].fromPrevious == 50)
    #expect(funnel.steps[0].medianSeconds == nil)
    #expect(funnel.steps[1].medianSeconds == 900)
    #expect(funnel.steps[2].medianSeconds == 3000)
    #expect(r.funnel(.devices)?.steps.map(\.units) == [3, 2, 1])
    // Steps over event names never map a record again; pages of any size give the same funnel.
    for size in [1, 3, 7] {
      #expect(try await f.report("checkout", by: [.people, .devices], pageSize: size).json == r.json, "\(size)")
    }
  }

  @Test func aPersonAcrossDevicesCompletesWhatNoDeviceDoes() async throws {
    let f = try await Fixture(events: [
      F.event("v", "track", "Product Viewed", anon: "L", user: "u9", at: F.day(6, "10:00")),
      F.event("c", "track", "Added to Cart", anon: "P", user: "u9", at: F.day(6, "10:05")),
      F.event("o", "track", "Order Completed", anon: "L", at: F.day(6, "10:10"), revenue: 9),
    ])
    defer { f.remove() }
    let r = try await f.report("checkout", by: [.people, .devices])
    #expect(r.funnel(.people)?.steps.map(\.units) == [1, 1, 1])
    #expect(r.funnel(.devices)?.steps.map(\.units) == [1, 0, 0])
  }
}
