import Foundation
import Logging
import PostgresNIO
import Synchronization
import TesseraStore

/// PostgreSQL's errors that mean the store cannot write or cannot be reached, as `StoreUnavailable`.
enum PostgresFault {
  /// SQLSTATEs of a server that is going away or cannot take connections (class 08: connection exceptions).
  static let connectionStates: Set<String> = ["57P01", "57P02", "57P03"]

  /// What went wrong with a connection, without the query or data (`PSQLError`'s own description says
  /// nothing, on purpose).
  static func describe(_ error: any Error) -> String {
    guard let e = error as? PSQLError else { return String(describing: error) }
    if let message = e.serverInfo?[.message] { return "SQLSTATE \(e.serverInfo?[.sqlState] ?? "?"): \(message)" }
    return "\(e.code)" + (e.underlying.map { ": \($0)" } ?? "")
  }

  static func classify(_ error: any Error) -> any Error {
    if let e = error as? PSQLError {
      switch e.code {
      case .serverClosedConnection, .clientClosedConnection, .connectionError, .uncleanShutdown:
        return StoreUnavailable(.connectionLost, describe(e))
      case .server:
        let state = e.serverInfo?[.sqlState] ?? ""
        let message = "SQLSTATE \(state): " + (e.serverInfo?[.message] ?? "")
        if state == "53100" { return StoreUnavailable(.diskFull, message) }
        if state == "25006" { return StoreUnavailable(.readOnly, message) }
        if state == "58030" { return StoreUnavailable(.ioError, message) }
        if state.hasPrefix("08") || connectionStates.contains(state) {
          return StoreUnavailable(.connectionLost, message)
        }
        return error
      default: return error
      }
    }
    return error
  }
}

/// Whether the database server answers, watched on a connection of its own outside the pool: when the server
/// goes away (a restart, a crash) that connection closes at once, and every store operation fails fast with
/// `StoreUnavailable.connectionLost` instead of waiting up to a minute for the pool to give up; the watcher
/// reconnects with backoff (0.25 s doubling to 5 s) and operations go through again as soon as it has.
final class Reachability: Sendable {
  let lostReason = Mutex<String?>(nil)

  /// Throws `connectionLost` while the server is known to be away.
  func check() throws {
    if let reason = lostReason.withLock({ $0 }) { throw StoreUnavailable(.connectionLost, reason) }
  }

  /// Watches until cancelled.
  func watch(_ config: PostgresConnection.Configuration, logger: Logger) async {
    var wait = Duration.milliseconds(250)
    while !Task.isCancelled {
      do {
        let conn = try await PostgresConnection.connect(configuration: config, id: 1, logger: logger)
        lostReason.withLock { $0 = nil }
        wait = .milliseconds(250)
        // Held until the server closes it or the store closes.
        await withTaskCancellationHandler {
          try? await conn.closeFuture.get()
        } onCancel: {
          conn.close().whenComplete { _ in }
        }
        if Task.isCancelled { return }
        lostReason.withLock { $0 = "the database server closed the connection (stopped or restarted)" }
      } catch {
        if Task.isCancelled { return }
        lostReason.withLock { $0 = "cannot connect to the database server: \(PostgresFault.describe(error))" }
        try? await Task.sleep(for: wait)
        wait = min(.seconds(5), wait * 2)
      }
    }
  }
}
