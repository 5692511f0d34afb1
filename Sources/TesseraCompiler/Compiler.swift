import Foundation
import TesseraLanguage
import TesseraModel

/// The result of compiling a pipeline: the plan when there were no errors, and every diagnostic.
public struct CompileResult: Sendable {
  public var plan: PipelinePlan?
  public var diagnostics: [Diagnostic]
  /// The files read, by the path diagnostics use, so they can be quoted.
  public var sources: [String: SourceFile]

  public var hasErrors: Bool { diagnostics.contains { $0.severity == .error } }

  /// Every diagnostic with its source line and caret, one after another.
  public func rendered() -> String {
    diagnostics.map { $0.rendered(source: sources[$0.location.file]) }.joined(separator: "\n")
  }
}

/// Turns a pipeline's YAML files into a checked `PipelinePlan`.
/// A value set on the command line for one scalar of the configuration, by its dotted path:
/// `probabilistic.person.thresholds.merge=0.95` (`rules.NAME…` finds a deterministic or probabilistic rule).
public struct Override: Sendable, Hashable, CustomStringConvertible {
  public var path: [String]
  public var value: String

  public init?(parsing text: String) {
    guard let eq = text.firstIndex(of: "=") else { return nil }
    let path = text[..<eq].split(separator: ".", omittingEmptySubsequences: false).map(String.init)
    guard !path.isEmpty, path.allSatisfy({ !$0.isEmpty }) else { return nil }
    self.path = path
    value = String(text[text.index(after: eq)...])
  }

  public var description: String { path.joined(separator: ".") + "=" + value }
}

public struct Compiler {
  public var environment: [String: String]
  /// Scalars replaced (or added) by path before the checks, as `--set` gives them.
  public var overrides: [Override] = []
  /// Reads a file's text; injectable so tests can compile from memory.
  public var readFile: @Sendable (String) -> String?
  /// Files compiled as if the pipeline included them, read instead of any file at the same path: how
  /// `tessera source infer --pipeline` checks a declaration it has not written anywhere.
  public var extraFiles: [SourceFile] = []

  public init(
    environment: [String: String] = ProcessInfo.processInfo.environment,
    readFile: @escaping @Sendable (String) -> String? = { try? String(contentsOfFile: $0, encoding: .utf8) }
  ) {
    self.environment = environment
    self.readFile = readFile
  }

  public func compile(pipeline path: String) -> CompileResult {
    compile(path, rulesOnly: false)
  }

  /// Compiles a rules file (or a pipeline) for batch matching: no `pipeline` name or sources are needed,
  /// only the identifiers, traits and probabilistic rules the records are matched with.
  public func compile(rules path: String) -> CompileResult {
    compile(path, rulesOnly: true)
  }

  func compile(_ path: String, rulesOnly: Bool) -> CompileResult {
    let extra = Dictionary(extraFiles.map { (Paths.normalize($0.path), $0.text) }, uniquingKeysWith: { a, _ in a })
    let read = readFile
    var state = CompileState(sink: Sink(environment: environment), readFile: { extra[$0] ?? read($0) })
    state.rulesOnly = rulesOnly
    state.overrides = overrides
    state.extraFiles = extraFiles.map { Paths.normalize($0.path) }
    let plan = state.run(root: Paths.normalize(path))
    let diagnostics = state.sink.diagnostics.sorted
    return CompileResult(
      plan: diagnostics.contains { $0.severity == .error } ? nil : plan, diagnostics: diagnostics,
      sources: state.files)
  }
}

public enum Paths {
  /// Folds `.` and `..` segments so diagnostics name files the way a person would.
  public static func normalize(_ path: String) -> String {
    let absolute = path.hasPrefix("/")
    var out: [Substring] = []
    for part in path.split(separator: "/", omittingEmptySubsequences: true) {
      if part == "." { continue }
      if part == "..", let last = out.last, last != ".." {
        out.removeLast()
      } else if part == ".." && absolute {
        continue
      } else {
        out.append(part)
      }
    }
    let joined = out.joined(separator: "/")
    return absolute ? "/" + joined : (joined.isEmpty ? "." : joined)
  }

