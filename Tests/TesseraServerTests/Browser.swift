import AsyncHTTPClient
import Foundation
import NIOCore
import NIOHTTP1
import TesseraModel
import Testing

/// Headless Chromium driven over WebDriver (W3C) by `chromedriver`, both from Debian (`chromium`,
/// `chromium-driver`). Each browser is a chromedriver process on a free port with one session.
struct Browser {
  static let chromium = ["/usr/bin/chromium", "/usr/bin/chromium-browser"].first {
    FileManager.default.isExecutableFile(atPath: $0)
  }
  static let driver = ["/usr/bin/chromedriver", "/usr/lib/chromium/chromedriver"].first {
    FileManager.default.isExecutableFile(atPath: $0)
  }
  static var available: Bool { chromium != nil && driver != nil }
  static let missing = "chromium and chromium-driver are not installed (apt-get install -y chromium chromium-driver)"

  /// Where screenshots go: `.build/console-screenshots`.
  static let screenshots = Paths.packageRoot + "/.build/console-screenshots"

  let process: ChildProcess
  let base: String
  let session: String

  struct Failure: Error, CustomStringConvertible {
    var description: String
  }

  static func start() async throws -> Browser {
    guard let chromium, let driver else { throw Failure(description: missing) }
    var lastError = ""
    for _ in 0..<5 {
      let port = Int.random(in: 20_000..<60_000)
      let process = try ChildProcess.spawn(driver, ["--port=\(port)"])
      let base = "http://127.0.0.1:\(port)"
      var ready = false
      for _ in 0..<100 {
        if let s = try? await call(base, .GET, "/status"), s.lookup(["value", "ready"]) == .bool(true) {
          ready = true
          break
        }
        try await Task.sleep(for: .milliseconds(100))
      }
      guard ready else {
        process.signal(SIGKILL)
        _ = await process.wait(atMost: .seconds(30))
        lastError = "chromedriver did not start on port \(port)"
        continue
      }
      let capabilities: Value = .map([
        "capabilities": .map([
          "alwaysMatch": .map([
            "browserName": .string("chrome"),
            "goog:chromeOptions": .map([
              "binary": .string(chromium),
              "args": .list(
                [
                  "--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                  "--window-size=1280,1100", "--no-first-run", "--disable-extensions",
                ].map(Value.string)),
            ]),
          ])
        ])
      ])
      let created = try await call(base, .POST, "/session", capabilities)
      guard let id = created.lookup(["value", "sessionId"]).stringValue else {
        process.signal(SIGKILL)
        _ = await process.wait(atMost: .seconds(30))
        lastError = "chromedriver made no session: \(JSON.encode(created))"
        continue
      }
      return Browser(process: process, base: base, session: id)
    }
    throw Failure(description: lastError)
  }

  static func call(_ base: String, _ method: HTTPMethod, _ path: String, _ body: Value? = nil) async throws -> Value {
    var request = HTTPClientRequest(url: base + path)
    request.method = method
    request.headers.add(name: "Content-Type", value: "application/json")
    if let body { request.body = .bytes(ByteBuffer(string: JSON.encode(body))) }
    let response = try await HTTPClient.shared.execute(request, timeout: .seconds(60))
    let bytes = try await response.body.collect(upTo: 64 << 20)
    return (try? JSON.parse(String(buffer: bytes))) ?? .null
  }

  @discardableResult
  func command(_ method: HTTPMethod, _ path: String, _ body: Value? = nil) async throws -> Value {
    if ProcessInfo.processInfo.environment["TESSERA_BROWSER_TRACE"] != nil { print("webdriver \(method) \(path)") }
    let answer = try await Self.call(base, method, "/session/\(session)\(path)", body)
    if let error = answer.lookup(["value", "error"]).stringValue {
      throw Failure(description: "\(path): \(error): \(answer.lookup(["value", "message"]).stringValue ?? "")")
    }
    return answer.lookup(["value"])
  }

