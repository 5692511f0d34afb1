import ArgumentParser
import Foundation
import TesseraCompiler
import TesseraConnectors
import TesseraMatching
import TesseraModel

/// The options that name the rule and read records, shared by `link`, `tune` and `explain`.
struct RuleOptions: ParsableArguments {
  @Option(help: "The rules file (or a pipeline) declaring the probabilistic rule.")
  var rules: String

  @Option(help: "Which probabilistic rule, when the rules declare several.")
  var rule: String?

  @Option(help: "The column holding record ids (default: record_id, else id, else file:line).")
  var idColumn: String?

  @Option(
    help:
      "The column holding when each record was seen, for `within N minutes` levels of device signals (default: the rule's `signals.time`, else timestamp)."
  )
  var timeColumn: String?

  func inputs() throws -> MatchingInputs {
    var inputs = try MatchingInputs(rules: rules, rule: rule)
    inputs.timeColumn = timeColumn ?? inputs.timeColumn
    return inputs
  }
}

/// What `link`, `tune` and `explain` share: the compiled rule and the records read from files.
struct MatchingInputs {
  var config: PipelineConfig
  var rule: ProbabilisticRule
  var model: MatchModel

  /// Compiles a rules file (or a pipeline) and picks the probabilistic rule.
  init(rules path: String, rule name: String?) throws {
    let result = Compiler().compile(rules: path)
    let warnings = result.diagnostics.filter { $0.severity != .error }
    if !warnings.isEmpty || result.hasErrors {
      FileHandle.standardError.write(Data((result.rendered() + "\n").utf8))
    }
    guard let plan = result.plan else { throw ExitCode(1) }
    let rules = plan.config.probabilistic
    guard !rules.isEmpty else {
      throw ValidationError("`\(path)` declares no probabilistic rule; add one under `probabilistic:`")
    }
    if let name {
      guard let r = rules.first(where: { $0.name == name }) else {
        throw ValidationError(
          "no probabilistic rule `\(name)` in `\(path)`; it declares: \(rules.map(\.name).joined(separator: ", "))")
      }
      rule = r
    } else {
      guard rules.count == 1, let only = rules.first else {
        throw ValidationError(
          "`\(path)` declares several probabilistic rules; choose one with --rule (\(rules.map(\.name).joined(separator: ", ")))"
        )
      }
      rule = only
    }
    config = plan.config
    model = MatchModel(rule: rule)
    timeColumn = rule.signals?.time ?? "timestamp"
  }

  /// The column of record files holding when each record was seen (rules on device signals).
  var timeColumn: String

