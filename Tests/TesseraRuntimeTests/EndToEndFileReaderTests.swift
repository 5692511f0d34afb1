import Foundation
import TesseraCompiler
import TesseraConnectors
import TesseraIdentity
import TesseraModel
import TesseraRuntime
import TesseraSQLite
import TesseraStore
import Testing

/// `FileSourceReader` on awkward files, read on its own and through a whole run.
@Suite("End to end: file readers")
struct FileReaderEndToEndTests {
  typealias StoreKind = E2E.StoreKind

  /// A pipeline with one source `people` of the kind, reading `path` (relative to the pipeline's folder).
  static func pipeline(kind: String, path: String) -> String {
    """
    pipeline: files
    identifiers:
      email: { normalize: email, max_per_profile: 3, priority: 2 }
    deterministic:
      by_email:
        link_on: [email]
    sources:
      people:
        kind: \(kind)
        path: \(path)
        emit: identify
        schema:
          required: [email]
        map:
          email: email
          traits.note: note
          traits.city: city
    """
  }

  /// Compiles the one-source pipeline in `dir`.
  static func plan(_ dir: E2E.TempDir, kind: String, path: String) throws -> PipelinePlan {
    try E2E.compile(try dir.write("files.yaml", pipeline(kind: kind, path: path)))
  }

  /// Everything the reader emits: each record's file, line and CSV fields (the raw text for NDJSON).
  struct Read: Sendable {
    var file: String
    var line: Int
    var fields: [String]
  }

  static func read(_ plan: PipelinePlan, batchSize: Int = 1024, chunkSize: Int = 1024) async throws -> [Read] {
    let reader = FileSourceReader(source: plan.config.sources[0], batchSize: batchSize, chunkSize: chunkSize)
    let out = E2E.Collector<Read>()
    try await reader.read(source: 0) { batch in
      var records: [Read] = []
      batch.bytes.withUnsafeBufferPointer { all in
        for r in batch.records {
          let bytes = UnsafeBufferPointer(rebasing: all[r.start..<r.end])
          switch batch.format {
          case .csv(_, let delimiter):
            records.append(Read(file: batch.file, line: r.line, fields: CSV.fields(bytes, delimiter: delimiter)))
          case .ndjson:
            records.append(Read(file: batch.file, line: r.line, fields: [String(decoding: bytes, as: UTF8.self)]))
          }
        }
      }
      out.append(records)
    }
    return out.items
  }

  /// RFC 4180 quoting: a field quoted when it holds a comma, a quote or a line end.
  static func quote(_ s: String) -> String {
    s.unicodeScalars.contains(where: { ",\"\n\r".unicodeScalars.contains($0) })
      ? "\"" + s.replacingOccurrences(of: "\"", with: "\"\"") + "\"" : s
  }

