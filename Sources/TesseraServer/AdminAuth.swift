import Foundation
import HTTPTypes
import Hummingbird
import Synchronization

/// Who may call the profile and admin API: a client sending the admin token as `Authorization: Bearer TOKEN`,
/// or the console in a browser holding a session cookie it got by posting the token to `POST /ui/session`.
///
/// The token never travels in a URL and is never logged. A session is a random id in an `HttpOnly`,
/// `SameSite=Strict` cookie, with a second random value (the CSRF token) that the page reads from
/// `GET /ui/session` (same origin only) and sends back in `X-Tessera-CSRF` with every request that changes
/// something; a cookie-authenticated change without it, or from another origin, is refused. A bearer request
/// needs no CSRF token: browsers never attach that header on their own.
struct AdminAuth: Sendable {
  /// nil: the admin API and the console are off.
  let token: String?
  let sessions = ConsoleSessions()

  static let cookie = "tessera_console"
  /// Valid field names, so never nil in practice.
  static let csrfHeader = HTTPField.Name("X-Tessera-CSRF")
  static let fetchSite = HTTPField.Name("Sec-Fetch-Site")

  /// Refuses the request unless it carries the token or a live console session (and, for a change made with
  /// the cookie, the session's CSRF token from the same origin).
  func authorize(_ request: Request) throws {
    guard let token else {
      throw APIError.unauthorized(
        "the profile API is off: start the server with TESSERA_ADMIN_TOKEN set and send it as `Authorization: Bearer TOKEN`",
        scheme: "Bearer")
    }
    if let header = request.headers[.authorization] {
      let parts = header.split(separator: " ", maxSplits: 1)
      let given = parts.count == 2 && parts[0].lowercased() == "bearer" ? String(parts[1]) : ""
      guard Self.same(given, token) else { throw APIError.unauthorized("the admin token is wrong", scheme: "Bearer") }
      return
    }
    guard let id = request.cookies[Self.cookie]?.value, let session = sessions.session(id) else {
      throw APIError.unauthorized("send the admin token as `Authorization: Bearer TOKEN`", scheme: "Bearer")
    }
    if request.method != .get && request.method != .head {
      try Self.sameOrigin(request)
      guard let name = Self.csrfHeader, let sent = request.headers[name], Self.same(sent, session.csrf) else {
        throw APIError(
          status: .forbidden, code: "csrf",
          message: "a change made from the console needs its CSRF token in X-Tessera-CSRF (reload the console)")
      }
    }
  }

  /// Refuses a browser request another site made (`Sec-Fetch-Site`, else `Origin` against `Host`).
  static func sameOrigin(_ request: Request) throws {
    let refused = APIError(
      status: .forbidden, code: "cross_origin", message: "the console's changes are taken from its own pages only")
    if let name = Self.fetchSite, let site = request.headers[name], site != "same-origin" && site != "none" {
      throw refused
    }
    if let origin = request.headers[.origin] {
      let host = request.head.authority ?? ""
      guard let url = URL(string: origin), let h = url.host else { throw refused }
      let authority = url.port.map { "\(h):\($0)" } ?? h
      guard authority == host else { throw refused }
    }
  }

  /// Compares in full whatever the first difference, so the time taken says nothing about the secret.
  static func same(_ given: String, _ expected: String) -> Bool {
    let g = Array(given.utf8)
    let e = Array(expected.utf8)
    var diff = g.count == e.count ? 0 : 1
    for (i, b) in e.enumerated() { diff |= Int(b ^ (i < g.count ? g[i] : 0)) }
    return diff == 0
  }
}

/// The console's sessions, in memory: a restart signs everyone out.
final class ConsoleSessions: Sendable {
  struct Session: Sendable {
    var csrf: String
    var expires: ContinuousClock.Instant
  }
  static let lifetime = Duration.seconds(12 * 3600)
  let sessions = Mutex<[String: Session]>([:])

  /// 32 random bytes from the system's generator (getrandom), as hex.
  static func secret() -> String {
    var g = SystemRandomNumberGenerator()
    return (0..<32).map { _ in String(format: "%02x", UInt8.random(in: 0...255, using: &g)) }.joined()
  }

  func open() -> (id: String, session: Session) {
    let id = Self.secret()
    let s = Session(csrf: Self.secret(), expires: .now + Self.lifetime)
    sessions.withLock { all in
      let now = ContinuousClock.now
      all = all.filter { $0.value.expires > now }
      all[id] = s
    }
    return (id, s)
  }

  func session(_ id: String) -> Session? {
    sessions.withLock { all in
      guard let s = all[id] else { return nil }
      guard s.expires > .now else {
        all[id] = nil
        return nil
      }
      return s
    }
  }

  func close(_ id: String) { sessions.withLock { $0[id] = nil } }
}
