import CoreMetrics
import DequeModule
import Synchronization

/// A bounded, multi-producer multi-consumer channel of batches: the edge between two stages.
///
/// A send suspends while `capacity` batches wait, so a slow stage holds back the stages before it instead of
/// buffering without limit. The channel ends when every producer has called `finish()` and the buffer is
/// drained; `close()` ends it at once for everyone (the graph failed or was cancelled), dropping what waits.
/// A task cancelled while it waits to send or receive is resumed: its send is dropped, its receive ends.
public final class Channel<Element: Sendable>: Sendable {
  struct Waiter<T> {
    var id: UInt64
    var continuation: CheckedContinuation<T, Never>
  }
  struct State {
    var buffer: Deque<(Element, Int)> = []
    var senders: Deque<(Waiter<Bool>, Element, Int)> = []
    var receivers: Deque<Waiter<Element?>> = []
    var producers: Int
    var closed = false
    var nextID: UInt64 = 0
    /// Items (not batches) in the buffer and in suspended sends.
    var items = 0
  }

  enum SendStep {
    case done(Bool)
    case handed(CheckedContinuation<Element?, Never>)
    case wait
  }
  enum ReceiveStep {
    case now(Element?, CheckedContinuation<Bool, Never>?)
    case wait
  }

  let state: Mutex<State>
  public let capacity: Int

  /// `producers`: how many tasks send into the channel; it ends once each has called `finish()`.
  public init(capacity: Int, producers: Int = 1) {
    self.capacity = max(1, capacity)
    state = Mutex(State(producers: max(1, producers)))
  }

  /// Sends a batch of `items` items; suspends while the channel is full. False when the channel was closed
  /// (the batch is dropped) or the task was cancelled while waiting.
  @discardableResult
  public func send(_ element: Element, items: Int = 1) async -> Bool {
    let step = state.withLock { s -> SendStep in
      // Closed, or every producer has finished: nothing more may enter.
      if s.closed || s.producers == 0 { return .done(false) }
      if let r = s.receivers.popFirst() { return .handed(r.continuation) }
      if s.buffer.count < capacity {
        s.buffer.append((element, items))
        s.items += items
        return .done(true)
      }
      return .wait
    }
    switch step {
    case .done(let ok):
      return ok
    case .handed(let c):
      c.resume(returning: element)
      return true
    case .wait:
      let id = state.withLock { s in
        s.nextID += 1
        return s.nextID
      }
      let ok = await withTaskCancellationHandler {
        await withCheckedContinuation { (c: CheckedContinuation<Bool, Never>) in
          let resume: Bool? = state.withLock { s in
            if s.closed || Task.isCancelled { return false }
            if let r = s.receivers.popFirst() {
              // A receiver arrived between the two locks: hand the element over directly.
              r.continuation.resume(returning: element)
              return true
            }
            if s.buffer.count < capacity {
              s.buffer.append((element, items))
              s.items += items
              return true
            }
            s.senders.append((Waiter(id: id, continuation: c), element, items))
            s.items += items
            return nil
          }
          if let resume { c.resume(returning: resume) }
        }
      } onCancel: {
        let waiter = state.withLock { s -> Waiter<Bool>? in
          guard let i = s.senders.firstIndex(where: { $0.0.id == id }) else { return nil }
          s.items -= s.senders[i].2
          return s.senders.remove(at: i).0
        }
        waiter?.continuation.resume(returning: false)
      }
      return ok
    }
  }

  /// Puts an instruction into the channel at once, past its capacity (it holds no items, so it cannot make the
  /// receiver fall behind); false when the channel has ended. For the graph's own signals, never for data.
  @discardableResult
  public func nudge(_ element: Element) -> Bool {
    let step = state.withLock { s -> SendStep in
      if s.closed || s.producers == 0 { return .done(false) }
      if let r = s.receivers.popFirst() { return .handed(r.continuation) }
      s.buffer.append((element, 0))
      return .done(true)
    }
    switch step {
    case .done(let ok): return ok
    case .handed(let c):
      c.resume(returning: element)
      return true
    case .wait: return false
    }
  }

