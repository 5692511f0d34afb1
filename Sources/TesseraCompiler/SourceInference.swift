import Foundation
import TesseraLanguage
import TesseraModel

/// Guesses a source declaration from sample records of its files: `tessera source infer`.
///
/// From up to `sampleSize` records it infers each field's type (integers, decimals, booleans and ISO 8601
/// timestamps; a value in twenty may disagree, and the comment names it), `required` for fields never
/// empty, identifier mappings (values that normalize as emails or phone numbers; names such as
/// `customer_no`, `user_id`, `anonymousId`), the timestamp and the message id, and traits for the other
/// fields — named as the pipeline's declared traits when one fits. Every guess carries the reason for it.
public struct SourceInference {
  public enum InferenceError: Error, CustomStringConvertible {
    case unreadable(String)
    case noRecords(String)
    case invalidName(String)
    public var description: String {
      switch self {
      case .invalidName(let name):
        return "invalid source name `\(name)`: names start with a letter and use letters, digits and `_` only"
      case .unreadable(let path): return "cannot read `\(path)`"
      case .noRecords(let path): return "`\(path)` holds no records to infer from"
      }
    }
  }

  /// The files, as given (relative to the current folder or absolute).
  public var files: [String]
  /// The source's name; nil: from the first file's name.
  public var name: String?
  /// nil: from the file name (`.ndjson`, `.jsonl`, `.json` are NDJSON), else from the first byte.
  public var kind: SourceKind?
  /// The pipeline the source is for: its identifier kinds, traits and source names are used.
  public var pipeline: PipelineConfig?
  /// Records read, across the files in order.
  public var sampleSize = 1_000
  /// The folder the declaring file is in, so `path` can be written relative to it; nil: the current folder.
  public var declaringFolder: String?
  /// The current folder, against which relative `files` are read.
  public var currentFolder = FileManager.default.currentDirectoryPath

  public init(files: [String], name: String? = nil, kind: SourceKind? = nil, pipeline: PipelineConfig? = nil) {
    self.files = files
    self.name = name
    self.kind = kind
    self.pipeline = pipeline
  }

  /// One guess: a key and value of the declaration, and why.
  public struct Guess: Sendable, Hashable {
    public var key: String
    public var value: String
    public var why: String
    /// Left as a comment: the operator decides (a field that cannot be named in an expression, say).
    public var commentedOut = false
  }

  /// The inferred declaration.
  public struct Declaration: Sendable {
    public var name: String
    public var kind: SourceKind
    public var path: String
    public var records: Int
    /// Whether every record of the files was read.
    public var complete: Bool
    public var settings: [Guess] = []
    public var required: [String] = []
    /// `schema.types`: the field as `key`, the type name as `value`.
    public var types: [Guess] = []
    public var map: [Guess] = []
    /// Notes about the files as a whole (headers that differ, malformed records).
    public var notes: [String] = []
  }

  // MARK: sampling

  /// A field of the sampled records and its non-empty values.
  struct Field {
    var path: String
    var values: [(line: Int, value: Value)] = []
    var isObject = false
    var leaf: String { String(path.split(separator: ".").last ?? Substring(path)) }
  }

  struct Sample {
    var kind: SourceKind
    var fields: [Field] = []
    var records = 0
    var complete = true
    var malformed: [Int] = []
    var notes: [String] = []
  }

  func resolvedKind() -> SourceKind {
    if let kind { return kind }
    guard let first = files.first else { return .csv }
    if FileSample.isNDJSON(first) { return .ndjson }
    if first.lowercased().hasSuffix(".csv") { return .csv }
    let head = FileSample.read(absolute(first), csv: false, limit: 1)?.records.first?.bytes.first
    return head == UInt8(ascii: "{") ? .ndjson : .csv
  }

  func absolute(_ path: String) -> String {
    path.hasPrefix("/") ? Paths.normalize(path) : Paths.normalize(currentFolder + "/" + path)
  }