  /// Reads records from CSV or NDJSON files, in parallel parts. Columns named like a trait or identifier
  /// kind are read as such; `idColumn` names the record id (default: `record_id`, `id`, else `file:line`).
  ///
  /// A rule on device signals reads them from columns named like the context fields (`ip`, `user_agent`, …,
  /// `DeviceSignals.derive(columns:)`), and when it measures time (`within 30 minutes`) each record's time
  /// from `timeColumn` (ISO 8601 or epoch seconds): each record is a sighting of its values.
  func load(files: [String], idColumn: String?, truthColumn: String?) async throws -> RecordSet {
    let device = rule.signals != nil
    let timeName: String? = device && !model.timedColumns.isEmpty ? timeColumn : nil
    let consent = rule.consent.map { "consent." + $0 }
    var all = RecordSetBuilder(model: model, rule: rule, config: config)
    let parts = max(1, ProcessInfo.processInfo.activeProcessorCount * 2)
    for (origin, file) in files.enumerated() {
      let chunks = try RecordFile.chunks(file, parts: parts)
      let header = chunks.first?.header ?? []
      let idName =
        idColumn ?? (header.contains("record_id") ? "record_id" : header.contains("id") ? "id" : nil)
      if let idColumn, !header.isEmpty, !header.contains(idColumn) {
        throw ValidationError("`\(file)` has no column `\(idColumn)`; its columns: \(header.joined(separator: ", "))")
      }
      if let truthColumn, !header.isEmpty, !header.contains(truthColumn) {
        throw ValidationError(
          "`\(file)` has no column `\(truthColumn)`; its columns: \(header.joined(separator: ", "))")
      }
      let wanted = model.fields.filter { !$0.hasPrefix("signals.") } + (device ? DeviceSignals.recordColumns : [])
      if !header.isEmpty, !wanted.contains(where: header.contains) {
        throw ValidationError(
          "`\(file)` has none of the compared fields (\(wanted.joined(separator: ", "))); its columns: \(header.joined(separator: ", "))"
        )
      }
      if let timeName, !header.isEmpty, !header.contains(timeName) {
        throw ValidationError(
          "rule `\(rule.name)` measures time between sightings (`within N minutes`), but `\(file)` has no time column `\(timeName)`; name the column with --time-column or the rule's `signals.time`; its columns: \(header.joined(separator: ", "))"
        )
      }
      let name = (file as NSString).lastPathComponent
      let empty = RecordSetBuilder(model: model, rule: rule, config: config)
      let built = try await withThrowingTaskGroup(of: (Int, RecordSetBuilder, [Int]).self) { group in
        for (k, chunk) in chunks.enumerated() {
          group.addTask {
            var builder = empty
            var lines: [Int] = []
            var agents: [String: UserAgent] = [:]
            try chunk.forEach { line, field in
              let id = idName.flatMap { field($0) }.flatMap { $0.isEmpty ? nil : $0 } ?? "\(name):\(line)"
              var time: Int64?
              if let timeName {
                time = try MatchingInputs.time(field(timeName), at: "\(file):\(line)", column: timeName)
              }
              let truth = truthColumn.map { field($0) ?? "" }
              // A record of someone who did not give the rule's consent purpose has no signals.
              if device, consent.map({ field($0)?.lowercased() == "true" }) ?? true {
                let signals = DeviceSignals.derive(columns: field) { ua in
                  if let known = agents[ua] { return known }
                  let parsed = UserAgent.parse(ua)
                  agents[ua] = parsed
                  return parsed
                }
                builder.append(id: id, origin: UInt16(origin), truth: truth, time: time) { name in
                  name.hasPrefix("signals.") ? signals[String(name.dropFirst("signals.".count))] : field(name)
                }
              } else {
                builder.append(id: id, origin: UInt16(origin), truth: truth, time: time) { name in
                  name.hasPrefix("signals.") ? nil : field(name)
                }
              }
              lines.append(line)
            }
            return (k, builder, lines)
          }
        }
        var parts: [(Int, RecordSetBuilder, [Int])] = []
        for try await part in group { parts.append(part) }
        return parts.sorted { $0.0 < $1.0 }
      }
      var ids: [String] = []
      var lines: [Int] = []
      for (_, part, partLines) in built {
        ids += part.ids
        lines += partLines
      }
      await all.append(contentsOf: built.map(\.1))
      if let (first, again) = RecordSet.firstRepeat(ids) {
        throw ValidationError(
          "\(file):\(lines[again]): record id `\(ids[again])` appears twice (first on line \(lines[first])); ids must be unique per file"
        )
      }
    }
    var records = await all.finished()
    // Without times, a shared value is counted over the whole file.
    if device && timeName == nil { records.computeSharing(model, times: nil) }
    // Ids need only be unique per file; when two files share one, every id is qualified by its file's name
    // (`crm.csv:17`), so clusters.csv and the pairs stay unambiguous.
    if files.count > 1, Set(records.ids).count < records.ids.count {
      let names = files.map { ($0 as NSString).lastPathComponent }
      records.ids = zip(records.ids, records.origin).map { "\(names[Int($1)]):\($0)" }
    }
    return records
  }
}

