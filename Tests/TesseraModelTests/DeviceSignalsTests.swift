import Testing

@testable import TesseraModel

/// The user-agent reader and IP addresses as device signals compare them.
@Suite("Device signals: user agents and IP addresses")
struct DeviceSignalsTests {
  /// Header → browser with version, system with version, device.
  static let agents: [(String, String, String, String)] = [
    (
      "Mozilla/5.0 (Macintosh; Intel Mac OS X 10_15_7) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/120.0.6099.71 Safari/537.36",
      "Chrome 120", "macOS 10.15", "desktop"
    ),
    (
      "Mozilla/5.0 (Macintosh; Intel Mac OS X 10_15_7) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/17.2 Safari/605.1.15",
      "Safari 17", "macOS 10.15", "desktop"
    ),
    (
      "Mozilla/5.0 (Windows NT 10.0; Win64; x64; rv:121.0) Gecko/20100101 Firefox/121.0", "Firefox 121", "Windows 10",
      "desktop"
    ),
    (
      "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/120.0.0.0 Safari/537.36 Edg/120.0.2210.91",
      "Edge 120", "Windows 10", "desktop"
    ),
    (
      "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/119.0.0.0 Safari/537.36 OPR/105.0.0.0",
      "Opera 105", "Windows 10", "desktop"
    ),
    (
      "Mozilla/5.0 (Windows NT 6.1; WOW64; Trident/7.0; rv:11.0) like Gecko", "Internet Explorer 11", "Windows 7",
      "desktop"
    ),
    (
      "Mozilla/5.0 (iPhone; CPU iPhone OS 17_1_2 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/17.1.2 Mobile/15E148 Safari/604.1",
      "Safari 17", "iOS 17.1", "iPhone"
    ),
    // The SDK fixtures' header: an app's web view, no Safari token.
    ("Mozilla/5.0 (iPhone; CPU iPhone OS 17_4 like Mac OS X) AppleWebKit/605.1.15", "WebView 17", "iOS 17.4", "iPhone"),
    (
      "Mozilla/5.0 (iPhone; CPU iPhone OS 17_2 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) CriOS/120.0.6099.119 Mobile/15E148 Safari/604.1",
      "Chrome 120", "iOS 17.2", "iPhone"
    ),
    (
      "Mozilla/5.0 (iPad; CPU OS 16_6 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/16.6 Mobile/15E148 Safari/604.1",
      "Safari 16", "iOS 16.6", "iPad"
    ),
    (
      "Mozilla/5.0 (Linux; Android 14; Pixel 7) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/120.0.6099.144 Mobile Safari/537.36",
      "Chrome 120", "Android 14", "Pixel 7"
    ),
    (
      "Mozilla/5.0 (Linux; Android 13; SM-S911B) AppleWebKit/537.36 (KHTML, like Gecko) SamsungBrowser/23.0 Chrome/115.0.0.0 Mobile Safari/537.36",
      "Samsung Internet 23", "Android 13", "SM-S911B"
    ),
    (
      "Mozilla/5.0 (Linux; Android 10; K) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/120.0.0.0 Mobile Safari/537.36",
      "Chrome 120", "Android 10", "mobile"
    ),
    (
      "Mozilla/5.0 (Linux; Android 13; SM-X200) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/120.0.0.0 Safari/537.36",
      "Chrome 120", "Android 13", "SM-X200"
    ),
    (
      "Mozilla/5.0 (X11; CrOS x86_64 14541.0.0) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/120.0.0.0 Safari/537.36",
      "Chrome 120", "Chrome OS", "desktop"
    ),
    ("Mozilla/5.0 (X11; Linux x86_64; rv:109.0) Gecko/20100101 Firefox/115.0", "Firefox 115", "Linux", "desktop"),
    (
      "Mozilla/5.0 (compatible; Googlebot/2.1; +http://www.google.com/bot.html)", "Googlebot 2", "Other", "bot"
    ),
    ("curl/8.5.0", "curl 8", "Other", "bot"),
    ("python-requests/2.31.0", "Python Requests 2", "Other", "bot"),
    ("something unheard of", "Other", "Other", "other"),
  ]

