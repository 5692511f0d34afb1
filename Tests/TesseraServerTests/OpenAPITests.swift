import Foundation
import TesseraCompiler
import TesseraSQLite
import TesseraServer
import Testing

@Suite("docs/openapi.yaml describes the real routes")
struct OpenAPITests {
  /// `METHOD /path` for every operation under `paths:` (two-space path keys, four-space method keys).
  static func documented() throws -> Set<String> {
    let text = try String(contentsOfFile: Paths.packageRoot + "/docs/openapi.yaml", encoding: .utf8)
    var out: Set<String> = []
    var inPaths = false
    var path: String?
    for line in text.split(separator: "\n", omittingEmptySubsequences: false) {
      if !line.hasPrefix(" ") && !line.isEmpty && !line.hasPrefix("#") { inPaths = line.hasPrefix("paths:") }
      guard inPaths else { continue }
      if line.hasPrefix("  /") && line.hasSuffix(":") {
        path = String(line.dropFirst(2).dropLast())
      } else if line.hasPrefix("    "), !line.hasPrefix("     "), let path {
        let key = line.trimmingCharacters(in: .whitespaces).prefix { $0 != ":" }
        if ["get", "post", "put", "patch", "delete"].contains(key) { out.insert("\(key.uppercased()) \(path)") }
      }
    }
    return out
  }

  @Test("every route is documented and every documented operation exists")
  func routesMatch() throws {
    let dir = FileManager.default.temporaryDirectory.appendingPathComponent("tessera-openapi-\(UUID().uuidString)").path
    try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
    try testPipeline.write(toFile: dir + "/p.yaml", atomically: true, encoding: .utf8)
    let plan = try #require(Compiler().compile(pipeline: dir + "/p.yaml").plan)
    let server = TesseraHTTPServer(
      plan: plan, store: try SQLiteStore(path: dir + "/s.sqlite"), options: .init(benchmarkRoutes: false))
    let routes = Set(server.routes)
    let documented = try Self.documented()
    #expect(documented.count >= 15)
    #expect(routes.subtracting(documented).isEmpty, "routes missing from docs/openapi.yaml")
    #expect(documented.subtracting(routes).isEmpty, "documented operations the server does not have")
  }

  @Test("the document is OpenAPI 3 and every operation answers with documented JSON errors")
  func shape() throws {
    let text = try String(contentsOfFile: Paths.packageRoot + "/docs/openapi.yaml", encoding: .utf8)
    #expect(text.hasPrefix("openapi: 3."))
    #expect(text.contains("  schemas:\n    Error:"))
    #expect(text.contains("basicAuth:") && text.contains("bearerAuth:"))
  }
}
