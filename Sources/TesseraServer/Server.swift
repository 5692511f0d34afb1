import Foundation
import Hummingbird
import Logging
import NIOCore
import ServiceLifecycle
import Synchronization
import TesseraCompiler
import TesseraDelivery
import TesseraModel
import TesseraRuntime
import TesseraStore

/// `tessera serve`: the tracking API, the profile and admin API, health and metrics over one live pipeline.
///
/// The HTTP server and the pipeline's writer are two services of one `ServiceGroup`. A graceful shutdown
/// (SIGTERM or SIGINT, or `shutdown()`) stops the HTTP server first: it takes no new connections and lets the
/// requests in flight finish — they are waiting for their group commit, which the still-running pipeline
/// makes. Then the pipeline closes, commits whatever is still queued, and `run()` returns.
public final class TesseraHTTPServer: Sendable {
  public struct Options: Sendable {
    public var host: String
    /// 0 picks a free port (tests); `onRunning` reports the one bound.
    public var port: Int
    /// The bearer token of the profile and admin API; nil turns that API off.
    public var adminToken: String?
    /// Adds `POST /bench/noop`, which reads the body and answers 200 without storing: the ceiling of the
    /// load benchmark.
    public var benchmarkRoutes: Bool
    /// Stop on SIGTERM and SIGINT (the CLI); tests call `shutdown()` instead.
    public var handleSignals: Bool
    public var logger: Logger
    /// When a tracking request is answered (`LivePipeline.Acknowledge`).
    public var acknowledge: LivePipeline.Acknowledge
    /// How long a shutdown goes on resolving the journal (`LivePipeline.journalGrace`).
    public var journalGrace: Duration
    /// Journaled events waiting past which answers wait for the writer (`LivePipeline.journalLimit`).
    public var journalLimit: Int?
    /// The readers of the table sources the writer polls (`LivePipeline.sourceReaders`); nil: none.
    public var sourceReaders: (@Sendable (SourceStop) -> [Int: any SourceReader])?

    public init(
      host: String = "127.0.0.1", port: Int = 8080, adminToken: String? = nil, benchmarkRoutes: Bool = false,
      handleSignals: Bool = false, logLevel: String = "info", acknowledge: LivePipeline.Acknowledge = .resolved,
      journalGrace: Duration = .seconds(5), journalLimit: Int? = 1_000_000
    ) {
      self.acknowledge = acknowledge
      self.journalGrace = journalGrace
      self.journalLimit = journalLimit
      var logger = Logger(label: "tessera.serve")
      logger.logLevel = Logger.Level(rawValue: logLevel) ?? .info
      self.host = host
      self.port = port
      self.adminToken = adminToken
      self.benchmarkRoutes = benchmarkRoutes
      self.handleSignals = handleSignals
      self.logger = logger
    }
  }

  public let plan: PipelinePlan
  public var config: PipelineConfig { plan.config }
  public let store: any Store
  public let options: Options
  public let metrics: ServerMetrics
  public let pipeline: LivePipeline
  /// Sends the outbox to the pipeline's destinations while the server runs (nil: changes stay queued for
  /// `tessera deliver`).
  public let deliveries: DeliveryEngine?
  /// The admin token and the console's sessions.
  let auth: AdminAuth
  let group = Mutex<ServiceGroup?>(nil)
  let stopRequested = Mutex(false)

  /// `onRole`: told when the pipeline becomes the store's writer or a follower (several servers, one store).
  public init(
    plan: PipelinePlan, store: any Store, options: Options, deliveries: DeliveryEngine? = nil,
    onRole: (@Sendable (LivePipeline.Role) -> Void)? = nil
  ) {
    self.plan = plan
    self.store = store
    self.options = options
    self.deliveries = deliveries
    self.auth = AdminAuth(token: options.adminToken)
    let metrics = ServerMetrics()
    self.metrics = metrics
    self.pipeline = LivePipeline(
      plan: plan, store: store, acknowledge: options.acknowledge, journalGrace: options.journalGrace,
      journalLimit: options.journalLimit, metrics: metrics.factory, onRole: onRole,
      sourceReaders: options.sourceReaders
    ) { report in
      metrics.observe(
        "tessera_resolve_duration_seconds", [:], report.resolveSeconds, buckets: ServerMetrics.latencyBuckets)
      metrics.observe("tessera_commit_duration_seconds", [:], report.seconds, buckets: ServerMetrics.latencyBuckets)
      metrics.observe("tessera_commit_events", [:], Double(report.events), buckets: ServerMetrics.sizeBuckets)
      metrics.increment("tessera_merges_total", by: Double(report.stats.merges))
      metrics.increment("tessera_profiles_created_total", by: Double(report.stats.profilesCreated))
      metrics.increment("tessera_journal_resolved_total", by: Double(report.journaled))
    }
    let pipeline = self.pipeline
    metrics.gauge("tessera_pipeline_queue_requests") { Double(pipeline.queueDepth.requests) }
    metrics.gauge("tessera_pipeline_queue_events") { Double(pipeline.queueDepth.events) }
    metrics.gauge("tessera_pipeline_writer") { pipeline.role == .writer ? 1 : 0 }
    metrics.gauge("tessera_journal_backlog") { Double(pipeline.journalBacklog) }
    // 1 while the store cannot commit (tracking calls are answered 503); `tessera_store_failures_total` counts
    // the failures by kind.
    metrics.gauge("tessera_store_degraded") { pipeline.degraded == nil ? 0 : 1 }
    metrics.beforeRendering { pipeline.monitor.metrics?.refresh() }
  }