  public static func directory(of path: String) -> String {
    guard let slash = path.lastIndex(of: "/") else { return "." }
    return slash == path.startIndex ? "/" : String(path[..<slash])
  }

  public static func resolve(_ relative: String, from file: String) -> String {
    relative.hasPrefix("/") ? normalize(relative) : normalize(directory(of: file) + "/" + relative)
  }
}

/// One section of a file, e.g. the `segments:` mapping of `rules/segments.yaml`.
struct Section {
  var file: String
  var key: YNode
  var body: YNode
}

struct CompileState {
  let sink: Sink
  let readFile: @Sendable (String) -> String?
  var files: [String: SourceFile] = [:]
  var order: [String] = []
  var sections: [String: [Section]] = [:]
  var rootName: String?
  var rootDescription: String?
  /// Some file is not valid YAML.
  var unreadable = false
  /// Compiling rules for `tessera link`: no pipeline name or sources required.
  var rulesOnly = false
  var overrides: [Override] = []
  /// Files loaded after the root as if it included them (unless it does).
  var extraFiles: [String] = []

  static let topLevelKeys = [
    "pipeline", "description", "include", "sources", "identifiers", "deterministic", "probabilistic", "profile",
    "computed", "segments", "destinations", "consent_purposes", "tests", "sync", "measurement",
  ]

  init(sink: Sink, readFile: @escaping @Sendable (String) -> String?) {
    self.sink = sink
    self.readFile = readFile
  }

  mutating func run(root: String) -> PipelinePlan? {
    guard let text = readFile(root) else {
      sink.error("cannot read pipeline file `\(root)`", at: SourceLocation(file: root, line: 1, column: 1))
      return nil
    }
    load(root, text: text, chain: [], isRoot: true)
    for path in extraFiles where files[path] == nil {
      if let extra = readFile(path) { load(path, text: extra, chain: [root], isRoot: false) }
    }
    var config = PipelineConfig(name: rootName ?? "pipeline", file: root, files: order)
    config.description = rootDescription
    // A file that is not valid YAML leaves its declarations unknown; checking the rest would only report
    // the consequences (missing sources, unknown names), so stop at the syntax errors.
    if unreadable { return nil }
    for o in overrides { apply(o) }
    DeclarationChecker(sink: sink, sections: sections, rulesOnly: rulesOnly, readFile: readFile).check(
      into: &config)
    if sink.diagnostics.hasErrors { return nil }
    return PipelinePlan(config: config)
  }

  /// Sets one scalar by path across the loaded files; an unknown path is an error naming what exists there.
  mutating func apply(_ o: Override) {
    let at = SourceLocation(file: "--set \(o)", line: 1, column: 1)
    var path = o.path
    var candidates = [path[0]]
    if path[0] == "rules" {
      candidates = ["probabilistic", "deterministic"]
      path.removeFirst()
      guard !path.isEmpty else {
        sink.error("`--set rules.NAME…` needs a rule name", at: at)
        return
      }
    } else {
      path.removeFirst()
    }
    var known: [String] = []
    for name in candidates {
      for k in (sections[name] ?? []).indices {
        guard var body = sections[name]?[k].body else { continue }
        if path.isEmpty {
          sink.error("`--set \(o)`: `\(name)` is a section, not a value; name a key inside it", at: at)
          return
        }
        switch CompileState.set(&body, path[...], to: o.value) {
        case .set:
          sections[name]?[k].body = body
          return
        case .missing(let keys):
          known += keys
        }
      }
    }
    let top = sections.keys.sorted()
    guard candidates.contains(where: { sections[$0] != nil }) else {
      sink.error(
        "`--set \(o)`: no section `\(o.path[0])`" + Suggest.didYouMean(o.path[0], in: top + ["rules"])
          + (top.isEmpty ? "" : "; the configuration has: \(top.joined(separator: ", "))"), at: at)
      return
    }
    let missing = path.first ?? ""
    sink.error(
      "`--set \(o)`: no `\(missing)` there" + Suggest.didYouMean(missing, in: known)
        + (known.isEmpty ? "" : "; found: \(Array(Set(known)).sorted().joined(separator: ", "))"), at: at)
  }

