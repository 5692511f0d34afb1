import Foundation
import Hummingbird
import TesseraCompiler
import TesseraModel
import TesseraRuntime
import TesseraStore

/// The profile and admin API (`Authorization: Bearer TOKEN`), health and metrics.
struct ProfileAPI: Sendable {
  let config: PipelineConfig
  let store: any Store
  let pipeline: LivePipeline
  let metrics: ServerMetrics
  /// Who may call it; without a token the admin API is off (every call answers 401 saying how to turn it on).
  let auth: AdminAuth
  /// Maps logged records as the pipeline's sources do, for the events' fields.
  let reader: EventReader

  init(config: PipelineConfig, store: any Store, pipeline: LivePipeline, metrics: ServerMetrics, auth: AdminAuth) {
    self.config = config
    self.store = store
    self.pipeline = pipeline
    self.metrics = metrics
    self.auth = auth
    self.reader = EventReader(config: config)
  }

  static let defaultPage = 50
  static let maxPage = 1000

  func register(on router: Router<BasicRequestContext>) {
    router.get("/health") { _, _ in try await self.health() }
    router.get("/metrics") { _, _ in
      Response(
        status: .ok, headers: [.contentType: "text/plain; version=0.0.4; charset=utf-8"],
        body: ResponseBody(byteBuffer: ByteBuffer(string: self.metrics.render())))
    }
    router.get("/v1/profiles") { request, _ in
      try self.authorize(request)
      return try await self.profile(self.find(try self.identifierParameter(request)))
    }
    router.get("/v1/profiles/{id}") { request, context in
      try self.authorize(request)
      return try await self.profile(self.find(context.parameters.get("id") ?? ""))
    }
    router.get("/v1/profiles/{id}/events") { request, context in
      try self.authorize(request)
      return try await self.events(self.find(context.parameters.get("id") ?? ""), request)
    }
    router.delete("/v1/profiles") { request, _ in
      try self.authorize(request)
      return try await self.delete(try self.identifierParameter(request))
    }
    router.get("/v1/segments") { request, _ in
      try self.authorize(request)
      return try await self.segments()
    }
    router.get("/v1/segments/{name}/members") { request, context in
      try self.authorize(request)
      return try await self.members(context.parameters.get("name") ?? "", request)
    }
    router.get("/v1/reports/{name}") { request, context in
      try self.authorize(request)
      return try await self.report(context.parameters.get("name") ?? "", request)
    }
  }

  func authorize(_ request: Request) throws { try auth.authorize(request) }

  func identifierParameter(_ request: Request) throws -> String {
    guard let v = request.uri.queryParameters.get("identifier"), !v.isEmpty else {
      throw APIError(
        status: .badRequest, code: "missing_parameter",
        message: "name the person with `?identifier=kind:value` (e.g. email:ada@example.com) or a profile id")
    }
    return v
  }

  /// The live profile of a profile id or `kind:value`; 404 when none.
  func find(_ person: String) async throws -> ProfileID {
    let found: ProfileID?
    do {
      found = try await PersonLookup.resolve(person, in: store, config: config)
    } catch let e as PersonLookup.Malformed {
      throw APIError(status: .badRequest, code: "bad_identifier", message: e.description)
    }
    guard let found else {
      throw APIError(status: .notFound, code: "profile_not_found", message: "no profile for `\(person)`")
    }
    return found
  }

  /// `limit` and `cursor` (an opaque offset) of a paginated call; with `cursor: false` the caller reads the
  /// cursor (a position of its own) and the offset is 0.
  func page(_ request: Request, cursor: Bool = true) throws -> (limit: Int, offset: Int) {
    let q = request.uri.queryParameters
    var limit = Self.defaultPage
    if let l = q.get("limit") {
      guard let n = Int(l), n > 0 else {
        throw APIError(
          status: .badRequest, code: "bad_parameter", message: "`limit` must be a positive integer, found `\(l)`")
      }
      limit = min(n, Self.maxPage)
    }
    var offset = 0
    if cursor, let c = q.get("cursor") {
      guard let n = Int(c), n >= 0 else {
        throw APIError(
          status: .badRequest, code: "bad_parameter", message: "`cursor` is not one this API gave out: `\(c)`")
      }
      offset = n
    }
    return (limit, offset)
  }

