import Foundation
import TesseraCompiler
import TesseraLanguage
import TesseraModel

/// The compiler under hostile configuration: `YAMLInputs` compiled from memory (the source files the
/// pipeline reads are the real ones). Every compilation must end with diagnostics inside the files they name
/// and render without trapping, give no plan when there are errors, and finish in bounded time.
public enum YAMLFuzz {
  /// Compiles inputs `first ..< first + count` of `seed`.
  public static func run(seed: UInt64, first: Int, count: Int, root: String) throws -> FuzzReport {
    let inputs = try YAMLInputs(root: root)
    var report = FuzzReport(target: "yaml", seed: seed, first: first)
    var slowest = (seconds: 0.0, index: first)
    let started = ContinuousClock.now
    for index in first..<(first + count) {
      var m = Mutator.forInput(index, seed: seed)
      let files = inputs.next(&m)
      // The bound is on the compiler's work, the CPU time of this thread: wall time also counts the time a busy
      // machine did not run it (a 0.2 s compilation measured 28 s at load 15 under `nice`).
      let t0 = threadCPUSeconds()
      let result = Compiler(environment: ["HOME": "/home/fuzz"], readFile: { files[$0] })
        .compile(pipeline: inputs.pipeline)
      let rendered = result.rendered()
      let seconds = threadCPUSeconds() - t0
      if seconds > slowest.seconds { slowest = (seconds, index) }
      report.inputs += 1
      if let problem = Self.problem(result, files: files, rendered: rendered) {
        report.fail(index, problem)
      }
      if seconds > 5 { report.fail(index, "compiling took \(String(format: "%.1f", seconds)) s of CPU") }
      report.count(result.plan != nil ? "compiled" : result.hasErrors ? "errors" : "no plan, no error")
    }
    let elapsed = ContinuousClock.now - started
    report.seconds = Double(elapsed.components.seconds) + Double(elapsed.components.attoseconds) / 1e18
    report.notes.append(
      String(format: "slowest compilation %.3f s of CPU (input %d)", slowest.seconds, slowest.index))
    return report
  }

  /// The CPU time the calling thread has used, in seconds.
  static func threadCPUSeconds() -> Double {
    var t = timespec()
    clock_gettime(CLOCK_THREAD_CPUTIME_ID, &t)
    return Double(t.tv_sec) + Double(t.tv_nsec) / 1e9
  }

  /// What is wrong with a compilation's result, if anything.
  static func problem(_ result: CompileResult, files: [String: String], rendered: String) -> String? {
    if result.hasErrors != (result.plan == nil) {
      return result.hasErrors ? "a plan despite errors" : "no plan and no error:\n\(rendered.prefix(500))"
    }
    if result.hasErrors && rendered.isEmpty { return "errors that render as nothing" }
    for d in result.diagnostics {
      let lines: Int
      if let source = result.sources[d.location.file] {
        lines = source.lines.count
      } else if let text = files[d.location.file] {
        lines = SourceFile(path: d.location.file, text: text).lines.count
      } else {
        // Diagnostics about a source's data file (a CSV header) name that file, which is on disk.
        if FileManager.default.fileExists(atPath: d.location.file) { continue }
        return "a diagnostic in a file that was never read: \(d)"
      }
      if d.location.line < 1 || d.location.line > lines + 1 || d.location.column < 1 || d.message.isEmpty {
        return "a diagnostic outside its file (\(lines) lines): \(d)"
      }
    }
    return nil
  }
}

/// The record formats' own readers, without a pipeline around them: `JSON.parse` and `JSON.parseObject` on
/// mutated tracking messages and orders (a value that parses must encode and parse back to itself), and
/// `RecordSplitter` and `CSV.fields` on mutated CSV, fed in random chunks (the records must not depend on
/// where the chunks end).
public enum FormatFuzz {
  public static func run(seed: UInt64, first: Int, count: Int, root: String) throws -> FuzzReport {
    let tracking = try TrackingInputs(fixtures: root + "/Tests/Fixtures/sdk", writeKey: "k")
    let records = try RecordInputs(examples: root + "/examples")
    let docs = tracking.messages.map(\.doc) + tracking.bodies + records.orders + records.messages
    var report = FuzzReport(target: "formats", seed: seed, first: first)
    let started = ContinuousClock.now
    for index in first..<(first + count) {
      var m = Mutator.forInput(index, seed: seed)
      report.inputs += 1
      if m.chance(50) {
        var bytes = m.mutate(m.pick(docs)).bytes
        if m.chance(30) { bytes = m.mutateBytes(bytes) }
        let parsed = bytes.withUnsafeBufferPointer { b in Result { () throws(JSON.ParseError) in try JSON.parse(b) } }
        _ = bytes.withUnsafeBufferPointer { b in
          try? JSON.parseObject(b, keeping: [Array("type".utf8), Array("order".utf8)])
        }
        switch parsed {
        case .success(let v):
          report.count("json parsed")
          let again = try? JSON.parse(JSON.encode(v))
          if again != v {
            report.fail(index, "parses, but its encoding reads back differently: \(JSON.encode(v).prefix(200))")
          }
        case .failure(let e):
          report.count("json refused")
          if e.offset < 0 || e.offset > bytes.count { report.fail(index, "an error outside the input: \(e)") }
        }
      } else {
        let file = records.csvFile(&m, records: 1 + m.int(20))
        var whole = RecordSplitter(csv: true)
        let once = whole.feed(file, final: true)
        var pieces = RecordSplitter(csv: true)
        var chunked: [RecordSplitter.Record] = []
        var at = 0
        while at < file.count {
          let n = 1 + m.int(64)
          chunked += pieces.feed(Array(file[at..<min(file.count, at + n)]), final: false)
          at += n
        }
        chunked += pieces.feed([], final: true)
        if once.map(\.line) != chunked.map(\.line) || !zip(once, chunked).allSatisfy({ $0.bytes == $1.bytes }) {
          report.fail(index, "records depend on chunking: \(once.count) whole, \(chunked.count) in chunks")
        }
        for r in once { _ = r.bytes.withUnsafeBufferPointer { CSV.fields($0, delimiter: 0x2C) } }
        report.count("csv records", once.count)
      }
    }
    let elapsed = ContinuousClock.now - started
    report.seconds = Double(elapsed.components.seconds) + Double(elapsed.components.attoseconds) / 1e18
    return report
  }
}
