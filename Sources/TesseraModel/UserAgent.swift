import Foundation

/// What a `User-Agent` header says about the device: browser, operating system and device, each with its
/// version, as comparable text. A small rule-based reader of the tokens the major browsers and operating
/// systems send (Chrome, Safari, Firefox, Edge, Opera, Samsung Internet, Internet Explorer, in-app web views;
/// Windows, macOS, iOS, iPadOS, Android, Chrome OS, Linux) and of common crawlers and HTTP libraries.
/// Unknown parts are `Other`, never guessed.
public struct UserAgent: Sendable, Hashable {
  public var browser: String
  /// The browser's major version, empty when the header gives none.
  public var browserVersion: String
  public var os: String
  /// The operating system's version: major for Windows and Android, major.minor for Apple's systems.
  public var osVersion: String
  /// `desktop`, `mobile`, `tablet`, `bot` or `other`.
  public var deviceType: String
  /// The device model where the header names it (`iPhone`, `iPad`, `Pixel 7`), else empty.
  public var model: String

  public init(
    browser: String, browserVersion: String, os: String, osVersion: String, deviceType: String, model: String
  ) {
    self.browser = browser
    self.browserVersion = browserVersion
    self.os = os
    self.osVersion = osVersion
    self.deviceType = deviceType
    self.model = model
  }

  /// `Chrome 120`: the browser with its major version.
  public var browserWithVersion: String { browserVersion.isEmpty ? browser : "\(browser) \(browserVersion)" }
  /// `macOS 10.15`: the system with its version.
  public var osWithVersion: String { osVersion.isEmpty ? os : "\(os) \(osVersion)" }
  /// The device: its model where known (`iPhone`, `Pixel 7`), else its type (`desktop`).
  public var device: String { model.isEmpty ? deviceType : model }

  /// Reads a `User-Agent` header.
  public static func parse(_ header: String) -> UserAgent {
    let ua = Substring(header)
    var out = UserAgent(
      browser: "Other", browserVersion: "", os: "Other", osVersion: "", deviceType: "other", model: "")
    readOS(ua, into: &out)
    readBrowser(ua, into: &out)
    return out
  }

  /// Crawlers and HTTP libraries, by a token they send: the name shown for each.
  static let bots: [(token: String, name: String)] = [
    ("Googlebot", "Googlebot"), ("bingbot", "Bingbot"), ("DuckDuckBot", "DuckDuckBot"),
    ("YandexBot", "YandexBot"), ("Baiduspider", "Baiduspider"), ("facebookexternalhit", "Facebook"),
    ("Twitterbot", "Twitterbot"), ("Slackbot", "Slackbot"), ("GPTBot", "GPTBot"), ("curl/", "curl"),
    ("Wget/", "Wget"), ("python-requests/", "Python Requests"), ("Go-http-client/", "Go HTTP client"),
    ("okhttp/", "OkHttp"), ("PostmanRuntime/", "Postman"), ("HeadlessChrome/", "Headless Chrome"),
  ]

  /// Browsers by their token, most specific first (Edge and Opera also send `Chrome/`, Chrome sends
  /// `Safari/`); `iOS`: the token of the browser's build for iOS.
  static let browsers: [(token: String, name: String)] = [
    ("EdgiOS/", "Edge"), ("EdgA/", "Edge"), ("Edg/", "Edge"), ("Edge/", "Edge"), ("OPR/", "Opera"),
    ("OPiOS/", "Opera"), ("Opera/", "Opera"), ("SamsungBrowser/", "Samsung Internet"), ("YaBrowser/", "Yandex"),
    ("Vivaldi/", "Vivaldi"), ("UCBrowser/", "UC Browser"), ("FxiOS/", "Firefox"), ("Firefox/", "Firefox"),
    ("CriOS/", "Chrome"), ("Chromium/", "Chromium"), ("Chrome/", "Chrome"),
  ]

  static func readBrowser(_ ua: Substring, into out: inout UserAgent) {
    for (token, name) in bots where ua.range(of: token) != nil {
      out.browser = name
      out.browserVersion = majorVersion(after: token.hasSuffix("/") ? token : token + "/", in: ua)
      out.deviceType = "bot"
      return
    }
    if ua.range(of: "bot", options: .caseInsensitive) != nil || ua.range(of: "spider") != nil
      || ua.range(of: "crawler", options: .caseInsensitive) != nil
    {
      out.browser = "Bot"
      out.deviceType = "bot"
      return
    }
    // Web views of apps, before the browsers whose tokens they carry.
    if ua.range(of: "FBAN/") != nil || ua.range(of: "FBAV/") != nil {
      out.browser = "Facebook App"
      out.browserVersion = majorVersion(after: "FBAV/", in: ua)
      return
    }
    if ua.range(of: "Instagram ") != nil {
      out.browser = "Instagram App"
      out.browserVersion = majorVersion(after: "Instagram ", in: ua)
      return
    }
    if out.os == "Android", ua.range(of: "; wv)") != nil {
      out.browser = "Android WebView"
      out.browserVersion = majorVersion(after: "Chrome/", in: ua)
      return
    }
    for (token, name) in browsers where ua.range(of: token) != nil {
      out.browser = name
      out.browserVersion = majorVersion(after: token, in: ua)
      return
    }
    if ua.range(of: "MSIE ") != nil {
      out.browser = "Internet Explorer"
      out.browserVersion = majorVersion(after: "MSIE ", in: ua)
      return
    }
    if ua.range(of: "Trident/") != nil {
      out.browser = "Internet Explorer"
      out.browserVersion = majorVersion(after: "rv:", in: ua)
      return
    }
    if ua.range(of: "Safari/") != nil {
      out.browser = out.os == "Android" ? "Android Browser" : "Safari"
      out.browserVersion = majorVersion(after: "Version/", in: ua)
      return
    }
    if ua.range(of: "AppleWebKit/") != nil, out.os == "iOS" {
      // An app's WKWebView: Safari's engine without Safari's tokens.
      out.browser = "WebView"
      out.browserVersion = out.osVersion.split(separator: ".").first.map(String.init) ?? ""
    }
  }

