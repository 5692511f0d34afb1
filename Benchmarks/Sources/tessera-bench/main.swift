import Foundation
import Synchronization
import TesseraCompiler
import TesseraLanguage
import TesseraModel
import TesseraRuntime

// tessera-bench: measured figures for docs/BENCHMARKS.md. Each benchmark prints one line per figure.
// Usage: tessera-bench [compile|expr|all]

func peakRSSMiB() -> Double {
  var usage = rusage()
  getrusage(RUSAGE_SELF.rawValue, &usage)
  return Double(usage.ru_maxrss) / 1024  // Linux reports KiB
}

func measure(_ runs: Int, _ body: () -> Void) -> [Double] {
  var times: [Double] = []
  let clock = ContinuousClock()
  for _ in 0..<runs {
    let d = clock.measure(body)
    times.append(Double(d.components.seconds) * 1000 + Double(d.components.attoseconds) / 1e15)
  }
  return times.sorted()
}

/// A generated pipeline: `sources` CSV sources, `computed` computed traits and `segments` segments, written
/// across a pipeline file and two rule files as an operator would.
func generatedPipeline(sources: Int, computed: Int, segments: Int) -> [String: String] {
  var pipeline = "pipeline: generated\ninclude: [rules/profile.yaml, rules/segments.yaml]\nsources:\n"
  for i in 0..<sources {
    pipeline += """
        src_\(i):
          kind: csv
          path: data/src_\(i).csv
          timestamp: timestamp(updated_at)
          schema: { required: [id, updated_at], types: { amount: double } }
          map:
            user_id: id
            email: lower(trim(mail))
            phone: phone
            traits.t\(i % 40): trim(value_\(i))
            traits.amount_\(i % 10): amount

      """
  }
  pipeline += """
    identifiers:
      user_id: { normalize: trim, max_per_profile: 1, priority: 1 }
      email: { normalize: email, max_per_profile: 5, priority: 2 }
      phone: { normalize: phone_e164, default_region: US, priority: 3 }
    deterministic:
      ids: { link_on: [user_id, email, phone] }

    """
  var profile = "profile:\n  default_policy: most_recent\n  traits:\n"
  for i in 0..<40 { profile += "    t\(i): { type: string, policy: most_recent }\n" }
  for i in 0..<10 { profile += "    amount_\(i): { type: double, policy: max }\n" }
  profile += "computed:\n"
  let aggs = ["count", "sum", "max", "min", "avg", "distinct_count", "last"]
  for i in 0..<computed {
    let agg = aggs[i % aggs.count]
    profile += "  c\(i):\n    aggregate: \(agg)\n"
    if agg != "count" { profile += "    of: double(properties.value_\(i % 17))\n" }
    profile += "    where: event == \"Event \(i % 23)\" && properties.channel in [\"web\", \"app\"]\n"
    if i % 3 == 0 { profile += "    window: \(30 + i % 60)d\n" }
  }
  var segs = "segments:\n"
  for i in 0..<segments {
    let c = i % computed
    let t = i % 40
    segs += "  s\(i):\n    description: generated segment \(i)\n"
    segs +=
      "    when: traits.c\(c) > \(i % 9) && (lower(traits.t\(t)) == \"v\(i % 5)\" || traits.amount_\(i % 10) >= \(i).5)"
    if i > 0 && i % 10 == 0 { segs += " && !segments.s\(i - 1)" }
    segs += "\n"
  }
  return ["gen/pipeline.yaml": pipeline, "gen/rules/profile.yaml": profile, "gen/rules/segments.yaml": segs]
}

func benchCompile() {
  let files = generatedPipeline(sources: 50, computed: 200, segments: 1000)
  let bytes = files.values.reduce(0) { $0 + $1.utf8.count }
  let lines = files.values.reduce(0) { $0 + $1.split(separator: "\n").count }
  let compiler = Compiler(environment: [:], readFile: { files[$0] })
  let check = compiler.compile(pipeline: "gen/pipeline.yaml")
  let errors = check.diagnostics.filter { $0.severity == .error }
  guard errors.isEmpty, let plan = check.plan else {
    print(check.rendered().prefix(2000))
    fatalError("generated pipeline does not compile")
  }
  precondition(
    plan.config.segments.count == 1000 && plan.config.computed.count == 200 && plan.config.sources.count == 50)
  let sources = files.map { SourceFile(path: $0.key, text: $0.value) }
  let yamlTimes = measure(20) { for f in sources { _ = YAMLReader.read(f) } }
  print(String(format: "compile: of which reading the YAML: median %.1f ms", yamlTimes[yamlTimes.count / 2]))
  let times = measure(20) { _ = compiler.compile(pipeline: "gen/pipeline.yaml") }
  print(
    String(
      format:
        "compile: 50 sources, 200 computed traits, 1000 segments (%d lines, %d KiB): median %.1f ms, min %.1f ms, max %.1f ms over 20 runs",
      lines, bytes / 1024, times[times.count / 2], times[0], times[times.count - 1]))
}

