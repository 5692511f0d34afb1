import Foundation
import Hummingbird
import TesseraCompiler
import TesseraDelivery
import TesseraMatching
import TesseraModel
import TesseraRuntime
import TesseraStore

/// The data steward's part of the admin API, which the console (`/ui`) is drawn from: why a merge happened and
/// undoing it, the review queue and its decisions, segment changes, the pipeline's graph with live figures, and
/// the outbox with re-queueing. Same authentication as `ProfileAPI`; every change is a POST.
struct StewardAPI: Sendable {
  let plan: PipelinePlan
  var config: PipelineConfig { plan.config }
  let store: any Store
  let pipeline: LivePipeline
  let profiles: ProfileAPI

  func register(on router: Router<BasicRequestContext>) {
    router.get("/v1/profiles/{id}/merges/{absorbed}/explanation") { request, context in
      try profiles.authorize(request)
      return try await explainMerge(
        profiles.find(context.parameters.get("id") ?? ""), absorbed: context.parameters.get("absorbed") ?? "")
    }
    router.post("/v1/profiles/{id}/unmerge") { request, context in
      try profiles.authorize(request)
      let body = try await Self.body(request)
      return try await unmerge(profiles.find(context.parameters.get("id") ?? ""), body)
    }
    router.get("/v1/review") { request, _ in
      try profiles.authorize(request)
      return try await review(request)
    }
    router.post("/v1/review/{id}/confirm") { request, context in
      try profiles.authorize(request)
      return try await decide(context.parameters.get("id") ?? "", .confirmed)
    }
    router.post("/v1/review/{id}/reject") { request, context in
      try profiles.authorize(request)
      return try await decide(context.parameters.get("id") ?? "", .rejected)
    }
    router.get("/v1/segments/{name}/changes") { request, context in
      try profiles.authorize(request)
      return try await changes(context.parameters.get("name") ?? "", request)
    }
    router.get("/v1/pipeline") { request, _ in
      try profiles.authorize(request)
      return graph()
    }
    router.get("/v1/deliveries") { request, _ in
      try profiles.authorize(request)
      let (summary, dead, failing) = try await DeliveryStatus.read(
        store, destination: request.uri.queryParameters.get("destination"), limit: 100)
      return JSONResponse.make(DeliveryStatus.json(summary: summary, dead: dead, failing: failing))
    }
    router.post("/v1/deliveries/requeue") { request, _ in
      try profiles.authorize(request)
      let body = try await Self.body(request)
      let n = try await store.requeueDead(
        destination: body["destination"]?.stringValue, batch: body["batch"]?.doubleValue.map { Int64($0) },
        at: Timestamp(Date()))
      return JSONResponse.make(.map(["requeued": .int(Int64(n))]))
    }
  }

  /// A JSON object body (empty allowed), or 400.
  static func body(_ request: Request) async throws -> [String: Value] {
    let bytes = try await TrackingAPI.collect(request, limit: 64 << 10)
    if bytes.readableBytes == 0 { return [:] }
    let parsed = bytes.withUnsafeReadableBytes { raw in
      try? JSON.parse(
        UnsafeBufferPointer(start: raw.baseAddress?.assumingMemoryBound(to: UInt8.self), count: raw.count))
    }
    guard case .map(let m)? = parsed else {
      throw APIError(status: .badRequest, code: "bad_body", message: "send a JSON object")
    }
    return m
  }

  func refused(_ error: any Error) -> APIError {
    if let r = error as? Stewardship.Refusal {
      return APIError(status: .conflict, code: "refused", message: r.description)
    }
    if case LivePipeline.Failure.closed? = error as? LivePipeline.Failure {
      return APIError(status: .serviceUnavailable, code: "shutting_down", message: "the server is shutting down")
    }
    if error is PipelineRunner.WriterBusy {
      return APIError(status: .conflict, code: "not_writer", message: String(describing: error))
    }
    return APIError(status: .internalServerError, code: "internal_error", message: String(describing: error))
  }

  // MARK: merges

