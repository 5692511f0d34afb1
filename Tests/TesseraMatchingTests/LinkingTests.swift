import Foundation
import TesseraCompiler
import TesseraMatching
import TesseraModel
import Testing

/// A name/birth-date rule with fixed m and u, so scores are known without training.
let fixedRule = """
  identifiers:
    user_id: { normalize: trim, max_per_profile: 1, priority: 1 }
  profile:
    traits:
      first_name: { type: string }
      last_name: { type: string }
      dob: { type: string }
  probabilistic:
    person:
      blocking:
        - [soundex(traits.last_name)]
        - [traits.dob]
      compare:
        first_name:
          - { level: exact, m: 0.9, u: 0.01 }
          - { level: jaro_winkler >= 0.85, m: 0.06, u: 0.02 }
          - { level: else, m: 0.04, u: 0.97 }
        last_name:
          - { level: exact, m: 0.9, u: 0.005 }
          - { level: else, m: 0.1, u: 0.995 }
        dob:
          - { level: exact, m: 0.9, u: 0.001 }
          - { level: transposed_day_month, m: 0.03, u: 0.0001 }
          - { level: else, m: 0.07, u: 0.9989 }
      thresholds: { merge: 0.99, review: 0.9 }
      prior: 0.01
      max_cluster_size: 3
  """

@Suite struct LinkingTests {
  func row(_ first: String?, _ last: String?, _ dob: String?, user: String? = nil) -> [String: String] {
    var r: [String: String] = [:]
    r["first_name"] = first
    r["last_name"] = last
    r["dob"] = dob
    r["user_id"] = user
    return r
  }

  @Test func weightsAreLogRatiosAndNullsContributeNothing() throws {
    let (config, rule) = try rule(fixedRule)
    let model = MatchModel(rule: rule)
    #expect(model.isTrained)
    let records = recordSet(
      config, rule,
      rows: [
        row("Ada", "Lovelace", "1815-12-10"), row("ada ", "LOVELACE", "1815-10-12"), row(nil, "Lovelace", nil),
      ])
    let e = Explanation(model: model, records: records, 0, 1)
    #expect(e.steps.map(\.level) == ["exact", "exact", "transposed_day_month"])
    let expected = log2(0.01 / 0.99) + log2(0.9 / 0.01) + log2(0.9 / 0.005) + log2(0.03 / 0.0001)
    #expect(abs(e.weight - expected) < 1e-9)
    #expect(abs(e.probability - 1 / (1 + exp2(-expected))) < 1e-12)
    #expect(e.steps.last.map(\.total) == e.weight)
    let n = Explanation(model: model, records: records, 0, 2)
    #expect(n.steps.map(\.level) == ["null", "exact", "null"])
    #expect(n.steps[0].weight == 0 && n.steps[2].weight == 0)
    #expect(abs(n.weight - (log2(0.01 / 0.99) + log2(0.9 / 0.005))) < 1e-9)
    #expect(e.decision == "merge")
    #expect(e.table().contains("transposed_day_month"))
    #expect(e.json().contains("\"running_total\""))
    #expect(e.svg().contains("<rect") && e.svg().hasSuffix("</svg>\n"))
  }

