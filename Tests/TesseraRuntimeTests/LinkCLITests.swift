import Foundation
import Testing

/// `tessera link`, `tune` and `explain` on the labelled people examples, through the built executable.
@Suite(
  "End to end: link, tune and explain",
  .enabled(if: E2E.CLI.binary != nil, "no built `tessera`; run `swift build --build-tests` first"))
struct LinkCLITests {
  typealias CLI = E2E.CLI
  static let train = "examples/people/people_train.csv"
  static let labelled = "examples/people/people_labelled.csv"
  static let pairs = "examples/people/pairs_labelled.csv"

  @Test("--count-only counts each blocking rule's pairs and the union, and stops")
  func countOnly() async throws {
    let r = try await CLI.tessera(["link", Self.train, "--rules", "rules/people.yaml", "--count-only"])
    #expect(r.status == 0, "\(r.stderr)")
    let lines = r.stdout.split(separator: "\n").map(String.init)
    #expect(lines.first == "5000 records from 1 file, rule `person`")
    let ruleLines = lines.filter { $0.hasPrefix("  [") }
    #expect(ruleLines.count == 6)
    // Columns: pairs, new pairs, largest block; the union is the sum of the new pairs.
    let newPairs = ruleLines.map { line in Int(line.split(separator: " ").reversed()[1]) ?? -1 }
    let union = try #require(lines.first { $0.contains("candidate pairs (union") })
    #expect(union.hasSuffix(": \(newPairs.reduce(0, +))"))
    #expect(!r.stdout.contains("joins"))
  }