  func sample(_ kind: SourceKind) throws -> Sample {
    var out = Sample(kind: kind)
    var index: [String: Int] = [:]
    var header: [String]?
    for file in files {
      // Files left unread once the sample is full make it partial.
      guard out.records < sampleSize else {
        out.complete = false
        break
      }
      guard let s = FileSample.read(absolute(file), csv: kind == .csv, limit: sampleSize - out.records) else {
        throw InferenceError.unreadable(file)
      }
      if !s.complete { out.complete = false }
      if kind == .csv {
        if let h = header, h != s.header {
          out.notes.append("`\(file)` has another header than `\(files[0])`; each file's records are read by their own")
        }
        if header == nil {
          header = s.header
          for name in s.header where index[name] == nil {
            index[name] = out.fields.count
            out.fields.append(Field(path: name))
          }
        }
      }
      for record in s.records {
        guard let fields = s.fields(of: record) else {
          out.malformed.append(record.line)
          continue
        }
        out.records += 1
        for (path, value) in fields {
          if index[path] == nil {
            index[path] = out.fields.count
            out.fields.append(Field(path: path))
          }
          guard let i = index[path] else { continue }
          if case .map = value {
            out.fields[i].isObject = true
            continue
          }
          if value.isNull || value == .string("") { continue }
          out.fields[i].values.append((record.line, value))
        }
      }
    }
    guard out.records > 0 else { throw InferenceError.noRecords(files.first ?? "") }
    return out
  }

  // MARK: inference

  public func infer() throws -> Declaration {
    if let name, !YNode.isValidName(name) { throw InferenceError.invalidName(name) }
    let kind = resolvedKind()
    let sample = try sample(kind)
    var decl = Declaration(
      name: sourceName(), kind: kind, path: declaredPath(), records: sample.records, complete: sample.complete)
    decl.notes = sample.notes
    if !sample.malformed.isEmpty {
      let lines = sample.malformed.prefix(5).map(String.init).joined(separator: ", ")
      decl.notes.append(
        "\(sample.malformed.count) record\(sample.malformed.count == 1 ? "" : "s") did not read (line \(lines)"
          + (sample.malformed.count > 5 ? ", …" : "") + "); a run rejects them")
    }
    let scope = Scopes.record(kind: kind, types: [:])
    let fields = sample.fields.filter { !$0.isObject }
    let named = fields.filter { Self.nameable($0.path, scope) }
    for f in fields where !Self.nameable(f.path, scope) {
      decl.map.append(
        Guess(
          key: "traits." + Self.snake(f.leaf), value: f.path,
          why: "`\(f.path)` cannot be named in an expression (only letters, digits and `_`); rename the column",
          commentedOut: true))
    }
    let kinds = identifierKinds()
    var taken: Set<String> = []
    // Segment/RudderStack messages carry their own shape.
    if kind == .ndjson, let t = named.first(where: { $0.path == "type" }),
      !t.values.isEmpty, t.values.allSatisfy({ EventType(rawValue: $0.value.stringValue ?? "") != nil })
    {
      segmentShaped(named, sample, kinds, &decl, &taken)
    } else {
      decl.settings.append(
        Guess(
          key: "emit", value: "identify",
          why: kind == .csv
            ? "each row updates a profile"
            : "no `type` field: each record updates a profile; for events write `emit: track` and an `event` name"))
    }
    let timestamp = timestampField(named, sample.records, taken)
    if let (f, why) = timestamp {
      decl.settings.append(Guess(key: "timestamp", value: f.path, why: why))
      taken.insert(f.path)
    }
    if !decl.settings.contains(where: { $0.key == "id" }), let (f, why) = idField(named, sample.records, taken) {
      decl.settings.insert(Guess(key: "id", value: f.path, why: why), at: 0)
      taken.insert(f.path)
    }
    identifiers(named, kinds, &decl, &taken)
    traits(named, sample, &decl, &taken)
    // Required: the fields the declaration reads by name that no sampled record leaves empty.
    let read = Set((decl.settings + decl.map).filter { !$0.commentedOut }.map(\.value))
    decl.required = named.filter { read.contains($0.path) && $0.values.count == sample.records }.map(\.path)
    return decl
  }