  @Test func nicknameAndSwappedNameLevels() throws {
    let yaml = """
      profile:
        traits:
          first_name: { type: string }
          last_name: { type: string }
      probabilistic:
        p:
          blocking: [[traits.last_name]]
          compare:
            first_name: [exact, nickname, swapped_with last_name, jaro_winkler >= 0.8]
            last_name: [exact, swapped_with first_name]
          thresholds: { merge: 0.99, review: 0.9 }
      """
    let (config, rule) = try rule(yaml)
    let model = MatchModel(rule: rule)
    let records = recordSet(
      config, rule,
      rows: [
        row("Robert", "Smith", nil), row("bob", "Smith", nil), row("Smith", "Robert", nil), row("Chris", "Lee", nil),
        row("Christine", "Lee", nil), row("Christopher", "Lee", nil), row("Roberta", "Smith", nil),
      ])
    func levels(_ i: Int, _ j: Int) -> [String] {
      model.levels(records, i, j).enumerated().map { model.comparisons[$0].name(ofLevel: $1) }
    }
    #expect(levels(0, 1) == ["nickname", "exact"])
    #expect(levels(0, 2) == ["swapped_with last_name", "swapped_with first_name"])
    // `chris` is short for both; the two full names are not each other's nickname.
    #expect(levels(3, 4) == ["nickname", "exact"])
    #expect(levels(3, 5) == ["nickname", "exact"])
    #expect(levels(4, 5) == ["jaro_winkler >= 0.8", "exact"])
    #expect(levels(0, 6) == ["jaro_winkler >= 0.8", "exact"])
    #expect(Nicknames.share(Nicknames.packedGroups("bill"), Nicknames.packedGroups("william")))
    #expect(!Nicknames.share(Nicknames.packedGroups("bill"), Nicknames.packedGroups("robert")))
    #expect(!Nicknames.share(Nicknames.packedGroups("zorro"), Nicknames.packedGroups("zorro")))
  }

