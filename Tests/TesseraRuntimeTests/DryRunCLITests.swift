import Foundation
import Testing

/// `tessera dry-run` through the built executable: the report, overrides, --strict, and a store left alone.
@Suite(
  "End to end: dry-run",
  .enabled(if: E2E.CLI.binary != nil, "no built `tessera`; run `swift build --build-tests` first"))
struct DryRunCLITests {
  typealias CLI = E2E.CLI
  static let now = "2026-06-30T00:00:00Z"

  static func json(_ stdout: String) throws -> [String: Any] {
    try #require(try JSONSerialization.jsonObject(with: Data(stdout.utf8)) as? [String: Any])
  }

  static func list(_ report: [String: Any], _ key: String) -> [[String: Any]] {
    report[key] as? [[String: Any]] ?? []
  }

  /// Every byte of the store files, to prove a dry run against them changes nothing.
  static func bytes(_ store: String) -> [String: Data] {
    var out: [String: Data] = [:]
    for suffix in ["", "-wal", "-shm"] {
      if let d = FileManager.default.contents(atPath: store + suffix) { out[suffix] = d }
    }
    return out
  }

  @Test(
    "against a copy of a real store: new profile, trait change with its policy, conflict, rejection; the store is untouched"
  )
  func against() async throws {
    let dir = try E2E.TempDir()
    defer { dir.remove() }
    let store = dir.file("real.sqlite")
    let run = try await CLI.tessera(["run", "pipelines/retail.yaml", "--store", store, "--now", Self.now])
    #expect(run.status == 0, "\(run.stderr)")
    let sample = try dir.write(
      "crm_update.csv",
      """
      customer_no,email_address,phone,first_name,last_name,birth_date,city,postcode,lifetime_value,marketing_opt_in,updated_at
      100101,ada.whitfield@example.com,(206) 555-0101,Ada,Whitfield,1985-03-14,Tacoma,98402,1240.50,true,2026-06-20T09:00:00Z
      100199,nina.new@example.com,,Nina,Novak,1991-01-01,Boston,02134,10.00,false,2026-06-21T09:00:00Z
      100198,bruno.castillo@example.org,,Bruno,Impostor,1979-11-02,Chicago,60614,1.00,false,2026-06-22T09:00:00Z
      100197,kenji2@example.com,,Kenji,W,1980-01-01,Osaka,,n/a,true,2026-06-23T09:00:00Z

      """)
    let before = Self.bytes(store)
    let r = try await CLI.tessera([
      "dry-run", "pipelines/retail.yaml", "--sample", "crm=\(sample)", "--against", store, "--now", Self.now,
      "--format", "json",
    ])
    #expect(r.status == 0, "\(r.stderr)")
    #expect(Self.bytes(store) == before, "the store the dry run started from changed")
    let report = try Self.json(r.stdout)
    #expect(report["records"] as? Int == 4)
    #expect(report["events"] as? Int == 3)
    // Nina is new; the impostor's user id 100198 cannot join Bruno (one user_id per profile), so a profile of its own.
    let created = Self.list(report, "profiles_created").compactMap { $0["identifiers"] as? [String] }
    #expect(created.count == 2)
    #expect(created.contains { $0.contains("user_id:100199") && $0.contains("email:nina.new@example.com") })
    let conflicts = Self.list(report, "conflicts")
    #expect(conflicts.contains { ($0["reason"] as? String)?.contains("more than 1 user_id value") == true })
    let changes = Self.list(report, "trait_changes")
    let city = try #require(changes.first { $0["trait"] as? String == "city" && $0["before"] as? String == "Seattle" })
    #expect(city["after"] as? String == "Tacoma")
    #expect((city["why"] as? String)?.hasPrefix("most recent") == true)
    let rejected = Self.list(report, "rejected")
    #expect(rejected.count == 1)
    #expect((rejected.first?["reason"] as? String)?.contains("lifetime_value") == true)
    #expect(rejected.first?["line"] as? Int == 5)
    // Nothing of the sample is in the real store.
    let lookup = try await CLI.tessera(["profile", "user_id:100199", "--store", store])
    #expect(lookup.status != 0)
  }

