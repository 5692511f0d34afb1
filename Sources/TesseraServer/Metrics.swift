import Synchronization

/// The server's metrics, rendered in the Prometheus text format by `GET /metrics`.
///
/// Counters and histograms are keyed by metric name and label set; gauges are read when the page is rendered.
/// One mutex guards all of it: updates are a dictionary write, far below the cost of the request around them.
public final class ServerMetrics: Sendable {
  struct Histogram: Sendable {
    var buckets: [Double]
    var counts: [Int]
    var sum = 0.0
    var count = 0
    init(buckets: [Double]) {
      self.buckets = buckets
      self.counts = Array(repeating: 0, count: buckets.count)
    }
    mutating func observe(_ v: Double) {
      for (i, b) in buckets.enumerated() where v <= b { counts[i] += 1 }
      sum += v
      count += 1
    }
  }
  struct Key: Hashable, Sendable, Comparable {
    var name: String
    var labels: [String: String]
    static func < (a: Key, b: Key) -> Bool { (a.name, a.labelText) < (b.name, b.labelText) }
    var labelText: String {
      labels.sorted { $0.key < $1.key }.map { "\($0.key)=\"\(ServerMetrics.escape($0.value))\"" }.joined(separator: ",")
    }
  }
  struct State: Sendable {
    var counters: [Key: Double] = [:]
    var histograms: [Key: Histogram] = [:]
  }

  /// Request latencies: 1 ms to 10 s.
  public static let latencyBuckets = [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 10]
  /// Events per group commit.
  public static let sizeBuckets: [Double] = [1, 10, 100, 500, 1000, 2000, 5000, 10000, 50000]

  static let help: [String: (type: String, help: String)] = [
    "tessera_http_requests_total": ("counter", "HTTP requests answered, by route, method and status."),
    "tessera_http_request_duration_seconds": ("histogram", "Time from request to response, by route."),
    "tessera_events_accepted_total": ("counter", "Tracking events stored, by source."),
    "tessera_events_duplicate_total": ("counter", "Tracking events already stored (same messageId), by source."),
    "tessera_events_suppressed_total": ("counter", "Events dropped because they carry a deleted person's identifier."),
    "tessera_events_rejected_total": ("counter", "Tracking messages rejected, by source and reason."),
    "tessera_merges_total": ("counter", "Profile merges made by the live pipeline."),
    "tessera_profiles_created_total": ("counter", "Profiles created by the live pipeline."),
    "tessera_resolve_duration_seconds": (
      "histogram", "Time to resolve one group of requests (duplicate check, resolution, unification, encoding)."
    ),
    "tessera_commit_duration_seconds": ("histogram", "Time of the store transaction of one group of requests."),
    "tessera_commit_events": ("histogram", "Events per group commit."),
    "tessera_deletions_total": ("counter", "People erased through the API."),
    "tessera_pipeline_queue_requests": ("gauge", "Requests waiting for the pipeline's writer."),
    "tessera_pipeline_queue_events": ("gauge", "Events waiting for the pipeline's writer."),
    "tessera_profiles": ("gauge", "Live profiles held by the pipeline's identity graph."),
    "tessera_pipeline_writer": ("gauge", "1 when this process is the store's writer (resolves), 0 when it journals."),
    "tessera_journal_backlog": ("gauge", "Journaled events waiting for the writer (an upper bound, up to 1 s old)."),
    "tessera_journal_resolved_total": ("counter", "Events other processes journaled that this writer resolved."),
  ]

  let state = Mutex(State())
  let gauges: Mutex<[String: @Sendable () -> Double]> = Mutex([:])

  public init() {}

  public func increment(_ name: String, _ labels: [String: String] = [:], by n: Double = 1) {
    guard n != 0 else { return }
    state.withLock { $0.counters[Key(name: name, labels: labels), default: 0] += n }
  }

  public func observe(_ name: String, _ labels: [String: String] = [:], _ value: Double, buckets: [Double]) {
    state.withLock {
      let key = Key(name: name, labels: labels)
      var h = $0.histograms[key] ?? Histogram(buckets: buckets)
      h.observe(value)
      $0.histograms[key] = h
    }
  }

  /// A gauge read at render time.
  public func gauge(_ name: String, _ read: @escaping @Sendable () -> Double) {
    gauges.withLock { $0[name] = read }
  }

  /// A counter's current value (tests and the benchmark read it).
  public func value(_ name: String, _ labels: [String: String] = [:]) -> Double {
    state.withLock { $0.counters[Key(name: name, labels: labels)] ?? 0 }
  }

  /// The Prometheus text exposition format (version 0.0.4).
  public func render() -> String {
    let (counters, histograms) = state.withLock { ($0.counters, $0.histograms) }
    let gaugeValues = gauges.withLock { $0 }.mapValues { $0() }
    var out = ""
    var described: Set<String> = []
    func describe(_ name: String) {
      guard described.insert(name).inserted, let h = Self.help[name] else { return }
      out += "# HELP \(name) \(h.help)\n# TYPE \(name) \(h.type)\n"
    }
    for k in counters.keys.sorted() {
      describe(k.name)
      out += "\(k.name)\(k.labels.isEmpty ? "" : "{\(k.labelText)}") \(Self.number(counters[k] ?? 0))\n"
    }
    for k in histograms.keys.sorted() {
      guard let h = histograms[k] else { continue }
      describe(k.name)
      let base = k.labelText
      let sep = base.isEmpty ? "" : ","
      for (b, c) in zip(h.buckets, h.counts) {
        out += "\(k.name)_bucket{\(base)\(sep)le=\"\(Self.number(b))\"} \(c)\n"
      }
      out += "\(k.name)_bucket{\(base)\(sep)le=\"+Inf\"} \(h.count)\n"
      let labels = base.isEmpty ? "" : "{\(base)}"
      out += "\(k.name)_sum\(labels) \(Self.number(h.sum))\n\(k.name)_count\(labels) \(h.count)\n"
    }
    for name in gaugeValues.keys.sorted() {
      describe(name)
      out += "\(name) \(Self.number(gaugeValues[name] ?? 0))\n"
    }
    return out
  }

  static func number(_ d: Double) -> String {
    d == d.rounded() && abs(d) < 1e15 ? String(Int64(d)) : String(d)
  }

  static func escape(_ s: String) -> String {
    s.replacingOccurrences(of: "\\", with: "\\\\").replacingOccurrences(of: "\"", with: "\\\"")
      .replacingOccurrences(of: "\n", with: "\\n")
  }
}
