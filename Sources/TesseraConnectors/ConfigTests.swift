import Foundation
import TesseraCompiler
import TesseraIdentity
import TesseraLanguage
import TesseraMeasurement
import TesseraModel
import TesseraRuntime
import TesseraStore

/// A named case of a `tests:` block: input records per source, and what must hold after the pipeline has
/// run over them (in a throwaway store; nothing is written or sent).
public struct ConfigTest: Sendable {
  /// A profile named by an identifier (`email:ada@example.com`) or by the record that produced an event
  /// (`pos#2`: the second record of source `pos` in this case).
  public enum Ref: Sendable, CustomStringConvertible {
    case identifier(Identifier)
    case record(source: String, index: Int)
    public var description: String {
      switch self {
      case .identifier(let i): return i.description
      case .record(let s, let n): return "\(s)#\(n)"
      }
    }
  }

  public enum Expectation: Sendable {
    case sameProfile([Ref])
    case apart([Ref])
    case trait(Ref, name: String, equals: Value)
    case segment(Ref, name: String, member: Bool)
    case payload(destination: String, profile: Ref?, contains: [String: Value])
    case noPayload(destination: String, profile: Ref)
    case rejected(source: String?, reasonContains: String)
    case match(Ref, status: String)
    /// Figures of a `measurement` report counted by one unit (`MeasurementReport.figure`).
    case report(name: String, by: CountingUnit, figures: [(String, Double)])
  }

  public var name: String
  public var location: SourceLocation
  public var records: [String: [Value]] = [:]
  public var now: Timestamp?
  public var overrides: [Override] = []
  public var expectations: [(Expectation, SourceLocation)] = []
}

/// Reads `tests:` blocks, reporting problems with file:line:column like the compiler does.
public enum ConfigTestReader {
  public static func read(_ file: SourceFile, config: PipelineConfig) -> (
    tests: [ConfigTest], diagnostics: [Diagnostic]
  ) {
    var diagnostics = Diagnostics()
    let (root, errors) = YAMLReader.read(file)
    for e in errors { diagnostics.append(e) }
    guard let root, let top = root.mapping else { return ([], diagnostics.sorted) }
    guard let block = top.first(where: { $0.key.scalar == "tests" })?.value else { return ([], diagnostics.sorted) }
    guard let cases = block.mapping else {
      diagnostics.error("expected a mapping of test names to cases for `tests`", at: block.location)
      return ([], diagnostics.sorted)
    }
    var out: [ConfigTest] = []
    for (key, body) in cases {
      guard let name = key.scalar else { continue }
      let errorsBefore = diagnostics.errorCount
      var test = ConfigTest(name: name, location: key.location)
      guard let fields = body.mapping else {
        diagnostics.error("test `\(name)` must be a mapping with `records` and `expect`", at: body.location)
        continue
      }
      for (k, v) in fields {
        switch k.scalar ?? "" {
        case "description": continue
        case "now":
          if let s = v.scalar, let t = Timestamp(iso8601: s) {
            test.now = t
          } else {
            diagnostics.error("`now` in test `\(name)` must be an ISO 8601 time", at: v.location)
          }
        case "set":
          for (pk, pv) in v.mapping ?? [] {
            if let path = pk.scalar, let value = pv.scalar, let o = Override(parsing: path + "=" + value) {
              test.overrides.append(o)
            } else {
              diagnostics.error("`set` in test `\(name)` maps a dotted path to a value", at: pk.location)
            }
          }
        case "records":
          for (sk, sv) in v.mapping ?? [] {
            guard let source = sk.scalar else { continue }
            guard config.source(source) != nil else {
              diagnostics.error(
                "unknown source `\(source)` in test `\(name)`"
                  + Suggest.didYouMean(source, in: config.sources.map(\.name)), at: sk.location)
              continue
            }
            test.records[source] = (sv.sequence ?? [sv]).map(value)
          }
        case "expect":
          for item in v.sequence ?? [v] {
            if let e = expectation(item, test: name, config: config, &diagnostics) {
              test.expectations.append((e, item.location))
            }
          }
        default:
          diagnostics.error(
            "unknown key `\(k.scalar ?? "")` in test `\(name)`"
              + Suggest.didYouMean(k.scalar ?? "", in: ["description", "now", "set", "records", "expect"]),
            at: k.location)
        }
      }
      if test.records.isEmpty { diagnostics.error("test `\(name)` has no `records`", at: key.location) }
      if test.expectations.isEmpty {
        diagnostics.error("test `\(name)` expects nothing; add `expect`", at: key.location)
      }
      // A case with a mistake is reported, not run: it would pass or fail for the wrong reason.
      if diagnostics.errorCount == errorsBefore { out.append(test) }
    }
    return (out, diagnostics.sorted)
  }

