// swift-tools-version: 6.1
import PackageDescription

let package = Package(
  name: "Tessera",
  platforms: [.macOS(.v14)],
  products: [
    .executable(name: "tessera", targets: ["tessera"]),
    .library(name: "TesseraModel", targets: ["TesseraModel"]),
    .library(name: "TesseraLanguage", targets: ["TesseraLanguage"]),
    .library(name: "TesseraCompiler", targets: ["TesseraCompiler"]),
    .library(name: "TesseraStore", targets: ["TesseraStore"]),
    .library(name: "TesseraSQLite", targets: ["TesseraSQLite"]),
    .library(name: "TesseraPostgres", targets: ["TesseraPostgres"]),
    .library(name: "TesseraRuntime", targets: ["TesseraRuntime"]),
    .library(name: "TesseraConnectors", targets: ["TesseraConnectors"]),
    .library(name: "TesseraMatching", targets: ["TesseraMatching"]),
    .library(name: "TesseraDelivery", targets: ["TesseraDelivery"]),
    .library(name: "TesseraWarehouse", targets: ["TesseraWarehouse"]),
    .library(name: "TesseraMeasurement", targets: ["TesseraMeasurement"]),
    .library(name: "TesseraServer", targets: ["TesseraServer"]),
    // A scripted webhook receiver on loopback, for tests and the delivery benchmark.
    .library(name: "TesseraReceiver", targets: ["TesseraReceiver"]),
    // A throwaway PostgreSQL cluster (initdb + pg_ctl on a free port), for tests and the store benchmark.
    .library(name: "TesseraPostgresCluster", targets: ["TesseraPostgresCluster"]),
    // Seeded hostile inputs (mutated SDK bodies, record files, YAML) and their checks, for tests and tessera-fuzz.
    .library(name: "TesseraFuzz", targets: ["TesseraFuzz"]),
  ],
  dependencies: [
    .package(url: "https://github.com/jpsim/Yams.git", from: "6.2.2"),
    .package(url: "https://github.com/apple/swift-argument-parser.git", from: "1.8.2"),
    .package(url: "https://github.com/apple/swift-crypto.git", from: "4.5.2"),
    .package(url: "https://github.com/groue/GRDB.swift.git", from: "7.10.0"),
    .package(url: "https://github.com/apple/swift-async-algorithms.git", from: "1.1.4"),
    .package(url: "https://github.com/apple/swift-collections.git", from: "1.6.0"),
    .package(url: "https://github.com/swift-server/async-http-client.git", from: "1.37.0"),
    .package(url: "https://github.com/hummingbird-project/hummingbird.git", from: "2.28.1"),
    .package(url: "https://github.com/adam-fowler/compress-nio.git", from: "1.5.0"),
    .package(url: "https://github.com/apple/swift-log.git", from: "1.16.2"),
    .package(url: "https://github.com/apple/swift-nio.git", from: "2.101.2"),
    .package(url: "https://github.com/apple/swift-http-types.git", from: "1.8.0"),
    .package(url: "https://github.com/vapor/postgres-nio.git", from: "1.33.2"),
    .package(url: "https://github.com/swift-server/swift-service-lifecycle.git", from: "2.13.0"),
    .package(url: "https://github.com/apple/swift-metrics.git", from: "2.13.0"),
    .package(url: "https://github.com/swift-server/swift-prometheus.git", from: "2.4.1"),
  ],
  targets: [
    // Values shared by every module: Value, Timestamp, TimeSpan, normalizers.
    .target(name: "TesseraModel"),
    // YAML with source positions, diagnostics, the expression language.
    .target(
      name: "TesseraLanguage",
      dependencies: [
        "TesseraModel", .product(name: "Yams", package: "Yams"),
        .product(name: "Crypto", package: "swift-crypto"),
      ]
    ),
    // Semantic checks across a pipeline's files and the PipelinePlan.
    .target(name: "TesseraCompiler", dependencies: ["TesseraModel", "TesseraLanguage"]),
    // Normalized identifiers → profiles: merges under per-kind limits and priorities.
    .target(name: "TesseraIdentity", dependencies: ["TesseraModel"]),
    // Probabilistic matching: comparators, Fellegi–Sunter scoring, blocking, training, clustering, evaluation.
    .target(
      name: "TesseraMatching",
      dependencies: ["TesseraModel", "TesseraLanguage", "TesseraCompiler", .product(name: "Yams", package: "Yams")]
    ),
    // The Store protocol and the in-memory store.
    .target(name: "TesseraStore", dependencies: ["TesseraModel", "TesseraIdentity"]),
    // The embedded default store: one SQLite file in WAL mode, through GRDB.
    .target(
      name: "TesseraSQLite",
      dependencies: [
        "TesseraStore", "TesseraModel", "TesseraIdentity", "CZstd", .product(name: "GRDB", package: "GRDB.swift"),
        .product(name: "GRDBSQLite", package: "GRDB.swift"),
      ]
    ),
    // zstd, for the SQLite store's logged records: the system's shared library (`libzstd1`, on every Debian
    // system), linked by its file name so that no development package is needed to build.
    .target(name: "CZstd", linkerSettings: [.linkedLibrary(":libzstd.so.1")]),
    // The store for several servers sharing one PostgreSQL database, through PostgresNIO.
    .target(
      name: "TesseraPostgres",
      dependencies: [
        "TesseraStore", "TesseraModel", "TesseraIdentity",
        .product(name: "PostgresNIO", package: "postgres-nio"),
        .product(name: "Logging", package: "swift-log"),
      ]
    ),
    // The behaviour every store must show; run by the tests of each store.
    .target(
      name: "TesseraStoreSuite",
      dependencies: ["TesseraStore", "TesseraModel", "TesseraIdentity", "TesseraRuntime", "TesseraCompiler"],
      path: "Tests/TesseraStoreSuite"
    ),
    // Stages, channels, decode & map, resolution and unification, the run.
    .target(
      name: "TesseraRuntime",
      dependencies: [
        "TesseraModel", "TesseraLanguage", "TesseraCompiler", "TesseraIdentity", "TesseraStore", "TesseraMatching",
        .product(name: "Crypto", package: "swift-crypto"),
        .product(name: "AsyncAlgorithms", package: "swift-async-algorithms"),
        .product(name: "HeapModule", package: "swift-collections"),
        .product(name: "DequeModule", package: "swift-collections"),
        .product(name: "CoreMetrics", package: "swift-metrics"),
      ]
    ),
    // Source readers (files now; HTTP in the server) and destination writers.
    .target(
      name: "TesseraConnectors",
      dependencies: ["TesseraModel", "TesseraCompiler", "TesseraRuntime", "TesseraMeasurement"]
    ),
    // Destinations: the outbox's delivery engine, webhook (AsyncHTTPClient), file and table writers.
    .target(
      name: "TesseraDelivery",
      dependencies: [
        "TesseraModel", "TesseraCompiler", "TesseraLanguage", "TesseraStore", "TesseraRuntime", "TesseraPostgres",
        .product(name: "AsyncHTTPClient", package: "async-http-client"),
        .product(name: "PostgresNIO", package: "postgres-nio"),
        .product(name: "NIOCore", package: "swift-nio"),
        .product(name: "NIOHTTP1", package: "swift-nio"),
        .product(name: "GRDB", package: "GRDB.swift"),
        .product(name: "Logging", package: "swift-log"),
      ]
    ),
    // PostgreSQL as a source and a sink: table sources read past a stored cursor, the profile sync.
    .target(
      name: "TesseraWarehouse",
      dependencies: [
        "TesseraModel", "TesseraCompiler", "TesseraStore", "TesseraRuntime", "TesseraPostgres",
        .product(name: "PostgresNIO", package: "postgres-nio"),
        .product(name: "Logging", package: "swift-log"),
        .product(name: "NIOCore", package: "swift-nio"),
      ]
    ),
    // People-based measurement: funnels, conversion paths and attribution over the event log.
    .target(
      name: "TesseraMeasurement",
      dependencies: ["TesseraModel", "TesseraLanguage", "TesseraCompiler", "TesseraStore", "TesseraRuntime"]
    ),
    // `tessera serve`: the tracking API (Segment/RudderStack wire format), profile and admin API, metrics.
    .target(
      name: "TesseraServer",
      dependencies: [
        "TesseraModel", "TesseraCompiler", "TesseraStore", "TesseraRuntime", "TesseraSQLite", "TesseraDelivery",
        "TesseraMatching",
        "TesseraMeasurement",
        .product(name: "Hummingbird", package: "hummingbird"),
        .product(name: "CompressNIO", package: "compress-nio"),
        .product(name: "Logging", package: "swift-log"),
        .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
        .product(name: "CoreMetrics", package: "swift-metrics"),
        .product(name: "Prometheus", package: "swift-prometheus"),
      ]
    ),
    .executableTarget(
      name: "tessera",
      dependencies: [
        "TesseraModel", "TesseraLanguage", "TesseraCompiler", "TesseraIdentity", "TesseraStore", "TesseraSQLite",
        "TesseraPostgres", "TesseraRuntime", "TesseraConnectors", "TesseraMatching", "TesseraDelivery", "TesseraServer",
        "TesseraWarehouse", "TesseraMeasurement",
        .product(name: "ArgumentParser", package: "swift-argument-parser"),
        .product(name: "AsyncHTTPClient", package: "async-http-client"),
      ]
    ),
    .testTarget(name: "TesseraModelTests", dependencies: ["TesseraModel"]),
    .testTarget(name: "TesseraIdentityTests", dependencies: ["TesseraIdentity", "TesseraModel"]),
    .testTarget(
      name: "TesseraRuntimeTests",
      dependencies: [
        "TesseraRuntime", "TesseraMatching", "TesseraConnectors", "TesseraStore", "TesseraSQLite", "TesseraCompiler",
        "TesseraIdentity", "TesseraModel",
      ]),
    .testTarget(
      name: "TesseraStoreTests",
      dependencies: [
        "TesseraStoreSuite", "TesseraStore", "TesseraSQLite", "TesseraModel", "TesseraIdentity",
        .product(name: "GRDB", package: "GRDB.swift"),
      ]
    ),
    .target(
      name: "TesseraPostgresCluster",
      dependencies: ["TesseraModel", "TesseraPostgres", .product(name: "PostgresNIO", package: "postgres-nio")],
      path: "Tests/TesseraPostgresCluster"
    ),
    .testTarget(
      name: "TesseraPostgresTests",
      dependencies: [
        "TesseraPostgres", "TesseraPostgresCluster", "TesseraStoreSuite", "TesseraStore", "TesseraModel",
        "TesseraIdentity",
        .product(name: "PostgresNIO", package: "postgres-nio"),
      ]
    ),
    .testTarget(
      name: "TesseraMatchingTests",
      dependencies: ["TesseraMatching", "TesseraCompiler", "TesseraLanguage", "TesseraModel"]
    ),
    .target(
      name: "TesseraReceiver",
      dependencies: [
        "TesseraModel",
        .product(name: "Hummingbird", package: "hummingbird"), .product(name: "Logging", package: "swift-log"),
        .product(name: "HTTPTypes", package: "swift-http-types"),
      ],
      path: "Tests/TesseraReceiver"
    ),
    .target(
      name: "TesseraFuzz",
      dependencies: [
        "TesseraModel", "TesseraLanguage", "TesseraCompiler", "TesseraStore", "TesseraSQLite", "TesseraRuntime",
        "TesseraConnectors", "TesseraServer",
        .product(name: "CompressNIO", package: "compress-nio"),
        .product(name: "NIOCore", package: "swift-nio"),
        .product(name: "NIOHTTP1", package: "swift-nio"),
        .product(name: "AsyncHTTPClient", package: "async-http-client"),
      ],
      path: "Tests/TesseraFuzz"
    ),
    .testTarget(
      name: "TesseraDeliveryTests",
      dependencies: [
        "TesseraDelivery", "TesseraReceiver", "TesseraRuntime", "TesseraConnectors", "TesseraStore", "TesseraSQLite",
        "TesseraCompiler", "TesseraModel",
        .product(name: "Hummingbird", package: "hummingbird"),
        .product(name: "AsyncHTTPClient", package: "async-http-client"),
        .product(name: "GRDB", package: "GRDB.swift"),
      ]
    ),
    .testTarget(
      name: "TesseraServerTests",
      dependencies: [
        "TesseraServer", "TesseraReceiver", "TesseraDelivery", "TesseraRuntime", "TesseraStore", "TesseraSQLite",
        "TesseraCompiler",
        "TesseraModel", "TesseraPostgres", "TesseraPostgresCluster", "TesseraFuzz",
        .product(name: "Hummingbird", package: "hummingbird"),
        .product(name: "AsyncHTTPClient", package: "async-http-client"),
        .product(name: "CompressNIO", package: "compress-nio"),
        .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
        .product(name: "Logging", package: "swift-log"),
      ]
    ),
    .testTarget(
      name: "TesseraWarehouseTests",
      dependencies: [
        "TesseraWarehouse", "TesseraPostgres", "TesseraPostgresCluster", "TesseraRuntime", "TesseraConnectors",
        "TesseraStore", "TesseraSQLite", "TesseraCompiler", "TesseraModel", "TesseraDelivery",
        .product(name: "PostgresNIO", package: "postgres-nio"),
      ]
    ),
    .testTarget(
      name: "TesseraMeasurementTests",
      dependencies: [
        "TesseraMeasurement", "TesseraRuntime", "TesseraConnectors", "TesseraStore", "TesseraSQLite", "TesseraCompiler",
        "TesseraModel",
      ]
    ),
    .testTarget(name: "TesseraLanguageTests", dependencies: ["TesseraLanguage", "TesseraModel"]),
    .testTarget(
      name: "TesseraCompilerTests",
      dependencies: ["TesseraCompiler", "TesseraLanguage", "TesseraModel"],
      resources: [.copy("Fixtures")]
    ),
  ],
  swiftLanguageModes: [.v6]
)
