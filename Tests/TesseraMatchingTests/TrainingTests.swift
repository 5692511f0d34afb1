import Foundation
import TesseraCompiler
import TesseraMatching
import TesseraModel
import Testing

/// A data set whose m and u are known by construction: each person has a value per field drawn from a pool;
/// each of their records keeps it with probability `keep`, else takes a random value from the pool.
/// For an exact level, u = 1/pool and m = keep² + (1 − keep²)/pool.
struct KnownDataSet {
  static let fields: [(name: String, pool: Int, keep: Double)] = [
    ("a", 40, 0.9), ("b", 300, 0.85), ("c", 2000, 0.95), ("d", 15, 0.8),
  ]
  static let yaml = """
    profile:
      traits:
        a: { type: string }
        b: { type: string }
        c: { type: string }
        d: { type: string }
    probabilistic:
      known:
        blocking:
          - [traits.a, traits.b]
          - [traits.c]
          - [traits.d, traits.b]
        compare:
          a: [exact]
          b: [exact]
          c: [exact]
          d: [exact]
        thresholds: { merge: 0.95, review: 0.5 }
    """

  static func rows(persons: Int, seed: UInt64) -> (rows: [[String: String]], truth: [String]) {
    var rng = SplitMix64(seed: seed)
    var rows: [[String: String]] = []
    var truth: [String] = []
    for p in 0..<persons {
      let own = fields.map { rng.int(0..<$0.pool) }
      let copies = 1 + rng.int(0..<3)
      for _ in 0..<copies {
        var row: [String: String] = [:]
        for (f, field) in fields.enumerated() {
          let v = rng.chance(field.keep) ? own[f] : rng.int(0..<field.pool)
          row[field.name] = "\(field.name)\(v)"
        }
        rows.append(row)
        truth.append("p\(p)")
      }
    }
    return (rows, truth)
  }

  static func trueM(_ f: Int) -> Double {
    let k = fields[f].keep
    return k * k + (1 - k * k) / Double(fields[f].pool)
  }
}

@Suite struct TrainingTests {
  @Test func emRecoversKnownMAndU() async throws {
    let (config, rule) = try rule(KnownDataSet.yaml)
    let data = KnownDataSet.rows(persons: 4000, seed: 7)
    let records = recordSet(config, rule, rows: data.rows, truth: data.truth)
    let result = await Linker(
      model: MatchModel(rule: rule), train: true, trainer: Trainer(seed: 1, randomPairs: 1_000_000)
    ).run(records)
    let model = result.model
    // Random pairs are almost all non-matches; the few matches among them (people with several records)
    // agree like matches do. With 8,000 records that share is not negligible, so the u that random pairs
    // estimate is the mix: (1 − share)·(1/pool) + share·m.
    var sizes: [String: Double] = [:]
    for t in data.truth { sizes[t, default: 0] += 1 }
    let n = Double(data.truth.count)
    let share = sizes.values.reduce(0) { $0 + $1 * ($1 - 1) / 2 } / (n * (n - 1) / 2)
    for (f, field) in KnownDataSet.fields.enumerated() {
      let c = try #require(model.comparisons.first { $0.field == field.name })
      let u = (1 - share) / Double(field.pool) + share * KnownDataSet.trueM(f)
      #expect(abs(c.u[0] - u) / u < 0.1, "u of \(field.name): \(c.u[0]) vs \(u)")
      #expect(abs(c.m[0] - KnownDataSet.trueM(f)) < 0.05, "m of \(field.name): \(c.m[0]) vs \(KnownDataSet.trueM(f))")
      #expect(c.origin.allSatisfy { $0 == "trained" })
    }
    // Every field is estimated by at least one session that does not block on it.
    let report = try #require(result.training)
    #expect(report.notEstimated.isEmpty)
    #expect(report.sessions.count == 3)
    #expect(report.sessions[1].excluded == ["c"])
    // About 8,000 records from 4,000 people: the trained model finds them.
    let metrics = ClusterEvaluation.pairwise(predicted: result.cluster, truth: data.truth)
    #expect(metrics.f1 > 0.8, "F1 \(metrics.f1)")
  }

  @Test func trainingIsReproducibleWithASeed() async throws {
    let (config, rule) = try rule(KnownDataSet.yaml)
    let data = KnownDataSet.rows(persons: 1500, seed: 3)
    let records = recordSet(config, rule, rows: data.rows)
    let a = await Linker(model: MatchModel(rule: rule), train: true, trainer: Trainer(seed: 11, randomPairs: 200_000))
      .run(records)
    let b = await Linker(model: MatchModel(rule: rule), train: true, trainer: Trainer(seed: 11, randomPairs: 200_000))
      .run(records)
    let c = await Linker(model: MatchModel(rule: rule), train: true, trainer: Trainer(seed: 12, randomPairs: 200_000))
      .run(records)
    #expect(a.model.comparisons.map(\.m) == b.model.comparisons.map(\.m))
    #expect(a.model.comparisons.map(\.u) == b.model.comparisons.map(\.u))
    #expect(a.model.prior == b.model.prior)
    #expect(a.cluster == b.cluster)
    #expect(a.model.parametersYAML(trainedOn: "x") == b.model.parametersYAML(trainedOn: "x"))
    // Another seed samples other random pairs: u moves a little.
    #expect(a.model.comparisons.map(\.u) != c.model.comparisons.map(\.u))
  }

