import ArgumentParser
import Foundation
import TesseraCompiler
import TesseraIdentity
import TesseraModel
import TesseraRuntime
import TesseraSQLite
import TesseraStore

struct ProfileCommand: AsyncParsableCommand {
  static let configuration = CommandConfiguration(
    commandName: "profile",
    abstract: "Show the unified profile of a person.",
    discussion: """
      IDENTIFIER is `kind:value` (email:ada@example.com, user_id:100101, phone:+14155550123) or a profile id \
      (prf_12). Values are normalized as the pipeline declares when --pipeline is given, otherwise as written \
      (emails and phone numbers are also tried in their usual normal form). An absorbed profile id shows the \
      profile it merged into. Prints identifiers, traits with the winning source and why, computed traits, segments, merge history, \
      refused merges and recent events. Exit status 0 when found, 3 when no profile matches.
      """)

  @Argument(help: "kind:value or a profile id.")
  var identifier: String

  @OptionGroup var storeOption: StoreOption
  var store: String { storeOption.spec }

  @Option(help: "The pipeline, to normalize the identifier as it declares.")
  var pipeline: String?

  @Option(help: "text or json.")
  var format: OutputFormat = .text

  @Option(help: "How many recent events to show.")
  var events: Int = 10

  func run() async throws {
    let db = try await StoreLocation.open(store, mustExist: true)
    guard let id = try await resolve(db) else {
      FileHandle.standardError.write(Data("no profile matches `\(identifier)`\n".utf8))
      throw ExitCode(3)
    }
    let view = try await ProfileView.load(id, from: db, events: events)
    switch format {
    case .json: print(JSON.encode(view.json))
    case .text: print(view.text)
    }
  }

  func resolve(_ db: any Store) async throws -> ProfileID? {
    try await ProfileCommand.resolve(identifier, in: db, pipeline: pipeline)
  }

  /// A profile id (followed to the profile that absorbed it) or `kind:value`, normalized the way the
  /// pipeline (or rules file) declares the kind when given.
  static func resolve(_ identifier: String, in db: any Store, pipeline: String?) async throws -> ProfileID? {
    if let p = ProfileID(parsing: identifier) { return try await db.canonical(p) }
    guard let raw = Identifier(parsing: identifier) else {
      throw ValidationError("`\(identifier)` is neither `kind:value` nor a profile id like prf_12")
    }
    var candidates = [raw.value]
    if let pipeline, let decl = Compiler().compile(rules: pipeline).plan?.config.identifier(raw.kind),
      let n = decl.normalize(raw.value)
    {
      candidates.insert(n, at: 0)
    }
    if let e = Normalize.email(raw.value) { candidates.append(e) }
    if let p = Normalize.phoneE164(raw.value) { candidates.append(p) }
    candidates.append(Normalize.trim(raw.value))
    for c in candidates {
      if let p = try await db.profile(for: Identifier(raw.kind, c)) { return p }
    }
    return nil
  }
}

/// Everything `tessera profile` shows about one profile.
struct ProfileView {
  var id: ProfileID
  var aliases: [ProfileID]
  var identifiers: [(Identifier, Timestamp)]
  var traits: [TraitRecord]
  /// What the traits' values are explained by (`TraitRecord.why`).
  var policies: TraitPolicies?
  var computed: [ComputedRecord]
  var segments: [MembershipRecord]
  var merges: [MergeRecord]
  var conflicts: [ConflictRecord]
  var events: [StoredEvent]

  static func load(_ id: ProfileID, from db: any Store, events: Int) async throws -> ProfileView {
    let merges = try await db.merges(involving: id)
    // Ids merged into this profile now (an unmerge or a replay may have revived some the log still lists).
    var aliases: [ProfileID] = []
    for a in Set(merges.map(\.absorbed)) where a != id {
      if try await db.canonical(a) == id { aliases.append(a) }
    }
    return ProfileView(
      id: id, aliases: aliases.sorted(),
      identifiers: try await db.identifiers(of: id), traits: try await db.traits(of: id),
      policies: try await db.traitPolicies(),
      computed: try await db.computed(of: id), segments: try await db.memberships(of: id), merges: merges,
      conflicts: try await db.conflicts(involving: id), events: try await db.events(of: id, limit: events))
  }