  /// `ok` (200) while the store commits; `degraded` (503, with `Retry-After`) while it cannot: the reason, since
  /// when, and the failures in a row. Tracking calls get 503 meanwhile, and the server recovers by itself.
  func health() async throws -> Response {
    let depth = pipeline.queueDepth
    var body: [String: Value] = [
      "status": .string("ok"), "store": .string("ok"), "queued_events": .int(Int64(depth.events)),
      "role": .string(pipeline.role.rawValue),
    ]
    let degraded = pipeline.degraded
    if let d = degraded {
      body["status"] = .string("degraded")
      body["store"] = .string("failing")
      body["reason"] = .string(d.reason)
      body["kind"] = .string(d.kind)
      body["since"] = .string(Timestamp(d.since).iso8601)
      body["failures"] = .int(Int64(d.failures))
      body["retry_after"] = .int(Int64(d.retryAfter))
    }
    do {
      let stats = try await store.stats()
      body["events"] = .int(Int64(stats.events))
      body["profiles"] = .int(Int64(stats.profiles))
    } catch {
      body["status"] = .string("degraded")
      body["store"] = .string("failing")
      body["reason"] = body["reason"] ?? .string("the store does not answer: \(error)")
    }
    var response = JSONResponse.make(.map(body), status: body["status"] == .string("ok") ? .ok : .serviceUnavailable)
    if let d = degraded { response.headers[.retryAfter] = String(d.retryAfter) }
    return response
  }

  func profile(_ id: ProfileID) async throws -> Response {
    let merges = try await store.merges(involving: id)
    var aliases: [ProfileID] = []
    for a in Set(merges.map(\.absorbed)) where a != id {
      if try await store.canonical(a) == id { aliases.append(a) }
    }
    let identifiers = try await store.identifiers(of: id)
    let traits = try await store.traits(of: id)
    let computed = try await store.computed(of: id)
    let segments = try await store.memberships(of: id)
    let conflicts = try await store.conflicts(involving: id)
    let policies = try await store.traitPolicies()
    func why(_ t: TraitRecord) -> Value { t.why(policies: policies).map { .string($0) } ?? .null }
    return JSONResponse.make(
      .map([
        "id": .string(id.description),
        "aliases": .list(aliases.sorted().map { .string($0.description) }),
        "identifiers": .list(
          identifiers.map {
            .map(["kind": .string($0.0.kind), "value": .string($0.0.value), "last_seen": .timestamp($0.1)])
          }),
        "traits": .map(
          Dictionary(
            traits.map {
              (
                $0.trait,
                Value.map([
                  "value": $0.value, "source": .string($0.source), "event_id": .string($0.eventID),
                  "timestamp": .timestamp($0.timestamp), "why": why($0),
                ])
              )
            }, uniquingKeysWith: { a, _ in a })),
        "computed": .map(Dictionary(computed.map { ($0.trait, $0.value) }, uniquingKeysWith: { a, _ in a })),
        "segments": .list(segments.map { .map(["segment": .string($0.segment), "since": .timestamp($0.since)]) }),
        "merges": .list(
          merges.map {
            .map([
              "survivor": .string($0.survivor.description), "absorbed": .string($0.absorbed.description),
              "rule": .string($0.rule), "evidence": .list($0.evidence.map { .string($0.description) }),
              "score": .double($0.score), "event_id": .string($0.eventID), "at": .timestamp($0.at),
            ])
          }),
        "conflicts": .list(
          conflicts.map {
            .map([
              "kept": .string($0.kept.description), "other": $0.other.map { .string($0.description) } ?? .null,
              "kind": .string($0.kind), "reason": .string($0.reason), "event_id": .string($0.eventID),
              "identifiers": .list($0.identifiers.map { .string($0.description) }), "at": .timestamp($0.at),
            ])
          }),
      ]))
  }

  /// A logged event as its source maps it (`EventReader`), with the record as received when the log kept it. An
  /// event the pipeline can no longer map (its source was removed) shows its record alone.
  func eventJSON(_ logged: StoredEvent) -> Value {
    let e = (try? reader.mapped(logged.event)) ?? logged.event
    var out: [String: Value] = [
      "id": .string(e.id), "source": .string(e.source), "type": .string(e.type),
      "name": e.name.map(Value.string) ?? .null, "timestamp": .timestamp(e.timestamp),
      "received_at": .timestamp(e.receivedAt), "profile_id": .string(logged.profile.description),
      "identifiers": .list(e.identifiers.map { .string($0.description) }),
      "traits": .map(e.traits), "properties": .map(e.properties), "context": .map(e.context),
    ]
    if let record = e.record { out["record"] = (try? record.withUnsafeBytes { try JSON.parse($0) }) ?? .null }
    return .map(out)
  }

