/// Finds where each message of a `{"batch": [...]}` body starts and ends, without building it, so that each
/// message is checked against the per-message limit before it is parsed, and kept byte for byte when it is
/// rejected. Structure only: strings (with escapes), nesting and commas; the parser checks each message.
enum BatchScanner {
  struct Unreadable: Error, Sendable {
    var message: String
  }

  /// The byte ranges of the elements of the top-level member `key`; nil when the body is an object without
  /// that member; throws when it is not an object, or the member is not an array.
  static func elements(of key: String, in b: UnsafeBufferPointer<UInt8>) throws(Unreadable) -> [Range<Int>]? {
    var i = 0
    let n = b.count
    func space() {
      while i < n, b[i] == 0x20 || b[i] == 0x0A || b[i] == 0x0D || b[i] == 0x09 { i += 1 }
    }
    func fail(_ what: String) -> Unreadable { Unreadable(message: "\(what) at byte \(i + 1)") }
    func string() throws(Unreadable) -> Range<Int> {
      guard i < n, b[i] == 0x22 else { throw fail("expected a string") }
      i += 1
      let start = i
      while i < n {
        switch b[i] {
        case 0x5C: i += 2
        case 0x22:
          defer { i += 1 }
          return start..<i
        default: i += 1
        }
      }
      throw fail("unterminated string")
    }
    func value() throws(Unreadable) {
      guard i < n else { throw fail("unexpected end of the body") }
      switch b[i] {
      case 0x22: _ = try string()
      case 0x7B, 0x5B:
        var depth = 0
        while i < n {
          switch b[i] {
          case 0x22:
            _ = try string()
            continue
          case 0x7B, 0x5B: depth += 1
          case 0x7D, 0x5D:
            depth -= 1
            if depth == 0 {
              i += 1
              return
            }
          default: break
          }
          i += 1
        }
        throw fail("unbalanced brackets")
      default:
        let start = i
        while i < n, b[i] != 0x2C, b[i] != 0x7D, b[i] != 0x5D, b[i] != 0x20, b[i] != 0x0A, b[i] != 0x0D,
          b[i] != 0x09
        {
          i += 1
        }
        if i == start { throw fail("expected a value") }
      }
    }
    let wanted = Array(key.utf8)
    space()
    guard i < n, b[i] == 0x7B else { throw fail("the body is not a JSON object") }
    i += 1
    var found: [Range<Int>]?
    space()
    if i < n, b[i] == 0x7D { return nil }
    while true {
      space()
      let k = try string()
      space()
      guard i < n, b[i] == 0x3A else { throw fail("expected `:`") }
      i += 1
      space()
      if k.count == wanted.count, zip(b[k], wanted).allSatisfy({ $0 == $1 }) {
        guard i < n, b[i] == 0x5B else { throw fail("`\(key)` is not an array") }
        i += 1
        var items: [Range<Int>] = []
        space()
        if i < n, b[i] == 0x5D {
          i += 1
        } else {
          while true {
            space()
            let start = i
            try value()
            items.append(start..<i)
            space()
            guard i < n else { throw fail("unexpected end of the body") }
            if b[i] == 0x2C {
              i += 1
              continue
            }
            guard b[i] == 0x5D else { throw fail("expected `,` or `]`") }
            i += 1
            break
          }
        }
        found = items
      } else {
        try value()
      }
      space()
      guard i < n else { throw fail("unexpected end of the body") }
      if b[i] == 0x2C {
        i += 1
        continue
      }
      guard b[i] == 0x7D else { throw fail("expected `,` or `}`") }
      i += 1
      space()
      guard i == n else { throw fail("unexpected text after the JSON object") }
      return found
    }
  }
}
