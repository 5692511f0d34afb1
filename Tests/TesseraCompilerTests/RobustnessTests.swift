import Foundation
import TesseraCompiler
import TesseraLanguage
import TesseraModel
import Testing

/// Random texts and YAML-shaped documents built from the configuration's own vocabulary.
struct DocumentGenerator {
  var rng: SplitMix64

  static let keys = [
    "pipeline", "include", "sources", "identifiers", "deterministic", "probabilistic", "profile", "computed",
    "segments", "destinations", "consent_purposes", "kind", "when", "map", "thresholds", "merge", "review", "link_on",
    "path", "write_key", "emit", "event", "normalize", "traits", "policy", "type", "aggregate", "of", "where",
    "window", "on", "url", "payload", "segments", "blocking", "compare", "retry", "batch", "backoff", "expires_after",
    "user_id", "email", "app", "crm", "vip", "hook", "traits.city", "identifiers.email", "level", "tf", "schema",
  ]
  static let scalars = [
    "http", "csv", "ndjson", "webhook", "file", "table", "profile_changes", "segment_changes", "events", "email",
    "phone_e164", "trim", "count", "sum", "max", "most_recent", "source_priority", "0.9", "1.5", "-1", "0", "42",
    "true", "yes", "null", "~", "90d", "0d", "10x", "1s..5m", "5m..1s", "exact", "jaro_winkler >= 0.9",
    "within 1 year", "levenshtein <= 0", "x.yaml", "../x.yaml", "p.yaml", "${HOME}", "${UNSET_VAR}", "a b c", "",
  ]
  static let fragments = [
    "traits.city", "traits.lifetime_value", "segments.vip", "identifiers.email", "profile.id", "event", "type",
    "properties.total", "customer_no", "\"a\"", "'b'", "3", "2.5", "90d", "true", "null", "now()", "lower(",
    "exists(traits.x)", "matches(profile.id, \"([\")", "size(", "coalesce(a, b)", "==", "=", "!=", ">", "<=", "&&",
    "||", "!", "-", "+", "*", "/", "%", "?", ":", "(", ")", "[", "]", ",", ".", "in", "\"unterminated", "\\",
    "&", "|", "@", "#", "1e", "99999999999999999999", "\"\\q\"",
  ]

  mutating func int(_ n: Int) -> Int { Int(rng.next() % UInt64(n)) }
  mutating func pick(_ xs: [String]) -> String { xs[int(xs.count)] }

  mutating func asciiText() -> String {
    let alphabet = Array(" \t\n\n\n:::---###\"\"''{}[],.&*!|>%@`?abcxyz019_=")
    let length = int(200)
    var s = ""
    for _ in 0..<length {
      // Mostly the characters YAML cares about; sometimes any printable ASCII character.
      if int(4) == 0 {
        s.append(Character(UnicodeScalar(UInt8(32 + int(95)))))
      } else {
        s.append(alphabet[int(alphabet.count)])
      }
    }
    return s
  }

  mutating func expression() -> String {
    (0..<(1 + int(6))).map { _ in pick(Self.fragments) }.joined(separator: int(3) == 0 ? "" : " ")
  }

  mutating func scalar() -> String {
    switch int(5) {
    case 0: return expression()
    case 1: return "'" + expression().replacingOccurrences(of: "'", with: "''") + "'"
    case 2:
      return "\""
        + expression().replacingOccurrences(of: "\\", with: "\\\\").replacingOccurrences(of: "\"", with: "\\\"")
        + "\""
    default: return pick(Self.scalars)
    }
  }

  /// A block-style document: nested mappings and lists, with scalars and flow collections at the leaves.
  mutating func document() -> String {
    var lines: [String] = []
    if int(4) != 0 { lines.append("pipeline: p\(int(3))") }
    emitMapping(into: &lines, indent: 0, depth: 0, size: 1 + int(6))
    return lines.joined(separator: "\n") + (int(2) == 0 ? "\n" : "")
  }

  mutating func emitMapping(into lines: inout [String], indent: Int, depth: Int, size: Int) {
    let pad = String(repeating: " ", count: indent)
    for _ in 0..<size { emitEntry(into: &lines, key: pad + pick(Self.keys) + ":", indent: indent, depth: depth) }
  }

