import TesseraLanguage
import TesseraModel

/// A name as declared in configuration, with where it was declared.
public struct Declared<T: Sendable>: Sendable {
  public var value: T
  public var location: SourceLocation
  public init(_ value: T, at location: SourceLocation) {
    self.value = value
    self.location = location
  }
}

public enum SourceKind: String, Sendable, CaseIterable {
  case http, csv, ndjson, postgres
  /// Reads files (`path`).
  public var readsFiles: Bool { self == .csv || self == .ndjson }
}
public enum EventType: String, Sendable, CaseIterable { case identify, track, page, screen, group, alias }

/// Where a mapped value goes in the event.
public enum MappingTarget: Sendable, Hashable, CustomStringConvertible {
  case identifier(String)
  case trait(String)
  case property(String)
  case context(String)
  case event
  /// The event type (identify, track, page, …) per record, for sources that carry several.
  case type
  /// A whole map of traits, properties or context at once (`traits: traits` for Segment-shaped records).
  case allTraits, allProperties, allContext

  public var description: String {
    switch self {
    case .identifier(let k): return "identifiers.\(k)"
    case .trait(let t): return "traits.\(t)"
    case .property(let p): return "properties.\(p)"
    case .context(let c): return "context.\(c)"
    case .event: return "event"
    case .type: return "type"
    case .allTraits: return "traits"
    case .allProperties: return "properties"
    case .allContext: return "context"
    }
  }
}

public struct FieldMapping: Sendable {
  public var target: MappingTarget
  public var expr: CompiledExpr
  public var location: SourceLocation
}

public struct SourceSchema: Sendable {
  public var required: [String] = []
  /// Declared raw field types; the reader converts values to them and rejects records that do not convert.
  public var types: [String: ExprType] = [:]
}

public struct SourceDecl: Sendable {
  public var name: String
  public var location: SourceLocation
  public var kind: SourceKind
  /// File path or glob, relative paths resolved against the declaring file's folder.
  public var path: String?
  public var writeKey: String?
  /// http sources: the largest request body accepted (decompressed), and the largest single message.
  public var maxRequestBytes = HTTPDefaults.maxRequestBytes
  public var maxEventBytes = HTTPDefaults.maxEventBytes
  public var emit: EventType
  /// The event name for `track` (a literal); a `map` entry for `event` overrides it per record.
  public var event: String?
  public var messageId: CompiledExpr?
  public var timestamp: CompiledExpr?
  public var mappings: [FieldMapping]
  public var schema: SourceSchema
  public var delimiter: Character
  /// The scope the mapping expressions were compiled in: slot 0 holds the raw record.
  public var scope: Scope
  /// A `postgres` source: where it reads, and how far (see `TableSource`).
  public var table: TableSource?

  /// Identifier kinds this source can produce.
  public var identifierKinds: Set<String> {
    Set(mappings.compactMap { if case .identifier(let k) = $0.target { return k } else { return nil } })
  }
  /// Profile traits this source maps (consent, kept as `consent.PURPOSE`, is not one of them).
  public var traitNames: Set<String> {
    Set(
      mappings.compactMap {
        if case .trait(let k) = $0.target, !k.hasPrefix("consent.") { return k } else { return nil }
      })
  }
}

/// A profile sync (`sync:`): the store's profiles, identifiers, memberships, merge log and events kept as
/// tables of a PostgreSQL schema that analysts query with SQL.
public struct SyncDecl: Sendable, Hashable {
  public var name: String
  public var location: SourceLocation
  /// The connection URL, `${ENV}` expanded.
  public var database: String
  /// The PostgreSQL schema the tables live in.
  public var schema: String
  /// Whether the events are synced too (the largest table).
  public var events: Bool

  public init(name: String, location: SourceLocation, database: String, schema: String, events: Bool) {
    self.name = name
    self.location = location
    self.database = database
    self.schema = schema
    self.events = events
  }
}

/// A source that reads a database table (or query) past a stored cursor.
public struct TableSource: Sendable, Hashable {
  /// The connection URL, `${ENV}` expanded.
  public var url: String
  /// The table (optionally `schema.table`), or nil when `query` is given.
  public var table: String?
  /// A SELECT whose rows are the records (nil when `table` is given).
  public var query: String?
  /// The monotonic column rows are read in order of; the source's cursor is its value at the last row stored.
  public var cursor: String
  /// How often `tessera serve` looks for new rows.
  public var poll: TimeSpan
  /// Rows read per query.
  public var batchRows: Int

