import Foundation
import Synchronization

/// Starts child processes one at a time. Foundation's `Process.run()` on Linux crashed (SIGSEGV in memmove inside
/// it) when the test suite's many concurrent tests started processes at the same moment; every launcher of the
/// tests goes through here.
public enum ProcessLauncher {
  static let lock = Mutex(())

  public static func run(_ process: Process) throws {
    try lock.withLock { _ in try process.run() }
  }
}
