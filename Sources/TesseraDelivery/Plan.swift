import AsyncHTTPClient
import Crypto
import Foundation
import TesseraCompiler
import TesseraModel
import TesseraStore

extension DeliveryQueue {
  /// The queue name of a webhook's deletion notices.
  public static func deletionQueue(_ destination: String) -> String { destination + "#deletion" }

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
        let target = try TableTarget(
          database: d.database.map { Paths.resolve($0, from: d.location.file) } ?? storePath, table: table,
          trigger: d.trigger, columns: columns, clock: clock)
        queues.append(DeliveryQueue(name: d.name, target: target, batch: d.batch, retry: d.retry, concurrency: 1))
      }
    }
    return queues
  }
}

/// Deletion notices: what destinations are told when a person is erased. Webhooks with a `deletion_url`
/// get `{"type": "deletion", "profile_id", "profiles", "identifiers_sha256": {kind: [sha256 of the
/// normalized value]}, "requested_at"}` — hashes only, since the values are gone; tables drop the rows.
public enum DeletionNotices {
  public static func rows(
    _ config: PipelineConfig, profile: ProfileID, family: [ProfileID], identifiers: [Identifier], at: Timestamp
  ) -> [OutboxRecord] {
    var hashed: [String: [Value]] = [:]
    for i in Set(identifiers).sorted() {
      let digest = SHA256.hash(data: Data(i.value.utf8)).map { String(format: "%02x", $0) }.joined()
      hashed[i.kind, default: []].append(.string(digest))
    }
    let profiles = Value.list(Set(family + [profile]).sorted().map { .string($0.description) })
    var out: [OutboxRecord] = []
    for d in config.destinations {
      switch d.kind {
      case .webhook where d.deletionURL != nil:
        out.append(
          OutboxRecord(
            destination: DeliveryQueue.deletionQueue(d.name), op: .delete, profile: profile,
            payload: .map([
              "type": .string("deletion"), "profile_id": .string(profile.description), "profiles": profiles,
              "identifiers_sha256": .map(hashed.mapValues(Value.list)), "requested_at": .string(at.iso8601),
            ]), at: at))
      case .table:
        out.append(
          OutboxRecord(
            destination: d.name, op: .delete, profile: profile, payload: .map(["profiles": profiles]), at: at))
      default: break
      }
    }
    return out
  }
}
