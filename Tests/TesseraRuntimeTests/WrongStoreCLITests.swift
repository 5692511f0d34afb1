import Foundation
import Testing

/// `--store` naming a file that is not a Tessera store, as a user meets it: every command that opens a store
/// refuses it with the reason and exit status 1, and the file is left as it was, with nothing beside it.
/// (`Tests/TesseraStoreTests/WrongFileTests` goes through each kind of wrong file.) `dry-run --against` named
/// the temporary copy it had made and told the user to fix `--store`.
@Suite(
  "End to end: a store path that is not a store",
  .enabled(if: E2E.CLI.binary != nil, "no built `tessera`; run `swift build --build-tests` first"))
struct WrongStoreCLITests {
  @Test("run, serve, profile, deliver and dry-run --against refuse a text file and leave it untouched")
  func textFile() async throws {
    let dir = try E2E.TempDir()
    defer { dir.remove() }
    let text = "customer_id,email\n100101,ada@example.com\n"
    let path = try dir.write("customers.sqlite", text)
    let commands: [[String]] = [
      ["run", "pipelines/retail.yaml", "--store", path],
      ["serve", "pipelines/retail.yaml", "--store", path, "--port", "0"],
      ["profile", "user_id:100101", "--store", path],
      ["deliver", "pipelines/retail.yaml", "--store", path],
      ["dry-run", "pipelines/retail.yaml", "--sample", "examples/newsletter.csv", "--against", path],
    ]
    for arguments in commands {
      let r = try await E2E.CLI.tessera(arguments)
      #expect(r.status == 1, "tessera \(arguments[0]): \(r.status) \(r.stderr)")
      let hint =
        arguments[0] == "dry-run"
        ? "give --against the path of a Tessera store\n"
        : "give --store the path of a Tessera store, or of a file that does not exist yet to create one\n"
      #expect(
        r.stderr.contains(
          "`\(path)` is not a Tessera store: it is not a SQLite database (it begins `customer_id,email·100101`). "
            + "The file was left untouched; " + hint), "tessera \(arguments[0]): \(r.stderr)")
      #expect(try String(contentsOfFile: path, encoding: .utf8) == text)
      let beside = try FileManager.default.contentsOfDirectory(atPath: dir.path)
      #expect(beside == ["customers.sqlite"], "tessera \(arguments[0]) left \(beside)")
    }
  }
}
