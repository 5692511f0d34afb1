import CompressNIO
import Foundation
import NIOCore
import TesseraModel

/// One request to the tracking API, as generated.
public struct TrackingRequest: Sendable {
  public var path: String
  public var headers: [(String, String)]
  public var body: [UInt8]
  /// What was done to it, for a failure report.
  public var label: String
}

/// Requests to the tracking API made from the bodies the real Segment and RudderStack SDKs sent
/// (`Tests/Fixtures/sdk`): whole requests and single messages, mutated in structure and in bytes, with write
/// keys right, wrong, missing or in the body, and bodies plain, gzip, deflate, corrupt or a gzip bomb.
public struct TrackingInputs: Sendable {
  /// Single messages (`identify.json`, `track.json`, …) and whole request bodies (`request.json`).
  public let messages: [(type: String, doc: JSONDoc)]
  public let bodies: [JSONDoc]
  public let writeKey: String
  /// Gzip texts that inflate far past any request limit: zeros, and a JSON body padded with spaces.
  let bombs: [[UInt8]]
  var serial = 0

  /// Reads the captured SDK bodies under `fixtures` (the folder holding `segment/` and `rudder/`).
  public init(fixtures: String, writeKey: String) throws {
    var messages: [(String, JSONDoc)] = []
    var bodies: [JSONDoc] = []
    for sdk in ["segment", "rudder"] {
      for type in ["identify", "track", "page", "screen", "group", "alias"] {
        let text = try String(contentsOfFile: "\(fixtures)/\(sdk)/\(type).json", encoding: .utf8)
        messages.append((type, JSONDoc(try JSON.parse(text))))
      }
      let request = try JSON.parse(try String(contentsOfFile: "\(fixtures)/\(sdk)/request.json", encoding: .utf8))
      bodies.append(JSONDoc(request.lookup(["body"])))
    }
    self.messages = messages
    self.bodies = bodies
    self.writeKey = writeKey
    var zeros = ByteBuffer(repeating: 0, count: 64 << 20)
    var padded = ByteBuffer(string: "{\"batch\":[")
    padded.writeRepeatingByte(0x20, count: 32 << 20)
    padded.writeString("]}")
    bombs = try [zeros.compress(with: .gzip()), padded.compress(with: .gzip())].map { Array(buffer: $0) }
    zeros.clear()
  }

  /// A fresh message id, so most generated messages are stored rather than answered as duplicates.
  mutating func freshIDs(_ doc: JSONDoc, _ m: inout Mutator) -> JSONDoc {
    guard case .object(var members) = doc else { return doc }
    if let i = members.firstIndex(where: { $0.key == Array("messageId".utf8) }), m.chance(80) {
      serial += 1
      members[i].value = .string(Array("fz-\(m.rng.next() % 1_000_000_000)-\(serial)".utf8))
    }
    return .object(members)
  }

  public mutating func next(_ m: inout Mutator) -> TrackingRequest {
    var label: [String] = []
    // The body: a captured request, a batch of captured messages, or one message for its own route.
    var path = "/v1/batch"
    var doc: JSONDoc
    switch m.int(10) {
    case 0, 1, 2, 3:
      label.append("request")
      doc = m.pick(bodies)
      if case .object(var members) = doc, let i = members.firstIndex(where: { $0.key == Array("batch".utf8) }),
        case .array(let items) = members[i].value
      {
        members[i].value = .array(items.map { freshIDs($0, &m) })
        doc = .object(members)
      }
    case 4, 5, 6, 7:
      let n = m.int(8)
      label.append("batch of \(n)")
      var items: [JSONDoc] = []
      for _ in 0..<n { items.append(freshIDs(m.pick(messages).doc, &m)) }
      doc = .object([
        (key: Array("batch".utf8), value: .array(items)),
        (key: Array("sentAt".utf8), value: .string(Array("2026-11-29T12:00:00.000Z".utf8))),
      ])
    default:
      let (type, message) = m.pick(messages)
      path = "/v1/" + (m.chance(90) ? type : m.pick(["track", "identify", "alias"]))
      label.append("message \(path)")
      doc = freshIDs(message, &m)
    }
    // The write key: usually the Basic user name; sometimes in the body, wrong, missing or malformed.
    var headers: [(String, String)] = [("Content-Type", "application/json")]
    let auth = m.int(100)
    switch auth {
    case 0..<84: headers.append(("Authorization", Self.basic(writeKey)))
    case 84..<90:
      label.append("writeKey in body")
      if case .object(var members) = doc {
        members.append((key: Array("writeKey".utf8), value: .string(JSONDoc.escaped(writeKey))))
        doc = .object(members)
      }
    case 90..<93: label.append("no key")
    case 93..<96:
      label.append("wrong key")
      headers.append(("Authorization", Self.basic("wrong-\(m.int(10))")))
    default:
      label.append("malformed Authorization")
      headers.append(
        (
          "Authorization",
          m.pick(["Basic", "Basic !!!", "Bearer x", "Basic " + Data([0xFF, 0x3A]).base64EncodedString()])
        )
      )
    }
    // Structure, then bytes.
    if m.chance(60) {
      label.append("mutated")
      doc = m.mutate(doc)
    }
    var body = doc.bytes
    if m.chance(25) {
      label.append("bytes")
      body = m.mutateBytes(body)
    }
    if m.int(500) == 0 {
      label.append("over 4 MiB")
      body += [UInt8](repeating: 0x20, count: 4 << 20)
    }
    // The encoding.
    switch m.int(100) {
    case 0..<12:
      label.append("gzip")
      body = Self.compress(body, .gzip())
      headers.append(("Content-Encoding", "gzip"))
    case 12..<15:
      label.append("deflate")
      body = Self.compress(body, .zlib())
      headers.append(("Content-Encoding", "deflate"))
    case 15..<17:
      label.append("gzip bomb")
      body = m.pick(bombs)
      headers.append(("Content-Encoding", "gzip"))
    case 17..<20:
      label.append("corrupt gzip")
      body = m.mutateBytes(Self.compress(body, .gzip()))
      headers.append(("Content-Encoding", m.pick(["gzip", "x-gzip", "GZIP"])))
    case 20..<22:
      label.append("plain body labelled gzip")
      headers.append(("Content-Encoding", "gzip"))
    default: break
    }
    return TrackingRequest(path: path, headers: headers, body: body, label: label.joined(separator: ", "))
  }

  public static func basic(_ key: String) -> String { "Basic " + Data("\(key):".utf8).base64EncodedString() }

  static func compress(_ bytes: [UInt8], _ algorithm: CompressionAlgorithm) -> [UInt8] {
    var buffer = ByteBuffer(bytes: bytes)
    // Compressing bytes in memory fails only when zlib cannot allocate; an empty body then stands in.
    return (try? buffer.compress(with: algorithm)).map { Array(buffer: $0) } ?? []
  }
}
