import Foundation
import PostgresNIO
import TesseraPostgres

/// Helpers of the warehouse tests: SQL against a test database, a temporary folder.
enum WH {
  /// Runs `statements` on the database at `url`, one after another.
  static func execute(_ url: String, _ statements: [String]) async throws {
    let client = PostgresClient(configuration: try PostgresStore.configuration(url: url, maximumConnections: 1))
    try await withThrowingTaskGroup(of: Void.self) { group in
      group.addTask { await client.run() }
      for s in statements { try await client.query(PostgresQuery(unsafeSQL: s)) }
      group.cancelAll()
    }
  }

  /// The rows of a query, each as its JSON text (`row_to_json`), sorted.
  static func rows(_ url: String, _ sql: String) async throws -> [String] {
    let client = PostgresClient(configuration: try PostgresStore.configuration(url: url, maximumConnections: 1))
    return try await withThrowingTaskGroup(of: [String].self) { group in
      group.addTask {
        await client.run()
        return []
      }
      var out: [String] = []
      let rows = try await client.query(PostgresQuery(unsafeSQL: "SELECT row_to_json(q)::text FROM (\(sql)) q"))
      for try await r in rows.decode(String.self) { out.append(r) }
      group.cancelAll()
      return out.sorted()
    }
  }

  /// A new temporary folder.
  static func tempDir() throws -> String {
    let d = FileManager.default.temporaryDirectory.appendingPathComponent("tessera-wh-\(UUID().uuidString)").path
    try FileManager.default.createDirectory(atPath: d, withIntermediateDirectories: true)
    return d
  }
}
