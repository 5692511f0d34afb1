#if canImport(Glibc)
  import Glibc
#elseif canImport(Darwin)
  import Darwin
#endif

extension Paths {
  /// Whether a path has `*`, `?` or `[…]` and so names files by pattern.
  public static func isGlob(_ path: String) -> Bool { path.contains { "*?[".contains($0) } }

  /// Expands a path with `*`, `?` or `[…]` into the files it names, sorted; a plain path is returned as is
  /// (whether or not it exists).
  public static func expandGlob(_ pattern: String) -> [String] {
    guard isGlob(pattern) else { return [pattern] }
    var g = glob_t()
    defer { globfree(&g) }
    guard glob(pattern, 0, nil, &g) == 0 else { return [] }
    var out: [String] = []
    for i in 0..<Int(g.gl_pathc) {
      if let p = g.gl_pathv[i] { out.append(String(cString: p)) }
    }
    return out.sorted()
  }
}

extension Paths {
  /// `path` written relative to the folder `base` (both absolute, or both relative to one folder):
  /// `relative("/r/examples/a.csv", from: "/r/pipelines")` is `../examples/a.csv`.
  public static func relative(_ path: String, from base: String) -> String {
    let target = normalize(path).split(separator: "/")
    let from = base == "." ? [] : normalize(base).split(separator: "/")
    guard path.hasPrefix("/") == base.hasPrefix("/") || base == "." else { return normalize(path) }
    var common = 0
    while common < target.count, common < from.count, target[common] == from[common] { common += 1 }
    let ups = Array(repeating: "..", count: from.count - common)
    let rest = target[common...].map(String.init)
    return (ups + rest).joined(separator: "/")
  }
}
