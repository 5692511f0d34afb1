import Foundation
import TesseraLanguage
import TesseraModel

/// Reads every declaration of a pipeline, in dependency order, and checks the references between them.
struct DeclarationChecker {
  let sink: Sink
  let sections: [String: [Section]]
  /// Rules for batch matching: sources are optional.
  var rulesOnly = false
  var readFile: @Sendable (String) -> String? = { _ in nil }

  /// Named entries of a section across all files, duplicates reported.
  func entries(_ section: String, _ what: String) -> [(name: String, key: YNode, body: YNode)] {
    entries(of: (sections[section] ?? []).map(\.body), what)
  }

  /// Named entries of mappings spread over several files, duplicates reported at the second.
  func entries(of bodies: [YNode], _ what: String) -> [(name: String, key: YNode, body: YNode)] {
    var seen: [String: SourceLocation] = [:]
    var out: [(String, YNode, YNode)] = []
    for b in bodies {
      for (name, key, body) in b.namedEntries(what, sink) {
        if let first = seen[name] {
          sink.error("duplicate \(what) `\(name)` (first declared at \(first))", at: key)
          continue
        }
        seen[name] = key.location
        out.append((name, key, body))
      }
    }
    return out
  }

  func check(into config: inout PipelineConfig) {
    readConsent(&config)
    readIdentifiers(&config)
    // A source or rule dropped for an error would make the unused-declaration warnings below report its
    // consequences, so they are only given for sections read without errors.
    let errorsBeforeSources = sink.diagnostics.errorCount
    readSources(&config)
    let sourcesComplete = sink.diagnostics.errorCount == errorsBeforeSources
    readProfile(&config)
    readComputed(&config)
    let errorsBeforeRules = sink.diagnostics.errorCount
    readDeterministic(&config)
    let rulesComplete = sink.diagnostics.errorCount == errorsBeforeRules
    readProbabilistic(&config)
    readSegments(&config)
    readDestinations(&config)
    readSyncs(&config)
    readMeasurement(&config)
    warnUnused(config, sourcesComplete: sourcesComplete, rulesComplete: rulesComplete)
  }

  // MARK: consent

  func readConsent(_ config: inout PipelineConfig) {
    guard let s = sections["consent_purposes"]?.last else { return }
    guard let list = MapReader.stringList(s.body, "consent_purposes", "the pipeline", sink) else { return }
    config.consentPurposes = list.map(\.0)
  }

  // MARK: identifiers

  static let identifierKeys = [
    "normalize", "default_region", "provider_rules", "max_per_profile", "priority", "blocked", "expires_after",
    "description",
  ]

  func readIdentifiers(_ config: inout PipelineConfig) {
    for (name, key, body) in entries("identifiers", "identifier") {
      let what = "identifier `\(name)`"
      var decl = IdentifierDecl(
        name: name, location: key.location, normalizers: [.trim], defaultRegion: "US", emailRules: .none,
        maxPerProfile: nil, priority: 100, blocked: [],
        expiresAfter: name.hasPrefix("anonymous") ? TimeSpan(parsing: "730d") : nil)
      if !body.isNull, let m = MapReader(body, what, sink, key: key) {
        m.check(allowed: Self.identifierKeys)
        if let v = m.value("normalize"), let list = MapReader.stringList(v, "normalize", what, sink) {
          decl.normalizers = list.compactMap { MapReader.choice($0.1, "normalizer", what, Normalizer.self, sink) }
        }
        if let r = m.string("default_region") {
          if Normalize.isKnownRegion(r) {
            decl.defaultRegion = r.uppercased()
          } else if let v = m.value("default_region") {
            sink.error(
              "unknown phone region `\(r)` in \(what); use an ISO 3166 code: "
                + Normalize.callingCodes.keys.sorted().joined(separator: ", "), at: v)
          }
        }
        if let rules = m.stringList("provider_rules") {
          for (r, node) in rules {
            if r == "gmail" {
              decl.emailRules = .gmail
            } else {
              sink.error(
                "unknown provider rule `\(r)` in \(what)" + Suggest.didYouMean(r, in: ["gmail"]) + "; known: gmail",
                at: node)
            }
          }
          if !decl.normalizers.contains(.email), let v = m.value("provider_rules") {
            sink.error("`provider_rules` applies to emails; add `normalize: email` to \(what)", at: v)
          }
        }
        if decl.normalizers.contains(.phone_e164) == false, m.has("default_region"), let k = m.keyNode("default_region")
        {
          sink.warning("`default_region` only matters with `normalize: phone_e164` in \(what)", at: k)
        }
        decl.maxPerProfile = m.int("max_per_profile", min: 1) ?? decl.maxPerProfile
        decl.priority = m.int("priority", min: 0) ?? decl.priority
        if let e = m.duration("expires_after") { decl.expiresAfter = e }
        if let blocked = m.stringList("blocked") {
          for (raw, node) in blocked {
            if let n = decl.normalize(raw) {
              decl.blocked.insert(n)
            } else {
              sink.warning("blocked value `\(raw)` is not a valid \(name) and can never match", at: node)
            }
          }
        }
      }
      config.identifiers.append(decl)
    }
  }

  // MARK: sources

  static let sourceKeys = [
    "kind", "path", "write_key", "emit", "event", "id", "timestamp", "map", "schema", "delimiter", "description",
    "max_request_bytes", "max_event_bytes", "url", "table", "query", "cursor", "poll", "batch_rows",
  ]

