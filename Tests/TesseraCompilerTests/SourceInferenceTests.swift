import Foundation
import TesseraCompiler
import TesseraLanguage
import Testing

/// `SourceInference` (`tessera source infer`): what it guesses from sample records, and why.
@Suite("Source inference")
struct SourceInferenceTests {
  typealias Folder = SourceFileTests.Folder

  /// The declaration inferred from one file written into a new folder, read from that folder.
  static func infer(
    _ name: String, _ text: String, pipeline: PipelineConfig? = nil, sample: Int = 1_000
  ) throws -> SourceInference.Declaration {
    let folder = try Folder()
    defer { folder.remove() }
    var inference = SourceInference(files: [try folder.write(name, text)], pipeline: pipeline)
    inference.sampleSize = sample
    inference.currentFolder = folder.path
    return try inference.infer()
  }

  static func map(_ d: SourceInference.Declaration) -> [String: String] {
    Dictionary(d.map.filter { !$0.commentedOut }.map { ($0.key, $0.value) }, uniquingKeysWith: { a, _ in a })
  }

  @Test("without a pipeline: emails by their values, the usual identifier names, a timestamp, typed columns")
  func csvWithoutPipeline() throws {
    let d = try Self.infer(
      "signups.csv",
      """
      Customer No,e-mail,mobile,signed_up_at,birth_date,visits,spend,opted_in,postcode
      c1,ada@example.com,(206) 555-0101,2026-03-02T10:15:00Z,1985-03-14,3,12.50,yes,02115
      c2,bruno@example.org,312-555-0102,2026-03-03T10:15:00Z,1979-11-02,0,0,no,60614
      c3,nope,,2026-03-04T11:00:00Z,,12,7.25,true,98103

      """)
    #expect(d.name == "signups")
    #expect(d.path == "signups.csv")
    #expect(d.records == 3 && d.complete)
    #expect(d.settings.map(\.key) == ["emit", "timestamp"])
    #expect(d.settings.last?.value == "signed_up_at")
    // `birth_date` reads as times too, but is missing from a record and named like no record's time.
    #expect(d.settings.last?.why == "every value reads as an ISO 8601 time")
    // `Customer No` and `e-mail` cannot be named in an expression: left as comments saying so.
    let commented = d.map.filter(\.commentedOut)
    #expect(commented.map(\.value) == ["Customer No", "e-mail"])
    #expect(
      commented.first?.why
        == "`Customer No` cannot be named in an expression (only letters, digits and `_`); rename the column")
    #expect(
      Self.map(d) == [
        "phone": "mobile", "traits.birth_date": "birth_date", "traits.visits": "visits", "traits.spend": "spend",
        "traits.opted_in": "opted_in", "traits.postcode": "postcode",
      ])
    #expect(d.map.first { $0.key == "phone" }?.why == "2 of 2 values normalize as phone numbers (region US)")
    #expect(
      d.types.map { "\($0.key): \($0.value)" } == [
        "birth_date: timestamp", "visits: int", "spend: double", "opted_in: bool",
      ])
    #expect(d.required == ["signed_up_at", "visits", "spend", "opted_in", "postcode"])
  }

  @Test("types: one value in twenty may disagree and is named; leading zeros are codes; 0 and 1 are numbers")
  func types() throws {
    var rows = (1...20).map { "r\($0),\($0).5,\($0 % 2),0\($0),\($0 % 2 == 0 ? "true" : "false")" }
    rows[6] = "r7,n/a,1,07,maybe"
    let d = try Self.infer("t.csv", "id,amount,flag,code,ok\n" + rows.joined(separator: "\n") + "\n")
    #expect(d.types.map { "\($0.key): \($0.value)" } == ["amount: double", "flag: int", "ok: bool"])
    #expect(d.types[0].why == "decimals; line 8: `n/a` does not read as one (such records are rejected)")
    #expect(d.map.first { $0.key == "traits.code" }?.why == "text")
    // Two values of twenty that are not booleans: text.
    rows[7] = "r8,8.5,0,08,perhaps"
    let e = try Self.infer("t.csv", "id,amount,flag,code,ok\n" + rows.joined(separator: "\n") + "\n")
    #expect(!e.types.contains { $0.key == "ok" })
    #expect(e.settings.first { $0.key == "id" }?.value == "id")
  }

  @Test("with a pipeline: its identifier kinds, its trait names in other words, its trait types")
  func withPipeline() throws {
    let folder = try Folder()
    defer { folder.remove() }
    let p = try folder.write(
      "p.yaml",
      """
      pipeline: p
      identifiers:
        customer_id: {}
        email: { normalize: email }
      sources:
        app: { kind: http, write_key: k }
      profile:
        traits:
          date_of_birth: { type: string }
          lifetime_value: { type: double }
      """)
    let config = try #require(Compiler(environment: [:]).compile(pipeline: p).plan?.config)
    let d = try Self.infer(
      "crm.csv",
      """
      customer_no,email_address,birth_date,lifetime_value
      100101,ada@example.com,1985-03-14,1240.50
      100102,bruno@example.org,1979-11-02,310

      """, pipeline: config)
    #expect(
      Self.map(d) == [
        "customer_id": "customer_no", "email": "email_address", "traits.date_of_birth": "birth_date",
        "traits.lifetime_value": "lifetime_value",
      ])
    #expect(
      d.map.first { $0.key == "traits.date_of_birth" }?.why == "the pipeline declares trait `date_of_birth` (string)")
    // The declared string trait keeps the dates as text; the declared double is converted.
    #expect(d.types.map { "\($0.key): \($0.value)" } == ["lifetime_value: double"])
  }

  @Test("NDJSON: nested fields by path, a record id with its repeats, malformed lines noted, lists of objects left out")
  func ndjson() throws {
    let d = try Self.infer(
      "orders.ndjson",
      """
      {"order": {"id": "o1", "at": "2026-01-08T17:42:10-08:00", "items": [{"sku": "a"}]}, "customer": {"loyalty_no": 7, "email": "a@example.com"}}
      {"order": {"id": "o2", "at": "2026-01-09T10:00:00Z", "items": []}, "customer": {"loyalty_no": "8"}}
      {"order": {"id": "o2"
      {"order": {"id": "o2", "at": "2026-01-09T10:00:00Z", "items": []}, "customer": {"loyalty_no": "8"}}

      """)
    #expect(d.kind == .ndjson)
    #expect(d.records == 3)
    #expect(d.notes == ["1 record did not read (line 3); a run rejects them"])
    let id = try #require(d.settings.first { $0.key == "id" })
    #expect(id.value == "order.id")
    #expect(
      id.why
        == "present in every record, distinct but for line 4 repeats `o2` of line 2: a record read again is stored once"
    )
    #expect(d.settings.first { $0.key == "timestamp" }?.value == "order.at")
    #expect(Self.map(d) == ["user_id": "customer.loyalty_no", "email": "customer.email"])
    #expect(d.map.first { $0.key == "user_id" }?.why == "`loyalty_no` names a customer's own id")
    #expect(d.map.first(where: \.commentedOut)?.value == "size(order.items)")
  }

  @Test("Segment/RudderStack messages map their type, event, identifiers and whole maps")
  func segmentMessages() throws {
    let d = try Self.infer(
      "web.ndjson",
      """
      {"type": "identify", "messageId": "m1", "timestamp": "2026-04-02T07:30:00Z", "userId": "1", "traits": {"email": "a@example.com"}}
      {"type": "track", "event": "Signed Up", "messageId": "m2", "timestamp": "2026-04-02T07:31:00Z", "anonymousId": "x", "properties": {"plan": "pro"}}

      """)
    #expect(d.settings.map { "\($0.key): \($0.value)" } == ["emit: track", "id: messageId", "timestamp: timestamp"])
    #expect(
      Self.map(d) == [
        "type": "type", "event": "coalesce(event, \"\")", "user_id": "userId", "anonymous_id": "anonymousId",
        "email": "traits.email", "traits": "traits", "properties": "properties",
      ])
    // An expression that plain YAML would misread is quoted.
    #expect(d.yaml().contains("      event: 'coalesce(event, \"\")' "))
  }

  @Test("the YAML: several files as a glob, each guess with its reason aligned, and it compiles")
  func yaml() throws {
    let folder = try Folder()
    defer { folder.remove() }
    let csv = try folder.write("data/news-1.csv", "email,signed_up_at\nada@example.com,2026-03-02T10:15:00Z\n")
    try folder.write("data/news-2.csv", "email,signed_up_at\nbo@example.com,2026-03-03T10:15:00Z\n")
    var inference = SourceInference(files: [csv, folder.path + "/data/news-2.csv"], name: "news")
    inference.declaringFolder = folder.path + "/pipelines"
    let yaml = try inference.infer().yaml(header: ["made by a test"])
    #expect(
      yaml == """
        # made by a test
        sources:
          news:
            kind: csv
            path: ../data/news-*.csv           # all 2 records read
            emit: identify                     # each row updates a profile
            timestamp: signed_up_at            # every value reads as an ISO 8601 time
            schema:
              required: [email, signed_up_at]  # never empty in the 2 sampled records; a record without one is rejected
            map:
              email: email                     # 2 of 2 values normalize as emails

        """)
    let root = try folder.write(
      "pipelines/p.yaml", "pipeline: p\nidentifiers:\n  email: { normalize: email }\n")
    var compiler = Compiler(environment: [:])
    compiler.extraFiles = [SourceFile(path: folder.path + "/pipelines/news.yaml", text: yaml)]
    let result = compiler.compile(pipeline: root)
    #expect(result.diagnostics.isEmpty, "\(result.rendered())")
    #expect(result.plan?.config.source("news")?.identifierKinds == ["email"])
  }

  @Test("a sample smaller than the files says so, and files left unread count as not read")
  func partialSample() throws {
    let folder = try Folder()
    defer { folder.remove() }
    let a = try folder.write("a.csv", "email\na@example.com\nb@example.com\n")
    let b = try folder.write("b.csv", "email\nc@example.com\n")
    var inference = SourceInference(files: [a, b])
    inference.sampleSize = 2
    let d = try inference.infer()
    #expect(d.records == 2 && !d.complete)
    #expect(d.yaml().contains("# the first 2 records read"))
    inference.sampleSize = 3
    let whole = try inference.infer()
    #expect(whole.records == 3 && whole.complete)
    #expect(whole.yaml().contains("# all 3 records read"))
  }

  @Test("an invalid --name is refused; a file without records is an error")
  func errors() throws {
    var inference = SourceInference(files: ["x.csv"], name: "2fa")
    #expect(throws: SourceInference.InferenceError.self) { try inference.infer() }
    inference.name = nil
    #expect(
      (try? inference.infer()) == nil, "an unreadable file")
    #expect(throws: SourceInference.InferenceError.self) { try Self.infer("empty.csv", "a,b\n") }
  }

  /// Sections are read depth first in key order: the root's `include` before its `sources`, extra files last.
  @Test("a file compiled as if included: the source it declares joins the pipeline, and replaces a file of its path")
  func extraFiles() throws {
    let folder = try Folder()
    defer { folder.remove() }
    try folder.write("data/newsletter.csv", SourceFileTests.newsletter)
    let root = try folder.write(
      "p.yaml",
      """
      pipeline: p
      include: [old.yaml]
      identifiers:
        email: { normalize: email }
      sources:
        app: { kind: http, write_key: k }
      """)
    try folder.write("old.yaml", "sources:\n  stale: { kind: http, write_key: s }\n")
    var compiler = Compiler(environment: [:])
    let news = "sources:\n  news:\n    kind: csv\n    path: data/newsletter.csv\n    map: { email: email }\n"
    compiler.extraFiles = [SourceFile(path: folder.path + "/news.yaml", text: news)]
    var result = compiler.compile(pipeline: root)
    #expect(result.plan?.config.sources.map(\.name) == ["stale", "app", "news"], "\(result.rendered())")
    compiler.extraFiles = [SourceFile(path: folder.path + "/old.yaml", text: news)]
    result = compiler.compile(pipeline: root)
    #expect(result.plan?.config.sources.map(\.name) == ["news", "app"], "\(result.rendered())")
  }
}
