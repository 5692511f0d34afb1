import Foundation
import TesseraCompiler
import TesseraModel
import TesseraStore

/// Computes the reports of a pipeline's `measurement` section over a store's event log.
///
/// The log is read once (`EventLog.logRows`), the records a report reads mapped again by their source
/// (`LoggedFieldsReader`), and each event grouped under the profile it belongs to *now*: a later identify that
/// joined two devices joins their earlier touches too, and an erased person's events are gone from the log.
public enum Measurement {
  public static func report(
    _ q: ReportQuery, config: PipelineConfig, store: any Store, workers: Int = 2, pageSize: Int = 16_384
  ) async throws -> MeasurementReport {
    let table = try await FactReader.read(q, config: config, store: store, workers: workers, pageSize: pageSize)
    return compute(q, table)
  }

  static func compute(_ q: ReportQuery, _ table: FactTable) -> MeasurementReport {
    let sessionOf = q.units.contains(.sessions) ? sessions(table, timeout: q.measurement.sessionTimeout) : []
    var body: MeasurementReport.Body
    switch q.kind {
    case .funnel(let f):
      body = .funnel(
        q.units.map { unit in
          funnel(f, q, groups(table, unit, sessionOf), table, unit)
        })
    case .attribution(let a, _, _):
      body = .attribution(
        q.units.map { unit in
          attribution(a, q, groups(table, unit, sessionOf), table, unit)
        })
    }
    return MeasurementReport(
      name: q.name, kind: q.kind.name, from: q.from, to: q.to, body: body, unreadable: table.unreadable,
      events: table.scanned)
  }

  /// The facts of each unit, in time order (log order breaks ties).
  static func groups(_ table: FactTable, _ unit: CountingUnit, _ sessionOf: [Int64]) -> [[Int]] {
    var index: [Int64: Int] = [:]
    var out: [[Int]] = []
    for (i, f) in table.facts.enumerated() {
      let key: Int64
      switch unit {
      case .people: key = f.profile
      case .devices: key = Int64(f.device)
      case .sessions: key = sessionOf[i]
      }
      if let g = index[key] {
        out[g].append(i)
      } else {
        index[key] = out.count
        out.append([i])
      }
    }
    let facts = table.facts
    for g in out.indices {
      out[g].sort { (facts[$0].time, facts[$0].seq) < (facts[$1].time, facts[$1].seq) }
    }
    return out
  }

  /// Each fact's session: its device's events cut where more than `timeout` passes without one. The key is
  /// the device in the high half and the session's number in the low half.
  static func sessions(_ table: FactTable, timeout: TimeSpan) -> [Int64] {
    var starts: [[Int64]] = Array(repeating: [], count: table.devices.names.count)
    let ticks = table.ticks.sorted { ($0.device, $0.time) < ($1.device, $1.time) }
    var last: (Int32, Int64)?
    for t in ticks {
      if let (d, time) = last, d == t.device, t.time - time <= timeout.microseconds {
        last = (d, t.time)
        continue
      }
      starts[Int(t.device)].append(t.time)
      last = (t.device, t.time)
    }
    return table.facts.map { f in
      let s = starts[Int(f.device)]
      // The last session that starts at or before the fact.
      var lo = 0
      var hi = s.count
      while lo < hi {
        let mid = (lo + hi) / 2
        if s[mid] <= f.time { lo = mid + 1 } else { hi = mid }
      }
      return Int64(f.device) << 32 | Int64(max(lo - 1, 0))
    }
  }

  // MARK: funnels

  /// The attempt with the latest start that reached a step, and the time of each step it took.
  struct Attempt {
    var start: Int64
    var times: [Int64]
  }

  static func funnel(_ f: FunnelDecl, _ q: ReportQuery, _ groups: [[Int]], _ table: FactTable, _ unit: CountingUnit)
    -> FunnelResult
  {
    let n = f.steps.count
    var reached = Array(repeating: 0, count: n)
    var gaps: [[Double]] = Array(repeating: [], count: n)
    let window = f.window.microseconds
    for g in groups {
      var states: [Int32: [Attempt?]] = [:]
      var best: Attempt?
      for i in g {
        let fact = table.facts[i]
        guard fact.steps != 0 else { continue }
        var st = states[fact.held] ?? Array(repeating: nil, count: n)
        // Later steps first, so one event never advances the attempt it just started or advanced.
        for k in stride(from: n - 1, through: 1, by: -1) where fact.steps & (1 << UInt64(k)) != 0 {
          guard let prev = st[k - 1], fact.time - prev.start <= window else { continue }
          if let cur = st[k], cur.start >= prev.start { continue }
          st[k] = Attempt(start: prev.start, times: prev.times + [fact.time])
        }
        if fact.steps & 1 != 0, q.inRange(fact.time) { st[0] = Attempt(start: fact.time, times: [fact.time]) }
        states[fact.held] = st
        if let top = st.lastIndex(where: { $0 != nil }), let a = st[top] {
          if best == nil || a.times.count > (best?.times.count ?? 0) { best = a }
        }
      }
      guard let best else { continue }
      for k in 0..<best.times.count {
        reached[k] += 1
        if k > 0 { gaps[k].append(Double(best.times[k] - best.times[k - 1]) / 1_000_000) }
      }
    }
    let entered = reached.first ?? 0
    let steps = f.steps.enumerated().map { k, step in
      FunnelResult.Step(
        name: step.name, units: reached[k], conversion: percent(reached[k], entered),
        fromPrevious: k == 0 ? percent(reached[k], entered) : percent(reached[k], reached[k - 1]),
        medianSeconds: k == 0 ? nil : median(gaps[k]))
    }
    return FunnelResult(unit: unit, steps: steps)
  }