  func readSources(_ config: inout PipelineConfig) {
    let all = entries("sources", "source")
    if all.isEmpty && !rulesOnly {
      let at = sections["sources"]?.first?.key.location ?? SourceLocation(file: config.file, line: 1, column: 1)
      sink.error("the pipeline declares no sources; add a `sources:` mapping with at least one source", at: at)
    }
    let identifierNames = config.identifiers.map(\.name)
    for (name, key, body) in all {
      let what = "source `\(name)`"
      guard let m = MapReader(body, what, sink, key: key) else { continue }
      m.check(allowed: Self.sourceKeys)
      guard let kind = m.choice("kind", SourceKind.self, required: true) else { continue }
      var schema = SourceSchema()
      if let sv = m.value("schema"), let sm = MapReader(sv, "the schema of \(what)", sink) {
        sm.check(allowed: ["required", "types"])
        schema.required = sm.stringList("required")?.map(\.0) ?? []
        if let tv = sm.value("types"), let tm = MapReader(tv, "the schema types of \(what)", sink) {
          for (fk, fv) in tm.entries {
            guard let field = fk.scalar else { continue }
            guard let tn = fv.scalar, let t = ExprType(name: tn) else {
              let tn = fv.scalar ?? ""
              sink.error(
                "unknown type `\(tn)` for field `\(field)`" + Suggest.didYouMean(tn, in: ExprType.typeNames)
                  + "; types are \(ExprType.typeNames.joined(separator: ", "))", at: fv)
              continue
            }
            schema.types[field] = t
          }
        }
      }
      let scope = Scopes.record(kind: kind, types: schema.types)
      var decl = SourceDecl(
        name: name, location: key.location, kind: kind, path: nil, writeKey: nil,
        emit: kind == .csv || kind == .postgres ? .identify : .track, event: nil, messageId: nil, timestamp: nil,
        mappings: [],
        schema: schema, delimiter: ",", scope: scope)
      switch kind {
      case .http:
        decl.writeKey = m.expanded("write_key", required: true)
        if let p = m.keyNode("path") {
          sink.error("`path` is for file sources; an http source has a `write_key`", at: p)
        }
        if decl.writeKey?.isEmpty == true, let v = m.value("write_key") {
          sink.error("the write key of \(what) is empty", at: v)
        }
        if let n = m.int("max_request_bytes", min: 1024) { decl.maxRequestBytes = n }
        if let n = m.int("max_event_bytes", min: 64) { decl.maxEventBytes = n }
        if decl.maxEventBytes > decl.maxRequestBytes, let v = m.value("max_event_bytes") {
          sink.error(
            "`max_event_bytes` (\(decl.maxEventBytes)) of \(what) exceeds its `max_request_bytes` (\(decl.maxRequestBytes))",
            at: v)
        }
      case .csv, .ndjson:
        decl.path = m.expanded("path", required: true)
        if let w = m.keyNode("write_key") {
          sink.error("`write_key` is for http sources; a \(kind) source has a `path`", at: w)
        }
        for key in ["max_request_bytes", "max_event_bytes"] {
          if let k = m.keyNode(key) { sink.error("`\(key)` is for http sources; a \(kind) source reads files", at: k) }
        }
      case .postgres:
        decl.table = readTableSource(m, what, key)
      }
      if kind != .postgres {
        for k in ["url", "table", "query", "cursor", "poll", "batch_rows"] {
          if let n = m.keyNode(k) {
            sink.error("`\(k)` is for postgres sources; a \(kind) source does not read a table", at: n)
          }
        }
      }
      if let d = m.string("delimiter") {
        if kind != .csv, let k = m.keyNode("delimiter") {
          sink.error("`delimiter` applies to csv sources only", at: k)
        } else if d.count == 1, let c = d.first {
          decl.delimiter = c
        } else if let v = m.value("delimiter") {
          sink.error("a CSV delimiter is one character, found `\(d)`", at: v)
        }
      }
      if let e = m.choice("emit", EventType.self) { decl.emit = e }
      decl.event = m.string("event")
      if let v = m.value("id") { decl.messageId = sink.expression(v, in: scope) }
      if let v = m.value("timestamp") {
        if let e = sink.expression(v, in: scope), checkTimestamp(e, v, what) { decl.timestamp = e }
      }
      var mappingErrors = false
      if let mv = m.value("map") {
        let before = sink.diagnostics.errorCount
        decl.mappings = readMappings(mv, what, scope, identifierNames, consentPurposes: config.consentPurposes)
        mappingErrors = sink.diagnostics.errorCount > before
      }
      if decl.emit == .track, kind != .http, decl.event == nil,
        !decl.mappings.contains(where: { $0.target == .event }), !mappingErrors
      {
        sink.error("\(what) emits `track` events and needs an `event` name (or `event` in its `map`)", at: key)
      }
      if kind != .http, !mappingErrors,
        decl.mappings.allSatisfy({ if case .identifier = $0.target { return false } else { return true } })
      {
        sink.error(
          "\(what) maps no identifier, so its records could never join a profile; map at least one of: \(identifierNames.joined(separator: ", "))",
          at: key)
      }
      checkFileFields(decl, m)
      config.sources.append(decl)
    }
  }

  /// The table part of a `postgres` source: `url`, `table` or `query`, `cursor`, `poll`, `batch_rows`.
  func readTableSource(_ m: MapReader, _ what: String, _ key: YNode) -> TableSource? {
    for k in ["path", "write_key", "max_request_bytes", "max_event_bytes"] {
      if let n = m.keyNode(k) {
        sink.error("`\(k)` does not apply to a postgres source; it reads `table` (or `query`) at `url`", at: n)
      }
    }
    let url = m.expanded("url", required: true)
    if let url, let v = m.value("url"), !(url.hasPrefix("postgres://") || url.hasPrefix("postgresql://")) {
      sink.error("the url of \(what) must start with `postgres://` (postgres://user@host:port/database)", at: v)
    }
    let table = m.string("table")
    let query = m.string("query")
    if let table, let v = m.value("table"),
      !table.split(separator: ".", omittingEmptySubsequences: false).allSatisfy({ YNode.isValidName(String($0)) })
    {
      sink.error("invalid table name `\(table)`: use letters, digits and `_`, optionally `schema.table`", at: v)
    }
    if table != nil, query != nil, let v = m.keyNode("query") {
      sink.error("\(what) has both `table` and `query`; give one", at: v)
    } else if table == nil, query == nil {
      sink.error("\(what) needs a `table` (or a `query`) to read", at: key)
    }
    let cursor = m.string("cursor", required: true)
    if let cursor, let v = m.value("cursor"), !YNode.isValidName(cursor) {
      sink.error("invalid cursor column `\(cursor)`: use letters, digits and `_`", at: v)
    }
    let poll = m.duration("poll") ?? TimeSpan(seconds: 10)
    if poll.microseconds <= 0, let v = m.value("poll") { sink.error("`poll` must be longer than 0", at: v) }
    let batchRows = m.int("batch_rows", min: 1) ?? 10_000
    guard let url, let cursor, table != nil || query != nil else { return nil }
    return TableSource(url: url, table: table, query: query, cursor: cursor, poll: poll, batchRows: batchRows)
  }