  public init(url: String, table: String?, query: String?, cursor: String, poll: TimeSpan, batchRows: Int) {
    self.url = url
    self.table = table
    self.query = query
    self.cursor = cursor
    self.poll = poll
    self.batchRows = batchRows
  }

  /// What rejected records name as their place: the table, or `query` for a query source.
  public var place: String { table ?? "query" }
}

public enum Normalizer: String, Sendable, CaseIterable {
  case none, trim, lowercase, uppercase, email, phone_e164, digits
}

public struct IdentifierDecl: Sendable {
  public var name: String
  public var location: SourceLocation
  public var normalizers: [Normalizer]
  public var defaultRegion: String
  public var emailRules: Normalize.EmailRules
  /// nil: no limit.
  public var maxPerProfile: Int?
  /// Lower is stronger; decides which profile wins when a merge is refused.
  public var priority: Int
  /// Normalized values never used for linking.
  public var blocked: Set<String>
  public var expiresAfter: TimeSpan?

  /// Applies the normalizers in order; nil when the value is not a valid identifier of this kind.
  public func normalize(_ raw: String) -> String? {
    if case .valid(let s) = normalization(of: raw) { return s }
    return nil
  }

  /// What the normalizers make of a value: the identifier, or why it is none.
  public enum Normalization: Sendable, Hashable {
    case valid(String)
    /// This normalizer found the value invalid (not an email, not a phone number).
    case refused(Normalizer)
    /// Nothing was left after normalizing (blank, or no digits for `digits`).
    case empty
    /// The value holds a NUL character, which no store keeps in an identifier (SQLite would cut it there).
    case nul
  }

  /// Applies the normalizers in order and says where a value that is no identifier failed.
  public func normalization(of raw: String) -> Normalization {
    if raw.utf8.contains(0) { return .nul }
    var s = raw
    for n in normalizers {
      switch n {
      case .none: continue
      case .trim: s = Normalize.trim(s)
      case .lowercase: s = s.lowercased()
      case .uppercase: s = s.uppercased()
      case .digits: s = s.filter { $0.isASCII && $0.isNumber }
      case .email:
        guard let e = Normalize.email(s, rules: emailRules) else { return .refused(.email) }
        s = e
      case .phone_e164:
        guard let p = Normalize.phoneE164(s, defaultRegion: defaultRegion) else { return .refused(.phone_e164) }
        s = p
      }
    }
    return s.isEmpty ? .empty : .valid(s)
  }

  /// Why a value is no identifier of this kind, as a report says it: `is not an email`.
  public func reason(_ failure: Normalization) -> String {
    switch failure {
    case .valid: return "is valid"
    case .refused(.email): return "is not an email"
    case .refused(.phone_e164): return "is not a phone number (read in region \(defaultRegion))"
    case .refused(let n): return "is refused by the `\(n.rawValue)` normalizer"
    case .empty: return "is empty after normalizing"
    case .nul: return "contains a NUL character (U+0000)"
    }
  }
}

public struct DeterministicRule: Sendable {
  public var name: String
  public var location: SourceLocation
  public var linkOn: [String]
}

/// One level of a Fellegi–Sunter comparison.
public enum ComparisonLevel: Sendable, Hashable, CustomStringConvertible {
  case exact
  case jaroWinkler(Double)
  case jaro(Double)
  case levenshtein(Int)
  case damerauLevenshtein(Int)
  case tokenSet(Double)
  /// Numeric or date distance; `unit` is nil for plain numbers.
  case within(Double, TimeUnit?)
  case transposedDayMonth
  case soundex
  /// Both names are forms of one given name (`bob` ~ `robert`), from a built-in table of English names.
  case nickname
  /// This field of one record equals `field` of the other and the other way round (first and last name
  /// written in each other's place).
  case swappedWith(String)
  /// A device signal: the same value, seen by the other side within this time of this side's sighting
  /// (`within 30 minutes` on `signals.ip`: the event's time and the profile's last sighting of that address).
  case seenWithin(Double, TimeUnit)

  public enum TimeUnit: String, Sendable, CaseIterable {
    case minutes, hours, days, months, years

    /// The unit's length in seconds (a month is 1/12 of a year of 365.25 days).
    public var seconds: Double {
      switch self {
      case .minutes: 60
      case .hours: 3600
      case .days: 86_400
      case .months: 86_400 * 365.25 / 12
      case .years: 86_400 * 365.25
      }
    }
  }

