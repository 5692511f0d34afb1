import Foundation
import Yams

/// A YAML node that remembers where it came from. Built from Yams' composed tree; aliases are resolved by
/// Yams and report their anchor's position.
public struct YNode: Sendable {
  public enum Style: Sendable { case plain, singleQuoted, doubleQuoted, literal, folded }

  public enum Kind: Sendable {
    case scalar(String, Style)
    case mapping([(key: YNode, value: YNode)])
    case sequence([YNode])
  }

  public var kind: Kind
  public var location: SourceLocation
  /// An explicit tag such as `!!str`, if one was written.
  public var explicitTag: String?
  /// The lines of the file a scalar was read from, so that offsets in its text map back through escapes,
  /// folded lines and block indentation. Empty for nodes built in memory.
  public var sourceLines: [Substring] = []

  public init(kind: Kind, location: SourceLocation, explicitTag: String? = nil) {
    self.kind = kind
    self.location = location
    self.explicitTag = explicitTag
  }

  public var scalar: String? {
    if case .scalar(let s, _) = kind { return s }
    return nil
  }
  public var isPlainScalar: Bool {
    if case .scalar(_, .plain) = kind, explicitTag == nil { return true }
    return false
  }
  public var mapping: [(key: YNode, value: YNode)]? {
    if case .mapping(let m) = kind { return m }
    return nil
  }
  public var sequence: [YNode]? {
    if case .sequence(let s) = kind { return s }
    return nil
  }
  /// A plain scalar that reads as YAML null (`~`, `null`, or nothing).
  public var isNull: Bool {
    guard isPlainScalar, let s = scalar else { return false }
    return s.isEmpty || s == "~" || s == "null" || s == "Null" || s == "NULL"
  }

  /// A short description of what this node is, for "expected X, found Y" messages.
  public var kindDescription: String {
    switch kind {
    case .mapping: return "a mapping"
    case .sequence: return "a list"
    case .scalar(let s, _):
      if isNull { return "null" }
      return "`\(s.count > 40 ? String(s.prefix(40)) + "…" : s)`"
    }
  }

  /// Where character `offset` of a scalar's text sits in the file: through quotes, escapes, folded lines and
  /// block indentation when the node was read from a file; estimated from the text alone otherwise.
  public func location(ofOffset offset: Int) -> SourceLocation {
    guard case .scalar(let text, let style) = kind else { return location }
    if let found = sourceLocation(ofOffset: offset, text: Array(text), style: style) { return found }
    switch style {
    case .plain:
      return lineAware(text: text, offset: offset, base: location, firstColumnShift: 0)
    case .singleQuoted, .doubleQuoted:
      return lineAware(text: text, offset: offset, base: location, firstColumnShift: 1)
    case .literal, .folded:
      // Block scalars start on the line after the indicator, indented by at least one column more.
      let prefix = text.prefix(offset)
      let line = prefix.filter { $0 == "\n" }.count
      let col =
        prefix.count - (prefix.lastIndex(of: "\n").map { prefix.distance(from: prefix.startIndex, to: $0) + 1 } ?? 0)
      return SourceLocation(file: location.file, line: location.line + 1 + line, column: location.column + 2 + col)
    }
  }

  /// Walks the source from the scalar's first character, pairing each character of the parsed text with the
  /// one it came from. Source characters that produce nothing (indentation, folded line breaks, the second quote
  /// of `''`) are skipped; a double-quoted escape such as `\"` produces one character. Nil without source lines.
  private func sourceLocation(ofOffset offset: Int, text parsed: [Character], style: Style) -> SourceLocation? {
    guard !sourceLines.isEmpty, !parsed.isEmpty else { return nil }
    var line = location.line
    var col = location.column
    switch style {
    case .plain: break
    case .singleQuoted, .doubleQuoted: col += 1
    case .literal, .folded:
      line += 1
      col = 1
    }
    var cache: [Int: [Character]] = [:]
    func char(_ l: Int, _ c: Int) -> Character? {
      guard l >= 1, l <= sourceLines.count, c >= 1 else { return nil }
      let chars = cache[l] ?? Array(sourceLines[l - 1])
      cache[l] = chars
      return c - 1 < chars.count ? chars[c - 1] : "\n"
    }
    let wanted = min(max(offset, 0), parsed.count - 1)
    var i = 0
    while let r = char(line, col) {
      var width = 1
      let matched: Bool
      if style == .doubleQuoted, r == "\\" {
        let next = char(line, col + 1)
        if next == "\n" {  // an escaped line break produces nothing
          line += 1
          col = 1
          continue
        }
        width = next == "x" ? 4 : next == "u" ? 6 : next == "U" ? 10 : 2
        matched = true
      } else {
        matched = r == parsed[i]
      }
      if matched {
        if i == wanted {
          let found = SourceLocation(file: location.file, line: line, column: col)
          return offset >= parsed.count ? found.advanced(by: width) : found
        }
        i += 1
      }
      if r == "\n" && width == 1 {
        line += 1
        col = 1
      } else {
        col += width
      }
    }
    return nil
  }

