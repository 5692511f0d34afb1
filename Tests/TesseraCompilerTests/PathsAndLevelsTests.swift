import Foundation
import TesseraLanguage
import Testing

@testable import TesseraCompiler

@Suite("Paths")
struct PathsTests {
  @Test(
    "normalize folds `.` and `..`",
    arguments: [
      ("pipelines/../rules/identity.yaml", "rules/identity.yaml"),
      ("./a/./b.yaml", "a/b.yaml"),
      ("a//b///c.yaml", "a/b/c.yaml"),
      ("a/b/../../c.yaml", "c.yaml"),
      ("../x.yaml", "../x.yaml"),
      ("../../x/../y.yaml", "../../y.yaml"),
      ("a/../../b.yaml", "../b.yaml"),
      ("a/..", "."),
      (".", "."),
      ("", "."),
      ("/a/b/../c.yaml", "/a/c.yaml"),
      ("/../a.yaml", "/a.yaml"),
      ("/a/../..", "/"),
      ("/", "/"),
      ("a/b/", "a/b"),
    ])
  func normalize(input: String, expected: String) {
    #expect(Paths.normalize(input) == expected)
  }

  @Test("normalize is idempotent")
  func idempotent() {
    for p in ["a/../b", "../../c/./d", "/x/../../y", "p/q/r/../../s"] {
      #expect(Paths.normalize(Paths.normalize(p)) == Paths.normalize(p))
    }
  }

  @Test("directory and resolve follow the including file")
  func resolve() {
    #expect(Paths.directory(of: "pipelines/retail.yaml") == "pipelines")
    #expect(Paths.directory(of: "retail.yaml") == ".")
    #expect(Paths.directory(of: "/retail.yaml") == "/")
    #expect(Paths.resolve("../rules/identity.yaml", from: "pipelines/retail.yaml") == "rules/identity.yaml")
    #expect(Paths.resolve("rules/a.yaml", from: "p.yaml") == "rules/a.yaml")
    #expect(Paths.resolve("/etc/x.yaml", from: "pipelines/retail.yaml") == "/etc/x.yaml")
    #expect(Paths.resolve("b.yaml", from: "/srv/p/a.yaml") == "/srv/p/b.yaml")
  }

  @Test("diagnostics name included files by their folded path")
  func foldedPathsInDiagnostics() {
    let result = Compiler(
      environment: [:],
      readFile: { path in
        switch path {
        case "pipelines/p.yaml": return "pipeline: p\ninclude: [../rules/./r.yaml]\n"
        case "rules/r.yaml": return "sources:\n  app: { kind: http }\n"
        default: return nil
        }
      }
    ).compile(pipeline: "./pipelines/p.yaml")
    #expect(
      result.diagnostics.map(\.description) == [
        "rules/r.yaml:2:3: error: source `app` is missing the required key `write_key`"
      ])
    #expect(Set(result.sources.keys) == ["pipelines/p.yaml", "rules/r.yaml"])
  }
}

@Suite("Comparison levels")
struct LevelParserTests {
  @Test(
    "valid levels",
    arguments: [
      ("exact", ComparisonLevel.exact),
      ("soundex", .soundex),
      ("transposed_day_month", .transposedDayMonth),
      ("jaro_winkler >= 0.92", .jaroWinkler(0.92)),
      ("jaro >= 0.9", .jaro(0.9)),
      ("token_set >= 1", .tokenSet(1)),
      ("levenshtein <= 2", .levenshtein(2)),
      ("damerau_levenshtein <= 1", .damerauLevenshtein(1)),
      ("within 1 year", .within(1, .years)),
      ("within 3 days", .within(3, .days)),
      ("within 2 month", .within(2, .months)),
      ("within 5", .within(5, nil)),
      ("nickname", .nickname),
      ("swapped_with last_name", .swappedWith("last_name")),
      ("  jaro_winkler   >=   0.8  ", .jaroWinkler(0.8)),
    ])
  func valid(text: String, level: ComparisonLevel) throws {
    let parsed = try LevelParser.parse(text).get()
    #expect(parsed == level)
  }

  @Test("levels print the way they are written")
  func descriptions() throws {
    #expect(ComparisonLevel.jaroWinkler(0.92).description == "jaro_winkler >= 0.92")
    #expect(ComparisonLevel.levenshtein(2).description == "levenshtein <= 2")
    #expect(ComparisonLevel.within(1, .years).description == "within 1 year")
    #expect(ComparisonLevel.within(2, .years).description == "within 2 years")
    #expect(ComparisonLevel.within(5, nil).description == "within 5")
    #expect(ComparisonLevel.transposedDayMonth.description == "transposed_day_month")
    for text in ["exact", "jaro >= 0.9", "damerau_levenshtein <= 1", "token_set >= 0.8", "soundex"] {
      #expect(try LevelParser.parse(text).get().description == text)
    }
  }

  struct Failure: Sendable, CustomStringConvertible {
    var text: String
    var message: String
    var offset: Int
    var length: Int
    var description: String { text }
  }

