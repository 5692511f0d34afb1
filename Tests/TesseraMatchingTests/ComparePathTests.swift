import Foundation
import TesseraCompiler
import TesseraLanguage
import TesseraModel
import Testing

@testable import TesseraMatching

/// The compare path works on value codes, skips similarities that bounds rule out, remembers the levels of
/// repeated value pairs and keeps only the pairs asked for: none of that may change a level or a cluster.
@Suite struct ComparePathTests {
  static let yaml = """
    profile:
      traits:
        name: { type: string }
        dob: { type: string }
        city: { type: string }
    probabilistic:
      p:
        blocking:
          - [traits.city]
        compare:
          name: [exact, jaro_winkler >= 0.9, levenshtein <= 2, jaro >= 0.7, token_set >= 0.8, soundex]
          dob: [transposed_day_month, exact, damerau_levenshtein <= 1, within 1 year]
        thresholds: { merge: 0.9, review: 0.5 }
    """

  /// The first level of `levels` two raw values reach, computed from the texts with the comparators.
  static func referenceName(_ a: String?, _ b: String?) -> Int {
    let x = a.map(FieldColumn.fold) ?? ""
    let y = b.map(FieldColumn.fold) ?? ""
    if x.isEmpty || y.isEmpty { return -1 }
    if x == y { return 0 }
    if Comparators.jaroWinkler(x, y) >= 0.9 { return 1 }
    if Comparators.levenshtein(x, y, cap: 2) <= 2 { return 2 }
    if Comparators.jaro(x, y) >= 0.7 { return 3 }
    if Comparators.tokenSetSimilarity(x, y) >= 0.8 { return 4 }
    let sx = Phonetic.soundex(x)
    if !sx.isEmpty && sx == Phonetic.soundex(y) { return 5 }
    return 6
  }

  static func referenceDate(_ a: String?, _ b: String?) -> Int {
    let x = a.map(FieldColumn.fold) ?? ""
    let y = b.map(FieldColumn.fold) ?? ""
    if x.isEmpty || y.isEmpty { return -1 }
    let dx = SimpleDate(parsing: x)
    let dy = SimpleDate(parsing: y)
    if let dx, let dy, Comparators.transposedDayMonth(dx, dy) { return 0 }
    if x == y { return 1 }
    if Comparators.damerauLevenshtein(x, y, cap: 1) <= 1 { return 2 }
    if let dx, let dy, Comparators.withinYears(dx, dy, years: 1) { return 3 }
    return 4
  }

  /// Names and birth dates from small pools with typos, case and spacing noise, and a few missing or invalid.
  static func rows(_ count: Int, seed: UInt64) -> [[String: String]] {
    var rng = SplitMix64(seed: seed)
    let names = [
      "Katherine", "Kathrine", "Catherine", "Jon Smith", "Smith Jon", "John", "Jonathan", "Anna Maria", "Maria",
      "Ann", "Zoë", "Zoe", "Øyvind", "Bo", "Lee-Ann", "Leeann", "Robert", "Rupert", "Ashcraft", "Ashcroft",
      // The same Soundex code (A000), and nothing else in common.
      "Aeiouy", "Ay",
    ]
    let dates = [
      "1990-07-21", "1990-21-07", "1990-07-12", "1990-12-07", "1991-07-21", "1989-07-21", "19900721",
      "1990/07/21", "1990-07-2", "2001-02-03", "2001-03-02", "not a date", "1990-07-22",
    ]
    func noisy(_ s: String) -> String {
      var chars = Array(s)
      switch rng.int(0..<6) {
      case 0 where chars.count > 2: chars.remove(at: rng.int(1..<chars.count))
      case 1: chars.insert(chars[rng.int(0..<chars.count)], at: rng.int(0..<chars.count))
      case 2: return s.uppercased()
      case 3: return "  " + s + " "
      default: break
      }
      return String(chars)
    }
    return (0..<count).map { _ in
      var row = ["city": ["a", "b"][rng.int(0..<2)]]
      if rng.int(0..<12) != 0 { row["name"] = noisy(names[rng.int(0..<names.count)]) }
      if rng.int(0..<12) != 0 { row["dob"] = dates[rng.int(0..<dates.count)] }
      return row
    }
  }

  /// The streaming matcher keys an event and re-keys a changed profile without building a record set: the
  /// keys and value hashes it gets that way must be the ones a record set holds for the same values.
  @Test func keysWithoutARecordSetAreTheRecordSetsKeys() throws {
    let (config, rule) = try rule(
      Self.yaml.replacingOccurrences(
        of: "      - [traits.city]", with: "      - [traits.city]\n      - [soundex(traits.name), traits.dob]"))
    let model = MatchModel(rule: rule)
    var rows = Self.rows(200, seed: 5)
    rows += [["name": "Zoë  ÅNGSTRÖM", "dob": "1980-02-03", "city": "Köln"], ["name": " ", "city": "B"]]
    let records = recordSet(config, rule, rows: rows)
    var builder = RecordSetBuilder(model: model, rule: rule, config: config)
    var keyed = 0
    for (i, row) in rows.enumerated() {
      let keys = builder.keys(id: "r\(i)", value: { row[$0] })
      #expect(keys == records.keys.map { $0[i] }, "\(row)")
      if keys[1] != 0 { keyed += 1 }
      for (f, field) in model.fields.enumerated() {
        #expect(row[field].map(RecordSetBuilder.valueHash) ?? 0 == records.columns[f].hash[i], "\(field) of \(row)")
      }
    }
    #expect(builder.count == 0)
    #expect(keyed > 100)
  }

