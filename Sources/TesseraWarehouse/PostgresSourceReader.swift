import Foundation
import Logging
import NIOCore
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
/// The rows arrive in PostgreSQL's binary format and this reader writes their JSON itself for the common column
/// types (text, integers, floats, booleans, timestamps, dates, uuid, json): having the server run `row_to_json`
/// and print every timestamp as text cost it ~8 µs a row, most of what a table read cost beyond a CSV file. A
/// column of any other type (`numeric`, arrays, …) is asked for as `to_json(column)`, so every type still reads
/// as `row_to_json` would write it. The next page is fetched while the current one is handed on.
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
    var shape = Shape()
    var next: Task<(Page, Shape), any Error>?
    defer { next?.cancel() }
    var line = 0
    while true {
      try Task.checkCancellation()
      let page: Page
      do {
        let fetched: (Page, Shape)
        if let pending = next {
          next = nil
          fetched = try await pending.value
        } else {
          fetched = try await fetch(client, after: cursor, shape: shape)
        }
        (page, shape) = fetched
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
        // Caught up: the next page starts again from `t.*`, so columns added to the table meanwhile are read.
        shape = Shape()
        guard let stop else { return }
        if stop.isStopped { return }
        if await stop.wait(.microseconds(table.poll.microseconds)) { return }
        continue
      }
      let reached = Cursor(type: page.type, text: page.rows[page.rows.count - 1].cursor)
      // A full page: the next one is read while this one is mapped.
      if page.rows.count >= table.batchRows, stop?.isStopped != true {
        let (reader, after, known) = (self, reached, shape)
        next = Task { try await reader.fetch(client, after: after, shape: known) }
      }
      var start = 0
      while start < page.rows.count {
        let end = min(page.rows.count, start + batchSize)
        let base = page.rows[start].range.lowerBound
        let bytes = Array(page.bytes[base..<page.rows[end - 1].range.upperBound])
        var ranges: [(start: Int, end: Int, line: Int)] = []
        var positions: [String] = []
        ranges.reserveCapacity(end - start)
        positions.reserveCapacity(end - start)
        for row in page.rows[start..<end] {
          line += 1
          ranges.append((row.range.lowerBound - base, row.range.upperBound - base, line))
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
      cursor = reached
    }
  }

  /// A page of rows: their JSON objects one after another in `bytes`, each row's range and cursor text.
  struct Page: Sendable {
    var bytes: [UInt8] = []
    var rows: [(range: Range<Int>, cursor: String)] = []
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

  /// What a page's query selects. At first `t.*`, with the cursor's text written here; once a row shows a column
  /// this reader does not write (or a cursor type it does not print), the columns by name with those columns as
  /// `to_json(…)` (and the cursor's `::text` and `pg_typeof` from the server), and the page is read again.
  struct Shape: Sendable, Equatable {
    var columns: [Column]?
    var cursorText = false
    struct Column: Sendable, Equatable {
      var name: String
      var json: Bool
    }
  }

  /// The next page: up to `batchRows` rows past `cursor`, plus every further row tied with the last of them.
  func fetch(_ client: PostgresClient, after cursor: Cursor?, shape: Shape) async throws -> (Page, Shape) {
    var shape = shape
    for _ in 0..<3 {
      let (page, reshaped) = try await fetchOnce(client, after: cursor, shape: shape)
      if let page { return (page, shape) }
      guard let reshaped, reshaped != shape else { break }
      shape = reshaped
    }
    throw SourceError(source: source.name, message: "the columns of \(table.place) kept changing while it was read")
  }

  /// A page, or (nil, the shape to read it with) when a row shows the shape does not fit.
  func fetchOnce(_ client: PostgresClient, after cursor: Cursor?, shape: Shape) async throws -> (Page?, Shape?) {
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
    var select =
      shape.columns.map { cols in
        cols.map {
          let q = Self.quote($0.name)
          return $0.json ? "to_json(t.\(q)) AS \(q)" : "t.\(q)"
        }.joined(separator: ", ")
      } ?? "t.*"
    if shape.cursorText { select += ", t.\(c)::text, pg_typeof(t.\(c))::text" }
    let sql = """
      SELECT \(select) FROM \(from) t
      WHERE t.\(c) \(past) AND t.\(c) <= (
        SELECT max(k) FROM (SELECT s.\(c) AS k FROM \(from) s WHERE s.\(c) \(past) ORDER BY 1 LIMIT \(table.batchRows)) x)
      ORDER BY t.\(c)
      """
    let rows = try await client.query(PostgresQuery(unsafeSQL: sql, binds: binds), logger: logger)
    var page = Page(type: cursor?.type ?? "")
    var reshape: Shape?
    var json = JSONWriter(capacity: 1 << 16)
    for try await row in rows {
      // A shape that does not fit: the rest of the page is read and dropped.
      if reshape != nil { continue }
      let cells = Array(row)
      let data = shape.cursorText ? cells.dropLast(2) : cells[...]
      guard let at = data.firstIndex(where: { $0.columnName == table.cursor }) else {
        throw SourceError(source: source.name, message: "\(table.place) has no column `\(table.cursor)`")
      }
      if data.contains(where: { !PostgresJSON.writes($0) })
        || (!shape.cursorText && PostgresJSON.cursor(data[at]) == nil)
      {
        reshape = Shape(
          columns: data.map {
            Shape.Column(
              name: $0.columnName, json: !PostgresJSON.writes($0) || shape.columns?[$0.columnIndex].json == true)
          },
          cursorText: shape.cursorText || PostgresJSON.cursor(data[at]) == nil)
        continue
      }
      let start = json.bytes.count
      json.raw("{")
      for (i, cell) in data.enumerated() {
        if i > 0 { json.raw(",") }
        json.string(cell.columnName)
        json.raw(":")
        PostgresJSON.write(cell, to: &json)
      }
      json.raw("}")
      let text: String
      if shape.cursorText {
        text = try cells[cells.count - 2].decode(String.self)
        page.type = try cells[cells.count - 1].decode(String.self)
      } else {
        // Checked above.
        let printed = PostgresJSON.cursor(data[at]) ?? ("", "")
        text = printed.text
        page.type = printed.type
      }
      page.rows.append((start..<json.bytes.count, text))
    }
    if let reshape { return (nil, reshape) }
    page.bytes = json.bytes
    return (page, nil)
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
