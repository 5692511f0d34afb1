import Crypto
import Foundation
import TesseraCompiler
import TesseraIdentity
import TesseraLanguage
import TesseraModel
import TesseraStore

/// The values a payload expression (or a destination's `where`) can read about one profile or event.
struct PayloadState {
  var variables: [String: Value] = [:]
  var fields: [String: [String: Value]] = [:]
  var open: [String: Value] = [:]

  /// The slots of `scope` filled by name; what the profile lacks reads as null (segments as false).
  func env(_ scope: Scope) -> Env {
    var slots = Array(repeating: Value.null, count: scope.slotCount)
    for (name, v) in scope.variables { slots[v.slot] = variables[name] ?? .null }
    for (ns, namespace) in scope.namespaces {
      for (name, v) in namespace.fields {
        slots[v.slot] = fields[ns]?[name] ?? variables["\(ns).\(name)"] ?? (ns == "segments" ? .bool(false) : .null)
      }
      if let o = namespace.openSlot { slots[o] = open[ns] ?? .map([:]) }
    }
    return Env(slots: slots)
  }

  func evaluate(_ d: DestinationDecl, _ e: Env) -> Value {
    var body: [String: Value] = [:]
    for (key, expr) in d.payload { body[key] = expr.evaluate(e) }
    return .map(body)
  }

  /// The event scope of an `on: events` destination: the event as stored, and the profile it belongs to.
  static func event(_ e: StoredEvent, profile: ProfileID) -> PayloadState {
    var s = PayloadState()
    s.variables = [
      "event": e.event.name.map(Value.string) ?? .null, "type": .string(e.event.type),
      "source": .string(e.event.source), "timestamp": .timestamp(e.event.timestamp),
      "message_id": .string(e.event.id), "profile.id": .string(profile.description),
    ]
    s.open = [
      "properties": .map(e.event.properties), "traits": .map(e.event.traits), "context": .map(e.event.context),
    ]
    for i in e.event.identifiers where s.fields["identifiers"]?[i.kind] == nil {
      s.fields["identifiers", default: [:]][i.kind] = .string(i.value)
    }
    return s
  }
}

/// A person's consent to a purpose changed in a batch (the visible value of `consent.PURPOSE`).
struct ConsentChange: Hashable {
  var profile: ProfileID
  var purpose: String
  var granted: Bool
}

/// Turns what a store transaction changed for one live profile into outbox rows, one per destination that
/// wants the change and may have it: payloads are evaluated against the profile's state at the end of the
/// transaction and committed with it.
struct DestinationRouter: Sendable {
  let destinations: [DestinationDecl]
  /// Some destination listens to profile changes (the partitions then track which visible values changed).
  let wantsProfileChanges: Bool
  /// Some destination listens to events (the partitions then keep each transaction's events until it settles).
  let wantsEvents: Bool
  /// Consent purposes destinations need: the partitions watch these traits for withdrawals and grants.
  let purposes: Set<String>

  init(config: PipelineConfig) {
    destinations = config.destinations
    wantsProfileChanges = destinations.contains { $0.trigger == .profile_changes }
    wantsEvents = destinations.contains { $0.trigger == .events }
    purposes = Set(destinations.compactMap(\.consent))
  }

  var isEmpty: Bool { destinations.isEmpty }

  /// What changed for one live profile in a transaction.
  struct Changes {
    var profile: ProfileID
    /// Its segment flips, in order; exits of profiles merged into it carry `mergedInto`.
    var segmentChanges: [SegmentChange]
    var consent: [ConsentChange]
    /// Visible traits and computed traits whose values changed.
    var changed: Set<String>
    /// Its events, with their position in the transaction.
    var events: [(index: Int, event: StoredEvent)]
    /// Profiles merged into it.
    var absorbed: [ProfileID]
  }

  /// What the router reads of the profile's partition.
  struct View {
    /// The payload state of a live profile.
    var state: (ProfileID) -> PayloadState
    var consents: (ProfileID, String) -> Bool
    var isMember: (ProfileID, String) -> Bool
  }

