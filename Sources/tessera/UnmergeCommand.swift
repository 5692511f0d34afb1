import ArgumentParser
import Foundation
import TesseraCompiler
import TesseraModel
import TesseraRuntime
import TesseraSQLite
import TesseraStore

struct UnmergeCommand: AsyncParsableCommand {
  static let configuration = CommandConfiguration(
    commandName: "unmerge",
    abstract: "Undo one recorded merge: the events are re-attributed as if the link had never formed.",
    discussion: """
      MERGE is the absorbed profile of the merge, as `tessera profile` lists it (`prf_32 → prf_13`: \
      --merge prf_32). A deterministic merge is undone by separating the two identifiers that linked the \
      profiles: they never merge the two again, but other shared identifiers (new evidence) still do. A \
      merge a reviewer confirmed is undone by rejecting its link. The store is then re-resolved under the \
      pipeline (as `tessera replay`): both profiles come back with their own events, traits, computed traits \
      and segments, the survivor keeping its id and the other getting its old one back where it can.
      """)

  @Argument(help: "The profile that holds the merge (its id, or `kind:value`).")
  var profile: String

  @Option(help: "The absorbed profile of the merge to undo.")
  var merge: String

  @Option(help: "The pipeline whose rules re-resolve the events.")
  var pipeline: String

  @Option(help: "The SQLite store file.")
  var store: String = "tessera.sqlite"

  @Option(help: "The time segments and windows are evaluated at, ISO 8601 (default: now).")
  var now: String?

  func run() async throws {
    let plan = try PipelineOptions.compile(pipeline)
    let at = try PipelineOptions.now(now) ?? Timestamp(Date())
    let db = try SegmentsCommand.open(store)
    guard let live = try await ProfileCommand.resolve(profile, in: db, pipeline: pipeline) else {
      throw ValidationError("no profile `\(profile)` in \(store)")
    }
    guard let absorbed = ProfileID(parsing: merge) else {
      throw ValidationError("--merge takes a profile id like prf_32")
    }
    let undone: Stewardship.Unmerged
    do {
      undone = try await Stewardship.unmerge(
        live, absorbed: absorbed, plan: plan, store: db, now: at,
        workers: ProcessInfo.processInfo.activeProcessorCount)
    } catch let refusal as Stewardship.Refusal {
      throw ValidationError(refusal.description)
    }
    let m = undone.merge
    print(
      "unmerged \(m.absorbed) from \(m.survivor)"
        + (undone.separated.map { " (\($0.0) and \($0.1) no longer link them)" } ?? " (the confirmed link is rejected)")
    )
    print(undone.report.text, terminator: "")
  }
}
