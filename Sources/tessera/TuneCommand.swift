import ArgumentParser
import Foundation
import TesseraCompiler
import TesseraConnectors
import TesseraMatching
import TesseraModel
import TesseraRuntime
import TesseraSQLite
import TesseraStore

struct TuneCommand: AsyncParsableCommand {
  static let configuration = CommandConfiguration(
    commandName: "tune",
    abstract: "Measure a probabilistic rule on labelled data and recommend its thresholds.",
    discussion: """
      Labels are either pairs (`left_id,right_id,is_match` with 1/0 or true/false; the records come from the \
      FILE arguments) or records with a true-cluster column (--truth-column, default `cluster_id`; then the \
      labels file holds the records). Prints precision, recall and F1 of pairs and of clusters at every \
      threshold, recommends `merge` for --precision and `review`, counts how many merges the change would \
      alter, and draws the precision–recall chart as SVG (and PNG when `rsvg-convert` is installed).
      """)

  @Argument(help: "Record files, when --labels holds pairs.")
  var files: [String] = []

  @OptionGroup var options: RuleOptions

  @Option(help: "Labelled pairs (left_id,right_id,is_match) or records with a true-cluster column.")
  var labels: String

  @Option(help: "The column with the true cluster, when --labels holds records.")
  var truthColumn: String = "cluster_id"

  @Option(help: "The cluster precision the recommended merge threshold must keep.")
  var precision: Double = 0.999

  @Option(help: "Where to draw the precision–recall chart.")
  var chart: String = "tune-precision-recall.svg"

  @Option(help: "Where to write every threshold's metrics as CSV.")
  var out: String?

  @Flag(help: "Train the parameters on these records first (otherwise the rule's trained parameters are used).")
  var train = false

  @Option(help: "Seed of the random pairs that estimate u when training.")
  var seed: UInt64 = 42

  @Option(help: "Thresholds are tried every STEP bits of match weight.")
  var step: Double = 0.25

