import CompressNIO
import Foundation
import Hummingbird
import TesseraCompiler
import TesseraModel
import TesseraRuntime
import TesseraStore

/// The Segment/RudderStack tracking API: `POST /v1/batch` and one route per message type.
struct TrackingAPI: Sendable {
  /// One `http` source of the pipeline: its declaration and its mapper.
  struct Source: Sendable {
    var decl: SourceDecl
    var mapper: TrackingMapper
  }

  let sources: [String: Source]
  /// The largest request limit of any source: what is read before the write key in the body is known.
  let largestLimit: Int
  let pipeline: LivePipeline
  let metrics: ServerMetrics

  init(config: PipelineConfig, pipeline: LivePipeline, metrics: ServerMetrics) {
    var sources: [String: Source] = [:]
    for decl in config.sources where decl.kind == .http {
      guard let key = decl.writeKey else { continue }
      sources[key] = Source(decl: decl, mapper: TrackingMapper(source: decl, config: config))
    }
    self.sources = sources
    self.largestLimit = sources.values.map(\.decl.maxRequestBytes).max() ?? HTTPDefaults.maxRequestBytes
    self.pipeline = pipeline
    self.metrics = metrics
  }

  func register(on router: Router<BasicRequestContext>) {
    router.post("/v1/batch") { request, context in try await self.receive(request, context, type: nil) }
    for type in EventType.allCases {
      router.post("/v1/\(type.rawValue)") { request, context in try await self.receive(request, context, type: type) }
    }
  }

  /// The write key of `Authorization: Basic base64(key:)`; nil without such a header.
  static func basicUser(_ header: String?) -> String? {
    guard let header else { return nil }
    let parts = header.split(separator: " ", maxSplits: 1)
    guard parts.count == 2, parts[0].lowercased() == "basic",
      let data = Data(base64Encoded: String(parts[1]).trimmingCharacters(in: .whitespaces)),
      let text = String(data: data, encoding: .utf8)
    else { return "" }
    return String(text.split(separator: ":", maxSplits: 1, omittingEmptySubsequences: false).first ?? "")
  }

  static let noKey = APIError.unauthorized(
    "no write key: send the source's write key as the HTTP Basic user name (empty password) or as `writeKey` in the body",
    scheme: "Basic")
  static let wrongKey = APIError.unauthorized(
    "the write key does not belong to any http source of this pipeline", scheme: "Basic")

  static func tooLarge(_ limit: Int) -> APIError {
    APIError(
      status: .contentTooLarge, code: "request_too_large",
      message: "the request body exceeds the limit of \(limit) bytes (max_request_bytes); send fewer messages per batch"
    )
  }

  /// Reads the body up to `limit` bytes; more is a 413.
  static func collect(_ request: Request, limit: Int) async throws -> ByteBuffer {
    if let length = request.headers[.contentLength].flatMap(Int.init), length > limit { throw tooLarge(limit) }
    var buffer = ByteBuffer()
    for try await chunk in request.body {
      guard buffer.readableBytes + chunk.readableBytes <= limit else { throw tooLarge(limit) }
      buffer.writeImmutableBuffer(chunk)
    }
    return buffer
  }