  mutating func emitEntry(into lines: inout [String], key: String, indent: Int, depth: Int) {
    let choice = depth >= 4 ? 0 : int(6)
    switch choice {
    case 0, 1:
      lines.append(key + " " + scalar())
    case 2:
      lines.append(key + " [" + (0..<int(4)).map { _ in pick(Self.scalars) }.joined(separator: ", ") + "]")
    case 3:
      lines.append(
        key + " { "
          + (0..<int(3)).map { _ in pick(Self.keys) + ": " + pick(Self.scalars) }
          .joined(separator: ", ") + " }")
    case 4:
      lines.append(key)
      let pad = String(repeating: " ", count: indent + 2)
      for _ in 0..<(1 + int(3)) {
        if int(3) == 0 {
          lines.append(pad + "- " + pick(Self.keys) + ": " + scalar())
        } else {
          lines.append(pad + "- " + scalar())
        }
      }
    default:
      lines.append(key)
      emitMapping(into: &lines, indent: indent + 2 + (int(10) == 0 ? 1 : 0), depth: depth + 1, size: 1 + int(4))
    }
  }
}

@Suite("Compiler robustness")
struct RobustnessTests {
  /// Compiles `files` from memory and checks the invariants every compilation must keep.
  static func checkInvariants(_ files: [String: String], sourceDescription: @autoclosure () -> String) {
    let result = compileInMemory(files, environment: ["HOME": "/home/test"])
    if result.hasErrors {
      #expect(result.plan == nil, "a plan despite errors for:\n\(sourceDescription())")
    }
    for d in result.diagnostics {
      guard let text = files[d.location.file] else {
        Issue.record("diagnostic in a file that was never read: \(d)\n\(sourceDescription())")
        continue
      }
      let lineCount = SourceFile(path: d.location.file, text: text).lines.count
      #expect(d.location.line >= 1 && d.location.line <= lineCount + 1, "\(d) outside \(lineCount) lines")
      #expect(d.location.column >= 1, "\(d)")
      #expect(!d.message.isEmpty)
      #expect(d.length >= 1)
    }
    // Rendering never traps, whatever the positions are.
    _ = result.rendered()
    #expect(isSorted(result), "diagnostics out of order")
  }

  static func isSorted(_ result: CompileResult) -> Bool {
    zip(result.diagnostics, result.diagnostics.dropFirst()).allSatisfy { !($1.location < $0.location) }
  }

  @Test("random ASCII text never crashes the compiler")
  func randomText() {
    var gen = DocumentGenerator(rng: SplitMix64(seed: 0x7E55_E4A1))
    for _ in 0..<1500 {
      let text = gen.asciiText()
      Self.checkInvariants(["p.yaml": text], sourceDescription: text)
    }
  }

  @Test("random YAML-shaped documents never crash the compiler")
  func randomDocuments() {
    var gen = DocumentGenerator(rng: SplitMix64(seed: 42))
    for _ in 0..<2500 {
      let root = gen.document()
      // Includes resolve against an in-memory file system holding a second random document.
      let files = ["p.yaml": root, "x.yaml": gen.document()]
      Self.checkInvariants(files, sourceDescription: root)
    }
  }

  @Test("random expressions in every expression position never crash the compiler")
  func randomExpressions() {
    var gen = DocumentGenerator(rng: SplitMix64(seed: 2024))
    for _ in 0..<1000 {
      let (a, b, c, d) = (gen.scalar(), gen.scalar(), gen.scalar(), gen.scalar())
      let text = """
        pipeline: p
        sources:
          crm:
            kind: csv
            path: c.csv
            map:
              user_id: \(a)
              traits.city: \(b)
        identifiers:
          user_id: {}
        computed:
          n:
            aggregate: count
            where: \(c)
        segments:
          s:
            when: \(d)
        destinations:
          h:
            kind: webhook
            on: profile_changes
            url: https://example.com
            where: \(a)
            payload:
              v: \(b)
        """
      Self.checkInvariants(["p.yaml": text], sourceDescription: text)
    }
  }

  @Test("the generator is deterministic")
  func deterministic() {
    var a = DocumentGenerator(rng: SplitMix64(seed: 7))
    var b = DocumentGenerator(rng: SplitMix64(seed: 7))
    for _ in 0..<20 { #expect(a.document() == b.document()) }
    var r = SplitMix64(seed: 0)
    #expect(r.next() == 0xE220_A839_7B1D_CDAF)
  }
}
