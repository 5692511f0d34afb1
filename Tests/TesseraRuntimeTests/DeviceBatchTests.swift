import Foundation
import TesseraCompiler
import TesseraMatching
import TesseraModel
import TesseraRuntime
import TesseraStore
import Testing

/// Device rules in batch (`tessera link`, `tune`, `explain --records`): each record is a sighting of its
/// signals at its time, and the levels and weights are those the streaming matcher gives the same cases.
@Suite("Device signals in batch")
struct DeviceBatchTests {
  typealias S = DeviceSignalTests

  /// A record as a file row: its id, time (minutes after the start), address and user agent.
  struct Row {
    var id: String
    var minutes: Double
    var ip = "198.51.100.7"
    var ua = S.mac
  }

  static func seconds(_ minutes: Double) -> Int64 {
    S.start.microseconds / 1_000_000 + Int64(minutes * 60)
  }

  /// The records of `rows` prepared for the device rule, as `tessera link` reads a file (signals from the
  /// context columns, times from the time column).
  static func records(_ rows: [Row], config: PipelineConfig, timed: Bool = true) throws -> (RecordSet, MatchModel) {
    let rule = try #require(config.probabilistic.first)
    let model = MatchModel(rule: rule)
    var builder = RecordSetBuilder(model: model, rule: rule, config: config)
    for row in rows {
      let columns = ["ip": row.ip, "user_agent": row.ua, "timezone": "Europe/Berlin"]
      let signals = DeviceSignals.derive(columns: { columns[$0] })
      builder.append(id: row.id, time: timed ? seconds(row.minutes) : nil) { name in
        name.hasPrefix("signals.") ? signals[String(name.dropFirst("signals.".count))] : nil
      }
    }
    var set = builder.finish()
    if !timed { set.computeSharing(model, times: nil) }
    return (set, model)
  }

  /// The pairs `Linker` scores (the compare path of `tessera link`), by their two ids.
  static func linked(_ records: RecordSet, _ model: MatchModel) async -> [String: Double] {
    let result = await Linker(model: model).run(records)
    var out: [String: Double] = [:]
    for k in 0..<result.pairs.count {
      let (i, j) = (Int(result.pairs.left[k]), Int(result.pairs.right[k]))
      out[records.ids[i] + "~" + records.ids[j]] = Double(result.pairs.weight[k])
      // The compare path and the per-pair path (`explain --records`) agree on every pair.
      #expect(abs(Double(result.pairs.weight[k]) - model.compare(records, i, j).weight) < 1e-4)
      #expect(abs(Double(result.pairs.weight[k]) - Explanation(model: model, records: records, i, j).weight) < 1e-4)
    }
    return out
  }

  /// The streaming matcher's decision on the same two sightings: the link's weight, nil without a link.
  static func streamed(_ a: Row, _ b: Row, config: PipelineConfig) -> Double? {
    var resolver = Resolver(config: config)
    let (commit, _) = resolver.apply(
      S.batch([
        S.view(a.id, anon: a.id, minutes: a.minutes, ip: a.ip, ua: a.ua),
        S.view(b.id, anon: b.id, minutes: b.minutes, ip: b.ip, ua: b.ua),
      ]), stored: [])
    return commit.matchLinks.first?.weight
  }

  @Test("same user agent and address 20 minutes apart: linked, with the weight streaming gives")
  func twentyMinutes() async throws {
    let config = try S.config()
    let rows = [Row(id: "a", minutes: 0), Row(id: "b", minutes: 20)]
    let (set, model) = try Self.records(rows, config: config)
    #expect(set.seen[0] == [Self.seconds(0), Self.seconds(20)])
    let pairs = await Self.linked(set, model)
    let w = try #require(pairs["a~b"])
    #expect(abs(w - (S.prior + S.ipRecent + S.osSame + S.tzSame)) < 1e-4)
    #expect(w >= model.reviewWeight, "in the review band")
    let streaming = try #require(Self.streamed(rows[0], rows[1], config: config))
    #expect(abs(w - streaming) < 1e-4)
    // With a merge threshold the two records are one cluster.
    let joining = try S.config("thresholds: { merge: 0.95, review: 0.9 }")
    let (set2, model2) = try Self.records(rows, config: joining)
    let result = await Linker(model: model2).run(set2)
    #expect(result.cluster[0] == result.cluster[1] && result.joins == 1)
  }

