import Foundation
import TesseraLanguage
import TesseraModel

/// Collects diagnostics while the compiler walks the configuration. Used by one thread at a time.
final class Sink {
  var diagnostics = Diagnostics()
  let environment: [String: String]
  init(environment: [String: String]) { self.environment = environment }

  func error(_ message: String, at node: YNode, length: Int? = nil) {
    diagnostics.error(message, at: node.location, length: length ?? Sink.span(node))
  }
  func warning(_ message: String, at node: YNode, length: Int? = nil) {
    diagnostics.warning(message, at: node.location, length: length ?? Sink.span(node))
  }
  func note(_ message: String, at node: YNode, length: Int? = nil) {
    diagnostics.note(message, at: node.location, length: length ?? Sink.span(node))
  }
  func error(_ message: String, at location: SourceLocation, length: Int = 1) {
    diagnostics.error(message, at: location, length: length)
  }
  func warning(_ message: String, at location: SourceLocation, length: Int = 1) {
    diagnostics.warning(message, at: location, length: length)
  }

  static func span(_ node: YNode) -> Int {
    if case .scalar(let s, let style) = node.kind, !s.contains("\n") {
      return s.count + (style == .singleQuoted || style == .doubleQuoted ? 2 : 0)
    }
    return 1
  }

  /// Reports an expression error at its place inside the YAML scalar.
  func report(_ e: ExprError, in node: YNode) {
    diagnostics.append(Diagnostic(e.severity, at: node.location(ofOffset: e.offset), e.message, length: e.length))
  }

  /// Compiles the scalar `node` as an expression; reports problems at their exact column.
  func expression(_ node: YNode, in scope: Scope, expecting type: ExprType? = nil) -> CompiledExpr? {
    guard let text = node.scalar else {
      error("expected an expression, found \(node.kindDescription)", at: node)
      return nil
    }
    let (expr, errors) = ExprCompiler.compile(text, in: scope, expecting: type)
    for e in errors { report(e, in: node) }
    return expr
  }

  /// Replaces `${NAME}` and `${NAME:-default}` with environment values.
  func expand(_ node: YNode) -> String? {
    guard let text = node.scalar else { return nil }
    guard text.contains("${") else { return text }
    var out = ""
    var rest = Substring(text)
    var ok = true
    while let start = rest.range(of: "${") {
      out += rest[..<start.lowerBound]
      guard let end = rest[start.upperBound...].firstIndex(of: "}") else {
        error("unterminated `${` in `\(text)`; write `${NAME}`", at: node)
        return nil
      }
      let inner = rest[start.upperBound..<end]
      let parts = inner.components(separatedBy: ":-")
      let name = parts[0]
      if let v = environment[name], !v.isEmpty {
        out += v
      } else if parts.count > 1 {
        out += parts.dropFirst().joined(separator: ":-")
      } else {
        let offset = text.distance(from: text.startIndex, to: start.lowerBound)
        diagnostics.error(
          "environment variable `\(name)` is not set; set it or give a default with `${\(name):-value}`",
          at: node.location(ofOffset: offset), length: inner.count + 3)
        ok = false
      }
      rest = rest[rest.index(after: end)...]
    }
    out += rest
    return ok ? out : nil
  }
}

/// Reads the keys of one YAML mapping, checking types and reporting unknown keys once done.
struct MapReader {
  let node: YNode
  let what: String
  let sink: Sink
  /// The key the mapping is the value of (`app` in `app: {…}`), where a missing required key is reported.
  let owner: YNode?
  private var values: [String: (key: YNode, value: YNode)] = [:]
  private(set) var keys: [YNode] = []

  /// nil (with an error) when `node` is not a mapping.
  init?(_ node: YNode, _ what: String, _ sink: Sink, key owner: YNode? = nil) {
    guard let pairs = node.mapping else {
      sink.error("expected a mapping for \(what), found \(node.kindDescription)", at: node)
      return nil
    }
    self.node = node
    self.what = what
    self.sink = sink
    self.owner = owner
    for p in pairs {
      guard let k = p.key.scalar else {
        sink.error("keys of \(what) must be names, found \(p.key.kindDescription)", at: p.key)
        continue
      }
      values[k] = p
      keys.append(p.key)
    }
  }

  var entries: [(key: YNode, value: YNode)] { node.mapping ?? [] }

  /// Reports keys outside `allowed`, with a suggestion.
  func check(allowed: [String]) {
    for k in keys {
      guard let name = k.scalar, !allowed.contains(name) else { continue }
      sink.error(
        "unknown key `\(name)` in \(what)" + Suggest.didYouMean(name, in: allowed)
          + (Suggest.closest(to: name, in: allowed) == nil ? "; allowed keys: \(allowed.joined(separator: ", "))" : ""),
        at: k)
    }
  }

  func has(_ key: String) -> Bool { values[key] != nil }
  func keyNode(_ key: String) -> YNode? { values[key]?.key }

  /// The value node of `key`; with `required`, a missing key is an error at the mapping's own key (or, without
  /// one, at the mapping).
  func value(_ key: String, required: Bool = false) -> YNode? {
    if let v = values[key]?.value { return v }
    if required {
      let message = "\(what) is missing the required key `\(key)`"
      if let owner { sink.error(message, at: owner) } else { sink.error(message, at: node.location) }
    }
    return nil
  }

  func string(_ key: String, required: Bool = false) -> String? {
    guard let v = value(key, required: required) else { return nil }
    guard let s = v.scalar, v.mapping == nil, !v.isNull else {
      sink.error("expected a string for `\(key)` in \(what), found \(v.kindDescription)", at: v)
      return nil
    }
    return s
  }