  @Test("the major browsers, systems and devices, with versions; crawlers are bots; unknown stays Other")
  func userAgents() {
    for (header, browser, os, device) in Self.agents {
      let ua = UserAgent.parse(header)
      #expect(ua.browserWithVersion == browser, "\(header)")
      #expect(ua.osWithVersion == os, "\(header)")
      #expect(ua.device == device, "\(header)")
    }
    #expect(UserAgent.parse(Self.agents[10].0).deviceType == "mobile")
    #expect(UserAgent.parse(Self.agents[13].0).deviceType == "tablet")
  }

  @Test("addresses have one spelling; prefixes are /24 and /64 unless told; what is no address is nil")
  func addresses() {
    #expect(IPAddress.normalize(" 203.0.113.7 ") == "203.0.113.7")
    #expect(IPAddress.normalize("203.0.113.7:51234") == "203.0.113.7")
    #expect(IPAddress.normalize("198.51.100.4, 10.0.0.1") == "198.51.100.4")
    #expect(IPAddress.normalize("2001:0DB8:0000:0000:0000:0000:0000:0001") == "2001:db8::1")
    #expect(IPAddress.normalize("[2001:db8::1]:443") == "2001:db8::1")
    #expect(IPAddress.normalize("::ffff:192.0.2.33") == "192.0.2.33")
    #expect(IPAddress.prefix("203.0.113.7") == "203.0.113.0/24")
    #expect(IPAddress.normalizeWithPrefix("203.0.113.7")! == ("203.0.113.7", "203.0.113.0/24"))
    // Plain dotted addresses take a short path; it reads what inet_pton reads and leaves the rest to it.
    for plain in ["0.0.0.0", "1.2.3.4", "10.20.30.40", "255.255.255.255", "100.0.12.7"] {
      #expect(IPAddress.plainIPv4(plain) != nil && IPAddress.plainIPv4(plain) == IPAddress.parseAny(plain), "\(plain)")
    }
    for other in ["01.2.3.4", "1.2.3", "1.2.3.4.5", "256.1.1.1", "1..2.3", "1.2.3.4 ", "1.2.3.4:80", "", "1.2.3.a"] {
      #expect(IPAddress.plainIPv4(other) == nil, "\(other)")
    }
    #expect(IPAddress.parseAny("01.2.3.4") == nil && IPAddress.parse("256.1.1.1") == nil)
    #expect(IPAddress.prefix("203.0.113.7", bits: 16) == "203.0.0.0/16")
    #expect(IPAddress.prefix("203.0.113.7", bits: 20) == "203.0.112.0/20")
    #expect(IPAddress.prefix("2001:db8:1:2:3:4:5:6") == "2001:db8:1:2::/64")
    #expect(IPAddress.prefix("2001:db8:1:2:3:4:5:6", bits: 48) == "2001:db8:1::/48")
    for bad in ["", "localhost", "300.1.2.3", "1.2.3", "2001:db8::g", "not an ip"] {
      #expect(IPAddress.normalize(bad) == nil, "\(bad)")
    }
  }

  @Test("an event context gives every signal it carries, and nothing it does not")
  func derive() {
    let context: [String: Value] = [
      "ip": .string("203.0.113.7"), "userAgent": .string(Self.agents[0].0), "locale": .string("en_US"),
      "timezone": .string("Europe/Berlin"), "screen": .map(["width": .int(1440), "height": .int(900)]),
    ]
    #expect(
      DeviceSignals.derive(context) == [
        "ip": "203.0.113.7", "ip_prefix": "203.0.113.0/24", "user_agent": Self.agents[0].0, "browser": "Chrome 120",
        "browser_family": "Chrome", "os": "macOS 10.15", "os_family": "macOS", "device": "desktop",
        "device_type": "desktop", "locale": "en-US", "timezone": "Europe/Berlin", "screen": "1440x900",
      ])
    #expect(DeviceSignals.derive(["ip": .string("nope"), "timezone": .string(" ")]).isEmpty)
  }
}
