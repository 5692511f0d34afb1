import TesseraIdentity
import TesseraModel

/// The JSON form in which the SQLite and PostgreSQL stores keep `Value`s (event bodies, trait values and states):
/// both write the same text, so a value moved between them reads back the same.
///
/// Plain `JSON.encode` is lossy for Tessera values: timestamps and durations come back as strings, and
/// non-finite doubles (and the sign of -0.0) are lost. The store must give back exactly what it was given, so
/// the few values plain JSON cannot carry are written as one-key objects with a reserved key:
///
/// - `{"$t": 1714557630000000}` a timestamp (microseconds), `{"$d": 90000000}` a duration (microseconds),
/// - `{"$f": "nan" | "inf" | "-inf" | "-0"}` a double JSON cannot spell, `{"$i": "-9223372036854775808"}`
///   `Int64.min`, which `JSON.parse` turns into a double,
/// - `{"$m": {...}}` a genuine one-key map whose key starts with `$`, so it is never mistaken for the above.
///
/// Everything else is ordinary JSON as `JSON.encode` produces it (integers stay integers, doubles keep a
/// fraction or an exponent), so the stored text stays readable with SQLite's JSON functions.
public enum StoredValue {
  public static func encode(_ v: Value) -> String {
    var out = JSONWriter(capacity: 32)
    write(v, to: &out)
    return out.text
  }