  // MARK: syncs

  func readSyncs(_ config: inout PipelineConfig) {
    for (name, key, body) in entries("sync", "sync") {
      let what = "sync `\(name)`"
      guard let m = MapReader(body, what, sink, key: key) else { continue }
      m.check(allowed: ["database", "schema", "events", "description"])
      let database = m.expanded("database", required: true)
      if let database, let v = m.value("database"),
        !(database.hasPrefix("postgres://") || database.hasPrefix("postgresql://"))
      {
        sink.error("the database of \(what) must be a PostgreSQL URL (postgres://user@host:port/database)", at: v)
      }
      let schema = m.string("schema") ?? "tessera"
      if !YNode.isValidName(schema), let v = m.value("schema") {
        sink.error("invalid schema name `\(schema)`: use letters, digits and `_`", at: v)
      }
      let events = m.bool("events") ?? true
      guard let database else { continue }
      config.syncs.append(
        SyncDecl(name: name, location: key.location, database: database, schema: schema, events: events))
    }
  }

  func checkTimestamp(_ e: CompiledExpr, _ node: YNode, _ what: String) -> Bool {
    switch e.type {
    case .timestamp, .string, .int, .double, .dyn: return true
    default:
      sink.error(
        "the timestamp of \(what) must be a timestamp, an ISO 8601 string or epoch seconds, found \(e.type)", at: node)
      return false
    }
  }

  func readMappings(
    _ node: YNode, _ what: String, _ scope: Scope, _ identifiers: [String], consentPurposes: [String] = []
  ) -> [FieldMapping] {
    guard let m = MapReader(node, "the map of \(what)", sink) else { return [] }
    var out: [FieldMapping] = []
    var seen: Set<MappingTarget> = []
    for (k, v) in m.entries {
      guard let raw = k.scalar else { continue }
      let parts = raw.split(separator: ".", maxSplits: 1).map(String.init)
      let target: MappingTarget
      switch (parts.count, parts[0]) {
      case (1, "event"): target = .event
      case (1, "type"): target = .type
      case (1, "traits"): target = .allTraits
      case (1, "properties"): target = .allProperties
      case (1, "context"): target = .allContext
      case (1, let name) where identifiers.contains(name): target = .identifier(name)
      case (2, "identifiers"):
        guard identifiers.contains(parts[1]) else {
          sink.error(
            "unknown identifier kind `\(parts[1])` in the map of \(what)"
              + Suggest.didYouMean(parts[1], in: identifiers),
            at: k.location.advanced(by: 12), length: parts[1].count)
          continue
        }
        target = .identifier(parts[1])
      case (2, "traits"): target = .trait(parts[1])
      case (2, "consent"):
        // Consent per purpose is profile state kept as the trait `consent.PURPOSE` (most recent wins).
        guard consentPurposes.contains(parts[1]) else {
          sink.error(
            "unknown consent purpose `\(parts[1])` in the map of \(what)"
              + Suggest.didYouMean(parts[1], in: consentPurposes)
              + "; declare it under `consent_purposes` (\(consentPurposes.joined(separator: ", ")))",
            at: k.location.advanced(by: 8), length: parts[1].count)
          continue
        }
        target = .trait("consent." + parts[1])
      case (2, "properties"): target = .property(parts[1])
      case (2, "context"): target = .context(parts[1])
      default:
        let hint = Suggest.closest(to: raw, in: identifiers + ["event"])
        sink.error(
          "unknown mapping target `\(raw)` in \(what)"
            + (hint.map { "; did you mean `\($0)`?" }
              ?? "; map to an identifier kind (\(identifiers.joined(separator: ", "))), `traits.NAME`, `properties.NAME`, `context.NAME`, `event` or `type`"),
          at: k)
        continue
      }
      if case .trait(let t) = target, !t.hasPrefix("consent."), !YNode.isValidName(t) {
        sink.error("invalid trait name `\(t)`: names start with a letter and use letters, digits and `_` only", at: k)
        continue
      }
      if !seen.insert(target).inserted {
        sink.error("`\(target)` is mapped twice in \(what)", at: k)
        continue
      }
      let expected: ExprType?
      switch target {
      case .event, .type: expected = .string
      case .allTraits, .allProperties, .allContext: expected = .map
      default: expected = nil
      }
      guard let e = sink.expression(v, in: scope, expecting: expected) else { continue }
      if case .identifier = target, ![.string, .int, .dyn, .null].contains(e.type) {
        sink.error("identifier `\(target)` must be a string, found \(e.type); convert with string(…)", at: v)
        continue
      }
      out.append(FieldMapping(target: target, expr: e, location: k.location))
    }
    return out
  }

  // MARK: profile