  /// Whether an expression can read this field by name.
  static func nameable(_ path: String, _ scope: Scope) -> Bool {
    let (expr, _) = ExprCompiler.compile(path, in: scope)
    return expr?.rawReads.map(\.path) == [path]
  }

  func sourceName() -> String {
    if let name { return name }
    let base = ((files.first ?? "source") as NSString).lastPathComponent
    var stem = base
    if let dot = base.firstIndex(of: "."), dot != base.startIndex { stem = String(base[..<dot]) }
    var out = Self.snake(stem)
    let existing = Set(pipeline?.sources.map(\.name) ?? [])
    if existing.contains(out) {
      var n = 2
      while existing.contains("\(out)_\(n)") { n += 1 }
      out += "_\(n)"
    }
    return out
  }

  /// The files as the declaration's `path`: relative to the declaring file's folder; several files as a glob
  /// of their common start and end.
  func declaredPath() -> String {
    let absolutes = files.map(absolute)
    var path = absolutes[0]
    if absolutes.count > 1 {
      let dirs = Set(absolutes.map { Paths.directory(of: $0) })
      if dirs.count == 1, let dir = dirs.first {
        let names = absolutes.map { ($0 as NSString).lastPathComponent }
        let prefix = names.dropFirst().reduce(names[0]) { String($0.commonPrefix(with: $1)) }
        let reversed = names.map { String($0.reversed()) }
        let suffix = String(
          reversed.dropFirst().reduce(reversed[0]) { String($0.commonPrefix(with: $1)) }.reversed())
        path = dir + "/" + prefix + "*" + String(suffix.dropFirst(max(0, prefix.count + suffix.count - names[0].count)))
      }
    }
    return Paths.relative(path, from: declaringFolder.map(absolute) ?? currentFolder)
  }

  // MARK: identifiers

  /// The identifier kinds to map: the pipeline's, or the usual four.
  func identifierKinds() -> [IdentifierDecl] {
    if let p = pipeline { return p.identifiers }
    func decl(_ name: String, _ normalizers: [Normalizer]) -> IdentifierDecl {
      IdentifierDecl(
        name: name, location: SourceLocation(file: "", line: 0, column: 0), normalizers: normalizers,
        defaultRegion: "US", emailRules: .none, maxPerProfile: nil, priority: 100, blocked: [], expiresAfter: nil)
    }
    return [
      decl("user_id", [.trim]), decl("email", [.email]), decl("phone", [.phone_e164]),
      decl("anonymous_id", [.trim]),
    ]
  }

  static let personIDWords: Set<String> = ["customer", "user", "member", "loyalty", "account", "client", "contact"]
  static let idSuffixes: Set<String> = ["id", "no", "number", "num", "nr"]
  static let anonymousWords: Set<String> = ["anonymous", "anon", "device", "cookie", "visitor"]

