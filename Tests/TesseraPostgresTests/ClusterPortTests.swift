import TesseraPostgresCluster
import Testing

/// A throwaway cluster keeps its port across `stopServer` and `startServer`. A port from the kernel's ephemeral
/// range could be taken meanwhile by one of the tests' client connections (their local ports come from that
/// range) and the restart would fail to bind: once, a whole-suite run hung in the restart test that way.
@Suite("Throwaway PostgreSQL clusters: ports")
struct ClusterPortTests {
  @Test("ports handed out are distinct, free when handed out, and below the ephemeral range")
  func ports() throws {
    let ports = try (0..<64).map { _ in try PostgresCluster.freePort() }
    #expect(Set(ports).count == ports.count)
    let start = PostgresCluster.ephemeralRangeStart()
    if start >= 11_000 { #expect(ports.allSatisfy { $0 < start }) }
    #expect(ports.allSatisfy { $0 >= 1_024 })
  }
}
