import TesseraLanguage

/// What flows along an edge of the plan. The runtime's stages take and give exactly these.
public enum PlanData: String, Sendable, Hashable {
  case rawRecord = "RawRecord"
  case mappedEvent = "MappedEvent"
  case validEvent = "ValidEvent"
  case rejectedRecord = "RejectedRecord"
  case resolvedEvent = "ResolvedEvent"
  case profileChange = "ProfileChange"
  case segmentChange = "SegmentChange"
  case delivery = "Delivery"
}

public enum StageKind: String, Sendable, Hashable {
  case source, decode, validate, rejected, resolve, unify, compute, segment, route, destination
}

/// How a stage runs: one task, or N parallel workers.
public enum Parallelism: String, Sendable, Hashable {
  case single = "1 task"
  case workers = "N workers"
  case singleWriter = "single writer"
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
public struct PipelinePlan: Sendable {
  public let config: PipelineConfig
  public let stages: [PlanStage]
  public let edges: [PlanEdge]

  init(config: PipelineConfig) {
    self.config = config
    var stages: [PlanStage] = []
    var edges: [PlanEdge] = []
    func add(
      _ id: String, _ kind: StageKind, _ label: String, _ input: PlanData?, _ output: PlanData?, _ p: Parallelism
    ) {
      stages.append(
        PlanStage(
          id: id, kind: kind, label: label, inputs: input.map { [$0] } ?? [], outputs: output.map { [$0] } ?? [],
          parallelism: p))
    }
    func link(_ from: String, _ to: String) {
      guard let a = stages.first(where: { $0.id == from }), let out = a.outputs.first else { return }
      edges.append(PlanEdge(from: from, to: to, carries: out))
    }
    for s in config.sources {
      add("source_\(s.name)", .source, "\(s.name) (\(s.kind.rawValue))", nil, .rawRecord, .single)
      add("decode_\(s.name)", .decode, "decode & map \(s.name)", .rawRecord, .mappedEvent, .workers)
      link("source_\(s.name)", "decode_\(s.name)")
    }
    add("validate", .validate, "validate", .mappedEvent, .validEvent, .workers)
    add("rejected", .rejected, "rejected records", .rejectedRecord, nil, .single)
    for s in config.sources { link("decode_\(s.name)", "validate") }
    if let v = stages.firstIndex(where: { $0.id == "validate" }) { stages[v].outputs.append(.rejectedRecord) }
    edges.append(PlanEdge(from: "validate", to: "rejected", carries: .rejectedRecord))
    let rules = (config.deterministic.map(\.name) + config.probabilistic.map(\.name)).joined(separator: ", ")
    add(
      "resolve", .resolve, "resolve identity" + (rules.isEmpty ? "" : " [\(rules)]"), .validEvent, .resolvedEvent,
      .singleWriter)
    link("validate", "resolve")
    add("unify", .unify, "unify profile (\(config.traits.count) traits)", .resolvedEvent, .profileChange, .singleWriter)
    link("resolve", "unify")
    var last = "unify"
    if !config.computed.isEmpty {
      add(
        "compute", .compute, "computed traits (\(config.computed.count))", .profileChange, .profileChange, .singleWriter
      )
      link(last, "compute")
      last = "compute"
    }
    let routeInput: PlanData
    if !config.segments.isEmpty {
      add("segment", .segment, "segments (\(config.segments.count))", .profileChange, .segmentChange, .workers)
      link(last, "segment")
      routeInput = .segmentChange
    } else {
      routeInput = .profileChange
    }
    if !config.destinations.isEmpty {
      add("route", .route, "route", routeInput, .delivery, .workers)
      if !config.segments.isEmpty {
        link("segment", "route")
        if config.destinations.contains(where: { $0.trigger != .segment_changes }) {
          if let r = stages.firstIndex(where: { $0.id == "route" }) { stages[r].inputs.append(.profileChange) }
          edges.append(PlanEdge(from: last, to: "route", carries: .profileChange))
        }
      } else {
        link(last, "route")
      }
      for d in config.destinations {
        let trigger = d.trigger.rawValue + (d.segments.isEmpty ? "" : ": " + d.segments.joined(separator: ", "))
        add(
          "destination_\(d.name)", .destination, "\(d.name) (\(d.kind.rawValue), \(trigger))", .delivery, nil, .single)
        link("route", "destination_\(d.name)")
      }
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
        let text = esc(s.label) + "<br/><i>\(s.parallelism.rawValue)</i>"
        switch s.kind {
        case .source: out += "  \(s.id)[(\"\(text)\")]\n"
        case .destination: out += "  \(s.id)[/\"\(text)\"/]\n"
        case .rejected: out += "  \(s.id){{\"\(text)\"}}\n"
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
          case .rejected: "hexagon"
          default: "box"
          }
        out += "  \(s.id) [label=\"\(esc(s.label))\\n\(s.parallelism.rawValue)\", shape=\(shape)];\n"
      }
      for e in edges { out += "  \(e.from) -> \(e.to) [label=\"\(e.carries.rawValue)\"];\n" }
      return out + "}\n"
    }
  }
}
