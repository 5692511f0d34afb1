import CoreMetrics
import Prometheus
import Synchronization
import TesseraRuntime

/// The server's metrics: swift-metrics counters, gauges and histograms backed by a swift-prometheus registry,
/// rendered in the Prometheus text format by `GET /metrics`.
///
/// The live pipeline's graph reports through the same factory (`GraphMetrics`: items through each edge, busy
/// seconds, tasks and queue depth of each stage). Gauges the server only knows when asked (queue depths, the
/// role) are read just before each rendering.
public final class ServerMetrics: Sendable {
  /// Request latencies: 1 ms to 10 s.
  public static let latencyBuckets = [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 10]
  /// Events per group commit.
  public static let sizeBuckets: [Double] = [1, 10, 100, 500, 1000, 2000, 5000, 10000, 50000]

  public let registry: PrometheusCollectorRegistry
  /// The swift-metrics factory writing into `registry`.
  public let factory: PrometheusMetricsFactory
  let gauges: Mutex<[String: @Sendable () -> Double]> = Mutex([:])
  /// Counter values as counted here, for `value` (tests and the benchmark read them).
  let counted = Mutex<[String: Int64]>([:])
  /// Called before each rendering (the pipeline's graph refreshes its stage gauges).
  let refreshers = Mutex<[@Sendable () -> Void]>([])

  public init() {
    let registry = PrometheusCollectorRegistry()
    var factory = PrometheusMetricsFactory(registry: registry)
    factory.valueHistogramBuckets = [
      "tessera_http_request_duration_seconds": Self.latencyBuckets,
      "tessera_commit_duration_seconds": Self.latencyBuckets,
      "tessera_resolve_duration_seconds": Self.latencyBuckets,
      "tessera_commit_events": Self.sizeBuckets,
    ]
    self.registry = registry
    self.factory = factory
  }

  static func dimensions(_ labels: [String: String]) -> [(String, String)] {
    labels.sorted { $0.key < $1.key }.map { ($0.key, $0.value) }
  }

  static func key(_ name: String, _ labels: [String: String]) -> String {
    name + "{" + dimensions(labels).map { "\($0.0)=\($0.1)" }.joined(separator: ",") + "}"
  }

  public func increment(_ name: String, _ labels: [String: String] = [:], by n: Double = 1) {
    let amount = Int64(n.rounded())
    guard amount != 0 else { return }
    Counter(label: name, dimensions: Self.dimensions(labels), factory: factory).increment(by: amount)
    counted.withLock { $0[Self.key(name, labels), default: 0] += amount }
  }

  /// Adds an observation to a histogram (its buckets are set per name in `init`).
  public func observe(_ name: String, _ labels: [String: String] = [:], _ value: Double, buckets: [Double]) {
    Recorder(label: name, dimensions: Self.dimensions(labels), aggregate: true, factory: factory).record(value)
  }

  /// A gauge read at render time.
  public func gauge(_ name: String, _ read: @escaping @Sendable () -> Double) {
    gauges.withLock { $0[name] = read }
  }

  /// Runs `refresh` before each rendering.
  public func beforeRendering(_ refresh: @escaping @Sendable () -> Void) {
    refreshers.withLock { $0.append(refresh) }
  }

  /// A counter's current value (tests and the benchmark read it).
  public func value(_ name: String, _ labels: [String: String] = [:]) -> Double {
    Double(counted.withLock { $0[Self.key(name, labels)] ?? 0 })
  }

  /// The Prometheus text exposition format.
  public func render() -> String {
    for r in refreshers.withLock({ $0 }) { r() }
    for (name, read) in gauges.withLock({ $0 }) {
      Gauge(label: name, dimensions: [], factory: factory).record(read())
    }
    return registry.emitToString()
  }
}
