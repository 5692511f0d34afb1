import TesseraRuntime

extension Summary {
  /// Lines of a run's summary listing what mapping lost: identifier values dropped by normalizers (with file
  /// and line), mapped fields null on every record, records kept without an identifier. Empty when nothing
  /// was lost.
  static func mappingNotes(_ notes: MappingNotes, limit: Int = 20) -> String {
    var out: [String] = []
    func list(_ title: String, _ lines: [String], total: Int) {
      guard total > 0 else { return }
      out.append("  \(title) (\(total)):")
      out += lines.prefix(limit).map { "    " + $0 }
      if total > min(limit, lines.count) {
        out.append("    … \(total - min(limit, lines.count)) more (tessera dry-run lists them per sample)")
      }
    }
    list(
      "identifier values dropped", notes.dropped.map { "\($0.file):\($0.line): \($0.what)" }, total: notes.droppedCount)
    let null = notes.alwaysNull.map { "\($0.source): `\($0.target)` was null on all \($0.records) records" }
    list("mapped fields null on every record", null, total: null.count)
    list(
      "records kept without an identifier, for probabilistic matching",
      notes.unidentified.map { "\($0.file):\($0.line) (rule \($0.rules.map { "`\($0)`" }.joined(separator: ", ")))" },
      total: notes.unidentifiedCount)
    return out.joined(separator: "\n")
  }
}
