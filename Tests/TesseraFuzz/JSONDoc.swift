import TesseraModel

/// A JSON text as a tree whose leaves are kept as bytes, so that a mutation can write what no `Value` holds:
/// duplicate keys, numbers past every range, invalid UTF-8 inside strings, nesting deeper than any parser
/// allows. Writing never recurses into `nested`, so a document nested a million levels deep is written with a
/// constant stack.
public indirect enum JSONDoc: Sendable {
  /// A literal or a number, written as is (it need not be valid JSON).
  case token([UInt8])
  /// The bytes between the quotes, written as is: escapes are the caller's, and the bytes need not be UTF-8.
  case string([UInt8])
  case array([JSONDoc])
  /// Members in order; a key may occur more than once.
  case object([(key: [UInt8], value: JSONDoc)])
  /// `inner` wrapped `depth` times in `open` … `close` (for example `[` … `]`, or `{"a":` … `}`).
  case nested(open: [UInt8], close: [UInt8], depth: Int, inner: JSONDoc)

  /// The document of a value: map keys in sorted order, strings escaped as `JSON.encode` escapes them.
  public init(_ value: Value) {
    switch value {
    case .map(let m):
      self = .object(m.keys.sorted().map { (key: Self.escaped($0), value: JSONDoc(m[$0] ?? .null)) })
    case .list(let l): self = .array(l.map(JSONDoc.init))
    case .string(let s): self = .string(Self.escaped(s))
    default: self = .token(Array(JSON.encode(value).utf8))
    }
  }

  /// The text of a string between its quotes, escaped.
  public static func escaped(_ s: String) -> [UInt8] {
    let quoted = Array(JSON.encode(.string(s)).utf8)
    return Array(quoted.dropFirst().dropLast())
  }

  public var bytes: [UInt8] {
    var out: [UInt8] = []
    write(into: &out)
    return out
  }

  public func write(into out: inout [UInt8]) {
    switch self {
    case .token(let t): out += t
    case .string(let s):
      out.append(0x22)
      out += s
      out.append(0x22)
    case .array(let items):
      out.append(UInt8(ascii: "["))
      for (i, item) in items.enumerated() {
        if i > 0 { out.append(UInt8(ascii: ",")) }
        item.write(into: &out)
      }
      out.append(UInt8(ascii: "]"))
    case .object(let members):
      out.append(UInt8(ascii: "{"))
      for (i, m) in members.enumerated() {
        if i > 0 { out.append(UInt8(ascii: ",")) }
        out.append(0x22)
        out += m.key
        out += [0x22, UInt8(ascii: ":")]
        m.value.write(into: &out)
      }
      out.append(UInt8(ascii: "}"))
    case .nested(let open, let close, let depth, let inner):
      out.reserveCapacity(out.count + depth * (open.count + close.count))
      for _ in 0..<depth { out += open }
      inner.write(into: &out)
      for _ in 0..<depth { out += close }
    }
  }

  /// The members of an object, else nil.
  public var members: [(key: [UInt8], value: JSONDoc)]? {
    if case .object(let m) = self { return m }
    return nil
  }

  /// The value of the last member named `key` of an object.
  public subscript(key: String) -> JSONDoc? {
    members?.last { $0.key == Array(key.utf8) }?.value
  }
}
