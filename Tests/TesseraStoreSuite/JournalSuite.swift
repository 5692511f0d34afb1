import TesseraIdentity
import TesseraModel
import TesseraStore

extension StoreSuite {
  static var journalChecks: [(String, (any Store, inout Failures) async throws -> Void)] {
    [
      ("journaled events read back in order, skip stored and journaled ones, and leave with the commit", journal),
      ("a commit at another epoch is refused whole; erasing and replacing move the epoch on", epochs),
    ]
  }

  static func journal(_ store: any Store, _ f: inout Failures) async throws {
    var stored = CommitBatch()
    stored.newProfiles = [NewProfile(p(1), createdAt: t(0))]
    stored.events = [event("e0", at: t(0), ids: [email], profile: p(1))]
    try await store.commit(stored)
    let fresh = (1...3).map {
      event(
        "e\($0)", name: "Step \($0)", at: t(Int64($0)), ids: [email], properties: ["n": .int(Int64($0))], profile: p(1)
      )
      .event
    }
    let rejected = RejectedRecord(source: "web", line: 2, record: "{\"x\":1}", reason: "no identifier", at: t(5))
    // e0 is stored already; e2 is sent twice in the same call.
    let first = try await store.appendJournal(
      [stored.events[0].event, fresh[0], fresh[1], fresh[1]], rejected: [rejected])
    f.expect(
      first.appended.map(\.id).sorted(), ["e1", "e2"], "appended: new events once each, not the stored one")
    let again = try await store.appendJournal([fresh[1], fresh[2]], rejected: [])
    f.expect(again.appended.map(\.id).sorted(), ["e3"], "appended: a journaled event is not journaled twice")
    f.expect(try await store.rejected(limit: 10).map(\.reason), ["no identifier"], "rejected records of the append")
    let entries = try await store.readJournal(limit: 10)
    f.expect(entries.map(\.event.id), ["e1", "e2", "e3"], "journal order")
    f.expect(entries.map(\.event), fresh, "journaled events read back whole")
    if entries.map(\.seq) != entries.map(\.seq).sorted() || Set(entries.map(\.seq)).count != 3 {
      f.fail("journal sequence numbers are not increasing: \(entries.map(\.seq))")
    }
    f.expect(try await store.readJournal(limit: 2).map(\.event.id), ["e1", "e2"], "a limited read")
    // The backlog may count the sequence numbers that repeats used up (an estimate, never less than the truth).
    let before = try await store.journalBacklog()
    if before < 3 || before > 5 { f.fail("backlog before the writer: \(before), expected 3 (up to 5 with repeats)") }
    f.expect(again.backlog ?? before, before, "the append's receipt reports the backlog")
    // The writer stores e1 and e2 and takes them out of the journal in the same transaction.
    var resolved = CommitBatch()
    resolved.events = entries.prefix(2).map { StoredEvent(event: $0.event, profile: p(1)) }
    resolved.journalDone = entries.prefix(2).map(\.seq)
    try await store.commit(resolved)
    f.expect(try await store.readJournal(limit: 10).map(\.event.id), ["e3"], "journal after the commit")
    let after = try await store.journalBacklog()
    if after < 1 || after >= before { f.fail("backlog after the commit: \(after) (before: \(before))") }
    f.expect(try await store.stats().events, 3, "events stored")
    // Stored events stay duplicates for the journal.
    let late = try await store.appendJournal([fresh[0]], rejected: [])
    f.expect(late.appended.count, 0, "a stored event journaled again")
    var last = CommitBatch()
    last.events = [StoredEvent(event: entries[2].event, profile: p(1))]
    last.journalDone = [entries[2].seq]
    try await store.commit(last)
    f.expect(try await store.journalBacklog(), 0, "backlog once all is resolved")
  }

  static func epochs(_ store: any Store, _ f: inout Failures) async throws {
    let start = try await store.epoch()
    f.expect(try await store.acquireWriter(), true, "a lone process is the writer")
    var a = CommitBatch()
    a.newProfiles = [NewProfile(p(1), createdAt: t(0))]
    a.events = [event("e1", at: t(0), ids: [email], profile: p(1))]
    a.identifiers = [IdentifierRow(email, of: p(1), seen: t(0))]
    a.epoch = try await store.epoch()
    try await store.commit(a)
    f.expect(try await store.epoch(), a.epoch ?? -1, "a commit does not move the epoch")
    _ = try await store.erase(profile: p(1), values: [], suppress: [])
    let erased = try await store.epoch()
    if erased == (a.epoch ?? start) { f.fail("erasing did not move the epoch (still \(erased))") }
    // A batch resolved before the erase would bring the person back: refused, nothing of it written.
    var stale = CommitBatch()
    stale.newProfiles = [NewProfile(p(2), createdAt: t(1))]
    stale.events = [event("e2", at: t(1), ids: [email2], profile: p(2))]
    stale.identifiers = [IdentifierRow(email2, of: p(2), seen: t(1))]
    stale.epoch = a.epoch
    do {
      try await store.commit(stale)
      f.fail("a commit at an old epoch was accepted")
    } catch StoreError.stale(let expected, let found) {
      f.expect([expected, found], [a.epoch ?? -1, erased], "the stale error names both epochs")
    }
    f.expect(try await store.profile(for: email2) == nil, true, "nothing of the stale batch stored")
    f.expect(try await store.stats().events, 0, "no event of the stale batch stored")
    stale.epoch = erased
    try await store.commit(stale)
    f.expect(try await store.profile(for: email2), p(2), "the same batch at the current epoch")
    try await store.replaceDerivedState(DerivedState())
    if try await store.epoch() == erased { f.fail("replacing the derived state did not move the epoch") }
  }
}
