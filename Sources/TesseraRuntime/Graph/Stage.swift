import CoreMetrics
import Synchronization
import TesseraCompiler

/// A stage of the pipeline graph: a Swift type with a typed input and output, run as one or more child tasks
/// of the graph's task group (`StageGraph`). The plan (`PipelinePlan`) names the stages and the data on each
/// edge; `StageGraph` wires each edge with a `Channel` of the receiving stage's `Input`, so an edge whose two
/// ends disagree does not compile.
public protocol Stage: Sendable {
  /// What one batch on the stage's input edge holds.
  associatedtype Input: Sendable
  /// What one batch on its output edge holds.
  associatedtype Output: Sendable
  /// The plan's stage kind this type runs.
  static var kind: StageKind { get }
}

/// The receiving end of an edge, for one task of a stage: counts the time the task spends between taking a
/// batch and asking for the next one as busy.
public struct Inlet<Element: Sendable>: Sendable {
  let channel: Channel<Element>
  let meter: StageMeter

  public init(_ channel: Channel<Element>, meter: StageMeter) {
    self.channel = channel
    self.meter = meter
  }

  /// The next batch, or nil when the edge has ended.
  public func next() async -> Element? {
    meter.idle()
    let e = await channel.receive()
    meter.busy()
    return e
  }
}

/// The sending end of an edge. Edges into one stage share its input channel (fan-in); each edge counts
/// what went through it.
public struct Outlet<Element: Sendable>: Sendable {
  let channel: Channel<Element>
  let meter: StageMeter
  let edge: EdgeMeter

  public init(_ channel: Channel<Element>, meter: StageMeter, edge: EdgeMeter) {
    self.channel = channel
    self.meter = meter
    self.edge = edge
  }

  /// Sends a batch of `items` items; waits while the receiver is behind (not counted as busy). Throws
  /// `CancellationError` when the edge was closed because the graph stopped.
  public func send(_ element: Element, items: Int) async throws {
    meter.idle()
    let ok = await channel.send(element, items: items)
    meter.busy()
    guard ok else { throw CancellationError() }
    edge.sent(items)
  }

  /// This task sends nothing more.
  public func finish() { channel.finish() }
}

/// What one stage did: how many tasks ran it and how long they were busy (not waiting on an edge).
public final class StageMeter: Sendable {
  struct State {
    var tasks = 0
    var busyNanos: UInt64 = 0
    /// Per running task, when it last became busy (nil while it waits).
    var since: [Int: ContinuousClock.Instant] = [:]
  }
  let state = Mutex(State())
  /// `tessera_stage_busy_seconds_total{stage}`, when the graph reports to a metrics factory.
  let busyCounter: FloatingPointCounter?
  public init(busyCounter: FloatingPointCounter? = nil) { self.busyCounter = busyCounter }

  /// A task of the stage starts (busy) and returns its number.
  func start() -> Int {
    state.withLock { s in
      let n = s.tasks
      s.tasks += 1
      s.since[n] = .now
      return n
    }
  }

  /// Marks the calling task's state; tasks are told apart by the task-local number `start` gave.
  func busy() {
    guard let n = StageMeter.task else { return }
    let now = ContinuousClock.now
    state.withLock { s in if s.since[n] == nil { s.since[n] = now } }
  }

  func idle() {
    guard let n = StageMeter.task else { return }
    stop(n)
  }

  func stop(_ n: Int) {
    let now = ContinuousClock.now
    let worked = state.withLock { s -> UInt64 in
      guard let t = s.since.removeValue(forKey: n) else { return 0 }
      let d = Self.nanos(now - t)
      s.busyNanos &+= d
      return d
    }
    if worked > 0 { busyCounter?.increment(by: Double(worked) / 1e9) }
  }

  static func nanos(_ d: Duration) -> UInt64 {
    let c = d.components
    return UInt64(max(0, c.seconds)) &* 1_000_000_000 &+ UInt64(max(0, c.attoseconds / 1_000_000_000))
  }

  /// Tasks started so far.
  public var tasks: Int { state.withLock { $0.tasks } }

  /// Seconds the stage's tasks have been busy, including the current stretch of each busy task.
  public var busySeconds: Double {
    let now = ContinuousClock.now
    return state.withLock { s in
      var n = s.busyNanos
      for t in s.since.values { n &+= Self.nanos(now - t) }
      return Double(n) / 1e9
    }
  }

  /// Runs `body` as one task of the stage: counted, timed, numbered for `busy`/`idle`.
  func run<T>(_ body: () async throws -> T) async rethrows -> T {
    let n = start()
    defer { stop(n) }
    return try await StageMeter.$task.withValue(n) { try await body() }
  }

  @TaskLocal static var task: Int?
}
