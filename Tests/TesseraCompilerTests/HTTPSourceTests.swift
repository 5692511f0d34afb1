import TesseraCompiler
import TesseraLanguage
import Testing

@Suite("http sources: write keys and limits")
struct HTTPSourceTests {
  static func pipeline(_ source: String) -> String {
    """
    pipeline: p
    identifiers:
      user_id: { normalize: trim }
    sources:
      app:
        kind: http
    \(source)
    """
  }

  @Test("limits default to 4 MiB per request and 32 KiB per message")
  func defaults() throws {
    let result = compileInMemory(["p.yaml": Self.pipeline("    write_key: ${KEY}")], environment: ["KEY": "k1"])
    let source = try #require(result.plan?.config.sources.first)
    #expect(source.writeKey == "k1")
    #expect(source.maxRequestBytes == 4_194_304)
    #expect(source.maxEventBytes == 32_768)
  }

  @Test("max_request_bytes and max_event_bytes are read")
  func configured() throws {
    let result = compileInMemory([
      "p.yaml": Self.pipeline("    write_key: k\n    max_request_bytes: 1_000_000\n    max_event_bytes: 2048")
    ])
    #expect(result.diagnostics.filter { $0.severity == .error }.isEmpty)
    let source = try #require(result.plan?.config.sources.first)
    #expect(source.maxRequestBytes == 1_000_000)
    #expect(source.maxEventBytes == 2048)
  }

  @Test("wrong limits are reported at their value")
  func wrongLimits() {
    let result = compileInMemory([
      "p.yaml": Self.pipeline("    write_key: k\n    max_request_bytes: lots\n    max_event_bytes: 10")
    ])
    #expect(
      result.diagnostics.map(\.description) == [
        "p.yaml:8:24: error: expected an integer for `max_request_bytes` in source `app`, found `lots`",
        "p.yaml:9:22: error: `max_event_bytes` in source `app` must be at least 64, found 10",
      ])
  }

  @Test("a message limit above the request limit is an error")
  func eventOverRequest() {
    let result = compileInMemory([
      "p.yaml": Self.pipeline("    write_key: k\n    max_request_bytes: 2048\n    max_event_bytes: 4096")
    ])
    #expect(
      result.diagnostics.map(\.description) == [
        "p.yaml:9:22: error: `max_event_bytes` (4096) of source `app` exceeds its `max_request_bytes` (2048)"
      ])
  }

  @Test("limits on a file source are reported at the key")
  func limitsOnFileSource() {
    let files = [
      "p.yaml": """
      pipeline: p
      identifiers:
        user_id: { normalize: trim }
      sources:
        f:
          kind: ndjson
          path: x.ndjson
          emit: identify
          max_event_bytes: 100
          map: { user_id: id }
      """
    ]
    let result = compileInMemory(files)
    #expect(
      result.diagnostics.filter { $0.severity == .error }.map(\.description) == [
        "p.yaml:9:5: error: `max_event_bytes` is for http sources; a ndjson source reads files"
      ])
  }

  @Test("a missing write key variable is reported")
  func missingKey() {
    let result = compileInMemory(["p.yaml": Self.pipeline("    write_key: ${NOPE}")])
    #expect(result.plan == nil)
    #expect(result.diagnostics.contains { $0.severity == .error && $0.location.line == 7 })
  }
}
