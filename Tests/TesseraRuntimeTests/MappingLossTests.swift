import Foundation
import TesseraCompiler
import TesseraModel
import TesseraRuntime
import TesseraStore
import Testing

/// Nothing is lost without a word: identifier values a normalizer dropped are listed with file and line, mapped
/// fields that never had a value are named, and a record left without identifiers is rejected unless a
/// probabilistic rule can still place it (then the report shows what the rule made of it).
@Suite("What mapping loses is reported")
struct MappingLossTests {
  /// A dry run (as `tessera dry-run` does it): the pipeline in `dir` over its own files, into a recorded
  /// in-memory store.
  static func dryRun(_ pipeline: String, in dir: E2E.TempDir) async throws -> (DryRunReport, RunSummary) {
    let plan = try E2E.compile(try dir.write("p.yaml", pipeline))
    let runner = PipelineRunner(plan: plan, store: MemoryStore(), readers: E2E.readers(plan), now: E2E.now)
    let (summary, batches) = try await runner.recorded()
    let report = DryRunReport.build(config: plan.config, summary: summary, batches: batches, before: [])
    return (report, summary)
  }

  static let people = """
    email,last_name,nickname
    ada@example.com,Lovelace,
    bad-email,Lovelace,
    ,Hopper,
    also-bad,,

    """

  static func pipeline(probabilistic: Bool) -> String {
    """
    pipeline: p
    identifiers:
      email: { normalize: email }
    deterministic:
      by_email: { link_on: [email] }
    sources:
      people:
        kind: csv
        path: people.csv
        map:
          email: email
          traits.last_name: last_name
          traits.nickname: nickname
    """
      + (probabilistic
        ? """

        probabilistic:
          person:
            blocking: [[traits.last_name]]
            compare:
              last_name: [{ level: exact, m: 0.9, u: 0.01 }, { level: else, m: 0.1, u: 0.99 }]
            prior: 0.1
            thresholds: { merge: 0.95, review: 0.5 }
        """ : "")
  }

  @Test("without probabilistic rules: the dropped email is listed with its line, identifier-less records rejected")
  func deterministicOnly() async throws {
    let dir = try E2E.TempDir()
    defer { dir.remove() }
    let file = try dir.write("people.csv", Self.people)
    let (report, summary) = try await Self.dryRun(Self.pipeline(probabilistic: false), in: dir)
    #expect(
      report.mapping.droppedLines == [
        "people:3: email `bad-email` is not an email; dropped", "people:5: email `also-bad` is not an email; dropped",
      ])
    #expect(summary.stats.invalidIdentifiers == 2)
    #expect(summary.stats.notes.dropped.map { "\($0.file):\($0.line)" } == ["\(file):3", "\(file):5"])
    #expect(
      report.rejected.map(\.reason) == [
        "\(file):3: no valid identifier: email `bad-email` is not an email",
        "\(file):4: no identifier: none of email is present",
        "\(file):5: no valid identifier: email `also-bad` is not an email",
      ])
    #expect(report.profilesCreated.count == 1)
    #expect(report.mapping.nullLines == ["people: `traits.nickname` was null on all 4 records"])
    #expect(report.mapping.unidentified.isEmpty)
    #expect(
      report.text.contains(
        "\nidentifier values dropped by normalizers (2)\n  people:3: email `bad-email` is not an email; dropped\n"))
    #expect(
      report.text.contains(
        "\nmapped fields null on every record (1)\n  people: `traits.nickname` was null on all 4 records\n"))
    #expect(report.text.contains("\nrecords without an identifier (0)\n  none\n"))
    let json = report.json
    guard case .map(let top) = json, case .map(let mapping)? = top["mapping"],
      case .list(let dropped)? = mapping["dropped_values"], case .map(let first)? = dropped.first
    else {
      Issue.record("no mapping section in \(JSON.encode(json))")
      return
    }
    #expect(first["line"] == .int(3))
    #expect(first["value"] == .string("bad-email"))
    #expect(first["reason"] == .string("is not an email"))
  }

  @Test("with a probabilistic rule: a record it can place is kept and reported with its candidate; others rejected")
  func probabilistic() async throws {
    let dir = try E2E.TempDir()
    defer { dir.remove() }
    let file = try dir.write("people.csv", Self.people)
    let (report, summary) = try await Self.dryRun(Self.pipeline(probabilistic: true), in: dir)
    // Lines 3 (Lovelace) and 4 (Hopper) have the blocking key; line 5 has none.
    #expect(
      report.rejected.map(\.reason) == [
        "\(file):5: no valid identifier: email `also-bad` is not an email; no probabilistic rule can place the record (`person` needs last_name)"
      ])
    #expect(summary.stats.notes.unidentifiedCount == 2)
    // w = log2(0.1 / 0.9) + log2(0.9 / 0.01) = log2(10): probability 10/11, between review and merge.
    #expect(
      report.mapping.unidentifiedLines == [
        "people:3: no identifier left (email `bad-email` is not an email; dropped); kept for probabilistic matching: candidate prf_1 (rule `person`, probability 0.909091) left for review; it starts prf_2",
        "people:4: no identifier; kept for probabilistic matching: no candidate reached the review threshold of `person`; it starts prf_3",
      ])
    #expect(report.links.map(\.status) == [.review])
  }

  @Test("the example: the POS guests are reported with what the rule `person` made of them")
  func exampleGuests() async throws {
    let plan = try E2E.compile(E2E.retailPipeline)
    let (summary, batches) = try await PipelineRunner(
      plan: plan, store: MemoryStore(), readers: E2E.readers(plan), now: E2E.now
    ).recorded()
    let report = DryRunReport.build(config: plan.config, summary: summary, batches: batches, before: [])
    let lines = report.mapping.unidentifiedLines
    try #require(lines.count == 4, "\(lines)")
    #expect(lines[0].hasPrefix("pos:14: no identifier; kept for probabilistic matching: joined prf_"))
    #expect(lines[0].hasSuffix("(rule `person`, probability 0.995902)"))
    #expect(lines[1].hasPrefix("pos:19: no identifier; kept for probabilistic matching: candidate prf_"))
    #expect(lines[1].contains("(rule `person`, probability 0.986"))
    #expect(lines[1].contains(") left for review; it starts prf_"))
    #expect(lines[2].hasPrefix("pos:22: "))
    #expect(lines[3].hasPrefix("pos:24: "))
    // Ivan's malformed email (CRM line 10) is the one value dropped; his row is kept by its user id.
    #expect(report.mapping.droppedLines == ["crm:10: email `ivan.petrov.example.com` is not an email; dropped"])
    #expect(report.mapping.alwaysNull.isEmpty)
  }
}
