/// A small, fast JSON reader and writer for `Value`, used for NDJSON sources, stored event bodies and
/// payloads. Integers stay integers (`Int64`), other numbers are doubles; objects become `.map`.
public enum JSON {
  public struct ParseError: Error, Sendable, Hashable, CustomStringConvertible {
    public var offset: Int
    public var message: String
    public var description: String { "\(message) at byte \(offset + 1)" }
  }

  public static func parse(_ text: String) throws(ParseError) -> Value {
    var text = text
    let result: Result<Value, ParseError> = text.withUTF8 { buf in
      do throws(ParseError) { return .success(try parse(buf)) } catch { return .failure(error) }
    }
    return try result.get()
  }

  public static func parse(_ bytes: UnsafeBufferPointer<UInt8>) throws(ParseError) -> Value {
    var p = JSONParser(bytes: bytes)
    p.skipSpace()
    let v = try p.value(depth: 0)
    p.skipSpace()
    guard p.i == bytes.count else { throw ParseError(offset: p.i, message: "unexpected text after the JSON value") }
    return v
  }

  /// Parses a JSON object, building only the members named in `keys` (compared as UTF-8 bytes); the values of
  /// other members are skipped without being built, which is most of the work saved when a source maps a few
  /// fields of large records. Skipped text is checked for structure (brackets, strings, literals), not built.
  public static func parseObject(_ bytes: UnsafeBufferPointer<UInt8>, keeping keys: [[UInt8]]) throws(ParseError)
    -> Value
  {
    try parseObject(bytes, selecting: Selection(keys.map { ($0, nil) }))
  }

  /// Which members of a JSON object to build: each named key with all of its value or, when the key has a
  /// selection of its own and its value is an object, only the members that selection names.
  public struct Selection: Sendable {
    public var keys: [(name: [UInt8], fields: Selection?)]
    public init(_ keys: [(name: [UInt8], fields: Selection?)]) { self.keys = keys }
    /// Keys as text; a key's fields nil for all of its value.
    public init(names: [(String, Selection?)]) { keys = names.map { (Array($0.0.utf8), $0.1) } }
  }

  /// As `parseObject(_:keeping:)`, with members of members selected too (`Selection`).
  public static func parseObject(_ bytes: UnsafeBufferPointer<UInt8>, selecting: Selection) throws(ParseError)
    -> Value
  {
    var p = JSONParser(bytes: bytes)
    p.skipSpace()
    let isObject = p.i < bytes.count && bytes[p.i] == UInt8(ascii: "{")
    let v = isObject ? try p.object(selecting: selecting, depth: 0) : try p.value(depth: 0)
    p.skipSpace()
    guard p.i == bytes.count else { throw ParseError(offset: p.i, message: "unexpected text after the JSON value") }
    return v
  }

  /// Compact JSON with keys sorted, so equal values encode to equal text.
  public static func encode(_ v: Value) -> String {
    var out = JSONWriter(capacity: 64)
    out.value(v)
    return out.text
  }
}

struct JSONParser {
  let bytes: UnsafeBufferPointer<UInt8>
  var i = 0

  init(bytes: UnsafeBufferPointer<UInt8>) { self.bytes = bytes }

  func fail(_ message: String) -> JSON.ParseError { JSON.ParseError(offset: i, message: message) }

  mutating func skipSpace() {
    while i < bytes.count {
      let b = bytes[i]
      if b == 0x20 || b == 0x0A || b == 0x0D || b == 0x09 { i += 1 } else { break }
    }
  }