  private func lineAware(text: String, offset: Int, base: SourceLocation, firstColumnShift: Int) -> SourceLocation {
    let prefix = text.prefix(offset)
    guard let nl = prefix.lastIndex(of: "\n") else { return base.advanced(by: offset + firstColumnShift) }
    let lines = prefix.filter { $0 == "\n" }.count
    let col = prefix.distance(from: prefix.index(after: nl), to: prefix.endIndex)
    return SourceLocation(file: base.file, line: base.line + lines, column: base.column + col)
  }
}

/// Reads YAML text into `YNode`s, turning every parser problem into a positioned diagnostic.
public enum YAMLReader {
  /// Parses one YAML document. Returns nil (with diagnostics) when the text is not valid YAML.
  public static func read(_ source: SourceFile) -> (node: YNode?, diagnostics: [Diagnostic]) {
    var diagnostics: [Diagnostic] = []
    // Tabs in indentation are not YAML; libyaml's message for them is cryptic, so say it plainly.
    for (i, line) in source.lines.enumerated() {
      let indent = line.prefix { $0 == " " || $0 == "\t" }
      if let tab = indent.firstIndex(of: "\t") {
        let col = line.distance(from: line.startIndex, to: tab) + 1
        diagnostics.append(
          .error(
            "tab character in indentation; YAML indents with spaces only",
            at: SourceLocation(file: source.path, line: i + 1, column: col)))
      }
    }
    if !diagnostics.isEmpty { return (nil, diagnostics) }
    do {
      guard let node = try Yams.compose(yaml: source.text, Resolver.basic) else {
        return (YNode(kind: .mapping([]), location: SourceLocation(file: source.path, line: 1, column: 1)), [])
      }
      var budget = valueLimit
      do {
        return (try convert(node, file: source.path, lines: source.lines, budget: &budget), [])
      } catch {
        return (
          nil,
          [
            .error(
              "the document holds more than \(valueLimit) values once its aliases are expanded; "
                + "a configuration needs far fewer", at: SourceLocation(file: source.path, line: 1, column: 1))
          ]
        )
      }
    } catch let error as YamlError {
      return (nil, [diagnostic(for: error, source: source)])
    } catch {
      return (
        nil, [.error("cannot read YAML: \(error)", at: SourceLocation(file: source.path, line: 1, column: 1))]
      )
    }
  }

  /// The most values (scalars, mappings, lists) a document may hold once its aliases are expanded. Yams
  /// shares an anchored node among its aliases; `YNode`s are built one per use, so nine levels of ten aliases
  /// each ("billion laughs", under a kilobyte of text) would be 10^9 nodes and all of the machine's memory.
  public static let valueLimit = 250_000

  struct TooManyValues: Error {}

