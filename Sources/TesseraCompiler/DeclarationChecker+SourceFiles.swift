import Foundation
import TesseraLanguage
import TesseraModel

/// A name a file source reads from its records, and where the configuration writes it.
struct FieldRead {
  var name: String
  var location: SourceLocation
  var length: Int
}

extension DeclarationChecker {
  /// Records of an NDJSON source sampled to learn its fields.
  static let ndjsonSampleSize = 1_000
  /// Files of one glob whose CSV headers are read.
  static let csvFileLimit = 64

  /// Checks the names a `csv` or `ndjson` source reads (in `map`, `id`, `timestamp` and `schema`) against
  /// the files its `path` names now. A CSV column missing from a file's header is an error; an NDJSON field
  /// found in none of the first `ndjsonSampleSize` records is a warning (a later record may have it). A path
  /// that matches no file yet is a note: the check waits for the file, it never fails the configuration.
  func checkFileFields(_ decl: SourceDecl, _ m: MapReader) {
    guard decl.kind == .csv || decl.kind == .ndjson, let written = decl.path, let pathNode = m.value("path") else {
      return
    }
    let reads = fieldReads(decl, m)
    let resolved = Paths.resolve(written, from: pathNode.location.file)
    let files = Paths.expandGlob(resolved).filter { FileManager.default.isReadableFile(atPath: $0) }
    let names = decl.kind == .csv ? "columns" : "fields"
    guard !files.isEmpty else {
      sink.note(
        Paths.isGlob(resolved)
          ? "no file matches `\(resolved)` yet; the \(names) \(source(decl)) reads are checked once one does"
          : "`\(resolved)` does not exist yet; the \(names) \(source(decl)) reads are checked once it does",
        at: pathNode)
      return
    }
    if reads.isEmpty { return }
    if decl.kind == .csv {
      checkColumns(reads, files: files, decl, pathNode, pattern: resolved)
    } else {
      checkSampledFields(reads, files: files, decl, pathNode, pattern: resolved)
    }
  }

  func source(_ decl: SourceDecl) -> String { "source `\(decl.name)`" }

  /// A column must be in the header of the file (error); with a glob, in some file's header (error when in
  /// none, a warning naming the files without it otherwise: each file's own header applies to its records).
  /// Up to `csvFileLimit` files are read.
  func checkColumns(_ reads: [FieldRead], files: [String], _ decl: SourceDecl, _ pathNode: YNode, pattern: String) {
    let delimiter = decl.delimiter.asciiValue ?? UInt8(ascii: ",")
    var headers: [(base: String, columns: [String])] = []
    for file in files.prefix(Self.csvFileLimit) {
      guard let sample = FileSample.read(file, csv: true, delimiter: delimiter, limit: 0) else { continue }
      guard !sample.header.isEmpty, sample.header != [""] else {
        sink.note("`\(file)` has no header line; the columns \(source(decl)) reads are not checked", at: pathNode)
        continue
      }
      headers.append(((file as NSString).lastPathComponent, sample.header))
    }
    guard let first = headers.first else { return }
    let all = headers.flatMap(\.columns)
    for read in reads {
      let without = headers.filter { !$0.columns.contains(read.name) }
      if without.isEmpty { continue }
      if without.count == headers.count {
        let listed =
          first.columns.count <= 20
          ? first.columns.joined(separator: ", ")
          : first.columns.prefix(20).joined(separator: ", ") + ", … (\(first.columns.count) columns)"
        let message =
          headers.count == 1
          ? "column `\(read.name)` is not in \(first.base) (\(listed))"
          : "column `\(read.name)` is in none of the \(headers.count) files matching `\(pattern)` (\(first.base): \(listed))"
        sink.error(message + Suggest.didYouMean(read.name, in: all), at: read.location, length: read.length)
      } else {
        let names = without.prefix(5).map(\.base).joined(separator: ", ") + (without.count > 5 ? ", …" : "")
        sink.warning(
          "column `\(read.name)` is in \(headers.count - without.count) of the \(headers.count) files matching "
            + "`\(pattern)`; the records of \(names) have none",
          at: read.location, length: read.length)
      }
    }
  }

  /// An NDJSON field must occur in at least one sampled record (a null value counts as occurring).
  func checkSampledFields(
    _ reads: [FieldRead], files: [String], _ decl: SourceDecl, _ pathNode: YNode, pattern: String
  ) {
    var seen: Set<String> = []
    var records = 0
    for file in files where records < Self.ndjsonSampleSize {
      guard let sample = FileSample.read(file, csv: false, limit: Self.ndjsonSampleSize - records) else { continue }
      for record in sample.records {
        guard let fields = sample.fields(of: record) else { continue }
        records += 1
        for f in fields { seen.insert(f.path) }
      }
    }
    guard records > 0 else {
      sink.note(
        "`\(pattern)` holds no JSON object records yet; the fields \(source(decl)) reads are not checked", at: pathNode)
      return
    }
    let from =
      files.count == 1
      ? ((files[0] as NSString).lastPathComponent)
      : "\(files.count) files matching `\(pattern)`"
    let known = seen.sorted()
    for read in reads where !seen.contains(read.name) {
      sink.warning(
        "field `\(read.name)` is in none of the \(records) record\(records == 1 ? "" : "s") sampled from \(from)"
          + Suggest.didYouMean(read.name, in: known),
        at: read.location, length: read.length)
    }
  }

  /// The names a source reads, where they are written: raw fields in `id`, `timestamp` and the `map`
  /// expressions (at their place inside the expression), and the field paths of `schema`.
  func fieldReads(_ decl: SourceDecl, _ m: MapReader) -> [FieldRead] {
    var out: [FieldRead] = []
    func add(_ expr: CompiledExpr?, _ node: YNode?) {
      guard let expr, let node else { return }
      for r in expr.rawReads {
        out.append(FieldRead(name: r.path, location: node.location(ofOffset: r.offset), length: r.length))
      }
    }
    add(decl.messageId, m.value("id"))
    add(decl.timestamp, m.value("timestamp"))
    for (key, value) in m.value("map")?.mapping ?? [] {
      add(decl.mappings.first { $0.location == key.location }?.expr, value)
    }
    guard let schema = m.value("schema")?.mapping else { return out }
    for (key, value) in schema {
      switch key.scalar {
      case "required":
        for item in value.sequence ?? [value] {
          guard let name = item.scalar, !item.isNull else { continue }
          out.append(FieldRead(name: name, location: item.location, length: Sink.span(item)))
        }
      case "types":
        for (field, _) in value.mapping ?? [] {
          guard let name = field.scalar else { continue }
          out.append(FieldRead(name: name, location: field.location, length: Sink.span(field)))
        }
      default: continue
      }
    }
    return out
  }
}
