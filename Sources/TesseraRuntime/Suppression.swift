import Crypto
import Foundation
import TesseraModel

/// How a deleted person's identifiers are remembered: only as SHA-256 hashes of `kind:value` (normalized),
/// so the suppression list itself holds nothing that identifies anybody.
public enum Suppression {
  public static func hash(_ identifier: Identifier) -> String {
    SHA256.hash(data: Data("\(identifier.kind):\(identifier.value)".utf8)).map { String(format: "%02x", $0) }.joined()
  }
}
