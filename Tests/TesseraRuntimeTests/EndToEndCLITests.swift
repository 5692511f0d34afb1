import Foundation
import TesseraModel
import Testing

/// The built `tessera` executable, run as a user would from the package root.
@Suite(
  "End to end: the tessera command",
  .enabled(
    if: E2E.CLI.binary != nil,
    "no built `tessera` next to the tests or in .build/debug or .build-e2e/debug; run `swift build --build-tests` first"
  ))
struct CLIEndToEndTests {
  typealias CLI = E2E.CLI

  /// The summary table's rows, label → value.
  static func table(_ stdout: String) -> [String: String] {
    var rows: [String: String] = [:]
    for line in stdout.split(separator: "\n").dropFirst() {
      let parts = line.trimmingCharacters(in: .whitespaces).components(separatedBy: "  ").filter { !$0.isEmpty }
      guard parts.count >= 2 else { continue }
      rows[parts[0]] = parts.dropFirst().joined(separator: "  ").trimmingCharacters(in: .whitespaces)
    }
    return rows
  }

  @Test("run: the summary, the rejected file, and a second run that adds nothing")
  func run() async throws {
    let dir = try E2E.TempDir()
    defer { dir.remove() }
    let store = dir.file("x.sqlite")
    let rejected = dir.file("rejected.ndjson")
    let r = try await CLI.tessera(["run", "pipelines/retail.yaml", "--store", store, "--rejected", rejected])
    #expect(r.status == 0, "\(r.stderr)")
    let lines = r.stdout.split(separator: "\n")
    #expect(lines.first == "run finished → \(store)")
    let rows = Self.table(r.stdout)
    #expect(rows["records read"] == "106")
    #expect(rows["events stored"] == "100")
    #expect(rows["duplicates skipped"] == "2")
    #expect(rows["rejected"] == "4 (see \(rejected))")
    #expect(rows["invalid identifiers dropped"] == "1")
    #expect(rows["profiles created"] == "36")
    #expect(rows["merges"] == "2")
    #expect(rows["conflicts (merges refused)"] == "4")
    #expect(rows["profiles in store"] == "34")
    #expect(rows["time"]?.hasSuffix("records/s)") == true)

    let text = try String(contentsOfFile: rejected, encoding: .utf8)
    let records = text.split(separator: "\n").map { line -> [String: Any] in
      (try? JSONSerialization.jsonObject(with: Data(line.utf8)) as? [String: Any]) ?? [:]
    }
    try #require(records.count == 4, "\(text)")
    let expected: [(String, Int, String)] = [
      ("crm", 11, "examples/crm_contacts.csv:11: missing required field `updated_at`"),
      ("crm", 12, "examples/crm_contacts.csv:12: field `lifetime_value`: expected double, found \"n/a\""),
      ("pos", 25, "examples/pos_orders.ndjson:25: malformed JSON"),
      ("pos", 26, "examples/pos_orders.ndjson:26: missing required field `order.total`"),
    ]
    for (record, (source, line, reason)) in zip(records, expected) {
      #expect(record["source"] as? String == source)
      #expect(record["line"] as? Int == line)
      #expect((record["reason"] as? String)?.hasPrefix(reason) == true, "\(record)")
      #expect((record["record"] as? String)?.isEmpty == false)
    }
    #expect((records[0]["record"] as? String)?.hasPrefix("100110,julia.novak@example.org,") == true)

    let again = try await CLI.tessera(["run", "pipelines/retail.yaml", "--store", store, "--workers", "1"])
    #expect(again.status == 0, "\(again.stderr)")
    let second = Self.table(again.stdout)
    #expect(second["events stored"] == "0")
    #expect(second["duplicates skipped"] == "102")
    #expect(second["profiles created"] == "0")
    #expect(second["merges"] == "0")
    #expect(second["profiles in store"] == "34")
  }

  @Test("profile: Maya as JSON, looked up by an email written differently")
  func profile() async throws {
    let dir = try E2E.TempDir()
    defer { dir.remove() }
    let store = dir.file("x.sqlite")
    let run = try await CLI.tessera(["run", "pipelines/retail.yaml", "--store", store])
    try #require(run.status == 0, "\(run.stderr)")

    let r = try await CLI.tessera([
      "profile", "email:Maya.Patel@example.com", "--store", store, "--pipeline", "pipelines/retail.yaml",
      "--format", "json",
    ])
    #expect(r.status == 0, "\(r.stderr)")
    let json = try #require(try JSONSerialization.jsonObject(with: Data(r.stdout.utf8)) as? [String: Any])
    let id = try #require(json["id"] as? String)
    #expect(id.hasPrefix("prf_"))
    let aliases = json["aliases"] as? [String] ?? []
    #expect(aliases.count == 1, "visitor A's profile")

    let identifiers = (json["identifiers"] as? [[String: Any]] ?? []).map {
      "\($0["kind"] as? String ?? "?"):\($0["value"] as? String ?? "?")"
    }
    #expect(
      identifiers.sorted() == [
        "anonymous_id:c1f0319c-6f5c-5feb-a568-a86ef8df58e0", "email:maya.patel@example.com", "phone:+14155550115",
        "user_id:100115",
      ])