  enum SetResult {
    case set
    /// The path broke off: the keys that exist where it did.
    case missing([String])
  }

  /// Walks `path` from `node` and replaces the scalar at its end (or adds the last key to a mapping).
  static func set(_ node: inout YNode, _ path: ArraySlice<String>, to value: String) -> SetResult {
    guard let first = path.first else {
      if node.mapping != nil || node.sequence != nil { return .missing([]) }
      node.kind = .scalar(value, .plain)
      node.sourceLines = []
      return .set
    }
    switch node.kind {
    case .mapping(var entries):
      if let i = entries.firstIndex(where: { $0.key.scalar == first }) {
        let result = set(&entries[i].value, path.dropFirst(), to: value)
        if case .set = result { node.kind = .mapping(entries) }
        return result
      }
      guard path.count == 1 else { return .missing(entries.compactMap(\.key.scalar)) }
      entries.append(
        (
          YNode(kind: .scalar(first, .plain), location: node.location),
          YNode(kind: .scalar(value, .plain), location: node.location)
        ))
      node.kind = .mapping(entries)
      return .set
    case .sequence(var items):
      guard let i = Int(first), items.indices.contains(i) else { return .missing(items.indices.map(String.init)) }
      let result = set(&items[i], path.dropFirst(), to: value)
      if case .set = result { node.kind = .sequence(items) }
      return result
    case .scalar:
      return .missing([])
    }
  }

  mutating func load(_ path: String, text: String, chain: [String], isRoot: Bool) {
    let source = SourceFile(path: path, text: text)
    files[path] = source
    order.append(path)
    let (node, diagnostics) = YAMLReader.read(source)
    sink.diagnostics.append(contentsOf: diagnostics)
    guard let node else {
      unreadable = true
      return
    }
    if node.isNull { return }
    guard let top = MapReader(node, "the top level", sink) else { return }
    top.check(allowed: CompileState.topLevelKeys)
    for (key, value) in top.entries {
      guard let name = key.scalar, CompileState.topLevelKeys.contains(name) else { continue }
      switch name {
      case "pipeline":
        if isRoot {
          if let s = top.string("pipeline") {
            if YNode.isValidName(s) {
              rootName = s
            } else {
              sink.error("invalid pipeline name `\(s)`: use letters, digits and `_`", at: value)
            }
          }
        } else {
          sink.error("`pipeline` belongs in the pipeline file, not in an included file", at: key)
        }
      case "description":
        if isRoot { rootDescription = top.string("description") }
      case "include":
        guard let list = top.stringList("include") else { continue }
        for (rel, item) in list {
          let target = Paths.resolve(rel, from: path)
          if target == path || chain.contains(target) {
            let cycle = (chain + [path, target]).drop { $0 != target }
            sink.error("include cycle: \(cycle.joined(separator: " → "))", at: item)
            continue
          }
          if files[target] != nil { continue }  // already loaded through another include
          guard let included = readFile(target) else {
            sink.error("cannot read included file `\(target)`; check the path (relative to `\(path)`)", at: item)
            continue
          }
          load(target, text: included, chain: chain + [path], isRoot: false)
        }
      default:
        sections[name, default: []].append(Section(file: path, key: key, body: value))
      }
    }
    if isRoot, rootName == nil, !top.has("pipeline"), !rulesOnly {
      sink.error("the pipeline file is missing the required key `pipeline` (the pipeline's name)", at: node.location)
    }
  }
}