  func run() async throws {
    let inputs = try options.inputs()
    let header = try RecordFile.header(labels)
    let pairMode = header.contains("left_id") && header.contains("right_id") && header.contains("is_match")
    let records: RecordSet
    var labelled: [(left: Int, right: Int, match: Bool)] = []
    if pairMode {
      guard !files.isEmpty else {
        throw ValidationError("`\(labels)` holds labelled pairs; give the record files they refer to as arguments")
      }
      records = try await inputs.load(files: files, idColumn: options.idColumn, truthColumn: nil)
      let index = Dictionary(records.ids.enumerated().map { ($1, $0) }, uniquingKeysWith: { a, _ in a })
      try RecordFile.forEach(labels) { line, field in
        guard let l = field("left_id"), let r = field("right_id"), let m = field("is_match") else { return }
        guard let li = index[l], let ri = index[r] else {
          throw ValidationError("\(labels):\(line): no record `\(index[l] == nil ? l : r)` in the record files")
        }
        let match = ["1", "true", "yes", "y"].contains(m.lowercased())
        guard match || ["0", "false", "no", "n"].contains(m.lowercased()) else {
          throw ValidationError("\(labels):\(line): is_match must be 1/0 or true/false, found `\(m)`")
        }
        labelled.append((li, ri, match))
      }
    } else {
      guard header.contains(truthColumn) else {
        throw ValidationError(
          "`\(labels)` has neither `left_id,right_id,is_match` nor the truth column `\(truthColumn)`; its columns: \(header.joined(separator: ", "))"
        )
      }
      records = try await inputs.load(files: [labels], idColumn: options.idColumn, truthColumn: truthColumn)
    }
    let linker = Linker(model: inputs.model, train: train, trainer: Trainer(seed: seed))
    let result = await linker.run(records)
    let sweep =
      pairMode
      ? ThresholdSweep.labelledPairs(result, records: records, labels: labelled, step: step)
      : ThresholdSweep.records(result, records: records, truth: records.truth ?? [], step: step)
    let model = result.model
    let source = pairMode ? "\(labelled.count) labelled pairs" : "\(records.count) labelled records"
    print("rule `\(model.rule)` on \(source); \(result.pairs.count) candidate pairs scored")
    print("  threshold (weight → probability)      pairs: precision  recall  F1    clusters: precision  recall  F1")
    for row in sweep.rows where (row.weight * 4).rounded() == row.weight * 4 && Int(row.weight * 4) % 4 == 0 {
      print(
        String(
          format: "  %+6.2f → %-22.12g         %.4f  %.4f  %.4f            %.4f  %.4f  %.4f", row.weight,
          row.probability, row.pairs.precision, row.pairs.recall, row.pairs.f1, row.clusters.precision,
          row.clusters.recall, row.clusters.f1))
    }
    guard let rec = sweep.recommend(precision: precision) else {
      print("no candidate pairs: nothing to tune")
      return
    }
    let current = sweep.row(nearestWeight: model.mergeWeight)
    if let current {
      print(
        String(
          format: "current   merge %.6g (weight %+.2f): cluster precision %.4f, recall %.4f, F1 %.4f", model.merge,
          model.mergeWeight, current.clusters.precision, current.clusters.recall, current.clusters.f1))
    }
    print(
      String(
        format: "recommended merge %.6g (weight %+.2f): cluster precision %.4f, recall %.4f, F1 %.4f%@",
        rec.merge.probability, rec.merge.weight, rec.merge.clusters.precision, rec.merge.clusters.recall,
        rec.merge.clusters.f1, rec.reached ? "" : " — the target precision is not reached at any threshold"))
    print(
      String(
        format: "recommended review %.6g (weight %+.2f): pairs above it are matches %.1f%% of the time",
        rec.review.probability, rec.review.weight, rec.review.pairs.precision * 100))
    let newMerge = rec.merge.weight
    let oldMerge = model.mergeWeight
    let changed = result.pairs.weight.reduce(0) { n, w in
      (Double(w) >= oldMerge) != (Double(w) >= newMerge) ? n + 1 : n
    }
    let direction = newMerge < oldMerge ? "would now merge" : "would no longer merge"
    print("against the current thresholds: \(changed) candidate pairs \(direction)")
    print(
      "to apply: thresholds: { merge: \(String(format: "%.6g", rec.merge.probability)), review: \(String(format: "%.6g", rec.review.probability)) }"
    )
    let title = "rule \(model.rule): precision–recall on \(source)"
    try sweep.svg(title: title, current: oldMerge, recommended: newMerge).write(
      toFile: chart, atomically: true, encoding: .utf8)
    print("chart written to \(chart)" + (convertToPNG(chart).map { " and \($0)" } ?? ""))
    if let out {
      var text =
        "match_weight,match_probability,pair_precision,pair_recall,pair_f1,cluster_precision,cluster_recall,cluster_f1\n"
      for r in sweep.rows {
        text += String(
          format: "%.2f,%.12g,%.6f,%.6f,%.6f,%.6f,%.6f,%.6f\n", r.weight, r.probability, r.pairs.precision,
          r.pairs.recall, r.pairs.f1, r.clusters.precision, r.clusters.recall, r.clusters.f1)
      }
      try text.write(toFile: out, atomically: true, encoding: .utf8)
      print("metrics written to \(out)")
    }
  }
}

/// Converts an SVG to PNG beside it with `rsvg-convert` when installed; nil when it is not.
func convertToPNG(_ svg: String) -> String? {
  let paths = (ProcessInfo.processInfo.environment["PATH"] ?? "/usr/bin").split(separator: ":")
  guard
    let tool = paths.map({ "\($0)/rsvg-convert" }).first(where: { FileManager.default.isExecutableFile(atPath: $0) })
  else { return nil }
  let png = (svg.hasSuffix(".svg") ? String(svg.dropLast(4)) : svg) + ".png"
  let process = Process()
  process.executableURL = URL(fileURLWithPath: tool)
  process.arguments = ["-o", png, svg]
  guard (try? process.run()) != nil else { return nil }
  process.waitUntilExit()
  return process.terminationStatus == 0 ? png : nil
}

struct ExplainCommand: AsyncParsableCommand {
  static let configuration = CommandConfiguration(
    commandName: "explain",
    abstract: "Explain the match score of two records or two profiles, comparison by comparison.",
    discussion: """
      With --records, A and B are record ids in those files; with --store, they are profile ids (or \
      identifiers like email:ada@example.com) and their current trait values are compared. Prints each \
      comparison's level, m, u and weight with the running total from the prior to the final probability, \
      and draws the same as a waterfall chart with --chart.
      """)

  @Argument(help: "The first record id, profile id or identifier.")
  var a: String

