import ArgumentParser

@main
struct Tessera: AsyncParsableCommand {
  static let configuration = CommandConfiguration(abstract: "Tessera")
}