extension MatchingInputs {
  /// A record's time in seconds since the epoch: ISO 8601 or epoch seconds; nil when empty or absent.
  static func time(_ text: String?, at place: String, column: String) throws -> Int64? {
    guard let text = text.map(Normalize.trim), !text.isEmpty else { return nil }
    if let t = Timestamp(iso8601: text) { return t.microseconds / 1_000_000 }
    if let seconds = Double(text), seconds.isFinite, abs(seconds) < 1e15 { return Int64(seconds.rounded(.down)) }
    throw ValidationError(
      "\(place): `\(text)` in column `\(column)` is not a time; write ISO 8601 (2026-03-01T10:20:00Z) or epoch seconds"
    )
  }
}

struct LinkCommand: AsyncParsableCommand {
  static let configuration = CommandConfiguration(
    commandName: "link",
    abstract: "Deduplicate one file or link several with a probabilistic rule: records → clusters.",
    discussion: """
      Blocks, compares, trains when asked (or when the rule has no trained parameters yet), scores every \
      candidate pair with the Fellegi–Sunter model and joins pairs at or above the rule's `merge` threshold, \
      strongest first, under `max_cluster_size` and the identifier limits. Writes `record_id,cluster_id`.

      Columns of the files named like a trait or an identifier kind of the rules are read as such. \
      With --count-only, prints how many comparisons each blocking rule generates and stops.
      """)

  @Argument(help: "CSV (with a header) or NDJSON files of records.")
  var files: [String]

  @OptionGroup var options: RuleOptions

  @Option(help: "Where to write `record_id,cluster_id`.")
  var out: String?

  @Option(help: "Where to write the scored pairs (`left_id,right_id,match_weight,match_probability,decision`).")
  var pairs: String?

  @Option(help: "Lowest probability of the pairs written with --pairs (default: the review threshold).")
  var pairsMin: Double?

  @Flag(help: "Only count the comparisons each blocking rule generates.")
  var countOnly = false

  @Flag(help: "Estimate u from random pairs and m by expectation–maximisation, even when trained values exist.")
  var train = false

  @Option(help: "Where to write the trained parameters (default: the rule's `parameters:` file when training).")
  var paramsOut: String?

  @Option(help: "Seed of the random pairs that estimate u.")
  var seed: UInt64 = 42

  @Option(help: "How many random pairs estimate u.")
  var randomPairs: Int = 1_000_000

  @Flag(help: "Compare only records from different files.")
  var linkOnly = false

  @Option(help: "A column with the true cluster, to report precision, recall and F1 of the clusters.")
  var truthColumn: String?

  @Option(help: "Override the rule's merge threshold.")
  var merge: Double?

  @Option(help: "Override the rule's review threshold.")
  var review: Double?

  @Option(help: "Refuse to compare more pairs than this (a blocking rule that is too loose).")
  var maxPairs: Int = 500_000_000

