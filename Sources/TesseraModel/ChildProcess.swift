import Foundation
import Synchronization

#if canImport(Glibc)
  import Glibc
#endif

/// A child process started with `posix_spawn` and reaped with `waitpid`.
///
/// Foundation's `Process.run()` on Linux crashed the test suite (SIGSEGV in memmove inside it, about one whole-suite
/// run in five, also with every launch serialised behind one lock): it enumerates and closes the parent's open
/// descriptors and runs a run-loop thread per process. `posix_spawn` does neither; the child closes every descriptor
/// above standard error itself (`closefrom` as a file action), so a server it starts holds none of the parent's
/// sockets or database files. Every test and tool that starts a program goes through here.
public final class ChildProcess: Sendable {
  /// Where a standard stream goes.
  public enum Stream: Sendable {
    case null
    /// A file, created or truncated.
    case file(String)
    /// Appended to a file, created when missing.
    case append(String)
    /// Standard error only: wherever standard output goes.
    case standardOutput
  }

  public struct Failure: Error, CustomStringConvertible {
    public var description: String
  }

  public let pid: pid_t
  let reaped = Mutex<Int32?>(nil)

  init(pid: pid_t) { self.pid = pid }

  /// Starts `path` with `arguments`; `environment` replaces the parent's when given; `directory` is the child's
  /// working directory (the parent's when nil).
  public static func spawn(
    _ path: String, _ arguments: [String], environment: [String: String]? = nil, directory: String? = nil,
    standardInput: String = "/dev/null", standardOutput: Stream = .null, standardError: Stream = .null
  ) throws -> ChildProcess {
    var actions = posix_spawn_file_actions_t()
    posix_spawn_file_actions_init(&actions)
    defer { posix_spawn_file_actions_destroy(&actions) }
    posix_spawn_file_actions_addopen(&actions, 0, standardInput, O_RDONLY, 0)
    for (fd, stream) in [(Int32(1), standardOutput), (Int32(2), standardError)] {
      switch stream {
      case .null: posix_spawn_file_actions_addopen(&actions, fd, "/dev/null", O_WRONLY, 0)
      case .file(let file): posix_spawn_file_actions_addopen(&actions, fd, file, O_WRONLY | O_CREAT | O_TRUNC, 0o644)
      case .append(let file):
        posix_spawn_file_actions_addopen(&actions, fd, file, O_WRONLY | O_CREAT | O_APPEND, 0o644)
      case .standardOutput: posix_spawn_file_actions_adddup2(&actions, 1, fd)
      }
    }
    if let closeFrom = GNU.closeFrom { _ = closeFrom(&actions, 3) }
    if let directory {
      guard let chdir = GNU.chdir else {
        throw Failure(description: "this C library cannot start a child in \(directory)")
      }
      _ = chdir(&actions, directory)
    }
    // A child starts with default signal handling whatever the parent ignores (a server ignores SIGPIPE).
    var attributes = posix_spawnattr_t()
    posix_spawnattr_init(&attributes)
    defer { posix_spawnattr_destroy(&attributes) }
    var defaults = sigset_t()
    sigemptyset(&defaults)
    sigaddset(&defaults, SIGPIPE)
    var none = sigset_t()
    sigemptyset(&none)
    posix_spawnattr_setsigdefault(&attributes, &defaults)
    posix_spawnattr_setsigmask(&attributes, &none)
    posix_spawnattr_setflags(&attributes, Int16(POSIX_SPAWN_SETSIGDEF | POSIX_SPAWN_SETSIGMASK))

    let argv: [UnsafeMutablePointer<CChar>?] = ([path] + arguments).map { strdup($0) } + [nil]
    defer { for a in argv { free(a) } }
    let env: [UnsafeMutablePointer<CChar>?]? = environment.map { e in
      e.sorted { $0.key < $1.key }.map { strdup("\($0.key)=\($0.value)") } + [nil]
    }
    defer { for a in env ?? [] { free(a) } }
    var pid: pid_t = 0
    let spawned: Int32 =
      if let env {
        env.withUnsafeBufferPointer { posix_spawn(&pid, path, &actions, &attributes, argv, $0.baseAddress) }
      } else {
        posix_spawn(&pid, path, &actions, &attributes, argv, environ)
      }
    guard spawned == 0 else {
      throw Failure(description: "\(path) failed to start: \(String(cString: strerror(spawned)))")
    }
    return ChildProcess(pid: pid)
  }