  public var description: String {
    switch self {
    case .exact: return "exact"
    case .jaroWinkler(let t): return "jaro_winkler >= \(t)"
    case .jaro(let t): return "jaro >= \(t)"
    case .levenshtein(let n): return "levenshtein <= \(n)"
    case .damerauLevenshtein(let n): return "damerau_levenshtein <= \(n)"
    case .tokenSet(let t): return "token_set >= \(t)"
    case .within(let n, let u): return Self.withinText(n, u)
    case .seenWithin(let n, let u): return Self.withinText(n, u)
    case .transposedDayMonth: return "transposed_day_month"
    case .soundex: return "soundex"
    case .nickname: return "nickname"
    case .swappedWith(let f): return "swapped_with \(f)"
    }
  }

  static func withinText(_ n: Double, _ u: TimeUnit?) -> String {
    let count = Value.double(n).description.replacingOccurrences(of: ".0", with: "")
    let unit = u.map { n == 1 ? " " + String($0.rawValue.dropLast()) : " " + $0.rawValue } ?? ""
    return "within \(count)\(unit)"
  }
}

public struct LevelDecl: Sendable {
  public var level: ComparisonLevel
  /// Fixed in the configuration: training leaves them alone.
  public var m: Double?
  public var u: Double?
  /// Term-frequency adjustment for exact matches.
  public var termFrequency: Bool
  public var location: SourceLocation
  /// Read from the rule's parameters file.
  public var trainedM: Double?
  public var trainedU: Double?
}

public struct ComparisonDecl: Sendable {
  /// The comparison's name: the trait it compares, or the name of a comparison `of` several traits.
  public var trait: String
  /// The traits compared, each with the same trait of the other record; a pair reaches the best level any
  /// of them reaches (`contact: { of: [email, phone], levels: [exact] }`: one piece of evidence, not two).
  public var fields: [String]
  public var levels: [LevelDecl]
  public var location: SourceLocation
  /// m and u of the implicit last level (no declared level matched), when fixed in the configuration.
  public var elseM: Double?
  public var elseU: Double?
  /// The same, read from the rule's parameters file.
  public var trainedElseM: Double?
  public var trainedElseU: Double?
  public init(
    trait: String, fields: [String]? = nil, levels: [LevelDecl], location: SourceLocation, elseM: Double? = nil,
    elseU: Double? = nil
  ) {
    self.trait = trait
    self.fields = fields ?? [trait]
    self.levels = levels
    self.location = location
    self.elseM = elseM
    self.elseU = elseU
  }
}

public struct ProbabilisticRule: Sendable {
  public var name: String
  public var location: SourceLocation
  /// Each blocking rule is a list of key expressions; records agreeing on all keys of one rule are compared.
  public var blocking: [[CompiledExpr]]
  /// Per blocking rule: whether its pairs train m by expectation–maximisation (`train: false` leaves out
  /// rules whose pairs are mostly look-alikes that are not the same person, e.g. a shared household phone).
  public var trainOn: [Bool] = []
  public var comparisons: [ComparisonDecl]
  public var merge: Double
  public var review: Double
  /// The probability that two random records are the same person; nil: estimated when training.
  public var prior: Double?
  public var maxClusterSize: Int
  public var scope: Scope
  /// The trained-parameters file named by `parameters:` (resolved path), read into the levels' m and u.
  public var parametersFile: String?
  /// How the rule keeps and weighs device signals; nil when it compares none.
  public var signals: SignalSettings?
  /// The consent purpose both sides must have given for the rule to use their signals (`consent:`).
  public var consent: String?
  /// Identifier kinds two people never share with different values: a profile holding one value of such a
  /// kind is never linked by this rule with an event or profile holding another (`keep_apart:`).
  public var keepApart: [String] = []
  /// The prior read from the parameters file.
  public var trainedPrior: Double?

  public init(
    name: String, location: SourceLocation, blocking: [[CompiledExpr]], comparisons: [ComparisonDecl],
    merge: Double, review: Double, prior: Double?, maxClusterSize: Int, scope: Scope
  ) {
    self.name = name
    self.location = location
    self.blocking = blocking
    self.comparisons = comparisons
    self.merge = merge
    self.review = review
    self.prior = prior
    self.maxClusterSize = maxClusterSize
    self.scope = scope
  }
}