  func run() async throws {
    let started = ContinuousClock.now
    var inputs = try options.inputs()
    if let merge { inputs.model.merge = merge }
    if let review { inputs.model.review = review }
    guard inputs.model.review <= inputs.model.merge else {
      throw ValidationError(
        "the review threshold (\(inputs.model.review)) must not exceed merge (\(inputs.model.merge))")
    }
    let records = try await inputs.load(files: files, idColumn: options.idColumn, truthColumn: truthColumn)
    let loaded = ContinuousClock.now - started
    let mode: LinkMode = linkOnly ? .linkOnly : .dedupe
    let blocking = await Blocking.build(records: records, mode: mode)
    let blocked = ContinuousClock.now - started - loaded
    print(
      "\(records.count) records from \(files.count) file\(files.count == 1 ? "" : "s"), rule `\(inputs.model.rule)`")
    // The pairs each rule adds to the union are known once they are enumerated: by counting alone (with
    // --count-only, or when the rules' pairs together may pass --max-pairs), else by the link run itself.
    var counts = blocking.sizes()
    let countedFirst = countOnly || counts.reduce(0, { $0 + $1.pairs }) > maxPairs
    if countedFirst {
      counts = await blocking.counts()
      let total = printCounts(counts, model: inputs.model)
      if countOnly { return }
      if total > maxPairs {
        throw ValidationError(
          "the blocking rules generate \(total) pairs, more than --max-pairs \(maxPairs); tighten the loosest rule (largest block above)"
        )
      }
    }
    let trainer = Trainer(seed: seed, randomPairs: randomPairs)
    // Pairs below the review threshold (or --pairs-min) are scored but neither written nor kept.
    let keepFrom = MatchModel.weight(probability: min(inputs.model.review, pairsMin ?? inputs.model.review))
    let linker = Linker(model: inputs.model, mode: mode, train: train, trainer: trainer, keepFrom: keepFrom)
    if !train && !inputs.model.isTrained {
      print("the rule has no trained parameters for every level: training on these records (--train)")
    }
    let result = await linker.run(records, blocking: blocking)
    if !countedFirst {
      for r in counts.indices { counts[r].newPairs = result.newPairs[r] }
      _ = printCounts(counts, model: inputs.model)
    }
    if let report = result.training {
      print(Report.training(report, model: result.model))
      let target = paramsOut ?? inputs.rule.parametersFile
      if let target {
        let text = result.model.parametersYAML(
          trainedOn:
            "\(records.count) records of \(files.joined(separator: ", ")), seed \(seed), \(report.randomPairs) random pairs"
        )
        try text.write(toFile: target, atomically: true, encoding: .utf8)
        print("trained parameters written to \(target)")
      } else {
        print("trained parameters not saved: give --params-out FILE (or `parameters:` in the rule) to reuse them")
      }
    }
    let clusters = Set(result.cluster).count
    print(
      "thresholds: merge \(result.model.merge), review \(result.model.review); prior \(String(format: "%.3g", result.model.prior))"
    )
    print(
      "\(result.compared) pairs scored, \(result.joins) joins → \(clusters) clusters; \(result.review.count) candidate links in the review band; \(result.refused.count) joins refused by limits"
    )
    for refused in result.refused.prefix(5) {
      let k = refused.pair
      print(
        "  refused: \(records.ids[Int(result.pairs.left[k])]) ~ \(records.ids[Int(result.pairs.right[k])]): \(refused.reason)"
      )
    }
    if let truth = records.truth {
      // Two passes over a million records each: one core each.
      let cluster = result.cluster
      async let exact = ClusterEvaluation.exactClusters(predicted: cluster, truth: truth)
      let m = ClusterEvaluation.pairwise(predicted: cluster, truth: truth)
      print(
        String(
          format: "against `%@`: cluster precision %.4f, recall %.4f, F1 %.4f; people resolved exactly %.4f",
          truthColumn ?? "", m.precision, m.recall, m.f1, await exact))
    }
    if let out {
      var bytes = Array("record_id,cluster_id\n".utf8)
      bytes.reserveCapacity(result.cluster.count * 20)
      for (i, c) in result.cluster.enumerated() {
        bytes += csv(records.ids[i]).utf8
        bytes.append(UInt8(ascii: ","))
        bytes += csv(records.ids[c]).utf8
        bytes.append(UInt8(ascii: "\n"))
      }
      try Data(bytes).write(to: URL(fileURLWithPath: out), options: .atomic)
      print("clusters written to \(out)")
    }
    if let pairsPath = pairs {
      try writePairs(pairsPath, result: result, records: records)
      print("pairs written to \(pairsPath)")
    }
    var timing = [String(format: "load %.2fs", seconds(loaded)), String(format: "block %.2fs", seconds(blocked))]
    // The linker's own `block` lap is empty: it was given the blocking built above.
    timing += result.timings.filter { $0.0 != "block" }.map { String(format: "%@ %.2fs", $0.0, $0.1) }
    timing.append(String(format: "total %.2fs", seconds(ContinuousClock.now - started)))
    print("time: " + timing.joined(separator: ", "))
  }

