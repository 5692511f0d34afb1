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
  /// The profile the event was resolved to when it arrived (the live one it belongs to is looked up after).
  var profile: Int64
  /// The device's identifier; nil: the event has none (its profile stands for it), or devices are not counted.
  var device: String?
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

  /// Whether an expression reads the event's identifiers (`identifiers.<kind>`).
  static func readsIdentifiers(_ e: CompiledExpr) -> Bool {
    e.references.contains { $0 == "identifiers" || $0.hasPrefix("identifiers.") }
  }

  /// Reads the whole log a page at a time as its columns (`EventLog.logRows`), evaluates the report's
  /// expressions on `workers` tasks and keeps the events that matter. The store's one reader only copies
  /// columns out; identifiers are decoded, and records parsed and mapped again for the fields the report reads
  /// (`LoggedFieldsReader`), on the evaluating tasks, and only for what the report reads: a funnel over event
  /// names reads neither, an attribution report maps only the events its column-only filters take.
  static func read(
    _ q: ReportQuery, config: PipelineConfig, store: any Store, workers: Int, pageSize: Int = 16_384
  ) async throws -> FactTable {
    let reader = LoggedFieldsReader(config: config, demand: EventDemand(reading: expressions(q)))
    let kinds = config.identifiers.map(\.name)
    // Which live profile each stored one is now, read while the log is.
    let merges = Task { try await canonicalMap(store) }
    defer { merges.cancel() }
    let sessions = q.units.contains(.sessions)
    let devices = sessions || q.units.contains(.devices)
    let filters = filters(q)
    let prefilter = !filters.contains(where: readsRecord)
    // A report none of whose expressions reads the record (a funnel over event names) never maps one again.
    let mapsRecords = expressions(q).contains(where: readsRecord)
    let identifiers = devices || expressions(q).contains(where: readsIdentifiers)
    let plan = Plan(q)
    let read = LogRow.Parts(rawValue: 0).union(identifiers ? .identifiers : []).union(mapsRecords ? .body : [])
    var table = FactTable()
    var canonical: [Int64: Int64]?
    var seq: Int64 = 0
    // The log as it is now, in ranges of `pageSize` positions. `workers` ranges are read at once (each on its
    // own connection) while the one before them is evaluated, so reading is not one serial stream.
    let end = try await store.logEnd()
    let span = Int64(max(pageSize, 1))
    var starts = stride(from: Int64(0), to: end, by: Int(span)).makeIterator()
    var pending: [Task<[LogRow], any Error>] = []
    defer { for t in pending { t.cancel() } }
    func readNext() {
      guard let after = starts.next() else { return }
      pending.append(Task { try await store.logRows(after: after, through: after + span, parts: read) })
    }
    for _ in 0..<max(workers, 1) { readNext() }
    while !pending.isEmpty {
      let rows = try await pending.removeFirst().value
      readNext()
      let base = seq
      seq += Int64(rows.count)
      table.scanned += rows.count
      let chunks = max(1, min(workers, rows.count / 1024))
      let size = (rows.count + chunks - 1) / chunks
      let results = try await withThrowingTaskGroup(of: (Int, [Evaluated], Int).self) { group in
        for p in 0..<chunks {
          let range = (p * size)..<min((p + 1) * size, rows.count)
          group.addTask {
            var out: [Evaluated] = []
            var unreadable = 0
            var env = Env(slots: [])
            for i in range {
              let ids = identifiers ? try rows[i].decodedIdentifiers() : []
              let dev = devices ? device(ids, q) : nil
              let position = base + Int64(i)
              let time = Timestamp(microseconds: rows[i].timestamp)
              EventEnv.fill(
                &env, name: rows[i].name, type: rows[i].type, source: rows[i].source, timestamp: time, id: rows[i].id,
                identifiers: ids, kinds: kinds)
              env.now = time
              // Filters that read only the log's columns decide first: an event none of them takes is not
              // mapped again (its record not parsed) at all.
              if prefilter, !filters.contains(where: { $0.evaluate(env).isTrue }) {
                if sessions {
                  out.append(
                    Evaluated(profile: rows[i].profile.raw, device: dev, time: rows[i].timestamp, seq: position))
                }
                continue
              }
              if mapsRecords {
                guard let e = try? reader.fields(rows[i]) else {
                  unreadable += 1
                  continue
                }
                // The id, time and identifiers are the log's.
                EventEnv.fill(
                  &env, name: e.name, type: e.type, source: rows[i].source, timestamp: time, id: rows[i].id,
                  properties: e.properties, traits: e.traits, context: e.context, identifiers: ids, kinds: kinds)
              }
              let ev = plan.evaluate(
                env, Evaluated(profile: rows[i].profile.raw, device: dev, time: rows[i].timestamp, seq: position))
              if ev.keep || sessions { out.append(ev) }
            }
            return (p, out, unreadable)
          }
        }
        var all: [(Int, [Evaluated], Int)] = []
        for try await r in group { all.append(r) }
        return all.sorted { $0.0 < $1.0 }
      }
      if canonical == nil { canonical = try await merges.value }
      let live = canonical ?? [:]
      let holds = q.holdsConstant
      for (_, evs, bad) in results {
        table.unreadable += bad
        for ev in evs {
          let profile = live[ev.profile] ?? ev.profile
          let device = devices ? table.devices.number(ev.device ?? "profile:\(profile)") : 0
          if sessions { table.ticks.append((device, ev.time)) }
          guard ev.keep else { continue }
          var f = Fact(profile: profile, device: device, time: ev.time, seq: ev.seq)
          if let c = ev.channel {
            f.channel = table.labels.number(c)
            f.label = ev.label.map { table.labels.number($0) } ?? f.channel
            if c == direct { table.direct = f.channel }
          }
          f.conversion = ev.conversion
          f.value = ev.value
          f.steps = ev.steps
          if holds { f.held = table.held.number(ev.held) }
          table.facts.append(f)
        }
      }
    }
    return table
  }

  /// Every profile id the log may name → the live profile it is now (following merges).
  static func canonicalMap(_ store: any Store) async throws -> [Int64: Int64] {
    var into: [Int64: Int64] = [:]
    for a in try await store.aliases() { into[a.absorbed.raw] = a.survivor.raw }
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

  /// The event's device: its `measurement.device` identifier, else its strongest identifier (nil: it has none,
  /// and its profile stands for it).
  private static func device(_ identifiers: [Identifier], _ q: ReportQuery) -> String? {
    q.measurement.device.flatMap { k in identifiers.first { $0.kind == k }?.description }
      ?? identifiers.first?.description
  }

  /// The report's expressions, taken out of the query once: what each event is evaluated with (a switch over
  /// the query per event copied its declarations).
  private final class Plan: Sendable {
    let steps: [CompiledExpr]
    let held: [CompiledExpr]
    let touches: [TouchpointDecl]
    let conversion: CompiledExpr?
    let value: CompiledExpr?
    let byCampaign: Bool

    init(_ q: ReportQuery) {
      switch q.kind {
      case .funnel(let f):
        (steps, held, touches) = (f.steps.map(\.filter), f.holdConstant, [])
        (conversion, value, byCampaign) = (nil, nil, false)
      case .attribution(let a, let c, let t):
        (steps, held, touches) = ([], [], t)
        (conversion, value, byCampaign) = (c.filter, c.value, a.creditTo == .campaign)
      }
    }

    /// What an event means to the report, from its scope (`EventEnv`).
    func evaluate(_ env: Env, _ start: Evaluated) -> Evaluated {
      var ev = start
      // By index: a loop over the declarations would copy each one.
      for k in steps.indices where steps[k].evaluate(env).isTrue { ev.steps |= 1 << UInt64(k) }
      if ev.steps != 0, !held.isEmpty {
        ev.held = held.map { $0.evaluate(env).description }.joined(separator: "\u{1F}")
      }
      if let t = touches.indices.first(where: { touches[$0].filter.evaluate(env).isTrue }) {
        ev.channel = touches[t].channel.flatMap { text($0.evaluate(env)) } ?? direct
        if byCampaign { ev.label = touches[t].campaign.flatMap { text($0.evaluate(env)) } ?? noCampaign }
      }
      if let conversion, conversion.evaluate(env).isTrue {
        ev.conversion = true
        ev.value = value.flatMap { number($0.evaluate(env)) } ?? 0
      }
      return ev
    }
  }
}