  static func readOS(_ ua: Substring, into out: inout UserAgent) {
    if ua.range(of: "iPhone") != nil || ua.range(of: "iPod") != nil {
      out.os = "iOS"
      out.osVersion = appleVersion(after: "OS ", in: ua)
      out.deviceType = "mobile"
      out.model = ua.range(of: "iPod") != nil ? "iPod" : "iPhone"
    } else if ua.range(of: "iPad") != nil {
      out.os = "iOS"
      out.osVersion = appleVersion(after: "OS ", in: ua)
      out.deviceType = "tablet"
      out.model = "iPad"
    } else if ua.range(of: "Android") != nil {
      out.os = "Android"
      out.osVersion = majorVersion(after: "Android ", in: ua)
      out.deviceType = ua.range(of: "Mobile") != nil ? "mobile" : "tablet"
      out.model = androidModel(ua)
    } else if ua.range(of: "Windows Phone") != nil {
      out.os = "Windows Phone"
      out.osVersion = majorVersion(after: "Windows Phone ", in: ua)
      out.deviceType = "mobile"
    } else if ua.range(of: "Windows") != nil {
      out.os = "Windows"
      let nt = version(after: "Windows NT ", in: ua)
      out.osVersion =
        ["10.0": "10", "6.3": "8.1", "6.2": "8", "6.1": "7", "6.0": "Vista", "5.1": "XP", "5.2": "XP"][nt] ?? ""
      out.deviceType = "desktop"
    } else if ua.range(of: "CrOS") != nil {
      out.os = "Chrome OS"
      out.deviceType = "desktop"
    } else if ua.range(of: "Mac OS X") != nil || ua.range(of: "Macintosh") != nil {
      out.os = "macOS"
      out.osVersion = appleVersion(after: "Mac OS X ", in: ua)
      out.deviceType = "desktop"
    } else if ua.range(of: "Linux") != nil || ua.range(of: "X11") != nil {
      out.os = "Linux"
      out.deviceType = "desktop"
    }
  }

  /// The digits and dots after `token` (`10.0` of `Windows NT 10.0;`), empty when none follow.
  static func version(after token: String, in ua: Substring) -> String {
    guard let r = ua.range(of: token) else { return "" }
    return String(ua[r.upperBound...].prefix { $0.isASCII && ($0.isNumber || $0 == ".") })
  }

  /// The major version after `token` (`120` of `Chrome/120.0.6099.71`).
  static func majorVersion(after token: String, in ua: Substring) -> String {
    guard let r = ua.range(of: token) else { return "" }
    return String(ua[r.upperBound...].prefix { $0.isASCII && $0.isNumber })
  }

  /// Apple's `17_4_1` or `10.15.7` after `token`, as major.minor (`17.4`).
  static func appleVersion(after token: String, in ua: Substring) -> String {
    guard let r = ua.range(of: token) else { return "" }
    let raw = ua[r.upperBound...].prefix { $0.isASCII && ($0.isNumber || $0 == "_" || $0 == ".") }
    let parts = raw.split(whereSeparator: { $0 == "_" || $0 == "." }).prefix(2)
    return parts.joined(separator: ".")
  }

  /// The model Android names after its version: `Pixel 7` of `(Linux; Android 14; Pixel 7)`; empty when
  /// the header hides it (`K`, as Chrome's reduced header sends).
  static func androidModel(_ ua: Substring) -> String {
    guard let open = ua.firstIndex(of: "("), let close = ua[open...].firstIndex(of: ")") else { return "" }
    let parts = ua[ua.index(after: open)..<close].split(separator: ";").map {
      $0.trimmingPrefix(" ")
    }
    guard let k = parts.firstIndex(where: { $0.hasPrefix("Android") }), k + 1 < parts.count else { return "" }
    var model = parts[k + 1]
    if let build = model.range(of: " Build/") { model = model[..<build.lowerBound] }
    return model == "K" || model.hasPrefix("wv") || model.count < 2 ? "" : String(model)
  }
}
