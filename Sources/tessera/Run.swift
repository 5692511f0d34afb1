import ArgumentParser
import Foundation
import Synchronization
import TesseraCompiler
import TesseraConnectors
import TesseraModel
import TesseraRuntime
import TesseraSQLite
import TesseraStore
import TesseraWarehouse

struct Run: AsyncParsableCommand {
  static let configuration = CommandConfiguration(
    abstract: "Run a pipeline's file sources to the end into the store.",
    discussion: """
      Compiles the pipeline, then reads every csv and ndjson source (and every postgres source's rows past its \
      stored cursor), maps and validates each record, resolves \
      identities, unifies profiles and commits to the store (SQLite by default) in transactions of \
      --commit-events events. Records that fail mapping or the schema are rejected with their source, line and \
      reason: kept in the store's rejected table and, with --rejected, written to a file. Running again over \
      the same files adds nothing: events are recognised by their id. Ctrl-C stops cleanly; what was \
      committed stays whole and the next run continues.

      A store that cannot write (a full disk, an I/O error, a read-only file system, a lost database \
      connection) stops the run at once: it says what happened, what each source had committed, and how to \
      continue.

      Exit status: 0 on success, 1 on configuration errors, 2 when a source cannot be read, 3 when --deliver \
      left deliveries pending, 4 when the store could not write, 130 when interrupted.
      """)

  @Argument(help: "The pipeline file (e.g. pipelines/retail.yaml).")
  var pipeline: String

  @OptionGroup var storeOption: StoreOption
  var store: String { storeOption.spec }

  @Option(help: "Decode & map workers (default: the number of cores).")
  var workers: Int = ProcessInfo.processInfo.activeProcessorCount

  @Option(help: "Also write rejected records to this file, one JSON object per line.")
  var rejected: String?

  @Option(help: "Records per batch handed to the decode & map workers.")
  var batchSize: Int = 1024

  @Option(
    help: """
      Events per store transaction. Larger transactions rewrite each index page once for more rows (SQLite: \
      65536 is ~57 % faster than 8192 over 1M events); the batch is held in memory until it commits.
      """)
  var commitEvents: Int = PipelineRunner.defaultCommitEvents

  @Option(
    help: """
      The time the run evaluates segments and computed-trait windows at, ISO 8601 (default: the current time). \
      Also the time of events without a timestamp.
      """)
  var now: String?

  @Option(
    help: """
      What the progress display shows on standard error: `line` (records, events/s, profiles), `stages` (a line \
      per stage of the plan: tasks, items/s, what waits at its input, how busy its tasks are), or `none`.
      """)
  var progress: ProgressMode = .line

  @Flag(help: "Deliver the changes the run queued for destinations before exiting (see `tessera deliver`).")
  var deliver = false

  @Option(help: "With --deliver: how long to keep retrying failed deliveries, e.g. 30s or 5m.")
  var deliverWait: String = "30s"

  func run() async throws {
    let plan = try PipelineOptions.compile(pipeline)
    let again = CommandLine.arguments.dropFirst().map(Shell.quoted).joined(separator: " ")
    /// The store stopped the run: why, what each source had committed, how to go on; exit status 4.
    func stopped(_ what: String, advice: String, _ committed: RunCounters.Snapshot) -> ExitCode {
      FileHandle.standardError.write(
        Data((RunStopped.message(what, advice: advice, committed, again: again) + "\n").utf8))
      return ExitCode(4)
    }
    let storeFile: any Store
    do {
      storeFile = try await StoreLocation.open(store)
    } catch let e as StoreUnavailable {
      throw stopped(e.description, advice: e.advice, .init())
    }
    var readers: [Int: any SourceReader] = [:]
    for (i, s) in plan.config.sources.enumerated() where s.kind.readsFiles {
      readers[i] = FileSourceReader(source: s, batchSize: batchSize)
    }
    for (i, r) in try TableSources.readers(plan.config, store: storeFile, batchSize: batchSize) { readers[i] = r }
    var runner = PipelineRunner(plan: plan, store: storeFile, readers: readers, workers: workers)
    if let t = try PipelineOptions.now(now) { runner.now = t }
    runner.commitEvents = commitEvents
    // While a `tessera serve` is the store's writer, the files' events go through its journal.
    runner.journalWhenNotWriter = true
    let rejectedFile = try rejected.map { try RejectedFile(path: $0) }
    if let rejectedFile { runner.onRejected = { rejectedFile.write($0) } }
    let progress = Progress(counters: runner.counters, monitor: runner.monitor, mode: self.progress)
    let task = Task { [runner] in try await runner.run() }
    let interrupt = Interrupt { task.cancel() }
    let ticker = Task { await progress.tick() }
    defer {
      ticker.cancel()
      interrupt.stop()
    }
    do {
      let summary = try await task.value
      ticker.cancel()
      progress.clear()
      print(Summary.table(summary, store: store, rejectedFile: rejected))
      let lost = Summary.mappingNotes(summary.stats.notes)
      if !lost.isEmpty { print(lost) }
      if deliver {
        let left = try await Deliver.drain(
          plan.config, store: storeFile, storePath: StoreLocation.tablePath(store), wait: deliverWait)
        if left > 0 { throw ExitCode(3) }
      } else if summary.stats.queued > 0 {
        print("  send them with: tessera deliver \(pipeline) --store \(store)")
      }
      if !summary.unrestoredComputed.isEmpty {
        let names = summary.unrestoredComputed.map { "`\($0)`" }.joined(separator: ", ")
        FileHandle.standardError.write(
          Data(
            ("warning: the declarations of computed traits \(names) changed since their states were stored; "
              + "they restarted from this run's events. Rebuild them from the whole event log with "
              + "`tessera replay \(pipeline) --store \(store)`\n").utf8))
      }
    } catch is CancellationError {
      ticker.cancel()
      progress.clear()
      FileHandle.standardError.write(
        Data("interrupted: everything committed is whole; run again to continue from there\n".utf8))
      throw ExitCode(130)
    } catch let e as StoreUnavailable {
      ticker.cancel()
      progress.clear()
      throw stopped(e.description, advice: e.advice, runner.counters.snapshot)
    } catch let e as StoreError {
      ticker.cancel()
      progress.clear()
      throw stopped(
        "the store refused a transaction: \(e)", advice: "fix what the reason names", runner.counters.snapshot)
    } catch let e as SourceError {
      ticker.cancel()
      progress.clear()
      FileHandle.standardError.write(Data("error: \(e)\n".utf8))
      throw ExitCode(2)
    }
  }
}