  /// The router with every route of the API (`docs/openapi.yaml` describes them; a test compares the two).
  func router() -> Router<BasicRequestContext> {
    let router = Router(context: BasicRequestContext.self)
    router.add(middleware: AccessMiddleware(metrics: metrics))
    TrackingAPI(config: config, pipeline: pipeline, metrics: metrics).register(on: router)
    let profiles = ProfileAPI(config: config, store: store, pipeline: pipeline, metrics: metrics, auth: auth)
    profiles.register(on: router)
    StewardAPI(plan: plan, store: store, pipeline: pipeline, profiles: profiles).register(on: router)
    Console(auth: auth).register(on: router)
    if options.benchmarkRoutes {
      router.post("/bench/noop") { request, _ in
        _ = try await TrackingAPI.collect(request, limit: HTTPDefaults.maxRequestBytes)
        return JSONResponse.make(.map(["success": .bool(true)]))
      }
    }
    return router
  }

  /// The routes, as `METHOD path` with `{parameter}` placeholders.
  public var routes: [String] {
    router().routes.map { "\($0.method.rawValue) \($0.path.description)" }.sorted()
  }

  /// Serves until a graceful shutdown, then drains requests and the pipeline. `onRunning` gets the bound port.
  public func run(onRunning: @escaping @Sendable (Int) async -> Void = { _ in }) async throws {
    let logger = options.logger
    let app = Application(
      router: router(),
      configuration: ApplicationConfiguration(address: .hostname(options.host, port: options.port), serverName: nil),
      onServerRunning: { channel in await onRunning(channel.localAddress?.port ?? 0) },
      logger: logger)
    var services: [any Service] = [PipelineService(pipeline: pipeline, logger: logger), app]
    if let deliveries {
      let counts = deliveries.counters
      let reads: [(String, @Sendable (DeliveryCounts) -> Int)] = [
        ("tessera_delivered_items", { $0.items }), ("tessera_delivered_batches", { $0.batches }),
        ("tessera_delivery_retries", { $0.retries }), ("tessera_dead_letter_items", { $0.deadItems }),
      ]
      for (name, read) in reads {
        metrics.gauge(name) { Double(counts.snapshot.values.map(read).reduce(0, +)) }
      }
      services.append(DeliveryService(engine: deliveries, logger: logger))
    }
    let serviceGroup = ServiceGroup(
      configuration: ServiceGroupConfiguration(
        services: services.map { ServiceGroupConfiguration.ServiceConfiguration(service: $0) },
        gracefulShutdownSignals: options.handleSignals ? [.sigterm, .sigint] : [],
        logger: logger))
    let stopEarly = group.withLock { g in
      g = serviceGroup
      return stopRequested.withLock { $0 }
    }
    if stopEarly { await serviceGroup.triggerGracefulShutdown() }
    try await serviceGroup.run()
    logger.info("stopped: requests drained and the pipeline committed")
  }

  /// Starts the graceful shutdown `run()` performs on SIGTERM.
  public func shutdown() async {
    let g = group.withLock { g in
      stopRequested.withLock { $0 = true }
      return g
    }
    await g?.triggerGracefulShutdown()
  }
}

/// The pipeline's writer as a service: it runs until the graceful shutdown reaches it (after the HTTP server
/// has drained), then closes the queue and commits what is left.
struct PipelineService: Service {
  let pipeline: LivePipeline
  let logger: Logger

  func run() async throws {
    try await withThrowingTaskGroup(of: Void.self) { group in
      group.addTask { try await pipeline.run() }
      // Suspends until the graceful shutdown reaches this service (or throws when the group is cancelled).
      try? await gracefulShutdown()
      pipeline.close()
      try await group.waitForAll()
    }
    logger.debug("pipeline drained")
  }
}

/// The delivery engine as a service: sends the outbox continuously, and stops at the graceful shutdown
/// (batches in flight finish or are taken again after their lease by the next process; nothing is lost, the
/// outbox is in the store).
struct DeliveryService: Service {
  let engine: DeliveryEngine
  let logger: Logger

  func run() async throws {
    await withThrowingTaskGroup(of: Void.self) { group in
      group.addTask { try await engine.run(.continuous) }
      // Throws only when this task is cancelled, which means stop as well.
      try? await gracefulShutdown()
      group.cancelAll()
      do {
        try await group.waitForAll()
      } catch {
        logger.error("deliveries stopped with an error", metadata: ["error": "\(error)"])
      }
    }
    logger.debug("deliveries stopped")
  }
}
