import Foundation

// tessera-people: synthetic person records with realistic noise and the true cluster id, for benchmarking and
// tuning probabilistic identity matching. Deterministic for a seed (SplitMix64; hashed collections are only
// used for membership, never iterated into the output).
//
// Usage: tessera-people --records N --seed S --out FILE.csv [--duplicates-rate R] [--noise P] [--pairs PAIRS.csv]
//        tessera-people --verify FILE.csv [--pairs PAIRS.csv]

let usage = """
  usage: tessera-people --records N --seed S --out FILE.csv [--duplicates-rate R] [--noise P] [--pairs PAIRS.csv]
         tessera-people --verify FILE.csv [--pairs PAIRS.csv]

    --records N          number of records to write
    --seed S             seed (unsigned 64-bit); the same seed gives the same file
    --out FILE           CSV output: record_id,cluster_id,first_name,last_name,date_of_birth,email,phone,postcode,
                         city,street
    --duplicates-rate R  share of records that repeat an earlier person (0…0.75, default 0.375: about N/1.6
                         persons)
    --noise P            the noise profile: standard (default; examples/people/README.md) or hard (about twice
                         the typos and date errors, more moves, larger households, apartment buildings whose
                         unrelated residents share street, city and postcode)
    --pairs FILE         also write labelled pairs (left_id,right_id,is_match) drawn from the generated records
    --verify FILE        read a generated CSV (and --pairs file) back and print counts and missing-value rates
  """

let header = "record_id,cluster_id,first_name,last_name,date_of_birth,email,phone,postcode,city,street\n"

struct Options {
  var records = 0
  var seed: UInt64 = 0
  var out: String?
  var duplicatesRate = 0.375
  var noise = NoiseProfile.standard
  var pairs: String?
  var verify: String?

  init(_ arguments: [String]) throws {
    var index = 0
    func value() throws -> String {
      index += 1
      guard index < arguments.count else { throw GeneratorError.usage("missing value for \(arguments[index - 1])") }
      return arguments[index]
    }
    var sawRecords = false
    var sawSeed = false
    while index < arguments.count {
      let argument = arguments[index]
      switch argument {
      case "--records":
        guard let n = Int(try value()), n >= 0 else { throw GeneratorError.usage("--records needs a count") }
        records = n
        sawRecords = true
      case "--seed":
        guard let s = UInt64(try value()) else { throw GeneratorError.usage("--seed needs an unsigned integer") }
        seed = s
        sawSeed = true
      case "--out": out = try value()
      case "--duplicates-rate":
        guard let r = Double(try value()), (0...0.75).contains(r) else {
          throw GeneratorError.usage("--duplicates-rate needs a number in 0…0.75")
        }
        duplicatesRate = r
      case "--noise":
        let name = try value()
        guard let profile = NoiseProfile.all.first(where: { $0.name == name }) else {
          throw GeneratorError.usage("--noise is one of: \(NoiseProfile.all.map(\.name).joined(separator: ", "))")
        }
        noise = profile
      case "--pairs": pairs = try value()
      case "--verify": verify = try value()
      case "-h", "--help": throw GeneratorError.usage(usage)
      default: throw GeneratorError.usage("unknown argument \(argument)\n\n\(usage)")
      }
      index += 1
    }
    if verify == nil && (!sawRecords || !sawSeed || out == nil) { throw GeneratorError.usage(usage) }
  }
}

func log(_ message: String) { FileHandle.standardError.write(Data((message + "\n").utf8)) }

func seconds(_ duration: Duration) -> String {
  let c = duration.components
  return String(format: "%.2f s", Double(c.seconds) + Double(c.attoseconds) * 1e-18)
}

func percent(_ part: Int, _ whole: Int) -> String {
  String(format: "%.1f%%", whole == 0 ? 0 : 100 * Double(part) / Double(whole))
}

func digitCount(_ value: Int) -> Int { String(value).count }

