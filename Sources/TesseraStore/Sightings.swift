import TesseraIdentity
import TesseraModel

/// One combination of device-signal values a profile was seen with (`signals.ip`, `signals.os`, …), and
/// when it was last seen with it.
public struct StoredSighting: Sendable, Hashable {
  public var signals: [String: String]
  public var last: Timestamp
  public init(signals: [String: String], last: Timestamp) {
    self.signals = signals
    self.last = last
  }
}

/// A profile's recent sightings, newest first, as the writer keeps them for rules on device signals
/// (bounded by `signals.per_profile`, each expiring `signals.keep` after it was last seen). One row per
/// profile, written whole by the transaction whose events changed it, so a restarted writer decides as if it
/// had never stopped. The profiles sharing a value (`signals.frequency`) are rebuilt from these rows.
public struct SightingRecord: Sendable, Hashable {
  public var profile: ProfileID
  /// Empty: the profile keeps none (it was merged away, or they all expired); the row is deleted.
  public var sightings: [StoredSighting]
  /// When the newest sighting expires: the store prunes the row from then on.
  public var expires: Timestamp

  public init(profile: ProfileID, sightings: [StoredSighting], expires: Timestamp) {
    self.profile = profile
    self.sightings = sightings
    self.expires = expires
  }

  /// The sightings as stored: a JSON list of `{"at": microseconds, "signals": {name: value}}`.
  public var encoded: String {
    StoredValue.encode(
      .list(
        sightings.map { s in
          .map(["at": .int(s.last.microseconds), "signals": .map(s.signals.mapValues(Value.string))])
        }))
  }

  /// Reads the stored form back (`encoded`).
  public static func decode(_ text: String) throws -> [StoredSighting] {
    guard case .list(let items) = try StoredValue.decode(text) else { throw StoreError.corrupt("sightings: \(text)") }
    return try items.map { item in
      guard case .map(let m) = item, case .int(let at)? = m["at"], case .map(let values)? = m["signals"] else {
        throw StoreError.corrupt("sighting: \(item)")
      }
      var signals: [String: String] = [:]
      for (k, v) in values {
        guard case .string(let s) = v else { throw StoreError.corrupt("sighting value: \(v)") }
        signals[k] = s
      }
      return StoredSighting(signals: signals, last: Timestamp(microseconds: at))
    }
  }
}
