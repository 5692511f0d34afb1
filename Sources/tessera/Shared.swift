import ArgumentParser
import Foundation
import TesseraCompiler
import TesseraModel
import TesseraPostgres
import TesseraSQLite
import TesseraStore

/// What the commands that run a pipeline share: compiling it (with `--set` overrides), printing the
/// diagnostics, and reading `--now`.
enum PipelineOptions {
  /// Compiles `path`; diagnostics go to standard error, and errors end the command with status 1.
  static func compile(_ path: String, sets: [String] = []) throws -> PipelinePlan {
    var compiler = Compiler()
    for s in sets {
      guard let o = Override(parsing: s) else {
        throw ValidationError("--set `\(s)` is not PATH=VALUE (e.g. rules.person.thresholds.merge=0.95)")
      }
      compiler.overrides.append(o)
    }
    let result = compiler.compile(pipeline: path)
    if !result.diagnostics.isEmpty { FileHandle.standardError.write(Data((result.rendered() + "\n").utf8)) }
    guard let plan = result.plan else { throw ExitCode(1) }
    return plan
  }

  /// `--now` as a timestamp; nil when not given.
  static func now(_ text: String?) throws -> Timestamp? { try time(text, option: "--now") }

  /// A time option (`--now`, `--from`, …) as a timestamp; nil when not given.
  static func time(_ text: String?, option: String) throws -> Timestamp? {
    guard let text else { return nil }
    guard let t = Timestamp(iso8601: text) else {
      throw ValidationError("\(option) `\(text)` is not an ISO 8601 time (e.g. 2026-06-30T00:00:00Z)")
    }
    return t
  }
}

/// Where a command's store is: a SQLite file (the default) or a PostgreSQL database.
///
/// `--store` takes a file path or a `postgres://user@host:port/database` URL; without `--store` the
/// `TESSERA_STORE_URL` environment variable is used when set, else `tessera.sqlite`.
/// `--store`, as every command that opens a store takes it.
struct StoreOption: ParsableArguments {
  @Option(
    name: .customLong("store"),
    help: "The store: a SQLite file (default tessera.sqlite) or postgres://user@host:port/db; else $TESSERA_STORE_URL.")
  var value: String?

  /// The option, else the environment variable, else the default file.
  var spec: String { StoreLocation.spec(value) }
}

enum StoreLocation {
  static let environmentVariable = "TESSERA_STORE_URL"
  static let defaultPath = "tessera.sqlite"

  /// The `--store` value, else the environment variable, else the default file.
  static func spec(_ option: String?) -> String {
    if let option { return option }
    if let env = ProcessInfo.processInfo.environment[environmentVariable], !env.isEmpty { return env }
    return defaultPath
  }

  static func isPostgres(_ spec: String) -> Bool {
    spec.hasPrefix("postgres://") || spec.hasPrefix("postgresql://")
  }

  /// Opens the store. `mustExist`: a SQLite file that is not there is an error (commands that only read).
  static func open(_ spec: String, mustExist: Bool = false) async throws -> any Store {
    if isPostgres(spec) {
      do { return try await PostgresStore(url: spec) } catch let e as PostgresStore.URLError {
        throw ValidationError("--store: \(e)")
      }
    }
    if mustExist { return try SegmentsCommand.open(spec) }
    return try SQLiteStore(path: spec)
  }

  /// The SQLite file `table` destinations write to when they name no `database:` — the store file itself,
  /// or `tessera-tables.sqlite` beside the command when the store is PostgreSQL.
  static func tablePath(_ spec: String) -> String { isPostgres(spec) ? "tessera-tables.sqlite" : spec }
}

/// Words of a command line as a shell reads them back.
enum Shell {
  static func quoted(_ word: String) -> String {
    let plain = word.allSatisfy { $0.isLetter || $0.isNumber || "-_./:=@,+%".contains($0) }
    if plain && !word.isEmpty { return word }
    return "'" + word.replacingOccurrences(of: "'", with: "'\\''") + "'"
  }
}