  @Test(
    "invalid levels report the problem at its offset",
    arguments: [
      Failure(text: "", message: "empty comparison level", offset: 0, length: 1),
      Failure(
        text: "jaro_winkle >= 0.9", message: "unknown comparison level `jaro_winkle`; did you mean `jaro_winkler`?",
        offset: 0, length: 11),
      Failure(
        text: "cosine",
        message:
          "unknown comparison level `cosine`; levels are exact, jaro_winkler, jaro, levenshtein, damerau_levenshtein, token_set, within, transposed_day_month, soundex, nickname, swapped_with",
        offset: 0, length: 6),
      Failure(text: "exact 1", message: "level `exact` is written `exact`", offset: 0, length: 7),
      Failure(
        text: "jaro_winkler 0.9", message: "level `jaro_winkler` is written `jaro_winkler >= 0.9`", offset: 0,
        length: 16),
      Failure(
        text: "jaro_winkler > 0.9",
        message: "level `jaro_winkler` takes `>=` and a similarity, e.g. `jaro_winkler >= 0.9`",
        offset: 13, length: 1),
      Failure(
        text: "jaro >= 1.5", message: "similarity must be a number in (0, 1], found `1.5`", offset: 8, length: 3),
      Failure(
        text: "token_set >= 0", message: "similarity must be a number in (0, 1], found `0`", offset: 13, length: 1),
      Failure(
        text: "levenshtein >= 2",
        message: "level `levenshtein` takes `<=` and an edit count, e.g. `levenshtein <= 2`", offset: 12, length: 2),
      Failure(
        text: "levenshtein <= 0", message: "edit count must be a whole number ≥ 1, found `0`", offset: 15, length: 1),
      Failure(
        text: "damerau_levenshtein <= 1.5", message: "edit count must be a whole number ≥ 1, found `1.5`", offset: 23,
        length: 3),
      Failure(
        text: "within", message: "level `within` is written `within 1 year` or `within 5`", offset: 0, length: 6),
      Failure(text: "within -1", message: "`within` needs a positive number, found `-1`", offset: 7, length: 2),
      Failure(
        text: "swapped_with", message: "level `swapped_with` is written `swapped_with last_name`", offset: 0,
        length: 12),
      Failure(
        text: "within 1 fortnight",
        message: "unknown unit `fortnight` in `within`; use minutes, hours, days, months or years", offset: 9,
        length: 9),
    ])
  func invalid(_ f: Failure) {
    switch LevelParser.parse(f.text) {
    case .success(let level):
      Issue.record("`\(f.text)` parsed as \(level)")
    case .failure(let e):
      #expect(e.message == f.message)
      #expect(e.offset == f.offset)
      #expect(e.length == f.length)
    }
  }
}

@Suite("--set overrides")
struct OverrideTests {
  static let files = [
    "p.yaml": """
    pipeline: p
    include: [r.yaml]
    sources:
      s: { kind: csv, path: x.csv, emit: identify, map: { email: e, traits.first_name: f, traits.last_name: l } }
    identifiers:
      email: { normalize: email, max_per_profile: 2 }
    deterministic:
      ids: { link_on: [email] }
    """,
    "r.yaml": """
    profile:
      traits:
        first_name: { type: string }
        last_name: { type: string }
    probabilistic:
      person:
        blocking: [[traits.last_name]]
        compare:
          first_name: [exact]
        thresholds: { merge: 0.98, review: 0.9 }
    """,
  ]

  func compile(_ sets: [String]) -> CompileResult {
    var compiler = Compiler(environment: [:], readFile: { Self.files[$0] })
    compiler.overrides = sets.compactMap(Override.init(parsing:))
    return compiler.compile(pipeline: "p.yaml")
  }

  @Test("a scalar in an included file is replaced by path, `rules.NAME` finds the rule, a missing key is added")
  func replaces() throws {
    let plan = try #require(
      compile([
        "rules.person.thresholds.merge=0.95", "probabilistic.person.prior=0.001", "identifiers.email.max_per_profile=3",
      ])
      .plan)
    let rule = try #require(plan.config.probabilistic.first)
    #expect(rule.merge == 0.95)
    #expect(rule.review == 0.9)
    #expect(rule.prior == 0.001)
    #expect(plan.config.identifier("email")?.maxPerProfile == 3)
  }

  @Test("overridden values are checked like written ones; unknown paths say what exists")
  func errors() {
    let bad = compile(["rules.person.thresholds.merge=0.5"]).diagnostics.map(\.message)
    #expect(bad.contains { $0.hasPrefix("threshold `review` (0.9) must not exceed `merge` (0.5)") }, "\(bad)")
    let unknown = compile(["rules.persn.thresholds.merge=0.9"]).diagnostics.filter { $0.severity == .error }.map {
      "\($0.location.file): \($0.message)"
    }
    #expect(
      unknown == [
        "--set rules.persn.thresholds.merge=0.9: `--set rules.persn.thresholds.merge=0.9`: no `persn` there; did you mean `person`?; found: ids, person"
      ], "\(unknown)")
    let section = compile(["segmnts.x=1"]).diagnostics.map(\.message)
    #expect(section.first?.contains("no section `segmnts`") == true, "\(section)")
    #expect(Override(parsing: "no-equals") == nil)
    #expect(Override(parsing: "a..b=1") == nil)
    #expect(Override(parsing: "a.b=x=y")?.value == "x=y")
  }
}
