import Foundation
import TesseraStore
import Testing

@Suite struct BackgroundLaneTests {
  /// The calling thread's nice value, from `/proc/thread-self/stat` (field 19).
  static func niceness() throws -> Int {
    let stat = try String(contentsOfFile: "/proc/thread-self/stat", encoding: .utf8)
    guard let close = stat.lastIndex(of: ")") else { return .min }
    let fields = stat[stat.index(after: close)...].split(separator: " ")
    return Int(fields[16]) ?? .min
  }

  @Test func tasksPreferringTheLaneRunOnItsLowerPriorityThread() async throws {
    let lane = BackgroundLane(niceness: 7)
    defer { lane.stop() }
    let outside = (try Self.niceness(), BackgroundLane.isCurrent)
    let inside = try await withTaskExecutorPreference(lane) {
      // A child task and an await inside still run on the lane.
      async let child = (try Self.niceness(), BackgroundLane.isCurrent)
      try await Task.sleep(for: .milliseconds(1))
      return [try await child, (try Self.niceness(), BackgroundLane.isCurrent)]
    }
    #expect(outside.1 == false)
    #expect(inside.map(\.0) == [outside.0 + 7, outside.0 + 7])
    #expect(inside.map(\.1) == [true, true])
    #expect(BackgroundLane.isCurrent == false)
  }
}