func benchExpr() {
  let traits: [(String, ExprType)] = [
    ("lifetime_value", .double), ("orders_90d", .int), ("city", .string), ("marketing_opt_in", .bool),
  ]
  let scope = Scopes.profile(place: "a segment condition", traits: traits, identifiers: ["email"], segments: ["vip"])
  let cases = [
    "traits.lifetime_value > 500 && traits.orders_90d >= 2",
    "traits.lifetime_value > 500 && traits.orders_90d >= 2 && traits.city in [\"Berlin\", \"Paris\", \"London\"]",
    "lower(traits.city) == \"berlin\" || (traits.marketing_opt_in && exists(identifiers.email))",
  ]
  // Slots: profile.id, 4 traits, identifiers.email, segments.vip.
  var envs: [Env] = []
  for i in 0..<64 {
    let email: Value = i % 5 == 0 ? .null : .string("a\(i)@example.com")
    let city: Value = .string(i % 2 == 0 ? "Berlin" : "Oslo")
    let slots: [Value] = [
      .string("p\(i)"), .double(Double(i * 20)), .int(Int64(i % 4)), city, .bool(i % 3 == 0), email, .bool(false),
    ]
    envs.append(Env(slots: slots))
  }
  for text in cases {
    let (compiled, errors) = ExprCompiler.compile(text, in: scope, expecting: .bool)
    guard let expr = compiled else { fatalError("\(text): \(errors)") }
    let n = 20_000_000
    var trues = 0
    let clock = ContinuousClock()
    let d = clock.measure {
      for i in 0..<n where expr.evaluate(envs[i & 63]).isTrue { trues += 1 }
    }
    let secs = Double(d.components.seconds) + Double(d.components.attoseconds) / 1e18
    print(
      String(
        format: "expr: %@ — %.1f M evaluations/s on one core (%.1f ns each; %d true)", text, Double(n) / secs / 1e6,
        secs / Double(n) * 1e9, trues))
  }
}

let args = Array(CommandLine.arguments.dropFirst())
let what = args.first ?? "all"
func option(_ name: String, _ fallback: Int) -> Int {
  guard let i = args.firstIndex(of: name), i + 1 < args.count, let v = Int(args[i + 1]) else { return fallback }
  return v
}
print("machine: \(ProcessInfo.processInfo.activeProcessorCount) cores")
if what == "compile" || what == "all" { benchCompile() }
if what == "expr" || what == "all" { benchExpr() }
if what == "tick" { TickBench.run(profiles: option("--profiles", 1_000_000)) }
if what == "stages" { try await StageBench.run(events: option("--events", 200_000)) }
if ["sqlite", "memory", "parse"].contains(what.split(separator: "-").first ?? "") {
  // tessera-bench sqlite|memory|parse[-retail][-seg] [--events N] [--workers W] [--commit-events N]
  try await PipelineBench.run(
    mode: what, events: option("--events", 1_000_000),
    workers: option("--workers", ProcessInfo.processInfo.activeProcessorCount),
    commitEvents: option("--commit-events", PipelineRunner.defaultCommitEvents))
}
if what == "compare-pg" {
  // tessera-bench compare-pg [--events N] [--workers W] [--pg-url postgres://…] [--commit-events N]: SQLite, then
  // PostgreSQL (with N events per transaction).
  let url = args.firstIndex(of: "--pg-url").flatMap { $0 + 1 < args.count ? args[$0 + 1] : nil }
  try await PostgresBench.run(
    events: option("--events", 1_000_000), workers: option("--workers", ProcessInfo.processInfo.activeProcessorCount),
    url: url, commitEvents: option("--commit-events", PipelineRunner.defaultCommitEvents))
}
if what == "pipeline", args.count > 1 {
  // tessera-bench pipeline FILE [--workers W] [--memory]: every file source of a pipeline into a fresh store.
  try await PipelineBench.runFile(
    args[1], workers: option("--workers", ProcessInfo.processInfo.activeProcessorCount),
    memory: args.contains("--memory"))
}
if what == "console" {
  // tessera-bench console [--events N] [--heavy N] [--requests N] [--rebuild] [--tessera PATH]: the console's
  // server time per page on a store of N generated events plus one person with `heavy` events.
  var o = ConsoleBench.Options()
  o.events = option("--events", o.events)
  o.heavy = option("--heavy", o.heavy)
  o.requests = option("--requests", o.requests)
  o.rebuild = args.contains("--rebuild")
  if let i = args.firstIndex(of: "--tessera"), i + 1 < args.count { o.binary = args[i + 1] }
  if let i = args.firstIndex(of: "--serve-store"), i + 1 < args.count { o.serveStore = args[i + 1] }

  try await ConsoleBench.run(o)
}
print(String(format: "peak RSS: %.0f MiB", peakRSSMiB()))
