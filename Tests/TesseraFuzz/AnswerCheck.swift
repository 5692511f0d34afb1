import TesseraModel

/// What the tracking API must answer whatever it is sent: 200 with the batch's outcome, or 400, 401, 413
/// (415 for a `Content-Encoding` it does not speak) with a JSON error carrying `code` and `message` — never a
/// 5xx, never a body a client cannot read.
public enum AnswerCheck {
  public static let allowed: Set<Int> = [200, 400, 401, 413, 415]

  /// What an answer showed: the events it says were stored, or why it breaks the contract.
  public enum Outcome: Sendable, Hashable {
    case accepted(stored: Int, duplicates: Int, rejected: Int)
    case refused(status: Int, code: String)
  }

  public static func check(status: Int, body: String) -> Result<Outcome, Failure> {
    guard allowed.contains(status) else { return .failure(Failure("status \(status): \(body.prefix(300))")) }
    guard case .map(let m)? = try? JSON.parse(body) else {
      return .failure(Failure("status \(status) with a body that is not a JSON object: \(body.prefix(300))"))
    }
    if status != 200 {
      guard case .string(let code)? = m["code"], !code.isEmpty, case .string(let message)? = m["message"],
        !message.isEmpty
      else { return .failure(Failure("status \(status) without `code` and `message`: \(body.prefix(300))")) }
      return .success(.refused(status: status, code: code))
    }
    guard m["success"] == .bool(true), case .int(let accepted)? = m["accepted"], case .int(let stored)? = m["stored"],
      case .int(let duplicates)? = m["duplicates"], case .list(let rejected)? = m["rejected"]
    else { return .failure(Failure("200 without the batch's outcome: \(body.prefix(300))")) }
    guard accepted >= 0, stored >= 0, duplicates >= 0, stored + duplicates <= accepted else {
      return .failure(Failure("200 with inconsistent counts: \(body.prefix(300))"))
    }
    var indexes = Set<Int64>()
    for r in rejected {
      guard case .map(let x) = r, case .int(let i)? = x["index"], case .string(let code)? = x["code"],
        case .string(let reason)? = x["reason"], !code.isEmpty, !reason.isEmpty, i >= 0,
        i < accepted + Int64(rejected.count), indexes.insert(i).inserted
      else { return .failure(Failure("200 with a malformed rejection \(r): \(body.prefix(300))")) }
    }
    return .success(.accepted(stored: Int(stored), duplicates: Int(duplicates), rejected: rejected.count))
  }

  public struct Failure: Error, Sendable, CustomStringConvertible {
    public var description: String
    init(_ d: String) { description = d }
  }
}