  @Test func swappedWithMustNameAnotherComparedField() {
    let yaml = """
      profile:
        traits:
          first_name: { type: string }
          last_name: { type: string }
      probabilistic:
        p:
          blocking: [[traits.last_name]]
          compare:
            first_name: [exact, swapped_with last_nam]
            last_name: [exact, swapped_with last_name]
          thresholds: { merge: 0.99, review: 0.9 }
      """
    let result = compileRules(["rules.yaml": yaml])
    let messages = result.diagnostics.map { "\($0.location.line):\($0.location.column): \($0.message)" }
    #expect(
      messages == [
        "9:27: `swapped_with last_nam`: `last_nam` is not compared by probabilistic rule `p`; did you mean `last_name`?",
        "10:26: `swapped_with last_name` in `last_name` names the field itself; name the other field of the pair",
      ])
  }

  @Test func blockingCountsEachPairOnceAcrossRules() async throws {
    let (config, rule) = try rule(fixedRule)
    let records = recordSet(
      config, rule,
      rows: [
        row("Ann", "Smith", "1990-01-01"), row("Anne", "Smith", "1990-01-01"), row("Bob", "Smyth", "1980-05-05"),
        row("Cy", "Jones", "1990-01-01"), row("Dee", nil, "1970-01-01"),
      ])
    let counts = await Blocking(records: records).counts()
    // soundex(Smith) = soundex(Smyth) = S530: pairs (0,1) (0,2) (1,2); dob 1990-01-01: (0,1) (0,3) (1,3).
    #expect(counts[0].pairs == 3 && counts[0].newPairs == 3 && counts[0].largestBlock == 3)
    #expect(counts[1].pairs == 3 && counts[1].newPairs == 2)
    let result = await Linker(model: MatchModel(rule: rule)).run(records)
    #expect(result.pairs.count == 5)
    let seen = Set(zip(result.pairs.left, result.pairs.right).map { "\($0)-\($1)" })
    #expect(seen == ["0-1", "0-2", "1-2", "0-3", "1-3"])
    // Link-only: only pairs across files.
    let linked = recordSet(
      config, rule,
      rows: [row("Ann", "Smith", "1990-01-01"), row("Anne", "Smith", "1990-01-01"), row("An", "Smith", "1")],
      origins: [0, 0, 1])
    let linkCounts = await Blocking(records: linked, mode: .linkOnly).counts()
    #expect(linkCounts[0].pairs == 2 && linkCounts[0].newPairs == 2)
  }

  @Test func thresholdsMoveDecisions() async throws {
    let (config, rule) = try rule(fixedRule)
    let rows = [
      row("Ann", "Smith", "1990-01-01"), row("Anne", "Smith", "1990-01-01"), row("Ann", "Smith", "1991-01-01"),
      row("Bo", "Smith", "1990-01-01"),
    ]
    let records = recordSet(config, rule, rows: rows)
    var joins: [Int] = []
    for merge in [0.5, 0.9, 0.99, 0.999, 0.99999] {
      var model = MatchModel(rule: rule)
      model.merge = merge
      model.review = min(model.review, merge)
      model.maxClusterSize = 10
      joins.append(await Linker(model: model).run(records).joins)
    }
    // Weights: Ann~Anne 12.25, Ann~Bo and Anne~Bo 6.07, Ann~Ann(1991) 3.51, the rest below 0.
    #expect(joins == [3, 3, 1, 1, 0], "\(joins)")
  }

  @Test func theReviewBandCreatesCandidateLinks() async throws {
    let (config, rule) = try rule(fixedRule)
    // Same last name and birth date, different first names: weight between review and merge.
    let records = recordSet(config, rule, rows: [row("Ann", "Smith", "1990-01-01"), row("Zed", "Smith", "1990-01-01")])
    var model = MatchModel(rule: rule)
    let w = Explanation(model: model, records: records, 0, 1).weight
    model.merge = MatchModel.probability(weight: w + 1)
    model.review = MatchModel.probability(weight: w - 1)
    let result = await Linker(model: model).run(records)
    #expect(result.joins == 0)
    #expect(result.review == [0])
    #expect(result.cluster == [0, 1])
    model.review = MatchModel.probability(weight: w + 0.5)
    #expect(await Linker(model: model).run(records).review.isEmpty)
  }

  @Test func clusterSizeLimitStopsChaining() async throws {
    let (config, rule) = try rule(fixedRule)
    let rows = (0..<5).map { _ in row("Ann", "Smith", "1990-01-01") }
    let records = recordSet(config, rule, rows: rows)
    let result = await Linker(model: MatchModel(rule: rule)).run(records)
    var sizes: [Int: Int] = [:]
    for c in result.cluster { sizes[c, default: 0] += 1 }
    #expect(sizes.values.max() == 3)
    #expect(sizes.values.sorted() == [2, 3])
    #expect(!result.refused.isEmpty)
    #expect(result.refused.allSatisfy { $0.reason.contains("max_cluster_size 3") })
  }

  @Test func identifierLimitsStopJoins() async throws {
    let (config, rule) = try rule(fixedRule)
    let rows = [
      row("Ann", "Smith", "1990-01-01", user: "u1"), row("Ann", "Smith", "1990-01-01", user: "u2"),
      row("Ann", "Smith", "1990-01-01"),
    ]
    let records = recordSet(config, rule, rows: rows)
    let result = await Linker(model: MatchModel(rule: rule)).run(records)
    // The record without a user id joins one of them; the two user ids never share a cluster.
    #expect(result.cluster[0] != result.cluster[1])
    #expect(result.cluster[2] == result.cluster[0] || result.cluster[2] == result.cluster[1])
    // The first join of 0 and 1 is refused, and after the third record joins one, so is the other.
    #expect(result.refused.count == 2)
    #expect(result.refused.allSatisfy { $0.reason.contains("`user_id`") })
  }

  @Test func clustererRefusesAndRepresentsDeterministically() {
    let ids = IdentifierColumn(kind: "email", limit: 2, hash: [1, 2, 3, 0])
    var c = Clusterer(count: 4, maxSize: 10, identifiers: [ids])
    #expect(c.union(0, 1) == .joined)
    #expect(c.union(1, 0) == .alreadyTogether)
    #expect(c.union(2, 0) == .refusedIdentifier("email"))
    #expect(c.union(3, 1) == .joined)
    #expect(c.representatives() == [0, 0, 2, 0])
  }

  @Test func tuneSweepRecommendsAThresholdKeepingTheTargetPrecision() async throws {
    let (config, rule) = try rule(KnownDataSet.yaml)
    let data = KnownDataSet.rows(persons: 1500, seed: 21)
    let records = recordSet(config, rule, rows: data.rows, truth: data.truth)
    let result = await Linker(
      model: MatchModel(rule: rule), train: true, trainer: Trainer(seed: 42, randomPairs: 200_000)
    ).run(records)
    let sweep = ThresholdSweep.records(result, records: records, truth: data.truth)
    #expect(sweep.rows.count > 10)
    // Lower thresholds admit more pairs: recall never falls.
    let recalls = sweep.rows.map(\.pairs.recall)
    #expect(recalls == recalls.sorted())
    let rec = try #require(sweep.recommend(precision: 0.99))
    #expect(rec.reached)
    #expect(rec.merge.clusters.precision >= 0.99)
    #expect(rec.review.weight <= rec.merge.weight)
    // The cluster metrics at the final row agree with evaluating the clustering directly.
    let last = try #require(sweep.rows.last)
    let direct = Linker.cluster(result.model, records: records, pairs: result.pairs, merge: last.weight)
    let m = ClusterEvaluation.pairwise(predicted: direct.cluster, truth: data.truth)
    #expect(abs(m.precision - last.clusters.precision) < 1e-9)
    #expect(abs(m.recall - last.clusters.recall) < 1e-9)
    let svg = sweep.svg(title: "t", current: result.model.mergeWeight, recommended: rec.merge.weight)
    #expect(svg.contains("<polyline") && svg.contains("recommended merge"))
  }

  @Test func labelledPairsSweepCountsUnblockedMatchesAsMissed() async throws {
    let (config, rule) = try rule(fixedRule)
    let rows = [
      row("Ann", "Smith", "1990-01-01"), row("Ann", "Smith", "1990-01-01"), row("Ann", "Jones", "1970-02-02"),
      row("Bob", "Brown", "1960-03-03"),
    ]
    let records = recordSet(config, rule, rows: rows)
    let result = await Linker(model: MatchModel(rule: rule)).run(records)
    // (0,1) a blocked match; (0,2) a true match blocking never compares; (0,3) a non-match.
    let sweep = ThresholdSweep.labelledPairs(
      result, records: records, labels: [(0, 1, true), (0, 2, true), (0, 3, false)])
    let last = try #require(sweep.rows.last)
    #expect(last.pairs.recall == 0.5)
    #expect(last.pairs.precision == 1)
    #expect(last.clusters.recall == 0.5)
  }

  @Test func clusterEvaluationCountsPairsThroughTheContingency() {
    let m = ClusterEvaluation.pairwise(predicted: [0, 0, 0, 3, 3], truth: ["a", "a", "b", "b", "b"])
    // Predicted pairs: 3 + 1 = 4; true pairs: 1 + 3 = 4; shared: (0,1) and (3,4).
    #expect(m.predicted == 4 && m.actual == 4 && m.truePositives == 2)
    #expect(ClusterEvaluation.exactClusters(predicted: [0, 0, 2], truth: ["a", "a", "b"]) == 1)
    #expect(ClusterEvaluation.exactClusters(predicted: [0, 1, 2], truth: ["a", "a", "b"]) == 0.5)
  }

  @Test func theFirstRepeatedIdIsFoundWithTheLineOfItsFirstAppearance() {
    #expect(RecordSet.firstRepeat([]) == nil)
    #expect(RecordSet.firstRepeat(["a", "b", "c"]) == nil)
    let found = RecordSet.firstRepeat(["a", "b", "c", "b", "a", "c"])
    #expect(found?.first == 1 && found?.again == 3)
    let many = (0..<50_000).map { "id-\($0)" }
    #expect(RecordSet.firstRepeat(many) == nil)
    let again = RecordSet.firstRepeat(many + ["id-49999", "id-7"])
    #expect(again?.first == 49_999 && again?.again == 50_000)
  }
}
