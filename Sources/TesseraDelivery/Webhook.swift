import AsyncHTTPClient
import Foundation
import NIOCore
import NIOHTTP1
import TesseraModel
import TesseraStore

/// Posts a batch as one JSON request:
///
///     POST url
///     Content-Type: application/json
///     Idempotency-Key: <the batch's key, the same on every attempt>
///     {"destination": "ads", "batch_id": "<key>", "attempt": 1, "sent_at": "…", "batch": [payload, …]}
///
/// 2xx is delivered; 408, 429, 5xx, timeouts and network errors are retried (honouring `Retry-After`);
/// any other status is a refusal.
public struct WebhookTarget: DeliveryTarget {
  public var destination: String
  public var url: String
  public var headers: [String: String]
  public var timeout: TimeSpan
  public var client: HTTPClient
  public var clock: @Sendable () -> Timestamp

  public init(
    destination: String, url: String, headers: [String: String], timeout: TimeSpan, client: HTTPClient,
    clock: @escaping @Sendable () -> Timestamp
  ) {
    self.destination = destination
    self.url = url
    self.headers = headers
    self.timeout = timeout
    self.client = client
    self.clock = clock
  }

  /// The request body of a batch.
  public func body(_ batch: DeliveryBatchRecord, _ rows: [OutboxRecord]) -> String {
    JSON.encode(
      .map([
        "destination": .string(destination), "batch_id": .string(batch.key), "attempt": .int(Int64(batch.attempts + 1)),
        "sent_at": .string(clock().iso8601), "batch": .list(rows.map(\.payload)),
      ]))
  }

  public func send(_ batch: DeliveryBatchRecord, _ rows: [OutboxRecord]) async -> SendOutcome {
    var request = HTTPClientRequest(url: url)
    request.method = .POST
    request.headers.add(name: "Content-Type", value: "application/json")
    request.headers.add(name: "User-Agent", value: "tessera")
    request.headers.add(name: "Idempotency-Key", value: batch.key)
    for (name, value) in headers.sorted(by: { $0.key < $1.key }) {
      request.headers.replaceOrAdd(name: name, value: value)
    }
    request.body = .bytes(ByteBuffer(string: body(batch, rows)))
    do {
      let response = try await client.execute(request, timeout: .microseconds(timeout.microseconds))
      let text = String(buffer: try await response.body.collect(upTo: 1 << 20))
      let status = Int(response.status.code)
      let excerpt = String(text.prefix(500))
      switch status {
      case 200..<300: return .delivered
      case 408, 429, 500...599:
        let after = response.headers.first(name: "Retry-After").flatMap { Self.retryAfter($0, now: clock()) }
        return .retry(status: status, error: excerpt, after: after)
      default: return .refused(status: status, error: excerpt)
      }
    } catch {
      return .retry(status: nil, error: "\(error)", after: nil)
    }
  }

  public func close() async throws {}

  /// `Retry-After`: seconds, or an HTTP date (RFC 9110 §10.2.3).
  public static func retryAfter(_ value: String, now: Timestamp) -> TimeSpan? {
    let v = value.trimmingCharacters(in: .whitespaces)
    if let seconds = Double(v), seconds >= 0 { return TimeSpan(seconds: seconds) }
    let f = DateFormatter()
    f.locale = Locale(identifier: "en_US_POSIX")
    f.timeZone = TimeZone(identifier: "GMT")
    f.dateFormat = "EEE, dd MMM yyyy HH:mm:ss zzz"
    guard let date = f.date(from: v) else { return nil }
    return TimeSpan(microseconds: max(0, Timestamp(date).microseconds - now.microseconds))
  }
}
