// swift-tools-version: 6.1
// Benchmarks live in their own package so their release builds stay out of the main build and test cycle.
// Run: swift run -c release --package-path Benchmarks tessera-bench all
//      swift run -c release --package-path Benchmarks tessera-load [--route noop]
import PackageDescription

let package = Package(
  name: "TesseraBenchmarks",
  platforms: [.macOS(.v14)],
  dependencies: [
    .package(name: "Tessera", path: ".."),
    .package(url: "https://github.com/apple/swift-async-algorithms.git", from: "1.1.4"),
    .package(url: "https://github.com/swift-server/async-http-client.git", from: "1.37.0"),
  ],
  targets: [
    .executableTarget(
      name: "tessera-bench",
      dependencies: [
        .product(name: "TesseraModel", package: "Tessera"),
        .product(name: "TesseraLanguage", package: "Tessera"),
        .product(name: "TesseraCompiler", package: "Tessera"),
        .product(name: "TesseraStore", package: "Tessera"),
        .product(name: "TesseraSQLite", package: "Tessera"),
        .product(name: "TesseraPostgres", package: "Tessera"),
        .product(name: "TesseraPostgresCluster", package: "Tessera"),
        .product(name: "TesseraRuntime", package: "Tessera"),
        .product(name: "TesseraConnectors", package: "Tessera"),
        .product(name: "AsyncAlgorithms", package: "swift-async-algorithms"),
        .product(name: "AsyncHTTPClient", package: "async-http-client"),
      ]
    ),
    // Outbox → webhook delivery throughput, with a healthy and a failing receiver.
    .executableTarget(
      name: "tessera-deliver",
      dependencies: [
        .product(name: "TesseraModel", package: "Tessera"),
        .product(name: "TesseraCompiler", package: "Tessera"),
        .product(name: "TesseraStore", package: "Tessera"),
        .product(name: "TesseraSQLite", package: "Tessera"),
        .product(name: "TesseraDelivery", package: "Tessera"),
        .product(name: "TesseraReceiver", package: "Tessera"),
        .product(name: "AsyncHTTPClient", package: "async-http-client"),
      ]
    ),
    // Load generator for `tessera serve`: concurrent keep-alive clients posting tracking batches (issue 8).
    .executableTarget(
      name: "tessera-load",
      dependencies: [
        .product(name: "TesseraCompiler", package: "Tessera"),
        .product(name: "TesseraModel", package: "Tessera"),
        .product(name: "TesseraSQLite", package: "Tessera"),
        .product(name: "TesseraStore", package: "Tessera"),
        .product(name: "TesseraPostgres", package: "Tessera"),
        .product(name: "TesseraPostgresCluster", package: "Tessera"),
        .product(name: "TesseraRuntime", package: "Tessera"),
        .product(name: "TesseraServer", package: "Tessera"),
        .product(name: "AsyncHTTPClient", package: "async-http-client"),
      ]
    ),
    // Hostile input at scale: a million mutated requests, records or pipelines per target (issue 22).
    .executableTarget(
      name: "tessera-fuzz",
      dependencies: [.product(name: "TesseraFuzz", package: "Tessera")]
    ),
    // A destination down for a long time under load: a `tessera serve` child, two receivers, paced clients.
    .executableTarget(
      name: "tessera-soak",
      dependencies: [
        .product(name: "TesseraModel", package: "Tessera"),
        .product(name: "TesseraCompiler", package: "Tessera"),
        .product(name: "TesseraStore", package: "Tessera"),
        .product(name: "TesseraSQLite", package: "Tessera"),
        .product(name: "TesseraServer", package: "Tessera"),
        .product(name: "TesseraDelivery", package: "Tessera"),
        .product(name: "TesseraReceiver", package: "Tessera"),
        .product(name: "AsyncHTTPClient", package: "async-http-client"),
      ]
    ),
    // Synthetic person records with noise and true cluster ids (record-linkage benchmarks); no dependencies.
    .executableTarget(name: "tessera-people"),
  ],
  swiftLanguageModes: [.v6]
)
