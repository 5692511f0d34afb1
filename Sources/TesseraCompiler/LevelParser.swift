import TesseraLanguage

/// Reads comparison levels: `exact`, `jaro_winkler >= 0.92`, `jaro >= 0.9`, `levenshtein <= 2`,
/// `damerau_levenshtein <= 1`, `token_set >= 0.8`, `within 1 year`, `within 5` (numbers),
/// `transposed_day_month`, `soundex`; on device signals `within 30 minutes` (of the other side's sighting).
enum LevelParser {
  static let names = [
    "exact", "jaro_winkler", "jaro", "levenshtein", "damerau_levenshtein", "token_set", "within",
    "transposed_day_month", "soundex", "nickname", "swapped_with",
  ]

  static func parse(_ text: String) -> Result<ComparisonLevel, ExprError> {
    let words = text.split(separator: " ", omittingEmptySubsequences: true)
    guard let first = words.first else { return .failure(ExprError("empty comparison level", offset: 0)) }
    let name = String(first)
    let firstOffset = text.distance(from: text.startIndex, to: first.startIndex)
    func offset(_ w: Substring) -> Int { text.distance(from: text.startIndex, to: w.startIndex) }
    func arity(_ n: Int, _ usage: String) -> ExprError? {
      words.count == n
        ? nil
        : ExprError("level `\(name)` is written `\(usage)`", offset: firstOffset, length: text.count - firstOffset)
    }
    switch name {
    case "exact", "transposed_day_month", "soundex", "nickname":
      if let e = arity(1, name) { return .failure(e) }
      switch name {
      case "exact": return .success(.exact)
      case "soundex": return .success(.soundex)
      case "nickname": return .success(.nickname)
      default: return .success(.transposedDayMonth)
      }
    case "swapped_with":
      if let e = arity(2, "swapped_with last_name") { return .failure(e) }
      return .success(.swappedWith(String(words[1])))
    case "jaro_winkler", "jaro", "token_set":
      if let e = arity(3, "\(name) >= 0.9") { return .failure(e) }
      guard words[1] == ">=" else {
        return .failure(
          ExprError(
            "level `\(name)` takes `>=` and a similarity, e.g. `\(name) >= 0.9`", offset: offset(words[1]),
            length: words[1].count))
      }
      guard let t = Double(words[2]), t > 0, t <= 1 else {
        return .failure(
          ExprError(
            "similarity must be a number in (0, 1], found `\(words[2])`", offset: offset(words[2]),
            length: words[2].count))
      }
      return .success(name == "jaro" ? .jaro(t) : name == "token_set" ? .tokenSet(t) : .jaroWinkler(t))
    case "levenshtein", "damerau_levenshtein":
      if let e = arity(3, "\(name) <= 2") { return .failure(e) }
      guard words[1] == "<=" else {
        return .failure(
          ExprError(
            "level `\(name)` takes `<=` and an edit count, e.g. `\(name) <= 2`", offset: offset(words[1]),
            length: words[1].count))
      }
      guard let n = Int(words[2]), n >= 1 else {
        return .failure(
          ExprError(
            "edit count must be a whole number ≥ 1, found `\(words[2])`", offset: offset(words[2]),
            length: words[2].count))
      }
      return .success(name == "levenshtein" ? .levenshtein(n) : .damerauLevenshtein(n))
    case "within":
      guard words.count == 2 || words.count == 3 else {
        return .failure(
          ExprError(
            "level `within` is written `within 1 year` or `within 5`", offset: firstOffset,
            length: text.count - firstOffset))
      }
      guard let n = Double(words[1]), n > 0 else {
        return .failure(
          ExprError(
            "`within` needs a positive number, found `\(words[1])`", offset: offset(words[1]), length: words[1].count))
      }
      if words.count == 2 { return .success(.within(n, nil)) }
      let unitWord = String(words[2])
      let unit: ComparisonLevel.TimeUnit? =
        switch unitWord {
        case "minute", "minutes": .minutes
        case "hour", "hours": .hours
        case "day", "days": .days
        case "month", "months": .months
        case "year", "years": .years
        default: nil
        }
      guard let unit else {
        return .failure(
          ExprError(
            "unknown unit `\(unitWord)` in `within`; use minutes, hours, days, months or years",
            offset: offset(words[2]),
            length: unitWord.count))
      }
      return .success(.within(n, unit))
    default:
      return .failure(
        ExprError(
          "unknown comparison level `\(name)`" + Suggest.didYouMean(name, in: names)
            + (Suggest.closest(to: name, in: names) == nil ? "; levels are \(names.joined(separator: ", "))" : ""),
          offset: firstOffset, length: name.count))
    }
  }
}