  /// An order used to show no computed trait in "trait changes" (only the identifiers it brought), while the
  /// destination payload's `changed` named `orders_90d` and `revenue_total`.
  @Test("trait changes list computed traits, before and after, with their definition")
  func computedTraitChanges() async throws {
    let dir = try E2E.TempDir()
    defer { dir.remove() }
    let store = dir.file("c.sqlite")
    #expect(try await CLI.tessera(["run", "pipelines/retail.yaml", "--store", store, "--now", Self.now]).status == 0)
    let sample = try dir.write(
      "order.ndjson",
      #"{"order": {"id": "ORD-DRY-950", "completed_at": "2026-06-25T12:00:00Z", "total": 950.0, "currency": "USD", "#
        + #""items": []}, "customer": {"loyalty_no": "100101"}, "store": {"id": "S-SEA-01", "postcode": "98103"}}"#
        + "\n")
    let r = try await CLI.tessera([
      "dry-run", "pipelines/retail.yaml", "--sample", "pos=\(sample)", "--against", store, "--now", Self.now,
      "--format", "json",
    ])
    #expect(r.status == 0, "\(r.stderr)")
    let changes = Self.list(try Self.json(r.stdout), "trait_changes")
    let revenue = try #require(changes.first { $0["trait"] as? String == "revenue_total" }, "\(changes)")
    let before = try #require(revenue["before"] as? Double)
    #expect(revenue["after"] as? Double == before + 950)
    #expect(revenue["source"] as? String == "computed")
    #expect(revenue["why"] as? String == #"sum of double(properties.revenue) where event == "Order Completed""#)
    let orders = try #require(changes.first { $0["trait"] as? String == "orders_90d" }, "\(changes)")
    #expect(orders["after"] as? Int == (orders["before"] as? Int ?? 0) + 1)
    #expect(orders["why"] as? String == #"count where event == "Order Completed" over 90d"#)
    let text = try await CLI.tessera([
      "dry-run", "pipelines/retail.yaml", "--sample", "pos=\(sample)", "--against", store, "--now", Self.now,
    ])
    #expect(
      text.stdout.contains("revenue_total: \(before) → \(before + 950)  from computed — sum of"), "\(text.stdout)")
  }

  @Test("withdrawing consent sends the destination a removal for each audience the person is in")
  func withdrawal() async throws {
    let dir = try E2E.TempDir()
    defer { dir.remove() }
    let store = dir.file("w.sqlite")
    #expect(try await CLI.tessera(["run", "pipelines/retail.yaml", "--store", store, "--now", Self.now]).status == 0)
    let sample = try dir.write(
      "consent.ndjson",
      #"{"type": "identify", "messageId": "consent-1", "userId": "100101", "timestamp": "2026-06-25T10:00:00Z", "context": {"consent": {"categoryPreferences": {"advertising": false, "analytics": true}}}}"#
        + "\n")
    let r = try await CLI.tessera([
      "dry-run", "pipelines/retail.yaml", "--sample", "web_history=\(sample)", "--against", store, "--now", Self.now,
      "--format", "json",
    ])
    #expect(r.status == 0, "\(r.stderr)")
    let report = try Self.json(r.stdout)
    let change = Self.list(report, "trait_changes").first { $0["trait"] as? String == "consent.advertising" }
    #expect(change?["before"] as? Bool == true && change?["after"] as? Bool == false)
    #expect(change?["source"] as? String == "web_history")
    let removals = Self.list(report, "payloads").filter { $0["op"] as? String == "exit" }
    let bodies = removals.compactMap { $0["body"] as? [String: Any] }
    #expect(bodies.count == 1)
    #expect(bodies.first?["audience"] as? String == "high_value" && bodies.first?["action"] as? String == "remove")
  }

  @Test("an `on: events` destination that needs consent gets only the events of profiles that gave it, from then on")
  func eventsNeedConsent() async throws {
    let dir = try E2E.TempDir()
    defer { dir.remove() }
    let consent = try dir.write(
      "consent.ndjson",
      #"{"type": "identify", "messageId": "c-1", "userId": "100101", "timestamp": "2026-01-01T00:00:00Z", "context": {"consent": {"categoryPreferences": {"analytics": true}}}}"#
        + "\n")
    let empty = try dir.write("empty.ndjson", "")
    // Consent is read at the time of each change: the store first learns Ada's consent (no orders yet)…
    let pipeline =
      try String(contentsOfFile: E2E.packageRoot + "/pipelines/retail.yaml", encoding: .utf8)
      .replacingOccurrences(of: "../examples/pos_orders.ndjson", with: empty)
      .replacingOccurrences(of: "../examples/web_events.ndjson", with: consent)
      .replacingOccurrences(of: "../", with: E2E.packageRoot + "/")
        + """

          order_feed:
            kind: file
            path: orders.ndjson
            on: events
            where: event == "Order Completed"
            consent: analytics
            payload: { order: properties.order_id, profile: profile.id }

        """
    let copy = try dir.write("retail.yaml", pipeline)
    let store = dir.file("consent.sqlite")
    let run = try await CLI.tessera(["run", copy, "--store", store, "--now", Self.now])
    #expect(run.status == 0, "\(run.stderr)")
    // …then the orders arrive.
    let r = try await CLI.tessera([
      "dry-run", copy, "--sample", "pos=\(E2E.packageRoot)/examples/pos_orders.ndjson", "--against", store, "--now",
      Self.now, "--format", "json",
    ])
    #expect(r.status == 0, "\(r.stderr)")
    let report = try Self.json(r.stdout)
    let orders = Self.list(report, "payloads").filter { $0["destination"] as? String == "order_feed" }
      .compactMap { ($0["body"] as? [String: Any])?["order"] as? String }
    // Ada (100101) consented to analytics: her three orders; nobody else did.
    #expect(orders.sorted() == ["ORD-2026-000103", "ORD-2026-000108", "ORD-2026-000116"], "\(orders)")
    #expect((report["notes"] as? [String])?.contains { $0.contains("not consented to `analytics`") } == true)
  }

  @Test("--set moves a threshold: the same guest order joins, then waits for review")
  func thresholdOverride() async throws {
    let args = [
      "dry-run", "pipelines/retail.yaml", "--sample", "examples/crm_contacts.csv", "--sample",
      "examples/pos_orders.ndjson", "--now", Self.now, "--format", "json",
    ]
    func kathrine(_ extra: [String]) async throws -> String? {
      let r = try await CLI.tessera(args + extra)
      #expect(r.status == 0, "\(r.stderr)")
      let links = Self.list(try Self.json(r.stdout), "match_links")
      return links.first { $0["event_id"] as? String == "ORD-2026-000114" }?["status"] as? String
    }
    #expect(try await kathrine([]) == "joined")
    #expect(try await kathrine(["--set", "rules.person.thresholds.merge=0.999"]) == "review")
    #expect(
      try await kathrine([
        "--set", "rules.person.thresholds.review=0.999", "--set", "rules.person.thresholds.merge=0.9999",
      ]) == nil)
    let bad = try await CLI.tessera(args + ["--set", "rules.person.thresholds.merge=2"])
    #expect(bad.status == 1)
    #expect(bad.stderr.contains("threshold `merge` must be in (0, 1], found 2"))
  }

  @Test("the whole example: segment enters and the payloads the ads destination would receive; --strict")
  func payloadsAndStrict() async throws {
    let args = [
      "dry-run", "pipelines/retail.yaml", "--sample", "examples/crm_contacts.csv", "--sample",
      "examples/pos_orders.ndjson", "--sample", "web_history=examples/web_events.ndjson", "--now", Self.now,
    ]
    let r = try await CLI.tessera(args + ["--format", "json"])
    #expect(r.status == 0, "\(r.stderr)")
    let report = try Self.json(r.stdout)
    let ads = Self.list(report, "payloads").filter { $0["destination"] as? String == "ads_audience" }
    let bodies = ads.compactMap { $0["body"] as? [String: Any] }
    // Five customers enter high_value and four lapsed; the ads destination needs consent to advertising
    // (the CRM's marketing opt-in): Bruno and two lapsed customers did not give it.
    let highValue = bodies.filter { $0["audience"] as? String == "high_value" && $0["action"] as? String == "add" }
    #expect(highValue.count == 4)
    #expect(bodies.filter { $0["audience"] as? String == "lapsed" }.count == 2)
    #expect(bodies.allSatisfy { ($0["email_sha256"] as? String).map { $0.count == 64 } ?? true })
    #expect(report["notes"] as? [String] == ["3 payloads withheld: the profile has not consented to `advertising`"])
    let text = try await CLI.tessera(args)
    #expect(text.stdout.hasPrefix("dry run: "))
    #expect(text.stdout.contains("destination payloads (not sent)"))
    let strict = try await CLI.tessera(args + ["--strict"])
    #expect(strict.status == 3)
    let unknown = try await CLI.tessera(["dry-run", "pipelines/retail.yaml", "--sample", "README.md"])
    #expect(unknown.stderr.contains("cannot tell which source `README.md` is for; write --sample SOURCE=README.md"))
  }
}