  func readProfile(_ config: inout PipelineConfig) {
    let sourceNames = config.sources.map(\.name)
    for s in sections["profile"] ?? [] {
      guard let m = MapReader(s.body, "`profile`", sink) else { continue }
      m.check(allowed: ["default_policy", "traits"])
      if let p = m.choice("default_policy", PolicyKind.self) {
        if p == .source_priority || p == .sum || p == .union, let v = m.value("default_policy") {
          sink.error(
            "`\(p.rawValue)` cannot be the default policy; use most_recent, first_seen, most_frequent, max or min",
            at: v)
        } else {
          config.defaultPolicy = p
        }
      }
    }
    let mapped = mappedTraitTypes(config)
    var traitSections: [Section] = []
    for s in sections["profile"] ?? [] {
      if let m = s.body.mapping, let t = m.first(where: { $0.key.scalar == "traits" }) {
        traitSections.append(Section(file: s.file, key: t.key, body: t.value))
      }
    }
    var seen: [String: SourceLocation] = [:]
    for section in traitSections {
      for (name, key, body) in section.body.namedEntries("trait", sink) {
        if let first = seen[name] {
          sink.error("duplicate trait `\(name)` (first declared at \(first))", at: key)
          continue
        }
        seen[name] = key.location
        let what = "trait `\(name)`"
        var decl = TraitDecl(
          name: name, location: key.location, type: mapped[name] ?? .dyn, policy: config.defaultPolicy, sources: [])
        if body.isNull {
          config.traits.append(decl)
          continue
        }
        if body.scalar != nil {  // shorthand: `city: most_recent`
          if let p = MapReader.choice(body, "policy", what, PolicyKind.self, sink) {
            decl.policy = p
            if p == .source_priority {
              sink.error(
                "\(what) uses `source_priority` and needs `sources`; write `{ policy: source_priority, sources: [...] }`",
                at: body)
            }
          }
        } else if let m = MapReader(body, what, sink, key: key) {
          m.check(allowed: ["type", "policy", "sources", "description"])
          if let tv = m.value("type") {
            if let tn = tv.scalar, let t = ExprType(name: tn) {
              decl.type = t
            } else {
              let tn = tv.scalar ?? ""
              sink.error(
                "unknown type `\(tn)` for \(what)" + Suggest.didYouMean(tn, in: ExprType.typeNames)
                  + "; types are \(ExprType.typeNames.joined(separator: ", "))", at: tv)
            }
          }
          if let p = m.choice("policy", PolicyKind.self) { decl.policy = p }
          if let list = m.stringList("sources") {
            for (src, node) in list {
              if sourceNames.contains(src) {
                decl.sources.append(src)
              } else {
                sink.error(
                  "unknown source `\(src)` in the precedence of \(what)" + Suggest.didYouMean(src, in: sourceNames),
                  at: node)
              }
            }
            if decl.policy != .source_priority, let k = m.keyNode("sources") {
              sink.error(
                "`sources` is only used by the `source_priority` policy; \(what) uses `\(decl.policy.rawValue)`", at: k)
            }
          }
          if decl.policy == .source_priority, !m.has("sources") {
            sink.error("\(what) uses `source_priority` and needs `sources`, the sources in order of trust", at: key)
          }
          let policyNode = m.value("policy") ?? key
          switch decl.policy {
          case .sum where !(decl.type.isNumeric || decl.type == .dyn):
            sink.error("policy `sum` needs a numeric trait; \(what) is \(decl.type)", at: policyNode)
          case .max, .min:
            if [.bool, .map].contains(decl.type) || decl.type.isListType {
              sink.error(
                "policy `\(decl.policy.rawValue)` needs an orderable trait; \(what) is \(decl.type)", at: policyNode)
            }
          case .union:
            if decl.type == .dyn { decl.type = .list(.dyn) }
            if !decl.type.isListType, m.has("type") {
              sink.error("policy `union` collects values into a list; declare \(what) as `type: list`", at: policyNode)
            }
          default: break
          }
        }
        if let mt = mapped[name], decl.policy != .union, !mt.isAssignable(to: decl.type) {
          sink.error(
            "sources map \(mt) values into \(what), declared \(decl.type); convert them in the source map (e.g. \(decl.type)(…))",
            at: key)
        }
        config.traits.append(decl)
      }
    }
    // Traits mapped by sources but not declared get the default policy and the mapped type.
    let declared = Set(config.traits.map(\.name))
    for (name, type) in mapped.sorted(by: { $0.key < $1.key })
    where !declared.contains(name) && !name.hasPrefix("consent.") {
      let loc = config.sources.flatMap(\.mappings).first { $0.target == .trait(name) }?.location
      config.traits.append(
        TraitDecl(
          name: name, location: loc ?? SourceLocation(file: config.file, line: 1, column: 1), type: type,
          policy: config.defaultPolicy, sources: []))
    }
  }

  func mappedTraitTypes(_ config: PipelineConfig) -> [String: ExprType] {
    var out: [String: ExprType] = [:]
    for s in config.sources {
      for m in s.mappings {
        guard case .trait(let name) = m.target else { continue }
        let t = m.expr.type == .null ? ExprType.dyn : m.expr.type
        out[name] = out[name].map { ExprType.unify($0, t) ?? .dyn } ?? t
      }
    }
    return out
  }

  // MARK: computed traits

  func readComputed(_ config: inout PipelineConfig) {
    let scope = Scopes.event(identifiers: config.identifiers.map(\.name), place: "a computed trait")
    let traitNames = Set(config.traits.map(\.name))
    for (name, key, body) in entries("computed", "computed trait") {
      let what = "computed trait `\(name)`"
      if traitNames.contains(name) {
        sink.error(
          "\(what) has the name of a trait that sources map or `profile.traits` declares; rename one of them", at: key)
        continue
      }
      guard let m = MapReader(body, what, sink, key: key) else { continue }
      m.check(allowed: ["aggregate", "of", "where", "window", "description"])
      guard let agg = m.choice("aggregate", Aggregate.self, required: true) else { continue }
      var decl = ComputedTraitDecl(
        name: name, location: key.location, aggregate: agg, of: nil, filter: nil, window: nil, type: .int)
      if let v = m.value("where") { decl.filter = sink.expression(v, in: scope, expecting: .bool) }
      decl.window = m.duration("window")
      if let v = m.value("of") {
        decl.of = sink.expression(v, in: scope)
        if agg == .count, let k = m.keyNode("of") {
          sink.warning("`count` counts events; `of` is ignored in \(what)", at: k)
        }
      } else if agg != .count {
        sink.error("\(what) uses `\(agg.rawValue)` and needs `of`, the value to aggregate", at: key)
      }
      let ofType = decl.of?.type ?? .dyn
      switch agg {
      case .count, .distinct_count: decl.type = .int
      case .sum, .avg:
        if !(ofType.isNumeric || ofType == .dyn), let v = m.value("of") {
          sink.error("`\(agg.rawValue)` needs a number, but `of` is \(ofType); convert with double(…)", at: v)
        }
        decl.type = .double
      case .min, .max:
        if [.bool, .map].contains(ofType) || ofType.isListType, let v = m.value("of") {
          sink.error("`\(agg.rawValue)` needs an orderable value, but `of` is \(ofType)", at: v)
        }
        decl.type = ofType == .int ? .double : ofType
      case .first, .last, .most_frequent: decl.type = ofType
      }
      config.computed.append(decl)
    }
  }

