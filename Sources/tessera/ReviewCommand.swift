import ArgumentParser
import Foundation
import TesseraCompiler
import TesseraModel
import TesseraRuntime
import TesseraSQLite
import TesseraStore

struct ReviewCommand: AsyncParsableCommand {
  static let configuration = CommandConfiguration(
    commandName: "review",
    abstract: "List candidate links a probabilistic rule left for a person, and confirm or reject them.",
    discussion: """
      A run scores events whose identifiers reach no profile against the profiles their blocking keys reach. \
      At or above a rule's `merge` threshold the event joins the best profile; between `review` and `merge` \
      it starts its own profile and a candidate link is stored here. Confirmed links merge at the next \
      `tessera run` (or at once with --pipeline); rejected pairs are never proposed again.
      """,
    subcommands: [ReviewList.self, ReviewDecide.Confirm.self, ReviewDecide.Reject.self],
    defaultSubcommand: ReviewList.self)
}

struct ReviewList: AsyncParsableCommand {
  static let configuration = CommandConfiguration(
    commandName: "list", abstract: "List candidate links (the default), or every logged decision with --status all.")

  @Option(help: "The SQLite store file.")
  var store: String = "tessera.sqlite"

  @Option(help: "review, joined, refused, confirmed, rejected, merged or all.")
  var status: String = "review"

  @Option(help: "text or json.")
  var format: OutputFormat = .text

  @Option(help: "At most this many links.")
  var limit: Int = 1000

  func run() async throws {
    let db = try SegmentsCommand.open(store)
    var wanted: MatchLinkRecord.Status?
    if status != "all" {
      guard let s = MatchLinkRecord.Status(rawValue: status) else {
        throw ValidationError(
          "unknown status `\(status)`; use all, \(MatchLinkRecord.Status.allCases.map(\.rawValue).joined(separator: ", "))"
        )
      }
      wanted = s
    }
    let links = try await db.matchLinks(status: wanted, limit: limit)
    switch format {
    case .json:
      let list: [Value] = links.map { l in
        .map([
          "id": .int(l.id), "rule": .string(l.rule), "profile": .string(l.profile.description),
          "candidate": .string(l.candidate.description), "event_id": .string(l.eventID),
          "probability": .double(l.probability), "match_weight": .double(l.weight),
          "status": .string(l.status.rawValue),
          "reason": .string(l.reason), "at": .string(l.at.iso8601),
        ])
      }
      print(JSON.encode(.list(list)))
    case .text:
      if links.isEmpty {
        print(wanted == .review ? "no candidate links to review" : "no match links")
        return
      }
      print("id    rule      profile     candidate   probability  status     event")
      for l in links {
        let line = [
          String(l.id).padding(toLength: 5, withPad: " ", startingAt: 0),
          l.rule.padding(toLength: 9, withPad: " ", startingAt: 0),
          l.profile.description.padding(toLength: 11, withPad: " ", startingAt: 0),
          l.candidate.description.padding(toLength: 11, withPad: " ", startingAt: 0),
          String(format: "%.6f", l.probability).padding(toLength: 12, withPad: " ", startingAt: 0),
          l.status.rawValue.padding(toLength: 10, withPad: " ", startingAt: 0), l.eventID,
        ]
        print(line.joined(separator: " ") + (l.reason.isEmpty ? "" : "  (\(l.reason))"))
      }
      if wanted == .review {
        print(
          "confirm: tessera review confirm ID… --store \(store)   reject: tessera review reject ID… --store \(store)")
      }
    }
  }
}

enum ReviewDecide {
  struct Confirm: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
      commandName: "confirm",
      abstract: "Confirm candidate links: the two profiles are one person and merge.",
      discussion: """
        The merge happens at the next `tessera run` of the pipeline, or at once with --pipeline. It is \
        recorded like any merge, with the link's probability; a merge that would break an identifier limit \
        is refused and recorded as a conflict.
        """)

    @Argument(help: "Link ids from `tessera review`.")
    var ids: [Int64]

    @Option(help: "The SQLite store file.")
    var store: String = "tessera.sqlite"

    @Option(help: "Apply the merges now with this pipeline's rules.")
    var pipeline: String?

    @Option(help: "With --pipeline: the time segments and windows are evaluated at, as for `tessera run --now`.")
    var now: String?

    func run() async throws {
      guard let pipeline else {
        try await ReviewDecide.decide(ids, .confirmed, store: store)
        print("confirmed \(ids.count) link\(ids.count == 1 ? "" : "s"); they merge at the next `tessera run`")
        return
      }
      let plan = try PipelineOptions.compile(pipeline)
      // A run without sources: the resolver starts from the store, applies the decisions, commits.
      let summary: RunSummary
      do {
        summary = try await Stewardship.confirm(
          ids, plan: plan, store: try SQLiteStore(path: store), now: try PipelineOptions.now(now) ?? Timestamp(Date()))
      } catch let refusal as Stewardship.Refusal {
        throw ValidationError(refusal.description)
      }
      print(
        "confirmed \(ids.count) link\(ids.count == 1 ? "" : "s"): \(summary.stats.merges) merged, \(summary.stats.conflicts) refused by limits; \(summary.profiles) profiles in store"
      )
    }
  }

  struct Reject: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
      commandName: "reject", abstract: "Reject candidate links: the two profiles are different people.")

    @Argument(help: "Link ids from `tessera review`.")
    var ids: [Int64]

    @Option(help: "The SQLite store file.")
    var store: String = "tessera.sqlite"

    func run() async throws {
      try await ReviewDecide.decide(ids, .rejected, store: store)
      print("rejected \(ids.count) link\(ids.count == 1 ? "" : "s"); the pairs are not proposed again")
    }
  }

  /// Records a decision on links that are waiting for review.
  static func decide(_ ids: [Int64], _ status: MatchLinkRecord.Status, store: String) async throws {
    do {
      try await Stewardship.decide(ids, status, store: try SegmentsCommand.open(store))
    } catch let refusal as Stewardship.Refusal {
      throw ValidationError(
        refusal.description.replacingOccurrences(of: "`tessera review`", with: "`tessera review --store \(store)`"))
    }
  }
}