/// `tessera replay --dry-run`: the stored log re-resolved under the current (or overridden) configuration.
@Suite(
  "End to end: replay",
  .enabled(if: E2E.CLI.binary != nil, "no built `tessera`; run `swift build --build-tests` first"))
struct ReplayCLITests {
  typealias CLI = E2E.CLI

  @Test(
    "unchanged rules change nothing; a tighter threshold splits exactly the profile that relied on it; a looser one merges"
  )
  func replay() async throws {
    let dir = try E2E.TempDir()
    defer { dir.remove() }
    let store = dir.file("r.sqlite")
    let now = DryRunCLITests.now
    let run = try await CLI.tessera(["run", "pipelines/retail.yaml", "--store", store, "--now", now])
    #expect(run.status == 0, "\(run.stderr)")
    let before = DryRunCLITests.bytes(store)
    let base = ["replay", "pipelines/retail.yaml", "--store", store, "--dry-run", "--now", now, "--format", "json"]
    let same = try DryRunCLITests.json(try await CLI.tessera(base).stdout)
    for key in ["merges", "splits", "trait_changes", "membership_changes"] {
      #expect(DryRunCLITests.list(same, key).isEmpty, "\(key)")
    }
    #expect(same["events"] as? Int == 100)
    let tight = try DryRunCLITests.json(
      try await CLI.tessera(base + ["--set", "rules.person.thresholds.merge=0.999"]).stdout)
    let splits = DryRunCLITests.list(tight, "splits")
    #expect(splits.count == 1)
    let parts = try #require(splits.first?["parts"] as? [[String]])
    #expect(parts.contains(["ORD-2026-000114"]), "\(parts)")
    #expect(DryRunCLITests.list(tight, "merges").isEmpty)
    #expect(tight["profiles_after"] as? Int == 35)
    let loose = try DryRunCLITests.json(
      try await CLI.tessera(base + ["--set", "rules.person.thresholds.merge=0.98"]).stdout)
    let merges = DryRunCLITests.list(loose, "merges")
    #expect(merges.count == 1)
    #expect(merges.first?["events"] as? Int == 2)
    #expect(loose["profiles_after"] as? Int == 33)
    #expect(DryRunCLITests.bytes(store) == before, "a dry-run replay changed the store")
    // Applying the looser threshold: Michael's guest order merges into him, its old id an alias of his.
    let michael = try await CLI.tessera(["profile", "user_id:100113", "--store", store, "--format", "json"])
    let michaelID = try #require(try DryRunCLITests.json(michael.stdout)["id"] as? String)
    let apply = try await CLI.tessera(
      [
        "replay", "pipelines/retail.yaml", "--store", store, "--now", now, "--set",
        "rules.person.thresholds.merge=0.98",
      ])
    #expect(apply.status == 0, "\(apply.stderr)")
    #expect(apply.stdout.hasSuffix("applied to \(store)\n"))
    let after = try await CLI.tessera(["profile", "user_id:100113", "--store", store])
    #expect(after.stdout.hasPrefix("profile \(michaelID) (absorbed: "))
    #expect(after.stdout.contains("rule replay"))
    #expect(after.stdout.contains("revenue_total      150.0"))
    // Replaying again under the same rules finds nothing left to change; the ids stay.
    let again = try DryRunCLITests.json(
      try await CLI.tessera(base + ["--set", "rules.person.thresholds.merge=0.98"]).stdout)
    #expect(DryRunCLITests.list(again, "merges").isEmpty && DryRunCLITests.list(again, "splits").isEmpty)
    #expect(again["profiles_before"] as? Int == 33 && again["profiles_after"] as? Int == 33)
    // Tightening: Katherine keeps her id and her CRM event; the guest order moves to a new profile.
    let katherine = try await CLI.tessera(["profile", "user_id:100112", "--store", store, "--format", "json"])
    let katherineID = try #require(try DryRunCLITests.json(katherine.stdout)["id"] as? String)
    let split = try await CLI.tessera(
      [
        "replay", "pipelines/retail.yaml", "--store", store, "--now", now, "--set",
        "rules.person.thresholds.merge=0.999",
      ])
    #expect(split.status == 0, "\(split.stderr)")
    let k = try await CLI.tessera(["profile", "user_id:100112", "--store", store])
    #expect(k.stdout.hasPrefix("profile \(katherineID)\n"))
    #expect(k.stdout.contains("split by replay: events moved to prf_"))
    #expect(!k.stdout.contains("Order Completed"))
  }
}