  mutating func value(depth: Int) throws(JSON.ParseError) -> Value {
    guard depth < 512 else { throw fail("JSON nested too deeply") }
    guard i < bytes.count else { throw fail("unexpected end of JSON") }
    switch bytes[i] {
    case UInt8(ascii: "{"):
      return try object(selecting: nil, depth: depth)
    case UInt8(ascii: "["):
      i += 1
      var l: [Value] = []
      skipSpace()
      if i < bytes.count, bytes[i] == UInt8(ascii: "]") {
        i += 1
        return .list(l)
      }
      while true {
        skipSpace()
        l.append(try value(depth: depth + 1))
        skipSpace()
        guard i < bytes.count else { throw fail("unterminated array") }
        if bytes[i] == UInt8(ascii: ",") {
          i += 1
          continue
        }
        if bytes[i] == UInt8(ascii: "]") {
          i += 1
          return .list(l)
        }
        throw fail("expected `,` or `]` in an array")
      }
    case UInt8(ascii: "\""):
      return .string(try string())
    case UInt8(ascii: "t"):
      try literal("true")
      return .bool(true)
    case UInt8(ascii: "f"):
      try literal("false")
      return .bool(false)
    case UInt8(ascii: "n"):
      try literal("null")
      return .null
    default:
      return try number()
    }
  }

  /// An object, at `{`. With `keys`, only those members are built and the others are stepped over.
  mutating func object(selecting: JSON.Selection?, depth: Int) throws(JSON.ParseError) -> Value {
    let keys = selecting?.keys
    i += 1
    var m: [String: Value] = [:]
    if let keys { m.reserveCapacity(keys.count) }
    skipSpace()
    if i < bytes.count, bytes[i] == UInt8(ascii: "}") {
      i += 1
      return .map(m)
    }
    while true {
      skipSpace()
      guard i < bytes.count, bytes[i] == UInt8(ascii: "\"") else { throw fail("expected a string key") }
      let wanted: String?
      var fields: JSON.Selection?
      if let keys {
        // Keys without escapes are compared in place; a key with escapes is decoded first.
        let keyStart = i + 1
        var j = keyStart
        while j < bytes.count, bytes[j] != UInt8(ascii: "\""), bytes[j] != UInt8(ascii: "\\") { j += 1 }
        if j < bytes.count, bytes[j] == UInt8(ascii: "\"") {
          let raw = UnsafeBufferPointer(rebasing: bytes[keyStart..<j])
          let found = keys.firstIndex { $0.name.elementsEqual(raw) }
          wanted = found.map { _ in String(decoding: raw, as: UTF8.self) }
          fields = found.flatMap { keys[$0].fields }
          i = j + 1
        } else {
          let k = try string()
          let found = keys.firstIndex { $0.name.elementsEqual(k.utf8) }
          wanted = found.map { _ in k }
          fields = found.flatMap { keys[$0].fields }
        }
      } else {
        wanted = try string()
      }
      skipSpace()
      guard i < bytes.count, bytes[i] == UInt8(ascii: ":") else { throw fail("expected `:` after a key") }
      i += 1
      skipSpace()
      if let wanted {
        if let fields, i < bytes.count, bytes[i] == UInt8(ascii: "{") {
          guard depth + 1 < 512 else { throw fail("JSON nested too deeply") }
          m[wanted] = try object(selecting: fields, depth: depth + 1)
        } else {
          m[wanted] = try value(depth: depth + 1)
        }
      } else {
        try skipValue()
      }
      skipSpace()
      guard i < bytes.count else { throw fail("unterminated object") }
      if bytes[i] == UInt8(ascii: ",") {
        i += 1
        continue
      }
      if bytes[i] == UInt8(ascii: "}") {
        i += 1
        return .map(m)
      }
      throw fail("expected `,` or `}` in an object")
    }
  }