  // MARK: match rules

  func readDeterministic(_ config: inout PipelineConfig) {
    let kinds = config.identifiers.map(\.name)
    for (name, key, body) in entries("deterministic", "deterministic rule") {
      let what = "deterministic rule `\(name)`"
      guard let m = MapReader(body, what, sink, key: key) else { continue }
      m.check(allowed: ["link_on", "description"])
      var rule = DeterministicRule(name: name, location: key.location, linkOn: [])
      if m.value("link_on", required: true) != nil, let list = m.stringList("link_on") {
        for (k, node) in list {
          if kinds.contains(k) {
            rule.linkOn.append(k)
          } else {
            sink.error("unknown identifier kind `\(k)` in \(what)" + Suggest.didYouMean(k, in: kinds), at: node)
          }
        }
      }
      config.deterministic.append(rule)
    }
  }

  func readProbabilistic(_ config: inout PipelineConfig) {
    let traits = config.traits.map { ($0.name, $0.type) } + config.computed.map { ($0.name, $0.type) }
    let traitNames = traits.map(\.0)
    var scope = Scopes.profile(
      place: "a blocking key", traits: traits, identifiers: config.identifiers.map(\.name), segments: [],
      extra: DeviceSignals.names.map { ("signals." + $0, .string) })
    scope.place = "a blocking key"
    let signalNames = DeviceSignals.names.map { "signals." + $0 }
    /// Whether a compared name is a trait or a device signal, else reports it.
    func known(_ name: String, _ node: YNode, _ message: String) -> Bool {
      if traitNames.contains(name) || signalNames.contains(name) { return true }
      let candidates = name.hasPrefix("signals.") ? signalNames : traitNames
      sink.error(
        message + Suggest.didYouMean(name, in: candidates)
          + (name.hasPrefix("signals.") ? "; device signals are \(DeviceSignals.names.joined(separator: ", "))" : ""),
        at: node)
      return false
    }
    for (name, key, body) in entries("probabilistic", "probabilistic rule") {
      let what = "probabilistic rule `\(name)`"
      guard let m = MapReader(body, what, sink, key: key) else { continue }
      m.check(allowed: [
        "blocking", "compare", "thresholds", "prior", "max_cluster_size", "parameters", "description", "signals",
        "consent", "keep_apart",
      ])
      var rule = ProbabilisticRule(
        name: name, location: key.location, blocking: [], comparisons: [], merge: 0.99, review: 0.9, prior: nil,
        maxClusterSize: 100, scope: scope)
      if let bv = m.value("blocking", required: true) {
        if let rules = bv.sequence {
          for r in rules {
            // `[key, …]`, a single key, or `{ keys: [key, …], train: false }` for a rule whose pairs should not
            // teach expectation–maximisation (pairs that share a household, say).
            var keyNodes = r.sequence ?? [r]
            var train = true
            if r.mapping != nil, let rm = MapReader(r, "a blocking rule of \(what)", sink) {
              rm.check(allowed: ["keys", "train"])
              let kv = rm.value("keys", required: true)
              keyNodes = kv.map { $0.sequence ?? [$0] } ?? []
              train = rm.bool("train") ?? true
            }
            rule.blocking.append(keyNodes.compactMap { sink.expression($0, in: scope) })
            rule.trainOn.append(train)
          }
        } else {
          sink.error("expected a list of blocking rules for `blocking` in \(what), found \(bv.kindDescription)", at: bv)
        }
      }
      if let cv = m.value("compare", required: true),
        let cm = MapReader(cv, "the comparisons of \(what)", sink, key: m.keyNode("compare"))
      {
        for (k, v) in cm.entries {
          guard let field = k.scalar else { continue }
          // `name: { of: [trait, …], levels: [...] }` compares several traits as one piece of evidence.
          var fields = [field]
          var levelsNode = v
          if v.mapping != nil, v.mapping?.contains(where: { $0.0.scalar == "level" }) == false,
            let om = MapReader(v, "comparison `\(field)` of \(what)", sink, key: k)
          {
            om.check(allowed: ["of", "levels"])
            if let list = om.stringList("of") {
              fields = list.map(\.0)
              for (name, node) in list {
                _ = known(name, node, "unknown trait `\(name)` in comparison `\(field)` of \(what)")
              }
              if fields.isEmpty, let ov = om.value("of") {
                sink.error("comparison `\(field)` of \(what) compares no trait; list them under `of`", at: ov)
              }
            } else {
              _ = om.value("of", required: true)
            }
            guard let lv = om.value("levels", required: true) else { continue }
            levelsNode = lv
            if !fields.allSatisfy({ traitNames.contains($0) || signalNames.contains($0) }) { continue }
          } else if !traitNames.contains(field) && !signalNames.contains(field) {
            if field.hasPrefix("signals.") {
              _ = known(field, k, "unknown device signal `\(field)` in the comparisons of \(what)")
            } else {
              sink.error(
                "unknown trait `\(field)` in the comparisons of \(what)" + Suggest.didYouMean(field, in: traitNames)
                  + "; to compare several traits as one, write `\(field): { of: [trait, …], levels: [...] }`",
                at: k)
            }
            continue
          }
          let v = levelsNode
          let items = v.sequence ?? [v]
          var levels: [LevelDecl] = []
          var elseLevel: (m: Double?, u: Double?)?
          for item in items {
            if item.mapping?.contains(where: { $0.0.scalar == "level" && $0.1.scalar == "else" }) == true
              || item.scalar == "else"
            {
              elseLevel = readElse(item, field, what)
              continue
            }
            if var l = readLevel(item, field, what) {
              // On a device signal, `within` measures time between sightings of one value.
              if case .within(let n, let unit) = l.level {
                let signal = fields.allSatisfy(signalNames.contains)
                if signal, let unit {
                  l.level = .seenWithin(n, unit)
                } else if signal {
                  sink.error(
                    "`\(l.level)` on device signal `\(field)` needs a unit: `within 30 minutes` is the same value seen within 30 minutes of the other side's sighting",
                    at: l.location, length: l.level.description.count)
                } else if unit == .minutes || unit == .hours {
                  sink.error(
                    "`\(l.level)` measures time between sightings, which only device signals have (`signals.ip`, …); compare a date trait in days, months or years",
                    at: l.location, length: l.level.description.count)
                }
              }
              levels.append(l)
            }
          }
          if levels.isEmpty { sink.error("comparison `\(field)` of \(what) needs at least one level", at: k) }
          rule.comparisons.append(
            ComparisonDecl(
              trait: field, fields: fields, levels: levels, location: k.location, elseM: elseLevel?.m,
              elseU: elseLevel?.u))
        }
        if cm.entries.isEmpty { sink.error("\(what) compares nothing; add fields under `compare`", at: cv) }
        let compared = rule.comparisons.map(\.trait)
        for c in rule.comparisons where c.fields.count > 1 {
          for l in c.levels where l.termFrequency || { if case .swappedWith = l.level { true } else { false } }() {
            sink.error(
              "comparison `\(c.trait)` compares several traits; `\(l.termFrequency ? "tf" : l.level.description)` needs a comparison of one trait",
              at: l.location)
          }
        }
        for c in rule.comparisons {
          for l in c.levels {
            guard case .swappedWith(let other) = l.level, !compared.contains(other) || other == c.trait else {
              continue
            }
            sink.error(
              other == c.trait
                ? "`swapped_with \(other)` in `\(c.trait)` names the field itself; name the other field of the pair"
                : "`swapped_with \(other)`: `\(other)` is not compared by \(what)"
                  + Suggest.didYouMean(other, in: compared),
              at: l.location, length: "swapped_with \(other)".count)
          }
        }
      }
      readDeviceOptions(m, &rule, what, config)
      if let tv = m.value("thresholds", required: true),
        let tm = MapReader(tv, "the thresholds of \(what)", sink, key: m.keyNode("thresholds"))
      {
        tm.check(allowed: ["merge", "review"])
        let merge = tm.double("merge")
        let review = tm.double("review")
        // A rule on device signals proposes links for review unless it names a merge threshold: a shared
        // address or device is never enough on its own.
        if rule.signals != nil && tm.value("merge") == nil {
          rule.merge = 1
        } else if tm.value("merge", required: true) != nil, let merge {
          rule.merge = merge
        }
        if tm.value("review", required: true) != nil, let review { rule.review = review }
        if let merge, !(merge > 0 && merge <= 1), let v = tm.value("merge") {
          sink.error("threshold `merge` must be in (0, 1], found \(Value.double(merge))", at: v)
        } else if let review, !(review > 0 && review <= 1), let v = tm.value("review") {
          sink.error("threshold `review` must be in (0, 1], found \(Value.double(review))", at: v)
        } else if let merge, let review, review > merge, let v = tm.value("review") {
          sink.error(
            "threshold `review` (\(Value.double(review))) must not exceed `merge` (\(Value.double(merge))); thresholds need 0 < review ≤ merge ≤ 1",
            at: v)
        }
      }
      if let p = m.double("prior") {
        if p > 0 && p < 1 {
          rule.prior = p
        } else if let v = m.value("prior") {
          sink.error(
            "`prior` is the probability that two random records match and must be in (0, 1), found \(Value.double(p))",
            at: v)
        }
      }
      rule.maxClusterSize = m.int("max_cluster_size", min: 2) ?? rule.maxClusterSize
      if let pv = m.value("parameters"), let rel = m.string("parameters") {
        let path = Paths.resolve(rel, from: pv.location.file)
        rule.parametersFile = path
        if let text = readFile(path) {
          ParameterFileReader(sink: sink).apply(SourceFile(path: path, text: text), to: &rule)
        } else {
          sink.warning(
            "parameters file `\(path)` does not exist yet; `tessera link … --rules \(pv.location.file) --train` writes it (until then the rule uses default m/u values)",
            at: pv)
        }
      }
      config.probabilistic.append(rule)
    }
  }

