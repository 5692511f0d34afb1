import Foundation
import TesseraCompiler
import TesseraLanguage
import Testing

/// The compiler reads what it can see of a file source: a CSV file's header, a sample of NDJSON records.
@Suite("Source files seen at compile time")
struct SourceFileTests {
  /// A folder of files for one test, removed by `remove()`.
  struct Folder {
    let path: String
    init() throws {
      path = FileManager.default.temporaryDirectory.appendingPathComponent("tessera-files-\(UUID().uuidString)").path
      try FileManager.default.createDirectory(atPath: path, withIntermediateDirectories: true)
    }
    @discardableResult
    func write(_ name: String, _ text: String) throws -> String {
      let p = path + "/" + name
      try FileManager.default.createDirectory(
        atPath: (p as NSString).deletingLastPathComponent, withIntermediateDirectories: true)
      try text.write(toFile: p, atomically: true, encoding: .utf8)
      return p
    }
    func remove() { try? FileManager.default.removeItem(atPath: path) }
  }

  static let newsletter = """
    email,signed_up_at,source,first_name
    ada.whitfield@example.com,2026-03-02T10:15:00Z,footer,Ada
    bad-email,2026-04-20T12:30:00Z,popup,Sam

    """

  /// A pipeline with one file source `news` whose body (below `kind`) is `body`.
  static func pipeline(_ body: String) -> String {
    """
    pipeline: p
    identifiers:
      email: { normalize: email }
    sources:
      news:
    \(body)
    """
  }

  static func compile(_ folder: Folder, _ body: String) throws -> CompileResult {
    let p = try folder.write("p.yaml", pipeline(body))
    return Compiler(environment: [:]).compile(pipeline: p)
  }

  /// Compiles the source `body` in a new folder holding `data/newsletter.csv`; remove the folder afterwards.
  static func withNewsletter(_ body: String) throws -> (folder: Folder, result: CompileResult) {
    let folder = try Folder()
    try folder.write("data/newsletter.csv", newsletter)
    return (folder, try compile(folder, body))
  }

  @Test("a misspelt CSV column is an error at the name, with the file's columns and a did-you-mean")
  func misspeltColumn() throws {
    let (folder, result) = try Self.withNewsletter(
      """
          kind: csv
          path: data/newsletter.csv
          timestamp: signed_up_at
          map:
            email: email
            traits.first_name: first_nam
      """)
    defer { folder.remove() }
    #expect(result.plan == nil)
    let p = folder.path + "/p.yaml"
    #expect(
      result.rendered() == """
        \(p):11:26: error: column `first_nam` is not in newsletter.csv (email, signed_up_at, source, first_name); did you mean `first_name`?
              traits.first_name: first_nam
                                 ^~~~~~~~~
        """)
  }

  @Test("columns are checked wherever they are read: id, timestamp, schema, inside expressions")
  func everyPlace() throws {
    let (folder, result) = try Self.withNewsletter(
      """
          kind: csv
          path: data/newsletter.csv
          id: '"n-" + emial'
          timestamp: timestamp(signed_up)
          schema:
            required: [email, sorce]
            types: { signed_on: timestamp }
          map:
            email: email
            traits.first_name: 'trim(first_name) + lower(surname)'
      """)
    defer { folder.remove() }
    let messages = result.diagnostics.map { "\($0.location.line):\($0.location.column)+\($0.length) \($0.message)" }
    let columns = "(email, signed_up_at, source, first_name)"
    #expect(
      messages == [
        "8:17+5 column `emial` is not in newsletter.csv \(columns); did you mean `email`?",
        "9:26+9 column `signed_up` is not in newsletter.csv \(columns); did you mean `signed_up_at`?",
        "11:25+5 column `sorce` is not in newsletter.csv \(columns); did you mean `source`?",
        "12:16+9 column `signed_on` is not in newsletter.csv \(columns)",
        "15:52+7 column `surname` is not in newsletter.csv \(columns)",
      ], "\(messages)")
  }

  @Test("a correct CSV source gives no diagnostic; a header with a byte order mark and spaces reads")
  func correctColumns() throws {
    let folder = try Folder()
    defer { folder.remove() }
    try folder.write("data/newsletter.csv", "\u{FEFF}email , signed_up_at\nada@example.com,2026-03-02\n")
    let result = try Self.compile(
      folder,
      """
          kind: csv
          path: data/newsletter.csv
          timestamp: signed_up_at
          map:
            email: email
      """)
    #expect(result.diagnostics.isEmpty, "\(result.rendered())")
    #expect(result.plan != nil)
  }

  @Test("an NDJSON field in no sampled record is a warning with a did-you-mean; a null value counts as present")
  func ndjsonField() throws {
    let folder = try Folder()
    defer { folder.remove() }
    try folder.write(
      "data/orders.ndjson",
      """
      {"order": {"id": "o1", "total": 12.5}, "customer": {"email": "a@example.com", "phone": null}}
      not json at all
      {"order": {"id": "o2"}, "customer": {"email": "b@example.com"}}

      """)
    let result = try Self.compile(
      folder,
      """
          kind: ndjson
          path: data/orders.ndjson
          emit: identify
          id: order.id
          schema:
            required: [order.totl]
          map:
            email: customer.emial
            traits.phone: customer.phone
            traits.orders: order
      """)
    #expect(result.plan != nil, "warnings do not fail the pipeline")
    #expect(
      result.diagnostics.map(\.description) == [
        "\(folder.path)/p.yaml:11:18: warning: field `order.totl` is in none of the 2 records sampled from orders.ndjson; did you mean `order.total`?",
        "\(folder.path)/p.yaml:13:14: warning: field `customer.emial` is in none of the 2 records sampled from orders.ndjson; did you mean `customer.email`?",
      ])
  }

  @Test("a path that matches no file yet is a note, never an error, and the pipeline compiles")
  func missingFiles() throws {
    let folder = try Folder()
    defer { folder.remove() }
    for (path, message) in [
      (
        "nightly/news-*.csv",
        "no file matches `\(folder.path)/nightly/news-*.csv` yet; the columns source `news` reads are checked once one does"
      ),
      (
        "nightly/news.csv",
        "`\(folder.path)/nightly/news.csv` does not exist yet; the columns source `news` reads are checked once it does"
      ),
    ] {
      let result = try Self.compile(
        folder,
        """
            kind: csv
            path: \(path)
            map:
              email: emial
        """)
      #expect(result.plan != nil, "\(result.rendered())")
      #expect(
        result.diagnostics.map(\.description) == ["\(folder.path)/p.yaml:7:11: note: \(message)"])
    }
  }

  @Test("a glob: a column in no file is an error, one missing from some files a warning naming them")
  func globOfFiles() throws {
    let folder = try Folder()
    defer { folder.remove() }
    try folder.write("parts/part-1.csv", "email,city\na@example.com,Oslo\n")
    try folder.write("parts/part-2.csv", "email,note,city\nb@example.com,x,Bergen\n")
    let result = try Self.compile(
      folder,
      """
          kind: csv
          path: parts/part-*.csv
          map:
            email: email
            traits.note: note
            traits.city: cty
      """)
    #expect(
      result.diagnostics.map(\.description) == [
        "\(folder.path)/p.yaml:10:20: warning: column `note` is in 1 of the 2 files matching `\(folder.path)/parts/part-*.csv`; the records of part-1.csv have none",
        "\(folder.path)/p.yaml:11:20: error: column `cty` is in none of the 2 files matching `\(folder.path)/parts/part-*.csv` (part-1.csv: email, city); did you mean `city`?",
      ])
  }
}