  static let kinds = [
    "same_profile", "apart", "trait", "segment", "not_segment", "payload", "no_payload", "rejected", "match",
    "report",
  ]

  static func expectation(
    _ node: YNode, test: String, config: PipelineConfig, _ d: inout Diagnostics
  ) -> ConfigTest.Expectation? {
    guard let entry = node.mapping, entry.count == 1, let kind = entry[0].key.scalar else {
      d.error("an expectation is one of \(kinds.joined(separator: ", ")) with its arguments", at: node.location)
      return nil
    }
    let arg = entry[0].value
    func ref(_ n: YNode) -> ConfigTest.Ref? {
      guard let s = n.scalar else {
        d.error("expected a profile reference (`kind:value` or `source#N`)", at: n.location)
        return nil
      }
      if let hash = s.lastIndex(of: "#"), let n = Int(s[s.index(after: hash)...]), n >= 1 {
        let source = String(s[..<hash])
        if config.source(source) == nil {
          d.error("unknown source `\(source)` in `\(s)`", at: node.location)
          return nil
        }
        return .record(source: source, index: n)
      }
      guard let i = Identifier(parsing: s) else {
        d.error("`\(s)` is neither `kind:value` nor `source#N`", at: n.location)
        return nil
      }
      let decl = config.identifier(i.kind)
      return .identifier(Identifier(i.kind, decl?.normalize(i.value) ?? i.value))
    }
    func field(_ name: String) -> YNode? { arg.mapping?.first { $0.key.scalar == name }?.value }
    switch kind {
    case "same_profile", "apart":
      let refs = (arg.sequence ?? []).compactMap(ref)
      guard refs.count >= 2 else {
        d.error("`\(kind)` lists at least two profile references", at: arg.location)
        return nil
      }
      return kind == "apart" ? .apart(refs) : .sameProfile(refs)
    case "trait":
      guard let p = field("profile").flatMap(ref), let name = field("name")?.scalar, let v = field("equals") else {
        d.error("`trait` needs `profile`, `name` and `equals`", at: arg.location)
        return nil
      }
      return .trait(p, name: name, equals: value(v))
    case "segment", "not_segment":
      guard let p = field("profile").flatMap(ref), let name = field("name")?.scalar else {
        d.error("`\(kind)` needs `profile` and `name`", at: arg.location)
        return nil
      }
      guard config.segments.contains(where: { $0.name == name }) else {
        d.error(
          "unknown segment `\(name)`" + Suggest.didYouMean(name, in: config.segments.map(\.name)), at: arg.location)
        return nil
      }
      return .segment(p, name: name, member: kind == "segment")
    case "payload":
      guard let dest = field("destination")?.scalar, case .map(let contains) = value(field("contains") ?? arg) else {
        d.error("`payload` needs `destination` and `contains` (a mapping)", at: arg.location)
        return nil
      }
      guard config.destinations.contains(where: { $0.name == dest }) else {
        d.error(
          "unknown destination `\(dest)`" + Suggest.didYouMean(dest, in: config.destinations.map(\.name)),
          at: arg.location)
        return nil
      }
      return .payload(destination: dest, profile: field("profile").flatMap(ref), contains: contains)
    case "no_payload":
      guard let dest = field("destination")?.scalar, let p = field("profile").flatMap(ref) else {
        d.error("`no_payload` needs `destination` and `profile`", at: arg.location)
        return nil
      }
      return .noPayload(destination: dest, profile: p)
    case "rejected":
      guard let text = field("reason_contains")?.scalar else {
        d.error("`rejected` needs `reason_contains`", at: arg.location)
        return nil
      }
      return .rejected(source: field("source")?.scalar, reasonContains: text)
    case "match":
      guard let r = field("record").flatMap(ref), let status = field("status")?.scalar else {
        d.error("`match` needs `record` (source#N) and `status`", at: arg.location)
        return nil
      }
      return .match(r, status: status)
    case "report":
      return report(arg, config: config, &d)
    default:
      d.error(
        "unknown expectation `\(kind)`"
          + (Suggest.closest(to: kind, in: kinds).map { "; did you mean `\($0)`?" }
            ?? "; use \(kinds.joined(separator: ", "))"),
        at: entry[0].key.location)
      return nil
    }
  }

