import Foundation
import PostgresNIO
import Synchronization
import TesseraModel
import TesseraPostgres

#if canImport(Glibc)
  import Glibc
#endif

/// A throwaway PostgreSQL cluster: `initdb` into a temporary directory, `pg_ctl start` on a free loopback port,
/// `stop()` stops it and removes the directory. PostgreSQL refuses to run as root, so as root the directory
/// is given to the `postgres` user and the binaries run through `runuser`. Used by the PostgreSQL tests and by
/// `tessera-bench compare-pg`. `fsync` is off: a test or benchmark measures the store's work, not the disk's
/// flush latency (`synchronous_commit` stays on).
public final class PostgresCluster: Sendable {
  public static let binaries = ProcessInfo.processInfo.environment["TESSERA_PG_BIN"] ?? "/usr/lib/postgresql/15/bin"

  /// Whether the server binaries are here; prints the skip line once when they are not.
  public static let available: Bool = {
    let ok =
      FileManager.default.isExecutableFile(atPath: binaries + "/initdb")
      && FileManager.default.isExecutableFile(atPath: binaries + "/pg_ctl")
    if !ok { print("PostgreSQL server binaries not found at \(binaries); skipping the PostgreSQL tests") }
    return ok
  }()

  public let dir: String
  public let port: Int
  public let user: String
  /// Extra server settings (`-c name=value …`), kept for restarts.
  let settings: String
  let asRoot: Bool

  public struct Failed: Error, CustomStringConvertible {
    public var description: String
  }

  /// Starts a cluster; `settings` are extra server options (`-c name=value …`).
  public init(settings: String = "") throws {
    asRoot = getuid() == 0
    user = asRoot ? "postgres" : (ProcessInfo.processInfo.environment["USER"] ?? "postgres")
    let base = FileManager.default.temporaryDirectory.appendingPathComponent("tessera-pg-\(UUID().uuidString)").path
    try FileManager.default.createDirectory(atPath: base, withIntermediateDirectories: true)
    dir = base
    port = try Self.freePort()
    self.settings = settings
    do {
      if asRoot { try Self.run("/bin/chown", ["postgres:postgres", base]) }
      try command("initdb", ["-D", base + "/data", "-A", "trust", "-U", user, "--no-sync", "-E", "UTF8"])
      try startServer()
    } catch {
      stop()
      throw error
    }
  }

  /// The URL of the cluster's `postgres` database.
  public var url: String { "postgres://\(user)@127.0.0.1:\(port)/postgres" }

  /// The URL of a new, empty database in this cluster.
  public func newDatabase(_ name: String) async throws -> String {
    let admin = "postgres://\(user)@127.0.0.1:\(port)/postgres"
    let client = PostgresClient(configuration: try PostgresStore.configuration(url: admin, maximumConnections: 1))
    try await withThrowingTaskGroup(of: Void.self) { group in
      group.addTask { await client.run() }
      try await client.query("CREATE DATABASE \(unescaped: name)")
      group.cancelAll()
    }
    return "postgres://\(user)@127.0.0.1:\(port)/\(name)"
  }

  /// Starts the server (again, after `stopServer`) on the same port with the same data.
  public func startServer() throws {
    try command(
      "pg_ctl",
      [
        "-D", dir + "/data", "-l", dir + "/server.log", "-w", "-o",
        "-h 127.0.0.1 -p \(port) -k \(dir) -c fsync=off -c max_connections=200 \(settings)", "start",
      ])
  }

  /// Stops the server as an operator's restart does (`fast`: sessions are ended, transactions rolled back),
  /// keeping its data for `startServer`.
  public func stopServer() throws {
    try command("pg_ctl", ["-D", dir + "/data", "-m", "fast", "-w", "stop"])
  }

  /// Stops the server (immediately) and removes the directory; safe to call twice.
  public func stop() {
    if FileManager.default.fileExists(atPath: dir + "/data/postmaster.pid") {
      try? command("pg_ctl", ["-D", dir + "/data", "-m", "immediate", "-w", "stop"])
    }
    try? FileManager.default.removeItem(atPath: dir)
  }

