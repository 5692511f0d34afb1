import TesseraCompiler
import TesseraLanguage
import TesseraModel
import Testing

@Suite("postgres sources and syncs: their keys and checks")
struct TableSourceTests {
  static func pipeline(_ source: String, extra: String = "") -> [String: String] {
    [
      "p.yaml": """
      pipeline: p
      identifiers:
        user_id: { normalize: trim }
      sources:
        crm:
          kind: postgres
      \(source)
          map: { user_id: customer_no }
      \(extra)
      """
    ]
  }

  @Test("a table source is read with its defaults: identify, poll 10s, 10,000 rows a query")
  func defaults() throws {
    let result = compileInMemory(
      Self.pipeline("    url: ${CRM_URL}\n    table: public.contacts\n    cursor: updated_at"),
      environment: ["CRM_URL": "postgres://reader@db:5432/crm"])
    #expect(result.diagnostics.filter { $0.severity == .error }.isEmpty)
    let source = try #require(result.plan?.config.sources.first)
    #expect(source.kind == .postgres)
    #expect(source.emit == .identify)
    #expect(
      source.table
        == TableSource(
          url: "postgres://reader@db:5432/crm", table: "public.contacts", query: nil, cursor: "updated_at",
          poll: TimeSpan(seconds: 10), batchRows: 10_000))
    // The plan has a source and a decode stage for it, like a file source.
    let stages = try #require(result.plan?.stages.map(\.id))
    #expect(stages.contains("source_crm") && stages.contains("decode_crm"))
  }

  @Test("each wrong key is reported where it stands")
  func errors() {
    let result = compileInMemory(
      Self.pipeline(
        "    url: mysql://db/crm\n    table: contacts\n    query: SELECT 1\n    cursor: updated at\n    path: x.csv"))
    #expect(
      result.diagnostics.filter { $0.severity == .error }.map(\.description) == [
        "p.yaml:7:10: error: the url of source `crm` must start with `postgres://` (postgres://user@host:port/database)",
        "p.yaml:9:5: error: source `crm` has both `table` and `query`; give one",
        "p.yaml:10:13: error: invalid cursor column `updated at`: use letters, digits and `_`",
        "p.yaml:11:5: error: `path` does not apply to a postgres source; it reads `table` (or `query`) at `url`",
      ])
  }

  @Test("a table source needs a table or a query, and a cursor")
  func missing() {
    let result = compileInMemory(Self.pipeline("    url: postgres://db/crm"))
    #expect(
      result.diagnostics.filter { $0.severity == .error }.map(\.description) == [
        "p.yaml:5:3: error: source `crm` is missing the required key `cursor`",
        "p.yaml:5:3: error: source `crm` needs a `table` (or a `query`) to read",
      ])
  }

  @Test("table keys on a file source are errors")
  func tableKeysOnAFile() {
    let files = [
      "p.yaml": """
      pipeline: p
      identifiers:
        user_id: { normalize: trim }
      sources:
        f:
          kind: csv
          path: x.csv
          cursor: id
          map: { user_id: id }
      """
    ]
    #expect(
      compileInMemory(files).diagnostics.filter { $0.severity == .error }.map(\.description) == [
        "p.yaml:8:5: error: `cursor` is for postgres sources; a csv source does not read a table"
      ])
  }

  @Test("a sync names a PostgreSQL database and a schema")
  func sync() throws {
    let ok = compileInMemory(
      Self.pipeline(
        "    url: postgres://db/crm\n    table: contacts\n    cursor: id",
        extra: "sync:\n  analytics:\n    database: postgres://w/wh\n    events: false"))
    #expect(ok.diagnostics.filter { $0.severity == .error }.isEmpty)
    let s = try #require(ok.plan?.config.syncs.first)
    #expect(s.name == "analytics" && s.database == "postgres://w/wh" && s.schema == "tessera" && !s.events)
    let bad = compileInMemory(
      Self.pipeline(
        "    url: postgres://db/crm\n    table: contacts\n    cursor: id",
        extra: "sync:\n  analytics:\n    database: warehouse.sqlite\n    shema: x"))
    #expect(
      bad.diagnostics.filter { $0.severity == .error }.map(\.description) == [
        "p.yaml:13:15: error: the database of sync `analytics` must be a PostgreSQL URL (postgres://user@host:port/database)",
        "p.yaml:14:5: error: unknown key `shema` in sync `analytics`; did you mean `schema`?",
      ])
  }
}