  /// Why `absorbed` merged into the live profile `live`: a deterministic merge's identifier pair, or a
  /// probabilistic one's comparisons (the weight waterfall) between the two profiles as their own events made
  /// them before the merge.
  func explainMerge(_ live: ProfileID, absorbed text: String) async throws -> Response {
    guard let absorbed = ProfileID(parsing: text) else {
      throw APIError(status: .badRequest, code: "bad_parameter", message: "`\(text)` is not a profile id like prf_32")
    }
    let merges = try await store.merges(involving: live)
    guard let m = merges.last(where: { $0.absorbed == absorbed }) else {
      throw APIError(status: .notFound, code: "merge_not_found", message: "\(live) has no merge absorbing \(absorbed)")
    }
    var out: [String: Value] = [
      "survivor": .string(m.survivor.description), "absorbed": .string(m.absorbed.description),
      "rule": .string(m.rule), "evidence": .list(m.evidence.map { .string($0.description) }),
      "score": .double(m.score), "at": .timestamp(m.at),
    ]
    if let rule = config.probabilistic.first(where: { $0.name == m.rule }) {
      // Each side from the newest `explainEvents` events written for that profile itself: a bounded read
      // whatever the size of the profile (the newest value of each field is what the side shows).
      func own(_ p: ProfileID) async throws -> [Event] {
        try await store.ownEvents(of: p, limit: Self.explainEvents).map {
          (try? profiles.reader.mapped($0.event)) ?? $0.event
        }
      }
      let explanation = Stewardship.explain(
        Stewardship.side(of: m.absorbed, events: try await own(m.absorbed)),
        Stewardship.side(of: m.survivor, events: try await own(m.survivor)), rule: rule, config: config)
      out["explanation"] = explanation.value
      out["thresholds"] = .map(["merge": .double(rule.merge), "review": .double(rule.review)])
      out["events_read"] = .int(Int64(Self.explainEvents))
    }
    return JSONResponse.make(.map(out))
  }

  /// How many of its own newest events each side of a merge's explanation reads.
  static let explainEvents = 1000

  func unmerge(_ live: ProfileID, _ body: [String: Value]) async throws -> Response {
    guard let text = body["merge"]?.stringValue, let absorbed = ProfileID(parsing: text) else {
      throw APIError(
        status: .badRequest, code: "bad_body",
        message: "name the merge to undo: {\"merge\": \"prf_32\"} (its absorbed profile)")
    }
    let plan = self.plan
    let store = self.store
    do {
      let undone = try await pipeline.exclusive {
        try await Stewardship.unmerge(
          live, absorbed: absorbed, plan: plan, store: store, now: Timestamp(Date()), workers: 1)
      }
      let after = try await store.canonical(absorbed)
      return JSONResponse.make(
        .map([
          "unmerged": .string(undone.merge.absorbed.description), "from": .string(undone.merge.survivor.description),
          "separated": undone.separated.map { .list([.string($0.0.description), .string($0.1.description)]) } ?? .null,
          "absorbed_now": after.map { .string($0.description) } ?? .null,
          "splits": .int(Int64(undone.report.splits.count)), "merges": .int(Int64(undone.report.merges.count)),
        ]))
    } catch let e as APIError {
      throw e
    } catch {
      throw refused(error)
    }
  }

  // MARK: review

  /// Candidate links (`status`, default `review`), most probable first (`sort=asc`: least), a page at a time from
  /// the store's index (the cursor is where the previous page ended), each with its two profiles compared field
  /// by field; and per probabilistic rule its thresholds and how many stored links fall in each probability
  /// bucket of width 1/`histogramBuckets`, so the console counts how many would merge at another threshold
  /// without reading every link.
  func review(_ request: Request) async throws -> Response {
    let q = request.uri.queryParameters
    let (limit, _) = try profiles.page(request, cursor: false)
    let statusText = q.get("status") ?? "review"
    var wanted: MatchLinkRecord.Status?
    if statusText != "all" {
      guard let s = MatchLinkRecord.Status(rawValue: statusText) else {
        throw APIError(
          status: .badRequest, code: "bad_parameter",
          message:
            "`status` is all or one of \(MatchLinkRecord.Status.allCases.map(\.rawValue).joined(separator: ", "))")
      }
      wanted = s
    }
    var after: LinkCursor?
    if let c = q.get("cursor") {
      guard let parsed = LinkCursor(text: c) else { throw ProfileAPI.badCursor(c) }
      after = parsed
    }
    let descending = q.get("sort") != "asc"
    let links = try await store.matchLinks(status: wanted, descending: descending, after: after, limit: limit + 1)
    var items: [Value] = []
    // Each rule's model and empty record builder, made once for the page.
    var explainers: [String: (model: MatchModel, template: RecordSetBuilder)] = [:]
    for l in links.prefix(limit) {
      var item: [String: Value] = [
        "id": .int(l.id), "rule": .string(l.rule), "profile": .string(l.profile.description),
        "candidate": .string(l.candidate.description), "event_id": .string(l.eventID),
        "probability": .double(l.probability), "match_weight": .double(l.weight), "status": .string(l.status.rawValue),
        "reason": .string(l.reason), "at": .timestamp(l.at),
      ]
      if l.status == .review, let rule = config.probabilistic.first(where: { $0.name == l.rule }),
        let a = try await store.canonical(l.profile), let b = try await store.canonical(l.candidate)
      {
        let explainer =
          explainers[rule.name]
          ?? {
            let model = MatchModel(rule: rule)
            return (model, RecordSetBuilder(model: model, rule: rule, config: config))
          }()
        explainers[rule.name] = explainer
        let explanation = Stewardship.explain(
          try await Stewardship.side(of: a, in: store), try await Stewardship.side(of: b, in: store),
          model: explainer.model, template: explainer.template)
        item["comparison"] = explanation.value
      }
      items.append(.map(item))
    }
    let histogram = try await store.matchLinkHistogram(buckets: Self.histogramBuckets)
    let rules: [Value] = config.probabilistic.map { rule in
      let buckets = (histogram[rule.name] ?? [:]).sorted { $0.key < $1.key }
      return .map([
        "name": .string(rule.name), "merge": .double(rule.merge), "review": .double(rule.review),
        "links": .int(Int64(buckets.reduce(0) { $0 + $1.value })),
        "histogram": .map([
          "buckets": .int(Int64(Self.histogramBuckets)),
          "counts": .list(buckets.map { .list([.int(Int64($0.key)), .int(Int64($0.value))]) }),
        ]),
      ])
    }
    let next = links.count > limit ? links.prefix(limit).last.map { Value.string(LinkCursor($0).text) } : nil
    let total = try await store.matchLinkCount(status: wanted)
    return JSONResponse.make(
      .map([
        "items": .list(items), "total": .int(Int64(total)),
        "rules": .list(rules), "next_cursor": next ?? .null,
      ]))
  }

