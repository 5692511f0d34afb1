// swift-tools-version: 6.1
import PackageDescription

let package = Package(
  name: "Tessera",
  platforms: [.macOS(.v14)],
  products: [
    .executable(name: "tessera", targets: ["tessera"]),
    .library(name: "TesseraCompiler", targets: ["TesseraCompiler"]),
  ],
  dependencies: [
    .package(url: "https://github.com/jpsim/Yams.git", from: "6.2.2"),
    .package(url: "https://github.com/apple/swift-argument-parser.git", from: "1.8.2"),
    .package(url: "https://github.com/apple/swift-crypto.git", from: "4.5.2"),
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
    .executableTarget(
      name: "tessera",
      dependencies: [
        "TesseraModel", "TesseraLanguage", "TesseraCompiler",
        .product(name: "ArgumentParser", package: "swift-argument-parser"),
      ]
    ),
    .testTarget(name: "TesseraModelTests", dependencies: ["TesseraModel"]),
    .testTarget(name: "TesseraLanguageTests", dependencies: ["TesseraLanguage", "TesseraModel"]),
    .testTarget(
      name: "TesseraCompilerTests",
      dependencies: ["TesseraCompiler", "TesseraLanguage", "TesseraModel"],
      resources: [.copy("Fixtures")]
    ),
  ],
  swiftLanguageModes: [.v6]
)
