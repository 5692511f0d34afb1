import Foundation
import Testing

/// The README's "Adding a source" walk-through, run with the built `tessera` in a copy of the repository's
/// `pipelines/`, `rules/` and `examples/`: infer → edit → validate → dry-run, then a run.
@Suite(
  "End to end: adding a source",
  .enabled(if: E2E.CLI.binary != nil, "no built `tessera`; run `swift build --build-tests` first"))
struct AddingSourceCLITests {
  typealias CLI = E2E.CLI

  /// A copy of the folders the walk-through reads and edits.
  static func checkout() throws -> E2E.TempDir {
    let dir = try E2E.TempDir()
    for folder in ["pipelines", "rules", "examples"] {
      try FileManager.default.copyItem(atPath: E2E.packageRoot + "/" + folder, toPath: dir.file(folder))
    }
    return dir
  }

  /// Replaces text in a file of the copy, expecting it to be there.
  static func edit(_ path: String, _ old: String, _ new: String) throws {
    let text = try String(contentsOfFile: path, encoding: .utf8)
    try #require(text.contains(old), "`\(old)` is not in \(path)")
    try text.replacingOccurrences(of: old, with: new).write(toFile: path, atomically: true, encoding: .utf8)
  }

  @Test("infer → edit → validate → dry-run, and a run that lists the dropped email with its file and line")
  func walkThrough() async throws {
    let dir = try Self.checkout()
    defer { dir.remove() }
    // 1. Infer.
    let inferred = try await CLI.tessera(
      ["source", "infer", "examples/newsletter.csv", "--pipeline", "pipelines/retail.yaml"], in: dir.path)
    #expect(inferred.status == 0, "\(inferred.stderr)")
    #expect(
      inferred.stderr.hasSuffix(
        "checked: pipelines/retail.yaml compiles with this source (as pipelines/newsletter.yaml, included)\n"))
    #expect(inferred.stdout.contains("\n      email: email "))
    #expect(inferred.stdout.contains("\n      traits.source: source "))
    try dir.write("pipelines/newsletter.yaml", inferred.stdout)
    // 2. Edit: a clearer trait name, and the include.
    try Self.edit(dir.file("pipelines/newsletter.yaml"), "traits.source: source", "traits.signup_source: source")
    try Self.edit(
      dir.file("pipelines/retail.yaml"), "  - ../rules/segments.yaml\n",
      "  - ../rules/segments.yaml\n  - newsletter.yaml\n")
    // 3. Validate.
    let valid = try await CLI.tessera(["validate", "pipelines/retail.yaml"], in: dir.path)
    #expect(valid.status == 0, "\(valid.stdout)")
    #expect(
      valid.stdout
        == "pipelines/retail.yaml: pipeline `retail` — 5 sources, 4 identifiers, 2 match rules, 9 traits, 5 computed traits, 4 segments, 2 destinations; 0 errors, 0 warnings\n"
    )
    // A misspelt column is an error with the file's columns and a did-you-mean.
    try Self.edit(
      dir.file("pipelines/newsletter.yaml"), "traits.first_name: first_name", "traits.first_name: first_nam")
    let typo = try await CLI.tessera(["validate", "pipelines/retail.yaml"], in: dir.path)
    #expect(typo.status == 1)
    let shown = typo.stdout.split(separator: "\n", omittingEmptySubsequences: false)
    try #require(shown.count >= 3, "\(typo.stdout)")
    #expect(
      shown[0]
        == "pipelines/newsletter.yaml:15:26: error: column `first_nam` is not in newsletter.csv (email, signed_up_at, source, first_name); did you mean `first_name`?"
    )
    #expect(shown[1].hasPrefix("      traits.first_name: first_nam   "))
    #expect(shown[2] == "                         ^~~~~~~~~")
    try Self.edit(
      dir.file("pipelines/newsletter.yaml"), "traits.first_name: first_nam", "traits.first_name: first_name")
    // 4. Dry-run: three profiles, the malformed email listed and its record rejected with the reason.
    let dry = try await CLI.tessera(
      ["dry-run", "pipelines/retail.yaml", "--sample", "examples/newsletter.csv", "--now", "2026-06-30T00:00:00Z"],
      in: dir.path)
    #expect(dry.status == 0, "\(dry.stderr)")
    #expect(dry.stdout.contains("\nprofiles created (3)\n"))
    #expect(
      dry.stdout.contains(
        "\nidentifier values dropped by normalizers (1)\n  newsletter:4: email `bad-email` is not an email; dropped\n"))
    #expect(
      dry.stdout.contains(
        "examples/newsletter.csv:4: no valid identifier: email `bad-email` is not an email; no probabilistic rule can place the record (`person` needs last_name and postcode, or date_of_birth)\n"
      ))
    #expect(dry.stdout.contains("prf_3 signup_source: ∅ → popup  from newsletter"))
    // A run says the same with the file and line, and counts it.
    let rejected = dir.file("rejected.ndjson")
    let run = try await CLI.tessera(
      ["run", "pipelines/retail.yaml", "--store", dir.file("s.sqlite"), "--rejected", rejected], in: dir.path)
    #expect(run.status == 0, "\(run.stderr)")
    #expect(CLIEndToEndTests.table(run.stdout)["invalid identifiers dropped"] == "2")
    #expect(
      run.stdout.contains(
        """
          identifier values dropped (2):
            examples/newsletter.csv:4: email `bad-email` is not an email; dropped
            examples/crm_contacts.csv:10: email `ivan.petrov.example.com` is not an email; dropped
        """))
    let lines = try String(contentsOfFile: rejected, encoding: .utf8).split(separator: "\n")
    #expect(
      lines.contains {
        $0.contains(#""reason":"examples/newsletter.csv:4: no valid identifier: email `bad-email` is not an email;"#)
      })
  }
}