  func why(_ t: TraitRecord) -> String { t.why(policies: policies) ?? "" }

  var text: String {
    var out = "profile \(id)"
    if !aliases.isEmpty { out += " (absorbed: \(aliases.map(\.description).joined(separator: ", ")))" }
    out += "\n\nidentifiers\n"
    for (i, seen) in identifiers { out += "  \(i.kind.padded(14)) \(i.value.padded(34)) last seen \(seen.iso8601)\n" }
    out += "\ntraits\n"
    for t in traits {
      out += "  \(t.trait.padded(18)) \(t.value.description.padded(28)) from \(t.source) at \(t.timestamp.iso8601)"
      let w = why(t)
      out += w.isEmpty ? "\n" : " — \(w)\n"
    }
    out += "\ncomputed traits (as of the last run)\n"
    if computed.isEmpty { out += "  none\n" }
    for c in computed { out += "  \(c.trait.padded(18)) \(c.value.description)\n" }
    out += "\nsegments\n"
    if segments.isEmpty { out += "  none\n" }
    for m in segments { out += "  \(m.segment.padded(18)) since \(m.since.iso8601)\n" }
    out += "\nmerges\n"
    if merges.isEmpty { out += "  none\n" }
    for m in merges {
      let why =
        m.evidence.isEmpty
        ? String(format: "match probability %.6f", m.score)
        : "on " + m.evidence.map(\.description).joined(separator: " + ")
      out += "  \(m.at.iso8601)  \(m.absorbed) → \(m.survivor)  rule \(m.rule) \(why)  (event \(m.eventID))\n"
    }
    if !conflicts.isEmpty {
      out += "\nrefused merges and attachments\n"
      for c in conflicts {
        out +=
          "  \(c.at.iso8601)  \(c.reason)" + (c.other.map { " (with \($0))" } ?? "")
          + " — " + c.identifiers.map(\.description).joined(separator: ", ") + "  (event \(c.eventID))\n"
      }
    }
    out += "\nrecent events\n"
    for e in events {
      out +=
        "  \(e.event.timestamp.iso8601)  \(e.event.source.padded(6)) \(e.event.type.padded(9)) \(e.event.name ?? "")\n"
    }
    return out
  }

  var json: Value {
    .map([
      "id": .string(id.description),
      "aliases": .list(aliases.map { .string($0.description) }),
      "identifiers": .list(
        identifiers.map {
          .map(["kind": .string($0.0.kind), "value": .string($0.0.value), "last_seen": .timestamp($0.1)])
        }),
      "traits": .map(
        Dictionary(
          uniqueKeysWithValues: traits.map {
            (
              $0.trait,
              Value.map([
                "value": $0.value, "source": .string($0.source), "event_id": .string($0.eventID),
                "timestamp": .timestamp($0.timestamp), "why": .string(why($0)),
              ])
            )
          })),
      "computed": .map(Dictionary(computed.map { ($0.trait, $0.value) }, uniquingKeysWith: { a, _ in a })),
      "segments": .list(
        segments.map { .map(["segment": .string($0.segment), "since": .timestamp($0.since)]) }),
      "merges": .list(
        merges.map {
          .map([
            "survivor": .string($0.survivor.description), "absorbed": .string($0.absorbed.description),
            "rule": .string($0.rule), "evidence": .list($0.evidence.map { .string($0.description) }),
            "event_id": .string($0.eventID), "at": .timestamp($0.at),
          ])
        }),
      "conflicts": .list(
        conflicts.map {
          .map([
            "kept": .string($0.kept.description), "other": $0.other.map { .string($0.description) } ?? .null,
            "kind": .string($0.kind), "reason": .string($0.reason), "event_id": .string($0.eventID),
            "identifiers": .list($0.identifiers.map { .string($0.description) }), "at": .timestamp($0.at),
          ])
        }),
      "events": .list(
        events.map {
          .map([
            "id": .string($0.event.id), "source": .string($0.event.source), "type": .string($0.event.type),
            "name": $0.event.name.map(Value.string) ?? .null, "timestamp": .timestamp($0.event.timestamp),
          ])
        }),
    ])
  }
}

extension String {
  func padded(_ n: Int) -> String { count >= n ? self : padding(toLength: n, withPad: " ", startingAt: 0) }
}
