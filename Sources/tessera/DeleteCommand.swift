import ArgumentParser
import Foundation
import TesseraModel
import TesseraRuntime
import TesseraSQLite
import TesseraStore

struct DeleteCommand: AsyncParsableCommand {
  static let configuration = CommandConfiguration(
    commandName: "delete",
    abstract:
      "Erase a person: their profile and everything recorded about them; later events with their identifiers are dropped.",
    discussion: """
      Removes the live profile the identifier belongs to and every profile merged into it: events, \
      identifiers, traits, computed traits, segment memberships and the log of their segment changes, merges, \
      conflicts, probabilistic match links, and rejected records that contain one of their identifier values. \
      Their identifiers are added to the suppression list as SHA-256 hashes only, so events that carry them \
      later are dropped at the door and counted (`suppressed` in the run summary). Safe while `tessera serve` \
      runs on the same store.
      """)

  @Argument(help: "The person: `kind:value` (e.g. email:ada@example.com) or a profile id.")
  var identifier: String

  @OptionGroup var storeOption: StoreOption
  var store: String { storeOption.spec }

  @Option(help: "The pipeline, to normalize the identifier as its kind declares.")
  var pipeline: String?

  func run() async throws {
    // Any process may erase: a running `tessera serve` (or several, on PostgreSQL) learns of it from the store's
    // epoch and reads its state again before its next commit.
    let db = try await StoreLocation.open(store, mustExist: true)
    guard let profile = try await ProfileCommand.resolve(identifier, in: db, pipeline: pipeline) else {
      throw ValidationError("no profile for `\(identifier)` in \(store)")
    }
    // Destinations that declare a deletion endpoint (and tables) are told, in the same transaction.
    let config = try pipeline.map { try PipelineOptions.compile($0).config }
    let outcome = try await Deletion.erase(profile, in: db, config: config, at: Timestamp(Date()))
    let report = outcome.report
    print("erased \(profile) and \(report.profiles - 1) profile\(report.profiles == 2 ? "" : "s") merged into it")
    let rows: [(String, Int)] = [
      ("events", report.events), ("identifiers", report.identifiers), ("traits", report.traits),
      ("computed traits", report.computed), ("memberships", report.memberships),
      ("segment changes", report.segmentChanges), ("merges", report.merges), ("conflicts", report.conflicts),
      ("match links", report.matchLinks), ("rejected records", report.rejected),
    ]
    for (name, n) in rows { print("  \(name.padding(toLength: 17, withPad: " ", startingAt: 0)) \(n)") }
    print("  \(outcome.suppressed) identifier\(outcome.suppressed == 1 ? "" : "s") suppressed (hashes only)")
    print("  pending deliveries \(report.deliveries)")
    if pipeline == nil {
      print("  no --pipeline: no deletion notices queued for destinations")
    } else {
      print("  deletion notices   \(outcome.notices) queued (tessera deliver)")
    }
  }
}