  /// `report: { name: R, by: people, figures: { conversions: 1, "credit.last_touch.email": 1 } }`.
  static func report(_ arg: YNode, config: PipelineConfig, _ d: inout Diagnostics) -> ConfigTest.Expectation? {
    func field(_ name: String) -> YNode? { arg.mapping?.first { $0.key.scalar == name }?.value }
    let m = config.measurement
    guard let nameNode = field("name"), let name = nameNode.scalar, let figures = field("figures")?.mapping,
      !figures.isEmpty
    else {
      d.error("`report` needs `name` (a funnel or attribution report) and `figures` (figure: number)", at: arg.location)
      return nil
    }
    let kind: String
    if m.funnel(name) != nil {
      kind = "funnel"
    } else if m.attribution(name) != nil {
      kind = "attribution"
    } else {
      d.error(
        "unknown report `\(name)`" + Suggest.didYouMean(name, in: m.reportNames)
          + (m.reportNames.isEmpty ? "; declare it under `measurement`" : ""), at: nameNode.location)
      return nil
    }
    var unit = CountingUnit.people
    if let b = field("by") {
      guard let text = b.scalar, let u = CountingUnit(rawValue: text) else {
        d.error("`by` of `report` is people, devices or sessions", at: b.location)
        return nil
      }
      unit = u
    }
    var out: [(String, Double)] = []
    for (k, v) in figures {
      guard let figure = k.scalar, MeasurementReport.isFigure(figure, kind: kind) else {
        d.error(
          "unknown figure `\(k.scalar ?? "")` of \(kind) `\(name)`; use "
            + (MeasurementReport.figureForms[kind] ?? []).joined(separator: ", "), at: k.location)
        return nil
      }
      guard let number = value(v).doubleValue else {
        d.error("figure `\(figure)` of `report` must be a number", at: v.location)
        return nil
      }
      out.append((figure, number))
    }
    return .report(name: name, by: unit, figures: out)
  }

  /// A YAML value as the value a record field holds: quoted scalars are strings, plain ones read as null,
  /// booleans and numbers where they look like them.
  public static func value(_ node: YNode) -> Value {
    switch node.kind {
    case .mapping(let entries):
      var m: [String: Value] = [:]
      for (k, v) in entries { if let key = k.scalar { m[key] = value(v) } }
      return .map(m)
    case .sequence(let items): return .list(items.map(value))
    case .scalar(let s, let style):
      guard style == .plain else { return .string(s) }
      if node.isNull { return .null }
      if s == "true" || s == "false" { return .bool(s == "true") }
      if let i = Int64(s) { return .int(i) }
      if let d = Double(s), s.contains(".") || s.contains("e") { return .double(d) }
      return .string(s)
    }
  }
}

/// The outcome of one case: what failed, each with what was expected and what the run gave.
public struct ConfigTestResult: Sendable {
  public var name: String
  public var failures: [String] = []
  public var passed: Bool { failures.isEmpty }
}

/// Runs cases against a pipeline in a throwaway in-memory store.
public struct ConfigTestRunner: Sendable {
  public var pipeline: String

  public init(pipeline: String) { self.pipeline = pipeline }

