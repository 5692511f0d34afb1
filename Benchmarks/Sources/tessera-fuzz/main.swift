// Fuzzing at scale: the seeded hostile inputs of `Tests/TesseraFuzz` (the CI tests run a few thousand) in
// runs of any size, each input made from the seed and its index alone, so a piece of a run, or one input, can
// be run again by itself.
//
//   swift run -c release --package-path Benchmarks tessera-fuzz TARGET [--seed S] [--first N] [--count N]
//     [--clients C] [--records R]
//
// TARGET: `tracking` (requests to a real server on loopback; --clients concurrent connections), `files`
// (runs of the example pipeline over three mutated files of --records records each; --first/--count count
// runs), `yaml` (compilations of the mutated example pipeline), `formats` (JSON and CSV readers alone).
// Exit status 1 when any input broke a promise; `Benchmarks/fuzz.sh` runs a million inputs per target in pieces.
import Foundation
import TesseraFuzz

let root = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
  .deletingLastPathComponent().deletingLastPathComponent().path
let args = Array(CommandLine.arguments.dropFirst())

func option(_ name: String, _ fallback: Int) -> Int {
  guard let i = args.firstIndex(of: "--" + name), i + 1 < args.count, let v = Int(args[i + 1]) else { return fallback }
  return v
}

guard let target = args.first, ["tracking", "files", "yaml", "formats"].contains(target) else {
  FileHandle.standardError.write(
    Data(
      "usage: tessera-fuzz tracking|files|yaml|formats [--seed S] [--first N] [--count N] [--clients C] [--records R]\n"
        .utf8))
  exit(64)
}
let seed = UInt64(option("seed", 22))
let first = option("first", 0)
let count = option("count", 10_000)
let dir = FileManager.default.temporaryDirectory.appendingPathComponent("tessera-fuzz-\(UUID().uuidString)").path
defer { try? FileManager.default.removeItem(atPath: dir) }

let report: FuzzReport
switch target {
case "tracking":
  report = try await TrackingFuzz.run(
    seed: seed, first: first, count: count, clients: option("clients", 8), fixtures: root + "/Tests/Fixtures/sdk",
    dir: dir)
case "files":
  report = try await FileFuzz.run(
    seed: seed, first: first, count: count, records: option("records", 1_000), root: root, dir: dir)
case "yaml":
  report = try YAMLFuzz.run(seed: seed, first: first, count: count, root: root)
default:
  report = try FormatFuzz.run(seed: seed, first: first, count: count, root: root)
}
print(report, terminator: "")
print("cores=\(ProcessInfo.processInfo.activeProcessorCount)")
exit(report.failureCount == 0 ? 0 : 1)
