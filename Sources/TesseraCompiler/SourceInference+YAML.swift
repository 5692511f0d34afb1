extension SourceInference.Declaration {
  /// The declaration as a YAML file of its own: `header` as comment lines, then a `sources:` mapping with
  /// this source, each guess followed by the reason for it. Include the file from the pipeline, or paste the
  /// source under the pipeline's `sources:`.
  public func yaml(header: [String] = []) -> String {
    var lines: [(text: String, why: String?)] = []
    func add(_ indent: Int, _ key: String, _ value: String?, _ why: String? = nil, commented: Bool = false) {
      let pad = String(repeating: " ", count: indent)
      let body = key + ":" + (value.map { " " + $0 } ?? "")
      lines.append(((commented ? pad + "# " : pad) + body, why))
    }
    add(0, "sources", nil)
    add(2, name, nil)
    add(4, "kind", kind.rawValue)
    add(4, "path", Self.scalar(path), complete ? "all \(records) records read" : "the first \(records) records read")
    for g in settings { add(4, g.key, Self.scalar(g.value), g.why, commented: g.commentedOut) }
    if !required.isEmpty || !types.isEmpty {
      add(4, "schema", nil)
      if !required.isEmpty {
        add(
          6, "required", "[" + required.map(Self.scalar).joined(separator: ", ") + "]",
          "never empty in the \(records) sampled records; a record without one is rejected")
      }
      if !types.isEmpty {
        add(6, "types", nil)
        for t in types { add(8, Self.scalar(t.key), t.value, t.why) }
      }
    }
    add(4, "map", nil)
    for g in map { add(6, Self.scalar(g.key), Self.scalar(g.value), g.why, commented: g.commentedOut) }
    let width = min(48, (lines.filter { $0.why != nil }.map(\.text.count).max() ?? 0) + 2)
    var out = header.map { $0.isEmpty ? "#" : "# " + $0 }
    out += notes.map { "# note: " + $0 }
    for (text, why) in lines {
      guard let why else {
        out.append(text)
        continue
      }
      out.append(text.padding(toLength: max(width, text.count + 2), withPad: " ", startingAt: 0) + "# " + why)
    }
    return out.joined(separator: "\n") + "\n"
  }

  static let plainFirst = Set("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_./")
  static let plainRest = plainFirst.union(Set("-+@*"))
  static let reserved: Set<String> = ["true", "false", "null", "yes", "no", "on", "off", "y", "n", "~"]

  /// A YAML scalar: plain when that reads back the same (no comma, so also in a flow list), else single-quoted.
  static func scalar(_ s: String) -> String {
    if let f = s.first, plainFirst.contains(f), s.allSatisfy(plainRest.contains), !reserved.contains(s.lowercased()) {
      return s
    }
    return "'" + s.replacingOccurrences(of: "'", with: "''") + "'"
  }
}
