import Foundation
import TesseraCompiler
import TesseraConnectors
import TesseraIdentity
import TesseraModel
import TesseraRuntime
import TesseraSQLite
import TesseraStore
import Testing

/// Bugs the end-to-end tests found, kept as regression tests now that they are fixed.
@Suite("End to end: regressions")
struct RegressionEndToEndTests {
  typealias StoreKind = E2E.StoreKind

  /// examples/README.md: the blocked `test@example.com` "never links: two separate profiles, neither with an
  /// email identifier"; Quinn's phone normalizes to the blocked `+15555555555`: "no phone identifier". The graph
  /// used to keep blocked values as non-linking members, so a lookup of the blocked value answered with an
  /// arbitrary customer and `identifiers.email` could be a placeholder a destination would hash and send.
  @Test("blocked values are not a profile's identifiers", arguments: StoreKind.allCases)
  func blockedValuesAreNotIdentifiers(kind: StoreKind) async throws {
    let dir = try E2E.TempDir()
    defer { dir.remove() }
    let plan = try E2E.compile(E2E.retailPipeline)
    let store = try E2E.makeStore(kind, in: dir)
    _ = try await E2E.run(plan, store)
    let emma = try await E2E.profile(store, "user_id", "100105")
    let farid = try await E2E.profile(store, "user_id", "100106")
    let quinn = try await E2E.profile(store, "user_id", "100119")
    #expect(emma != farid)
    let emmaIDs = try await E2E.identifiers(store, emma)
    let faridIDs = try await E2E.identifiers(store, farid)
    let quinnIDs = try await E2E.identifiers(store, quinn)
    let testEmail = try await store.profile(for: Identifier("email", "test@example.com"))
    let placeholderPhone = try await store.profile(for: Identifier("phone", "+15555555555"))
    #expect(emmaIDs == ["phone:+15035550105", "user_id:100105"])
    #expect(faridIDs == ["phone:+15035550106", "user_id:100106"])
    #expect(quinnIDs == ["email:quinn.harper@example.org", "user_id:100119"])
    #expect(testEmail == nil)
    #expect(placeholderPhone == nil)
  }

  /// Rows: an earlier transaction stores `b@example.com` (profile 1) and anonymous `x` (profile 2); the next one
  /// merges 2 into 1 (an event with both), then sees `x` again after it expired (30 days), which starts profile 3.
  static let mergeThenExpire = [
    "b@example.com,,,,2026-01-01T00:00:00Z",
    ",,x,,2026-01-01T00:00:00Z",
    "b@example.com,,x,,2026-01-02T00:00:00Z",
    ",,x,,2026-03-01T00:00:00Z",
  ]

  static func expectExpiredLeftTheSurvivor(_ store: any Store) async throws -> [ProfileID] {
    let snapshot = try await store.loadIdentity()
    #expect(snapshot.profiles.count == 2)
    return snapshot.profiles.filter { $0.1.contains { $0.0 == Identifier("anonymous_id", "x") } }.map(\.0)
  }

  @Test("control: merged, then expired, one event per transaction", arguments: StoreKind.allCases)
  func mergeThenExpireControl(kind: StoreKind) async throws {
    let dir = try E2E.TempDir()
    defer { dir.remove() }
    let (store, _) = try await TransactionEndToEndTests.run(
      kind, dir, Self.mergeThenExpire, batchSize: 1, commitEvents: 1)
    #expect(try await Self.expectExpiredLeftTheSurvivor(store) == [ProfileID(3)])
    #expect(try await store.profile(for: Identifier("anonymous_id", "x")) == ProfileID(3))
  }

  /// The stores applied a batch's `released` rows before its `merges`: when the profile got the identifier by a
  /// merge in the same transaction, the row still sat on the absorbed profile at delete time, then the merge
  /// moved it to the survivor, so two live profiles held `x`. Releases now come after merges.
  @Test(
    "an identifier merged in and then expired in one transaction leaves the survivor", arguments: StoreKind.allCases)
  func mergeThenExpire(kind: StoreKind) async throws {
    let dir = try E2E.TempDir()
    defer { dir.remove() }
    // Two transactions: the first two rows, then the last two.
    let (store, _) = try await TransactionEndToEndTests.run(
      kind, dir, Self.mergeThenExpire, batchSize: 2, commitEvents: 2)
    let holders = try await Self.expectExpiredLeftTheSurvivor(store)
    let lookup = try await store.profile(for: Identifier("anonymous_id", "x"))
    #expect(holders == [ProfileID(3)])
    #expect(lookup == ProfileID(3))
  }
}
