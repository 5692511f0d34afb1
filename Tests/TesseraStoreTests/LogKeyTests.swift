import TesseraStore
import Testing

/// The SQLite log finds events by `EventKey.logKey`: a store written by one version is read by the next, so the
/// hash must never change.
@Suite("Event log keys")
struct LogKeyTests {
  @Test("an event's log key is the same value in every version")
  func pinned() {
    #expect(EventKey(source: "web", id: "ajs-1").logKey == 4_476_476_584_194_272_931)
    #expect(EventKey(source: "crm", id: "crm-100101-2024-01-01").logKey == -6_306_746_690_749_964_940)
    #expect(EventKey(source: "", id: "").logKey == 134_870_256_705_401_553)
    // The separator keeps the two strings apart.
    #expect(EventKey(source: "ab", id: "c").logKey != EventKey(source: "a", id: "bc").logKey)
  }
}