  @Test("the same address 3 days apart: not linked, as in streaming")
  func threeDays() async throws {
    let config = try S.config()
    let rows = [Row(id: "a", minutes: 0), Row(id: "b", minutes: 3 * 24 * 60)]
    let (set, model) = try Self.records(rows, config: config)
    let w = try #require(await Self.linked(set, model)["a~b"])
    // The address reaches `else`: the pair is far below review.
    let ipElse = log2(0.1 / 0.9945)
    #expect(abs(w - (S.prior + ipElse + S.osSame + S.tzSame)) < 1e-4)
    #expect(w < model.reviewWeight)
    #expect(Self.streamed(rows[0], rows[1], config: config) == nil)
    // Without times the level is never reached either: a record file without a time column says nothing
    // about sightings.
    let (untimed, _) = try Self.records(
      [Row(id: "a", minutes: 0), Row(id: "b", minutes: 20)], config: config, timed: false)
    let u = try #require(await Self.linked(untimed, model)["a~b"])
    #expect(abs(u - (S.prior + ipElse + S.osSame + S.tzSame)) < 1e-4)
  }

  @Test("an address 300 records share within the window adds nothing; one 4 share adds 2 bits less")
  func office() async throws {
    let config = try S.config()
    var rows = (0..<300).map { Row(id: "desk-\($0)", minutes: Double($0) / 10, ip: "203.0.113.10") }
    rows.append(Row(id: "visitor", minutes: 31, ip: "203.0.113.10"))
    let (set, model) = try Self.records(rows, config: config)
    #expect(set.sharing[0]?[300] == 300, "every other record is within a day")
    let pairs = await Self.linked(set, model)
    let w = try #require(pairs["desk-299~visitor"])
    // The address agrees within 30 minutes but is shared by 300 > max_sharing (50): it adds 0.
    #expect(abs(w - (S.prior + 0 + S.osSame + S.tzSame)) < 1e-4)
    #expect(!pairs.values.contains { $0 >= model.reviewWeight })
    // A household: 4 records on one address within the window, the pair weighs log2(3) less (3 others
    // share it with each record), as streaming weighs a value 3 earlier profiles hold.
    let home = (0..<4).map { Row(id: "m\($0)", minutes: Double($0), ip: "198.51.100.9") }
    let (house, _) = try Self.records(home, config: config)
    let h = try #require(await Self.linked(house, model)["m0~m1"])
    #expect(abs(h - (S.prior + S.ipRecent - log2(3) + S.osSame + S.tzSame)) < 1e-4)
    // Records outside the window do not count: the same address a week later is shared by nobody then.
    let spread = (0..<4).map { Row(id: "w\($0)", minutes: Double($0) * 7 * 24 * 60, ip: "198.51.100.9") }
    let (weekly, _) = try Self.records(spread, config: config)
    #expect(weekly.sharing[0] == [0, 0, 0, 0])
  }

  @Test("the shared count of a pair matches streaming on the same household")
  func householdMatchesStreaming() async throws {
    let config = try S.config()
    // Three people on one address, then a second browser of the first 10 minutes later.
    var events = (0..<3).map { k in
      S.view("h\(k)", anon: "member-\(k)", user: "member-\(k)", minutes: Double(k), ua: k == 0 ? S.mac : S.windows)
    }
    events.append(S.view("second", anon: "second", minutes: 10, ua: S.macSafari))
    var resolver = Resolver(config: config)
    let (commit, _) = resolver.apply(S.batch(events), stored: [])
    let streaming = try #require(commit.matchLinks.first)
    let rows = [
      Row(id: "member-0", minutes: 0), Row(id: "member-1", minutes: 1, ua: S.windows),
      Row(id: "member-2", minutes: 2, ua: S.windows), Row(id: "second", minutes: 10, ua: S.macSafari),
    ]
    let (set, model) = try Self.records(rows, config: config)
    let w = try #require(await Self.linked(set, model)["member-0~second"])
    #expect(abs(w - streaming.weight) < 1e-4, "batch \(w), streaming \(streaming.weight)")
  }
}
