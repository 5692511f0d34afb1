import Foundation
import TesseraCompiler
import TesseraLanguage
import Testing

@Suite("The example retail pipeline")
struct ExamplePipelineTests {
  static func compile() throws -> (CompileResult, PipelinePlan) {
    let result = Compiler(environment: [:]).compile(pipeline: TestPaths.retailPipeline)
    let plan = try #require(result.plan, "\(result.rendered())")
    return (result, plan)
  }

  @Test("compiles without any diagnostic")
  func compilesCleanly() throws {
    let (result, _) = try Self.compile()
    #expect(result.diagnostics.isEmpty, "\(result.rendered())")
    #expect(!result.hasErrors)
    #expect(result.sources.count == 5)
  }

  @Test("declares what the summary reports")
  func summaryNumbers() throws {
    let (_, plan) = try Self.compile()
    let c = plan.config
    #expect(c.name == "retail")
    #expect(c.files.count == 5)
    #expect(c.measurement.reportNames == ["browse_to_buy", "purchases", "campaigns"])
    #expect(c.measurement.touchpoints.map(\.name) == ["web_visit"])
    #expect(c.sources.map(\.name) == ["web", "crm", "pos", "web_history"])
    #expect(c.sources.map(\.kind) == [.http, .csv, .ndjson, .ndjson])
    #expect(c.identifiers.map(\.name) == ["user_id", "email", "phone", "anonymous_id"])
    #expect(c.deterministic.count + c.probabilistic.count == 2)
    #expect(c.deterministic.first?.linkOn == ["user_id", "email", "phone", "anonymous_id"])
    #expect(c.traits.count == 8)
    #expect(c.computed.count == 5)
    #expect(c.segments.map(\.name) == ["high_value", "lapsed", "browsers", "vip_newsletter"])
    #expect(c.segments.first { $0.name == "vip_newsletter" }?.dependsOn == ["high_value"])
    #expect(c.destinations.map(\.name) == ["ads_audience", "profile_export"])
    #expect(c.destinations.first?.segments == ["high_value", "lapsed"])
    #expect(c.destinations.first?.consent == "advertising")
    let person = try #require(c.probabilistic.first)
    #expect(person.merge == 0.99)
    #expect(person.review == 0.9)
    #expect(person.maxClusterSize == 20)
    #expect(person.comparisons.map(\.trait) == ["first_name", "last_name", "date_of_birth", "postcode"])
    #expect(person.comparisons[2].levels.map(\.level) == [.exact, .transposedDayMonth, .within(1, .years)])
  }