  /// Why a field looks like an identifier of `kind` (nil when it does not), and how many values normalize.
  func identifierEvidence(_ f: Field, _ kind: IdentifierDecl) -> (why: String, valid: Int)? {
    let texts = f.values.map { (line: $0.line, text: Self.text($0.value)) }
    guard !texts.isEmpty else { return nil }
    let results = texts.map { (line: $0.line, text: $0.text, ok: kind.normalize($0.text) != nil) }
    let valid = results.filter(\.ok).count
    let bad = results.filter { !$0.ok }
    // Emails and phone numbers: most values normalize (some may be malformed, and are dropped at run time);
    // ids named so: nearly all.
    let most = valid > 0 && valid * 2 > texts.count
    let mostly = valid * 5 >= texts.count * 4
    let exceptions =
      bad.isEmpty
      ? ""
      : " (" + bad.prefix(2).map { "line \($0.line): `\($0.text)` does not" }.joined(separator: ", ")
        + (bad.count > 2 ? ", …" : "") + ")"
    let share = "\(valid) of \(texts.count) values"
    let tokens = Self.tokens(f.leaf)
    let sameName = Self.snake(f.leaf) == kind.name
    if kind.normalizers.contains(.email) {
      guard most, sameName || texts.contains(where: { $0.text.contains("@") }) else { return nil }
      return ("\(share) normalize as emails" + exceptions, valid)
    }
    if kind.normalizers.contains(.phone_e164) {
      let namedPhone = sameName || !tokens.isDisjoint(with: ["phone", "mobile", "tel", "telephone", "cell"])
      let formatted = texts.allSatisfy { $0.text.contains { !$0.isNumber } }
      guard most, namedPhone || formatted else { return nil }
      return ("\(share) normalize as phone numbers (region \(kind.defaultRegion))" + exceptions, valid)
    }
    guard mostly, !texts.contains(where: { Normalize.email($0.text) != nil }) else { return nil }
    if sameName { return ("named like the identifier kind `\(kind.name)`", valid) }
    let kindTokens = Self.tokens(kind.name)
    let personLike = !tokens.isDisjoint(with: Self.personIDWords) && !tokens.isDisjoint(with: Self.idSuffixes)
    let anonymousLike = !tokens.isDisjoint(with: Self.anonymousWords) && !tokens.isDisjoint(with: Self.idSuffixes)
    let personKind = kind.name == "user_id" || !kindTokens.isDisjoint(with: Self.personIDWords)
    if personKind, personLike, tokens.isDisjoint(with: Self.anonymousWords) {
      return ("`\(f.leaf)` names a customer's own id", valid)
    }
    if !kindTokens.isDisjoint(with: Self.anonymousWords), anonymousLike {
      return ("`\(f.leaf)` names an anonymous or device id", valid)
    }
    return nil
  }

  func identifiers(_ fields: [Field], _ kinds: [IdentifierDecl], _ decl: inout Declaration, _ taken: inout Set<String>)
  {
    for kind in kinds where !decl.map.contains(where: { $0.key == kind.name }) {
      let candidates = fields.filter { !taken.contains($0.path) }.compactMap { f in
        identifierEvidence(f, kind).map { (field: f, why: $0.why, valid: $0.valid) }
      }
      guard
        let best = candidates.max(by: { $0.valid < $1.valid || ($0.valid == $1.valid && $0.field.path > $1.field.path) }
        )
      else { continue }
      var why = best.why
      let others = candidates.filter { $0.field.path != best.field.path }.map { "`\($0.field.path)`" }
      if !others.isEmpty { why += "; also possible: " + others.joined(separator: ", ") }
      decl.map.append(Guess(key: kind.name, value: best.field.path, why: why))
      taken.insert(best.field.path)
    }
  }

  // MARK: timestamp and id

  /// The field every record has and whose values read as ISO 8601 times, preferring names of a record's
  /// time (`updated_at`, `timestamp`) over other dates (`birth_date`).
  func timestampField(_ fields: [Field], _ records: Int, _ taken: Set<String>) -> (Field, String)? {
    func score(_ f: Field) -> Int {
      let t = Self.tokens(f.leaf)
      if !t.isDisjoint(with: ["birth", "dob", "born", "expiry", "expires"]) { return 0 }
      if !t.isDisjoint(with: ["timestamp", "updated", "modified", "created", "completed", "occurred", "sent"]) {
        return 3
      }
      return t.contains("at") || t.contains("time") ? 2 : 1
    }
    let candidates = fields.filter { f in
      !taken.contains(f.path) && f.values.count * 5 >= records * 4 && Self.infer(f.values).type == "timestamp"
    }
    guard let best = candidates.filter({ score($0) > 0 }).max(by: { score($0) < score($1) }) else { return nil }
    let inferred = Self.infer(best.values)
    let others = candidates.filter { $0.path != best.path }.map { "`\($0.path)`" }
    let present =
      best.values.count == records ? "every value" : "\(best.values.count) of \(records) records have one; each"
    return (
      best,
      "\(present) reads as an ISO 8601 time" + inferred.exceptions
        + (others.isEmpty ? "" : "; other times: " + others.joined(separator: ", "))
    )
  }

