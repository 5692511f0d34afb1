import Foundation
import TesseraModel
import TesseraStore

/// The part of a dry run's report about what mapping lost or could not place: identifier values the
/// normalizers dropped, mapped fields that never had a value, and records kept without an identifier with
/// what the probabilistic rules made of them.
public struct MappingReport: Sendable {
  /// A record kept without an identifier, and what became of it.
  public struct Unidentified: Sendable {
    public var record: UnidentifiedRecord
    /// The profile its event went to (nil when it was a duplicate).
    public var profile: ProfileID?
    /// The best candidate a probabilistic rule found for it, at or above the rule's review threshold.
    public var link: MatchLinkRecord?

    /// `joined prf_12 (rule person, probability 0.995942)`, or what else happened to it.
    public var outcome: String {
      let starts = profile.map { "; it starts \($0)" } ?? ""
      guard let l = link else {
        return "no candidate reached the review threshold of \(record.rules.map { "`\($0)`" }.joined(separator: ", "))"
          + starts
      }
      let p = String(format: "%.6f", l.probability)
      switch l.status {
      case .joined: return "joined \(l.candidate) (rule `\(l.rule)`, probability \(p))"
      case .refused:
        return "candidate \(l.candidate) (rule `\(l.rule)`, probability \(p)) refused: \(l.reason)" + starts
      default:
        return "candidate \(l.candidate) (rule `\(l.rule)`, probability \(p)) left for review" + starts
      }
    }
  }

  public var dropped: [DroppedValue] = []
  /// All dropped values, `dropped` lists the first `MappingNotes.listed`.
  public var droppedCount = 0
  public var alwaysNull: [NullField] = []
  public var unidentified: [Unidentified] = []
  public var unidentifiedCount = 0

  public init() {}

  /// Joins the run's mapping notes with the committed batches: which profile each unidentified record's
  /// event went to, and the probabilistic decision logged for it.
  public init(notes: MappingNotes, batches: [CommitBatch]) {
    dropped = notes.dropped
    droppedCount = notes.droppedCount
    alwaysNull = notes.alwaysNull
    unidentifiedCount = notes.unidentifiedCount
    let wanted = Set(notes.unidentified.map(\.eventID))
    var profiles: [String: ProfileID] = [:]
    var links: [String: MatchLinkRecord] = [:]
    for b in batches {
      for e in b.events where wanted.contains(e.event.id) {
        profiles[e.event.source + "\u{1F}" + e.event.id] = e.profile
      }
      for l in b.matchLinks where wanted.contains(l.eventID) { links[l.eventID] = l }
    }
    unidentified = notes.unidentified.map { r in
      Unidentified(record: r, profile: profiles[r.source + "\u{1F}" + r.eventID], link: links[r.eventID])
    }
  }

  /// `newsletter:4: email `bad-email` is not an email; dropped`, one per dropped value.
  public var droppedLines: [String] {
    dropped.map { "\($0.source):\($0.line): \($0.what)" }
  }

  public var nullLines: [String] {
    alwaysNull.map { "\($0.source): `\($0.target)` was null on all \($0.records) record\($0.records == 1 ? "" : "s")" }
  }

  public var unidentifiedLines: [String] {
    unidentified.map { u in
      let why =
        u.record.dropped.isEmpty
        ? "no identifier" : "no identifier left (" + u.record.dropped.map(\.what).joined(separator: ", ") + ")"
      return "\(u.record.source):\(u.record.line): \(why); kept for probabilistic matching: \(u.outcome)"
    }
  }

  /// What the lists leave out when there were more than `MappingNotes.listed`.
  public var overflow: [String] {
    var out: [String] = []
    if droppedCount > dropped.count {
      out.append("\(droppedCount) identifier values were dropped; the first \(dropped.count) are listed")
    }
    if unidentifiedCount > unidentified.count {
      out.append("\(unidentifiedCount) records had no identifier; the first \(unidentified.count) are listed")
    }
    return out
  }

  public var json: [String: Value] {
    [
      "dropped_values": .list(
        dropped.map { d in
          .map([
            "source": .string(d.source), "file": .string(d.file), "line": .int(Int64(d.line)),
            "identifier": .string(d.kind), "value": .string(d.value), "reason": .string(d.reason),
          ])
        }),
      "dropped_values_count": .int(Int64(droppedCount)),
      "null_fields": .list(
        alwaysNull.map { f in
          .map(["source": .string(f.source), "target": .string(f.target), "records": .int(Int64(f.records))])
        }),
      "unidentified": .list(
        unidentified.map { u in
          var m: [String: Value] = [
            "source": .string(u.record.source), "file": .string(u.record.file), "line": .int(Int64(u.record.line)),
            "event_id": .string(u.record.eventID), "rules": .list(u.record.rules.map(Value.string)),
            "profile": u.profile.map { .string($0.description) } ?? .null, "outcome": .string(u.outcome),
          ]
          if let l = u.link {
            m["candidate"] = .map([
              "profile": .string(l.candidate.description), "rule": .string(l.rule),
              "probability": .double(l.probability), "status": .string(l.status.rawValue),
            ])
          }
          return .map(m)
        }),
      "unidentified_count": .int(Int64(unidentifiedCount)),
    ]
  }
}
