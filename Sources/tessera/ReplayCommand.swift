import ArgumentParser
import Foundation
import TesseraCompiler
import TesseraModel
import TesseraRuntime
import TesseraSQLite
import TesseraStore

struct ReplayCommand: AsyncParsableCommand {
  static let configuration = CommandConfiguration(
    commandName: "replay",
    abstract: "Re-resolve a store's event log under the current configuration and report what would change.",
    discussion: """
      Every stored event is resolved again, in the order it was stored, by the pipeline's current identity \
      rules, precedence policies, computed traits and segments, into a throwaway store; the result is compared \
      with the store: profiles that would merge or split, traits and segment memberships that would change. \
      The event log holds mapped events, so a change of a source's mapping needs its files read again.

      Without --dry-run the differences are applied in one transaction: profiles keep their ids (a group \
      that merges keeps the id holding most of its events and the others become its aliases; the larger part \
      of a split keeps the id, the rest get new ones), and every merge and split is recorded in the merge and \
      conflict logs. Run --dry-run first.
      """)

  @Argument(help: "The pipeline file.")
  var pipeline: String

  @Option(help: "The SQLite store file.")
  var store: String = "tessera.sqlite"

  @Flag(help: "Report the differences without changing the store (a byte copy is read).")
  var dryRun = false

  @Option(name: .customLong("set"), parsing: .singleValue, help: "PATH=VALUE: override a scalar of the configuration.")
  var sets: [String] = []

  @Option(help: "The time segments and windows are evaluated at, ISO 8601 (default: now).")
  var now: String?

  @Option(help: "text or json.")
  var format: OutputFormat = .text

  func run() async throws {
    let plan = try PipelineOptions.compile(pipeline, sets: sets)
    let at = try PipelineOptions.now(now) ?? Timestamp(Date())
    if !dryRun {
      let report = try await ReplayReport.apply(
        plan: plan, store: try SegmentsCommand.open(store), now: at,
        workers: ProcessInfo.processInfo.activeProcessorCount)
      switch format {
      case .text: print(report.text + (report.isEmpty ? "nothing to apply\n" : "applied to \(store)\n"), terminator: "")
      case .json: print(JSON.encode(report.json))
      }
      return
    }
    // Opening a SQLite file writes to it (WAL checkpoints), so the comparison reads a byte copy.
    let temp = FileManager.default.temporaryDirectory.appendingPathComponent("tessera-replay-\(UUID().uuidString)")
    try FileManager.default.createDirectory(at: temp, withIntermediateDirectories: true)
    defer { try? FileManager.default.removeItem(at: temp) }
    let db = try SQLiteStore(path: try DryRunCommand.copy(store: store, into: temp.path))
    let report = try await ReplayReport.compare(
      plan: plan, store: db, now: at, workers: ProcessInfo.processInfo.activeProcessorCount)
    switch format {
    case .text: print(report.text, terminator: "")
    case .json: print(JSON.encode(report.json))
    }
  }
}
