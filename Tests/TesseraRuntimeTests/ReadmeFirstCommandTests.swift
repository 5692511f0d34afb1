import Foundation
import Testing

/// README's first command, read from README.md as it stands and run with the built `tessera` in a copy of the
/// repository's `pipelines/`, `rules/` and `examples/`.
@Suite(
  "End to end: README's first command",
  .enabled(if: E2E.CLI.binary != nil, "no built `tessera`; run `swift build --build-tests` first"))
struct ReadmeFirstCommandTests {
  /// The commands of README's first `sh` block, each without its `swift run tessera`.
  static func firstCommands() throws -> [[String]] {
    let readme = try String(contentsOfFile: E2E.packageRoot + "/README.md", encoding: .utf8)
    let start = try #require(readme.range(of: "```sh\n"), "README.md has no sh block")
    let line = readme[start.upperBound...].prefix { $0 != "\n" }
    return try line.components(separatedBy: " && ").map { command in
      let words = command.split(separator: " ").map(String.init)
      try #require(words.starts(with: ["swift", "run", "tessera"]), "`\(command)` does not run tessera")
      return Array(words.dropFirst(3))
    }
  }

  /// At today's date the example's orders had left every window: the profile README showed had no computed
  /// traits and no segment. The command now gives the run its `--now`.
  @Test("the profile it shows has computed traits and segments, whatever today's date")
  func profileWithComputedTraitsAndSegments() async throws {
    let commands = try Self.firstCommands()
    #expect(commands.first?.first == "run")
    #expect(commands.last?.first == "profile")
    let dir = try AddingSourceCLITests.checkout()
    defer { dir.remove() }
    var shown = ""
    for arguments in commands {
      let result = try await E2E.CLI.tessera(arguments, in: dir.path)
      #expect(result.status == 0, "tessera \(arguments.joined(separator: " ")): \(result.stderr)")
      shown = result.stdout
    }
    /// The lines of a section of `tessera profile`'s text, up to the blank line that ends it.
    func section(_ title: String) -> [Substring] {
      let lines = shown.split(separator: "\n", omittingEmptySubsequences: false)
      guard let i = lines.firstIndex(where: { $0.hasPrefix(title) }) else { return [] }
      return Array(lines[(i + 1)...].prefix { !$0.isEmpty })
    }
    let computed = section("computed traits")
    let orders = computed.first { $0.hasPrefix("  orders_90d ") }?.split(separator: " ").last.flatMap { Int($0) }
    #expect((orders ?? 0) > 0, "\(shown)")
    let segments = section("segments")
    #expect(!segments.isEmpty && segments != ["  none"], "\(shown)")
  }
}
