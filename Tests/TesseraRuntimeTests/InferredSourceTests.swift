import Foundation
import TesseraCompiler
import TesseraLanguage
import TesseraModel
import TesseraRuntime
import TesseraStore
import Testing

/// `tessera source infer` (`SourceInference`) on the example files: the declarations it writes compile with
/// the example pipeline and, run over the same files, give the same profiles as the hand-written sources of
/// `pipelines/retail.yaml`.
@Suite("Inferred sources against the hand-written ones")
struct InferredSourceTests {
  static let pipelines = E2E.packageRoot + "/pipelines"

  /// `retail.yaml`'s text without the named sources' blocks.
  static func retailWithout(_ names: Set<String>) throws -> String {
    let text = try String(contentsOfFile: E2E.retailPipeline, encoding: .utf8)
    var out: [Substring] = []
    var skipping = false
    for line in text.split(separator: "\n", omittingEmptySubsequences: false) {
      // A source starts at two spaces of indentation; anything less indented ends it.
      if line.hasPrefix("  "), !line.hasPrefix("   "), let name = line.dropFirst(2).split(separator: ":").first {
        skipping = names.contains(String(name))
      } else if let first = line.first, first != " " {
        skipping = false
      }
      if !skipping { out.append(line) }
    }
    return out.joined(separator: "\n")
  }

  /// The inferred declarations of `files` (source name → file), compiled into `retail.yaml` in place of the
  /// hand-written sources of the same names.
  static func inferredPlan(_ files: [String: String]) throws -> (plan: PipelinePlan, yaml: [String: String]) {
    let retail = try E2E.compile(E2E.retailPipeline)
    var yaml: [String: String] = [:]
    for (name, file) in files {
      var inference = SourceInference(files: [file], name: name, pipeline: retail.config)
      inference.declaringFolder = pipelines
      yaml[name] = try inference.infer().yaml()
    }
    let replaced = try retailWithout(Set(files.keys))
    let root = E2E.retailPipeline
    var compiler = Compiler(
      environment: [:],
      readFile: { path in path == root ? replaced : try? String(contentsOfFile: path, encoding: .utf8) })
    compiler.extraFiles = yaml.map { SourceFile(path: pipelines + "/" + $0.key + ".yaml", text: $0.value) }
    let result = compiler.compile(pipeline: root)
    let plan = try #require(result.plan, "the inferred sources do not compile:\n\(result.rendered())")
    let added = result.diagnostics.filter { $0.location.file.hasPrefix(pipelines + "/") && $0.location.file != root }
    #expect(added.isEmpty, "diagnostics of the inferred files:\n\(added.map(\.description).joined(separator: "\n"))")
    return (plan, yaml)
  }

  @Test("the example CSV and NDJSON files, inferred, give the profiles of the hand-written sources")
  func sameProfiles() async throws {
    let (inferred, yaml) = try Self.inferredPlan([
      "crm": E2E.examples + "/crm_contacts.csv", "pos": E2E.examples + "/pos_orders.ndjson",
      "web_history": E2E.examples + "/web_events.ndjson",
    ])
    #expect(yaml["crm"]?.contains("      traits.date_of_birth: birth_date ") == true, "\(yaml["crm"] ?? "")")
    #expect(yaml["pos"]?.contains("      user_id: customer.loyalty_no ") == true, "\(yaml["pos"] ?? "")")
    let handWritten = try E2E.compile(E2E.retailPipeline)
    // Profiles compared by their identifiers and the traits the pipeline declares (the inferred sources add
    // traits of their own, e.g. `order_total`, and the CRM's consent mapping is an operator's edit).
    let declared = Set(handWritten.config.traits.map(\.name))
    let a = MemoryStore()
    let b = MemoryStore()
    let ran = try await E2E.run(handWritten, a)
    let guessed = try await E2E.run(inferred, b)
    let expected = try await E2E.canonical(a, keeping: declared.contains)
    #expect(expected.count == 34)
    E2E.expectSameCanonical(
      expected, try await E2E.canonical(b, keeping: declared.contains), "hand-written vs inferred")
    // The same records are dropped: the malformed POS line and Julia (no timestamp) and Kenji (`n/a`) of the
    // CRM; the inferred POS source does not require `order.total`, so line 26 is kept.
    #expect(ran.rejected.map { "\($0.source):\($0.line ?? 0)" }.sorted() == ["crm:11", "crm:12", "pos:25", "pos:26"])
    #expect(guessed.rejected.map { "\($0.source):\($0.line ?? 0)" }.sorted() == ["crm:11", "crm:12", "pos:25"])
  }

  @Test("the newsletter export, inferred: the email is an identifier, the declared trait is used, it compiles")
  func newsletter() throws {
    let (plan, yaml) = try Self.inferredPlan(["newsletter": E2E.examples + "/newsletter.csv"])
    let text = try #require(yaml["newsletter"])
    #expect(text.contains("    path: ../examples/newsletter.csv "))
    #expect(text.contains("    timestamp: signed_up_at "))
    #expect(text.contains("      email: email "))
    #expect(text.contains("3 of 4 values normalize as emails (line 4: `bad-email` does not)"))
    #expect(text.contains("      traits.first_name: first_name "))
    #expect(text.contains("# the pipeline declares trait `first_name` (string)"))
    #expect(text.contains("      traits.source: source "))
    let source = try #require(plan.config.source("newsletter"))
    #expect(source.identifierKinds == ["email"])
    #expect(source.traitNames == ["first_name", "source"])
    #expect(source.timestamp?.text == "signed_up_at")
  }
}
