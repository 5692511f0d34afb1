import TesseraLanguage

/// What flows along an edge of the plan. The runtime's stages take and give exactly these (in batches).
public enum PlanData: String, Sendable, Hashable, CaseIterable {
  /// Records as a source read them (a file's lines, a request's messages), not yet parsed.
  case rawRecord = "RawRecord"
  /// Events parsed, mapped, validated against the schema, their identifiers normalized.
  case mappedEvent = "MappedEvent"
  /// Records a source could not turn into events, with the reason.
  case rejectedRecord = "RejectedRecord"
  /// Events with the profile identity resolution gave them, and the identity graph's changes.
  case resolvedEvent = "ResolvedEvent"
  /// What changed on profiles: trait and computed-trait rows, segment changes, outbox rows.
  case profileChange = "ProfileChange"
  /// Outbox rows on their way to a destination.
  case delivery = "Delivery"
}

public enum StageKind: String, Sendable, Hashable {
  case source, decode, resolve, profile, commit, destination
}

/// How many tasks run a stage.
public enum Parallelism: Sendable, Hashable, CustomStringConvertible {
  /// One task.
  case single
  /// One task, the pipeline's only writer of its state, taking its input in order.
  case singleWriter
  /// `--workers` tasks sharing the input.
  case workers
  /// `--workers` tasks, each owning the profiles whose id falls in it.
  case partitions
  /// The task of each HTTP request.
  case perRequest
  /// A fixed number of tasks (a destination's `concurrency`).
  case tasks(Int)

  public var description: String {
    switch self {
    case .single: "1 task"
    case .singleWriter: "single writer"
    case .workers: "N workers"
    case .partitions: "N partitions"
    case .perRequest: "per request"
    case .tasks(let n): n == 1 ? "1 task" : "\(n) tasks"
    }
  }
}

public struct PlanStage: Sendable, Hashable {
  public var id: String
  public var kind: StageKind
  public var label: String
  /// What the stage accepts and what it emits; edges must carry one of them.
  public var inputs: [PlanData]
  public var outputs: [PlanData]
  public var parallelism: Parallelism
}

public struct PlanEdge: Sendable, Hashable {
  public var from: String
  public var to: String
  public var carries: PlanData
}

/// The compiled pipeline: its checked configuration and the typed graph of stages the runtime executes.
///
/// `StageGraph` (TesseraRuntime) builds its task group from exactly these stages and edges: a task (or N) per
/// stage, a bounded channel per edge. File sources are read one after another, in declaration order; an
/// `http` source's records arrive with the requests of `tessera serve` and are decoded on each request's task.
/// Destination stages run where outbox rows are delivered (`tessera serve`, `tessera deliver`,
/// `tessera run --deliver`).
public struct PipelinePlan: Sendable {
  public let config: PipelineConfig
  public let stages: [PlanStage]
  public let edges: [PlanEdge]