  /// A string with `${NAME}` expanded.
  func expanded(_ key: String, required: Bool = false) -> String? {
    guard let v = value(key, required: required) else { return nil }
    guard v.scalar != nil, !v.isNull else {
      sink.error("expected a string for `\(key)` in \(what), found \(v.kindDescription)", at: v)
      return nil
    }
    return sink.expand(v)
  }

  func int(_ key: String, min: Int? = nil) -> Int? {
    guard let v = value(key) else { return nil }
    guard v.isPlainScalar, let s = v.scalar, let n = Int(s.replacingOccurrences(of: "_", with: "")) else {
      sink.error("expected an integer for `\(key)` in \(what), found \(v.kindDescription)", at: v)
      return nil
    }
    if let min, n < min {
      sink.error("`\(key)` in \(what) must be at least \(min), found \(n)", at: v)
      return nil
    }
    return n
  }

  func double(_ key: String) -> Double? {
    guard let v = value(key) else { return nil }
    return MapReader.double(v, key, what, sink)
  }

  static func double(_ v: YNode, _ key: String, _ what: String, _ sink: Sink) -> Double? {
    guard v.isPlainScalar, let s = v.scalar, let d = Double(s), d.isFinite else {
      sink.error("expected a number for `\(key)` in \(what), found \(v.kindDescription)", at: v)
      return nil
    }
    return d
  }

  func bool(_ key: String) -> Bool? {
    guard let v = value(key) else { return nil }
    guard v.isPlainScalar, let s = v.scalar, s == "true" || s == "false" else {
      sink.error("expected `true` or `false` for `\(key)` in \(what), found \(v.kindDescription)", at: v)
      return nil
    }
    return s == "true"
  }

  func duration(_ key: String) -> TimeSpan? {
    guard let v = value(key) else { return nil }
    return MapReader.duration(v, key, what, sink)
  }

  static func duration(_ v: YNode, _ key: String, _ what: String, _ sink: Sink) -> TimeSpan? {
    if let s = v.scalar, let d = TimeSpan(parsing: s), d.microseconds <= 0 {
      sink.error("`\(key)` in \(what) must be a positive duration, found `\(s)`", at: v)
      return nil
    }
    guard let s = v.scalar, v.mapping == nil, let d = TimeSpan(parsing: s), d.microseconds > 0 else {
      sink.error(
        "invalid duration \(v.kindDescription) for `\(key)` in \(what); write a number with a unit: w, d, h, m, s, ms (e.g. 90d, 1h30m)",
        at: v)
      return nil
    }
    return d
  }

  /// One of `choices`, with a suggestion when misspelt.
  func choice<E: RawRepresentable & CaseIterable>(_ key: String, _ type: E.Type, required: Bool = false) -> E?
  where E.RawValue == String {
    guard let v = value(key, required: required) else { return nil }
    return MapReader.choice(v, key, what, type, sink)
  }

  static func choice<E: RawRepresentable & CaseIterable>(
    _ v: YNode, _ key: String, _ what: String, _ type: E.Type, _ sink: Sink
  ) -> E? where E.RawValue == String {
    let names = E.allCases.map(\.rawValue)
    guard let s = v.scalar, v.mapping == nil, !v.isNull else {
      sink.error(
        "expected one of \(names.joined(separator: ", ")) for `\(key)` in \(what), found \(v.kindDescription)", at: v)
      return nil
    }
    guard let e = E(rawValue: s) else {
      let hint = Suggest.didYouMean(s, in: names)
      sink.error(
        "unknown \(key) `\(s)` in \(what)"
          + (hint.isEmpty ? "; expected one of \(names.joined(separator: ", "))" : hint),
        at: v)
      return nil
    }
    return e
  }

  /// A list of scalars; a single scalar is read as a list of one.
  func stringList(_ key: String) -> [(String, YNode)]? {
    guard let v = value(key) else { return nil }
    return MapReader.stringList(v, key, what, sink)
  }

  static func stringList(_ v: YNode, _ key: String, _ what: String, _ sink: Sink) -> [(String, YNode)]? {
    if let s = v.scalar, !v.isNull { return [(s, v)] }
    guard let items = v.sequence else {
      sink.error("expected a list for `\(key)` in \(what), found \(v.kindDescription)", at: v)
      return nil
    }
    var out: [(String, YNode)] = []
    for item in items {
      guard let s = item.scalar, !item.isNull else {
        sink.error("expected a name in the list `\(key)` of \(what), found \(item.kindDescription)", at: item)
        continue
      }
      out.append((s, item))
    }
    return out
  }
}

extension YNode {
  /// The named entries of a mapping: `name: body` pairs, reported when the node is not a mapping.
  func namedEntries(_ what: String, _ sink: Sink) -> [(name: String, key: YNode, body: YNode)] {
    if isNull { return [] }
    guard let pairs = mapping else {
      sink.error("expected a mapping of \(what) by name, found \(kindDescription)", at: self)
      return []
    }
    var out: [(String, YNode, YNode)] = []
    for p in pairs {
      guard let name = p.key.scalar else {
        sink.error("\(what) names must be plain names, found \(p.key.kindDescription)", at: p.key)
        continue
      }
      if !Self.isValidName(name) {
        sink.error(
          "invalid name `\(name)`: names start with a letter and use letters, digits and `_` only", at: p.key)
        continue
      }
      out.append((name, p.key, p.value))
    }
    return out
  }

  static func isValidName(_ s: String) -> Bool {
    guard let f = s.first, f.isLetter, f.isASCII else { return false }
    return s.allSatisfy { ($0.isASCII && ($0.isLetter || $0.isNumber)) || $0 == "_" }
  }
}