  func command(_ name: String, _ arguments: [String]) throws {
    if asRoot {
      try Self.run("/usr/sbin/runuser", ["-u", "postgres", "--", Self.binaries + "/" + name] + arguments)
    } else {
      try Self.run(Self.binaries + "/" + name, arguments)
    }
  }

  /// Runs a program to its end, its output in a temporary file. (Foundation's `Process` did not return from
  /// `pg_ctl start`: the server it leaves running keeps its parent's descriptors.)
  static func run(_ path: String, _ arguments: [String]) throws {
    let log = NSTemporaryDirectory() + "tessera-pg-cmd-\(UUID().uuidString).log"
    defer { try? FileManager.default.removeItem(atPath: log) }
    let status = try ChildProcess.runBlocking(
      path, arguments, standardOutput: .file(log), standardError: .standardOutput)
    if status != 0 {
      let text = (try? String(contentsOfFile: log, encoding: .utf8)) ?? ""
      throw Failed(description: "\(path) \(arguments.joined(separator: " ")) failed (status \(status)): \(text)")
    }
  }

  /// A port nothing listens on: bind port 0 on loopback and read what the kernel chose.
  /// Ports handed out to clusters of this process: a stopped cluster keeps its port for `startServer`.
  static let handedOut = Mutex<Set<Int>>([])

  /// A loopback port for a new cluster: free now, never handed out before in this process, and below the
  /// kernel's ephemeral range where it can be. The kernel takes the local ports of client connections from that
  /// range, so a port of it could be taken by one of the tests' many connections while a cluster is stopped and
  /// restarted (`stopServer`, `startServer`), and the restart would fail to bind; a port the kernel picked
  /// (`bind` to port 0) was in that range.
  public static func freePort() throws -> Int {
    let ephemeralStart = ephemeralRangeStart()
    let low = max(10_000, ephemeralStart - 12_000)
    if ephemeralStart - low >= 1_000 {
      for _ in 0..<2_000 {
        let p = Int.random(in: low..<ephemeralStart)
        guard handedOut.withLock({ $0.insert(p).inserted }) else { continue }
        if (try? bound(to: p)) != nil { return p }
      }
    }
    // No room below the range (an unusual ip_local_port_range): a port the kernel picks.
    while true {
      let p = try bound(to: 0)
      if handedOut.withLock({ $0.insert(p).inserted }) { return p }
    }
  }

  /// The first port of the kernel's ephemeral range (`ip_local_port_range`), 32768 when it cannot be read.
  public static func ephemeralRangeStart() -> Int {
    let text = (try? String(contentsOfFile: "/proc/sys/net/ipv4/ip_local_port_range", encoding: .utf8)) ?? ""
    return text.split(whereSeparator: \.isWhitespace).first.flatMap { Int($0) } ?? 32_768
  }

  /// Binds a loopback socket to `port` (0: one the kernel picks) and closes it; the port it was bound to.
  static func bound(to port: Int) throws -> Int {
    let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
    guard fd >= 0 else { throw Failed(description: "socket() failed") }
    defer { close(fd) }
    var addr = sockaddr_in()
    addr.sin_family = sa_family_t(AF_INET)
    addr.sin_port = UInt16(port).bigEndian
    addr.sin_addr.s_addr = inet_addr("127.0.0.1")
    let bound = withUnsafePointer(to: &addr) {
      $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) }
    }
    guard bound == 0 else { throw Failed(description: "bind() to port \(port) failed") }
    var len = socklen_t(MemoryLayout<sockaddr_in>.size)
    let named = withUnsafeMutablePointer(to: &addr) {
      $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { getsockname(fd, $0, &len) }
    }
    guard named == 0 else { throw Failed(description: "getsockname() failed") }
    return Int(UInt16(bigEndian: addr.sin_port))
  }

}

/// Runs `body` with a fresh cluster, stopped and removed afterwards whether `body` succeeds or throws.
public func withCluster<T>(_ body: (PostgresCluster) async throws -> T) async throws -> T {
  let cluster = try PostgresCluster()
  defer { cluster.stop() }
  return try await body(cluster)
}