  static func percent(_ a: Int, _ b: Int) -> Double { b == 0 ? 0 : Double(a) * 100 / Double(b) }

  static func median(_ xs: [Double]) -> Double? {
    guard !xs.isEmpty else { return nil }
    let s = xs.sorted()
    return s.count % 2 == 1 ? s[s.count / 2] : (s[s.count / 2 - 1] + s[s.count / 2]) / 2
  }

  // MARK: attribution

  /// Each touch's share of one conversion under `model`; the shares add up to 1.
  public static func shares(
    _ model: AttributionModel, times: [Int64], direct: [Bool], at conversion: Int64, firstWeight: Double,
    lastWeight: Double, halfLife: TimeSpan
  ) -> [Double] {
    let n = times.count
    guard n > 0 else { return [] }
    var w = Array(repeating: 0.0, count: n)
    switch model {
    case .first_touch: w[0] = 1
    case .last_touch: w[n - 1] = 1
    case .last_non_direct: w[direct.lastIndex(of: false) ?? n - 1] = 1
    case .linear: w = Array(repeating: 1 / Double(n), count: n)
    case .position_based:
      if n == 1 {
        w[0] = 1
      } else if n == 2 || firstWeight + lastWeight >= 1 {
        let total = firstWeight + lastWeight
        w[0] = total > 0 ? firstWeight / total : 0.5
        w[n - 1] = total > 0 ? lastWeight / total : 0.5
        if n > 2, total <= 0 { w = Array(repeating: 1 / Double(n), count: n) }
      } else {
        w[0] = firstWeight
        w[n - 1] = lastWeight
        for k in 1..<(n - 1) { w[k] = (1 - firstWeight - lastWeight) / Double(n - 2) }
      }
    case .time_decay:
      let h = Double(halfLife.microseconds)
      w = times.map { pow(2, -Double(conversion - $0) / h) }
      let total = w.reduce(0, +)
      w = w.map { $0 / total }
    }
    return w
  }

  static func attribution(
    _ a: AttributionDecl, _ q: ReportQuery, _ groups: [[Int]], _ table: FactTable, _ unit: CountingUnit
  ) -> AttributionResult {
    var credit: [[Int32: (Double, Double)]] = Array(repeating: [:], count: a.models.count)
    var r = AttributionResult(
      unit: unit, units: groups.count, conversions: 0, convertingUnits: 0, value: 0, unattributed: 0,
      unattributedValue: 0, models: [],
      paths: [])
    var paths: [[Int32]: (conversions: Int, units: Int, value: Double)] = [:]
    let lookback = a.lookback.microseconds
    for g in groups {
      var touches: [Fact] = []
      var converted = false
      var pathsOfUnit: Set<[Int32]> = []
      for i in g {
        let f = table.facts[i]
        if f.channel >= 0 { touches.append(f) }
        guard f.conversion, q.inRange(f.time) else { continue }
        converted = true
        r.conversions += 1
        r.value += f.value
        // Touches in [conversion - lookback, conversion], the earliest first.
        var lo = 0
        var hi = touches.count
        while lo < hi {
          let mid = (lo + hi) / 2
          if touches[mid].time < f.time - lookback { lo = mid + 1 } else { hi = mid }
        }
        let window = touches[lo...]
        var path: [Int32] = []
        for t in window where path.last != t.channel { path.append(t.channel) }
        var p = paths[path] ?? (0, 0, 0)
        p.conversions += 1
        p.value += f.value
        if pathsOfUnit.insert(path).inserted { p.units += 1 }
        paths[path] = p
        if window.isEmpty {
          r.unattributed += 1
          r.unattributedValue += f.value
          continue
        }
        let times = window.map(\.time)
        let direct = window.map { $0.channel == table.direct }
        for (m, model) in a.models.enumerated() {
          let w = shares(
            model, times: times, direct: direct, at: f.time, firstWeight: a.firstWeight, lastWeight: a.lastWeight,
            halfLife: a.halfLife)
          for (t, share) in zip(window, w) where share > 0 {
            var c = credit[m][t.label] ?? (0, 0)
            c.0 += share
            c.1 += share * f.value
            credit[m][t.label] = c
          }
        }
      }
      if converted { r.convertingUnits += 1 }
    }
    r.models = a.models.enumerated().map { m, model in
      ModelCredits(
        model: model,
        credits: credit[m].map { Credit(key: table.labels[$0.key], conversions: $0.value.0, value: $0.value.1) }
          .sorted { ($1.conversions, $0.key) < ($0.conversions, $1.key) })
    }
    r.paths = paths.map {
      ConversionPath(
        channels: $0.key.map { table.labels[$0] }, conversions: $0.value.conversions, units: $0.value.units,
        value: $0.value.value)
    }
    .sorted { ($1.conversions, $1.value, $0.text) < ($0.conversions, $0.value, $1.text) }
    r.paths = Array(r.paths.prefix(q.topPaths))
    return r
  }
}

extension ReportQuery.Kind {
  var name: String {
    switch self {
    case .funnel: return "funnel"
    case .attribution: return "attribution"
    }
  }
}