  func receive(_ request: Request, _ context: BasicRequestContext, type: EventType?) async throws -> Response {
    let receivedAt = Timestamp(Date())
    let requestID = AccessMiddleware.requestID(context)
    // The source: from the Basic user name when given (a wrong one is refused before the body is read).
    var source: Source?
    if let user = Self.basicUser(request.headers[.authorization]) {
      guard let s = sources[user] else { throw Self.wrongKey }
      source = s
    }
    let limit = source?.decl.maxRequestBytes ?? largestLimit
    var body = try await Self.collect(request, limit: limit)
    if let encoding = request.headers[.contentEncoding]?.lowercased(), encoding != "identity" {
      guard encoding == "gzip" || encoding == "x-gzip" || encoding == "deflate" else {
        throw APIError(
          status: .unsupportedMediaType, code: "unsupported_encoding",
          message: "Content-Encoding `\(encoding)` is not supported; send gzip or no encoding")
      }
      do {
        body = try body.decompress(with: encoding == "deflate" ? .zlib() : .gzip(), maxSize: limit)
      } catch let e as CompressNIOError where e == .bufferOverflow {
        throw Self.tooLarge(limit)
      } catch {
        throw APIError(
          status: .badRequest, code: "bad_encoding", message: "the body is not valid \(encoding): \(error)")
      }
    }
    let parsed = try body.withUnsafeReadableBytes { raw in
      try raw.withMemoryRebound(to: UInt8.self) { bytes in try self.read(bytes, source: source, type: type) }
    }
    guard let source = parsed.source else { throw Self.noKey }
    guard body.readableBytes <= source.decl.maxRequestBytes else { throw Self.tooLarge(source.decl.maxRequestBytes) }
    // Map every message; the invalid ones are rejected one by one, never the whole batch.
    var batch = MappedBatch(seq: 0, events: [], rejected: [], invalidIdentifiers: 0)
    var rejections: [Value] = []
    // One copy of the body the events' records point into (each event keeps its message as received).
    let received = Array(body.readableBytesView)
    body.withUnsafeReadableBytes { raw in
      raw.withMemoryRebound(to: UInt8.self) { all in
        batch.events.reserveCapacity(parsed.spans.count)
        for (index, span) in parsed.spans.enumerated() {
          let bytes = UnsafeBufferPointer(rebasing: all[span])
          let outcome: Result<(Event, Int), TrackingMapper.Rejection>
          if span.count > source.decl.maxEventBytes {
            outcome = .failure(
              .init(
                code: "too_large",
                message:
                  "the message has \(span.count) bytes, over the limit of \(source.decl.maxEventBytes) (max_event_bytes)"
              ))
          } else {
            do {
              let message = try JSON.parse(bytes)
              outcome = source.mapper.map(
                message, bytes: bytes, type: type, sentAt: parsed.sentAt, receivedAt: receivedAt)
            } catch {
              outcome = .failure(.init(code: "malformed", message: "malformed JSON: \(error)"))
            }
          }
          switch outcome {
          case .success(let (mapped, invalid)):
            var event = mapped
            event.record = RecordBytes(received, span)
            batch.events.append(event)
            batch.invalidIdentifiers += invalid
          case .failure(let r):
            let record =
              span.count > source.decl.maxEventBytes
              ? String(decoding: bytes.prefix(source.decl.maxEventBytes), as: UTF8.self)
              : String(decoding: bytes, as: UTF8.self)
            batch.rejected.append(
              RejectedRecord(
                source: source.decl.name, line: index + 1, record: record,
                reason: "request \(requestID) message \(index): \(r.message)", at: receivedAt))
            rejections.append(
              .map(["index": .int(Int64(index)), "code": .string(r.code), "reason": .string(r.message)]))
            metrics.increment("tessera_events_rejected_total", ["source": source.decl.name, "reason": r.code])
          }
        }
      }
    }
    let stats: ResolveStats
    do {
      stats = try await pipeline.submit(batch)
    } catch let e as LivePipeline.Failure {
      switch e {
      case .closed:
        throw APIError(
          status: .serviceUnavailable, code: "shutting_down", message: "the server is shutting down; retry shortly",
          headers: [.retryAfter: "1"])
      case .store(_, let after):
        metrics.increment("tessera_requests_refused_total", ["reason": "store_unavailable"])
        throw APIError(
          status: .serviceUnavailable, code: "store_unavailable", message: e.description,
          headers: [.retryAfter: String(after)])
      }
    }
    metrics.increment("tessera_events_accepted_total", ["source": source.decl.name], by: Double(stats.events))
    metrics.increment("tessera_events_duplicate_total", ["source": source.decl.name], by: Double(stats.duplicates))
    metrics.increment("tessera_events_suppressed_total", ["source": source.decl.name], by: Double(stats.suppressed))
    return JSONResponse.make(
      .map([
        "success": .bool(true), "accepted": .int(Int64(batch.events.count)), "stored": .int(Int64(stats.events)),
        "duplicates": .int(Int64(stats.duplicates)), "rejected": .list(rejections),
      ]))
  }

  struct Parsed {
    var source: Source?
    var spans: [Range<Int>]
    var sentAt: Value
  }

  /// Finds the messages, the request's `sentAt` and, when the header named no source, the body's `writeKey`.
  func read(_ bytes: UnsafeBufferPointer<UInt8>, source: Source?, type: EventType?) throws -> Parsed {
    let top: Value
    do {
      top = try JSON.parseObject(bytes, keeping: [Array("writeKey".utf8), Array("sentAt".utf8)])
    } catch {
      throw APIError(status: .badRequest, code: "malformed_json", message: "the body is not JSON: \(error.description)")
    }
    guard case .map(let fields) = top else {
      throw APIError(
        status: .badRequest, code: "not_an_object", message: "the body must be a JSON object, found \(top.typeName)")
    }
    var source = source
    if source == nil {
      guard case .string(let key)? = fields["writeKey"], !key.isEmpty else { throw Self.noKey }
      guard let s = sources[key] else { throw Self.wrongKey }
      source = s
    }
    guard type == nil else { return Parsed(source: source, spans: [0..<bytes.count], sentAt: .null) }
    let spans: [Range<Int>]?
    do {
      spans = try BatchScanner.elements(of: "batch", in: bytes)
    } catch {
      throw APIError(status: .badRequest, code: "malformed_json", message: "the body is not JSON: \(error.message)")
    }
    guard let spans else {
      throw APIError(status: .badRequest, code: "no_batch", message: "the body has no `batch` array of messages")
    }
    return Parsed(source: source, spans: spans, sentAt: fields["sentAt"] ?? .null)
  }
}