  @Test func levelsOnCodesMatchTheComparatorsOnTexts() throws {
    let (config, rule) = try rule(Self.yaml)
    let model = MatchModel(rule: rule)
    let rows = Self.rows(160, seed: 3)
    let records = recordSet(config, rule, rows: rows)
    var names = Set<Int>()
    var dates = Set<Int>()
    for i in rows.indices {
      for j in rows.indices where j != i {
        let name = Self.referenceName(rows[i]["name"], rows[j]["name"])
        let dob = Self.referenceDate(rows[i]["dob"], rows[j]["dob"])
        #expect(model.levels(records, i, j) == [name, dob], "\(rows[i]) ~ \(rows[j])")
        names.insert(name)
        dates.insert(dob)
      }
    }
    // The data reaches every level of both comparisons.
    #expect(names == Set(-1...6))
    #expect(dates == Set(-1...4))
  }

  @Test func linkingComparesEveryCandidateOnceWithTheSameLevels() async throws {
    let (config, rule) = try rule(Self.yaml)
    let model = MatchModel(rule: rule)
    let rows = Self.rows(500, seed: 11)
    let records = recordSet(config, rule, rows: rows)
    let result = await Linker(model: model).run(records)
    let perCity = Dictionary(grouping: rows.indices) { rows[$0]["city"] ?? "" }.values
    #expect(result.compared == perCity.reduce(0) { $0 + $1.count * ($1.count - 1) / 2 })
    #expect(result.pairs.count == result.compared)
    #expect(result.newPairs == [result.compared])
    var pairs = Set<Int>()
    for k in 0..<result.pairs.count {
      let i = Int(result.pairs.left[k])
      let j = Int(result.pairs.right[k])
      #expect(i < j)
      pairs.insert(i * rows.count + j)
      let levels = model.decode(result.pairs.pattern[k])
      let expected = [
        Self.referenceName(rows[i]["name"], rows[j]["name"]), Self.referenceDate(rows[i]["dob"], rows[j]["dob"]),
      ]
      if levels != expected {
        Issue.record("pair \(i)~\(j): \(levels), expected \(expected)")
        break
      }
    }
    #expect(pairs.count == result.compared)
    // Cut into many small stretches (large blocks into rows), the pairs and their patterns come out the same,
    // in the same order.
    let blocking = Blocking(records: records)
    let stretches = await PairComparer.compareAll(
      model: model, records: records, blocking: blocking, pairsPerStretch: 997)
    #expect(stretches.count > 50)
    #expect(stretches.flatMap(\.left) == result.pairs.left)
    #expect(stretches.flatMap(\.right) == result.pairs.right)
    let patterns = stretches.flatMap { s in s.combo.map { s.combos[Int($0)] >> 1 } }
    #expect(patterns == result.pairs.pattern)
  }

  /// Mostly distinct names (random letters, some with a typo of another, a few outside ASCII when `unicode`),
  /// so the compare path reads their texts' places and character sets from the rows rather than the column.
  static func distinctRows(_ count: Int, seed: UInt64, unicode: Bool) -> [[String: String]] {
    var rng = SplitMix64(seed: seed)
    let letters = Array(unicode ? "abcdeklmnoσωrsz " : "abcdeklmnorsz -")
    var names: [String] = []
    return (0..<count).map { _ in
      var row = [
        "city": ["a", "b"][rng.int(0..<2)], "dob": ["1990-07-21", "1990-07-12", "1991-07-21"][rng.int(0..<3)],
      ]
      var name = String((0..<rng.int(2..<9)).map { _ in letters[rng.int(0..<letters.count)] })
      if !names.isEmpty && rng.int(0..<3) == 0 {
        var chars = Array(names[rng.int(0..<names.count)])
        if chars.count > 2 { chars[rng.int(0..<chars.count)] = letters[rng.int(0..<letters.count)] }
        name = String(chars)
      }
      names.append(name)
      if rng.int(0..<15) != 0 { row["name"] = name }
      return row
    }
  }