  /// `else` (or `{ level: else, m: …, u: … }`) is the level of pairs no declared level matched.
  func readElse(_ item: YNode, _ field: String, _ what: String) -> (m: Double?, u: Double?) {
    guard item.scalar == nil, let lm = MapReader(item, "the `else` level of `\(field)` in \(what)", sink) else {
      return (nil, nil)
    }
    lm.check(allowed: ["level", "m", "u"])
    return (probability(lm, "m"), probability(lm, "u"))
  }

  func probability(_ lm: MapReader, _ name: String) -> Double? {
    guard let value = lm.double(name) else { return nil }
    if value > 0 && value < 1 { return value }
    if let v = lm.value(name) {
      sink.error("`\(name)` is a probability and must be in (0, 1), found \(Value.double(value))", at: v)
    }
    return nil
  }

  func readLevel(_ item: YNode, _ field: String, _ what: String) -> LevelDecl? {
    var text: String?
    var textNode = item
    var m: Double?
    var u: Double?
    var tf = false
    if let s = item.scalar {
      text = s
    } else if let lm = MapReader(item, "a level of `\(field)` in \(what)", sink) {
      lm.check(allowed: ["level", "m", "u", "tf"])
      text = lm.string("level", required: true)
      textNode = lm.value("level") ?? item
      m = probability(lm, "m")
      u = probability(lm, "u")
      tf = lm.bool("tf") ?? false
    }
    guard let text else { return nil }
    switch LevelParser.parse(text) {
    case .success(let level):
      if tf, level != .exact { sink.error("term-frequency adjustment (`tf`) applies to `exact` levels only", at: item) }
      return LevelDecl(level: level, m: m, u: u, termFrequency: tf, location: textNode.location)
    case .failure(let e):
      sink.error(e.message, at: textNode.location(ofOffset: e.offset), length: e.length)
      return nil
    }
  }

  // MARK: segments

