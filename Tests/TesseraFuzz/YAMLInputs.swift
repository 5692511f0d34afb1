import Foundation
import TesseraModel

/// Pipelines made from the example pipeline and its rule files (`pipelines/retail.yaml`, `rules/*.yaml`) by
/// mutating one of the files: lines dropped, repeated, swapped or re-indented, scalars replaced, bytes
/// damaged; and YAML's own traps — anchors and aliases that expand exponentially, flow and block nesting
/// deeper than any parser's stack, tags, several documents, directives, NUL bytes and a byte order mark.
public struct YAMLInputs: Sendable {
  /// The files, by absolute path; the pipeline first.
  public let files: [(path: String, text: String)]

  /// Reads `pipelines/retail.yaml` and the rule files it includes under `root` (the package root).
  public init(root: String) throws {
    let pipeline = root + "/pipelines/retail.yaml"
    let text = try String(contentsOfFile: pipeline, encoding: .utf8)
    // Every rule file the pipeline includes (`- ../rules/NAME.yaml`), so a new one is fuzzed too (a list written
    // here once missed `rules/measurement.yaml`, and every input failed to compile for want of it).
    let included = text.split(separator: "\n").compactMap { line -> String? in
      guard let r = line.range(of: "../rules/") else { return nil }
      return "rules/" + line[r.upperBound...].trimmingCharacters(in: .whitespaces)
    }
    files =
      [(pipeline, text)]
      + (try included.map { (root + "/" + $0, try String(contentsOfFile: root + "/" + $0, encoding: .utf8)) })
  }

  public var pipeline: String { files[0].path }

  static let scalars = [
    "~", "null", "''", "\"\"", "-1", "0", "1e400", "99999999999999999999", "yes", "no", "on", "0x1F", ".inf", ".nan",
    "2026-01-01", "90d", "-90d", "0d", "1s..5m", "5m..1s", "[]", "{}", "[a, b]", "{a: 1}", "&a x", "*a", "*undefined",
    "!!binary aGVsbG8=", "!!python/object:os.system x", "!custom x", "|", ">-", "'unterminated", "\"unterminated",
    "${UNSET}", "${HOME", "\"\\uD800\"", "\"\\x00\"", "a: b: c", "- x", "? x", "@x", "`x", "%x", "#", "'\u{0}'",
    "traits.city == 1 &&", "size(", "sha256(sha256(sha256(profile.email)))", "\"a\" + 1",
  ]

  /// A mutated set of files: the texts to compile, by path.
  public func next(_ m: inout Mutator) -> [String: String] {
    var out = Dictionary(uniqueKeysWithValues: files.map { ($0.path, $0.text) })
    let (path, text) = m.pick(files)
    out[path] = mutate(text, &m)
    return out
  }

  func mutate(_ text: String, _ m: inout Mutator) -> String {
    var lines = text.split(separator: "\n", omittingEmptySubsequences: false).map(String.init)
    for _ in 0..<(1 + m.int(3)) {
      let i = m.int(lines.count)
      switch m.int(14) {
      case 0: lines.remove(at: i)
      case 1: lines.insert(lines[i], at: i)
      case 2: lines.swapAt(i, m.int(lines.count))
      case 3: lines[i] = String(repeating: " ", count: m.int(5)) + lines[i].drop { $0 == " " }
      case 4:
        // A mapping value replaced by an odd scalar.
        if let colon = lines[i].firstIndex(of: ":") {
          lines[i] = String(lines[i][...colon]) + " " + m.pick(Self.scalars)
        }
      case 5: lines[i] += " " + m.pick(Self.scalars)
      case 6: lines.insert(String(repeating: " ", count: m.int(6)) + m.pick(Self.scalars), at: i)
      case 7: lines.insert(Self.aliasBomb(levels: 2 + m.int(9), width: 2 + m.int(9)), at: m.chance(50) ? 0 : i)
      case 8: lines.insert("deep: " + Self.flowNesting(m.pick([10, 500, 5_000, 100_000])), at: i)
      case 9: lines.insert(Self.blockNesting(m.pick([10, 200, 2_000, 20_000])), at: i)
      case 10:
        lines.insert(m.pick(["---", "...", "%YAML 1.1", "%TAG ! tag:x,2026:", "--- !!map", "\t", "\u{FEFF}"]), at: i)
      case 11: lines[i] = String(decoding: m.mutateBytes(Array(lines[i].utf8)), as: UTF8.self)
      case 12: lines.insert("anchor: &x { kind: csv, path: p.csv }\nother: *x\nmerged: { <<: *x, kind: http }", at: i)
      default:
        lines.insert(
          "k\(m.int(9)): " + String(repeating: m.pick(["a", "é", "\\", "'", "\u{0}"]), count: m.pick([100, 100_000])),
          at: i)
      }
      if lines.isEmpty { lines = [""] }
    }
    return lines.joined(separator: m.chance(5) ? "\r\n" : "\n")
  }

  /// The "billion laughs": each level a list of `width` aliases of the level before, so the document
  /// describes `width^levels` scalars in a few hundred bytes.
  public static func aliasBomb(levels: Int, width: Int) -> String {
    var out = "l0: &l0 [lol]"
    for l in 1..<levels {
      out += "\nl\(l): &l\(l) [" + Array(repeating: "*l\(l - 1)", count: width).joined(separator: ", ") + "]"
    }
    return out
  }

  /// A flow value nested `depth` levels: `[[[…]]]`.
  public static func flowNesting(_ depth: Int) -> String {
    String(repeating: "[", count: depth) + String(repeating: "]", count: depth)
  }

  /// A block value nested `depth` levels: `- - - … x` on one line.
  public static func blockNesting(_ depth: Int) -> String {
    "deep_block:\n  " + String(repeating: "- ", count: depth) + "x"
  }
}