extension ReplayCLITests {
  @Test("a changed computed-trait declaration is noticed on the next run, and replay rebuilds it from the log")
  func changedComputedTrait() async throws {
    let dir = try E2E.TempDir()
    defer { dir.remove() }
    let store = dir.file("c.sqlite")
    let now = DryRunCLITests.now
    #expect(try await CLI.tessera(["run", "pipelines/retail.yaml", "--store", store, "--now", now]).status == 0)
    // orders_90d now counts only orders over 50.
    let profile = try String(contentsOfFile: E2E.packageRoot + "/rules/profile.yaml", encoding: .utf8)
      .replacingOccurrences(
        of: "    where: event == \"Order Completed\"\n    window: 90d",
        with: "    where: event == \"Order Completed\" && double(properties.revenue) > 50\n    window: 90d")
    let rules = try dir.write("profile.yaml", profile)
    let pipeline = try String(contentsOfFile: E2E.packageRoot + "/pipelines/retail.yaml", encoding: .utf8)
      .replacingOccurrences(of: "../rules/profile.yaml", with: rules)
      .replacingOccurrences(of: "../", with: E2E.packageRoot + "/")
    let changed = try dir.write("retail.yaml", pipeline)
    let run = try await CLI.tessera(["run", changed, "--store", store, "--now", now])
    #expect(run.status == 0)
    #expect(
      run.stderr.contains("the declarations of computed traits `orders_90d` changed since their states were stored"))
    let apply = try await CLI.tessera(["replay", changed, "--store", store, "--now", now, "--format", "json"])
    let report = try DryRunCLITests.json(apply.stdout)
    let changes = DryRunCLITests.list(report, "trait_changes")
    #expect(!changes.isEmpty && changes.allSatisfy { $0["trait"] as? String == "orders_90d" }, "\(changes)")
    let after = try DryRunCLITests.json(
      try await CLI.tessera(["replay", changed, "--store", store, "--now", now, "--dry-run", "--format", "json"]).stdout
    )
    #expect(DryRunCLITests.list(after, "trait_changes").isEmpty)
    let again = try await CLI.tessera(["run", changed, "--store", store, "--now", now])
    #expect(!again.stderr.contains("changed since their states were stored"))
  }
}

