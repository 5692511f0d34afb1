import AsyncHTTPClient
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
    /// Deliver the outbox to the pipeline's destinations while serving (the delivery engine of `tessera
    /// deliver`, run continuously); the store's path is what table destinations write next to. nil: leave
    /// delivery to a separate `tessera deliver`.
    public var deliverFrom: String?
    public var logger: Logger

    public init(
      host: String = "127.0.0.1", port: Int = 8080, adminToken: String? = nil, benchmarkRoutes: Bool = false,
      handleSignals: Bool = false, deliverFrom: String? = nil, logLevel: String = "info"
    ) {
      self.deliverFrom = deliverFrom
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

  public let config: PipelineConfig
  public let store: any Store
  public let options: Options
  public let metrics: ServerMetrics
  public let pipeline: LivePipeline
  let group = Mutex<ServiceGroup?>(nil)
  let stopRequested = Mutex(false)

  public init(config: PipelineConfig, store: any Store, options: Options) {
    self.config = config
    self.store = store
    self.options = options
    let metrics = ServerMetrics()
    self.metrics = metrics
    self.pipeline = LivePipeline(config: config, store: store) { report in
      metrics.observe(
        "tessera_resolve_duration_seconds", [:], report.resolveSeconds, buckets: ServerMetrics.latencyBuckets)
      metrics.observe("tessera_commit_duration_seconds", [:], report.seconds, buckets: ServerMetrics.latencyBuckets)
      metrics.observe("tessera_commit_events", [:], Double(report.events), buckets: ServerMetrics.sizeBuckets)
      metrics.increment("tessera_merges_total", by: Double(report.stats.merges))
      metrics.increment("tessera_profiles_created_total", by: Double(report.stats.profilesCreated))
    }
    let pipeline = self.pipeline
    metrics.gauge("tessera_pipeline_queue_requests") { Double(pipeline.queueDepth.requests) }
    metrics.gauge("tessera_pipeline_queue_events") { Double(pipeline.queueDepth.events) }
  }

  /// The router with every route of the API (`docs/openapi.yaml` describes them; a test compares the two).
  func router() -> Router<BasicRequestContext> {
    let router = Router(context: BasicRequestContext.self)
    router.add(middleware: AccessMiddleware(metrics: metrics))
    TrackingAPI(config: config, pipeline: pipeline, metrics: metrics).register(on: router)
    ProfileAPI(config: config, store: store, pipeline: pipeline, metrics: metrics, token: options.adminToken)
      .register(on: router)
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
    var services: [any Service] = [PipelineService(pipeline: pipeline, logger: logger)]
    var client: HTTPClient?
    if let storePath = options.deliverFrom, !config.destinations.isEmpty {
      let clock: @Sendable () -> Timestamp = { Timestamp(Date()) }
      var configuration = HTTPClient.Configuration()
      configuration.timeout.connect = .seconds(2)
      let http = HTTPClient(eventLoopGroup: HTTPClient.defaultEventLoopGroup, configuration: configuration)
      client = http
      do {
        let queues = try DeliveryQueue.plan(config, storePath: storePath, client: http, clock: clock)
        let engine = DeliveryEngine(store: store, queues: queues, clock: clock)
        metrics.gaugeFamily("tessera_deliveries_total") {
          engine.counts.flatMap { name, c in
            [
              (["destination": name, "outcome": "delivered"], Double(c.items)),
              (["destination": name, "outcome": "retried"], Double(c.retries)),
              (["destination": name, "outcome": "dead"], Double(c.deadItems)),
            ]
          }
        }
        services.append(DeliveryService(engine: engine))
      } catch {
        try await http.shutdown()
        throw error
      }
    }
    services.append(app)
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
    do {
      try await serviceGroup.run()
    } catch {
      try await client?.shutdown()
      throw error
    }
    try await client?.shutdown()
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

/// The delivery engine as a service: runs until the graceful shutdown reaches it (the HTTP server has drained
/// by then), then stops its workers; what is still queued is delivered by the next start or `tessera deliver`.
struct DeliveryService: Service {
  let engine: DeliveryEngine

  func run() async throws {
    let task = Task { try await engine.run(.continuous) }
    try? await gracefulShutdown()
    task.cancel()
    _ = try? await task.value
  }
}