  /// Newest first, optionally of one `source` and one `type`, a page at a time from the store's index: the cursor
  /// is where the previous page ended, so a deep page costs what the first does.
  func events(_ id: ProfileID, _ request: Request) async throws -> Response {
    let (limit, _) = try page(request, cursor: false)
    let q = request.uri.queryParameters
    let source = q.get("source").flatMap { $0.isEmpty ? nil : $0 }
    let type = q.get("type").flatMap { $0.isEmpty ? nil : $0 }
    var cursor: TimelineCursor?
    if let c = q.get("cursor") {
      guard let parsed = TimelineCursor(text: c) else { throw Self.badCursor(c) }
      cursor = parsed
    }
    let page = try await store.timeline(of: id, source: source, type: type, cursor: cursor, limit: limit)
    return JSONResponse.make(
      .map([
        "profile_id": .string(id.description), "items": .list(page.events.map(eventJSON)),
        "next_cursor": page.next.map { .string($0.text) } ?? .null,
      ]))
  }

  static func badCursor(_ text: String) -> APIError {
    APIError(status: .badRequest, code: "bad_parameter", message: "`cursor` is not one this API gave out: `\(text)`")
  }

  func segments() async throws -> Response {
    let counts = try await store.segmentCounts()
    return JSONResponse.make(
      .map([
        "items": .list(
          config.segments.map {
            .map([
              "name": .string($0.name), "description": $0.description.map(Value.string) ?? .null,
              "members": .int(Int64(counts[$0.name] ?? 0)),
            ])
          })
      ]))
  }

  func members(_ name: String, _ request: Request) async throws -> Response {
    guard config.segments.contains(where: { $0.name == name }) else {
      throw APIError(
        status: .notFound, code: "segment_not_found",
        message: "the pipeline declares no segment `\(name)`; GET /v1/segments lists them")
    }
    let (limit, _) = try page(request, cursor: false)
    var after: ProfileID?
    if let c = request.uri.queryParameters.get("cursor") {
      guard let parsed = ProfileID(parsing: c) else { throw Self.badCursor(c) }
      after = parsed
    }
    // One more than the page tells whether another follows.
    let rows = try await store.members(of: name, after: after, limit: limit + 1)
    let items = rows.prefix(limit)
    let total = try await store.memberCount(of: name)
    return JSONResponse.make(
      .map([
        "segment": .string(name), "total": .int(Int64(total)),
        "items": .list(
          items.map { .map(["profile_id": .string($0.profile.description), "since": .timestamp($0.since)]) }),
        "next_cursor": rows.count > limit ? items.last.map { .string($0.profile.description) } ?? .null : .null,
      ]))
  }

  func delete(_ person: String) async throws -> Response {
    let outcome: Deletion.Outcome?
    do {
      outcome = try await pipeline.delete(person)
    } catch let e as PersonLookup.Malformed {
      throw APIError(status: .badRequest, code: "bad_identifier", message: e.description)
    } catch LivePipeline.Failure.closed {
      throw APIError(status: .serviceUnavailable, code: "shutting_down", message: "the server is shutting down")
    }
    guard let outcome else {
      throw APIError(status: .notFound, code: "profile_not_found", message: "no profile for `\(person)`")
    }
    metrics.increment("tessera_deletions_total")
    let r = outcome.report
    return JSONResponse.make(
      .map([
        "deletion_id": .string("del_" + UUID().uuidString.lowercased()), "status": .string("completed"),
        "profile_id": .string(outcome.profile.description),
        "erased": .map([
          "profiles": .int(Int64(r.profiles)), "events": .int(Int64(r.events)),
          "identifiers": .int(Int64(r.identifiers)), "traits": .int(Int64(r.traits)),
          "computed": .int(Int64(r.computed)), "memberships": .int(Int64(r.memberships)),
          "segment_changes": .int(Int64(r.segmentChanges)), "merges": .int(Int64(r.merges)),
          "conflicts": .int(Int64(r.conflicts)), "match_links": .int(Int64(r.matchLinks)),
          "rejected": .int(Int64(r.rejected)),
        ]),
        "suppressed_identifiers": .int(Int64(outcome.suppressed)),
        "deletion_notices": .int(Int64(outcome.notices)),
      ]), status: .accepted)
  }
}