  /// A field named like a record's id whose values are all present and distinct: the message id, so a file
  /// read again stores each record once.
  func idField(_ fields: [Field], _ records: Int, _ taken: Set<String>) -> (Field, String)? {
    guard records > 1 else { return nil }
    let fit = fields.filter { f in
      guard !taken.contains(f.path), f.values.count == records else { return false }
      let names = ["id", "messageid", "message_id", "event_id", "record_id"]
      guard names.contains(f.leaf.lowercased()) || names.contains(Self.snake(f.leaf)) else { return false }
      // One repeat in twenty (at least one) is allowed: the id is what makes a repeated record count once.
      return Set(f.values.map { Self.text($0.value) }).count >= records - max(1, records / 20)
    }
    // The outermost one (`order.id` before `order.items.id`), then by name.
    guard
      let f = fit.min(by: {
        ($0.path.split(separator: ".").count, $0.path) < ($1.path.split(separator: ".").count, $1.path)
      })
    else { return nil }
    var first: [String: Int] = [:]
    var repeats: [String] = []
    for (line, value) in f.values {
      let t = Self.text(value)
      if let l = first[t] { repeats.append("line \(line) repeats `\(t)` of line \(l)") } else { first[t] = line }
    }
    return (
      f,
      (repeats.isEmpty
        ? "present and distinct in all \(records) sampled records"
        : "present in every record, distinct but for " + repeats.prefix(2).joined(separator: ", ")
          + (repeats.count > 2 ? ", …" : ""))
        + ": a record read again is stored once"
    )
  }

  // MARK: traits

  static let stopWords: Set<String> = ["of", "the", "a"]

  /// The pipeline's trait a field fits: the same name, or the same words in another order (`birth_date` and
  /// `date_of_birth`).
  func declaredTrait(for leaf: String) -> TraitDecl? {
    guard let traits = pipeline?.traits else { return nil }
    let name = Self.snake(leaf)
    if let t = traits.first(where: { $0.name == name }) { return t }
    let words = Self.tokens(leaf).subtracting(Self.stopWords)
    return traits.first { Self.tokens($0.name).subtracting(Self.stopWords) == words }
  }

  func traits(_ fields: [Field], _ sample: Sample, _ decl: inout Declaration, _ taken: inout Set<String>) {
    let rest = fields.filter { !taken.contains($0.path) }
    // Two fields with one leaf name (`customer.id`, `store.id`) are told apart by their parents.
    var leafCount: [String: Int] = [:]
    for f in rest { leafCount[Self.snake(f.leaf), default: 0] += 1 }
    var used = Set(decl.map.map(\.key))
    for f in rest {
      let inferred = Self.infer(f.values)
      if f.values.isEmpty {
        decl.map.append(
          Guess(
            key: "traits." + Self.snake(f.leaf), value: f.path, why: "empty in every sampled record",
            commentedOut: true))
        continue
      }
      if inferred.type == "list of objects" {
        decl.map.append(
          Guess(
            key: "properties." + Self.snake(f.leaf), value: "size(\(f.path))",
            why: "a list of objects; its length, or map the whole list", commentedOut: true))
        continue
      }
      let declared = declaredTrait(for: f.leaf) ?? declaredTrait(for: Self.snake(f.path))
      // A nested field keeps its parents in its name (`order_total`), unless it is a declared trait.
      var name = declared?.name ?? Self.snake(f.path.contains(".") ? f.path : f.leaf)
      if declared == nil, leafCount[Self.snake(f.leaf), default: 0] > 1 { name = Self.snake(f.path) }
      guard used.insert("traits." + name).inserted else {
        decl.map.append(
          Guess(
            key: "traits." + name, value: f.path, why: "another field already maps to `\(name)`", commentedOut: true))
        continue
      }
      var why: String
      if let declared {
        why = "the pipeline declares trait `\(declared.name)` (\(declared.type))"
        if let t = Self.schemaType(declared.type), sample.kind == .csv || t != "string" {
          decl.types.append(
            Guess(key: f.path, value: t, why: "as the trait `\(declared.name)` is declared" + inferred.exceptions))
        }
      } else {
        why = pipeline == nil ? inferred.describe : "a new trait (\(inferred.describe))"
        if sample.kind == .csv, let t = inferred.schemaType {
          decl.types.append(Guess(key: f.path, value: t, why: inferred.describe + inferred.exceptions))
        }
      }
      if sample.kind == .csv, declared == nil, inferred.schemaType == nil, !inferred.exceptions.isEmpty {
        why += inferred.exceptions
      }
      decl.map.append(Guess(key: "traits." + name, value: f.path, why: why))
      taken.insert(f.path)
    }
  }