  public static func write(_ v: Value, to out: inout JSONWriter) {
    switch v {
    case .double(let d):
      if d.isNaN {
        out.raw(#"{"$f":"nan"}"#)
      } else if d.isInfinite {
        d > 0 ? out.raw(#"{"$f":"inf"}"#) : out.raw(#"{"$f":"-inf"}"#)
      } else if d == 0, d.sign == .minus {
        out.raw(#"{"$f":"-0"}"#)
      } else {
        out.double(d)
      }
    case .int(Int64.min):
      // `JSON.parse` reads -9223372036854775808 back as a double (it overflows while accumulating the
      // magnitude), so the one integer it cannot read is spelled out.
      out.raw(#"{"$i":"-9223372036854775808"}"#)
    case .timestamp(let t):
      out.raw(#"{"$t":"#)
      out.int(t.microseconds)
      out.raw("}")
    case .duration(let d):
      out.raw(#"{"$d":"#)
      out.int(d.microseconds)
      out.raw("}")
    case .list(let l):
      out.raw("[")
      var first = true
      for x in l {
        if !first { out.raw(",") }
        first = false
        write(x, to: &out)
      }
      out.raw("]")
    case .map(let m):
      // Keys are not sorted: the stored text need not be canonical, and sorting costs on the hot path.
      let wrap = m.count == 1 && m.first?.key.utf8.first == UInt8(ascii: "$")
      if wrap { out.raw(#"{"$m":"#) }
      out.raw("{")
      var first = true
      for (k, x) in m {
        if !first { out.raw(",") }
        first = false
        out.string(k)
        out.raw(":")
        write(x, to: &out)
      }
      out.raw("}")
      if wrap { out.raw("}") }
    case .null, .bool, .int, .string:
      out.value(v)
    }
  }

  public static func decode(_ text: String) throws -> Value {
    let parsed: Value
    do { parsed = try JSON.parse(text) } catch { throw StoreError.corrupt("stored JSON does not parse: \(error)") }
    // Only text holding a reserved one-key object needs the second pass.
    return holdsReserved(text) ? try restore(parsed) : parsed
  }

  /// Whether the text holds `{"$` (where a reserved one-key object starts), scanning bytes: Foundation's
  /// `String.contains` went through CFStringFind and cost a sixth of reading a journal back.
  static func holdsReserved(_ text: String) -> Bool {
    var text = text
    return text.withUTF8 { bytes in
      guard bytes.count >= 3 else { return false }
      var i = 0
      let end = bytes.count - 2
      while i < end {
        if bytes[i] == UInt8(ascii: "{") && bytes[i + 1] == UInt8(ascii: "\"") && bytes[i + 2] == UInt8(ascii: "$") {
          return true
        }
        i += 1
      }
      return false
    }
  }

  /// Turns the reserved one-key objects back into the values they stand for.
  public static func restore(_ v: Value) throws -> Value {
    switch v {
    case .list(let l):
      return .list(try l.map(restore))
    case .map(let m):
      if m.count == 1, let (key, inner) = m.first, key.utf8.first == UInt8(ascii: "$") {
        switch (key, inner) {
        case ("$t", .int(let us)): return .timestamp(Timestamp(microseconds: us))
        case ("$d", .int(let us)): return .duration(TimeSpan(microseconds: us))
        case ("$i", .string("-9223372036854775808")): return .int(.min)
        case ("$f", .string("nan")): return .double(.nan)
        case ("$f", .string("inf")): return .double(.infinity)
        case ("$f", .string("-inf")): return .double(-.infinity)
        case ("$f", .string("-0")): return .double(-0.0)
        case ("$m", .map(let wrapped)): return .map(try wrapped.mapValues(restore))
        default: throw StoreError.corrupt("unknown stored value marker \(JSON.encode(v))")
        }
      }
      return .map(try m.mapValues(restore))
    default:
      return v
    }
  }

  /// Identifiers as `[["kind","value"],...]`.
  public static func write(_ ids: [Identifier], to out: inout JSONWriter) {
    out.raw("[")
    var first = true
    for i in ids {
      first ? out.raw("[") : out.raw(",[")
      first = false
      out.string(i.kind)
      out.raw(",")
      out.string(i.value)
      out.raw("]")
    }
    out.raw("]")
  }

  public static func encode(_ ids: [Identifier]) -> String {
    var out = JSONWriter(capacity: 16 + 32 * ids.count)
    write(ids, to: &out)
    return out.text
  }

  public static func identifiers(_ v: Value?) throws -> [Identifier] {
    guard let v else { return [] }
    guard case .list(let l) = v else { throw StoreError.corrupt("stored identifiers are not a list") }
    return try l.map { pair in
      guard case .list(let kv) = pair, kv.count == 2, case .string(let kind) = kv[0], case .string(let value) = kv[1]
      else { throw StoreError.corrupt("stored identifier is not a [kind, value] pair") }
      return Identifier(kind, value)
    }
  }

  public static func decodeIdentifiers(_ text: String) throws -> [Identifier] {
    do { return try identifiers(try JSON.parse(text)) } catch let e as StoreError { throw e } catch {
      throw StoreError.corrupt("stored identifiers do not parse: \(error)")
    }
  }

  /// An event's body: `{"i": identifiers, "t": traits, "p": properties, "c": context}`, empty parts left out.
  public static func encodeBody(_ e: Event) -> String {
    var out = JSONWriter(
      capacity: 64 + 32 * e.identifiers.count + 48 * (e.traits.count + e.properties.count + e.context.count))
    out.raw(#"{"i":"#)
    write(e.identifiers, to: &out)
    if !e.traits.isEmpty {
      out.raw(#","t":"#)
      write(.map(e.traits), to: &out)
    }
    if !e.properties.isEmpty {
      out.raw(#","p":"#)
      write(.map(e.properties), to: &out)
    }
    if !e.context.isEmpty {
      out.raw(#","c":"#)
      write(.map(e.context), to: &out)
    }
    out.raw("}")
    return out.text
  }

  /// An event from the columns every store keeps apart and its body (`encodeBody`).
  public static func event(
    id: String, source: String, type: String, name: String?, timestamp: Int64, receivedAt: Int64, body: String
  ) throws -> Event {
    let b = try decodeBody(body)
    return Event(
      id: id, source: source, type: type, name: name, timestamp: Timestamp(microseconds: timestamp),
      receivedAt: Timestamp(microseconds: receivedAt), identifiers: b.identifiers, traits: b.traits,
      properties: b.properties, context: b.context)
  }

  public static func decodeBody(_ text: String) throws -> (
    identifiers: [Identifier], traits: [String: Value], properties: [String: Value], context: [String: Value]
  ) {
    guard case .map(let m) = try decode(text) else { throw StoreError.corrupt("stored event body is not an object") }
    func part(_ key: String) throws -> [String: Value] {
      switch m[key] {
      case nil: return [:]
      case .map(let x)?: return x
      default: throw StoreError.corrupt("stored event body part `\(key)` is not an object")
      }
    }
    return (try identifiers(m["i"]), try part("t"), try part("p"), try part("c"))
  }
}
