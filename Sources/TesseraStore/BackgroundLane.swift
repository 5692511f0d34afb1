import Dispatch
import Foundation
import Synchronization

#if canImport(Glibc)
  import Glibc
#endif

/// Threads of its own (one by default), at a lower scheduling priority than the rest of the process, that run
/// the tasks which prefer it (`withTaskExecutorPreference(lane)`): work that must get done but may wait while the process has
/// more urgent work, such as resolving events that are already durable in the journal while requests are
/// being acknowledged.
///
/// On Linux the thread's nice value is raised by `niceness` (`setpriority` from the thread itself). The kernel
/// then gives it a small share of the CPU while the process's other threads are busy, and all of it when they
/// are idle: background work never starves, it fills the gaps. Elsewhere the lane is an ordinary thread.
///
/// Code running on the lane may block its thread (a synchronous store transaction) without blocking the
/// shared cooperative pool; `BackgroundLane.isCurrent` tells a store it may do so.
public final class BackgroundLane: TaskExecutor, Sendable {
  private let jobs = Mutex<[UnownedJob]>([])
  private let wake = DispatchSemaphore(value: 0)
  private let stopped = Atomic<Bool>(false)
  /// How much higher the thread's nice value is than the process's (ignored where threads have none).
  public let niceness: Int32

  /// Starts the lane's `threads` threads (one per core lets the tasks on it use every core).
  public init(niceness: Int32 = 10, threads: Int = 1) {
    self.niceness = niceness
    self.threads = max(1, threads)
    for _ in 0..<self.threads {
      let thread = Thread { [self] in
        #if canImport(Glibc)
          // On Linux the nice value belongs to the thread, and `who` 0 names the calling thread. Raising one's
          // own nice value needs no privilege; a failure leaves the lane at normal priority, which is still
          // correct, only less polite.
          _ = setpriority(__priority_which_t(PRIO_PROCESS.rawValue), 0, niceness)
          // Named from the thread itself (Foundation's `name` does not reach the kernel here, and
          // `pthread_setname_np` is not imported), so `top -H` and `perf` show it.
          try? "tessera-lane".write(toFile: "/proc/thread-self/comm", atomically: false, encoding: .utf8)
        #endif
        self.loop()
      }
      thread.start()
    }
  }

  /// How many threads run the lane's jobs.
  public let threads: Int

  public func enqueue(_ job: consuming ExecutorJob) {
    let unowned = UnownedJob(job)
    jobs.withLock { $0.append(unowned) }
    wake.signal()
  }

  /// Ends the threads once the jobs enqueued so far have run. Jobs enqueued afterwards never run.
  public func stop() {
    stopped.store(true, ordering: .releasing)
    for _ in 0..<threads { wake.signal() }
  }

  private func loop() {
    Self.markCurrent(true)
    while true {
      wake.wait()
      // One job per signal, so the jobs spread over the threads.
      let job = jobs.withLock { j in j.isEmpty ? nil : j.removeFirst() }
      if let job { job.runSynchronously(on: asUnownedTaskExecutor()) }
      if stopped.load(ordering: .acquiring) && jobs.withLock({ $0.isEmpty }) {
        Self.markCurrent(false)
        // Wake the next thread so that it sees the stop too.
        wake.signal()
        return
      }
    }
  }

  /// Whether the calling thread is a lane's thread.
  public static var isCurrent: Bool {
    lanes.withLock { $0.contains(pthread_self()) }
  }

  private static func markCurrent(_ on: Bool) {
    let me = pthread_self()
    lanes.withLock { if on { $0.insert(me) } else { $0.remove(me) } }
  }

  private static let lanes = Mutex<Set<pthread_t>>([])
}