    let traits = json["traits"] as? [String: [String: Any]] ?? [:]
    #expect(traits["first_name"]?["value"] as? String == "Maya")
    #expect(traits["first_name"]?["source"] as? String == "crm")
    #expect((traits["first_name"]?["why"] as? String)?.hasPrefix("source priority (crm > pos > web)") == true)
    #expect(traits["marketing_opt_in"]?["value"] as? Bool == true)
    #expect(traits["city"]?["value"] as? String == "Oakland")
    #expect(traits["date_of_birth"]?["value"] as? String == "1998-08-08")

    let merges = json["merges"] as? [[String: Any]] ?? []
    try #require(merges.count == 1)
    #expect(merges[0]["survivor"] as? String == id)
    #expect(merges[0]["absorbed"] as? String == aliases.first)
    #expect(merges[0]["rule"] as? String == "strong_ids")
    #expect(
      Set(merges[0]["evidence"] as? [String] ?? []) == [
        "user_id:100115", "anonymous_id:c1f0319c-6f5c-5feb-a568-a86ef8df58e0",
      ])
    #expect(merges[0]["event_id"] as? String == "ajs-next-1781035450660-d146cdb7-57b1-5303-ad70-0c26a287120e")
    #expect((json["conflicts"] as? [Any])?.isEmpty == true)
    let events = json["events"] as? [[String: Any]] ?? []
    #expect(events.count == 8)
    #expect(events.first?["name"] as? String == "Newsletter Subscribed", "newest first")
    #expect(events.last?["source"] as? String == "crm")

    // The same profile by user id, and by the id of the profile merged into it.
    for key in ["user_id:100115", aliases.first ?? "?"] {
      let other = try await CLI.tessera(["profile", key, "--store", store, "--format", "json"])
      #expect(other.status == 0, "\(key): \(other.stderr)")
      let o = try JSONSerialization.jsonObject(with: Data(other.stdout.utf8)) as? [String: Any]
      #expect(o?["id"] as? String == id, "\(key)")
    }
    let text = try await CLI.tessera(["profile", "user_id:100108", "--store", store])
    #expect(text.status == 0)
    #expect(text.stdout.contains("refused merges and attachments"), "Henry's refused merges are shown")
  }

  @Test("profile: no match exits 3")
  func profileNotFound() async throws {
    let dir = try E2E.TempDir()
    defer { dir.remove() }
    let store = dir.file("x.sqlite")
    let run = try await CLI.tessera(["run", "pipelines/retail.yaml", "--store", store])
    try #require(run.status == 0, "\(run.stderr)")
    let r = try await CLI.tessera(["profile", "email:nobody@example.com", "--store", store])
    #expect(r.status == 3)
    #expect(r.stdout.isEmpty)
    #expect(r.stderr.contains("no profile matches `email:nobody@example.com`"))
  }

  @Test("validate: a broken pipeline exits 1, the example exits 0")
  func validate() async throws {
    let dir = try E2E.TempDir()
    defer { dir.remove() }
    let broken = try dir.write(
      "broken.yaml",
      """
      pipeline: broken
      identifiers:
        email: { normalize: email, priority: 2 }
      deterministic:
        by_email:
          link_on: [email, phone]
      sourcez: {}
      """)
    let r = try await CLI.tessera(["validate", broken])
    #expect(r.status == 1)
    #expect(r.stdout.contains("error"), "\(r.stdout)")
    #expect(r.stdout.contains("broken.yaml:"), "diagnostics name the file")
    let ok = try await CLI.tessera(["validate", "pipelines/retail.yaml"])
    #expect(ok.status == 0, "\(ok.stdout)")
    #expect(ok.stdout.contains("pipeline `retail`"))
  }

  @Test("run: a missing source file exits 2 naming the source")
  func missingSource() async throws {
    let dir = try E2E.TempDir()
    defer { dir.remove() }
    let pipeline = try dir.write("files.yaml", FileReaderEndToEndTests.pipeline(kind: "csv", path: "missing.csv"))
    let r = try await CLI.tessera(["run", pipeline, "--store", dir.file("x.sqlite")])
    #expect(r.status == 2)
    #expect(r.stderr.contains("error: source `people`: cannot open"), "\(r.stderr)")
  }
}

extension E2E {
  /// Runs the `tessera` executable.
  enum CLI {
    /// The executable built with the tests (next to the test bundle), else one in a usual scratch folder.
    static let binary: String? = {
      let beside = URL(fileURLWithPath: CommandLine.arguments.first ?? "").deletingLastPathComponent()
        .appendingPathComponent("tessera").path
      let candidates = [beside, packageRoot + "/.build/debug/tessera", packageRoot + "/.build-e2e/debug/tessera"]
      return candidates.first { FileManager.default.isExecutableFile(atPath: $0) }
    }()

    struct Result: Sendable {
      var status: Int32
      var stdout: String
      var stderr: String
    }

    /// Runs `tessera` with the arguments in `directory` (the package root unless given) and waits for it.
    static func tessera(_ arguments: [String], in directory: String = packageRoot) async throws -> Result {
      let binary = try #require(binary)
      let dir = try TempDir()
      defer { dir.remove() }
      let out = try dir.write("stdout", "")
      let err = try dir.write("stderr", "")
      let status = try await ChildProcess.run(
        binary, arguments, directory: directory, standardOutput: .file(out), standardError: .file(err),
        atMost: .seconds(600))
      return Result(
        status: status, stdout: try String(contentsOfFile: out, encoding: .utf8),
        stderr: try String(contentsOfFile: err, encoding: .utf8))
    }
  }
}