func generate(_ options: Options) throws {
  guard let out = options.out else { throw GeneratorError.usage(usage) }
  let clock = ContinuousClock()
  let start = clock.now
  var generator = PeopleGenerator(
    seed: options.seed, duplicatesRate: options.duplicatesRate, collectKeys: options.pairs != nil,
    noise: options.noise)
  generator.generate(records: options.records)
  let generated = clock.now

  // Output order: a seeded shuffle; record and cluster ids are numbered in that order, so neither id gives
  // away which records (or which households) were generated together.
  let count = generator.recordCount
  var order = Array(0..<count)
  generator.rng.shuffle(&order)
  var position = options.pairs == nil ? [] : [Int](repeating: 0, count: count)
  var clusterLabel = [Int32](repeating: 0, count: generator.personCount)
  var nextLabel: Int32 = 0
  let recordWidth = max(7, digitCount(count))
  let clusterWidth = max(6, digitCount(generator.personCount))
  var writer = try ChunkedWriter(path: out)
  writer.append(header)
  for (index, record) in order.enumerated() {
    if !position.isEmpty { position[record] = index }
    let person = Int(generator.personOfRecord[record])
    if clusterLabel[person] == 0 {
      nextLabel += 1
      clusterLabel[person] = nextLabel
    }
    writer.buffer.append(UInt8(ascii: "r"))
    CSV.appendPadded(index + 1, width: recordWidth, to: &writer.buffer)
    writer.buffer.append(contentsOf: ",p".utf8)
    CSV.appendPadded(Int(clusterLabel[person]), width: clusterWidth, to: &writer.buffer)
    writer.buffer.append(contentsOf: generator.arena[generator.starts[record]..<generator.starts[record + 1]])
    writer.buffer.append(CSV.newline)
    try writer.flushIfFull()
  }
  try writer.close()
  let written = clock.now

  var sizes = [Int](repeating: 0, count: 7)
  var start0 = 0
  while start0 < count {
    var end = start0 + 1
    while end < count && generator.personOfRecord[end] == generator.personOfRecord[start0] { end += 1 }
    sizes[min(end - start0, 6)] += 1
    start0 = end
  }
  let persons = generator.personCount
  log(
    "tessera-people: \(count) records, \(persons) clusters (records per cluster: "
      + (1...6).map { "\($0): \(percent(sizes[$0], persons))" }.joined(separator: ", ") + "), "
      + "\(generator.householdCount) households, \(generator.canonicalSurnames.count) distinct surnames, "
      + "noise \(options.noise.name)")
  log(
    "tessera-people: wrote \(out) (\(writer.bytesWritten) bytes) in \(seconds(written - start)) "
      + "(generate \(seconds(generated - start)), shuffle and write \(seconds(written - generated)))")

  if let pairsPath = options.pairs {
    let pairs = Pairs.sample(personOfRecord: generator.personOfRecord, keys: generator.keys, rng: &generator.rng)
    var pairWriter = try ChunkedWriter(path: pairsPath)
    pairWriter.append("left_id,right_id,is_match\n")
    for pair in pairs {
      let (a, b) = (position[pair.left], position[pair.right])
      pairWriter.buffer.append(UInt8(ascii: "r"))
      CSV.appendPadded(min(a, b) + 1, width: recordWidth, to: &pairWriter.buffer)
      pairWriter.buffer.append(contentsOf: ",r".utf8)
      CSV.appendPadded(max(a, b) + 1, width: recordWidth, to: &pairWriter.buffer)
      pairWriter.buffer.append(contentsOf: (pair.isMatch ? ",1\n" : ",0\n").utf8)
      try pairWriter.flushIfFull()
    }
    try pairWriter.close()
    let matches = pairs.filter(\.isMatch).count
    log(
      "tessera-people: wrote \(pairsPath): \(pairs.count) pairs, \(matches) matches, \(pairs.count - matches) non-matches"
    )
  }
}

/// Reads a generated file back: shape, unique ids, cluster and surname counts, missing-value rates, and the
/// consistency of a pairs file with the clusters.
func verify(_ path: String, pairsPath: String?) throws {
  let clock = ContinuousClock()
  let start = clock.now
  let bytes = try [UInt8](Data(contentsOf: URL(fileURLWithPath: path)))
  let rows = CSV.parse(bytes)
  guard let head = rows.first, head.joined(separator: ",") + "\n" == header else {
    throw GeneratorError.usage("\(path): unexpected header")
  }
  var ids: [String: String] = [:]
  var clusters: [String: Int] = [:]
  var surnames: Set<String> = []
  var normalizedSurnames: Set<String> = []
  var firstNames: Set<String> = []
  var missing = [Int](repeating: 0, count: head.count)
  var badRows = 0
  for row in rows.dropFirst() {
    guard row.count == head.count else {
      badRows += 1
      continue
    }
    if ids.updateValue(row[1], forKey: row[0]) != nil { badRows += 1 }
    clusters[row[1], default: 0] += 1
    surnames.insert(row[3])
    normalizedSurnames.insert(Noise.normalized(row[3]))
    firstNames.insert(Noise.normalized(row[2]))
    for (column, value) in row.enumerated() where value.isEmpty { missing[column] += 1 }
  }
  let records = rows.count - 1
  var sizes = [Int](repeating: 0, count: 7)
  for size in clusters.values { sizes[min(size, 6)] += 1 }
  print("\(path): \(records) records, \(badRows) bad rows or repeated ids, \(clusters.count) clusters")
  print("  records per cluster: " + (1...6).map { "\($0): \(sizes[$0])" }.joined(separator: ", "))
  print(
    "  distinct last_name: \(surnames.count) as written, \(normalizedSurnames.count) normalized; "
      + "distinct first_name (normalized): \(firstNames.count)")
  print(
    "  missing: "
      + head.indices.dropFirst(2).map { "\(head[$0]) \(percent(missing[$0], records))" }.joined(separator: ", "))
  if let pairsPath {
    let pairRows = CSV.parse(try [UInt8](Data(contentsOf: URL(fileURLWithPath: pairsPath))))
    var matches = 0
    var wrong = 0
    for row in pairRows.dropFirst() {
      guard row.count == 3, let left = ids[row[0]], let right = ids[row[1]] else {
        wrong += 1
        continue
      }
      if row[2] == "1" { matches += 1 }
      if (left == right) != (row[2] == "1") { wrong += 1 }
    }
    var truePairs = 0
    for size in clusters.values { truePairs += size * (size - 1) / 2 }
    print(
      "\(pairsPath): \(pairRows.count - 1) pairs, \(matches) matches of \(truePairs) true pairs, "
        + "\(wrong) inconsistent with the clusters")
  }
  print("  checked in \(seconds(clock.now - start))")
}

@main
struct TesseraPeople {
  static func main() {
    do {
      let options = try Options(Array(CommandLine.arguments.dropFirst()))
      if let path = options.verify {
        try verify(path, pairsPath: options.pairs)
      } else {
        try generate(options)
      }
    } catch GeneratorError.usage(let message) {
      log(message)
      exit(2)
    } catch {
      log("tessera-people: \(error)")
      exit(1)
    }
  }
}
