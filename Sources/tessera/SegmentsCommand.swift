import ArgumentParser
import Foundation
import TesseraCompiler
import TesseraModel
import TesseraSQLite
import TesseraStore

struct SegmentsCommand: AsyncParsableCommand {
  static let configuration = CommandConfiguration(
    commandName: "segments",
    abstract: "List segments with their member counts, or one segment's members.",
    discussion: """
      Memberships are what the last `tessera run` stored: they are re-evaluated during a run for the profiles \
      whose inputs changed, and at its end for the profiles whose windows expired.
      """,
    subcommands: [SegmentsList.self, SegmentsMembers.self],
    defaultSubcommand: SegmentsList.self)

  enum MembersFormat: String, ExpressibleByArgument, CaseIterable {
    case text, json, csv
  }

  static func open(_ path: String) throws -> SQLiteStore {
    guard FileManager.default.fileExists(atPath: path) else {
      throw ValidationError("no store at `\(path)`; run a pipeline first (tessera run PIPELINE --store \(path))")
    }
    return try SQLiteStore(path: path)
  }

  /// The pipeline's segments in declaration order, with their descriptions; nil without a pipeline.
  static func declared(_ pipeline: String?) throws -> [SegmentDecl]? {
    guard let pipeline else { return nil }
    let result = Compiler().compile(pipeline: pipeline)
    guard let plan = result.plan else {
      FileHandle.standardError.write(Data((result.rendered() + "\n").utf8))
      throw ExitCode(1)
    }
    return plan.config.segments
  }
}

struct SegmentsList: AsyncParsableCommand {
  static let configuration = CommandConfiguration(
    commandName: "list",
    abstract: "List segments with their member counts (the default).",
    discussion: """
      With --pipeline, every segment the pipeline declares is listed in declaration order, also those without \
      members; without it, the segments that have members in the store, by name.
      """)

  @OptionGroup var storeOption: StoreOption
  var store: String { storeOption.spec }

  @Option(help: "The pipeline, to list every declared segment (also those without members).")
  var pipeline: String?

  @Option(help: "text or json.")
  var format: OutputFormat = .text

  func run() async throws {
    let db = try await StoreLocation.open(store, mustExist: true)
    let counts = try await db.segmentCounts()
    var rows: [(name: String, members: Int, description: String?)] = []
    if let declared = try SegmentsCommand.declared(pipeline) {
      rows = declared.map { ($0.name, counts[$0.name] ?? 0, $0.description) }
    } else {
      rows = counts.keys.sorted().map { ($0, counts[$0] ?? 0, nil) }
    }
    switch format {
    case .json:
      let list: [Value] = rows.map { r in
        var m: [String: Value] = ["name": .string(r.name), "members": .int(Int64(r.members))]
        if let d = r.description { m["description"] = .string(d) }
        return .map(m)
      }
      print(JSON.encode(.map(["segments": .list(list)])))
    case .text:
      if rows.isEmpty {
        print("no segments" + (pipeline == nil ? " with members in \(store)" : ""))
        return
      }
      let width = max(7, rows.map(\.name.count).max() ?? 0)
      print("segment".padded(width) + "  members")
      for r in rows {
        let count = String(r.members)
        let line = r.name.padded(width) + "  " + String(repeating: " ", count: max(0, 7 - count.count)) + count
        print(line + (r.description.map { "  \($0)" } ?? ""))
      }
    }
  }
}

struct SegmentsMembers: AsyncParsableCommand {
  static let configuration = CommandConfiguration(
    commandName: "members",
    abstract: "List a segment's members: profile id, user_id and email when present, and since when.")

  @Argument(help: "The segment's name.")
  var name: String

  @OptionGroup var storeOption: StoreOption
  var store: String { storeOption.spec }

  @Option(help: "The pipeline, to check that the segment is declared.")
  var pipeline: String?

  @Option(help: "text, json or csv.")
  var format: SegmentsCommand.MembersFormat = .text

  struct Row {
    var profile: ProfileID
    var userID: String?
    var email: String?
    var since: Timestamp
  }

  func run() async throws {
    let db = try await StoreLocation.open(store, mustExist: true)
    if let declared = try SegmentsCommand.declared(pipeline), !declared.contains(where: { $0.name == name }) {
      throw ValidationError("the pipeline declares no segment `\(name)`")
    }
    var rows: [Row] = []
    for m in try await db.members(of: name) {
      let ids = try await db.identifiers(of: m.profile).map(\.0)
      rows.append(
        Row(
          profile: m.profile, userID: ids.first { $0.kind == "user_id" }?.value,
          email: ids.first { $0.kind == "email" }?.value, since: m.since))
    }
    switch format {
    case .json:
      let list: [Value] = rows.map { r in
        .map([
          "profile": .string(r.profile.description), "user_id": r.userID.map(Value.string) ?? .null,
          "email": r.email.map(Value.string) ?? .null, "since": .timestamp(r.since),
        ])
      }
      print(JSON.encode(.map(["segment": .string(name), "members": .list(list)])))
    case .csv:
      print("profile,user_id,email,since")
      for r in rows {
        print(
          [r.profile.description, r.userID ?? "", r.email ?? "", r.since.iso8601].map(Self.csvField).joined(
            separator: ","))
      }
    case .text:
      print("\(name): \(rows.count) member\(rows.count == 1 ? "" : "s")")
      for r in rows {
        print(
          "  " + r.profile.description.padded(10) + " " + (r.userID ?? "—").padded(10) + " "
            + (r.email ?? "—").padded(34) + " since \(r.since.iso8601)")
      }
    }
  }

  static func csvField(_ s: String) -> String { CSV.quote(s) }
}
