import Foundation
import Logging
import PostgresNIO
import TesseraCompiler
import TesseraModel
import TesseraPostgres
import TesseraRuntime
import TesseraStore

/// Reads a `postgres` source: the rows of its table (or query) past the cursor the store holds for it, in
/// cursor order, each row as the JSON object PostgreSQL's `row_to_json` makes of it (numbers, booleans,
/// strings, timestamps as ISO 8601 text, `json`/`jsonb` columns as nested values), so the source's `map`,
/// `schema`, `id` and `timestamp` read it as they read an NDJSON record.
///
/// Each batch carries the cursor reached at its last row (`RawBatch.cursor`); the commit stage writes it with
/// the batch's events, so a crash neither skips nor repeats rows. A page never ends inside a run of equal
/// cursor values (all rows equal to the page's last value are in it), and a batch whose last row ties with the
/// next carries no cursor, so a stored cursor always means "every row up to and including this value".
///
/// Without `stop` (`tessera run`) it reads until no row is left and returns; with one (`tessera serve`) it
/// looks again every `poll` until stopped, and a failed query is logged and tried again at the next poll.
public struct PostgresSourceReader: SourceReader {
  public let source: SourceDecl
  public let table: TableSource
  let store: any PipelineStore
  let stop: SourceStop?
  /// Records per batch handed to the decode workers.
  let batchSize: Int
  let logger: Logger

  public init(
    source: SourceDecl, store: any PipelineStore, stop: SourceStop? = nil, batchSize: Int = 1024,
    logger: Logger = Logger(label: "tessera.source")
  ) throws {
    guard let table = source.table else {
      throw SourceError(source: source.name, message: "is not a postgres source")
    }
    self.source = source
    self.table = table
    self.store = store
    self.stop = stop
    self.batchSize = max(1, batchSize)
    self.logger = logger
  }

  public func read(source index: Int, emit: @Sendable (RawBatch) async throws -> Void) async throws {
    let configuration: PostgresClient.Configuration
    do {
      configuration = try PostgresStore.configuration(url: table.url, maximumConnections: 1)
    } catch {
      throw SourceError(source: source.name, message: "\(error)")
    }
    // A wrong host, login or database fails now with the server's reason (the pool would retry for a minute).
    if stop == nil, Self.plain(table.url) {
      do { try await PostgresStore.probe(configuration) } catch let e as PostgresStore.OpenError {
        throw SourceError(source: source.name, message: "cannot read \(e.place): \(Self.describe(e.underlying))")
      }
    }
    let client = PostgresClient(configuration: configuration)
    let runner = Task { await client.run() }
    defer { runner.cancel() }
    var cursor = try await store.loadSourceCursors()[source.name].flatMap(Cursor.init(stored:))
    var line = 0
    while true {
      try Task.checkCancellation()
      let page: Page
      do {
        page = try await fetch(client, after: cursor)
      } catch let error as SourceError {
        throw error
      } catch {
        let message = Self.describe(error)
        guard let stop else { throw SourceError(source: source.name, message: message) }
        logger.warning("source `\(source.name)`: \(message); trying again in \(table.poll)")
        if await stop.wait(.microseconds(table.poll.microseconds)) { return }
        continue
      }
      if page.rows.isEmpty {
        guard let stop else { return }
        if stop.isStopped { return }
        if await stop.wait(.microseconds(table.poll.microseconds)) { return }
        continue
      }
      var start = 0
      while start < page.rows.count {
        let end = min(page.rows.count, start + batchSize)
        var bytes: [UInt8] = []
        var ranges: [(start: Int, end: Int, line: Int)] = []
        var positions: [String] = []
        ranges.reserveCapacity(end - start)
        for row in page.rows[start..<end] {
          line += 1
          let s = bytes.count
          bytes.append(contentsOf: row.json.utf8)
          ranges.append((s, bytes.count, line))
          positions.append("\(table.place) at \(table.cursor) = \(row.cursor)")
        }
        var batch = RawBatch(seq: 0, source: index, format: .ndjson, bytes: bytes, records: ranges, file: table.place)
        batch.positions = positions
        // The cursor moves only past a whole run of equal values.
        let last = page.rows[end - 1].cursor
        if end == page.rows.count || page.rows[end].cursor != last {
          batch.cursor = SourceCursor(source: source.name, value: Cursor(type: page.type, text: last).stored)
        }
        try await emit(batch)
        start = end
      }
      cursor = Cursor(type: page.type, text: page.rows[page.rows.count - 1].cursor)
    }
  }