/// How a probabilistic rule that compares device signals keeps each profile's sightings and weighs values
/// many people share (`signals:` in the rule).
public struct SignalSettings: Sendable, Hashable {
  /// How long a sighting is kept after it was last seen (`keep`).
  public var keep = TimeSpan(seconds: 30 * 86_400)
  /// Sightings (distinct combinations of signal values) kept per profile, newest first (`per_profile`).
  public var perProfile = 8
  /// The sliding window over which the profiles seen with a value are counted (`window`).
  public var window = TimeSpan(seconds: 86_400)
  /// A value seen on more profiles than this within the window adds nothing (`max_sharing`).
  public var maxSharing = 50
  /// The signals whose agreement weighs less the more profiles share the value (`frequency`).
  public var frequency: [String] = ["signals.ip", "signals.ip_prefix"]
  /// The column of record files that holds when each record was seen (`time`), for `tessera link`, `tune`
  /// and `explain --records`; nil: `timestamp`.
  public var time: String?
  public init() {}
}

public enum PolicyKind: String, Sendable, CaseIterable {
  case source_priority, most_recent, first_seen, most_frequent, max, min, sum, union
}

public struct TraitDecl: Sendable {
  public var name: String
  public var location: SourceLocation
  public var type: ExprType
  public var policy: PolicyKind
  public var sources: [String]
}

public enum Aggregate: String, Sendable, CaseIterable {
  case count, sum, min, max, avg, first, last, most_frequent, distinct_count
}

public struct ComputedTraitDecl: Sendable {
  public var name: String
  public var location: SourceLocation
  public var aggregate: Aggregate
  public var of: CompiledExpr?
  public var filter: CompiledExpr?
  public var window: TimeSpan?
  public var type: ExprType
}

public struct SegmentDecl: Sendable {
  public var name: String
  public var location: SourceLocation
  public var description: String?
  public var condition: CompiledExpr
  /// Other segments this one reads, directly.
  public var dependsOn: [String]
}

public enum DestinationKind: String, Sendable, CaseIterable { case webhook, file, table }
public enum Trigger: String, Sendable, CaseIterable { case profile_changes, segment_changes, events }

public struct BatchSettings: Sendable, Hashable {
  public var maxEvents = 500
  public var maxBytes = 1_000_000
  public var maxWait = TimeSpan(seconds: 5)
  public init() {}
}

public struct RetrySettings: Sendable, Hashable {
  public var attempts = 10
  public var backoffMin = TimeSpan(seconds: 1)
  public var backoffMax = TimeSpan(seconds: 300)
  public var maxAge = TimeSpan(seconds: 86_400)
  public init() {}
}

public struct DestinationDecl: Sendable {
  public var name: String
  public var location: SourceLocation
  public var kind: DestinationKind
  public var trigger: Trigger
  public var url: String?
  public var headers: [String: String]
  public var path: String?
  public var format: String
  public var table: String?
  public var database: String?
  public var segments: [String]
  public var filter: CompiledExpr?
  public var consent: String?
  public var payload: [(key: String, expr: CompiledExpr)]
  public var batch: BatchSettings
  public var retry: RetrySettings
  public var rotateBytes: Int?
  public var rotateEvery: TimeSpan?
  public var scope: Scope
  /// Webhooks: how long one request may take, where deletion notices go, batches in flight at once.
  public var timeout = TimeSpan(seconds: 30)
  public var deletionURL: String?
  public var concurrency = 4
}

/// Everything a pipeline declares, across all its files, after checking.
public struct PipelineConfig: Sendable {
  public var name: String
  public var description: String?
  public var file: String
  public var files: [String]
  public var sources: [SourceDecl] = []
  public var identifiers: [IdentifierDecl] = []
  public var deterministic: [DeterministicRule] = []
  public var probabilistic: [ProbabilisticRule] = []
  public var defaultPolicy: PolicyKind = .most_recent
  public var traits: [TraitDecl] = []
  public var computed: [ComputedTraitDecl] = []
  public var segments: [SegmentDecl] = []
  public var destinations: [DestinationDecl] = []
  /// Profile syncs to a warehouse (`sync:`), run by `tessera sync`.
  public var syncs: [SyncDecl] = []
  public var consentPurposes: [String] = ["analytics", "advertising", "personalization"]
  public var measurement = MeasurementConfig()

  public func identifier(_ name: String) -> IdentifierDecl? { identifiers.first { $0.name == name } }
  public func source(_ name: String) -> SourceDecl? { sources.first { $0.name == name } }

  /// The traits a segment condition's scope holds, in slot order: declared traits, then computed traits, as
  /// `DeclarationChecker.readSegments` builds the scope. The runtime fills `traits.<name>` slots in this order.
  public var segmentTraitOrder: [String] { traits.map(\.name) + computed.map(\.name) }
}
