import ArgumentParser
import Foundation
import TesseraCompiler
import TesseraWarehouse

struct SyncCommand: AsyncParsableCommand {
  static let configuration = CommandConfiguration(
    commandName: "sync",
    abstract: "Bring the pipeline's `sync:` tables in PostgreSQL up to date with the store.",
    discussion: """
      For each `sync:` declaration (or the one named with --only), writes the store's profiles and their \
      traits, identifiers, absorbed profile ids, segment memberships, the merge log and the events into tables \
      of its PostgreSQL schema, in one transaction: rows that changed are upserted, rows the store no longer \
      has (merged away, unmerged, erased) are deleted, so the tables always equal a fresh sync. Run it after \
      `tessera run`, or from cron while `tessera serve` runs. The tables are listed in docs/LANGUAGE.md.

      Exit status: 0 on success, 1 on configuration errors, 2 when the warehouse cannot be written.
      """)

  @Argument(help: "The pipeline file (e.g. pipelines/retail.yaml).")
  var pipeline: String

  @OptionGroup var storeOption: StoreOption

  @Option(help: "Run only this sync.")
  var only: String?

  func run() async throws {
    let plan = try PipelineOptions.compile(pipeline)
    var syncs = plan.config.syncs
    if let only {
      syncs = syncs.filter { $0.name == only }
      if syncs.isEmpty {
        let names = plan.config.syncs.map(\.name).joined(separator: ", ")
        throw ValidationError("no sync `\(only)` in \(pipeline)" + (names.isEmpty ? "" : " (syncs: \(names))"))
      }
    }
    guard !syncs.isEmpty else {
      throw ValidationError("\(pipeline) declares no `sync:`; see docs/LANGUAGE.md, \"Profile sync\"")
    }
    let store = try await StoreLocation.open(storeOption.spec)
    for s in syncs {
      do {
        let report = try await ProfileSync(sync: s, config: plan.config, store: store).run()
        print(
          "sync \(s.name) → schema \(s.schema): \(report.rows) rows, \(report.rowsWritten) written, "
            + "\(report.tables.reduce(0) { $0 + $1.deleted }) deleted in \(String(format: "%.2f", report.seconds)) s "
            + "(\(Int(Double(report.rowsWritten) / max(report.seconds, 1e-9))) rows written/s)")
        for t in report.tables {
          print(
            "  \(t.table.padding(toLength: 20, withPad: " ", startingAt: 0)) \(t.rows) rows · \(t.written) written · \(t.deleted) deleted"
          )
        }
      } catch let e as ProfileSync.Failure {
        FileHandle.standardError.write(Data("error: \(e)\n".utf8))
        throw ExitCode(2)
      }
    }
  }
}