  @Test(arguments: [false, true])
  func mostlyDistinctValuesGetTheSameLevelsFromTheRows(unicode: Bool) async throws {
    let (config, rule) = try rule(Self.yaml)
    let model = MatchModel(rule: rule)
    let rows = Self.distinctRows(400, seed: unicode ? 5 : 4, unicode: unicode)
    let records = recordSet(config, rule, rows: rows)
    #expect(records.columns[0].ascii == !unicode)
    let blocking = Blocking(records: records)
    let comparer = PairComparer(model: model, records: records, blocking: blocking)
    // Names are carried in the rows; birth dates repeat, so their levels are remembered instead.
    #expect(comparer.plans.map(\.carried).map { $0 >= 0 } == [true, false])
    #expect(comparer.plans.map(\.remembered) == [false, true])
    let stretches = await PairComparer.compareAll(
      model: model, records: records, blocking: blocking, pairsPerStretch: 1000)
    var levels = Set<Int>()
    var compared = 0
    for stretch in stretches {
      for k in 0..<stretch.count {
        let (i, j) = (Int(stretch.left[k]), Int(stretch.right[k]))
        let expected = [
          Self.referenceName(rows[i]["name"], rows[j]["name"]), Self.referenceDate(rows[i]["dob"], rows[j]["dob"]),
        ]
        let got = model.decode(stretch.combos[Int(stretch.combo[k])] >> comparer.ruleBits)
        #expect(got == expected, "\(rows[i]) ~ \(rows[j])")
        #expect(model.levels(records, i, j) == expected)
        levels.insert(expected[0])
        compared += 1
      }
    }
    #expect(compared == blocking.sizes()[0].pairs)
    // Missing, exact, similar and different names all occur.
    #expect(levels.isSuperset(of: [-1, 0, 1, 6]))
  }

  @Test func aBlockingRuleNoRecordHasAKeyForGeneratesNoPairs() async throws {
    let yaml = Self.yaml.replacingOccurrences(of: "- [traits.city]\n", with: "- [traits.city]\n      - [traits.dob]\n")
    let (config, rule) = try rule(yaml)
    #expect(rule.blocking.count == 2)
    let rows = Self.rows(60, seed: 2).map { $0.filter { $0.key != "dob" } }
    let records = recordSet(config, rule, rows: rows)
    let blocking = await Blocking.build(records: records)
    #expect(blocking.sizes().map(\.pairs)[1] == 0)
    #expect(Blocking(records: records).sizes() == blocking.sizes())
    let result = await Linker(model: MatchModel(rule: rule)).run(records)
    #expect(result.newPairs[1] == 0 && result.compared == blocking.sizes()[0].pairs)
  }

  @Test func keepingOnlyTheStrongPairsChangesNoCluster() async throws {
    let (config, rule) = try rule(KnownDataSet.yaml)
    let data = KnownDataSet.rows(persons: 800, seed: 17)
    let records = recordSet(config, rule, rows: data.rows)
    let model = MatchModel(rule: rule)
    let all = await Linker(model: model, train: true, trainer: Trainer(seed: 3, randomPairs: 100_000)).run(records)
    let floor = all.model.reviewWeight
    let kept = await Linker(
      model: model, train: true, trainer: Trainer(seed: 3, randomPairs: 100_000), keepFrom: floor
    ).run(records)
    #expect(kept.compared == all.compared)
    #expect(kept.pairs.count == all.pairs.weight.filter { Double($0) >= floor }.count)
    #expect(kept.pairs.count < all.pairs.count)
    #expect(kept.pairs.weight.allSatisfy { Double($0) >= floor })
    #expect(kept.cluster == all.cluster)
    #expect(kept.joins == all.joins)
    #expect(kept.review.count == all.review.count)
  }

  @Test func foldingLowercasesAndJoinsWordsWithSingleSpaces() {
    #expect(FieldColumn.fold("  Mary\tANN  o'Neil \n") == "mary ann o'neil")
    #expect(FieldColumn.fold("José") == "jose")
    #expect(FieldColumn.fold(" \t ") == "")
    var rng = SplitMix64(seed: 8)
    let alphabet = Array("aZb Y\t\n\r.-'09")
    for _ in 0..<2000 {
      let raw = String((0..<rng.int(0..<12)).map { _ in alphabet[rng.int(0..<alphabet.count)] })
      let words = raw.lowercased().split(whereSeparator: { " \t\n\r".contains($0) })
      #expect(FieldColumn.fold(raw) == words.joined(separator: " "), "\(raw.debugDescription)")
    }
  }

  @Test func valuesOutsideASCIIAreComparedAsScalars() throws {
    let (config, rule) = try rule(Self.yaml)
    let model = MatchModel(rule: rule)
    let rows = [
      ["name": "Σωκράτης", "city": "a"], ["name": "Σωκρατης", "city": "a"], ["name": "Sokratis", "city": "a"],
    ]
    let records = recordSet(config, rule, rows: rows)
    // The accent is folded away: equal after folding.
    #expect(model.levels(records, 0, 1)[0] == 0)
    #expect(model.levels(records, 0, 2)[0] == Self.referenceName(rows[0]["name"], rows[2]["name"]))
    #expect(records.columns[0].text(0) == FieldColumn.fold("Σωκρατης"))
    #expect(records.columns[0].text(0).unicodeScalars.count == 8)
  }
}