  func open(_ url: String) async throws { try await command(.POST, "/url", .map(["url": .string(url)])) }

  /// Runs a script in the page and returns its value.
  @discardableResult
  func run(_ script: String, _ args: [Value] = []) async throws -> Value {
    try await command(.POST, "/execute/sync", .map(["script": .string(script), "args": .list(args)]))
  }

  /// The element id of the first match of `css`, waiting up to `seconds` for it to appear.
  func find(_ css: String, seconds: Double = 10) async throws -> String {
    let deadline = ContinuousClock.now + .milliseconds(Int(seconds * 1000))
    while true {
      let answer = try await Self.call(
        base, .POST, "/session/\(session)/element", .map(["using": .string("css selector"), "value": .string(css)]))
      if case .map(let m) = answer.lookup(["value"]),
        let id = m.first(where: { $0.key.hasPrefix("element-") })?.value
          .stringValue
      {
        return id
      }
      if ContinuousClock.now >= deadline { throw Failure(description: "no element `\(css)` after \(seconds) s") }
      try await Task.sleep(for: .milliseconds(100))
    }
  }

  /// Waits until `script` (a function body returning a boolean) is true in the page.
  func wait(_ what: String, seconds: Double = 15, _ script: String) async throws {
    let deadline = ContinuousClock.now + .milliseconds(Int(seconds * 1000))
    while try await run(script) != .bool(true) {
      if ContinuousClock.now >= deadline { throw Failure(description: "timed out waiting for \(what)") }
      try await Task.sleep(for: .milliseconds(100))
    }
  }

  func click(_ css: String) async throws {
    let id = try await find(css)
    try await command(.POST, "/element/\(id)/click", .map([:]))
  }

  /// Types into the element (WebDriver key events, as a person would).
  func type(_ css: String, _ text: String) async throws {
    let id = try await find(css)
    try await command(.POST, "/element/\(id)/value", .map(["text": .string(text)]))
  }

  /// Presses keys on whatever has the focus (`\u{E007}` is Enter, `\u{E004}` Tab).
  func keys(_ text: String) async throws {
    let down = text.map { Value.map(["type": .string("keyDown"), "value": .string(String($0))]) }
    let up = text.map { Value.map(["type": .string("keyUp"), "value": .string(String($0))]) }
    let actions: Value = .map([
      "actions": .list([
        .map([
          "type": .string("key"), "id": .string("keyboard"),
          "actions": .list(zip(down, up).flatMap { [$0, $1] }),
        ])
      ])
    ])
    try await command(.POST, "/actions", actions)
  }

  func text(_ css: String) async throws -> String {
    let id = try await find(css)
    return try await command(.GET, "/element/\(id)/text").stringValue ?? ""
  }

  /// An alert the page opened, if any.
  func alert() async throws -> String? {
    let answer = try await Self.call(base, .GET, "/session/\(session)/alert/text")
    return answer.lookup(["value", "error"]) == .null ? answer.lookup(["value"]).stringValue : nil
  }

  /// Saves a PNG of the window to `.build/console-screenshots/NAME.png` and returns its path.
  @discardableResult
  func screenshot(_ name: String) async throws -> String {
    let data = try await command(.GET, "/screenshot").stringValue.flatMap { Data(base64Encoded: $0) }
    let png = try #require(data, "the screenshot came back empty")
    try FileManager.default.createDirectory(atPath: Self.screenshots, withIntermediateDirectories: true)
    let path = Self.screenshots + "/\(name).png"
    try png.write(to: URL(fileURLWithPath: path))
    return path
  }

  func quit() async {
    _ = try? await Self.call(base, .DELETE, "/session/\(session)")
    // chromedriver stays up after SIGTERM: its own /shutdown ends it (and its browsers), SIGKILL if not.
    _ = try? await Self.call(base, .GET, "/shutdown")
    try? await Task.sleep(for: .milliseconds(200))
    process.signal(SIGKILL)
    _ = await process.wait(atMost: .seconds(30))
  }
}
