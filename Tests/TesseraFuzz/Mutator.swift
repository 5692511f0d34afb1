import TesseraModel

/// Seeded mutations of JSON documents and byte strings: the hostile inputs a reader of the tracking API or of
/// record files must survive. The same seed gives the same inputs on every machine.
public struct Mutator: Sendable {
  public var rng: SplitMix64

  public init(seed: UInt64) { rng = SplitMix64(seed: seed) }

  public mutating func int(_ n: Int) -> Int { n <= 1 ? 0 : Int(rng.next() % UInt64(n)) }
  public mutating func chance(_ percent: Int) -> Bool { int(100) < percent }
  public mutating func pick<T>(_ xs: [T]) -> T { xs[int(xs.count)] }

  // MARK: Values that break assumptions

  /// Tokens of every JSON type and of none: numbers past Int64 and Double, malformed numbers and literals.
  public static let oddTokens: [String] = [
    "null", "true", "false", "0", "-0", "-1", "1.5", "1e400", "-1e400", "1e-400", "123456789012345678901234567890",
    "9223372036854775807", "9223372036854775808", "-9223372036854775808", "-9223372036854775809",
    "1.7976931348623157e308", "4.9e-324", "0.1e1", "1E+2", "NaN", "Infinity", "-Infinity", "1e", "1e+", "01",
    ".5", "--1", "+1", "0x10", "1_000", "tru", "nul", "falsey", "", "\"", "[", "{", "]", "}",
  ]

  /// String contents (between the quotes) that are not text a reader expects: invalid UTF-8, lone surrogates,
  /// NUL, control characters, broken escapes, very long and deeply escaped text.
  public static let oddStrings: [[UInt8]] = [
    [0xFF], [0xC0, 0x80], [0xC0, 0xAF], [0x80], [0xE2, 0x82], [0xED, 0xA0, 0x80], [0xF4, 0x90, 0x80, 0x80],
    [0xF8, 0x88, 0x80, 0x80, 0x80], [0xFE, 0xFF], Array("\\uD800".utf8), Array("\\uDC00".utf8),
    Array("\\uD800\\u0041".utf8), Array("\\uD800\\u0000".utf8), Array("\\uDBFF\\uDFFF".utf8),
    Array("\\uD800\\uD800".utf8), Array("\\u0000".utf8), Array("\\u00".utf8), Array("\\uZZZZ".utf8),
    Array("\\x41".utf8), Array("\\".utf8), [0x01], [0x0A], [0x09], [0x7F], Array("a\u{0}b".utf8),
    Array("\u{202E}gnp.exe".utf8), Array("👩‍👩‍👧‍👦".utf8), Array("\u{FEFF}".utf8), Array("e\u{301}".utf8),
    Array("2026-13-45T25:61:61Z".utf8), Array("9999-12-31T23:59:59.9999999999Z".utf8),
    Array("0000-01-01T00:00:00Z".utf8), Array("2026-02-29".utf8), Array("2024-02-29T00:00:00+23:59".utf8),
    Array("2026-01-01T00:00:00-24:00".utf8), Array("1970-01-01".utf8), Array("2026-01-01T00:00".utf8),
    Array("not-an-email@".utf8), Array("@".utf8), Array("a@b".utf8), Array("+".utf8), Array("+1 (555) 0100 x99".utf8),
    Array(" ".utf8), Array("".utf8), Array("identify".utf8), Array("TRACK".utf8), Array("batch".utf8),
  ]

  /// A string value that is odd in one of several ways, or long.
  public mutating func oddString() -> JSONDoc {
    switch int(10) {
    case 0: return .string([UInt8](repeating: UInt8(ascii: "a"), count: pick([100, 5000, 40_000])))
    case 1: return .string(Array(String(repeating: "\\\"", count: pick([10, 1000, 20_000])).utf8))
    case 2:
      var s: [UInt8] = []
      for _ in 0..<(1 + int(20)) { s.append(UInt8(truncatingIfNeeded: rng.next())) }
      return .string(s.filter { $0 != 0x22 && $0 != 0x5C })
    default: return .string(pick(Self.oddStrings))
    }
  }

  /// Any value of an unexpected kind: a token, an odd string, an empty or odd container.
  public mutating func oddValue() -> JSONDoc {
    switch int(8) {
    case 0, 1, 2: return .token(Array(pick(Self.oddTokens).utf8))
    case 3, 4: return oddString()
    case 5: return .array(int(2) == 0 ? [] : [.token(Array("1".utf8)), oddString()])
    case 6: return .object(int(2) == 0 ? [] : [(key: Array("a".utf8), value: .token(Array("1".utf8)))])
    default: return nest(.token(Array("1".utf8)))
    }
  }