/// `tessera unmerge`: one recorded merge undone, the link blocked until new evidence arrives.
@Suite(
  "End to end: unmerge",
  .enabled(if: E2E.CLI.binary != nil, "no built `tessera`; run `swift build --build-tests` first"))
struct UnmergeCLITests {
  typealias CLI = E2E.CLI
  static let visitorA = "anonymous_id:c1f0319c-6f5c-5feb-a568-a86ef8df58e0"

  @Test("unmerging Maya and visitor A restores both profiles; a re-run keeps them apart; new evidence joins them")
  func unmerge() async throws {
    let dir = try E2E.TempDir()
    defer { dir.remove() }
    let store = dir.file("u.sqlite")
    let now = DryRunCLITests.now
    #expect(try await CLI.tessera(["run", "pipelines/retail.yaml", "--store", store, "--now", now]).status == 0)
    let maya = try DryRunCLITests.json(
      try await CLI.tessera(["profile", "user_id:100115", "--store", store, "--format", "json"]).stdout)
    let mayaID = try #require(maya["id"] as? String)
    let merge = try #require((maya["merges"] as? [[String: Any]])?.first)
    let absorbed = try #require(merge["absorbed"] as? String)
    let wrong = try await CLI.tessera([
      "unmerge", "user_id:100115", "--merge", "prf_1", "--pipeline", "pipelines/retail.yaml", "--store", store,
    ])
    #expect(wrong.status != 0)
    #expect(wrong.stderr.contains("has no merge absorbing prf_1; its merges: \(absorbed) → \(mayaID)"))
    let r = try await CLI.tessera([
      "unmerge", "user_id:100115", "--merge", absorbed, "--pipeline", "pipelines/retail.yaml", "--store", store,
      "--now", now,
    ])
    #expect(r.status == 0, "\(r.stderr)")
    #expect(
      r.stdout.hasPrefix(
        "unmerged \(absorbed) from \(mayaID) (user_id:100115 and \(Self.visitorA) no longer link them)"))
    // Maya keeps her id, her CRM row and the identify event (its strongest identifier is hers); visitor A gets
    // the absorbed id back with the page views it made before identifying, which now make it a browser.
    let after = try await CLI.tessera(["profile", "user_id:100115", "--store", store])
    #expect(after.stdout.hasPrefix("profile \(mayaID)\n"))
    #expect(!after.stdout.contains("anonymous_id "))
    let visitor = try await CLI.tessera(["profile", Self.visitorA, "--store", store])
    #expect(visitor.stdout.hasPrefix("profile \(absorbed)\n"), "\(visitor.stdout)")
    #expect(visitor.stdout.contains("pages_30d          3"))
    #expect(visitor.stdout.contains("browsers"))
    // The same files again: the separated link does not re-form.
    let again = try await CLI.tessera(["run", "pipelines/retail.yaml", "--store", store, "--now", now])
    #expect(CLIEndToEndTests.table(again.stdout)["merges"] == "0")
    #expect(CLIEndToEndTests.table(again.stdout)["profiles in store"] == "35")
    // New evidence (visitor A's device identifies with Maya's email): they merge again.
    let pipeline = try String(contentsOfFile: E2E.packageRoot + "/pipelines/retail.yaml", encoding: .utf8)
      .replacingOccurrences(of: "../", with: E2E.packageRoot + "/")
      .replacingOccurrences(of: E2E.packageRoot + "/examples/web_events.ndjson", with: dir.file("new.ndjson"))
    let copy = try dir.write("retail.yaml", pipeline)
    _ = try dir.write(
      "new.ndjson",
      #"{"type": "identify", "messageId": "new-1", "anonymousId": "c1f0319c-6f5c-5feb-a568-a86ef8df58e0", "traits": {"email": "maya.patel@example.com"}, "timestamp": "2026-06-20T10:00:00Z"}"#
        + "\n")
    let evidence = try await CLI.tessera(["run", copy, "--store", store, "--now", now])
    #expect(evidence.status == 0, "\(evidence.stderr)")
    #expect(CLIEndToEndTests.table(evidence.stdout)["merges"] == "1")
    let joined = try await CLI.tessera(["profile", Self.visitorA, "--store", store])
    #expect(joined.stdout.hasPrefix("profile \(mayaID) (absorbed: \(absorbed))"))
  }
}

