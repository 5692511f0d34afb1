import Foundation
import Synchronization
import TesseraCompiler
import TesseraConnectors
import TesseraModel
import TesseraRuntime
import TesseraStore

/// The CSV and NDJSON readers under hostile input: the example pipeline (`pipelines/retail.yaml`) run by
/// `PipelineRunner` over `RecordInputs` files in place of its `crm`, `pos` and `web_history` files, read in
/// small chunks so records straddle chunk ends. Every record the files hold must be stored (or be a
/// duplicate) or rejected with `file:line: reason`, and the counts must agree with the store.
public enum FileFuzz {
  /// The time the example data is evaluated at (examples/README.md): 2026-06-30T00:00:00Z.
  static let now = Timestamp(microseconds: 1_782_777_600_000_000)

  /// Runs files `first ..< first + count` of `seed`, each of `records` records per source, in `dir`.
  /// An input is one record; the report counts records.
  public static func run(
    seed: UInt64, first: Int, count: Int, records: Int, root: String, dir: String
  ) async throws -> FuzzReport {
    let inputs = try RecordInputs(examples: root + "/examples")
    let compiled = Compiler(environment: [:]).compile(pipeline: root + "/pipelines/retail.yaml")
    guard let plan = compiled.plan else { throw FuzzSetupError(description: compiled.rendered()) }
    try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
    var report = FuzzReport(target: "files", seed: seed, first: first)
    let started = ContinuousClock.now
    for index in first..<(first + count) {
      var m = Mutator.forInput(index, seed: seed)
      var readers: [Int: any SourceReader] = [:]
      var expected: [String: Set<Int>] = [:]
      for (i, decl) in plan.config.sources.enumerated() where decl.kind == .csv || decl.kind == .ndjson {
        let csv = decl.kind == .csv
        let bytes = csv ? inputs.csvFile(&m, records: records) : inputs.ndjsonFile(&m, records: records)
        let path = "\(dir)/\(decl.name)-\(index).\(csv ? "csv" : "ndjson")"
        try Data(bytes).write(to: URL(fileURLWithPath: path))
        expected[path] = Self.recordLines(bytes, csv: csv, delimiter: decl.delimiter.asciiValue ?? 0x2C)
        var d = decl
        d.path = path
        readers[i] = FileSourceReader(source: d, batchSize: 1 + m.int(300), chunkSize: 1024 << m.int(7))
      }
      let rejected = Mutex<[RejectedRecord]>([])
      let store: any Store = MemoryStore()
      var runner = PipelineRunner(plan: plan, store: store, readers: readers, workers: 2, now: Self.now)
      runner.onRejected = { records in rejected.withLock { $0 += records } }
      let summary: RunSummary
      do {
        summary = try await runner.run()
      } catch {
        report.fail(index, "the run failed: \(error)")
        continue
      }
      let total = expected.values.map(\.count).reduce(0, +)
      report.inputs += total
      let s = summary.stats
      report.count("records stored", s.events)
      report.count("records duplicate", s.duplicates)
      report.count("records rejected", s.rejected)
      if summary.recordsRead != total {
        report.fail(index, "the files hold \(total) records; the run read \(summary.recordsRead)")
      }
      if s.events + s.duplicates + s.rejected + s.suppressed != summary.recordsRead {
        report.fail(
          index,
          "\(summary.recordsRead) records read, but \(s.events) stored + \(s.duplicates) duplicates + "
            + "\(s.rejected) rejected + \(s.suppressed) suppressed")
      }
      let stats = try await store.stats()
      if stats.events != s.events { report.fail(index, "\(s.events) events stored, the store holds \(stats.events)") }
      let kept = rejected.withLock { $0 }
      if kept.count != s.rejected { report.fail(index, "\(s.rejected) rejected, \(kept.count) reported") }
      for r in kept {
        // `FILE:LINE: reason`, the line one where a record of that file starts.
        let file = expected.keys.first { r.reason.hasPrefix($0 + ":") }
        let rest = file.map { r.reason.dropFirst($0.count + 1) } ?? ""
        let line = Int(rest.prefix { $0.isNumber })
        guard let file, let line, let lines = expected[file], lines.contains(line), r.line == line,
          rest.dropFirst(String(line).count).hasPrefix(": "), rest.count > String(line).count + 2
        else {
          report.fail(index, "a rejection without its file, line and reason: \(r.reason.prefix(200))")
          continue
        }
      }
      for path in expected.keys { try? FileManager.default.removeItem(atPath: path) }
    }
    let elapsed = ContinuousClock.now - started
    report.seconds = Double(elapsed.components.seconds) + Double(elapsed.components.attoseconds) / 1e18
    report.notes.append("\(count) runs of 3 files (\(records) records each)")
    return report
  }

  /// The lines records start on, as the file source reads the file (a byte order mark dropped, a CSV
  /// file's header not a record), cut in one piece rather than in chunks.
  static func recordLines(_ bytes: [UInt8], csv: Bool, delimiter: UInt8) -> Set<Int> {
    var b = bytes
    if b.starts(with: [0xEF, 0xBB, 0xBF]) { b.removeFirst(3) }
    var splitter = RecordSplitter(csv: csv, delimiter: delimiter)
    let records = splitter.feed(b, final: true)
    return Set((csv ? records.dropFirst() : records[...]).map(\.line))
  }
}