  func readSegments(_ config: inout PipelineConfig) {
    let all = entries("segments", "segment")
    let names = all.map(\.name)
    let traits = config.traits.map { ($0.name, $0.type) } + config.computed.map { ($0.name, $0.type) }
    let scope = Scopes.profile(
      place: "a segment condition", traits: traits, identifiers: config.identifiers.map(\.name), segments: names)
    var nodes: [String: YNode] = [:]
    for (name, key, body) in all {
      let what = "segment `\(name)`"
      var condNode: YNode?
      var description: String?
      if body.scalar != nil {
        condNode = body  // shorthand: `vip: traits.lifetime_value > 1000`
      } else if let m = MapReader(body, what, sink, key: key) {
        m.check(allowed: ["when", "description"])
        condNode = m.value("when", required: true)
        description = m.string("description")
      }
      guard let condNode, let cond = sink.expression(condNode, in: scope, expecting: .bool) else { continue }
      let deps = cond.references.filter { $0.hasPrefix("segments.") }.map { String($0.dropFirst(9)) }.sorted()
      nodes[name] = condNode
      config.segments.append(
        SegmentDecl(name: name, location: key.location, description: description, condition: cond, dependsOn: deps))
    }
    // Cycles between segments: report each once, at the segment where the walk found it.
    var state: [String: Int] = [:]  // 1 visiting, 2 done
    let byName = Dictionary(config.segments.map { ($0.name, $0) }, uniquingKeysWith: { a, _ in a })
    var reported = false
    func visit(_ n: String, _ path: [String]) {
      if state[n] == 2 || reported { return }
      if state[n] == 1 {
        let cycle = path.drop { $0 != n } + [n]
        if let node = nodes[n] {
          sink.error("segment `\(n)` depends on itself: \(cycle.joined(separator: " → "))", at: node)
        }
        reported = true
        return
      }
      state[n] = 1
      for d in byName[n]?.dependsOn ?? [] { visit(d, path + [n]) }
      state[n] = 2
    }
    for s in config.segments { visit(s.name, []) }
  }

  // MARK: destinations

  static let destinationKeys = [
    "kind", "on", "url", "headers", "path", "format", "table", "database", "segments", "where", "consent", "payload",
    "batch", "retry", "rotate", "description", "timeout", "deletion_url", "concurrency",
  ]

  func readDestinations(_ config: inout PipelineConfig) {
    let segmentNames = config.segments.map(\.name)
    let traits = config.traits.map { ($0.name, $0.type) } + config.computed.map { ($0.name, $0.type) }
    let identifiers = config.identifiers.map(\.name)
    for (name, key, body) in entries("destinations", "destination") {
      let what = "destination `\(name)`"
      guard let m = MapReader(body, what, sink, key: key) else { continue }
      m.check(allowed: Self.destinationKeys)
      guard let kind = m.choice("kind", DestinationKind.self, required: true),
        let trigger = m.choice("on", Trigger.self, required: true)
      else { continue }
      let scope: Scope
      switch trigger {
      case .events:
        var s = Scopes.event(identifiers: identifiers, place: "the payload of \(what)")
        s.addField("profile", "id", .string)
        scope = s
      case .profile_changes:
        scope = Scopes.profile(
          place: "the payload of \(what)", traits: traits, identifiers: identifiers, segments: segmentNames,
          extra: [("changed", .list(.string))])
      case .segment_changes:
        scope = Scopes.profile(
          place: "the payload of \(what)", traits: traits, identifiers: identifiers, segments: segmentNames,
          extra: [
            ("change.segment", .string), ("change.entered", .bool), ("change.exited", .bool), ("change.at", .timestamp),
          ])
      }
      var decl = DestinationDecl(
        name: name, location: key.location, kind: kind, trigger: trigger, url: nil, headers: [:], path: nil,
        format: "ndjson", table: nil, database: nil, segments: [], filter: nil, consent: nil, payload: [],
        batch: BatchSettings(), retry: RetrySettings(), rotateBytes: nil, rotateEvery: nil, scope: scope)
      switch kind {
      case .webhook:
        if let url = m.expanded("url", required: true) {
          if let u = URL(string: url), let scheme = u.scheme, ["http", "https"].contains(scheme), u.host != nil {
            decl.url = url
          } else if let v = m.value("url") {
            sink.error("`\(url)` is not an http(s) URL", at: v)
          }
        }
        if let url = m.expanded("deletion_url") {
          if let u = URL(string: url), let scheme = u.scheme, ["http", "https"].contains(scheme), u.host != nil {
            decl.deletionURL = url
          } else if let v = m.value("deletion_url") {
            sink.error("`\(url)` is not an http(s) URL", at: v)
          }
        }
        decl.timeout = m.duration("timeout") ?? decl.timeout
        if let hv = m.value("headers"), let hm = MapReader(hv, "the headers of \(what)", sink) {
          for (hk, _) in hm.entries {
            guard let h = hk.scalar else { continue }
            if let value = hm.expanded(h) { decl.headers[h] = value }
          }
        }
      case .file:
        decl.path = m.expanded("path", required: true)
        if let f = m.string("format") {
          if ["ndjson", "csv"].contains(f) {
            decl.format = f
          } else if let v = m.value("format") {
            sink.error(
              "unknown format `\(f)` for \(what)"
                + (Suggest.closest(to: f, in: ["ndjson", "csv"]).map { "; did you mean `\($0)`?" }
                  ?? "; use ndjson or csv"),
              at: v)
          }
        }
        if let rv = m.value("rotate"), let rm = MapReader(rv, "the rotation of \(what)", sink) {
          rm.check(allowed: ["max_bytes", "every"])
          decl.rotateBytes = rm.int("max_bytes", min: 1)
          decl.rotateEvery = rm.duration("every")
        }
      case .table:
        if let t = m.string("table", required: true) {
          if YNode.isValidName(t) {
            decl.table = t
          } else if let v = m.value("table") {
            sink.error("invalid table name `\(t)`: use letters, digits and `_`", at: v)
          }
        }
        decl.database = m.expanded("database")
      }
      for (k, allowedKinds) in [
        ("url", [DestinationKind.webhook]), ("headers", [.webhook]), ("path", [.file]), ("format", [.file]),
        ("rotate", [.file]), ("table", [.table]), ("database", [.table]), ("retry", [.webhook]),
        ("timeout", [.webhook]), ("deletion_url", [.webhook]),
      ] {
        if !allowedKinds.contains(kind), let kn = m.keyNode(k) {
          sink.error("`\(k)` does not apply to a \(kind.rawValue) destination", at: kn)
        }
      }
      if let list = m.stringList("segments") {
        if trigger != .segment_changes, let k = m.keyNode("segments") {
          sink.error("`segments` applies to `on: segment_changes`; \(what) is `on: \(trigger.rawValue)`", at: k)
        }
        for (s, node) in list {
          if segmentNames.contains(s) {
            decl.segments.append(s)
          } else {
            sink.error("unknown segment `\(s)` in \(what)" + Suggest.didYouMean(s, in: segmentNames), at: node)
          }
        }
      }
      if trigger == .segment_changes, segmentNames.isEmpty, let on = m.value("on") {
        sink.error("\(what) listens to segment changes, but the pipeline declares no segments", at: on)
      }
      if let v = m.value("where") { decl.filter = sink.expression(v, in: scope, expecting: .bool) }
      if let c = m.string("consent") {
        if config.consentPurposes.contains(c) {
          decl.consent = c
        } else if let v = m.value("consent") {
          sink.error(
            "unknown consent purpose `\(c)` in \(what)"
              + (Suggest.closest(to: c, in: config.consentPurposes).map { "; did you mean `\($0)`?" }
                ?? "; purposes are \(config.consentPurposes.joined(separator: ", "))"),
            at: v)
        }
      }
      if let pv = m.value("payload"), let pm = MapReader(pv, "the payload of \(what)", sink) {
        for (pk, v) in pm.entries {
          guard let field = pk.scalar, let e = sink.expression(v, in: scope) else { continue }
          decl.payload.append((field, e))
        }
      }
      decl.concurrency = m.int("concurrency", min: 1) ?? decl.concurrency
      if let bv = m.value("batch"), let bm = MapReader(bv, "the batch settings of \(what)", sink) {
        bm.check(allowed: ["max_events", "max_bytes", "max_wait"])
        decl.batch.maxEvents = bm.int("max_events", min: 1) ?? decl.batch.maxEvents
        decl.batch.maxBytes = bm.int("max_bytes", min: 1) ?? decl.batch.maxBytes
        decl.batch.maxWait = bm.duration("max_wait") ?? decl.batch.maxWait
      }
      if let rv = m.value("retry"), let rm = MapReader(rv, "the retry settings of \(what)", sink) {
        rm.check(allowed: ["attempts", "backoff", "max_age"])
        decl.retry.attempts = rm.int("attempts", min: 1) ?? decl.retry.attempts
        decl.retry.maxAge = rm.duration("max_age") ?? decl.retry.maxAge
        if let b = rm.value("backoff") {
          let parts = (b.scalar ?? "").components(separatedBy: "..")
          if parts.count == 2, let lo = TimeSpan(parsing: parts[0]), let hi = TimeSpan(parsing: parts[1]),
            lo.microseconds > 0, lo <= hi
          {
            decl.retry.backoffMin = lo
            decl.retry.backoffMax = hi
          } else if parts.count == 2, let lo = TimeSpan(parsing: parts[0]), let hi = TimeSpan(parsing: parts[1]),
            lo.microseconds > 0
          {
            sink.error(
              "invalid backoff \(b.kindDescription) in \(what): the minimum \(lo) exceeds the maximum \(hi)", at: b)
          } else {
            sink.error(
              "invalid backoff \(b.kindDescription) in \(what); write `MIN..MAX` with durations, e.g. `1s..5m`", at: b)
          }
        }
      }
      config.destinations.append(decl)
    }
  }

