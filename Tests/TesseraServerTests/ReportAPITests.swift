import Foundation
import TesseraModel
import Testing

/// `GET /v1/reports/{name}` on a real server: the tracking API's messages measured by people and by device.
@Suite struct ReportAPITests {
  static let pipeline =
    testPipeline + """

      measurement:
        touchpoints:
          visit:
            where: type == "page"
            channel: coalesce(context.campaign.medium, url_host(context.page.referrer))
        conversions:
          purchase: { where: event == "Order Completed", value: properties.revenue }
        attribution:
          credit: { conversion: purchase, lookback: 7d }
      """

  @Test("a laptop's email visit gets the phone's purchase once the person is known; by device it is unattributed")
  func report() async throws {
    let h = try await Harness.start(pipeline: Self.pipeline)
    let batch = """
      {"batch": [
        {"type": "page", "messageId": "m1", "anonymousId": "laptop", "timestamp": "2026-11-01T10:00:00Z",
         "context": {"campaign": {"medium": "email", "name": "nov"}}},
        {"type": "identify", "messageId": "m2", "anonymousId": "laptop", "userId": "u1",
         "timestamp": "2026-11-01T10:05:00Z"},
        {"type": "track", "messageId": "m3", "anonymousId": "phone", "userId": "u1", "event": "Order Completed",
         "timestamp": "2026-11-02T09:00:00Z", "properties": {"revenue": 80}}
      ]}
      """
    #expect(try await h.track(batch).status == 200)
    let r = try await h.admin(.GET, "/v1/reports/credit?by=people,devices")
    #expect(r.status == 200, "\(r.text)")
    #expect(r["kind"] == .string("attribution"))
    #expect(r["by.people.conversions"] == .int(1))
    #expect(r["by.people.unattributed"] == .int(0))
    let firstTouch = r["by.people.models.first_touch"].list
    #expect(firstTouch.first?.lookup(["key"]) == .string("email"))
    #expect(firstTouch.first?.lookup(["value"]) == .double(80))
    #expect(r["by.devices.unattributed"] == .int(1))
    #expect(r["by.devices.units"] == .int(2))

    let csv = try await h.admin(.GET, "/v1/reports/credit?format=csv")
    #expect(csv.status == 200)
    #expect(csv.text.contains("people,credit,first_touch,email,1,,80\n"))
    let svg = try await h.admin(.GET, "/v1/reports/credit?format=svg")
    #expect(svg.text.hasPrefix("<svg"))
    // Before the purchase's time window: nothing converts.
    let before = try await h.admin(.GET, "/v1/reports/credit?to=2026-11-02")
    #expect(before["by.people.conversions"] == .int(0))

    #expect(try await h.admin(.GET, "/v1/reports/credit", token: nil).status == 401)
    let unknown = try await h.admin(.GET, "/v1/reports/credits")
    #expect(unknown.status == 404)
    #expect(unknown["message"] == .string("no report `credits`; did you mean `credit`?; the pipeline declares: credit"))
    let badBy = try await h.admin(.GET, "/v1/reports/credit?by=visits")
    #expect(badBy.status == 400)
    #expect(try await h.admin(.GET, "/v1/reports/credit?from=yesterday").status == 400)
    try await h.stop()
  }
}
