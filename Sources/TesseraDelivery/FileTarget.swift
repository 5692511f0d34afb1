import Foundation
import TesseraModel
import TesseraStore

/// Writes payloads as NDJSON or CSV lines into rotated files.
///
/// `path: out/profiles.ndjson` gives files `out/profiles-20261129T070000Z-1.ndjson` (the time the file was
/// started and the first batch in it). A file is written as a hidden `.partial` file, flushed to disk after
/// every batch, and renamed into place when it is rotated (`max_bytes` reached, `every` elapsed) or the
/// destination closes: a reader never sees half a file. A `.partial` file a crash left behind is cut back to
/// its last whole line and renamed into place when the destination opens again.
public actor FileTarget: DeliveryTarget {
  public let directory: String
  public let stem: String
  public let ext: String
  public let format: String
  /// CSV columns (the payload's keys in declared order).
  public let columns: [String]
  public let rotateBytes: Int?
  public let rotateEvery: TimeSpan?
  let clock: @Sendable () -> Timestamp

  struct Open {
    var handle: FileHandle
    var partial: String
    var final: String
    var bytes: Int
    var opened: Timestamp
  }
  var current: Open?
  /// Files renamed into place by this target, oldest first.
  public private(set) var finished: [String] = []

  public init(
    path: String, format: String, columns: [String], rotateBytes: Int?, rotateEvery: TimeSpan?,
    clock: @escaping @Sendable () -> Timestamp
  ) throws {
    let url = URL(fileURLWithPath: path)
    directory = url.deletingLastPathComponent().path
    ext = url.pathExtension.isEmpty ? format : url.pathExtension
    stem = url.pathExtension.isEmpty ? url.lastPathComponent : url.deletingPathExtension().lastPathComponent
    self.format = format
    self.columns = columns
    self.rotateBytes = rotateBytes
    self.rotateEvery = rotateEvery
    self.clock = clock
    try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
    finished = try Self.recover(directory: directory, stem: stem, ext: ext)
  }

  /// Renames the `.partial` files of an earlier process into place, cut back to their last whole line.
  static func recover(directory: String, stem: String, ext: String) throws -> [String] {
    var done: [String] = []
    let names = (try? FileManager.default.contentsOfDirectory(atPath: directory)) ?? []
    for name in names.sorted() where name.hasPrefix(".\(stem)-") && name.hasSuffix(".\(ext).partial") {
      let partial = directory + "/" + name
      let final = directory + "/" + String(name.dropFirst().dropLast(".partial".count))
      let data = try Data(contentsOf: URL(fileURLWithPath: partial))
      let whole = data.lastIndex(of: UInt8(ascii: "\n")).map { data.prefix(through: $0) } ?? Data()
      if whole.isEmpty {
        try FileManager.default.removeItem(atPath: partial)
        continue
      }
      if whole.count != data.count { try Data(whole).write(to: URL(fileURLWithPath: partial)) }
      try FileManager.default.moveItem(atPath: partial, toPath: final)
      done.append(final)
    }
    return done
  }

  public func send(_ batch: DeliveryBatchRecord, _ rows: [OutboxRecord]) async -> SendOutcome {
    do {
      let now = clock()
      if let c = current, let every = rotateEvery, c.opened + every <= now { try finish() }
      if current == nil { try open(batch, now) }
      guard var c = current else { return .retry(status: nil, error: "no open file", after: nil) }
      var text = ""
      for r in rows { text += line(r.payload) }
      let data = Data(text.utf8)
      try c.handle.seekToEnd()
      try c.handle.write(contentsOf: data)
      try c.handle.synchronize()
      c.bytes += data.count
      current = c
      if let max = rotateBytes, c.bytes >= max { try finish() }
      return .delivered
    } catch {
      return .retry(status: nil, error: "\(error)", after: nil)
    }
  }

  func open(_ batch: DeliveryBatchRecord, _ now: Timestamp) throws {
    let f = DateFormatter()
    f.locale = Locale(identifier: "en_US_POSIX")
    f.timeZone = TimeZone(identifier: "UTC")
    f.dateFormat = "yyyyMMdd'T'HHmmss'Z'"
    let name = "\(stem)-\(f.string(from: now.date))-\(batch.id).\(ext)"
    let partial = directory + "/." + name + ".partial"
    var header = Data()
    if format == "csv" { header = Data((columns.map(Self.csvField).joined(separator: ",") + "\n").utf8) }
    guard FileManager.default.createFile(atPath: partial, contents: header) else {
      throw CocoaError(.fileWriteUnknown, userInfo: [NSFilePathErrorKey: partial])
    }
    let handle = try FileHandle(forWritingTo: URL(fileURLWithPath: partial))
    current = Open(handle: handle, partial: partial, final: directory + "/" + name, bytes: header.count, opened: now)
  }

  /// Flushes, closes and renames the open file into place.
  func finish() throws {
    guard let c = current else { return }
    current = nil
    try c.handle.synchronize()
    try c.handle.close()
    try FileManager.default.moveItem(atPath: c.partial, toPath: c.final)
    finished.append(c.final)
  }

  public func close() async throws { try finish() }

  func line(_ payload: Value) -> String {
    guard format == "csv" else { return JSON.encode(payload) + "\n" }
    guard case .map(let m) = payload else { return "\n" }
    return columns.map { Self.csvField(Self.text(m[$0] ?? .null)) }.joined(separator: ",") + "\n"
  }

  /// A value as one CSV cell's text: plain for scalars, JSON for lists and maps, empty for null.
  static func text(_ v: Value) -> String {
    switch v {
    case .null: return ""
    case .list, .map: return JSON.encode(v)
    default: return v.plainText
    }
  }

  static func csvField(_ s: String) -> String { CSV.quote(s) }
}
