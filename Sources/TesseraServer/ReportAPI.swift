import Foundation
import Hummingbird
import TesseraMeasurement
import TesseraModel

// `GET /v1/reports/{name}`: the reports of the `measurement` section, as `tessera report` computes them.
extension ProfileAPI {
  func report(_ name: String, _ request: Request) async throws -> Response {
    let q = request.uri.queryParameters
    func time(_ key: String) throws -> Timestamp? {
      guard let text = q.get(key), !text.isEmpty else { return nil }
      guard let t = Timestamp(iso8601: text) else {
        throw APIError(
          status: .badRequest, code: "bad_parameter",
          message: "`\(key)` is not an ISO 8601 time (e.g. 2026-06-01 or 2026-06-01T12:00:00Z): `\(text)`")
      }
      return t
    }
    let byText = q.get("by") ?? "people"
    guard let units = CountingUnit.list(parsing: byText) else {
      throw APIError(
        status: .badRequest, code: "bad_parameter",
        message: "`by` takes people, devices, sessions, a comma-separated list of them, or all; found `\(byText)`")
    }
    let format = q.get("format") ?? "json"
    guard ["json", "csv", "svg"].contains(format) else {
      throw APIError(
        status: .badRequest, code: "bad_parameter", message: "`format` is json, csv or svg; found `\(format)`")
    }
    var query: ReportQuery
    do {
      query = try ReportQuery(config: config, name: name, from: try time("from"), to: try time("to"), units: units)
    } catch let e as UnknownReport {
      throw APIError(status: .notFound, code: "report_not_found", message: e.description)
    }
    if let p = q.get("paths") {
      guard let n = Int(p), n >= 0 else {
        throw APIError(status: .badRequest, code: "bad_parameter", message: "`paths` must be 0 or more, found `\(p)`")
      }
      query.topPaths = n
    }
    let report = try await Measurement.report(query, config: config, store: store)
    switch format {
    case "csv":
      return Response(
        status: .ok, headers: [.contentType: "text/csv; charset=utf-8"],
        body: ResponseBody(byteBuffer: ByteBuffer(string: report.csv)))
    case "svg":
      return Response(
        status: .ok, headers: [.contentType: "image/svg+xml"],
        body: ResponseBody(byteBuffer: ByteBuffer(string: report.svg)))
    default:
      return JSONResponse.make(report.json)
    }
  }
}
