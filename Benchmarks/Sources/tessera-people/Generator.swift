import Foundation

/// A calendar date of birth.
struct DateOfBirth: Equatable {
  var year: Int
  var month: Int
  var day: Int

  static func daysIn(month: Int, year: Int) -> Int {
    switch month {
    case 2: return (year % 4 == 0 && year % 100 != 0) || year % 400 == 0 ? 29 : 28
    case 4, 6, 9, 11: return 30
    default: return 31
    }
  }

  var isValid: Bool {
    (1900...2025).contains(year) && (1...12).contains(month) && day >= 1
      && day <= DateOfBirth.daysIn(month: month, year: year)
  }

  /// `YYYY-MM-DD`.
  var text: String {
    var bytes: [UInt8] = []
    bytes.reserveCapacity(10)
    CSV.appendPadded(year, width: 4, to: &bytes)
    bytes.append(UInt8(ascii: "-"))
    CSV.appendPadded(month, width: 2, to: &bytes)
    bytes.append(UInt8(ascii: "-"))
    CSV.appendPadded(day, width: 2, to: &bytes)
    return String(decoding: bytes, as: UTF8.self)
  }
}

/// A postal address kept as parts so duplicates can render it differently ("12 Oak St" / "12 Oak Street").
struct Address {
  enum Style {
    case short
    case full
    case dotted
    case noUnit
  }

  var number: Int
  var street: Int
  var suffix: Int
  /// "" or an apartment part such as ", Apt 4B" or " #210".
  var unit: String
  var city: Int
  var zip: Int

  var postcode: String {
    var bytes: [UInt8] = []
    CSV.appendPadded(zip, width: 5, to: &bytes)
    return String(decoding: bytes, as: UTF8.self)
  }

  func streetText(_ style: Style) -> String {
    let suffixes = PeopleData.streetSuffixes[suffix]
    let word: String
    switch style {
    case .short, .noUnit: word = suffixes.short
    case .full: word = suffixes.full
    case .dotted: word = suffixes.short == suffixes.full ? suffixes.short : suffixes.short + "."
    }
    let base = "\(number) \(PeopleData.streetNames[street]) \(word)"
    return style == .noUnit ? base : base + unit
  }
}

/// One true person: the canonical values every record of the person derives from.
struct Person {
  var first: String
  var gender: Gender
  var last: String
  var dob: DateOfBirth
  var email: String
  var phone: String
  var address: Address
}

/// The values of one output record (empty string = missing).
struct Fields {
  var first: String
  var last: String
  var dob: String
  var email: String
  var phone: String
  var postcode: String
  var city: String
  var street: String
}

/// Blocking keys of a written record, kept only when labelled pairs are requested.
struct PairKeys {
  var surname: String
  var postcode: String
  var dob: String
}

/// How many records each person gets: a share of singletons and a power-law tail over 2…6 records, fitted so
/// that the expected share of duplicate records equals the requested duplicates rate (at most 0.75, a mean of
/// four records per person).
struct ClusterSizeModel {
  let singletonShare: Double
  let tail: WeightedTable

  static func tailWeights(_ exponent: Double) -> [Double] { (0..<5).map { pow(Double($0 + 1), -exponent) } }

  static func tailMean(_ exponent: Double) -> Double {
    let weights = tailWeights(exponent)
    let total = weights.reduce(0, +)
    return weights.enumerated().reduce(0) { $0 + Double($1.offset + 2) * $1.element } / total
  }

  init(duplicatesRate: Double) {
    let rate = min(max(duplicatesRate, 0), 0.75)
    let mean = 1 / (1 - rate)
    let preferredSingletons = 0.45
    let needed = (mean - preferredSingletons) / (1 - preferredSingletons)
    let steepest = 6.0
    let flattest = 0.0  // uniform over 2…6; higher rates lower the singleton share instead
    if needed <= ClusterSizeModel.tailMean(steepest) || needed >= ClusterSizeModel.tailMean(flattest) {
      // Out of the tail's range: keep the extreme tail and move the singleton share instead.
      let exponent = needed <= ClusterSizeModel.tailMean(steepest) ? steepest : flattest
      let tailMean = ClusterSizeModel.tailMean(exponent)
      singletonShare = min(max((tailMean - mean) / (tailMean - 1), 0), 1)
      tail = WeightedTable(weights: ClusterSizeModel.tailWeights(exponent))
    } else {
      var low = flattest
      var high = steepest
      for _ in 0..<60 {
        let mid = (low + high) / 2
        if ClusterSizeModel.tailMean(mid) > needed { low = mid } else { high = mid }
      }
      singletonShare = preferredSingletons
      tail = WeightedTable(weights: ClusterSizeModel.tailWeights((low + high) / 2))
    }
  }

