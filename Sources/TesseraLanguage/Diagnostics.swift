/// A file of configuration text, kept so diagnostics can quote the offending line.
public struct SourceFile: Sendable {
  public let path: String
  public let text: String
  public let lines: [Substring]

  public init(path: String, text: String) {
    self.path = path
    self.text = text
    self.lines = Self.lines(of: text)
  }

  /// The lines of `text`, broken at "\n", "\r\n" and a lone "\r" (which breaks lines in YAML too). Scanned in
  /// UTF-8: a line end is always a character boundary, and splitting by Character cost a third of a compile.
  static func lines(of text: String) -> [Substring] {
    var lines: [Substring] = []
    let utf8 = text.utf8
    var start = utf8.startIndex
    var i = start
    while i < utf8.endIndex {
      let byte = utf8[i]
      guard byte == UInt8(ascii: "\n") || byte == UInt8(ascii: "\r") else {
        i = utf8.index(after: i)
        continue
      }
      lines.append(text[start..<i])
      i = utf8.index(after: i)
      if byte == UInt8(ascii: "\r"), i < utf8.endIndex, utf8[i] == UInt8(ascii: "\n") { i = utf8.index(after: i) }
      start = i
    }
    lines.append(text[start...])
    return lines
  }

  public func line(_ n: Int) -> Substring? { n >= 1 && n <= lines.count ? lines[n - 1] : nil }
}

/// A position in a configuration file, 1-based, columns counted in characters.
public struct SourceLocation: Sendable, Hashable, Comparable, CustomStringConvertible {
  public var file: String
  public var line: Int
  public var column: Int

  public init(file: String, line: Int, column: Int) {
    self.file = file
    self.line = line
    self.column = column
  }

  public static func < (a: SourceLocation, b: SourceLocation) -> Bool {
    (a.file, a.line, a.column) < (b.file, b.line, b.column)
  }

  public var description: String { "\(file):\(line):\(column)" }

  /// The location `n` characters further on the same line.
  public func advanced(by n: Int) -> SourceLocation { SourceLocation(file: file, line: line, column: column + n) }
}

public enum Severity: String, Sendable, Codable, Comparable {
  case error, warning, note

  private var rank: Int {
    switch self {
    case .error: return 0
    case .warning: return 1
    case .note: return 2
    }
  }
  public static func < (a: Severity, b: Severity) -> Bool { a.rank < b.rank }
}

/// One problem found in a configuration: where, how bad, what, and how long the span under the caret is.
public struct Diagnostic: Sendable, Hashable, CustomStringConvertible {
  public var severity: Severity
  public var location: SourceLocation
  public var message: String
  /// Characters under the caret (at least 1).
  public var length: Int

  public init(_ severity: Severity, at location: SourceLocation, _ message: String, length: Int = 1) {
    self.severity = severity
    self.location = location
    self.message = message
    self.length = max(1, length)
  }

  public static func error(_ message: String, at location: SourceLocation, length: Int = 1) -> Diagnostic {
    Diagnostic(.error, at: location, message, length: length)
  }
  public static func warning(_ message: String, at location: SourceLocation, length: Int = 1) -> Diagnostic {
    Diagnostic(.warning, at: location, message, length: length)
  }
  public static func note(_ message: String, at location: SourceLocation, length: Int = 1) -> Diagnostic {
    Diagnostic(.note, at: location, message, length: length)
  }

  /// `file:line:column: severity: message`
  public var description: String { "\(location): \(severity.rawValue): \(message)" }

  /// The one-line header, the quoted source line and a caret under the span.
  public func rendered(source: SourceFile?) -> String {
    var out = description
    if let source, let line = source.line(location.line) {
      let text = String(line).replacingOccurrences(of: "\t", with: " ")
      out += "\n" + text + "\n"
      let col = max(1, location.column)
      let available = max(1, text.count - (col - 1))
      out += String(repeating: " ", count: col - 1) + "^" + String(repeating: "~", count: min(length, available) - 1)
    }
    return out
  }
}

/// Collects diagnostics and answers whether any is an error.
public struct Diagnostics: Sendable {
  public private(set) var all: [Diagnostic] = []
  public init() {}

  public mutating func append(_ d: Diagnostic) { all.append(d) }
  public mutating func error(_ message: String, at location: SourceLocation, length: Int = 1) {
    all.append(.error(message, at: location, length: length))
  }
  public mutating func warning(_ message: String, at location: SourceLocation, length: Int = 1) {
    all.append(.warning(message, at: location, length: length))
  }
  public mutating func note(_ message: String, at location: SourceLocation, length: Int = 1) {
    all.append(.note(message, at: location, length: length))
  }
  public mutating func append(contentsOf ds: [Diagnostic]) { all.append(contentsOf: ds) }

  public var hasErrors: Bool { all.contains { $0.severity == .error } }
  public var errorCount: Int { all.filter { $0.severity == .error }.count }
  public var warningCount: Int { all.filter { $0.severity == .warning }.count }

  /// Sorted by file and position, duplicates removed.
  public var sorted: [Diagnostic] {
    var seen = Set<Diagnostic>()
    return all.filter { seen.insert($0).inserted }.sorted {
      ($0.location, $0.severity, $0.message) < ($1.location, $1.severity, $1.message)
    }
  }
}

/// "Did you mean" support: the known names within a small edit distance of a misspelt one.
public enum Suggest {
  /// The closest candidate within distance max(1, name.count / 3), or nil.
  public static func closest<S: Sequence>(to name: String, in candidates: S) -> String?
  where S.Element == String {
    let limit = max(1, min(3, name.count / 3))
    var best: (String, Int)?
    for c in candidates where c != name {
      let d = editDistance(name.lowercased(), c.lowercased())
      guard d <= limit else { continue }
      if let (bc, bd) = best, bd < d || (bd == d && bc < c) { continue }
      best = (c, d)
    }
    return best?.0
  }

  /// " did you mean `x`?" (with the separator) or "" when nothing is close.
  public static func didYouMean<S: Sequence>(_ name: String, in candidates: S) -> String
  where S.Element == String {
    closest(to: name, in: candidates).map { "; did you mean `\($0)`?" } ?? ""
  }

  /// Damerau–Levenshtein (optimal string alignment) distance.
  public static func editDistance(_ a: String, _ b: String) -> Int {
    let a = Array(a.unicodeScalars)
    let b = Array(b.unicodeScalars)
    if a.isEmpty { return b.count }
    if b.isEmpty { return a.count }
    var prev2 = [Int](repeating: 0, count: b.count + 1)
    var prev = Array(0...b.count)
    var cur = [Int](repeating: 0, count: b.count + 1)
    for i in 1...a.count {
      cur[0] = i
      for j in 1...b.count {
        let cost = a[i - 1] == b[j - 1] ? 0 : 1
        var v = min(prev[j] + 1, cur[j - 1] + 1, prev[j - 1] + cost)
        if i > 1, j > 1, a[i - 1] == b[j - 2], a[i - 2] == b[j - 1] { v = min(v, prev2[j - 2] + 1) }
        cur[j] = v
      }
      (prev2, prev, cur) = (prev, cur, prev2)
    }
    return prev[b.count]
  }
}
