import TesseraLanguage
import TesseraModel

/// The scopes each place of the configuration compiles its expressions in. The slot order written here is
/// the contract with the runtime, which fills `Env.slots` in the same order.
public enum Scopes {
  /// Source mappings: slot 0 is the raw record (a map); any name reads a field of it, dotted paths go into
  /// nested JSON. CSV fields are strings unless the schema declares a type.
  public static func record(kind: SourceKind, types: [String: ExprType]) -> Scope {
    var s = Scope(place: "a source mapping")
    s.addRawRecord(default: kind == .csv ? .string : .dyn)
    s.rawTypes = types
    return s
  }

  /// Event filters and computed-trait values. Slots: 0 `event` (name), 1 `type`, 2 `source`, 3 `timestamp`,
  /// 4 `message_id`, 5 `properties`, 6 `traits`, 7 `context` (maps), then `identifiers.<kind>` in the order given.
  public static func event(identifiers: [String], place: String = "an event filter") -> Scope {
    var s = Scope(place: place)
    s.addVariable("event", .string)
    s.addVariable("type", .string)
    s.addVariable("source", .string)
    s.addVariable("timestamp", .timestamp)
    s.addVariable("message_id", .string)
    s.addOpenNamespace("properties")
    s.addOpenNamespace("traits")
    s.addOpenNamespace("context")
    for k in identifiers { s.addField("identifiers", k, .string) }
    if s.namespaces["identifiers"] == nil { s.namespaces["identifiers"] = Scope.Namespace() }
    return s
  }

  /// Segment conditions and profile payloads. Slots: `profile.id` first, then `traits.<name>` in the order
  /// given, `identifiers.<kind>`, then `segments.<name>` (bools), then `extra` variables.
  public static func profile(
    place: String, traits: [(String, ExprType)], identifiers: [String], segments: [String],
    extra: [(String, ExprType)] = []
  ) -> Scope {
    var s = Scope(place: place)
    s.addField("profile", "id", .string)
    for (name, type) in traits { s.addField("traits", name, type) }
    for k in identifiers { s.addField("identifiers", k, .string) }
    for name in segments { s.addField("segments", name, .bool) }
    for (name, type) in extra {
      let parts = name.split(separator: ".", maxSplits: 1).map(String.init)
      if parts.count == 2 { s.addField(parts[0], parts[1], type) } else { s.addVariable(name, type) }
    }
    // The closed namespaces exist even when empty (they take no slot), so `traits.x` in a pipeline without
    // traits reports the unknown field rather than an unknown name `traits`.
    for ns in ["traits", "identifiers", "segments"] where s.namespaces[ns] == nil {
      s.namespaces[ns] = Scope.Namespace()
    }
    return s
  }
}