  /// Runs a program to its end; its exit status (see `status`). With `atMost`, a program still running then is
  /// killed (SIGKILL) and `Failure` thrown: a test that starts one fails instead of hanging.
  public static func run(
    _ path: String, _ arguments: [String], environment: [String: String]? = nil, directory: String? = nil,
    standardOutput: Stream = .null, standardError: Stream = .null, atMost limit: Duration? = nil
  ) async throws -> Int32 {
    let child = try spawn(
      path, arguments, environment: environment, directory: directory, standardOutput: standardOutput,
      standardError: standardError)
    guard let limit else { return await child.wait() }
    guard let status = await child.wait(atMost: limit) else {
      throw Failure(description: "\(path) \(arguments.joined(separator: " ")) still ran after \(limit); killed")
    }
    return status
  }

  /// Runs a program to its end, blocking the calling thread; its exit status.
  public static func runBlocking(
    _ path: String, _ arguments: [String], standardOutput: Stream = .null, standardError: Stream = .null
  ) throws -> Int32 {
    let child = try spawn(path, arguments, standardOutput: standardOutput, standardError: standardError)
    var status: Int32 = 0
    while waitpid(child.pid, &status, 0) < 0 && errno == EINTR {}
    let code = Self.code(status)
    child.reaped.withLock { $0 = code }
    return code
  }

  /// The exit status once the child has ended, nil while it runs (reaps it when it has ended).
  public var status: Int32? {
    reaped.withLock { reaped in
      if let reaped { return reaped }
      var status: Int32 = 0
      guard waitpid(pid, &status, WNOHANG) == pid else { return nil }
      reaped = Self.code(status)
      return reaped
    }
  }

  /// Waits for the child to end; its exit code, or the number of the signal that ended it (as Foundation's
  /// `terminationStatus` reports).
  public func wait() async -> Int32 {
    while true {
      if let status = await poll(until: nil) { return status }
    }
  }

  /// Polls (1 ms doubling to 20 ms) until the child ends or `end` passes: its status, nil at `end`.
  func poll(until end: ContinuousClock.Instant?) async -> Int32? {
    var pause = 1
    while end.map({ ContinuousClock.now < $0 }) ?? true {
      if let status { return status }
      try? await Task.sleep(for: .milliseconds(pause))
      pause = min(pause * 2, 20)
    }
    return status
  }

  /// Waits at most `limit` for the child to end: its status (as `wait()`), or nil when it still ran then, after
  /// which it is killed (SIGKILL) and reaped.
  public func wait(atMost limit: Duration) async -> Int32? {
    if let status = await poll(until: ContinuousClock.now + limit) { return status }
    signal(SIGKILL)
    _ = await wait()
    return nil
  }

  /// Sends a signal (SIGTERM unless given) unless the child has been reaped.
  public func signal(_ signal: Int32 = SIGTERM) {
    reaped.withLock { if $0 == nil { _ = kill(pid, signal) } }
  }

  /// glibc's file actions that need `_GNU_SOURCE` (glibc 2.29 and 2.34), which the Glibc module does not import: looked
  /// up by name, nil on a C library without them.
  enum GNU {
    typealias CloseFrom = @convention(c) (UnsafeMutablePointer<posix_spawn_file_actions_t>, Int32) -> Int32
    typealias Chdir = @convention(c) (UnsafeMutablePointer<posix_spawn_file_actions_t>, UnsafePointer<CChar>) -> Int32

    static let closeFrom: CloseFrom? = dlsym(nil, "posix_spawn_file_actions_addclosefrom_np").map {
      unsafeBitCast($0, to: CloseFrom.self)
    }
    static let chdir: Chdir? = dlsym(nil, "posix_spawn_file_actions_addchdir_np").map {
      unsafeBitCast($0, to: Chdir.self)
    }
  }

  /// Exited: the exit code (WIFEXITED/WEXITSTATUS spelled out, the macros are not imported); killed: the signal.
  static func code(_ status: Int32) -> Int32 {
    status & 0x7f == 0 ? (status >> 8) & 0xff : status & 0x7f
  }
}