  @Test("link with the committed parameters: clusters that match the truth, the same on every run")
  func linkExample() async throws {
    let dir = try E2E.TempDir()
    defer { dir.remove() }
    let out = dir.file("clusters.csv")
    let pairs = dir.file("pairs.csv")
    let args = [
      "link", Self.train, "--rules", "rules/people.yaml", "--out", out, "--pairs", pairs, "--truth-column",
      "cluster_id",
    ]
    let r = try await CLI.tessera(args)
    #expect(r.status == 0, "\(r.stderr)")
    #expect(!r.stdout.contains("training"), "the committed parameters are used, not retrained")
    // The table of blocking rules comes from the run itself: its union is what was scored, and what
    // --count-only counts.
    let lines = r.stdout.split(separator: "\n").map(String.init)
    let union = try #require(lines.first { $0.contains("candidate pairs (union") }?.split(separator: " ").last)
    #expect(lines.contains { $0.hasPrefix("\(union) pairs scored") }, "\(r.stdout)")
    let counted = try await CLI.tessera(["link", Self.train, "--rules", "rules/people.yaml", "--count-only"])
    #expect(
      counted.stdout.split(separator: "\n").map(String.init).filter { $0.hasPrefix("  ") }
        == lines.filter {
          $0.hasPrefix("  [") || $0.hasPrefix("  blocking rule") || $0.hasPrefix("  candidate pairs")
        })
    let metrics = try #require(r.stdout.split(separator: "\n").first { $0.hasPrefix("against `cluster_id`") })
    let f1 = try #require(Double(metrics.components(separatedBy: "F1 ")[1].prefix(6)))
    #expect(f1 >= 0.98, "\(metrics)")
    let clusters = try String(contentsOfFile: out, encoding: .utf8).split(separator: "\n")
    #expect(clusters.first == "record_id,cluster_id")
    #expect(clusters.count == 5001)
    let pairLines = try String(contentsOfFile: pairs, encoding: .utf8).split(separator: "\n")
    #expect(pairLines.first == "left_id,right_id,match_weight,match_probability,decision")
    #expect(pairLines.dropFirst().allSatisfy { Double($0.split(separator: ",")[3]) ?? 0 >= 0.9 })
    let again = try await CLI.tessera(args)
    #expect(again.status == 0)
    #expect(try String(contentsOfFile: out, encoding: .utf8).split(separator: "\n") == clusters)
  }

  @Test("link --train writes parameters the rules read back")
  func train() async throws {
    let dir = try E2E.TempDir()
    defer { dir.remove() }
    let params = dir.file("person.params.yaml")
    let r = try await CLI.tessera([
      "link", Self.train, "--rules", "rules/people.yaml", "--train", "--random-pairs", "100000", "--params-out",
      params,
    ])
    #expect(r.status == 0, "\(r.stderr)")
    #expect(r.stdout.contains("training: u from 100000 random pairs"))
    #expect(r.stdout.contains("(not first_name, date_of_birth: blocked on)"))
    #expect(r.stdout.contains("trained parameters written to \(params)"))
    let text = try String(contentsOfFile: params, encoding: .utf8)
    #expect(text.contains("rule: person\n"))
    for field in ["first_name", "last_name", "date_of_birth", "contact"] { #expect(text.contains("  \(field):\n")) }
    // A copy of the rules pointing at the new file compiles without a warning about it.
    let rules = try String(contentsOfFile: E2E.packageRoot + "/rules/people.yaml", encoding: .utf8)
      .replacingOccurrences(of: "parameters: people.params.yaml", with: "parameters: person.params.yaml")
    let copy = try dir.write("people.yaml", rules)
    let v = try await CLI.tessera(["validate", "--rules", copy])
    #expect(v.status == 0, "\(v.stdout)\(v.stderr)")
    #expect(v.stdout.contains("0 errors, 0 warnings"), "\(v.stdout)")
  }

  @Test("tune on labelled records: metrics per threshold, a recommendation and the chart")
  func tuneRecords() async throws {
    let dir = try E2E.TempDir()
    defer { dir.remove() }
    let chart = dir.file("pr.svg")
    let metrics = dir.file("metrics.csv")
    let r = try await CLI.tessera([
      "tune", "--rules", "rules/people.yaml", "--labels", Self.labelled, "--precision", "0.99", "--chart", chart,
      "--out", metrics,
    ])
    #expect(r.status == 0, "\(r.stderr)")
    #expect(r.stdout.hasPrefix("rule `person` on 3000 labelled records"))
    let recommended = try #require(r.stdout.split(separator: "\n").first { $0.hasPrefix("recommended merge") })
    let precision = try #require(Double(recommended.components(separatedBy: "cluster precision ")[1].prefix(6)))
    #expect(precision >= 0.99, "\(recommended)")
    #expect(r.stdout.contains("to apply: thresholds: { merge: "))
    #expect(r.stdout.contains("candidate pairs would"))
    let svg = try String(contentsOfFile: chart, encoding: .utf8)
    #expect(svg.hasPrefix("<svg") && svg.contains("<polyline") && svg.contains("recommended merge"))
    let rows = try String(contentsOfFile: metrics, encoding: .utf8).split(separator: "\n")
    #expect(rows.first?.hasPrefix("match_weight,match_probability,pair_precision") == true)
    #expect(rows.count > 20)
  }

  @Test("tune on labelled pairs reads the records from the file arguments")
  func tunePairs() async throws {
    let dir = try E2E.TempDir()
    defer { dir.remove() }
    let r = try await CLI.tessera([
      "tune", Self.labelled, "--rules", "rules/people.yaml", "--labels", Self.pairs, "--chart", dir.file("c.svg"),
    ])
    #expect(r.status == 0, "\(r.stderr)")
    #expect(r.stdout.hasPrefix("rule `person` on 3105 labelled pairs"))
    let missing = try await CLI.tessera(["tune", "--rules", "rules/people.yaml", "--labels", Self.pairs])
    #expect(missing.status != 0)
    #expect(missing.stderr.contains("holds labelled pairs; give the record files they refer to as arguments"))
  }

  @Test("explain: the table adds up, JSON for machines, a waterfall chart")
  func explain() async throws {
    let dir = try E2E.TempDir()
    defer { dir.remove() }
    let chart = dir.file("w.svg")
    let r = try await CLI.tessera([
      "explain", "r0000001", "r0000002", "--rules", "rules/people.yaml", "--records", Self.train, "--chart", chart,
    ])
    #expect(r.status == 0, "\(r.stderr)")
    let lines = r.stdout.split(separator: "\n").map(String.init)
    #expect(lines[0].hasPrefix("field") && lines[0].contains("r0000001") && lines[0].contains("r0000002"))
    for row in ["prior", "first_name", "last_name", "date_of_birth", "contact"] {
      #expect(lines.contains { $0.hasPrefix(row + " ") }, "\(row)")
    }
    #expect(lines.contains { $0.hasPrefix("match weight ") && $0.hasSuffix(": different") })
    #expect(try String(contentsOfFile: chart, encoding: .utf8).contains("<rect"))
    let j = try await CLI.tessera([
      "explain", "r0000001", "r0000002", "--rules", "rules/people.yaml", "--records", Self.train, "--format", "json",
    ])
    let object = try #require(
      try JSONSerialization.jsonObject(with: Data(j.stdout.utf8)) as? [String: Any])
    let comparisons = try #require(object["comparisons"] as? [[String: Any]])
    #expect(comparisons.count == 4)
    let prior = try #require(object["prior_weight"] as? Double)
    let sum = comparisons.reduce(prior) { $0 + (($1["weight"] as? Double) ?? 0) }
    #expect(abs(sum - ((object["match_weight"] as? Double) ?? .nan)) < 1e-9)
  }

  @Test("bad input: a missing column, an unknown rule, an unknown record")
  func errors() async throws {
    let noColumn = try await CLI.tessera([
      "link", Self.train, "--rules", "rules/people.yaml", "--truth-column", "truth",
    ])
    #expect(noColumn.status != 0)
    #expect(noColumn.stderr.contains("has no column `truth`; its columns: record_id, cluster_id, first_name"))
    let noRule = try await CLI.tessera(["link", Self.train, "--rules", "rules/people.yaml", "--rule", "persn"])
    #expect(noRule.stderr.contains("no probabilistic rule `persn` in `rules/people.yaml`; it declares: person"))
    let noRecord = try await CLI.tessera([
      "explain", "r0000001", "nope", "--rules", "rules/people.yaml", "--records", Self.train,
    ])
    #expect(noRecord.stderr.contains("no record `nope` in \(Self.train)"))
  }

  @Test("review: the example's candidate link is listed, confirmed and merged; decisions need a waiting link")
  func review() async throws {
    let dir = try E2E.TempDir()
    defer { dir.remove() }
    let store = dir.file("r.sqlite")
    let now = "2026-06-30T00:00:00Z"
    let run = try await CLI.tessera(["run", "pipelines/retail.yaml", "--store", store, "--now", now])
    #expect(run.status == 0, "\(run.stderr)")
    #expect(run.stdout.contains("candidate links to review    1 (tessera review)"))
    let list = try await CLI.tessera(["review", "--store", store])
    let rows = list.stdout.split(separator: "\n").filter { $0.first?.isNumber == true }
    #expect(rows.count == 1)
    let row = try #require(rows.first).split(separator: " ", omittingEmptySubsequences: true)
    #expect(row[1] == "person" && row[4] == "0.986945" && row[5] == "review" && row[6] == "ORD-2026-000119")
    let all = try await CLI.tessera(["review", "--store", store, "--status", "all", "--format", "json"])
    let links = try #require(try JSONSerialization.jsonObject(with: Data(all.stdout.utf8)) as? [[String: Any]])
    #expect(links.compactMap { $0["status"] as? String }.sorted() == ["joined", "review"])
    let id = String(row[0])
    let confirm = try await CLI.tessera([
      "review", "confirm", id, "--store", store, "--pipeline", "pipelines/retail.yaml", "--now", now,
    ])
    #expect(confirm.status == 0, "\(confirm.stderr)")
    #expect(confirm.stdout == "confirmed 1 link: 1 merged, 0 refused by limits; 33 profiles in store\n")
    let profile = try await CLI.tessera(["profile", "user_id:100113", "--store", store])
    #expect(profile.stdout.contains("rule person match probability 0.986945  (event review:\(id))"))
    #expect(profile.stdout.contains("revenue_total      150.0"))
    // A replay keeps the reviewer's decision: the confirmed link is merged again, so nothing would change.
    let replay = try await CLI.tessera([
      "replay", "pipelines/retail.yaml", "--store", store, "--dry-run", "--now", now, "--format", "json",
    ])
    let report = try #require(try JSONSerialization.jsonObject(with: Data(replay.stdout.utf8)) as? [String: Any])
    #expect((report["splits"] as? [Any])?.isEmpty == true, "\(replay.stdout)")
    #expect(report["profiles_after"] as? Int == 33)
    let again = try await CLI.tessera(["review", "reject", id, "--store", store])
    #expect(again.status != 0)
    #expect(again.stderr.contains("link \(id) is not waiting for review"))
  }

  @Test("linking two files: only pairs across them, ids qualified by file when they clash")
  func linkTwoFiles() async throws {
    let dir = try E2E.TempDir()
    defer { dir.remove() }
    let lines = try String(contentsOfFile: E2E.packageRoot + "/" + Self.train, encoding: .utf8)
      .split(separator: "\n")
    // b.csv repeats the first 40 records of a.csv under the same ids.
    let a = try dir.write("a.csv", lines[0...80].joined(separator: "\n") + "\n")
    let b = try dir.write("b.csv", lines[0...40].joined(separator: "\n") + "\n")
    let out = dir.file("c.csv")
    let pairs = dir.file("p.csv")
    let r = try await CLI.tessera([
      "link", a, b, "--rules", "rules/people.yaml", "--link-only", "--out", out, "--pairs", pairs, "--pairs-min",
      "0.000000001",
    ])
    #expect(r.status == 0, "\(r.stderr)")
    #expect(r.stdout.hasPrefix("120 records from 2 files"))
    let rows = try String(contentsOfFile: out, encoding: .utf8).split(separator: "\n").dropFirst()
      .map { $0.split(separator: ",").map(String.init) }
    #expect(rows.count == 120)
    let cluster = Dictionary(uniqueKeysWithValues: rows.map { ($0[0], $0[1]) })
    for n in 1...40 {
      let id = String(format: "r%07d", n)
      #expect(cluster["b.csv:\(id)"] == cluster["a.csv:\(id)"], "\(id)")
    }
    // Within a file nothing is compared: every scored pair has one record of each.
    let scored = try String(contentsOfFile: pairs, encoding: .utf8).split(separator: "\n").dropFirst()
    #expect(scored.count >= 40)
    for pair in scored {
      let ids = pair.split(separator: ",")
      #expect(ids[0].hasPrefix("a.csv:") != ids[1].hasPrefix("a.csv:"), "\(pair)")
    }
  }
}
