import TesseraCompiler
import TesseraRuntime
import TesseraStore

/// The readers of a pipeline's `postgres` sources, for `tessera run` and `tessera serve`.
public enum TableSources {
  /// Readers that read to the end and return (`tessera run`), by source index.
  public static func readers(_ config: PipelineConfig, store: any PipelineStore, batchSize: Int = 1024) throws -> [Int:
    any SourceReader]
  {
    var out: [Int: any SourceReader] = [:]
    for (i, s) in config.sources.enumerated() where s.kind == .postgres {
      out[i] = try PostgresSourceReader(source: s, store: store, batchSize: batchSize)
    }
    return out
  }

  /// Readers that poll until stopped, made afresh for each graph of `tessera serve`; nil when the pipeline has no
  /// table source.
  public static func polling(_ config: PipelineConfig, store: any PipelineStore) -> (
    @Sendable (SourceStop) -> [Int: any SourceReader]
  )? {
    let sources = config.sources.enumerated().filter { $0.element.kind == .postgres && $0.element.table != nil }
    guard !sources.isEmpty else { return nil }
    return { stop in
      var out: [Int: any SourceReader] = [:]
      for (i, s) in sources { out[i] = try? PostgresSourceReader(source: s, store: store, stop: stop) }
      return out
    }
  }
}