  /// The next batch; nil once the channel has ended (or was closed, or the task was cancelled).
  public func receive() async -> Element? {
    let step = state.withLock { s -> ReceiveStep in
      if let (e, n) = s.buffer.popFirst() {
        s.items -= n
        // A suspended sender takes the freed place.
        var woken: CheckedContinuation<Bool, Never>?
        if let (w, e2, n2) = s.senders.popFirst() {
          s.buffer.append((e2, n2))
          woken = w.continuation
        }
        return .now(e, woken)
      }
      if let (w, e, n) = s.senders.popFirst() {
        s.items -= n
        return .now(e, w.continuation)
      }
      if s.closed || s.producers == 0 { return .now(nil, nil) }
      return .wait
    }
    switch step {
    case .now(let e, let woken):
      woken?.resume(returning: true)
      return e
    case .wait:
      let id = state.withLock { s in
        s.nextID += 1
        return s.nextID
      }
      return await withTaskCancellationHandler {
        await withCheckedContinuation { (c: CheckedContinuation<Element?, Never>) in
          let again = state.withLock { s -> ReceiveStep in
            if let (e, n) = s.buffer.popFirst() {
              s.items -= n
              var woken: CheckedContinuation<Bool, Never>?
              if let (w, e2, n2) = s.senders.popFirst() {
                s.buffer.append((e2, n2))
                woken = w.continuation
              }
              return .now(e, woken)
            }
            if let (w, e, n) = s.senders.popFirst() {
              s.items -= n
              return .now(e, w.continuation)
            }
            if s.closed || s.producers == 0 || Task.isCancelled { return .now(nil, nil) }
            s.receivers.append(Waiter(id: id, continuation: c))
            return .wait
          }
          if case .now(let e, let woken) = again {
            woken?.resume(returning: true)
            c.resume(returning: e)
          }
        }
      } onCancel: {
        let waiter = state.withLock { s -> Waiter<Element?>? in
          guard let i = s.receivers.firstIndex(where: { $0.id == id }) else { return nil }
          return s.receivers.remove(at: i)
        }
        waiter?.continuation.resume(returning: nil)
      }
    }
  }

  /// One producer is done; when the last one is, receivers get nil once the buffer is drained.
  public func finish() {
    let waiting = state.withLock { s -> [Waiter<Element?>] in
      s.producers = max(0, s.producers - 1)
      guard s.producers == 0, s.buffer.isEmpty, s.senders.isEmpty else { return [] }
      defer { s.receivers.removeAll() }
      return Array(s.receivers)
    }
    for w in waiting { w.continuation.resume(returning: nil) }
  }

  /// Ends the channel now: waiting senders get false, receivers nil, and what was buffered is dropped.
  public func close() {
    let (senders, receivers) = state.withLock { s -> ([Waiter<Bool>], [Waiter<Element?>]) in
      s.closed = true
      s.buffer.removeAll()
      s.items = 0
      defer {
        s.senders.removeAll()
        s.receivers.removeAll()
      }
      return (s.senders.map(\.0), Array(s.receivers))
    }
    for w in senders { w.continuation.resume(returning: false) }
    for w in receivers { w.continuation.resume(returning: nil) }
  }

  /// Batches and items waiting in the channel now.
  public var depth: (batches: Int, items: Int) {
    state.withLock { ($0.buffer.count + $0.senders.count, $0.items) }
  }
}

/// What went through one edge of the plan: batches and items (records, events, rows), read by the progress
/// display, the metrics and the tests that compare a run with its plan.
public final class EdgeMeter: Sendable {
  let counts = Mutex((batches: 0, items: 0))
  /// `tessera_edge_items_total{from, to}`, when the graph reports to a metrics factory.
  let counter: CoreMetrics.Counter?
  public init(counter: CoreMetrics.Counter? = nil) { self.counter = counter }
  public func sent(_ items: Int) {
    counts.withLock {
      $0.batches += 1
      $0.items += items
    }
    counter?.increment(by: items)
  }
  public var batches: Int { counts.withLock { $0.batches } }
  public var items: Int { counts.withLock { $0.items } }
}
