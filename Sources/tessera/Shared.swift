import ArgumentParser
import Foundation
import TesseraCompiler
import TesseraModel

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
  static func now(_ text: String?) throws -> Timestamp? {
    guard let text else { return nil }
    guard let t = Timestamp(iso8601: text) else {
      throw ValidationError("--now `\(text)` is not an ISO 8601 time (e.g. 2026-06-30T00:00:00Z)")
    }
    return t
  }
}