  func draw(_ rng: inout SplitMix64) -> Int {
    rng.chance(singletonShare) ? 1 : 2 + tail.sample(&rng)
  }
}

/// Generates person records into an in-memory arena of CSV line tails (everything after `record_id,cluster_id`),
/// so the caller can shuffle them and number records and clusters in output order.
struct PeopleGenerator {
  // Rates of the model; see examples/people/README.md. The noise rates are the profile's.
  static let householdSizes = WeightedTable(weights: [0.6, 0.3, 0.1])  // 2, 3, 4 members
  static let syntheticSurnameShare = 0.2
  static let accentedNameShare = 0.01

  var rng: SplitMix64
  let noise: NoiseProfile
  let sizes: ClusterSizeModel
  let collectKeys: Bool

  let maleTable = WeightedTable.zipf(count: PeopleData.maleFirstNames.count, offset: 8, exponent: 1)
  let femaleTable = WeightedTable.zipf(count: PeopleData.femaleFirstNames.count, offset: 8, exponent: 1)
  let surnameTable = WeightedTable.zipf(count: PeopleData.surnames.count, offset: 10, exponent: 1)
  let cityTable = WeightedTable.zipf(count: PeopleData.cities.count, offset: 4, exponent: 0.9)
  let suffixTable = WeightedTable(weights: PeopleData.streetSuffixes.map(\.weight))
  let providerTable = WeightedTable(weights: PeopleData.emailProviders.map(\.weight))
  let emailFormats = WeightedTable(weights: [35, 15, 15, 10, 8, 7, 5, 5])

  // Membership only (never iterated), so hash seeding cannot affect the output.
  var usedEmails: Set<String> = []
  var usedPhones: Set<Int> = []
  var canonicalSurnames: Set<String> = []

  var arena: [UInt8] = []
  var starts: [Int] = [0]
  var personOfRecord: [Int32] = []
  var keys: [PairKeys] = []
  /// Recent addresses of units, for neighbours in the same building (`NoiseProfile.sharedBuildingShare`).
  var buildings: [Address] = []
  var personCount = 0
  var householdCount = 0

  init(seed: UInt64, duplicatesRate: Double, collectKeys: Bool, noise: NoiseProfile = .standard) {
    rng = SplitMix64(seed: seed)
    self.noise = noise
    sizes = ClusterSizeModel(duplicatesRate: duplicatesRate)
    self.collectKeys = collectKeys
  }

  var recordCount: Int { personOfRecord.count }

  mutating func generate(records: Int) {
    arena.reserveCapacity(records * 110)
    starts.reserveCapacity(records + 1)
    personOfRecord.reserveCapacity(records)
    var remaining = records
    while remaining > 0 {
      for person in makeUnit() where remaining > 0 {
        let count = min(sizes.draw(&rng), remaining)
        emit(person, records: count)
        remaining -= count
      }
    }
  }

  // MARK: - Persons and households

  mutating func drawGender() -> Gender { rng.chance(0.5) ? .male : .female }

  mutating func drawFirstName(_ gender: Gender) -> String {
    if rng.chance(PeopleGenerator.accentedNameShare) {
      return rng.pick(gender == .male ? PeopleData.accentedMaleFirstNames : PeopleData.accentedFemaleFirstNames)
    }
    switch gender {
    case .male: return PeopleData.maleFirstNames[maleTable.sample(&rng)]
    case .female: return PeopleData.femaleFirstNames[femaleTable.sample(&rng)]
    }
  }