  @Test("the plan has the expected stages")
  func stages() throws {
    let (_, plan) = try Self.compile()
    #expect(
      plan.stages.map(\.id) == [
        "source_web", "decode_web", "source_crm", "decode_crm", "source_pos", "decode_pos", "source_web_history",
        "decode_web_history", "resolve", "profile", "commit", "destination_ads_audience",
        "destination_profile_export",
      ])
    let kinds = Dictionary(plan.stages.map { ($0.id, $0.kind) }, uniquingKeysWith: { a, _ in a })
    #expect(kinds["source_crm"] == .source)
    #expect(kinds["commit"] == .commit)
    #expect(kinds["destination_profile_export"] == .destination)
    let resolve = try #require(plan.stages.first { $0.id == "resolve" })
    #expect(resolve.label == "resolve identity [strong_ids, person]")
    #expect(resolve.parallelism == .singleWriter)
    let profile = try #require(plan.stages.first { $0.id == "profile" })
    #expect(
      profile.label
        == "profile: unify (8 traits) · computed traits (5) · segments (4) · route (2 destinations)")
    #expect(profile.parallelism == .partitions)
    #expect(plan.stages.first { $0.id == "decode_web" }?.parallelism == .perRequest)
    #expect(plan.stages.first { $0.id == "decode_crm" }?.parallelism == .workers)
    #expect(plan.stages.first { $0.id == "destination_ads_audience" }?.parallelism == .tasks(4))
  }

  @Test("the plan has the expected typed edges")
  func edges() throws {
    let (_, plan) = try Self.compile()
    #expect(plan.mistypedEdges.isEmpty)
    let edges = plan.edges.map { "\($0.from) -[\($0.carries.rawValue)]-> \($0.to)" }
    #expect(
      edges == [
        "source_web -[RawRecord]-> decode_web",
        "source_crm -[RawRecord]-> decode_crm",
        "source_pos -[RawRecord]-> decode_pos",
        "source_web_history -[RawRecord]-> decode_web_history",
        "decode_web -[MappedEvent]-> resolve",
        "decode_crm -[MappedEvent]-> resolve",
        "decode_pos -[MappedEvent]-> resolve",
        "decode_web_history -[MappedEvent]-> resolve",
        "decode_web -[RejectedRecord]-> commit",
        "decode_crm -[RejectedRecord]-> commit",
        "decode_pos -[RejectedRecord]-> commit",
        "decode_web_history -[RejectedRecord]-> commit",
        "resolve -[ResolvedEvent]-> profile",
        "resolve -[ResolvedEvent]-> commit",
        "profile -[ProfileChange]-> commit",
        "commit -[Delivery]-> destination_ads_audience",
        "commit -[Delivery]-> destination_profile_export",
      ])
    // Every edge joins two stages that exist.
    let ids = Set(plan.stages.map(\.id))
    for e in plan.edges { #expect(ids.contains(e.from) && ids.contains(e.to), "\(e)") }
  }

  @Test("Mermaid output names every stage and labels the edges")
  func mermaid() throws {
    let (_, plan) = try Self.compile()
    let text = plan.graph(.mermaid)
    #expect(text.hasPrefix("flowchart LR\n"))
    #expect(text.contains(#"source_web[("web (http)<br/><i>per request</i>")]"#))
    #expect(text.contains(#"resolve["resolve identity [strong_ids, person]<br/><i>single writer</i>"]"#))
    #expect(text.contains(#"decode_crm["decode & map crm<br/><i>N workers</i>"]"#))
    #expect(
      text.contains(
        #"destination_ads_audience[/"ads_audience (webhook, segment_changes: high_value, lapsed)<br/><i>4 tasks</i>"/]"#
      ))
    #expect(text.contains("  decode_pos -->|RejectedRecord| commit\n"))
    #expect(text.contains("  profile -->|ProfileChange| commit\n"))
    #expect(text.contains("  commit -->|Delivery| destination_profile_export\n"))
    for s in plan.stages { #expect(text.contains("  \(s.id)"), "\(s.id)") }
    #expect(text.components(separatedBy: "-->").count - 1 == plan.edges.count)
  }

  @Test("DOT output names every stage and labels the edges")
  func dot() throws {
    let (_, plan) = try Self.compile()
    let text = plan.graph(.dot)
    #expect(text.hasPrefix("digraph \"retail\" {\n  rankdir=LR;\n"))
    #expect(text.hasSuffix("}\n"))
    #expect(text.contains(#"source_pos [label="pos (ndjson)\n1 task", shape=cylinder];"#))
    #expect(
      text.contains(
        #"profile [label="profile: unify (8 traits) · computed traits (5) · segments (4) · route (2 destinations)\nN partitions", shape=box];"#
      ))
    #expect(
      text.contains(
        #"destination_profile_export [label="profile_export (file, profile_changes)\n1 task", shape=parallelogram];"#))
    #expect(text.contains(#"decode_crm -> resolve [label="MappedEvent"];"#))
    #expect(text.contains(#"resolve -> profile [label="ResolvedEvent"];"#))
    #expect(text.contains(#"commit -> destination_ads_audience [label="Delivery"];"#))
    #expect(text.components(separatedBy: " -> ").count - 1 == plan.edges.count)
  }

  @Test("a pipeline without computed traits, segments or destinations has a shorter plan")
  func minimalPlan() throws {
    let result = compileInMemory([
      "p.yaml": """
      pipeline: small
      sources:
        app: { kind: http, write_key: k }
      identifiers:
        user_id: {}
      """
    ])
    let plan = try #require(result.plan, "\(result.rendered())")
    #expect(result.diagnostics.isEmpty)
    #expect(plan.stages.map(\.id) == ["source_app", "decode_app", "resolve", "profile", "commit"])
    #expect(plan.mistypedEdges.isEmpty)
    #expect(plan.stages.first { $0.id == "profile" }?.label == "profile: unify (0 traits)")
    #expect(plan.edges.last.map { "\($0.from)->\($0.to):\($0.carries)" } == "profile->commit:profileChange")
  }
}
