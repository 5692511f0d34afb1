#if canImport(Glibc)
  import Glibc
#elseif canImport(Darwin)
  import Darwin
#endif

/// IPv4 and IPv6 addresses as comparable text: one spelling per address, and the network prefix a device
/// signal compares (`/24` for IPv4, `/64` for IPv6).
public enum IPAddress {
  /// The canonical text of an address (`inet_ntop`'s: dotted IPv4, compressed lowercase IPv6; an
  /// IPv4-mapped IPv6 address is its IPv4 address), nil when `raw` is none. A forwarded list
  /// (`client, proxy, …`) gives its first address; a port after an IPv4 address or a bracketed IPv6 one is
  /// dropped.
  public static func normalize(_ raw: String) -> String? {
    guard let bytes = parse(raw) else { return nil }
    return format(bytes)
  }

  /// The network of an address as `address/bits`, the host bits zeroed: `/24` for IPv4 and `/64` for IPv6
  /// unless `bits` says otherwise (clamped to the address's length).
  public static func prefix(_ raw: String, bits: Int? = nil) -> String? {
    parse(raw).map { prefix(of: $0, bits: bits) }
  }

  /// The canonical text of an address and its network prefix (`normalize` and `prefix`), read once.
  public static func normalizeWithPrefix(_ raw: String) -> (address: String, prefix: String)? {
    guard let bytes = parse(raw) else { return nil }
    return (format(bytes), prefix(of: bytes, bits: nil))
  }

  static func prefix(of address: [UInt8], bits: Int?) -> String {
    var bytes = address
    let width = bytes.count * 8
    let keep = min(width, max(0, bits ?? (bytes.count == 4 ? 24 : 64)))
    for k in bytes.indices {
      let from = k * 8
      if from >= keep {
        bytes[k] = 0
      } else if from + 8 > keep {
        bytes[k] &= UInt8(truncatingIfNeeded: 0xFF << (8 - (keep - from)))
      }
    }
    return format(bytes) + "/\(keep)"
  }

  /// A plain dotted IPv4 address (`203.0.113.7`: four decimal octets without leading zeros, nothing around
  /// them), read without the general path's copies; nil for anything else, which `parse` reads the general way
  /// (to the same bytes).
  static func plainIPv4(_ raw: String) -> [UInt8]? {
    var bytes: [UInt8] = []
    bytes.reserveCapacity(4)
    var value = 0
    var digits = 0
    var leadingZero = false
    for c in raw.utf8 {
      if c >= 0x30 && c <= 0x39 {
        if leadingZero { return nil }
        if digits == 0 && c == 0x30 { leadingZero = true }
        value = value * 10 + Int(c - 0x30)
        digits += 1
        guard digits <= 3, value <= 255 else { return nil }
      } else if c == 0x2E {  // "."
        guard digits > 0, bytes.count < 3 else { return nil }
        bytes.append(UInt8(value))
        (value, digits, leadingZero) = (0, 0, false)
      } else {
        return nil
      }
    }
    guard digits > 0, bytes.count == 3 else { return nil }
    bytes.append(UInt8(value))
    return bytes
  }

  /// The address's bytes (4 or 16), nil when it is none.
  static func parse(_ raw: String) -> [UInt8]? { plainIPv4(raw) ?? parseAny(raw) }

  /// Any spelling `parse` accepts, through `inet_pton`.
  static func parseAny(_ raw: String) -> [UInt8]? {
    var text = Substring(raw)
    if let comma = text.firstIndex(of: ",") { text = text[..<comma] }
    text = text.drop { $0 == " " || $0 == "\t" }
    while let l = text.last, l == " " || l == "\t" { text.removeLast() }
    if text.first == "[", let close = text.firstIndex(of: "]") {
      text = text[text.index(after: text.startIndex)..<close]
    } else if text.contains("."), let colon = text.firstIndex(of: ":"), !text[colon...].dropFirst().contains(":") {
      text = text[..<colon]
    }
    if let zone = text.firstIndex(of: "%") { text = text[..<zone] }
    guard !text.isEmpty, text.count <= 45 else { return nil }
    let s = String(text)
    var v4 = in_addr()
    if s.contains("."), !s.contains(":"), inet_pton(AF_INET, s, &v4) == 1 {
      return withUnsafeBytes(of: v4) { Array($0) }
    }
    var v6 = in6_addr()
    guard s.contains(":"), inet_pton(AF_INET6, s, &v6) == 1 else { return nil }
    let bytes = withUnsafeBytes(of: v6) { Array($0) }
    // ::ffff:a.b.c.d is an IPv4 address.
    if bytes[0..<10].allSatisfy({ $0 == 0 }), bytes[10] == 0xFF, bytes[11] == 0xFF { return Array(bytes[12...]) }
    return bytes
  }

  static func format(_ bytes: [UInt8]) -> String {
    if bytes.count == 4 { return "\(bytes[0]).\(bytes[1]).\(bytes[2]).\(bytes[3])" }
    var out = [CChar](repeating: 0, count: 64)
    let ok = bytes.withUnsafeBytes { src in
      out.withUnsafeMutableBufferPointer { inet_ntop(AF_INET6, src.baseAddress, $0.baseAddress, 64) != nil }
    }
    guard ok else { return "" }
    return String(decoding: out.prefix { $0 != 0 }.map { UInt8(bitPattern: $0) }, as: UTF8.self)
  }
}