  /// `inner` nested in arrays or objects, from a few levels to far past any parser's limit.
  public mutating func nest(_ inner: JSONDoc) -> JSONDoc {
    let depth =
      int(100) == 0 ? pick([100_000, 1_000_000]) : pick([2, 64, 510, 511, 512, 513, 1000, 10_000])
    if int(2) == 0 { return .nested(open: Array("[".utf8), close: Array("]".utf8), depth: depth, inner: inner) }
    return .nested(open: Array("{\"a\":".utf8), close: Array("}".utf8), depth: depth, inner: inner)
  }

  // MARK: Structure-aware mutation

  /// Field names the tracking API and the example records read, so mutations hit the fields that matter.
  public static let knownKeys = [
    "type", "userId", "anonymousId", "messageId", "event", "name", "timestamp", "sentAt", "originalTimestamp",
    "traits", "context", "properties", "previousId", "groupId", "writeKey", "batch", "integrations", "email",
    "phone", "channel", "order", "customer", "loyalty_no", "completed_at", "total", "items", "store", "postcode",
  ]

  /// One to three structural mutations of `doc`: a value replaced by one of another kind, a member dropped,
  /// a duplicate key, a known field set to something odd, deep nesting, an element repeated.
  public mutating func mutate(_ doc: JSONDoc) -> JSONDoc {
    var d = doc
    for _ in 0..<(1 + int(3)) { d = mutateOnce(d, depth: 0) }
    return d
  }

  mutating func mutateOnce(_ doc: JSONDoc, depth: Int) -> JSONDoc {
    // Go down into a container most of the time, so mutations land at every depth.
    let descend = depth < 12 && int(3) != 0
    switch doc {
    case .object(var members):
      if descend, !members.isEmpty {
        let i = int(members.count)
        members[i].value = mutateOnce(members[i].value, depth: depth + 1)
        return .object(members)
      }
      switch int(7) {
      case 0 where !members.isEmpty:
        members.remove(at: int(members.count))
      case 1 where !members.isEmpty:
        // A duplicate key, before or after the original, with another value.
        let m = members[int(members.count)]
        let copy = (key: m.key, value: int(2) == 0 ? oddValue() : m.value)
        members.insert(copy, at: int(2) == 0 ? 0 : members.count)
      case 2, 3:
        let key = Array(pick(Self.knownKeys).utf8)
        let value = oddValue()
        if let i = members.firstIndex(where: { $0.key == key }) {
          members[i].value = value
        } else {
          members.append((key: key, value: value))
        }
      case 4:
        members.append((key: pick(Self.oddStrings), value: oddValue()))
      case 5:
        return nest(.object(members))
      default:
        return oddValue()
      }
      return .object(members)
    case .array(var items):
      if descend, !items.isEmpty {
        let i = int(items.count)
        items[i] = mutateOnce(items[i], depth: depth + 1)
        return .array(items)
      }
      switch int(5) {
      case 0 where !items.isEmpty: items.remove(at: int(items.count))
      case 1 where !items.isEmpty:
        let item = items[int(items.count)]
        items += Array(repeating: item, count: pick([1, 2, 10, 200]))
      case 2: items.append(oddValue())
      case 3: return nest(.array(items))
      default: return oddValue()
      }
      return .array(items)
    case .nested(let open, let close, let depth, let inner):
      return .nested(open: open, close: close, depth: depth, inner: mutateOnce(inner, depth: 12))
    case .token, .string:
      return oddValue()
    }
  }

  // MARK: Byte-level mutation

  /// Bytes a byte-level mutation inserts: JSON and CSV punctuation, line ends, quotes, invalid UTF-8.
  static let interesting: [UInt8] = [
    0x22, 0x5C, 0x2C, 0x3A, 0x7B, 0x7D, 0x5B, 0x5D, 0x0A, 0x0D, 0x00, 0x09, 0x20, 0xFF, 0xC0, 0x80, 0xEF, 0xBB, 0xBF,
    0x30, 0x2D, 0x65,
  ]

  /// One to four byte-level mutations: truncation, bit flips, inserted, deleted or repeated ranges.
  public mutating func mutateBytes(_ input: [UInt8]) -> [UInt8] {
    var b = input
    for _ in 0..<(1 + int(4)) {
      switch int(8) {
      case 0:
        b = Array(b.prefix(int(b.count + 1)))
      case 1 where !b.isEmpty:
        let i = int(b.count)
        b[i] ^= UInt8(1 << int(8))
      case 2 where !b.isEmpty:
        b[int(b.count)] = pick(Self.interesting)
      case 3:
        b.insert(pick(Self.interesting), at: int(b.count + 1))
      case 4 where !b.isEmpty:
        let start = int(b.count)
        b.removeSubrange(start..<min(b.count, start + 1 + int(16)))
      case 5 where !b.isEmpty:
        let start = int(b.count)
        let piece = b[start..<min(b.count, start + 1 + int(32))]
        b.insert(contentsOf: piece, at: int(b.count + 1))
      case 6:
        b.insert(contentsOf: pick(Self.oddStrings), at: int(b.count + 1))
      default:
        if !b.isEmpty { b[int(b.count)] = UInt8(truncatingIfNeeded: rng.next()) }
      }
    }
    return b
  }
}
