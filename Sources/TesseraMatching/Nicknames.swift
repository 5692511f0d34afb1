/// Common English given names and the short forms people write on forms, for the `nickname` comparison
/// level: two names agree at that level when one is a short form of the other or both are short forms of
/// the same name (`bob` ~ `robert` ~ `rob`). A short form may belong to several names (`chris`, `sam`,
/// `pat`), so each name keeps the set of groups it belongs to.
public enum Nicknames {
  static let table: [String: [String]] = [
    "abigail": ["abby", "abbie", "gail"], "albert": ["al", "bert", "bertie"],
    "alexander": ["alex", "al", "sandy", "xander"],
    "alexandra": ["alex", "lexi", "sandra", "sandy"], "alexis": ["lexi", "alex"], "alfred": ["al", "alf", "fred"],
    "alice": ["allie", "ally"], "allison": ["allie", "ally"], "amanda": ["mandy", "manda"], "andrew": ["andy", "drew"],
    "angela": ["angie"], "anthony": ["tony"], "arthur": ["art", "artie"], "barbara": ["barb", "barbie", "babs"],
    "benjamin": ["ben", "benny", "benji"], "beverly": ["bev"], "bradley": ["brad"], "brian": ["bri"],
    "caroline": ["carrie", "carol"], "catherine": ["cathy", "kate", "katie", "cat"],
    "charles": ["charlie", "chuck", "chas"],
    "charlotte": ["charlie", "lottie"], "christina": ["chris", "tina", "christy"],
    "christine": ["chris", "chrissy", "tina"],
    "christopher": ["chris", "topher", "kit"], "clifford": ["cliff"], "cynthia": ["cindy", "cyndi"],
    "daniel": ["dan", "danny"], "danielle": ["dani", "elle"], "david": ["dave", "davy"],
    "deborah": ["debbie", "deb", "debra"],
    "debra": ["debbie", "deb"], "dennis": ["denny"], "donald": ["don", "donny"], "dorothy": ["dot", "dottie", "dolly"],
    "douglas": ["doug"], "edward": ["ed", "eddie", "ted", "ned"], "eleanor": ["ellie", "nora", "nell"],
    "elizabeth": ["liz", "beth", "lizzie", "betty", "eliza", "liza", "betsy", "libby"], "emily": ["em", "emmy"],
    "eugene": ["gene"], "frances": ["fran", "frannie"], "francis": ["frank", "fran"],
    "frederick": ["fred", "freddy", "rick"],
    "gabriel": ["gabe"], "gabrielle": ["gabby", "elle"], "gerald": ["jerry", "gerry"], "gregory": ["greg"],
    "harold": ["harry", "hal"], "henry": ["hank", "harry"], "jacob": ["jake"], "jacqueline": ["jackie", "jacqui"],
    "james": ["jim", "jimmy", "jamie", "jem"], "janet": ["jan"], "jeffrey": ["jeff"],
    "jennifer": ["jen", "jenny", "jenn"],
    "jessica": ["jess", "jessie"], "john": ["johnny", "jack", "jon"], "jonathan": ["jon", "jonny", "nathan"],
    "joseph": ["joe", "joey"], "joshua": ["josh"], "judith": ["judy", "jude"],
    "katherine": ["kate", "katie", "kathy", "kat", "kay"],
    "kathleen": ["kathy", "kate", "kay"], "kenneth": ["ken", "kenny"], "kimberly": ["kim", "kimmy"],
    "lawrence": ["larry", "laurie"], "leonard": ["leo", "len", "lenny"],
    "margaret": ["maggie", "peggy", "meg", "marge", "madge"],
    "matthew": ["matt", "matty"], "melissa": ["missy", "mel", "lissa"], "michael": ["mike", "mikey", "mick", "mickey"],
    "michelle": ["shelly", "michele"], "nathaniel": ["nate", "nathan", "nat"], "nicholas": ["nick", "nicky"],
    "nicole": ["nikki", "nicky"], "pamela": ["pam"], "patricia": ["pat", "patty", "trish", "tricia"],
    "patrick": ["pat", "paddy"], "peter": ["pete"], "philip": ["phil"], "raymond": ["ray"],
    "rebecca": ["becky", "becca"],
    "richard": ["rick", "rich", "dick", "ricky", "richie"], "robert": ["bob", "rob", "bobby", "robbie", "bert"],
    "ronald": ["ron", "ronnie"], "samantha": ["sam", "sammy"], "samuel": ["sam", "sammy"], "sandra": ["sandy"],
    "stephanie": ["steph", "stephie"], "stephen": ["steve", "stevie"], "steven": ["steve", "stevie"],
    "susan": ["sue", "susie", "suzy"], "suzanne": ["sue", "suzy"], "teresa": ["terri", "terry", "tess"],
    "theresa": ["terri", "terry", "tess"], "theodore": ["ted", "teddy", "theo"], "thomas": ["tom", "tommy"],
    "timothy": ["tim", "timmy"], "valerie": ["val"], "victoria": ["vicky", "tori", "vic"],
    "vincent": ["vince", "vinny"],
    "walter": ["walt", "wally"], "william": ["bill", "will", "billy", "willy", "liam"], "zachary": ["zach", "zack"],
  ]

  /// Name → the indices of the groups (formal names) it belongs to.
  static let groups: [String: [UInt32]] = {
    var out: [String: [UInt32]] = [:]
    for (g, entry) in table.sorted(by: { $0.key < $1.key }).enumerated() {
      for name in [entry.key] + entry.value { out[name, default: []].append(UInt32(g + 1)) }
    }
    return out
  }()

  /// Up to four group ids packed 16 bits each (0 = none), for a folded (lowercase) name.
  public static func packedGroups(_ name: String) -> UInt64 {
    guard let gs = groups[name] else { return 0 }
    var out: UInt64 = 0
    for (k, g) in gs.prefix(4).enumerated() { out |= UInt64(g & 0xFFFF) << (16 * UInt64(k)) }
    return out
  }

  /// Whether two packed group sets share a group.
  @inline(__always) public static func share(_ a: UInt64, _ b: UInt64) -> Bool {
    guard a != 0, b != 0 else { return false }
    var x = a
    while x != 0 {
      let g = x & 0xFFFF
      var y = b
      while y != 0 {
        if y & 0xFFFF == g { return true }
        y >>= 16
      }
      x >>= 16
    }
    return false
  }
}
