import TesseraCompiler
import TesseraLanguage
import TesseraModel
import TesseraRuntime
import TesseraStore

/// What one logged event means to a report: who, which device, when, and whether it is a touch, a
/// conversion or a funnel step. Events that are none of these are not kept (only their device and time, for
/// sessions).
struct Fact: Sendable {
  var profile: Int64
  var device: Int32
  var time: Int64
  /// Position in the log, the tie-break of equal times.
  var seq: Int64
  /// Interned channel and credited label (channel or campaign) of a touch; -1: not a touch.
  var channel: Int32 = -1
  var label: Int32 = -1
  var conversion = false
  var value = 0.0
  /// Funnel steps this event matches (bit k: step k).
  var steps: UInt64 = 0
  /// Interned values held constant across a funnel attempt.
  var held: Int32 = 0
}

/// Strings seen while scanning, numbered.
struct Interner: Sendable {
  private(set) var names: [String] = []
  private var numbers: [String: Int32] = [:]
  mutating func number(_ s: String) -> Int32 {
    if let n = numbers[s] { return n }
    let n = Int32(names.count)
    names.append(s)
    numbers[s] = n
    return n
  }
  subscript(_ n: Int32) -> String { names[Int(n)] }
}

/// Everything the report needs from the log, read once.
struct FactTable: Sendable {
  var facts: [Fact] = []
  var devices = Interner()
  var labels = Interner()
  var held = Interner()
  /// Every event's device and time, when sessions are counted.
  var ticks: [(device: Int32, time: Int64)] = []
  /// The label `direct`, when a touch had it.
  var direct: Int32 = -1
  var unreadable = 0
  /// Events read from the log.
  var scanned = 0
}

/// What one event evaluates to, before strings are numbered (computed off the reading task).
private struct Evaluated: Sendable {
  var profile: Int64
  var device: String
  var time: Int64
  var seq: Int64
  var channel: String?
  var label: String?
  var conversion = false
  var value = 0.0
  var steps: UInt64 = 0
  var held = ""
  var keep: Bool { channel != nil || conversion || steps != 0 }
}

enum FactReader {
  static let direct = "direct"
  static let noCampaign = "(none)"

  static func expressions(_ q: ReportQuery) -> [CompiledExpr] {
    switch q.kind {
    case .funnel(let f): return f.steps.map(\.filter) + f.holdConstant
    case .attribution(_, let c, let touches):
      return [c.filter] + [c.value].compactMap { $0 }
        + touches.flatMap { [$0.filter] + [$0.channel, $0.campaign].compactMap { $0 } }
    }
  }

  /// The report's event filters (which events are touches, conversions or steps).
  static func filters(_ q: ReportQuery) -> [CompiledExpr] {
    switch q.kind {
    case .funnel(let f): return f.steps.map(\.filter)
    case .attribution(_, let c, let touches): return [c.filter] + touches.map(\.filter)
    }
  }

  /// Whether an expression reads what only the mapped record has (properties, context, the event's traits);
  /// the others read the log's columns (name, type, source, time, id, identifiers).
  static func readsRecord(_ e: CompiledExpr) -> Bool {
    e.references.contains {
      $0 == "properties" || $0 == "context" || $0 == "traits" || $0.hasPrefix("properties.")
        || $0.hasPrefix("context.") || $0.hasPrefix("traits.")
    }
  }

