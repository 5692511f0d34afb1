import Foundation
import TesseraModel

/// Record files made from the example data (`examples/crm_contacts.csv`, `pos_orders.ndjson`,
/// `web_events.ndjson`): rows kept or mutated in bytes or in structure, with fresh ids so most are new events,
/// and whole-file oddities — a byte order mark, CRLF line ends, blank lines, no final line end, an unterminated
/// quote, a very long line, NUL bytes.
public struct RecordInputs: Sendable {
  public let csvHeader: [UInt8]
  public let csvRows: [[UInt8]]
  /// Orders (`pos_orders.ndjson`) and tracking messages (`web_events.ndjson`).
  public let orders: [JSONDoc]
  public let messages: [JSONDoc]

  /// Reads the example files under `examples` (the package's `examples/` folder).
  public init(examples: String) throws {
    func lines(_ name: String) throws -> [[UInt8]] {
      let data = try Data(contentsOf: URL(fileURLWithPath: examples + "/" + name))
      return Array(data).split(separator: 0x0A).map(Array.init)
    }
    let csv = try lines("crm_contacts.csv")
    csvHeader = csv[0]
    csvRows = Array(csv.dropFirst())
    // The examples hold a deliberately malformed line; the mutations start from the ones that parse.
    orders = try lines("pos_orders.ndjson").compactMap { try? JSONDoc(JSON.parse(String(decoding: $0, as: UTF8.self))) }
    messages = try lines("web_events.ndjson").compactMap {
      try? JSONDoc(JSON.parse(String(decoding: $0, as: UTF8.self)))
    }
  }

  /// A CSV file: the CRM header, then `records` rows (each a CRM row with a fresh customer number, half of them
  /// mutated), with the file-level oddities above.
  public func csvFile(_ m: inout Mutator, records: Int) -> [UInt8] {
    var rows: [[UInt8]] = []
    for _ in 0..<records {
      var row = m.pick(csvRows)
      // A fresh customer number (the first field), so the row's message id is new.
      if let comma = row.firstIndex(of: UInt8(ascii: ",")) {
        row.replaceSubrange(0..<comma, with: Array(String(100_000 + m.int(900_000)).utf8))
      }
      if m.chance(50) { row = mutateCSV(row, &m) }
      rows.append(row)
    }
    return file(header: m.chance(95) ? csvHeader : m.mutateBytes(csvHeader), rows: rows, csv: true, &m)
  }

  /// CSV-specific damage: quotes opened and not closed, delimiters and line ends inside and outside quotes,
  /// fields added and removed, then byte-level mutation.
  func mutateCSV(_ row: [UInt8], _ m: inout Mutator) -> [UInt8] {
    var r = row
    switch m.int(6) {
    case 0: r.insert(0x22, at: m.int(r.count + 1))
    case 1: r.insert(contentsOf: Array("\"a,\nb\"\"c\"".utf8), at: m.int(r.count + 1))
    case 2: r += Array(",extra,fields".utf8)
    case 3: r = Array(r.prefix(m.int(r.count + 1)))
    case 4: r = Array(String(repeating: "x", count: m.int(20) == 0 ? 100_000 : 1000).utf8) + r
    default: break
    }
    return m.chance(70) ? m.mutateBytes(r) : r
  }

  /// An NDJSON file of `records` lines: orders and tracking messages with fresh ids, half of them mutated in
  /// structure or bytes.
  public func ndjsonFile(_ m: inout Mutator, records: Int) -> [UInt8] {
    var rows: [[UInt8]] = []
    for _ in 0..<records {
      let isOrder = m.chance(50)
      var doc = isOrder ? m.pick(orders) : m.pick(messages)
      doc = Self.freshen(doc, isOrder ? ["order", "id"] : ["messageId"], "fz-\(m.rng.next() % 1_000_000_000)")
      if m.chance(30) { doc = m.mutate(doc) }
      var bytes = doc.bytes
      if m.chance(25) { bytes = m.mutateBytes(bytes) }
      rows.append(bytes)
    }
    return file(header: nil, rows: rows, csv: false, &m)
  }

  /// `doc` with the string at `path` replaced by `id`.
  static func freshen(_ doc: JSONDoc, _ path: [String], _ id: String) -> JSONDoc {
    guard let first = path.first, case .object(var members) = doc,
      let i = members.lastIndex(where: { $0.key == Array(first.utf8) })
    else { return doc }
    members[i].value =
      path.count == 1 ? .string(JSONDoc.escaped(id)) : freshen(members[i].value, Array(path.dropFirst()), id)
    return .object(members)
  }

  func file(header: [UInt8]?, rows: [[UInt8]], csv: Bool, _ m: inout Mutator) -> [UInt8] {
    let crlf = m.chance(10)
    let end: [UInt8] = crlf ? [0x0D, 0x0A] : [0x0A]
    var out: [UInt8] = m.chance(10) ? [0xEF, 0xBB, 0xBF] : []
    if let header { out += header + end }
    for row in rows {
      if m.chance(3) { out += m.pick([[], [0x20, 0x09], [0x0D]]) + end }
      out += row + end
    }
    if m.chance(10), !out.isEmpty { out.removeLast(end.count) }
    if m.chance(3) { out += csv ? Array("\"unterminated,quote".utf8) : Array("{\"unterminated\":".utf8) }
    if m.chance(2) { out += [0x00, 0x00] + end }
    return out
  }
}