  // MARK: unused declarations

  func warnUnused(_ config: PipelineConfig, sourcesComplete: Bool, rulesComplete: Bool) {
    guard sourcesComplete, !rulesOnly else { return }
    let hasHTTP = config.sources.contains { $0.kind == .http }
    let provided = Set(config.sources.flatMap(\.identifierKinds)).union(
      hasHTTP ? Set(HTTPDefaults.identifierFields.keys) : [])
    let linked = Set(config.deterministic.flatMap(\.linkOn))
    for id in config.identifiers where !provided.contains(id.name) {
      sink.warning("identifier `\(id.name)` is declared but no source maps it", at: id.location, length: id.name.count)
    }
    for id in config.identifiers
    where rulesComplete && provided.contains(id.name) && !linked.contains(id.name) && !config.deterministic.isEmpty {
      sink.warning(
        "identifier `\(id.name)` is mapped but no deterministic rule links on it; add it to a rule's `link_on` or it is only stored",
        at: id.location, length: id.name.count)
    }
    let mappedTraits = Set(config.sources.flatMap(\.traitNames))
    // Sources that bring whole trait maps (the tracking API, `traits: …` mappings) may carry any trait.
    let openTraits = hasHTTP || config.sources.contains { $0.mappings.contains { $0.target == .allTraits } }
    for t in config.traits where !mappedTraits.contains(t.name) && !openTraits {
      sink.warning("trait `\(t.name)` is declared but no source maps it", at: t.location, length: t.name.count)
    }
  }
}

/// The fields of the Segment/RudderStack tracking payload an `http` source reads identifiers from, and its limits.
public enum HTTPDefaults {
  /// The largest request body (after gzip) an http source accepts unless it says `max_request_bytes`: the larger
  /// of the Segment (~475 KB) and RudderStack (~4 MiB) SDKs' own caps.
  public static let maxRequestBytes = 4 * 1024 * 1024
  /// The largest single message unless the source says `max_event_bytes` (Segment's per-message cap).
  public static let maxEventBytes = 32 * 1024
  public static let identifierFields: [String: [String]] = [
    "user_id": ["userId"], "anonymous_id": ["anonymousId"],
    "email": ["traits.email", "context.traits.email"], "phone": ["traits.phone", "context.traits.phone"],
  ]
}

extension ExprType {
  var isListType: Bool {
    if case .list = self { return true }
    return false
  }
}
