import Foundation
import TesseraCompiler
import TesseraModel
import TesseraRuntime
import TesseraStore

/// `tessera-bench tick [--profiles N]`: the window tick of a long-running pipeline, through the resolver the
/// server runs (`Resolver.apply` per batch, `Resolver.tick()` as the server's timer calls it).
///
/// N profiles (user ids) and 2N events over 100 days, in time order, feed 20 computed traits (count, sum,
/// max, avg, distinct count; windows 90d, 30d, 7d, 24h and all time) and 50 segments over them. Each hour's
/// events are resolved as one batch, then the clock ticks at the full hour (the server ticks every minute;
/// buckets here are hourly or daily, so only a tick past a full hour can expire anything). Reported: the ticks
/// at each midnight of the last 30 days (daily buckets expire then, across the whole population), the other
/// ticks, and a catch-up tick 30 days after the last event.
enum TickBench {
  static func config() -> PipelineConfig {
    var text = """
      pipeline: tick
      sources:
        events: { kind: ndjson, path: none.ndjson, emit: track, map: { user_id: userId, event: event } }
      identifiers:
        user_id: { normalize: trim, max_per_profile: 1 }
      deterministic:
        ids: { link_on: [user_id] }
      computed:

      """
    let aggregates = ["count", "sum", "max", "avg", "distinct_count"]
    let windows = ["90d", "30d", "7d", "24h", ""]
    for i in 0..<20 {
      let aggregate = aggregates[i % aggregates.count]
      let window = windows[(i / aggregates.count) % windows.count]
      text += "  c\(i): { aggregate: \(aggregate), where: 'event == \"E\(i % 4)\"'"
      if aggregate != "count" { text += ", of: double(properties.v)" }
      if !window.isEmpty { text += ", window: \(window)" }
      text += " }\n"
    }
    text += "segments:\n"
    for i in 0..<50 { text += "  s\(i): 'traits.c\(i % 20) >= \(1 + i % 3) && traits.c\((i + 7) % 20) > 0'\n" }
    let pipeline = text
    let result = Compiler(environment: [:], readFile: { $0 == "tick.yaml" ? pipeline : nil }).compile(
      pipeline: "tick.yaml")
    guard let config = result.plan?.config else { fatalError(result.rendered()) }
    return config
  }

  static func run(profiles n: Int) {
    let config = config()
    var resolver = Resolver(config: config)
    var rng = SplitMix64(seed: 42)
    let hour: Int64 = 3_600_000_000
    // 2024-05-01T00:00:00Z: events are spread evenly over the 100 days after it.
    let start: Int64 = 1_714_521_600_000_000
    let events = 2 * n
    let step = 100 * 24 * hour / Int64(events)
    let clock = ContinuousClock()
    var midnight: [Double] = []
    var other: [Double] = []
    var midnightRows = 0
    var midnightChanges = 0
    var lastHour = start / hour
    var ingest = Duration.zero
    var k = 0
    var seq = 0
    var profiles = 0
    while k < events {
      // The events up to the next hour (about 830 of them for 2M events over 100 days), then the tick.
      var batch: [Event] = []
      let end = (lastHour + 1) * hour
      while k < events, start + Int64(k) * step < end {
        let t = Timestamp(microseconds: start + Int64(k) * step)
        // Every profile appears in the first N events (a permutation of the users: 7,919 is prime, so any N
        // that is not a multiple of it), then users recur at random.
        let user = k < n ? (k &* 7_919) % n + 1 : rng.int(1..<(n + 1))
        batch.append(
          Event(
            id: "e\(k)", source: "events", type: "track", name: "E\(rng.int(0..<4))", timestamp: t, receivedAt: t,
            identifiers: [Identifier("user_id", "u\(user)")], properties: ["v": .int(Int64(rng.int(0..<100)))]))
        k += 1
      }
      lastHour += 1
      if !batch.isEmpty {
        let mapped = MappedBatch(seq: seq, events: batch, rejected: [], invalidIdentifiers: 0)
        seq += 1
        ingest += clock.measure { profiles += resolver.apply(mapped, stored: []).1.profilesCreated }
      }
      resolver.now = Timestamp(microseconds: lastHour * hour)
      var commit = CommitBatch()
      let d = clock.measure { commit = resolver.tick() }
      resolver.now = nil
      let seconds = PipelineBench.seconds(d)
      // The first tick of each of the last 30 days.
      if lastHour % 24 == 0 && lastHour * hour - start >= 70 * 24 * hour {
        midnight.append(seconds)
        midnightRows += commit.computed.count
        midnightChanges += commit.segmentChanges.count
      } else {
        other.append(seconds)
      }
    }
    resolver.now = Timestamp(microseconds: start + 130 * 24 * hour)
    var catchUp = CommitBatch()
    let late = clock.measure { catchUp = resolver.tick() }
    func stats(_ xs: [Double]) -> String {
      let s = xs.sorted()
      guard let last = s.last else { return "none" }
      return String(format: "median %.3f s, max %.3f s over %d ticks", s[s.count / 2], last, s.count)
    }
    print(
      String(
        format: "tick: %d profiles, %d events over 100 days (ingest through the resolver: %.1f s, %d batches)",
        profiles, events, PipelineBench.seconds(ingest), seq))
    print(
      "tick after midnight, last 30 days: \(stats(midnight)); per tick \(midnightRows / max(midnight.count, 1)) "
        + "computed rows, \(midnightChanges / max(midnight.count, 1)) segment changes")
    print("tick, other hours: \(stats(other))")
    print(
      String(
        format: "catch-up tick 30 days after the last event: %.3f s (%d computed rows, %d segment changes)",
        PipelineBench.seconds(late), catchUp.computed.count, catchUp.segmentChanges.count))
  }
}