  init(config: PipelineConfig) {
    self.config = config
    var stages: [PlanStage] = []
    var edges: [PlanEdge] = []
    func add(
      _ id: String, _ kind: StageKind, _ label: String, _ inputs: [PlanData], _ outputs: [PlanData], _ p: Parallelism
    ) {
      stages.append(PlanStage(id: id, kind: kind, label: label, inputs: inputs, outputs: outputs, parallelism: p))
    }
    for s in config.sources {
      let http = s.kind == .http
      add("source_\(s.name)", .source, "\(s.name) (\(s.kind.rawValue))", [], [.rawRecord], http ? .perRequest : .single)
      add(
        "decode_\(s.name)", .decode, "decode & map \(s.name)", [.rawRecord], [.mappedEvent, .rejectedRecord],
        http ? .perRequest : .workers)
      edges.append(PlanEdge(from: "source_\(s.name)", to: "decode_\(s.name)", carries: .rawRecord))
    }
    let rules = (config.deterministic.map(\.name) + config.probabilistic.map(\.name)).joined(separator: ", ")
    add(
      "resolve", .resolve, "resolve identity" + (rules.isEmpty ? "" : " [\(rules)]"), [.mappedEvent], [.resolvedEvent],
      .singleWriter)
    var steps = ["unify (\(config.traits.count) traits)"]
    if !config.computed.isEmpty { steps.append("computed traits (\(config.computed.count))") }
    if !config.segments.isEmpty { steps.append("segments (\(config.segments.count))") }
    if !config.destinations.isEmpty {
      steps.append("route (\(config.destinations.count) destination\(config.destinations.count == 1 ? "" : "s"))")
    }
    add(
      "profile", .profile, "profile: " + steps.joined(separator: " · "), [.resolvedEvent], [.profileChange], .partitions
    )
    add(
      "commit", .commit, "commit (one transaction per group)", [.resolvedEvent, .profileChange, .rejectedRecord],
      config.destinations.isEmpty ? [] : [.delivery], .single)
    for s in config.sources {
      edges.append(PlanEdge(from: "decode_\(s.name)", to: "resolve", carries: .mappedEvent))
    }
    for s in config.sources {
      edges.append(PlanEdge(from: "decode_\(s.name)", to: "commit", carries: .rejectedRecord))
    }
    edges.append(PlanEdge(from: "resolve", to: "profile", carries: .resolvedEvent))
    edges.append(PlanEdge(from: "resolve", to: "commit", carries: .resolvedEvent))
    edges.append(PlanEdge(from: "profile", to: "commit", carries: .profileChange))
    for d in config.destinations {
      let trigger = d.trigger.rawValue + (d.segments.isEmpty ? "" : ": " + d.segments.joined(separator: ", "))
      add(
        "destination_\(d.name)", .destination, "\(d.name) (\(d.kind.rawValue), \(trigger))", [.delivery], [],
        .tasks(d.kind == .webhook ? d.concurrency : 1))
      edges.append(PlanEdge(from: "commit", to: "destination_\(d.name)", carries: .delivery))
    }
    self.stages = stages
    self.edges = edges
  }

  /// Edges whose ends disagree on the data type; empty for every plan the compiler builds.
  public var mistypedEdges: [PlanEdge] {
    edges.filter { e in
      guard let from = stages.first(where: { $0.id == e.from }), let to = stages.first(where: { $0.id == e.to }) else {
        return true
      }
      return !from.outputs.contains(e.carries) || !to.inputs.contains(e.carries)
    }
  }

  public enum GraphFormat: String, Sendable, CaseIterable { case mermaid, dot }

  /// The plan as a Mermaid flowchart or a Graphviz digraph.
  public func graph(_ format: GraphFormat) -> String {
    func esc(_ s: String) -> String { s.replacingOccurrences(of: "\"", with: "'") }
    switch format {
    case .mermaid:
      var out = "flowchart LR\n"
      for s in stages {
        let text = esc(s.label) + "<br/><i>\(s.parallelism)</i>"
        switch s.kind {
        case .source: out += "  \(s.id)[(\"\(text)\")]\n"
        case .destination: out += "  \(s.id)[/\"\(text)\"/]\n"
        default: out += "  \(s.id)[\"\(text)\"]\n"
        }
      }
      for e in edges { out += "  \(e.from) -->|\(e.carries.rawValue)| \(e.to)\n" }
      return out
    case .dot:
      var out = "digraph \"\(esc(config.name))\" {\n  rankdir=LR;\n  node [shape=box, fontname=\"Helvetica\"];\n"
      for s in stages {
        let shape =
          switch s.kind {
          case .source: "cylinder"
          case .destination: "parallelogram"
          default: "box"
          }
        out += "  \(s.id) [label=\"\(esc(s.label))\\n\(s.parallelism)\", shape=\(shape)];\n"
      }
      for e in edges { out += "  \(e.from) -> \(e.to) [label=\"\(e.carries.rawValue)\"];\n" }
      return out + "}\n"
    }
  }
}