  public func run(_ test: ConfigTest) async throws -> ConfigTestResult {
    var result = ConfigTestResult(name: test.name)
    var compiler = Compiler()
    compiler.overrides = test.overrides
    let compiled = compiler.compile(pipeline: pipeline)
    guard let plan = compiled.plan else {
      result.failures.append("the pipeline does not compile with this case's `set`:\n" + compiled.rendered())
      return result
    }
    let config = plan.config
    let dir = FileManager.default.temporaryDirectory.appendingPathComponent("tessera-test-\(UUID().uuidString)")
    try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
    defer { try? FileManager.default.removeItem(at: dir) }
    var readers: [Int: any SourceReader] = [:]
    var eventIDs: [String: [String?]] = [:]
    for (source, records) in test.records {
      guard let index = config.sources.firstIndex(where: { $0.name == source }) else { continue }
      var decl = config.sources[index]
      let csv = decl.kind == .csv
      let text = csv ? Self.csv(records, delimiter: decl.delimiter) : records.map { JSON.encode($0) + "\n" }.joined()
      let path = dir.appendingPathComponent("\(source).\(csv ? "csv" : "ndjson")").path
      try text.write(toFile: path, atomically: true, encoding: .utf8)
      decl.path = path
      if decl.kind == .http || decl.kind == .postgres { decl.kind = .ndjson }
      readers[index] = FileSourceReader(source: decl)
      // Each record's event id, by mapping it alone, so `source#N` can name the profile it ended in.
      var ids: [String?] = []
      let mapper = Mapper(source: config.sources[index], config: config, receivedAt: test.now ?? Timestamp(Date()))
      let collected = BatchCollector()
      try await FileSourceReader(source: decl, batchSize: 1).read(source: index) { await collected.add($0) }
      for b in await collected.batches { ids.append(mapper.map(b).events.first?.id) }
      eventIDs[source] = ids
    }
    let recording = MemoryStore()
    var runner = PipelineRunner(plan: plan, store: recording, readers: readers, workers: 1)
    if let now = test.now { runner.now = now }
    let (summary, batches) = try await runner.recorded()
    let report = DryRunReport.build(config: config, summary: summary, batches: batches, before: [])
    var profileOfEvent: [String: ProfileID] = [:]
    for b in batches { for e in b.events { profileOfEvent["\(e.event.source)\u{1F}\(e.event.id)"] = e.profile } }

    func resolve(_ ref: ConfigTest.Ref) async throws -> ProfileID? {
      switch ref {
      case .identifier(let i): return await recording.profile(for: i)
      case .record(let source, let n):
        guard let ids = eventIDs[source], n <= ids.count, let id = ids[n - 1],
          let p = profileOfEvent["\(source)\u{1F}\(id)"]
        else { return nil }
        return await recording.canonical(p) ?? p
      }
    }
    func name(_ ref: ConfigTest.Ref, _ p: ProfileID?) -> String { "\(ref) → \(p?.description ?? "no profile")" }

    for (e, at) in test.expectations {
      let place = "\(at.file):\(at.line):\(at.column)"
      switch e {
      case .sameProfile(let refs), .apart(let refs):
        var found: [ProfileID?] = []
        for r in refs { found.append(try await resolve(r)) }
        let distinct = Set(found.compactMap { $0 })
        let same = found.allSatisfy { $0 != nil } && distinct.count == 1
        let apart = found.allSatisfy { $0 != nil } && distinct.count == refs.count
        if case .sameProfile = e, !same {
          result.failures.append(
            "\(place): expected one profile; got " + zip(refs, found).map { name($0, $1) }.joined(separator: ", "))
        }
        if case .apart = e, !apart {
          result.failures.append(
            "\(place): expected different profiles; got "
              + zip(refs, found).map { name($0, $1) }.joined(separator: ", "))
        }
      case .trait(let ref, let trait, let expected):
        guard let p = try await resolve(ref) else {
          result.failures.append("\(place): \(ref) is no profile")
          continue
        }
        let declared = await recording.traits(of: p).first { $0.trait == trait }
        let computed = await recording.computed(of: p).first { $0.trait == trait }?.value
        let actual = declared?.value ?? computed ?? .null
        if !Value.equal(actual, expected) {
          let from = declared.map { " (from \($0.source), event \($0.eventID))" } ?? ""
          result.failures.append(
            "\(place): \(ref) \(trait)\n    expected: \(expected.plainText)\n    actual:   \(actual.isNull ? "∅" : actual.plainText)\(from)"
          )
        }
      case .segment(let ref, let segment, let member):
        guard let p = try await resolve(ref) else {
          result.failures.append("\(place): \(ref) is no profile")
          continue
        }
        let segments = await recording.memberships(of: p).map(\.segment)
        if segments.contains(segment) != member {
          result.failures.append(
            "\(place): expected \(ref) \(member ? "in" : "not in") `\(segment)`; its segments: "
              + (segments.isEmpty ? "none" : segments.joined(separator: ", ")))
        }
      case .payload(let destination, let ref, let contains):
        var p: ProfileID?
        if let ref { p = try await resolve(ref) }
        let candidates = report.payloads.filter { $0.destination == destination && (ref == nil || $0.profile == p) }
        let hit = candidates.contains { payload in
          contains.allSatisfy { k, v in payload.body[k].map { Value.equal($0, v) } ?? false }
        }
        if !hit {
          result.failures.append(
            "\(place): no payload to `\(destination)`\(ref.map { " for \($0)" } ?? "") contains "
              + JSON.encode(.map(contains)) + "\n    payloads: "
              + (candidates.isEmpty
                ? "none" : candidates.map { JSON.encode(.map($0.body)) }.joined(separator: "\n              ")))
        }
      case .noPayload(let destination, let ref):
        let p = try await resolve(ref)
        let sent = report.payloads.filter { $0.destination == destination && $0.profile == p }
        if !sent.isEmpty {
          result.failures.append(
            "\(place): expected nothing sent to `\(destination)` about \(ref); it would receive "
              + sent.map { JSON.encode(.map($0.body)) }.joined(separator: ", "))
        }
      case .rejected(let source, let text):
        let hit = report.rejected.contains { ($0.source == source || source == nil) && $0.reason.contains(text) }
        if !hit {
          result.failures.append(
            "\(place): no record rejected with a reason containing \"\(text)\"; rejected: "
              + (report.rejected.isEmpty
                ? "none" : report.rejected.map { "\($0.source): \($0.reason)" }.joined(separator: "; ")))
        }
      case .report(let name, let unit, let figures):
        let query = try ReportQuery(config: config, name: name, units: [unit])
        let measured = try await Measurement.report(query, config: config, store: recording, workers: 1)
        for (figure, expected) in figures {
          let actual = measured.figure(figure, by: unit)
          guard let actual, abs(actual - expected) < 1e-9 else {
            result.failures.append(
              "\(place): report `\(name)` by \(unit.rawValue), \(figure)\n    expected: \(Value.double(expected).plainText)"
                + "\n    actual:   \(actual.map { Value.double($0).plainText } ?? "no such figure")")
            continue
          }
        }
      case .match(let ref, let status):
        guard case .record(let source, let n) = ref, let ids = eventIDs[source], n <= ids.count, let id = ids[n - 1]
        else {
          result.failures.append("\(place): \(ref) produced no event")
          continue
        }
        let links = report.links.filter { $0.eventID == id }.map(\.status.rawValue)
        if !links.contains(status) {
          result.failures.append(
            "\(place): expected \(ref) to be `\(status)` by a probabilistic rule; got "
              + (links.isEmpty ? "no probabilistic decision" : links.joined(separator: ", ")))
        }
      }
    }
    return result
  }

  /// Records as CSV with a header of every field, in order of first appearance.
  static func csv(_ records: [Value], delimiter: Character) -> String {
    var header: [String] = []
    for r in records {
      if case .map(let m) = r { for k in m.keys.sorted() where !header.contains(k) { header.append(k) } }
    }
    func cell(_ v: Value?) -> String {
      guard let v, !v.isNull else { return "" }
      let s = v.plainText
      return s.contains(delimiter) || s.contains("\"") || s.contains("\n")
        ? "\"" + s.replacingOccurrences(of: "\"", with: "\"\"") + "\"" : s
    }
    var out = header.joined(separator: String(delimiter)) + "\n"
    for r in records {
      guard case .map(let m) = r else { continue }
      out += header.map { cell(m[$0]) }.joined(separator: String(delimiter)) + "\n"
    }
    return out
  }
}

/// Gathers raw batches a reader emits.
actor BatchCollector {
  var batches: [RawBatch] = []
  func add(_ b: RawBatch) { batches.append(b) }
}