  /// The `YNode` tree of a composed node, each alias expanded; throws once `budget` values have been built.
  static func convert(_ node: Node, file: String, lines: [Substring] = [], budget: inout Int) throws(TooManyValues)
    -> YNode
  {
    budget -= 1
    guard budget >= 0 else { throw TooManyValues() }
    let loc = { (mark: Mark?) in
      SourceLocation(file: file, line: mark?.line ?? 1, column: mark?.column ?? 1)
    }
    switch node {
    case .scalar(let s):
      let style: YNode.Style
      switch s.style {
      case .singleQuoted: style = .singleQuoted
      case .doubleQuoted: style = .doubleQuoted
      case .literal: style = .literal
      case .folded: style = .folded
      default: style = .plain
      }
      var scalar = YNode(kind: .scalar(s.string, style), location: loc(s.mark), explicitTag: explicitTag(s.tag))
      scalar.sourceLines = lines
      return scalar
    case .mapping(let m):
      var pairs: [(key: YNode, value: YNode)] = []
      pairs.reserveCapacity(m.count)
      for pair in m {
        let key = try convert(pair.key, file: file, lines: lines, budget: &budget)
        pairs.append((key: key, value: try convert(pair.value, file: file, lines: lines, budget: &budget)))
      }
      return YNode(kind: .mapping(pairs), location: loc(m.mark), explicitTag: explicitTag(m.tag))
    case .sequence(let seq):
      var items: [YNode] = []
      items.reserveCapacity(seq.count)
      for item in seq { items.append(try convert(item, file: file, lines: lines, budget: &budget)) }
      return YNode(kind: .sequence(items), location: loc(seq.mark), explicitTag: explicitTag(seq.tag))
    case .alias(let a):
      return YNode(kind: .scalar("*alias", .plain), location: loc(a.mark))
    }
  }

  static func explicitTag(_ tag: Tag) -> String? {
    let raw = tag.rawValue
    return raw.isEmpty || raw == "?" || raw == "!" ? nil : raw
  }

  static func diagnostic(for error: YamlError, source: SourceFile) -> Diagnostic {
    func at(_ mark: Mark) -> SourceLocation {
      // libyaml reports an unexpected end of the stream on the line after the last; point at the end of the text.
      let lastLine = max(1, source.lines.count)
      guard mark.line <= lastLine else {
        return SourceLocation(file: source.path, line: lastLine, column: (source.line(lastLine)?.count ?? 0) + 1)
      }
      return SourceLocation(file: source.path, line: max(1, mark.line), column: max(1, mark.column))
    }
    switch error {
    case .scanner(let context, let problem, let mark, _),
      .parser(let context, let problem, let mark, _),
      .composer(let context, let problem, let mark, _):
      // libyaml stops at 1000 levels of nesting, naming the C function that changes the limit.
      if problem.hasPrefix("Maximum nesting level reached") {
        return .error("invalid YAML: the document nests values more than 1000 levels deep", at: at(mark))
      }
      var message = "invalid YAML: \(problem)"
      if let context { message += " (\(context.text) at line \(context.mark.line), column \(context.mark.column))" }
      return .error(message, at: at(mark))
    case .reader(let problem, let offset, _, _):
      var line = 1
      var column = 1
      if let offset {
        let prefix = source.text.utf8.prefix(offset)
        line = prefix.filter { $0 == UInt8(ascii: "\n") }.count + 1
        column = (prefix.split(separator: UInt8(ascii: "\n"), omittingEmptySubsequences: false).last?.count ?? 0) + 1
      }
      return .error("invalid YAML: \(problem)", at: SourceLocation(file: source.path, line: line, column: column))
    case .duplicatedKeysInMapping(let duplicates, let context):
      let key = duplicates.first ?? "?"
      let second = secondOccurrence(of: key, after: context.mark, in: source) ?? at(context.mark)
      return .error(
        "duplicate key `\(key)` (first defined at line \(context.mark.line)); remove or rename one of them",
        at: second, length: key.count)
    default:
      return .error("invalid YAML: \(error)", at: SourceLocation(file: source.path, line: 1, column: 1))
    }
  }

  /// Finds the repeated key: the next `key:` at the same column in a later line (block mappings), or later on
  /// the same line (flow mappings).
  static func secondOccurrence(of key: String, after mark: Mark, in source: SourceFile) -> SourceLocation? {
    let candidates = [key, "\"\(key)\"", "'\(key)'"]
    for lineNo in mark.line...max(mark.line, source.lines.count) {
      guard let line = source.line(lineNo) else { break }
      let chars = Array(line)
      let startCol = lineNo == mark.line ? mark.column + key.count : 0
      for c in candidates {
        var col = startCol
        while col + c.count <= chars.count {
          if String(chars[col..<(col + c.count)]) == c {
            var j = col + c.count
            while j < chars.count, chars[j] == " " { j += 1 }
            let before = col == 0 ? " " : chars[col - 1]
            if j < chars.count, chars[j] == ":", " {,".contains(before),
              lineNo > mark.line ? col == mark.column - 1 : true
            {
              return SourceLocation(file: source.path, line: lineNo, column: col + 1)
            }
          }
          col += 1
        }
      }
    }
    return nil
  }
}