  /// Reads the whole log a page at a time, maps each record with its source's mapping (`EventReader`),
  /// evaluates the report's expressions on `workers` tasks, and keeps the events that matter.
  static func read(
    _ q: ReportQuery, config: PipelineConfig, store: any Store, workers: Int, pageSize: Int = 16_384
  ) async throws -> FactTable {
    let reader = EventReader(config: config, demand: EventDemand(reading: expressions(q)))
    let kinds = config.identifiers.map(\.name)
    let canonical = try await canonicalMap(store)
    let sessions = q.units.contains(.sessions)
    let filters = filters(q)
    let prefilter = !filters.contains(where: readsRecord)
    // A report none of whose expressions reads the record (a funnel over event names) never maps one again.
    let mapsRecords = expressions(q).contains(where: readsRecord)
    var table = FactTable()
    var seq: Int64 = 0
    // The next page is read while this one is evaluated: the store's reader and the evaluating tasks overlap.
    var pending: Task<EventPage, any Error>? = Task { try await store.eventPage(after: 0, limit: pageSize) }
    defer { pending?.cancel() }
    while let reading = pending {
      let page = try await reading.value
      pending = page.next.map { after in Task { try await store.eventPage(after: after, limit: pageSize) } }
      let base = seq
      seq += Int64(page.events.count)
      table.scanned += page.events.count
      let parts = max(1, min(workers, page.events.count / 1024))
      let size = (page.events.count + parts - 1) / max(parts, 1)
      let results = try await withThrowingTaskGroup(of: (Int, [Evaluated], Int).self) { group in
        for p in 0..<parts {
          let range = (p * size)..<min((p + 1) * size, page.events.count)
          let slice = Array(page.events[range])
          group.addTask {
            var out: [Evaluated] = []
            var unreadable = 0
            out.reserveCapacity(slice.count)
            for (i, stored) in slice.enumerated() {
              let position = base + Int64(range.lowerBound + i)
              let profile = canonical[stored.profile.raw] ?? stored.profile.raw
              let dev = device(stored.event, q, profile)
              // Filters that read only the log's columns decide first: an event none of them takes is not
              // mapped again (its record not parsed) at all.
              if prefilter {
                let env = EventEnv.make(stored.event, identifiers: kinds, now: stored.event.timestamp)
                if !filters.contains(where: { $0.evaluate(env).isTrue }) {
                  if sessions {
                    out.append(
                      Evaluated(
                        profile: profile, device: dev, time: stored.event.timestamp.microseconds,
                        seq: position))
                  }
                  continue
                }
              }
              guard let e = mapsRecords ? try? reader.mapped(stored.event) : stored.event else {
                unreadable += 1
                continue
              }
              let ev = evaluate(e, profile: profile, device: dev, seq: position, q: q, kinds: kinds)
              if ev.keep || sessions { out.append(ev) }
            }
            return (p, out, unreadable)
          }
        }
        var all: [(Int, [Evaluated], Int)] = []
        for try await r in group { all.append(r) }
        return all.sorted { $0.0 < $1.0 }
      }
      for (_, evs, bad) in results {
        table.unreadable += bad
        for ev in evs {
          let device = table.devices.number(ev.device)
          if sessions { table.ticks.append((device, ev.time)) }
          guard ev.keep else { continue }
          var f = Fact(profile: ev.profile, device: device, time: ev.time, seq: ev.seq)
          if let c = ev.channel {
            f.channel = table.labels.number(c)
            f.label = ev.label.map { table.labels.number($0) } ?? f.channel
            if c == direct { table.direct = f.channel }
          }
          f.conversion = ev.conversion
          f.value = ev.value
          f.steps = ev.steps
          f.held = table.held.number(ev.held)
          table.facts.append(f)
        }
      }
    }
    return table
  }

  /// Every profile id the log may name → the live profile it is now (following merges).
  static func canonicalMap(_ store: any Store) async throws -> [Int64: Int64] {
    let snapshot = try await store.loadIdentity()
    var into: [Int64: Int64] = [:]
    for a in snapshot.aliases { into[a.absorbed.raw] = a.survivor.raw }
    var out: [Int64: Int64] = [:]
    for start in into.keys {
      var p = start
      var steps = 0
      while let next = into[p], steps <= into.count {
        p = next
        steps += 1
      }
      out[start] = p
    }
    return out
  }

  private static func text(_ v: Value) -> String? {
    switch v {
    case .null: return nil
    case .string(let s): return s.isEmpty ? nil : s
    default: return v.description
    }
  }

  /// A conversion's value: a number, or a string holding one (CSV fields are strings).
  private static func number(_ v: Value) -> Double? {
    if let d = v.doubleValue { return d }
    if case .string(let s) = v { return Double(Normalize.trim(s)) }
    return nil
  }

  /// The event's device: its `measurement.device` identifier, else its strongest identifier.
  private static func device(_ e: Event, _ q: ReportQuery, _ profile: Int64) -> String {
    q.measurement.device.flatMap { k in e.identifiers.first { $0.kind == k }?.description }
      ?? e.identifiers.first?.description ?? "profile:\(profile)"
  }

  private static func evaluate(
    _ e: Event, profile: Int64, device: String, seq: Int64, q: ReportQuery, kinds: [String]
  ) -> Evaluated {
    let env = EventEnv.make(e, identifiers: kinds, now: e.timestamp)
    var ev = Evaluated(profile: profile, device: device, time: e.timestamp.microseconds, seq: seq)
    switch q.kind {
    case .funnel(let f):
      for (k, step) in f.steps.enumerated() where step.filter.evaluate(env).isTrue { ev.steps |= 1 << UInt64(k) }
      if ev.steps != 0, !f.holdConstant.isEmpty {
        ev.held = f.holdConstant.map { $0.evaluate(env).description }.joined(separator: "\u{1F}")
      }
    case .attribution(let a, let c, let touches):
      if let t = touches.first(where: { $0.filter.evaluate(env).isTrue }) {
        let channel = t.channel.flatMap { text($0.evaluate(env)) } ?? direct
        ev.channel = channel
        if a.creditTo == .campaign { ev.label = t.campaign.flatMap { text($0.evaluate(env)) } ?? noCampaign }
      }
      if c.filter.evaluate(env).isTrue {
        ev.conversion = true
        ev.value = c.value.flatMap { number($0.evaluate(env)) } ?? 0
      }
    }
    return ev
  }
}