/// Appends rejected records to a file as NDJSON.
final class RejectedFile: Sendable {
  let handle: FileHandle
  init(path: String) throws {
    guard FileManager.default.createFile(atPath: path, contents: nil), let h = FileHandle(forWritingAtPath: path)
    else {
      throw ValidationError("cannot write the rejected-records file `\(path)`")
    }
    handle = h
  }
  func write(_ records: [RejectedRecord]) {
    var out = ""
    for r in records {
      var m: [String: Value] = ["source": .string(r.source), "reason": .string(r.reason), "record": .string(r.record)]
      if let line = r.line { m["line"] = .int(Int64(line)) }
      out += JSON.encode(.map(m)) + "\n"
    }
    handle.write(Data(out.utf8))
  }
}

/// Stops the run on Ctrl-C (SIGINT) or SIGTERM by cancelling its task.
final class Interrupt {
  let sources: [any DispatchSourceSignal]
  init(_ onSignal: @escaping @Sendable () -> Void) {
    sources = [SIGINT, SIGTERM].map { sig in
      signal(sig, SIG_IGN)
      let s = DispatchSource.makeSignalSource(signal: sig, queue: .global())
      s.setEventHandler(handler: onSignal)
      s.resume()
      return s
    }
  }
  func stop() { for s in sources { s.cancel() } }
}

enum ProgressMode: String, ExpressibleByArgument, CaseIterable {
  case line, stages, none
}

/// The progress display: a line (or a block of one line per stage) that redraws on a terminal, printed every
/// few seconds otherwise.
final class Progress: Sendable {
  let counters: RunCounters
  let monitor: GraphMonitor
  let mode: ProgressMode
  let terminal = isatty(STDERR_FILENO) != 0
  let started = ContinuousClock.now
  /// The stage figures of the previous display, for rates.
  let previous = Mutex<(at: ContinuousClock.Instant, items: [String: Int])?>(nil)
  /// How many lines the last display took (a terminal redraws over them).
  let drawn = Mutex(0)

  init(counters: RunCounters, monitor: GraphMonitor, mode: ProgressMode) {
    self.counters = counters
    self.monitor = monitor
    self.mode = mode
  }

  func line() -> String {
    let s = counters.snapshot
    let secs = max(0.001, (ContinuousClock.now - started) / .seconds(1))
    return String(
      format: "records %d · %.0f events/s · profiles %d · merges %d · rejected %d", s.recordsRead,
      Double(s.committed.events + s.committed.duplicates) / secs, s.profiles, s.committed.merges, s.committed.rejected)
  }

