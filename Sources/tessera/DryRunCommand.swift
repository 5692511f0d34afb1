import ArgumentParser
import Foundation
import TesseraCompiler
import TesseraConnectors
import TesseraMeasurement
import TesseraModel
import TesseraRuntime
import TesseraSQLite
import TesseraStore

struct DryRunCommand: AsyncParsableCommand {
  static let configuration = CommandConfiguration(
    commandName: "dry-run",
    abstract: "Run a pipeline over sample records and report what it would do, writing and sending nothing.",
    discussion: """
      The compiled pipeline runs over the samples into a throwaway store: an empty in-memory one, or with \
      --against a copy of a real SQLite store (the original is only copied, never opened). The report lists \
      the profiles created, merges with their rule and probability, probabilistic joins and candidate links, \
      conflicts refused by limits, trait changes with the winning policy, segment enters and exits, the \
      payloads each destination would have received, and rejected records with their reasons.

      --set overrides any scalar of the configuration by its dotted path, e.g. \
      --set rules.person.thresholds.merge=0.95, so a change can be tried without editing files.

      Exit status: 0; 1 on configuration errors; 3 with --strict when a record was rejected.
      """)

  @Argument(help: "The pipeline file.")
  var pipeline: String

  @Option(
    name: .customLong("sample"), parsing: .upToNextOption,
    help: "Sample files, as SOURCE=FILE or FILE (the source is inferred from the file's name and kind).")
  var samples: [String] = []

  @Option(help: "Start from a copy of this SQLite store's state.")
  var against: String?

  @Option(name: .customLong("set"), parsing: .singleValue, help: "PATH=VALUE: override a scalar of the configuration.")
  var sets: [String] = []

  @Option(help: "text or json.")
  var format: OutputFormat = .text

  @Flag(help: "Exit with status 3 when any sample record is rejected.")
  var strict = false

  @Option(help: "The time segments and windows are evaluated at, ISO 8601 (default: now).")
  var now: String?

  @Option(
    name: .customLong("report"), parsing: .singleValue,
    help: "A funnel or attribution report of `measurement` to compute over the samples (and --against's log).")
  var reports: [String] = []

  func run() async throws {
    guard !samples.isEmpty else { throw ValidationError("give at least one --sample FILE (or SOURCE=FILE)") }
    let plan = try PipelineOptions.compile(pipeline, sets: sets)
    let readers = try Self.readers(for: samples, config: plan.config)
    let temp = FileManager.default.temporaryDirectory.appendingPathComponent("tessera-dry-run-\(UUID().uuidString)")
    try FileManager.default.createDirectory(at: temp, withIntermediateDirectories: true)
    defer { try? FileManager.default.removeItem(at: temp) }
    let base: any Store
    if let against {
      // Checked where it is, so a refusal names the file given rather than the copy.
      do { try SQLiteStore.check(against) } catch var wrong as NotATesseraStore {
        wrong.hint = "give --against the path of a Tessera store"
        throw wrong
      }
      base = try SQLiteStore(path: try Self.copy(store: against, into: temp.path))
    } else {
      base = MemoryStore()
    }
    let before = against == nil ? [] : try await base.loadTraits()
    let computedBefore = against == nil ? [] : try await base.loadComputed()
    var runner = PipelineRunner(plan: plan, store: base, readers: readers)
    if let t = try PipelineOptions.now(now) { runner.now = t }
    var queries: [ReportQuery] = []
    for name in reports {
      do {
        queries.append(try ReportQuery(config: plan.config, name: name, units: [.people, .devices]))
      } catch let e as UnknownReport {
        throw ValidationError("--report: \(e)")
      }
    }
    let (summary, batches) = try await runner.recorded()
    let report = DryRunReport.build(
      config: plan.config, summary: summary, batches: batches, before: before, computedBefore: computedBefore)
    var measured: [MeasurementReport] = []
    for q in queries { measured.append(try await Measurement.report(q, config: plan.config, store: base)) }
    switch format {
    case .text:
      if !sets.isEmpty { print("with " + sets.map { "--set \($0)" }.joined(separator: " ")) }
      print(report.text, terminator: "")
      for m in measured { print("\n" + m.text, terminator: "") }
    case .json:
      var json = report.json
      if !measured.isEmpty, case .map(var fields) = json {
        fields["reports"] = .list(measured.map(\.json))
        json = .map(fields)
      }
      print(JSON.encode(json))
    }
    if strict && !report.rejected.isEmpty { throw ExitCode(3) }
  }