  @Test(
    "quoted CSV fields with commas, quotes and line ends keep later records' line numbers",
    arguments: StoreKind.allCases)
  func quotedFields(kind: StoreKind) async throws {
    let dir = try E2E.TempDir()
    defer { dir.remove() }
    let notes = [
      "plain", "a, b, c", "she said \"hi\"", "two\nlines", "three\nshort\nlines", "crlf\r\ninside", "\"\"",
      "ends with a quote \"", ", leading comma", "multi, \"mixed\"\nand more",
    ]
    var text = "email,note,city\n"
    var line = 2
    var expected: [(line: Int, email: String, note: String, city: String)] = []
    for k in 0..<160 {
      // Every 13th record has no email: rejected, which reports its line.
      let email = k % 13 == 5 ? "" : "p\(k)@example.com"
      let note = notes[k % notes.count] + " #\(k)"
      let city = k % 4 == 0 ? "Washington, D.C." : "City \(k)"
      text += "\(email),\(Self.quote(note)),\(Self.quote(city))\n"
      expected.append((line, email, note, city))
      line += 1 + note.filter { $0 == "\n" || $0 == "\r\n" }.count
    }
    try dir.write("people.csv", text)
    let plan = try Self.plan(dir, kind: "csv", path: "people.csv")

    // The reader alone, in 1 KiB chunks so records and quoted line ends straddle chunk boundaries.
    let read = try await Self.read(plan, batchSize: 7, chunkSize: 1024)
    try #require(read.count == expected.count)
    for (r, e) in zip(read, expected) {
      #expect(r.line == e.line, "record of \(e.email)")
      #expect(r.fields == [e.email, e.note, e.city], "line \(e.line)")
    }

    // A whole run: values arrive intact and rejected records name their line.
    let store = try E2E.makeStore(kind, in: dir)
    let run = try await E2E.run(plan, store, batchSize: 16)
    let rejectedLines = expected.filter { $0.email.isEmpty }.map(\.line)
    #expect(run.summary.stats.events == expected.count - rejectedLines.count)
    #expect(run.rejected.map(\.line) == rejectedLines.map(Optional.some))
    for r in run.rejected { #expect(r.reason.contains("people.csv:\(r.line ?? 0): missing required field `email`")) }
    for e in expected where !e.email.isEmpty && e.line % 5 == 0 {
      let p = try await E2E.profile(store, "email", e.email)
      let traits = try await E2E.traits(store, p)
      #expect(traits["note"]?.value == .string(e.note))
      #expect(traits["city"]?.value == .string(e.city))
    }
  }

  @Test("a UTF-8 byte order mark before the CSV header", arguments: [false, true])
  func byteOrderMark(quotedHeader: Bool) async throws {
    let dir = try E2E.TempDir()
    defer { dir.remove() }
    let header = quotedHeader ? "\"email\",\"note\",\"city\"" : "email,note,city"
    try dir.write("people.csv", bytes: [0xEF, 0xBB, 0xBF] + Array("\(header)\na@example.com,n,Oslo\n".utf8))
    let plan = try Self.plan(dir, kind: "csv", path: "people.csv")
    let store = MemoryStore()
    let run = try await E2E.run(plan, store)
    #expect(run.rejected.isEmpty, "\(run.rejected.map(\.reason))")
    #expect(run.summary.stats.events == 1)
    let p = try await E2E.profile(store, "email", "a@example.com")
    #expect(try await E2E.traits(store, p)["city"]?.value == .string("Oslo"))
  }

  @Test("a UTF-8 byte order mark before the first NDJSON line")
  func byteOrderMarkNDJSON() async throws {
    let dir = try E2E.TempDir()
    defer { dir.remove() }
    let lines = "{\"email\": \"a@example.com\"}\n{\"email\": \"b@example.com\"}\n"
    try dir.write("people.ndjson", bytes: [0xEF, 0xBB, 0xBF] + Array(lines.utf8))
    let plan = try Self.plan(dir, kind: "ndjson", path: "people.ndjson")
    let store = MemoryStore()
    let run = try await E2E.run(plan, store)
    #expect(run.rejected.isEmpty, "\(run.rejected.map(\.reason))")
    #expect(run.summary.stats.events == 2)
  }

  @Test("CRLF line endings and blank lines", arguments: StoreKind.allCases)
  func crlfAndBlankLines(kind: StoreKind) async throws {
    let dir = try E2E.TempDir()
    defer { dir.remove() }
    let text =
      [
        "email,note,city",  // 1
        "a@example.com,first,Oslo",  // 2
        "",  // 3
        "   ",  // 4
        "b@example.com,\"two\r\nlines\",Bergen",  // 5–6
        "\t",  // 7
        ",no email,Tromsø",  // 8: rejected
        "c@example.com,last,Stavanger",  // 9
      ].joined(separator: "\r\n") + "\r\n\r\n"
    try dir.write("people.csv", text)
    let plan = try Self.plan(dir, kind: "csv", path: "people.csv")
    let read = try await Self.read(plan)
    #expect(read.map(\.line) == [2, 5, 8, 9])
    #expect(read.map { $0.fields.last ?? "" } == ["Oslo", "Bergen", "Tromsø", "Stavanger"], "no \\r left on a field")
    #expect(read[1].fields[1] == "two\r\nlines")

    let store = try E2E.makeStore(kind, in: dir)
    let run = try await E2E.run(plan, store)
    #expect(run.summary.recordsRead == 4, "blank lines are not records")
    #expect(run.summary.stats.events == 3)
    #expect(run.rejected.map(\.line) == [8])
    #expect(run.rejected.first?.record == ",no email,Tromsø")
    let c = try await E2E.profile(store, "email", "c@example.com")
    #expect(try await E2E.traits(store, c)["city"]?.value == .string("Stavanger"))
  }

  /// SQLite kept a text value up to its first NUL (GRDB binds strings as C strings): records whose ids differed
  /// only after one were counted stored and kept as one event, and identifier values that differed after one
  /// were one person. A NUL in a record's id, event name or trait name rejects it; in an identifier, drops it.
  @Test("NDJSON: a NUL in an id, an identifier or a trait name is refused, never stored cut short")
  func nulCharacters() async throws {
    let dir = try E2E.TempDir()
    defer { dir.remove() }
    let text = [
      #"{"record_id": "r\u0000a", "email": "a@example.com"}"#,  // 1: rejected, the id
      #"{"record_id": "r\u0000b", "email": "b@example.com"}"#,  // 2: rejected, the id
      #"{"record_id": "r3", "email": "c\u0000@example.com"}"#,  // 3: the email dropped; no identifier left
      #"{"record_id": "r4", "email": "d@example.com", "traits": {"ci\u0000ty": "Oslo"}}"#,  // 4: a trait name
      #"{"record_id": "r5", "email": "e@example.com", "traits": {"city": "Ber\u0000gen"}}"#,  // 5: stored
    ].joined(separator: "\n")
    try dir.write("people.ndjson", text)
    let plan = try E2E.compile(
      try dir.write(
        "files.yaml",
        """
        pipeline: files
        identifiers:
          email: { normalize: email, max_per_profile: 3, priority: 2 }
        deterministic:
          by_email: { link_on: [email] }
        sources:
          people:
            kind: ndjson
            path: people.ndjson
            emit: identify
            id: record_id
            map:
              email: email
              traits: traits
        """))
    let store = try E2E.makeStore(.sqlite, in: dir)
    let run = try await E2E.run(plan, store)
    #expect(run.summary.recordsRead == 5)
    #expect(run.summary.stats.events == 1)
    #expect(try await store.stats().events == 1)
    #expect(run.rejected.map(\.line) == [1, 2, 3, 4])
    let reasons = run.rejected.map(\.reason)
    #expect(reasons[0].hasSuffix(":1: the message id contains a NUL character (U+0000)"), "\(reasons)")
    #expect(reasons[2].contains("no valid identifier: email `c"), "\(reasons)")
    #expect(reasons[2].contains("` contains a NUL character (U+0000)"), "\(reasons)")
    #expect(reasons[3].hasSuffix(":4: a trait name contains a NUL character (U+0000)"), "\(reasons)")
    // A NUL inside a value is kept: values are stored as JSON, escaped.
    let e = try await E2E.profile(store, "email", "e@example.com")
    #expect(try await E2E.traits(store, e)["city"]?.value == .string("Ber\u{0}gen"))
  }

  @Test("NDJSON: blank lines skipped, the last line without a newline read", arguments: StoreKind.allCases)
  func ndjson(kind: StoreKind) async throws {
    let dir = try E2E.TempDir()
    defer { dir.remove() }
    let text = [
      "{\"email\": \"a@example.com\", \"city\": \"Oslo\"}",  // 1
      "",  // 2
      "  ",  // 3
      "{\"city\": \"Nowhere\"}",  // 4: no email, rejected
      "{\"email\": \"b@example.com\", \"note\": \"a \\\"quoted\\\" note\"}",  // 5
      "not json",  // 6: rejected
      "{\"email\": \"c@example.com\", \"city\": \"Bergen\"}",  // 7, no newline after it
    ].joined(separator: "\n")
    try dir.write("people.ndjson", text)
    let plan = try Self.plan(dir, kind: "ndjson", path: "people.ndjson")
    let read = try await Self.read(plan)
    #expect(read.map(\.line) == [1, 4, 5, 6, 7])
    #expect(read.last?.fields == ["{\"email\": \"c@example.com\", \"city\": \"Bergen\"}"])

    let store = try E2E.makeStore(kind, in: dir)
    let run = try await E2E.run(plan, store)
    #expect(run.summary.recordsRead == 5)
    #expect(run.summary.stats.events == 3)
    #expect(run.rejected.map(\.line) == [4, 6])
    #expect(run.rejected.map(\.source) == ["people", "people"])
    let c = try await E2E.profile(store, "email", "c@example.com")
    #expect(try await E2E.traits(store, c)["city"]?.value == .string("Bergen"))
    let b = try await E2E.profile(store, "email", "b@example.com")
    #expect(try await E2E.traits(store, b)["note"]?.value == .string("a \"quoted\" note"))
  }

  @Test("a glob reads every matching file in sorted order, each with its own header", arguments: StoreKind.allCases)
  func glob(kind: StoreKind) async throws {
    let dir = try E2E.TempDir()
    defer { dir.remove() }
    // Different column orders: each file's header applies to its own records.
    try dir.write("parts/part-2.csv", "city,email\nBergen,b@example.com\n,\n")
    try dir.write("parts/part-1.csv", "email,city\na@example.com,Oslo\n")
    try dir.write("parts/part-10.csv", "email,note,city\nc@example.com,x,Tromsø\n,missing,Nowhere\n")
    try dir.write("parts/other.txt", "email\nz@example.com\n")
    let plan = try Self.plan(dir, kind: "csv", path: "parts/part-*.csv")
    let reader = FileSourceReader(source: plan.config.sources[0])
    let names = reader.files.map { ($0 as NSString).lastPathComponent }
    #expect(names == ["part-1.csv", "part-10.csv", "part-2.csv"])

    let read = try await Self.read(plan)
    #expect(
      read.map { ($0.file as NSString).lastPathComponent } == [
        "part-1.csv", "part-10.csv", "part-10.csv", "part-2.csv", "part-2.csv",
      ])
    #expect(read.map(\.line) == [2, 2, 3, 2, 3])

    let store = try E2E.makeStore(kind, in: dir)
    let run = try await E2E.run(plan, store)
    #expect(run.summary.recordsRead == 5)
    #expect(run.summary.stats.events == 3)
    for (email, city) in [("a@example.com", "Oslo"), ("b@example.com", "Bergen"), ("c@example.com", "Tromsø")] {
      let p = try await E2E.profile(store, "email", email)
      #expect(try await E2E.traits(store, p)["city"]?.value == .string(city), "\(email)")
    }
    #expect(try await store.profile(for: Identifier("email", "z@example.com")) == nil)
    // Rejected records name the file they came from.
    #expect(run.rejected.count == 2)
    #expect(run.rejected[0].reason.contains("part-10.csv:3:"))
    #expect(run.rejected[1].reason.contains("part-2.csv:3:"))
  }