  /// Counts gathered in another order (parallel work finishing in another order) give a dictionary with
  /// another order: the estimates must not change in any bit.
  @Test func estimatesDoNotDependOnTheOrderCountsWereGathered() throws {
    let (_, rule) = try rule(KnownDataSet.yaml)
    let model = MatchModel(rule: rule)
    // Every pattern of the four comparisons (3^4 codes: missing, exact, else), with uneven counts.
    var rng = SplitMix64(seed: 5)
    let counts = (0..<81).map { (pattern: UInt64($0), count: Double(1 + rng.int(0..<1_000_000))) }
    var forward = PatternCounts.zero
    for c in counts { forward.add(c.pattern, c.count) }
    var backward = PatternCounts.zero
    backward.counts.reserveCapacity(1 << 12)
    for c in counts.reversed() { backward.add(c.pattern, c.count) }
    #expect(Array(forward.counts.keys) != Array(backward.counts.keys), "the dictionaries should differ in order")
    #expect(forward.total == backward.total)
    let trainer = Trainer()
    for estimate: Set<Int> in [[0, 1, 2, 3], [1, 3], [0, 2, 3]] {
      let a = trainer.expectationMaximisation(model, patterns: forward, estimate: estimate)
      let b = trainer.expectationMaximisation(model, patterns: backward, estimate: estimate)
      #expect(a.m == b.m, "m of \(estimate.sorted())")
      #expect(a.lambda == b.lambda)
      #expect(a.iterations == b.iterations)
    }
    #expect(trainer.fitLambda(model, patterns: forward) == trainer.fitLambda(model, patterns: backward))
  }

  @Test func fixedValuesInTheRuleOverrideEstimates() async throws {
    let yaml = KnownDataSet.yaml.replacingOccurrences(
      of: "a: [exact]\n", with: "a:\n          - { level: exact, m: 0.5, u: 0.2 }\n")
    let (config, rule) = try rule(yaml)
    let data = KnownDataSet.rows(persons: 1000, seed: 5)
    let records = recordSet(config, rule, rows: data.rows)
    let result = await Linker(
      model: MatchModel(rule: rule), train: true, trainer: Trainer(seed: 42, randomPairs: 200_000)
    ).run(records)
    let a = try #require(result.model.comparisons.first { $0.field == "a" })
    #expect(a.m[0] == 0.5)
    #expect(a.u[0] == 0.2)
    #expect(a.origin[0] == "config")
    #expect(a.origin[1] == "trained")
  }

  @Test func trainedParametersRoundTripThroughTheParametersFile() async throws {
    let (config, rule) = try rule(KnownDataSet.yaml)
    let data = KnownDataSet.rows(persons: 1000, seed: 9)
    let records = recordSet(config, rule, rows: data.rows)
    let trained = await Linker(
      model: MatchModel(rule: rule), train: true, trainer: Trainer(seed: 42, randomPairs: 200_000)
    ).run(records)
    let text = trained.model.parametersYAML(trainedOn: "test")
    let yaml = KnownDataSet.yaml.replacingOccurrences(
      of: "    thresholds:", with: "    parameters: known.params.yaml\n    thresholds:")
    let result = compileRules(["rules.yaml": yaml, "known.params.yaml": text])
    #expect(result.diagnostics.isEmpty, "\(result.rendered())")
    let reread = try #require(result.plan?.config.probabilistic.first)
    let model = MatchModel(rule: reread)
    #expect(model.isTrained)
    for (x, y) in zip(model.comparisons, trained.model.comparisons) {
      for l in x.m.indices {
        #expect(abs(x.m[l] - y.m[l]) / y.m[l] < 1e-5)
        #expect(abs(x.u[l] - y.u[l]) / y.u[l] < 1e-5)
      }
    }
    #expect(abs(model.prior - trained.model.prior) / trained.model.prior < 1e-5)
    // Scoring with the file gives the clusters training gave, without training again.
    let again = await Linker(model: model).run(records)
    #expect(again.training == nil)
    #expect(again.cluster == trained.cluster)
  }

  @Test func parametersForOtherLevelsAreReportedAndIgnored() throws {
    let params = """
      rule: known
      prior: 0.001
      comparisons:
        a:
          - { level: exact, m: 0.9, u: 0.02 }
          - { level: "jaro_winkler >= 0.9", m: 0.05, u: 0.02 }
          - { level: else, m: 0.05, u: 0.96 }
        zz:
          - { level: exact, m: 0.9, u: 0.02 }
          - { level: else, m: 0.1, u: 0.98 }
        b:
          - { level: exact, m: 1.5, u: 0.02 }
          - { level: else, m: 0.1, u: 0.98 }
      """
    let yaml = KnownDataSet.yaml.replacingOccurrences(
      of: "    thresholds:", with: "    parameters: known.params.yaml\n    thresholds:")
    let result = compileRules(["rules.yaml": yaml, "known.params.yaml": params])
    let messages = result.diagnostics.map { "\($0.location.file):\($0.location.line): \($0.message)" }
    #expect(
      messages.contains(
        "known.params.yaml:4: the levels of `a` changed since the parameters were trained (file: [\"exact\", \"jaro_winkler >= 0.9\", \"else\"]; rule: [\"exact\", \"else\"]); `a` uses default values until you retrain"
      ), "\(messages)")
    #expect(
      messages.contains(
        "known.params.yaml:8: the parameters file has `zz`, which rule `known` does not compare; retrain to drop it"))
    #expect(messages.contains("known.params.yaml:12: `m` must be in (0, 1), found 1.5"))
  }

  @Test func aMissingParametersFileIsAWarningThatSaysHowToWriteIt() throws {
    let yaml = KnownDataSet.yaml.replacingOccurrences(
      of: "    thresholds:", with: "    parameters: known.params.yaml\n    thresholds:")
    let result = compileRules(["rules.yaml": yaml])
    #expect(!result.hasErrors)
    #expect(result.diagnostics.map(\.message).contains { $0.contains("does not exist yet") && $0.contains("--train") })
    let model = MatchModel(rule: try #require(result.plan?.config.probabilistic.first))
    #expect(!model.isTrained)
  }
}