  /// One line per stage of the running graph: tasks, items sent on per second since the last display, batches
  /// (and items) waiting at its input, and the share of its tasks' time spent working.
  func stages() -> [String] {
    guard let metrics = monitor.metrics else { return ["starting…"] }
    let figures = metrics.figures()
    let now = ContinuousClock.now
    let last = previous.withLock { p in
      defer { p = (now, Dictionary(uniqueKeysWithValues: figures.map { ($0.id, $0.itemsOut) })) }
      return p
    }
    let secs = last.map { max(0.001, (now - $0.at) / .seconds(1)) }
    let width = max(12, figures.map(\.id.count).max() ?? 0)
    var out = [
      "stage".padding(toLength: width, withPad: " ", startingAt: 0) + "  tasks    items/s      queued   busy"
    ]
    for f in figures {
      let rate = secs.map { Double(f.itemsOut - (last?.items[f.id] ?? 0)) / $0 } ?? 0
      let queued = f.queuedBatches == 0 ? "0" : "\(f.queuedBatches) (\(f.queuedItems))"
      let pad = String(repeating: " ", count: max(0, 10 - queued.count))
      out.append(
        f.id.padding(toLength: width, withPad: " ", startingAt: 0)
          + String(format: "  %5d  %9.0f  ", f.tasks, rate) + pad + queued
          + String(format: "  %4.0f%%", f.busy * 100))
    }
    return out
  }

  func tick() async {
    guard mode != .none else { return }
    let interval: Duration = terminal ? (mode == .stages ? .seconds(1) : .milliseconds(250)) : .seconds(5)
    while !Task.isCancelled {
      try? await Task.sleep(for: interval)
      if Task.isCancelled { break }
      let lines = mode == .stages ? [line()] + stages() : [line()]
      var text = ""
      if terminal {
        // Back to the first line of the previous display, then each line redrawn.
        let up = drawn.withLock { n in
          defer { n = lines.count }
          return n
        }
        if up > 1 { text += "\u{1B}[\(up - 1)A" }
        text += lines.map { "\r\u{1B}[2K" + $0 }.joined(separator: "\n")
      } else {
        text = lines.joined(separator: "\n") + "\n"
      }
      FileHandle.standardError.write(Data(text.utf8))
    }
  }

  func clear() {
    guard terminal, mode != .none else { return }
    let n = drawn.withLock { $0 }
    var text = "\r\u{1B}[2K"
    for _ in 1..<max(1, n) { text += "\u{1B}[1A\r\u{1B}[2K" }
    FileHandle.standardError.write(Data(text.utf8))
  }
}

extension Summary {
  static func withheld(_ w: [String: Int]) -> String {
    w.isEmpty
      ? ""
      : ", "
        + w.sorted { $0.key < $1.key }.map { "\($0.value) withheld without consent to \($0.key)" }
        .joined(separator: ", ")
  }

  static func table(_ s: RunSummary, store: String, rejectedFile: String?) -> String {
    if s.journaled { return journaledTable(s, store: store, rejectedFile: rejectedFile) }
    let rows: [(String, String)] = [
      ("records read", "\(s.recordsRead)"),
      ("events stored", "\(s.stats.events)"),
      ("duplicates skipped", "\(s.stats.duplicates)"),
      ("rejected", "\(s.stats.rejected)" + (rejectedFile.map { " (see \($0))" } ?? "")),
      ("invalid identifiers dropped", "\(s.stats.invalidIdentifiers)"),
      ("profiles created", "\(s.stats.profilesCreated)"),
      ("merges", "\(s.stats.merges)"),
      ("conflicts (merges refused)", "\(s.stats.conflicts)"),
      ("probabilistic joins", "\(s.stats.probabilisticJoins)"),
      ("suppressed (deleted people)", "\(s.stats.suppressed)"),
      ("candidate links to review", "\(s.stats.reviewLinks)" + (s.stats.reviewLinks > 0 ? " (tessera review)" : "")),
      ("profiles in store", "\(s.profiles)"),
      ("changes for destinations", "\(s.stats.queued) queued" + withheld(s.stats.withheld)),
      ("time", String(format: "%.2f s (%.0f records/s)", s.seconds, s.eventsPerSecond)),
    ]
    return "run finished → \(store)\n" + aligned(rows)
  }

  static func aligned(_ rows: [(String, String)]) -> String {
    let width = rows.map(\.0.count).max() ?? 0
    return rows.map { "  " + $0.0.padding(toLength: width, withPad: " ", startingAt: 0) + "  " + $0.1 }.joined(
      separator: "\n")
  }

  /// Another process (a `tessera serve`) is the store's writer: the run journaled the events for it.
  static func journaledTable(_ s: RunSummary, store: String, rejectedFile: String?) -> String {
    let rows: [(String, String)] = [
      ("records read", "\(s.recordsRead)"),
      ("events journaled", "\(s.stats.events)"),
      ("duplicates skipped", "\(s.stats.duplicates)"),
      ("rejected", "\(s.stats.rejected)" + (rejectedFile.map { " (see \($0))" } ?? "")),
      ("invalid identifiers dropped", "\(s.stats.invalidIdentifiers)"),
      ("profiles in store", "\(s.profiles) (before the writer resolves these events)"),
      ("time", String(format: "%.2f s (%.0f records/s)", s.seconds, s.eventsPerSecond)),
    ]
    return "run finished → \(store): another process (a tessera serve) is the store's writer; the events were "
      + "journaled and it resolves them in a moment\n" + aligned(rows)
  }
}
