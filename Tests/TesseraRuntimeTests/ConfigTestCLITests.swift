import Foundation
import Testing

/// `tessera test`: the example pipeline's cases pass; wrong expectations fail with what was expected and what
/// the run gave; mistakes in a case are reported with file:line:column and the case is not run.
@Suite(
  "End to end: configuration tests",
  .enabled(if: E2E.CLI.binary != nil, "no built `tessera`; run `swift build --build-tests` first"))
struct ConfigTestCLITests {
  typealias CLI = E2E.CLI

  @Test("the cases shipped with the example pipeline pass")
  func examplesPass() async throws {
    let r = try await CLI.tessera(["test", "pipelines"])
    #expect(r.status == 0, "\(r.stdout)\(r.stderr)")
    #expect(r.stdout.contains("  PASS guest_order_joins_customer_by_name_and_postcode"))
    #expect(r.stdout.contains("  PASS a_stricter_threshold_leaves_it_for_review"))
    #expect(r.stdout.contains("  PASS no_consent_no_advertising"))
    #expect(r.stdout.contains("  PASS an_email_visit_on_the_laptop_gets_the_store_purchase"))
    #expect(r.stdout.hasSuffix("7 passed, 0 failed\n"), "\(r.stdout)")
  }

  @Test("wrong expectations fail with a diff; a case with mistakes is reported, not run")
  func failures() async throws {
    let dir = try E2E.TempDir()
    defer { dir.remove() }
    let pipeline = try String(contentsOfFile: E2E.packageRoot + "/pipelines/retail.yaml", encoding: .utf8)
      .replacingOccurrences(of: "../", with: E2E.packageRoot + "/")
    let path = try dir.write("retail.yaml", pipeline)
    let tests = try dir.write(
      "retail_test.yaml",
      """
      tests:
        wrong:
          now: 2026-06-30T00:00:00Z
          records:
            crm:
              - { customer_no: "100112", email_address: k@example.com, first_name: Katherine, last_name: Lindqvist,
                  postcode: "98107", updated_at: "2026-02-11T09:00:00Z" }
            pos:
              - { order: { id: ORD-T-1, completed_at: "2026-05-30T15:05:00-07:00", total: 66.2 },
                  customer: { first_name: Kathrine, last_name: Lindqvist }, store: { postcode: "98107" } }
          expect:
            - apart: [user_id:100112, pos#1]
            - trait: { profile: user_id:100112, name: first_name, equals: Kate }
            - segment: { profile: user_id:100112, name: high_value }
            - rejected: { reason_contains: nothing }
            - match: { record: pos#1, status: review }
            - report: { name: purchases, figures: { conversions: 1, credit.first_touch.email: 1 } }
        typo:
          records: { crm: [{ customer_no: "1", updated_at: "2026-01-01T00:00:00Z" }] }
          expect:
            - sme_profile: [user_id:1, user_id:2]
            - report: { name: purchase, figures: { conversions: 1 } }

      """)
    let r = try await CLI.tessera(["test", path])
    #expect(r.status == 1)
    let out = r.stdout
    #expect(out.contains("\(tests):21:9: error: unknown expectation `sme_profile`; did you mean `same_profile`?"))
    #expect(out.contains("\(tests):22:"))
    #expect(out.contains("error: unknown report `purchase`; did you mean `purchases`?"))
    #expect(out.contains("  FAIL wrong"))
    #expect(out.contains("\(tests):12:9: expected different profiles; got user_id:100112 → prf_1, pos#1 → prf_1"))
    #expect(
      out.contains(
        "\(tests):13:9: user_id:100112 first_name\n           expected: Kate\n           actual:   Katherine"))
    #expect(out.contains("\(tests):14:9: expected user_id:100112 in `high_value`; its segments: none"))
    #expect(out.contains("\(tests):15:9: no record rejected with a reason containing \"nothing\"; rejected: none"))
    #expect(out.contains("\(tests):16:9: expected pos#1 to be `review` by a probabilistic rule; got joined"))
    // The store purchase is a conversion, but no touch precedes it: email gets no credit.
    #expect(out.contains("\(tests):17:9: report `purchases` by people, credit.first_touch.email"))
    #expect(!out.contains("by people, conversions"))
    #expect(!out.contains("PASS typo") && !out.contains("FAIL typo"))
    #expect(out.hasSuffix("0 passed, 1 failed\n"), "\(out)")
  }
}