  /// Readers for the sample files, each for the source it belongs to.
  static func readers(for samples: [String], config: PipelineConfig) throws -> [Int: any SourceReader] {
    var files: [Int: [String]] = [:]
    let cwd = FileManager.default.currentDirectoryPath
    for sample in samples {
      var name: String?
      var path = sample
      if let eq = sample.firstIndex(of: "="), config.source(String(sample[..<eq])) != nil {
        name = String(sample[..<eq])
        path = String(sample[sample.index(after: eq)...])
      }
      let absolute = path.hasPrefix("/") ? path : cwd + "/" + path
      guard FileManager.default.fileExists(atPath: absolute) else {
        throw ValidationError("no sample file `\(path)`")
      }
      let index: Int
      if let name, let i = config.sources.firstIndex(where: { $0.name == name }) {
        index = i
      } else {
        index = try infer(path, config: config)
      }
      files[index, default: []].append(Paths.normalize(absolute))
    }
    var readers: [Int: any SourceReader] = [:]
    for (index, paths) in files {
      readers[index] = MultiFileReader(source: config.sources[index], files: paths)
    }
    return readers
  }

  /// The source a sample file belongs to: the one whose path pattern matches its name, else the only source
  /// that reads its kind of file.
  static func infer(_ path: String, config: PipelineConfig) throws -> Int {
    let base = (path as NSString).lastPathComponent
    let csv = base.lowercased().hasSuffix(".csv")
    let kinds: [SourceKind] = csv ? [.csv] : [.ndjson, .http, .postgres]
    let fitting = config.sources.indices.filter { kinds.contains(config.sources[$0].kind) }
    let byName = fitting.filter { i in
      guard let p = config.sources[i].path else { return false }
      return fnmatch((p as NSString).lastPathComponent, base, 0) == 0
    }
    if byName.count == 1, let i = byName.first { return i }
    if fitting.count == 1, let i = fitting.first { return i }
    let list = config.sources.map { "\($0.name) (\($0.kind.rawValue))" }.joined(separator: ", ")
    throw ValidationError("cannot tell which source `\(path)` is for; write --sample SOURCE=\(path) (sources: \(list))")
  }

  /// Copies a SQLite store (and its WAL) into `dir`; the original is read as bytes, never opened.
  static func copy(store: String, into dir: String) throws -> String {
    guard FileManager.default.fileExists(atPath: store) else { throw ValidationError("no store at `\(store)`") }
    let target = dir + "/store.sqlite"
    try FileManager.default.copyItem(atPath: store, toPath: target)
    for suffix in ["-wal", "-shm"] where FileManager.default.fileExists(atPath: store + suffix) {
      try FileManager.default.copyItem(atPath: store + suffix, toPath: target + suffix)
    }
    return target
  }
}

/// Reads given files as one source declares them (its kind, delimiter and mapping), whatever its `path` says.
struct MultiFileReader: SourceReader {
  var source: SourceDecl
  var files: [String]

  func read(source index: Int, emit: @Sendable (RawBatch) async throws -> Void) async throws {
    for file in files {
      var decl = source
      decl.path = file
      if decl.kind == .http || decl.kind == .postgres { decl.kind = .ndjson }
      try await FileSourceReader(source: decl).read(source: index, emit: emit)
    }
  }
}