  /// The slider's resolution: probabilities are counted in buckets of 0.0001, its step.
  static let histogramBuckets = 10_000

  /// Confirms (the two profiles merge now) or rejects (never proposed again) a link waiting for review.
  func decide(_ text: String, _ status: MatchLinkRecord.Status) async throws -> Response {
    guard let id = Int64(text) else {
      throw APIError(status: .badRequest, code: "bad_parameter", message: "`\(text)` is not a link id")
    }
    let plan = self.plan
    let store = self.store
    do {
      let merged = try await pipeline.exclusive { () -> Int in
        if status == .confirmed {
          return try await Stewardship.confirm([id], plan: plan, store: store, now: Timestamp(Date())).stats.merges
        }
        try await Stewardship.decide([id], status, store: store)
        return 0
      }
      let link = try await store.matchLink(id: id)
      var survivor: ProfileID?
      if let link { survivor = try await store.canonical(link.candidate) }
      return JSONResponse.make(
        .map([
          "id": .int(id), "status": .string(link?.status.rawValue ?? status.rawValue), "merges": .int(Int64(merged)),
          "profile": survivor.map { .string($0.description) } ?? .null,
        ]))
    } catch let e as APIError {
      throw e
    } catch {
      throw refused(error)
    }
  }

  // MARK: segments, pipeline

  func changes(_ name: String, _ request: Request) async throws -> Response {
    guard config.segments.contains(where: { $0.name == name }) else {
      throw APIError(
        status: .notFound, code: "segment_not_found",
        message: "the pipeline declares no segment `\(name)`; GET /v1/segments lists them")
    }
    let (limit, _) = try profiles.page(request)
    let rows = try await store.segmentChanges(of: name, limit: limit)
    return JSONResponse.make(
      .map([
        "segment": .string(name),
        "items": .list(
          rows.map { c in
            .map([
              "profile_id": .string(c.profile.description), "entered": .bool(c.entered), "at": .timestamp(c.at),
              "values": .map(c.values), "merged_into": c.mergedInto.map { .string($0.description) } ?? .null,
            ])
          }),
      ]))
  }

  /// The compiled plan (what `tessera graph` draws) with each stage's figures from the running graph.
  func graph() -> Response {
    let figures = pipeline.monitor.metrics?.figures() ?? []
    let byID = Dictionary(figures.map { ($0.id, $0) }, uniquingKeysWith: { a, _ in a })
    return JSONResponse.make(
      .map([
        "name": .string(config.name), "mermaid": .string(plan.graph(.mermaid)),
        "stages": .list(
          plan.stages.map { s in
            var v: [String: Value] = [
              "id": .string(s.id), "kind": .string(s.kind.rawValue), "label": .string(s.label),
              "parallelism": .string(s.parallelism.description),
            ]
            if let f = byID[s.id] {
              v["figures"] = .map([
                "tasks": .int(Int64(f.tasks)), "items_out": .int(Int64(f.itemsOut)),
                "queued_batches": .int(Int64(f.queuedBatches)), "queued_items": .int(Int64(f.queuedItems)),
                "busy": .double(f.busy),
              ])
            }
            return .map(v)
          }),
        "edges": .list(
          plan.edges.map {
            .map(["from": .string($0.from), "to": .string($0.to), "carries": .string($0.carries.rawValue)])
          }),
      ]))
  }
}