  /// Prints the pairs of each blocking rule and of their union; returns the union.
  func printCounts(_ counts: [Blocking.RuleCount], model: MatchModel) -> Int {
    let width = max(14, model.blockingText.map(\.count).max() ?? 0)
    print(
      "  " + "blocking rule".padding(toLength: width, withPad: " ", startingAt: 0)
        + "        pairs    new pairs  largest block")
    for (r, c) in counts.enumerated() {
      let text = model.blockingText[r].padding(toLength: width, withPad: " ", startingAt: 0)
      print("  \(text) \(pad(c.pairs, 12)) \(pad(c.newPairs, 12)) \(pad(c.largestBlock, 14))")
    }
    let total = counts.reduce(0) { $0 + $1.newPairs }
    print("  candidate pairs (union, each compared once): \(total)")
    return total
  }

  func writePairs(_ path: String, result: LinkResult, records: RecordSet) throws {
    let model = result.model
    let floor = MatchModel.weight(probability: pairsMin ?? model.review)
    let review = Set(result.review)
    let refused = Dictionary(result.refused.map { ($0.pair, $0.reason) }, uniquingKeysWith: { a, _ in a })
    var order = (0..<result.pairs.count).filter { Double(result.pairs.weight[$0]) >= floor }
    order.sort { result.pairs.weight[$0] > result.pairs.weight[$1] }
    var text = "left_id,right_id,match_weight,match_probability,decision\n"
    for k in order {
      let w = Double(result.pairs.weight[k])
      let decision =
        refused[k].map { "refused: \($0)" }
        ?? (w >= model.mergeWeight
          ? "merge" : review.contains(k) ? "review" : w >= model.reviewWeight ? "linked" : "none")
      text +=
        "\(csv(records.ids[Int(result.pairs.left[k])])),\(csv(records.ids[Int(result.pairs.right[k])])),"
        + String(format: "%.3f,%.6f,", w, MatchModel.probability(weight: w)) + csv(decision) + "\n"
    }
    try text.write(toFile: path, atomically: true, encoding: .utf8)
  }
}

func pad(_ n: Int, _ width: Int) -> String {
  let s = String(n)
  return String(repeating: " ", count: max(0, width - s.count)) + s
}

func csv(_ s: String) -> String {
  s.utf8.contains { $0 == UInt8(ascii: ",") || $0 == UInt8(ascii: "\"") || $0 == UInt8(ascii: "\n") }
    ? "\"" + s.replacingOccurrences(of: "\"", with: "\"\"") + "\"" : s
}

func seconds(_ d: Duration) -> Double { Double(d.components.seconds) + Double(d.components.attoseconds) * 1e-18 }

enum Report {
  static func training(_ r: TrainingReport, model: MatchModel) -> String {
    var lines = ["training: u from \(r.randomPairs) random pairs"]
    for s in r.sessions {
      lines.append(
        "  EM on \(model.blockingText[s.rule]): \(s.pairs) pairs, \(s.iterations) iterations, λ \(String(format: "%.4f", s.lambda)); estimated m of \(s.estimated.joined(separator: ", "))"
          + (s.excluded.isEmpty ? "" : " (not \(s.excluded.joined(separator: ", ")): blocked on)"))
    }
    if !r.notEstimated.isEmpty {
      lines.append(
        "  warning: m of \(r.notEstimated.joined(separator: ", ")) not estimated: every blocking rule blocks on it; fix m in the rule or add a blocking rule without it"
      )
    }
    lines.append("  prior \(String(format: "%.4g", r.prior)): \(r.priorSource)")
    for c in model.comparisons {
      let levels = (0..<c.levelCount).map {
        "\(c.name(ofLevel: $0)) \(String(format: "%+.1f", c.weight(ofLevel: $0)))"
      }
      lines.append("  \(c.field): " + levels.joined(separator: " · "))
    }
    return lines.joined(separator: "\n")
  }
}
