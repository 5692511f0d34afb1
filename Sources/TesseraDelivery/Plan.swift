import AsyncHTTPClient
import Foundation
import TesseraCompiler
import TesseraModel
import TesseraRuntime
import TesseraStore

extension DeliveryQueue {
  /// The HTTP client of webhook destinations. A receiver that refuses connections fails an attempt only after
  /// the connect timeout (the client keeps trying to connect until then), so it is short; each destination's
  /// `timeout` bounds a whole request. Shut it down after the engine stops.
  public static func makeClient() -> HTTPClient {
    var configuration = HTTPClient.Configuration()
    configuration.timeout.connect = .seconds(2)
    return HTTPClient(eventLoopGroup: HTTPClient.defaultEventLoopGroup, configuration: configuration)
  }

  /// The queue name of a webhook's deletion notices.
  public static func deletionQueue(_ destination: String) -> String { DeletionNotices.queue(destination) }

  /// One queue per destination, plus one per deletion endpoint. Relative file and database paths are read
  /// from the folder of the file that declares the destination; a table without `database:` lives in the
  /// store's own file.
  public static func plan(
    _ config: PipelineConfig, storePath: String, client: HTTPClient, clock: @escaping @Sendable () -> Timestamp
  ) throws -> [DeliveryQueue] {
    var queues: [DeliveryQueue] = []
    for d in config.destinations {
      let columns = d.payload.map(\.key)
      switch d.kind {
      case .webhook:
        guard let url = d.url else { continue }
        queues.append(
          DeliveryQueue(
            name: d.name,
            target: WebhookTarget(
              destination: d.name, url: url, headers: d.headers, timeout: d.timeout, client: client, clock: clock),
            batch: d.batch, retry: d.retry, concurrency: d.concurrency))
        if let deletion = d.deletionURL {
          queues.append(
            DeliveryQueue(
              name: deletionQueue(d.name),
              target: WebhookTarget(
                destination: d.name, url: deletion, headers: d.headers, timeout: d.timeout, client: client,
                clock: clock),
              batch: d.batch, retry: d.retry, concurrency: 1))
        }
      case .file:
        guard let path = d.path else { continue }
        let target = try FileTarget(
          path: Paths.resolve(path, from: d.location.file), format: d.format, columns: columns,
          rotateBytes: d.rotateBytes, rotateEvery: d.rotateEvery,
          clock: clock)
        // One writer per file, so lines keep the outbox's order.
        queues.append(DeliveryQueue(name: d.name, target: target, batch: d.batch, retry: d.retry, concurrency: 1))
      case .table:
        guard let table = d.table else { continue }
        if let url = d.database, url.hasPrefix("postgres://") || url.hasPrefix("postgresql://") {
          let target = try PostgresTableTarget(
            url: url, table: table, trigger: d.trigger, payload: d.payload.map { ($0.key, $0.expr.type) }, clock: clock)
          queues.append(DeliveryQueue(name: d.name, target: target, batch: d.batch, retry: d.retry, concurrency: 1))
          continue
        }
        let target = try TableTarget(
          database: d.database.map { Paths.resolve($0, from: d.location.file) } ?? storePath, table: table,
          trigger: d.trigger, columns: columns, clock: clock)
        queues.append(DeliveryQueue(name: d.name, target: target, batch: d.batch, retry: d.retry, concurrency: 1))
      }
    }
    return queues
  }
}
