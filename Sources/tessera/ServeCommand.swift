import ArgumentParser
import AsyncHTTPClient
import Foundation
import TesseraCompiler
import TesseraDelivery
import TesseraModel
import TesseraRuntime
import TesseraSQLite
import TesseraServer
import TesseraWarehouse

extension LivePipeline.Acknowledge: ExpressibleByArgument {}

struct ServeCommand: AsyncParsableCommand {
  static let configuration = CommandConfiguration(
    commandName: "serve",
    abstract: "Serve the tracking API (Segment/RudderStack compatible), the profile API and metrics.",
    discussion: """
      Each `kind: http` source of the pipeline is one write key: SDKs send it as the HTTP Basic user name (or \
      `writeKey` in the body) to POST /v1/batch, /v1/identify, /v1/track, /v1/page, /v1/screen, /v1/group and \
      /v1/alias. An answer 200 means the events are committed to the store, resolved and unified: a profile \
      lookup right after shows them (with `--acknowledge journaled`: durably journaled, resolved a moment later). The profile and admin API (/v1/profiles, /v1/segments, deletion) needs \
      `Authorization: Bearer $TESSERA_ADMIN_TOKEN`; without that variable it is off. GET /health and \
      GET /metrics (Prometheus) need no token. docs/openapi.yaml describes every route.

      SIGTERM or Ctrl-C stops gracefully: no new connections, requests in flight are committed and answered, \
      the pipeline drains, exit status 0. Exit status 1 on configuration errors.
      """)

  @Argument(help: "The pipeline file (e.g. pipelines/retail.yaml).")
  var pipeline: String

  @OptionGroup var storeOption: StoreOption
  var store: String { storeOption.spec }

  @Option(help: "The TCP port to listen on.")
  var port: Int = 8080

  @Option(help: "The address to listen on (0.0.0.0 for every interface).")
  var host: String = "127.0.0.1"

  @Option(help: "Log level: trace, debug (one line per request), info, notice, warning, error.")
  var logLevel: String = "info"

  @Option(
    help: """
      When a tracking request is answered: `resolved` (its events are stored with their effects on profiles and \
      segments) or `journaled` (its events are durably journaled; resolution follows off the request's path, at a \
      lower CPU priority — for high ingest rates; profiles lag behind during bursts).
      """)
  var acknowledge: LivePipeline.Acknowledge = .resolved

  @Option(
    help: """
      Journaled events waiting for the writer past which answers to journaling requests wait until it catches \
      up (0: no limit). Keeps a sustained overload from filling the disk; the SDKs slow down instead.
      """)
  var journalLimit: Int = 1_000_000

  @Flag(
    inversion: .prefixedNo,
    help: """
      Deliver the pipeline's destinations from this server (the default). With servers on several hosts, \
      `--no-deliver` on all but one keeps `file` and `table` destinations on one host.
      """)
  var deliver = true

  func run() async throws {
    let plan = try PipelineOptions.compile(pipeline)
    guard plan.config.sources.contains(where: { $0.kind == .http || $0.kind == .postgres }) else {
      throw ValidationError(
        "the pipeline has no `kind: http` or `kind: postgres` source, so there is nothing to serve")
    }
    let db = try await StoreLocation.open(store)
    let token = ProcessInfo.processInfo.environment["TESSERA_ADMIN_TOKEN"].flatMap { $0.isEmpty ? nil : $0 }
    var options = TesseraHTTPServer.Options(
      host: host, port: port, adminToken: token, handleSignals: true, logLevel: logLevel, acknowledge: acknowledge,
      journalLimit: journalLimit > 0 ? journalLimit : nil)
    options.sourceReaders = TableSources.polling(plan.config, store: db)
    // Destinations are served from the outbox while the server runs.
    let client = DeliveryQueue.makeClient()
    let clock: @Sendable () -> Timestamp = { Timestamp(Date()) }
    let queues = try DeliveryQueue.plan(
      plan.config, storePath: StoreLocation.tablePath(store), client: client, clock: clock)
    let server = TesseraHTTPServer(
      plan: plan, store: db, options: options,
      deliveries: queues.isEmpty || !deliver ? nil : DeliveryEngine(store: db, queues: queues, clock: clock),
      onRole: { role in
        let line =
          switch role {
          case .writer: "tessera serve: this process is the store's writer (it resolves the events)\n"
          case .follower:
            "tessera serve: another process is the store's writer; this one is a follower and journals the events "
              + "it accepts for it (it takes over if the writer stops)\n"
          case .starting: ""
          }
        FileHandle.standardError.write(Data(line.utf8))
      })
    do {
      try await serve(server)
    } catch {
      try? await client.shutdown()
      throw error
    }
    try await client.shutdown()
  }

  func serve(_ server: TesseraHTTPServer) async throws {
    let token = server.options.adminToken
    try await server.run { port in
      let where_ =
        token == nil
        ? ", profile API and console off)" : "); console at http://\(host):\(port)/ui (sign in with the token)"
      FileHandle.standardError.write(
        Data("tessera serve: listening on http://\(host):\(port) (store \(store)\(where_)\n".utf8))
    }
  }
}