  @Argument(help: "The second.")
  var b: String

  @OptionGroup var options: RuleOptions

  @Option(parsing: .upToNextOption, help: "Record files holding A and B.")
  var records: [String] = []

  @Option(help: "A SQLite store holding profiles A and B.")
  var store: String?

  @Option(help: "text or json.")
  var format: OutputFormat = .text

  @Option(help: "Where to draw the waterfall chart (SVG).")
  var chart: String?

  func run() async throws {
    let inputs = try options.inputs()
    let explanation: Explanation
    if !records.isEmpty {
      // Term frequencies come from all records of the files, as in `tessera link`.
      let set = try await inputs.load(files: records, idColumn: options.idColumn, truthColumn: nil)
      guard let ia = set.ids.firstIndex(of: a) else {
        throw ValidationError("no record `\(a)` in \(records.joined(separator: ", "))")
      }
      guard let ib = set.ids.firstIndex(of: b) else {
        throw ValidationError("no record `\(b)` in \(records.joined(separator: ", "))")
      }
      explanation = Explanation(model: inputs.model, records: set, ia, ib)
    } else if let store {
      guard FileManager.default.fileExists(atPath: store) else { throw ValidationError("no store at `\(store)`") }
      let db = try SQLiteStore(path: store)
      if inputs.rule.signals != nil {
        try await explainLinks(inputs.rule, db)
        return
      }
      var sides: [Stewardship.Side] = []
      for name in [a, b] {
        let id = try await ProfileCommand.resolve(name, in: db, pipeline: options.rules)
        guard let id else { throw ValidationError("no profile `\(name)` in \(store)") }
        sides.append(try await Stewardship.side(of: id, in: db))
      }
      explanation = Stewardship.explain(
        sides[0], sides[1], rule: inputs.rule, config: inputs.config, model: inputs.model)
    } else {
      throw ValidationError("give --records FILE… (A and B are record ids) or --store PATH (A and B are profiles)")
    }
    try show(explanation)
  }

  func show(_ explanation: Explanation) throws {
    switch format {
    case .text: print(explanation.table())
    case .json: print(explanation.json())
    }
    if let chart {
      try explanation.svg().write(toFile: chart, atomically: true, encoding: .utf8)
      if format == .text { print("chart written to \(chart)" + (convertToPNG(chart).map { " and \($0)" } ?? "")) }
    }
  }

  /// A rule on device signals compared an event with a profile's sightings at the time, which the store does
  /// not keep: its links between the two profiles are explained by the evidence recorded with each.
  func explainLinks(_ rule: ProbabilisticRule, _ db: SQLiteStore) async throws {
    var ends: Set<ProfileID> = []
    for name in [a, b] {
      guard let id = try await ProfileCommand.resolve(name, in: db, pipeline: options.rules) else {
        throw ValidationError("no profile `\(name)` in \(store ?? "")")
      }
      ends.insert(id)
    }
    var links: [MatchLinkRecord] = []
    for l in try await db.matchLinks(status: nil, limit: .max) where l.rule == rule.name {
      let pair = Set([
        try await db.canonical(l.profile) ?? l.profile, try await db.canonical(l.candidate) ?? l.candidate,
      ])
      if pair == ends || Set([l.profile, l.candidate]) == ends {
        links.append(l)
      }
    }
    switch format {
    case .json:
      print(
        JSON.encode(
          .list(
            links.map { l in
              .map([
                "id": .int(l.id), "rule": .string(l.rule), "profile": .string(l.profile.description),
                "candidate": .string(l.candidate.description), "event": .string(l.eventID),
                "probability": .double(l.probability), "weight": .double(l.weight),
                "status": .string(l.status.rawValue),
                "evidence": .string(l.reason), "at": .string(l.at.iso8601),
              ])
            })))
    case .text:
      guard !links.isEmpty else {
        print("rule `\(rule.name)` linked no event of \(a) with \(b)")
        return
      }
      for l in links {
        print(
          "link \(l.id) (\(l.status.rawValue)): event \(l.eventID) of \(l.profile) ~ \(l.candidate) at \(l.at.iso8601), "
            + String(format: "weight %+.2f, probability %.6f", l.weight, l.probability))
        for part in l.reason.split(separator: ";") { print("  " + part.trimmingCharacters(in: .whitespaces)) }
      }
    }
  }
}