  struct Row {
    var json: String
    var cursor: String
  }
  struct Page {
    var rows: [Row]
    var type: String
  }

  /// A cursor as the store keeps it: the column's type and the value's text, `type:text`.
  struct Cursor: Equatable {
    var type: String
    var text: String
    init(type: String, text: String) {
      self.type = type
      self.text = text
    }
    init?(stored: String) {
      guard let colon = stored.firstIndex(of: ":") else { return nil }
      type = String(stored[..<colon])
      text = String(stored[stored.index(after: colon)...])
    }
    var stored: String { "\(type):\(text)" }
  }

  /// The next page: up to `batchRows` rows past `cursor`, plus every further row tied with the last of them.
  func fetch(_ client: PostgresClient, after cursor: Cursor?) async throws -> Page {
    let from = table.table.map(Self.quoteTable) ?? "(\(table.query ?? ""))"
    let c = Self.quote(table.cursor)
    var binds = PostgresBindings()
    var past = "IS NOT NULL"
    if let cursor {
      // The type comes from PostgreSQL itself (`pg_typeof`), stored with the value; it is still checked before
      // it is written into the statement.
      guard cursor.type.allSatisfy({ $0.isLetter || $0.isNumber || " _().,".contains($0) }) else {
        throw SourceError(source: source.name, message: "the stored cursor's type `\(cursor.type)` is not a type name")
      }
      binds.append(cursor.text)
      past = "> $1::text::\(cursor.type)"
    }
    let sql = """
      SELECT row_to_json(t)::text, t.\(c)::text, pg_typeof(t.\(c))::text FROM \(from) t
      WHERE t.\(c) \(past) AND t.\(c) <= (
        SELECT max(k) FROM (SELECT s.\(c) AS k FROM \(from) s WHERE s.\(c) \(past) ORDER BY 1 LIMIT \(table.batchRows)) x)
      ORDER BY t.\(c)
      """
    let rows = try await client.query(PostgresQuery(unsafeSQL: sql, binds: binds), logger: logger)
    var out = Page(rows: [], type: cursor?.type ?? "")
    for try await (json, text, type) in rows.decode((String, String, String).self) {
      out.rows.append(Row(json: json, cursor: text))
      out.type = type
    }
    return out
  }

  /// Whether the URL asks for no TLS (the default), the only case `PostgresStore.probe` checks.
  static func plain(_ url: String) -> Bool {
    (URLComponents(string: url)?.queryItems?.first { $0.name == "sslmode" }?.value ?? "disable") == "disable"
  }

  static func quote(_ name: String) -> String { "\"" + name.replacingOccurrences(of: "\"", with: "\"\"") + "\"" }
  static func quoteTable(_ name: String) -> String {
    name.split(separator: ".").map { quote(String($0)) }.joined(separator: ".")
  }

  /// The server's message and SQLSTATE when there is one (PSQLError's own description hides them).
  static func describe(_ error: any Error) -> String {
    if let e = error as? PSQLError {
      if let message = e.serverInfo?[.message] {
        return "PostgreSQL: \(message) (SQLSTATE \(e.serverInfo?[.sqlState] ?? "?"))"
      }
      return "PostgreSQL: \(e.code)"
    }
    return String(describing: error)
  }
}