/// `tessera delete`: a person erased from every table (and from the file's bytes), and kept out afterwards.
@Suite(
  "End to end: delete",
  .enabled(if: E2E.CLI.binary != nil, "no built `tessera`; run `swift build --build-tests` first"))
struct DeleteCLITests {
  typealias CLI = E2E.CLI

  @Test("deleting Ada leaves no trace of her email, phone, name or ids in the store file; her events are refused later")
  func delete() async throws {
    let dir = try E2E.TempDir()
    defer { dir.remove() }
    let store = dir.file("d.sqlite")
    let now = DryRunCLITests.now
    #expect(try await CLI.tessera(["run", "pipelines/retail.yaml", "--store", store, "--now", now]).status == 0)
    let traces = ["ada.whitfield@example.com", "Whitfield", "100101", "+12065550101"]
    func found() -> [String] {
      let bytes = ["", "-wal"].compactMap { FileManager.default.contents(atPath: store + $0) }
      return traces.filter { t in bytes.contains { $0.range(of: Data(t.utf8)) != nil } }
    }
    #expect(found() == traces, "the run should have stored every trace")
    let r = try await CLI.tessera(["delete", "email:Ada.Whitfield@example.com", "--store", store])
    #expect(r.status == 0, "\(r.stderr)")
    #expect(r.stdout.contains("  events            9"))
    #expect(r.stdout.contains("identifiers suppressed (hashes only)"))
    #expect(found().isEmpty, "left in the store file: \(found())")
    let lookup = try await CLI.tessera(["profile", "user_id:100101", "--store", store])
    #expect(lookup.status != 0)
    // Running the same files again: her records are dropped at the door and counted; nobody else changes.
    let again = try await CLI.tessera(["run", "pipelines/retail.yaml", "--store", store, "--now", now])
    let rows = CLIEndToEndTests.table(again.stdout)
    #expect(rows["suppressed (deleted people)"] == "9")
    #expect(rows["profiles in store"] == "33")
    #expect(found().isEmpty)
    let segments = try await CLI.tessera(["segments", "members", "high_value", "--store", store, "--format", "csv"])
    #expect(segments.stdout.split(separator: "\n").count == 5, "\(segments.stdout)")
  }
}