  mutating func drawSurname() -> String {
    if rng.chance(PeopleGenerator.accentedNameShare) { return rng.pick(PeopleData.accentedSurnames) }
    if rng.chance(PeopleGenerator.syntheticSurnameShare) {
      return rng.pick(PeopleData.surnameStarts) + rng.pick(PeopleData.surnameMiddles) + rng.pick(PeopleData.surnameEnds)
    }
    return PeopleData.surnames[surnameTable.sample(&rng)]
  }

  /// Age 18–94 on 2026-01-01, weighted towards working ages.
  mutating func drawDOB(age: Int? = nil) -> DateOfBirth {
    let years = age ?? (rng.chance(0.85) ? rng.int(18..<70) : rng.int(70..<95))
    let year = 2025 - years
    let month = rng.int(1...12)
    return DateOfBirth(year: year, month: month, day: rng.int(1...DateOfBirth.daysIn(month: month, year: year)))
  }

  mutating func makeAddress(city: Int? = nil) -> Address {
    let cityIndex = city ?? cityTable.sample(&rng)
    let place = PeopleData.cities[cityIndex]
    let roll = rng.unit()
    let number = roll < 0.6 ? rng.int(1..<2000) : (roll < 0.9 ? rng.int(2000..<10000) : rng.int(10000..<30000))
    var unit = ""
    if rng.chance(0.12) {
      let apartment = "\(rng.int(1...30))\(rng.chance(0.3) ? String(rng.pick(["A", "B", "C", "D"])) : "")"
      unit = rng.pick([", Apt ", ", Apt ", " Apt ", " #", ", Unit ", ", Ste "]) + apartment
    }
    return Address(
      number: number, street: rng.below(PeopleData.streetNames.count), suffix: suffixTable.sample(&rng), unit: unit,
      city: cityIndex, zip: place.zip + rng.below(place.zipCount))
  }

  /// The address of a new unit: a new one, or (`NoiseProfile.sharedBuildingShare` of the time) an apartment in
  /// the building of a recent unit, with its own apartment number.
  mutating func makeUnitAddress() -> Address {
    guard noise.sharedBuildingShare > 0 else { return makeAddress() }
    if !buildings.isEmpty && rng.chance(noise.sharedBuildingShare) {
      var address = buildings[rng.below(buildings.count)]
      address.unit = rng.pick([", Apt ", " Apt ", " #", ", Unit "]) + "\(rng.int(1...60))"
      return address
    }
    let address = makeAddress()
    if buildings.count < 2000 {
      buildings.append(address)
    } else {
      buildings[rng.below(buildings.count)] = address
    }
    return address
  }

  /// A fresh `+1AAA555XXXX` number, unique across persons when possible.
  mutating func makePhone(areaCodes: [Int]) -> String {
    var number = 0
    for attempt in 0..<40 {
      let codes = attempt < 20 ? areaCodes : PeopleData.cities[rng.below(PeopleData.cities.count)].areaCodes
      number = rng.pick(codes) * 10_000_000 + 5_550_000 + rng.below(10_000)
      if usedPhones.insert(number).inserted { break }
    }
    var bytes: [UInt8] = Array("+1".utf8)
    CSV.appendPadded(number, width: 10, to: &bytes)
    return String(decoding: bytes, as: UTF8.self)
  }

  mutating func makeMobile(home: Int) -> String {
    // A third of mobiles keep the area code of an earlier home.
    let city = rng.chance(0.3) ? cityTable.sample(&rng) : home
    return makePhone(areaCodes: PeopleData.cities[city].areaCodes)
  }

  /// Lowercase ASCII letters of a name, accents folded ("O'Brien" → "obrien", "José" → "jose").
  static func emailWord(_ name: String) -> String {
    if !Noise.hasNonASCII(name) {
      var bytes: [UInt8] = []
      bytes.reserveCapacity(name.utf8.count)
      for byte in name.utf8 where (byte | 0x20) >= UInt8(ascii: "a") && (byte | 0x20) <= UInt8(ascii: "z") {
        bytes.append(byte | 0x20)
      }
      return bytes.isEmpty ? "user" : String(decoding: bytes, as: UTF8.self)
    }
    var result = ""
    for character in name {
      let folded = PeopleData.asciiFold[character] ?? character
      if folded.isASCII && folded.isLetter { result.append(folded.lowercased()) }
    }
    return result.isEmpty ? "user" : result
  }

