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
  var merge: String?

  @Option(
    help:
      "Instead of --merge: the id of a probabilistic link to undo (a device link that joined an event to the profile, as `tessera review list --status all` lists it)."
  )
  var link: Int64?

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
    if let link {
      try await undo(link: link, of: live, plan: plan, db: db, at: at)
      return
    }
    guard let merge, let absorbed = ProfileID(parsing: merge) else {
      throw ValidationError("--merge takes a profile id like prf_32 (or give --link ID)")
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

  /// Rejects a probabilistic link of the profile (joined, confirmed or merged): a replay then neither joins its
  /// event to another profile nor merges the pair again, and the store is re-resolved.
  func undo(link id: Int64, of live: ProfileID, plan: PipelinePlan, db: SQLiteStore, at: Timestamp) async throws {
    let links = try await db.matchLinks(status: nil, limit: .max)
    guard let l = links.first(where: { $0.id == id }) else { throw ValidationError("no match link \(id) in \(store)") }
    let ends = Set([try await db.canonical(l.profile) ?? l.profile, try await db.canonical(l.candidate) ?? l.candidate])
    guard ends.contains(live) else {
      throw ValidationError("link \(id) joins \(l.profile) and \(l.candidate), not \(live)")
    }
    guard [.joined, .confirmed, .merged].contains(l.status) else {
      throw ValidationError("link \(id) is \(l.status.rawValue): only a joined or merged link can be undone")
    }
    var batch = CommitBatch()
    batch.linkStatus = [LinkStatusChange(id, to: .rejected)]
    try await db.commit(batch)
    let report = try await ReplayReport.apply(
      plan: plan, store: db, now: at, workers: ProcessInfo.processInfo.activeProcessorCount)
    print("undid link \(id) (rule \(l.rule), event \(l.eventID)): it is rejected and links nothing again")
    print(report.text, terminator: "")
  }
}
