import Foundation

/// Per-record corruptions: typos, date errors, email and phone slips, case and spacing.
enum Noise {
  static func hasNonASCII(_ text: String) -> Bool { text.utf8.contains { $0 >= 0x80 } }

  /// "José" → "Jose", "Müller" → "Muller".
  static func foldAccents(_ text: String) -> String {
    guard hasNonASCII(text) else { return text }
    return String(text.map { PeopleData.asciiFold[$0] ?? $0 })
  }

  /// Key for blocking: trimmed, lowercased, accents folded.
  static func normalized(_ text: String) -> String {
    foldAccents(text).lowercased().trimmingCharacters(in: .whitespaces)
  }

  /// A keyboard-neighbour letter for `character` (same case), or a random letter.
  static func neighbour(of character: Character, _ rng: inout SplitMix64) -> Character {
    guard let ascii = character.asciiValue, character.isLetter else {
      return Character(Unicode.Scalar(UInt8(ascii: "a") + UInt8(rng.below(26))))
    }
    let lower = ascii | 0x20
    let options = PeopleData.keyboardNeighbours[Int(lower - UInt8(ascii: "a"))]
    let replacement = rng.chance(0.8) ? rng.pick(options) : UInt8(ascii: "a") + UInt8(rng.below(26))
    let upper = ascii < UInt8(ascii: "a")
    return Character(Unicode.Scalar(upper ? replacement & ~0x20 : replacement))
  }

  /// One edit: substitution (keyboard neighbours preferred), insertion, deletion or adjacent transposition.
  /// The first letter is spared most of the time, as in real typing errors.
  static func typo(_ text: String, _ rng: inout SplitMix64) -> String {
    var characters = Array(text)
    guard characters.count >= 2 else { return text }
    let position = rng.chance(0.9) ? rng.int(1..<characters.count) : 0
    switch rng.below(10) {
    case 0..<4:
      var replacement = neighbour(of: characters[position], &rng)
      if replacement == characters[position] { replacement = neighbour(of: characters[position], &rng) }
      characters[position] = replacement
    case 4..<6:
      let inserted = rng.chance(0.5) ? characters[position] : neighbour(of: characters[position], &rng)
      // An extra letter before the first one goes after it instead ("Jjohn", not "JJohn").
      characters.insert(Character(inserted.lowercased()), at: max(position, 1))
    case 6..<8:
      guard characters.count > 3 else { return text }
      characters.remove(at: position)
    default:
      let left = min(position, characters.count - 2)
      guard characters[left] != characters[left + 1] else { return typo(text, &rng) }
      characters.swapAt(left, left + 1)
      if left == 0 {  // keep "Jhon" rather than "oJhn"
        characters[0] = Character(characters[0].uppercased())
        characters[1] = Character(characters[1].lowercased())
      }
    }
    return String(characters)
  }

  /// Day and month transposed (when that is a valid date), one digit off, or the year off by one.
  static func corrupt(_ date: DateOfBirth, _ rng: inout SplitMix64) -> DateOfBirth {
    if date.day <= 12 && date.day != date.month && rng.chance(0.5) {
      return DateOfBirth(year: date.year, month: date.day, day: date.month)
    }
    if rng.chance(0.5) {
      for _ in 0..<10 {
        var changed = date
        let digit = rng.below(10)
        switch rng.below(5) {
        case 0: changed.year = date.year / 10 * 10 + digit
        case 1: changed.year = date.year / 100 * 100 + digit * 10 + date.year % 10
        case 2: changed.month = digit
        case 3: changed.day = date.day / 10 * 10 + digit
        default: changed.day = digit * 10 + date.day % 10
        }
        if changed != date && changed.isValid { return changed }
      }
    }
    var changed = date
    changed.year += rng.chance(0.5) ? 1 : -1
    changed.day = min(changed.day, DateOfBirth.daysIn(month: changed.month, year: changed.year))
    return changed
  }

  /// A typo in the local part, or (a third of the time) in the domain name ("gmial.com").
  static func typoEmail(_ email: String, _ rng: inout SplitMix64) -> String {
    guard let at = email.firstIndex(of: "@") else { return typo(email, &rng) }
    let local = String(email[..<at])
    let domain = String(email[email.index(after: at)...])
    if rng.chance(0.33), let dot = domain.firstIndex(of: ".") {
      let name = String(domain[..<dot])
      return "\(local)@\(name.count >= 3 ? typo(name, &rng) : name)\(domain[dot...])"
    }
    return "\(typo(local, &rng))@\(domain)"
  }

  /// One of the ten national digits replaced.
  static func typoPhone(_ phone: String, _ rng: inout SplitMix64) -> String {
    var bytes = Array(phone.utf8)
    guard bytes.count == 12 else { return phone }
    let position = 2 + rng.below(10)
    let old = bytes[position] - UInt8(ascii: "0")
    bytes[position] = UInt8(ascii: "0") + UInt8((Int(old) + 1 + rng.below(9)) % 10)
    return String(decoding: bytes, as: UTF8.self)
  }

  /// Form-entry noise: names in capitals or lower case, stray spaces, an address in capitals.
  static func caseAndSpacing(_ fields: inout Fields, _ rng: inout SplitMix64) {
    switch rng.below(20) {
    case 0..<7:
      fields.first = fields.first.uppercased()
      fields.last = fields.last.uppercased()
    case 7..<10:
      fields.first = fields.first.lowercased()
      fields.last = fields.last.lowercased()
    case 10..<14:
      if rng.chance(0.5) { fields.first += " " } else { fields.last = " " + fields.last }
    case 14..<17:
      if let space = fields.street.firstIndex(of: " ") { fields.street.insert(" ", at: space) }
    default:
      fields.street = fields.street.uppercased()
      fields.city = fields.city.uppercased()
    }
  }
}