  @Test("a missing file stops the run with a SourceError naming the source")
  func missingFile() async throws {
    let dir = try E2E.TempDir()
    defer { dir.remove() }
    for (path, message) in [("missing.csv", "cannot open"), ("nothing-*.csv", "no file matches")] {
      let plan = try Self.plan(dir, kind: "csv", path: path)
      let store: any Store = MemoryStore()
      let error = await #expect(throws: SourceError.self) { try await E2E.run(plan, store) }
      #expect(error?.source == "people")
      #expect(error?.message.contains(message) == true, "\(String(describing: error))")
      #expect(error?.description.contains(path) == true, "\(String(describing: error))")
      #expect(try await store.stats().events == 0)
    }
  }

  @Test("a stray quote inside an unquoted CSV field does not swallow the records after it")
  func strayQuote() async throws {
    let dir = try E2E.TempDir()
    defer { dir.remove() }
    let text = "email,note,city\na@example.com,a 5\" screen,Oslo\nb@example.com,ok,Bergen\nc@example.com,ok,Tromsø\n"
    try dir.write("people.csv", text)
    let plan = try Self.plan(dir, kind: "csv", path: "people.csv")
    let read = try await Self.read(plan)
    #expect(read.map(\.line) == [2, 3, 4])
    #expect(read.first?.fields == ["a@example.com", "a 5\" screen", "Oslo"])
  }
}