  mutating func makeEmail(first: String, last: String, year: Int, domain: String? = nil) -> String {
    let f = PeopleGenerator.emailWord(first)
    let l = PeopleGenerator.emailWord(last)
    let twoDigitYear = year % 100
    let digits = rng.chance(0.5) ? (twoDigitYear < 10 ? "0\(twoDigitYear)" : "\(twoDigitYear)") : "\(rng.int(1...999))"
    let local: String
    switch emailFormats.sample(&rng) {
    case 0: local = "\(f).\(l)"
    case 1: local = "\(f.prefix(1))\(l)"
    case 2: local = "\(f)\(l)\(digits)"
    case 3: local = "\(f).\(l)\(digits)"
    case 4: local = "\(f)_\(l)"
    case 5: local = "\(f)\(l.prefix(1))"
    case 6: local = "\(l)\(f)"
    default: local = "\(f)\(year)"
    }
    return uniqueEmail(local: local, domain: domain ?? drawProvider())
  }

  mutating func drawProvider() -> String { PeopleData.emailProviders[providerTable.sample(&rng)].domain }

  mutating func uniqueEmail(local: String, domain: String) -> String {
    var candidate = "\(local)@\(domain)"
    var attempt = 0
    while !usedEmails.insert(candidate).inserted {
      attempt += 1
      candidate = "\(local)\(rng.int(1...(attempt < 5 ? 99 : 99_999)))@\(domain)"
    }
    return candidate
  }

  /// A single person (about 88% of units) or a household of 2–4 sharing surname and address, often a landline,
  /// sometimes an email provider; 1% of households have twins sharing a date of birth.
  mutating func makeUnit() -> [Person] {
    let size = rng.chance(noise.householdUnitShare) ? 2 + PeopleGenerator.householdSizes.sample(&rng) : 1
    let surname = drawSurname()
    canonicalSurnames.insert(surname)
    let address = makeUnitAddress()
    let areaCodes = PeopleData.cities[address.city].areaCodes
    if size == 1 {
      let gender = drawGender()
      let first = drawFirstName(gender)
      let dob = drawDOB()
      return [
        Person(
          first: first, gender: gender, last: surname, dob: dob,
          email: makeEmail(first: first, last: surname, year: dob.year), phone: makeMobile(home: address.city),
          address: address)
      ]
    }
    householdCount += 1
    let landline: String? = rng.chance(0.6) ? makePhone(areaCodes: areaCodes) : nil
    let sharedDomain: String? = rng.chance(0.35) ? drawProvider() : nil
    let sharedEmail: String? =
      rng.chance(0.05)
      ? uniqueEmail(
        local: rng.pick(["\(PeopleGenerator.emailWord(surname))family", "the\(PeopleGenerator.emailWord(surname))s"]),
        domain: sharedDomain ?? drawProvider()) : nil
    let twins = rng.chance(noise.twinsShare)
    var members: [Person] = []
    var headAge = 0
    for index in 0..<size {
      let gender: Gender
      var dob: DateOfBirth
      // Ages below 18 are reflected upwards: the records are adults.
      func near(_ spread: Int) -> Int {
        let offset = rng.int(-spread...spread)
        return headAge + offset >= 18 ? headAge + offset : headAge + abs(offset)
      }
      if index == 0 {
        gender = drawGender()
        headAge = rng.int(22..<85)
        dob = drawDOB(age: headAge)
      } else if index == 1 && rng.chance(0.7) {  // partner
        gender = rng.chance(0.9) ? (members[0].gender == .male ? .female : .male) : members[0].gender
        dob = drawDOB(age: near(6))
      } else if headAge >= 40 {  // adult child
        gender = drawGender()
        dob = drawDOB(age: headAge - rng.int(20...min(38, headAge - 18)))
      } else {  // sibling or other relative
        gender = drawGender()
        dob = drawDOB(age: near(10))
      }
      if twins && index == size - 1 { dob = members[index - 1].dob }
      var first = drawFirstName(gender)
      for _ in 0..<10 where members.contains(where: { $0.first == first }) { first = drawFirstName(gender) }
      let email: String
      if let sharedEmail, rng.chance(0.7) {
        email = sharedEmail
      } else {
        email = makeEmail(first: first, last: surname, year: dob.year, domain: sharedDomain)
      }
      let phone: String
      if let landline, rng.chance(0.7) { phone = landline } else { phone = makeMobile(home: address.city) }
      members.append(
        Person(first: first, gender: gender, last: surname, dob: dob, email: email, phone: phone, address: address))
    }
    return members
  }