  /// Appends the rows for `c` to `out`, each with its place in the transaction's order (`step` numbers the
  /// rows of one profile).
  func route(
    _ c: Changes, at: Timestamp, view: View, step: inout Int, withheld: inout [String: Int],
    into out: inout [(key: OutboxOrder, row: OutboxRecord)]
  ) {
    let live = c.profile
    var cached: PayloadState?
    func state() -> PayloadState {
      if let s = cached { return s }
      let s = view.state(live)
      cached = s
      return s
    }
    func allowed(_ d: DestinationDecl) -> Bool {
      guard let purpose = d.consent else { return true }
      if view.consents(live, purpose) { return true }
      withheld[purpose, default: 0] += 1
      return false
    }
    func emit(_ d: Int, phase: Int = 0, major: Int64? = nil, _ row: OutboxRecord) {
      step += 1
      out.append((OutboxOrder(destination: d, phase: phase, major: major ?? live.raw, minor: step), row))
    }
    for (di, d) in destinations.enumerated() {
      switch d.trigger {
      case .segment_changes:
        var sent: Set<String> = []
        func send(_ profile: ProfileID, _ segment: String, entered: Bool, _ when: Timestamp) {
          guard d.segments.isEmpty || d.segments.contains(segment), sent.insert(segment).inserted else { return }
          var s = state()
          s.variables["profile.id"] = .string(profile.description)
          s.variables["change.segment"] = .string(segment)
          s.variables["change.entered"] = .bool(entered)
          s.variables["change.exited"] = .bool(!entered)
          s.variables["change.at"] = .timestamp(when)
          let e = s.env(d.scope)
          if let f = d.filter, !f.evaluate(e).isTrue { return }
          emit(
            di,
            OutboxRecord(
              destination: d.name, op: entered ? .enter : .exit, profile: profile, key: segment,
              payload: s.evaluate(d, e), at: when))
        }
        for change in c.segmentChanges where d.segments.isEmpty || d.segments.contains(change.segment) {
          if change.mergedInto != nil {
            // The absorbed profile's person lives on in this one: an exit only when this one is out.
            guard !view.isMember(live, change.segment), allowed(d) else { continue }
            send(change.profile, change.segment, entered: false, change.time)
          } else {
            guard allowed(d) else { continue }
            send(change.profile, change.segment, entered: change.entered, change.time)
          }
        }
        // A withdrawal takes the person out of every audience the destination holds; a grant puts them in.
        for consent in c.consent where consent.purpose == d.consent {
          for segment in d.segments where view.isMember(live, segment) {
            send(live, segment, entered: consent.granted, at)
          }
        }
      case .profile_changes:
        guard !c.changed.isEmpty, allowed(d) else { break }
        var s = state()
        s.variables["changed"] = .list(c.changed.sorted().map(Value.string))
        let e = s.env(d.scope)
        if let f = d.filter, !f.evaluate(e).isTrue { break }
        emit(di, OutboxRecord(destination: d.name, op: .upsert, profile: live, payload: s.evaluate(d, e), at: at))
      case .events:
        for (index, stored) in c.events {
          let s = PayloadState.event(stored, profile: live)
          let e = s.env(d.scope)
          if let f = d.filter, !f.evaluate(e).isTrue { continue }
          guard allowed(d) else { continue }
          emit(
            di, major: Int64(index),
            OutboxRecord(
              destination: d.name, op: .event, profile: live, key: stored.event.id, payload: s.evaluate(d, e),
              at: stored.event.timestamp))
        }
      }
      // A table keeps one row per person: a withdrawal removes it, and a merge the absorbed profile's.
      if d.kind == .table, d.trigger != .segment_changes {
        var gone = c.consent.contains { $0.purpose == d.consent && !$0.granted } ? [live] : []
        if d.trigger == .profile_changes { gone += c.absorbed }
        for p in gone {
          emit(
            di, phase: 1, major: p.raw,
            OutboxRecord(
              destination: d.name, op: .delete, profile: p,
              payload: .map(["profiles": .list([.string(p.description)])]), at: at))
        }
      }
    }
  }
}

/// Deletion notices: what destinations are told when a person is erased. Webhooks with a `deletion_url`
/// get `{"type": "deletion", "profile_id", "profiles", "identifiers_sha256": {kind: [sha256 of the
/// normalized value]}, "requested_at"}` — hashes only, since the values are gone; tables drop the rows.
public enum DeletionNotices {
  /// The outbox queue of a webhook's deletion notices.
  public static func queue(_ destination: String) -> String { destination + "#deletion" }

  public static func rows(
    _ config: PipelineConfig, profile: ProfileID, family: [ProfileID], identifiers: [Identifier], at: Timestamp
  ) -> [OutboxRecord] {
    var hashed: [String: [Value]] = [:]
    for i in Set(identifiers).sorted() {
      let digest = SHA256.hash(data: Data(i.value.utf8)).map { String(format: "%02x", $0) }.joined()
      hashed[i.kind, default: []].append(.string(digest))
    }
    let profiles = Value.list(Set(family + [profile]).sorted().map { .string($0.description) })
    var out: [OutboxRecord] = []
    for d in config.destinations {
      switch d.kind {
      case .webhook where d.deletionURL != nil:
        out.append(
          OutboxRecord(
            destination: queue(d.name), op: .delete, profile: profile,
            payload: .map([
              "type": .string("deletion"), "profile_id": .string(profile.description), "profiles": profiles,
              "identifiers_sha256": .map(hashed.mapValues(Value.list)), "requested_at": .string(at.iso8601),
            ]), at: at))
      case .table:
        out.append(
          OutboxRecord(
            destination: d.name, op: .delete, profile: profile, payload: .map(["profiles": profiles]), at: at))
      default: break
      }
    }
    return out
  }
}