  /// Steps over one value, checking its syntax, without building it. The containers it is inside are kept on
  /// a stack of closing brackets rather than by recursion, so a skipped value may nest to any depth: a message
  /// of a tracking batch nested too deeply is refused where it is parsed, not by the read of the request's own
  /// fields around it.
  mutating func skipValue() throws(JSON.ParseError) {
    var open: [UInt8] = []
    while true {
      // At the start of a value.
      guard i < bytes.count else { throw fail("unexpected end of JSON") }
      switch bytes[i] {
      case UInt8(ascii: "{"), UInt8(ascii: "["):
        let close = bytes[i] == UInt8(ascii: "{") ? UInt8(ascii: "}") : UInt8(ascii: "]")
        i += 1
        skipSpace()
        if i < bytes.count, bytes[i] == close {
          i += 1
        } else {
          open.append(close)
          if close == UInt8(ascii: "}") { try skipKey() }
          continue
        }
      case UInt8(ascii: "\""):
        try skipString()
      default:
        // Literals and numbers: cheap to build, and checked the same way; a number too large for a double is
        // refused only where it is read, so one out-of-range value does not make a whole document unreadable.
        if bytes[i] == UInt8(ascii: "-") || (bytes[i] >= 0x30 && bytes[i] <= 0x39) {
          _ = try number(allowingInfinity: true)
        } else {
          _ = try value(depth: 0)
        }
      }
      // After a value: close what ends here, then on to the next element, or done.
      while let close = open.last {
        let isObject = close == UInt8(ascii: "}")
        skipSpace()
        guard i < bytes.count else { throw fail(isObject ? "unterminated object" : "unterminated array") }
        if bytes[i] == close {
          i += 1
          open.removeLast()
          continue
        }
        guard bytes[i] == UInt8(ascii: ",") else {
          throw fail(isObject ? "expected `,` or `}` in an object" : "expected `,` or `]` in an array")
        }
        i += 1
        skipSpace()
        if isObject { try skipKey() }
        break
      }
      if open.isEmpty { return }
    }
  }

  /// Steps over `"key":` and the space after it.
  mutating func skipKey() throws(JSON.ParseError) {
    guard i < bytes.count, bytes[i] == UInt8(ascii: "\"") else { throw fail("expected a string key") }
    try skipString()
    skipSpace()
    guard i < bytes.count, bytes[i] == UInt8(ascii: ":") else { throw fail("expected `:` after a key") }
    i += 1
    skipSpace()
  }

  mutating func skipString() throws(JSON.ParseError) {
    i += 1
    while i < bytes.count {
      let b = bytes[i]
      if b == UInt8(ascii: "\"") {
        i += 1
        return
      }
      if b == UInt8(ascii: "\\") {
        i += 2
        continue
      }
      if b < 0x20 { throw fail("control character in a string") }
      i += 1
    }
    throw fail("unterminated string")
  }

  mutating func literal(_ word: StaticString) throws(JSON.ParseError) {
    let n = word.utf8CodeUnitCount
    guard i + n <= bytes.count else { throw fail("invalid literal") }
    let w = word.utf8Start
    for k in 0..<n where bytes[i + k] != w[k] { throw fail("invalid literal") }
    i += n
  }

  mutating func number(allowingInfinity: Bool = false) throws(JSON.ParseError) -> Value {
    let start = i
    var negative = false
    if i < bytes.count, bytes[i] == UInt8(ascii: "-") {
      negative = true
      i += 1
    }
    var n: Int64 = 0
    var overflow = false
    let digitsStart = i
    while i < bytes.count, bytes[i] >= 0x30, bytes[i] <= 0x39 {
      let (m, o1) = n.multipliedReportingOverflow(by: 10)
      let (a, o2) = m.addingReportingOverflow(Int64(bytes[i] - 0x30))
      overflow = overflow || o1 || o2
      n = a
      i += 1
    }
    guard i > digitsStart else { throw fail("unexpected character `\(Character(UnicodeScalar(bytes[start])))`") }
    var isDouble = overflow
    if i < bytes.count, bytes[i] == UInt8(ascii: ".") {
      isDouble = true
      i += 1
      while i < bytes.count, bytes[i] >= 0x30, bytes[i] <= 0x39 { i += 1 }
    }
    if i < bytes.count, bytes[i] == UInt8(ascii: "e") || bytes[i] == UInt8(ascii: "E") {
      isDouble = true
      i += 1
      if i < bytes.count, bytes[i] == UInt8(ascii: "+") || bytes[i] == UInt8(ascii: "-") { i += 1 }
      while i < bytes.count, bytes[i] >= 0x30, bytes[i] <= 0x39 { i += 1 }
    }
    if !isDouble { return .int(negative ? -n : n) }
    let text = String(decoding: UnsafeBufferPointer(rebasing: bytes[start..<i]), as: UTF8.self)
    guard let d = Double(text) else { throw JSON.ParseError(offset: start, message: "invalid number") }
    // Past the largest double a number reads as infinity, which no JSON text can write back.
    guard d.isFinite || allowingInfinity else { throw JSON.ParseError(offset: start, message: "number out of range") }
    return .double(d)
  }