  /// The `schema.types` name of a declared trait type, when the reader should convert to it.
  static func schemaType(_ t: ExprType) -> String? {
    switch t {
    case .int: return "int"
    case .double: return "double"
    case .bool: return "bool"
    case .timestamp: return "timestamp"
    default: return nil
    }
  }

  // MARK: Segment-shaped records

  /// Records in the Segment/RudderStack message format: the type per record, the event name, the usual
  /// identifiers and the whole `traits`, `properties` and `context` maps.
  func segmentShaped(
    _ fields: [Field], _ sample: Sample, _ kinds: [IdentifierDecl], _ decl: inout Declaration,
    _ taken: inout Set<String>
  ) {
    let paths = Set(sample.fields.map(\.path))
    decl.settings.append(
      Guess(key: "emit", value: "track", why: "Segment/RudderStack messages: `type` says what each one is"))
    if paths.contains("messageId") {
      decl.settings.append(Guess(key: "id", value: "messageId", why: "the message id of the tracking spec"))
      taken.insert("messageId")
    }
    decl.map.append(Guess(key: "type", value: "type", why: "every value is an event type"))
    let names = ["event", "name"].filter(paths.contains)
    decl.map.append(
      Guess(
        key: "event", value: "coalesce(" + (names + ["\"\""]).joined(separator: ", ") + ")",
        why: "the event name of `track` messages" + (names.contains("name") ? ", the page or screen name" : "")))
    let standard = [
      ("user_id", ["userId"]), ("anonymous_id", ["anonymousId"]),
      ("email", ["traits.email", "context.traits.email"]), ("phone", ["traits.phone", "context.traits.phone"]),
    ]
    for (kind, fieldsOfKind) in standard where kinds.contains(where: { $0.name == kind }) {
      let present = fieldsOfKind.filter { p in sample.fields.contains { $0.path == p && !$0.values.isEmpty } }
      guard !present.isEmpty else { continue }
      let value = present.count == 1 ? present[0] : "coalesce(" + present.joined(separator: ", ") + ")"
      decl.map.append(Guess(key: kind, value: value, why: "where the tracking spec puts it"))
      taken.formUnion(present)
    }
    for whole in ["traits", "properties", "context"] where paths.contains(whole) {
      let value =
        whole == "traits" && paths.contains("context.traits") ? "coalesce(traits, context.traits)" : whole
      decl.map.append(Guess(key: whole, value: value, why: "the message's whole `\(whole)` map"))
    }
    for f in fields {
      let root = String(f.path.split(separator: ".").first ?? "")
      if ["traits", "properties", "context", "type", "event", "name", "integrations", "sentAt", "receivedAt"]
        .contains(root)
      {
        taken.insert(f.path)
      }
    }
  }

  // MARK: values

  static func text(_ v: Value) -> String {
    if case .string(let s) = v { return s }
    return v.plainText
  }

  /// Lowercase words of a name: `signedUpAt` and `signed_up_at` give signed, up, at.
  static func tokens(_ name: String) -> Set<String> {
    Set(snake(name).split(separator: "_").map(String.init))
  }

