import Foundation
import HTTPTypes
import Hummingbird
import Logging
import TesseraModel

/// An error the API answers with: a status and a JSON body with both `code` and `message` (RudderStack's SDK
/// retries a non-200 answer whose JSON lacks either).
struct APIError: Error, Sendable {
  var status: HTTPResponse.Status
  var code: String
  var message: String
  var headers: HTTPFields = [:]

  func response(requestID: String) -> Response {
    var h = headers
    h[.contentType] = "application/json"
    if let name = HTTPField.Name.requestID { h[name] = requestID }
    let body = JSON.encode(
      .map(["code": .string(code), "message": .string(message), "request_id": .string(requestID)]))
    return Response(status: status, headers: h, body: ResponseBody(byteBuffer: ByteBuffer(string: body)))
  }

  static func unauthorized(_ message: String, scheme: String) -> APIError {
    APIError(
      status: .unauthorized, code: "unauthorized", message: message,
      headers: [.wwwAuthenticate: "\(scheme) realm=\"tessera\""])
  }
}

enum JSONResponse {
  static func make(_ value: Value, status: HTTPResponse.Status = .ok) -> Response {
    Response(
      status: status, headers: [.contentType: "application/json"],
      body: ResponseBody(byteBuffer: ByteBuffer(string: JSON.encode(value))))
  }
}

/// Answers every error as JSON, counts requests and their latency by route, and logs one line per request
/// (debug) and every failure (warning), each with the request id.
struct AccessMiddleware: RouterMiddleware {
  typealias Context = BasicRequestContext
  let metrics: ServerMetrics

  static func requestID(_ context: Context) -> String {
    if case .stringConvertible(let id)? = context.logger[metadataKey: "hb.request.id"] { return id.description }
    if case .string(let id)? = context.logger[metadataKey: "hb.request.id"] { return id }
    return "-"
  }

  func handle(
    _ request: Request, context: Context, next: (Request, Context) async throws -> Response
  ) async throws -> Response {
    let started = ContinuousClock.now
    let id = Self.requestID(context)
    var response: Response
    do {
      response = try await next(request, context)
      if let name = HTTPField.Name.requestID { response.headers[name] = id }
    } catch let e as APIError {
      response = e.response(requestID: id)
      context.logger.warning(
        "\(request.method.rawValue) \(request.uri.path) \(e.status.code) \(e.code)",
        metadata: ["error": "\(e.message)"])
    } catch let e as HTTPError {
      let code =
        e.status == .notFound
        ? "not_found" : e.status.reasonPhrase.lowercased().replacingOccurrences(of: " ", with: "_")
      let message =
        e.status == .notFound
        ? "no route for \(request.method.rawValue) \(request.uri.path)" : (e.body ?? e.status.reasonPhrase)
      response = APIError(status: e.status, code: code, message: message).response(requestID: id)
      context.logger.warning("\(request.method.rawValue) \(request.uri.path) \(e.status.code) \(code)")
    } catch {
      context.logger.warning(
        "request failed", metadata: ["path": "\(request.uri.path)", "error": "\(String(describing: error))"])
      response = APIError(status: .internalServerError, code: "internal_error", message: "\(error)").response(
        requestID: id)
    }
    let elapsed = ContinuousClock.now - started
    let seconds = Double(elapsed.components.seconds) + Double(elapsed.components.attoseconds) / 1e18
    let route = context.endpointPath ?? "unmatched"
    metrics.increment(
      "tessera_http_requests_total",
      ["route": route, "method": request.method.rawValue, "status": String(response.status.code)])
    metrics.observe(
      "tessera_http_request_duration_seconds", ["route": route], seconds, buckets: ServerMetrics.latencyBuckets)
    context.logger.debug(
      "\(request.method.rawValue) \(request.uri.path) \(response.status.code)",
      metadata: ["route": "\(route)", "ms": "\(String(format: "%.2f", seconds * 1000))"])
    return response
  }
}

extension HTTPField.Name {
  /// The header that carries the request id of the logs (a valid field name, so never nil in practice).
  static let requestID = HTTPField.Name("X-Request-Id")
}