  mutating func string() throws(JSON.ParseError) -> String {
    i += 1  // opening quote
    let start = i
    // Fast path: no escapes.
    while i < bytes.count {
      let b = bytes[i]
      if b == UInt8(ascii: "\"") {
        let s = String(decoding: UnsafeBufferPointer(rebasing: bytes[start..<i]), as: UTF8.self)
        i += 1
        return s
      }
      if b == UInt8(ascii: "\\") { break }
      if b < 0x20 { throw fail("control character in a string") }
      i += 1
    }
    var out = [UInt8](UnsafeBufferPointer(rebasing: bytes[start..<i]))
    while i < bytes.count {
      let b = bytes[i]
      if b == UInt8(ascii: "\"") {
        i += 1
        return String(decoding: out, as: UTF8.self)
      }
      if b == UInt8(ascii: "\\") {
        i += 1
        guard i < bytes.count else { break }
        let e = bytes[i]
        i += 1
        switch e {
        case UInt8(ascii: "\""): out.append(0x22)
        case UInt8(ascii: "\\"): out.append(0x5C)
        case UInt8(ascii: "/"): out.append(0x2F)
        case UInt8(ascii: "b"): out.append(0x08)
        case UInt8(ascii: "f"): out.append(0x0C)
        case UInt8(ascii: "n"): out.append(0x0A)
        case UInt8(ascii: "r"): out.append(0x0D)
        case UInt8(ascii: "t"): out.append(0x09)
        case UInt8(ascii: "u"):
          var code = try hex4()
          // A high surrogate joins the low surrogate escaped right after it; a half without its partner (and
          // the escape after a lone high half, read on its own) is not a character: U+FFFD stands in for it.
          if code >= 0xD800 && code < 0xDC00, i + 1 < bytes.count, bytes[i] == UInt8(ascii: "\\"),
            bytes[i + 1] == UInt8(ascii: "u")
          {
            let next = i
            i += 2
            let low = try hex4()
            if low >= 0xDC00 && low < 0xE000 {
              code = 0x10000 + ((code - 0xD800) << 10) + (low - 0xDC00)
            } else {
              i = next
            }
          }
          let scalar = UnicodeScalar(code) ?? "\u{FFFD}"
          out.append(contentsOf: Array(String(Character(scalar)).utf8))
        default: throw fail("invalid escape in a string")
        }
        continue
      }
      if b < 0x20 { throw fail("control character in a string") }
      out.append(b)
      i += 1
    }
    throw fail("unterminated string")
  }

  mutating func hex4() throws(JSON.ParseError) -> UInt32 {
    guard i + 4 <= bytes.count else { throw fail("invalid \\u escape") }
    var v: UInt32 = 0
    for _ in 0..<4 {
      let b = bytes[i]
      let d: UInt32
      switch b {
      case 0x30...0x39: d = UInt32(b - 0x30)
      case 0x41...0x46: d = UInt32(b - 0x41 + 10)
      case 0x61...0x66: d = UInt32(b - 0x61 + 10)
      default: throw fail("invalid \\u escape")
      }
      v = v << 4 | d
      i += 1
    }
    return v
  }
}

extension Value {
  /// The text a value reads as in a record file: strings as they are, other values as JSON.
  public var plainText: String {
    if case .string(let s) = self { return s }
    return JSON.encode(self)
  }
}