  /// A valid Tessera name from a field name: `First Name` → `first_name`, `userId` → `user_id`.
  static func snake(_ name: String) -> String {
    var out = ""
    var previous: Character?
    for c in name {
      if c.isUppercase, let p = previous, p.isLowercase || p.isNumber { out.append("_") }
      if c.isASCII && (c.isLetter || c.isNumber) {
        out.append(Character(c.lowercased()))
      } else if !out.hasSuffix("_") {
        out.append("_")
      }
      previous = c
    }
    out = String(out.drop { $0 == "_" })
    while out.hasSuffix("_") { out.removeLast() }
    if out.isEmpty { return "field" }
    if let f = out.first, !f.isLetter { out = "f_" + out }
    return out
  }

  /// What the non-empty values of a field are: the type a value in twenty may disagree with, and those.
  struct Inferred {
    var type: String
    var outliers: [(line: Int, text: String)] = []
    var total = 0

    /// The `schema.types` name for CSV columns, when not a string.
    var schemaType: String? { ["int", "double", "bool", "timestamp"].contains(type) ? type : nil }

    var describe: String {
      switch type {
      case "int": return "integers"
      case "double": return "decimals"
      case "bool": return "booleans"
      case "timestamp": return "ISO 8601 times"
      case "list": return "lists"
      default: return "text"
      }
    }

    var exceptions: String {
      guard !outliers.isEmpty else { return "" }
      return "; "
        + outliers.prefix(2).map { "line \($0.line): `\($0.text)` does not read as one" }.joined(separator: ", ")
        + (outliers.count > 2 ? ", …" : "") + " (such records are rejected)"
    }
  }

  static func infer(_ values: [(line: Int, value: Value)]) -> Inferred {
    guard !values.isEmpty else { return Inferred(type: "string") }
    if values.allSatisfy({ if case .list = $0.value { return true } else { return false } }) {
      let objects = values.contains {
        if case .list(let items) = $0.value { return items.contains { if case .map = $0 { true } else { false } } }
        return false
      }
      return Inferred(type: objects ? "list of objects" : "list", total: values.count)
    }
    let texts = values.map { (line: $0.line, text: text($0.value), value: $0.value) }
    let words: Set<String> = ["true", "false", "yes", "no", "y", "n"]
    let candidates: [(String, (String, Value) -> Bool)] = [
      (
        "bool",
        { s, v in
          if case .bool = v { return true }
          return words.contains(s.lowercased()) || s == "1" || s == "0"
        }
      ),
      (
        "int",
        { s, v in
          if case .int = v { return true }
          return isInteger(s)
        }
      ),
      (
        "double",
        { s, v in
          if case .double = v { return true }
          if case .int = v { return true }
          return isInteger(s) || isDecimal(s)
        }
      ),
      ("timestamp", { s, _ in s.contains("-") && s.count >= 10 && Timestamp(iso8601: s) != nil }),
    ]
    let allowed = texts.count / 20
    for (type, fits) in candidates {
      let misfits = texts.filter { !fits($0.text, $0.value) }
      guard misfits.count <= allowed, misfits.count < texts.count else { continue }
      // Booleans need a word (a column of 0 and 1 is numbers); integers with a leading zero are codes.
      if type == "bool",
        !texts.contains(where: { if case .bool = $0.value { true } else { words.contains($0.text.lowercased()) } })
      {
        continue
      }
      if type == "int" || type == "double",
        texts.contains(where: { $0.text.count > 1 && $0.text.hasPrefix("0") && !$0.text.hasPrefix("0.") })
      {
        continue
      }
      return Inferred(type: type, outliers: misfits.map { ($0.line, $0.text) }, total: texts.count)
    }
    return Inferred(type: "string", total: texts.count)
  }

  static func isInteger(_ s: String) -> Bool {
    let digits = s.hasPrefix("-") || s.hasPrefix("+") ? s.dropFirst() : Substring(s)
    return !digits.isEmpty && digits.allSatisfy { $0.isASCII && $0.isNumber }
  }

  static func isDecimal(_ s: String) -> Bool {
    guard s.contains(where: { $0.isASCII && $0.isNumber }), s.allSatisfy({ "0123456789.-+eE".contains($0) }) else {
      return false
    }
    return Double(s) != nil
  }
}
