import Foundation
import HTTPTypes
import Hummingbird
import TesseraModel

/// The console at `/ui`: one static page, its script and its style (compiled into the binary,
/// `ConsoleAssets`), drawn in the browser from the admin API. Off (404) without an admin token.
///
/// Every answer under `/ui` carries a strict Content-Security-Policy: scripts and styles from the server only,
/// no inline script or style, no plugins, no framing, fetches to the server only, and Trusted Types required
/// so no string can reach an HTML sink. The page builds its DOM with `textContent` and `createElement` only:
/// tracking payloads are attacker-controlled text and are shown as text.
struct Console: Sendable {
  let auth: AdminAuth

  static let policy = [
    "default-src 'none'", "script-src 'self'", "style-src 'self'", "img-src 'self'", "connect-src 'self'",
    "form-action 'none'", "base-uri 'none'", "frame-ancestors 'none'", "require-trusted-types-for 'script'",
    "trusted-types 'none'",
  ].joined(separator: "; ")

  static func headers(_ contentType: String) -> HTTPFields {
    var h: HTTPFields = [
      .contentType: contentType, .contentSecurityPolicy: policy, .cacheControl: "no-store",
      .xContentTypeOptions: "nosniff",
    ]
    // Valid field names, so never nil in practice.
    if let name = HTTPField.Name("X-Frame-Options") { h[name] = "DENY" }
    if let name = HTTPField.Name("Referrer-Policy") { h[name] = "no-referrer" }
    return h
  }

  static func page(_ text: String, _ contentType: String) -> Response {
    Response(status: .ok, headers: headers(contentType), body: ResponseBody(byteBuffer: ByteBuffer(string: text)))
  }

  func on() throws {
    guard auth.token != nil else {
      throw APIError(
        status: .notFound, code: "console_off",
        message: "the console is off: start the server with TESSERA_ADMIN_TOKEN set, then open /ui")
    }
  }

  func register(on router: Router<BasicRequestContext>) {
    router.get("/ui") { _, _ in
      try on()
      return Self.page(ConsoleAssets.html, "text/html; charset=utf-8")
    }
    router.get("/ui/assets/{name}") { _, context in
      try on()
      switch context.parameters.get("name") {
      case "app.js": return Self.page(ConsoleAssets.script, "text/javascript; charset=utf-8")
      case "app.css": return Self.page(ConsoleAssets.style, "text/css; charset=utf-8")
      default: throw APIError(status: .notFound, code: "not_found", message: "no such console asset")
      }
    }
    // The page asks whether it holds a session, and gets the CSRF token it must send with changes.
    router.get("/ui/session") { request, _ in
      try on()
      guard request.headers[.authorization] == nil, let id = request.cookies[AdminAuth.cookie]?.value,
        let s = auth.sessions.session(id)
      else { throw APIError.unauthorized("sign in with the admin token", scheme: "Cookie") }
      return Self.json(.map(["csrf": .string(s.csrf)]))
    }
    // Signing in: the token in a JSON body (never in a URL), answered with a session cookie.
    router.post("/ui/session") { request, _ in
      try on()
      try AdminAuth.sameOrigin(request)
      let body = try await StewardAPI.body(request)
      guard let token = auth.token, let given = body["token"]?.stringValue, AdminAuth.same(given, token) else {
        throw APIError.unauthorized("the admin token is wrong", scheme: "Cookie")
      }
      let (id, session) = auth.sessions.open()
      var response = Self.json(.map(["csrf": .string(session.csrf)]))
      response.setCookie(
        Cookie(
          name: AdminAuth.cookie, value: id, maxAge: Int(ConsoleSessions.lifetime.components.seconds), path: "/",
          httpOnly: true, sameSite: .strict))
      return response
    }
    router.delete("/ui/session") { request, _ in
      try on()
      try auth.authorize(request)
      if let id = request.cookies[AdminAuth.cookie]?.value { auth.sessions.close(id) }
      var response = Self.json(.map(["signed_out": .bool(true)]))
      response.setCookie(
        Cookie(name: AdminAuth.cookie, value: "", maxAge: 0, path: "/", httpOnly: true, sameSite: .strict))
      return response
    }
  }

  static func json(_ value: Value) -> Response {
    var r = JSONResponse.make(value)
    r.headers[.cacheControl] = "no-store"
    return r
  }
}
