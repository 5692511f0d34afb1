import TesseraCompiler
import TesseraModel
import TesseraStore

/// Finding a person by `kind:value` or profile id, and erasing them: shared by `tessera profile`,
/// `tessera delete` and the server's profile API.
public enum PersonLookup {
  /// Why a person could not be looked up.
  public struct Malformed: Error, Sendable, CustomStringConvertible {
    public var text: String
    public var description: String { "`\(text)` is neither `kind:value` nor a profile id like prf_12" }
  }

  /// A profile id (followed to the profile that absorbed it) or `kind:value`, normalized as `config`
  /// declares the kind when given; emails and phone numbers are also tried in their usual normal form.
  public static func resolve(_ text: String, in store: any Store, config: PipelineConfig?) async throws -> ProfileID? {
    if let p = ProfileID(parsing: text) { return try await store.canonical(p) }
    guard let raw = Identifier(parsing: text) else { throw Malformed(text: text) }
    var candidates = [raw.value]
    if let decl = config?.identifier(raw.kind), let n = decl.normalize(raw.value) { candidates.insert(n, at: 0) }
    if let e = Normalize.email(raw.value) { candidates.append(e) }
    if let p = Normalize.phoneE164(raw.value) { candidates.append(p) }
    candidates.append(Normalize.trim(raw.value))
    for c in candidates {
      if let p = try await store.profile(for: Identifier(raw.kind, c)) { return p }
    }
    return nil
  }
}

/// Erasing a person (right to erasure).
public enum Deletion {
  /// What `erase` did: the profile, the store's counts and how many identifiers were suppressed.
  public struct Outcome: Sendable, Hashable {
    public var profile: ProfileID
    public var report: DeletionReport
    public var suppressed: Int
    /// Deletion notices queued for destinations (webhooks with a `deletion_url`, tables).
    public var notices: Int
  }

  /// Erases the live profile `profile` and every profile merged into it. Every identifier any profile of the
  /// family held (rows, merge evidence, event bodies) is gathered first: its value is looked for in rejected
  /// records, and its hash is added to the suppression list so later events carrying it are dropped. With
  /// `config`, its destinations are told in the same transaction (`DeletionNotices`).
  public static func erase(_ profile: ProfileID, in store: any Store, config: PipelineConfig?, at: Timestamp)
    async throws -> Outcome
  {
    var ids = Set(try await store.identifiers(of: profile).map(\.0))
    var family: Set<ProfileID> = [profile]
    for m in try await store.merges(involving: profile) {
      ids.formUnion(m.evidence)
      family.formUnion([m.survivor, m.absorbed])
    }
    for e in try await store.events(of: profile, limit: .max) { ids.formUnion(e.event.identifiers) }
    let values = Set(ids.map(\.value))
    let notices =
      config.map {
        DeletionNotices.rows($0, profile: profile, family: family.sorted(), identifiers: ids.sorted(), at: at)
      } ?? []
    let report = try await store.erase(
      profile: profile, values: values.sorted(), suppress: ids.map(Suppression.hash).sorted(), notices: notices)
    return Outcome(profile: profile, report: report, suppressed: ids.count, notices: notices.count)
  }
}