  // MARK: - Records

  mutating func emit(_ person: Person, records: Int) {
    let index = Int32(personCount)
    personCount += 1
    for record in 0..<records {
      var fields = record == 0 ? canonicalFields(person) : noisyFields(person)
      // Missing values hit every record, first ones included, so missingness does not give duplicates away.
      if rng.chance(0.10) { fields.email = "" }
      if rng.chance(0.10) { fields.phone = "" }
      if rng.chance(0.05) { fields.dob = "" }
      if rng.chance(0.03) { fields.postcode = "" }
      append(fields)
      personOfRecord.append(index)
      if collectKeys {
        keys.append(PairKeys(surname: Noise.normalized(fields.last), postcode: fields.postcode, dob: fields.dob))
      }
    }
  }

  func canonicalFields(_ person: Person) -> Fields {
    Fields(
      first: person.first, last: person.last, dob: person.dob.text, email: person.email, phone: person.phone,
      postcode: person.address.postcode, city: PeopleData.cities[person.address.city].name,
      street: person.address.streetText(.short))
  }

  /// A later record of the person, with the per-record noise of the model.
  mutating func noisyFields(_ person: Person) -> Fields {
    var address = person.address
    if rng.chance(noise.moved) {  // moved: a new street, half the time in another city
      address = makeAddress(city: rng.chance(0.5) ? address.city : nil)
    }
    var first = person.first
    var last = person.last
    if rng.chance(0.5) { first = Noise.foldAccents(first) }
    if rng.chance(0.5) { last = Noise.foldAccents(last) }
    if rng.chance(noise.nickname), let nicknames = PeopleData.nicknames[first] { first = rng.pick(nicknames) }
    if rng.chance(noise.nameTypo) { first = Noise.typo(first, &rng) }
    if rng.chance(noise.nameTypo) { last = Noise.typo(last, &rng) }
    if rng.chance(noise.swappedNames) { swap(&first, &last) }
    var dob = person.dob.text
    if rng.chance(noise.dateOfBirthError) { dob = Noise.corrupt(person.dob, &rng).text }
    var email = person.email
    if rng.chance(noise.newEmail) {
      email = makeEmail(first: person.first, last: person.last, year: person.dob.year)
    } else if rng.chance(noise.emailTypo) {
      email = Noise.typoEmail(email, &rng)
    }
    var phone = person.phone
    if rng.chance(noise.phoneTypo) { phone = Noise.typoPhone(phone, &rng) }
    var style = Address.Style.short
    if rng.chance(noise.streetStyle) { style = rng.pick([.full, .full, .dotted, .noUnit]) }
    let place = PeopleData.cities[address.city]
    var city = place.name
    if !place.aliases.isEmpty && rng.chance(noise.cityAlias) { city = rng.pick(place.aliases) }
    var fields = Fields(
      first: first, last: last, dob: dob, email: email, phone: phone, postcode: address.postcode, city: city,
      street: address.streetText(style))
    if rng.chance(noise.caseAndSpacing) { Noise.caseAndSpacing(&fields, &rng) }
    return fields
  }

  mutating func append(_ fields: Fields) {
    CSV.appendField(fields.first, to: &arena, comma: true)
    CSV.appendField(fields.last, to: &arena, comma: true)
    CSV.appendField(fields.dob, to: &arena, comma: true)
    CSV.appendField(fields.email, to: &arena, comma: true)
    CSV.appendField(fields.phone, to: &arena, comma: true)
    CSV.appendField(fields.postcode, to: &arena, comma: true)
    CSV.appendField(fields.city, to: &arena, comma: true)
    CSV.appendField(fields.street, to: &arena, comma: true)
    starts.append(arena.count)
  }
}
