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
/// `StoreUnavailable.connectionLost` instead of waiting for the pool, which does not give up on a server that is
/// gone: those that come later at `check()`, those already waiting for a pooled connection (`Lending`s registered here) when the
/// watcher notices. The watcher reconnects with backoff (0.25 s doubling to 5 s) and operations go through again
/// as soon as it has.
final class Reachability: Sendable {
  struct State {
    var lostReason: String?
    var waiting: [ObjectIdentifier: Lending] = [:]
  }
  let state = Mutex(State())

  /// Throws `connectionLost` while the server is known to be away.
  func check() throws {
    if let reason = state.withLock({ $0.lostReason }) { throw StoreUnavailable(.connectionLost, reason) }
  }

  /// The server is away: later operations fail at `check()`, and the ones waiting for a connection now.
  func lose(_ reason: String) {
    let waiting = state.withLock { s in
      s.lostReason = reason
      return Array(s.waiting.values)
    }
    for lending in waiting { lending.fail(StoreUnavailable(.connectionLost, reason)) }
  }

  /// Waits for `lending`'s connection unless the server is, or becomes, known to be away meanwhile (or the
  /// calling task is cancelled).
  func connection(_ lending: Lending) async throws -> PostgresConnection {
    let key = ObjectIdentifier(lending)
    let lost = state.withLock { s in
      if s.lostReason == nil { s.waiting[key] = lending }
      return s.lostReason
    }
    if let lost { throw StoreUnavailable(.connectionLost, lost) }
    defer { _ = state.withLock { $0.waiting.removeValue(forKey: key) } }
    return try await withTaskCancellationHandler {
      try await lending.connection()
    } onCancel: {
      lending.fail(CancellationError())
    }
  }

  /// Watches until cancelled.
  func watch(_ config: PostgresConnection.Configuration, logger: Logger) async {
    var wait = Duration.milliseconds(250)
    while !Task.isCancelled {
      do {
        let conn = try await PostgresConnection.connect(configuration: config, id: 1, logger: logger)
        state.withLock { $0.lostReason = nil }
        wait = .milliseconds(250)
        // Held until the server closes it or the store closes.
        await withTaskCancellationHandler {
          try? await conn.closeFuture.get()
        } onCancel: {
          conn.close().whenComplete { _ in }
        }
        if Task.isCancelled { return }
        lose("the database server closed the connection (stopped or restarted)")
      } catch {
        if Task.isCancelled { return }
        lose("cannot connect to the database server: \(PostgresFault.describe(error))")
        try? await Task.sleep(for: wait)
        wait = min(.seconds(5), wait * 2)
      }
    }
  }
}

/// One operation's pooled connection, handed over by the task that holds the pool's lease (`lend`) to the
/// operation waiting for it (`connection`), and given back when the operation is done. The wait can be failed
/// from outside (`fail`: the server is known to be away, the operation was cancelled); a connection lent after
/// that goes straight back to the pool.
final class Lending: Sendable {
  struct State {
    var lent: PostgresConnection?
    var failed: (any Error)?
    var waiter: CheckedContinuation<PostgresConnection, any Error>?
    var givenBack = false
    var holder: CheckedContinuation<Void, Never>?
  }
  let state = Mutex(State())

  /// The holder's side: hands `conn` over and returns when it is given back (at once when the wait failed).
  func lend(_ conn: PostgresConnection) async {
    let (gaveUp, waiter) = state.withLock { s -> (Bool, CheckedContinuation<PostgresConnection, any Error>?) in
      if s.failed != nil { return (true, nil) }
      s.lent = conn
      defer { s.waiter = nil }
      return (false, s.waiter)
    }
    if gaveUp { return }
    waiter?.resume(returning: conn)
    await withCheckedContinuation { (c: CheckedContinuation<Void, Never>) in
      let now = state.withLock { s in
        if s.givenBack { return true }
        s.holder = c
        return false
      }
      if now { c.resume() }
    }
  }

  /// The operation's side: the connection once lent; throws what `fail` was given.
  func connection() async throws -> PostgresConnection {
    try await withCheckedThrowingContinuation { (c: CheckedContinuation<PostgresConnection, any Error>) in
      let ready: Result<PostgresConnection, any Error>? = state.withLock { s in
        if let e = s.failed { return .failure(e) }
        if let conn = s.lent { return .success(conn) }
        s.waiter = c
        return nil
      }
      if let ready { c.resume(with: ready) }
    }
  }

  /// Ends the wait with `error` unless the connection was handed over already.
  func fail(_ error: any Error) {
    let waiter = state.withLock { s -> CheckedContinuation<PostgresConnection, any Error>? in
      if s.failed != nil || s.lent != nil { return nil }
      s.failed = error
      defer { s.waiter = nil }
      return s.waiter
    }
    waiter?.resume(throwing: error)
  }

  /// The operation is done with the connection: the holder returns it to the pool.
  func giveBack() {
    let holder = state.withLock { s -> CheckedContinuation<Void, Never>? in
      s.givenBack = true
      defer { s.holder = nil }
      return s.holder
    }
    holder?.resume()
  }
}
