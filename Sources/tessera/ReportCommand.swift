import ArgumentParser
import Foundation
import TesseraMeasurement
import TesseraModel

struct ReportCommand: AsyncParsableCommand {
  static let configuration = CommandConfiguration(
    commandName: "report",
    abstract: "Compute a funnel or an attribution report of the pipeline's `measurement` section, counted by people.",
    discussion: """
      The report reads the store's event log and groups every event under the profile it belongs to now, so a \
      later identify that joined a phone and a laptop joins their earlier touches too, and erased people are \
      absent. --by devices and --by sessions count the same events by anonymous id and by session instead; \
      give several (--by people,devices,sessions or --by all) to see them side by side. Conversions and funnel \
      entries count from --from (inclusive) to --to (exclusive); touches before --from still get credit.
      """)

  @Argument(help: "The pipeline file.")
  var pipeline: String

  @Argument(help: "The report: a funnel or an attribution report the pipeline declares.")
  var name: String

  @OptionGroup var storeOption: StoreOption

  @Option(help: "Count conversions and funnel entries from this time (ISO 8601, inclusive).")
  var from: String?

  @Option(help: "… up to this time (ISO 8601, exclusive).")
  var to: String?

  @Option(help: "people, devices, sessions, a comma-separated list of them, or all.")
  var by = "people"

  @Option(help: "text, json or csv.")
  var format: SegmentsCommand.MembersFormat = .text

  @Option(help: "Also write the report as an SVG chart to this file.")
  var chart: String?

  @Option(help: "How many conversion paths to list.")
  var paths = 10

  func run() async throws {
    let plan = try PipelineOptions.compile(pipeline)
    guard let units = CountingUnit.list(parsing: by) else {
      throw ValidationError("--by `\(by)`: use people, devices, sessions, a comma-separated list of them, or all")
    }
    var query: ReportQuery
    do {
      query = try ReportQuery(
        config: plan.config, name: name, from: try PipelineOptions.time(from, option: "--from"),
        to: try PipelineOptions.time(to, option: "--to"),
        units: units)
    } catch let e as UnknownReport {
      throw ValidationError(e.description)
    }
    query.topPaths = max(paths, 0)
    let store = try await StoreLocation.open(storeOption.spec, mustExist: true)
    let report = try await Measurement.report(
      query, config: plan.config, store: store, workers: ProcessInfo.processInfo.activeProcessorCount)
    switch format {
    case .text: print(report.text, terminator: "")
    case .json: print(JSON.encode(report.json))
    case .csv: print(report.csv, terminator: "")
    }
    if let chart {
      try report.svg.write(toFile: chart, atomically: true, encoding: .utf8)
      FileHandle.standardError.write(Data("chart written to \(chart)\n".utf8))
    }
  }
}
