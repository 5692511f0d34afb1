// Reference data for the person generator: name frequency lists, nicknames, accented names, US cities with their
// zip codes and area codes, street names and email providers. Lists are ordered most frequent first; the
// generator draws from them with Zipf-like weights.

enum Gender: Sendable {
  case male
  case female
}

struct City: Sendable {
  let name: String
  /// Lowest zip code of the city; its zip codes are `zip ..< zip + zipCount`.
  let zip: Int
  let zipCount: Int
  let areaCodes: [Int]
  /// Other spellings seen in forms ("St. Louis" / "Saint Louis").
  let aliases: [String]

  init(_ name: String, _ zip: Int, _ zipCount: Int, _ areaCodes: [Int], aliases: [String] = []) {
    self.name = name
    self.zip = zip
    self.zipCount = zipCount
    self.areaCodes = areaCodes
    self.aliases = aliases
  }
}

enum PeopleData {
  /// Splits a whitespace-separated word list, dropping repeats but keeping first-seen order.
  static func words(_ text: String) -> [String] {
    var seen: Set<String> = []
    var result: [String] = []
    for word in text.split(whereSeparator: { $0 == " " || $0 == "\n" }) where seen.insert(String(word)).inserted {
      result.append(String(word))
    }
    return result
  }

  static func firstNames(_ text: String) -> [String] { Array(words(text).prefix(160)) }

  /// 160 common US male first names, most frequent first (after SSA name statistics).
  static let maleFirstNames = firstNames(
    """
    James John Robert Michael William David Richard Joseph Thomas Charles Christopher Daniel Matthew Anthony Mark
    Donald Steven Paul Andrew Joshua Kenneth Kevin Brian George Timothy Ronald Edward Jason Jeffrey Ryan Jacob Gary
    Nicholas Eric Jonathan Stephen Larry Justin Scott Brandon Benjamin Samuel Gregory Alexander Frank Patrick
    Raymond Jack Dennis Jerry Tyler Aaron Jose Adam Nathan Henry Douglas Zachary Peter Kyle Ethan Walter Noah
    Jeremy Christian Keith Roger Terry Gerald Harold Sean Austin Carl Arthur Lawrence Dylan Jesse Jordan Bryan
    Billy Joe Bruce Gabriel Logan Albert Willie Alan Juan Wayne Elijah Randy Roy Vincent Ralph Eugene Russell
    Bobby Mason Philip Louis Harry Howard Fred Martin Craig Todd Lucas Luis Carlos Shawn Victor Liam Oliver
    Leonard Dale Manuel Rodney Curtis Norman Allen Marvin Glenn Travis Jeff Chad Lee Melvin Alfred Francis
    Bradley Herbert Frederick Ray Joel Edwin Eddie Ricky Troy Randall Barry Bernard Mario Leroy Francisco Marcus
    Theodore Clifford Miguel Oscar Jay Jim Tom Calvin Alex Jon Ronnie Bill Lloyd Tommy Leon Derek Warren Darrell
    Jerome Floyd Leo Alvin Tim Wesley Gordon Dean Greg Jorge Dustin Pedro Derrick Dan Lewis Corey Maurice Roberto
    Hector Shane Ricardo Sam Rick Brent Ramon Charlie Tyrone Gilbert Marc Reginald Ruben Brett Nathaniel Rafael
    Edgar Raul Ben Andre Brad Ron Mitchell Arnold Harvey Jared Adrian Karl Erik Darryl Neil Javier Fernando
    Ted Darren Lance Cody Julio Kurt Nelson Ian Ivan Isaac Julian Seth Wade
    """)

  /// 160 common US female first names, most frequent first.
  static let femaleFirstNames = firstNames(
    """
    Mary Patricia Jennifer Linda Elizabeth Barbara Susan Jessica Sarah Karen Lisa Nancy Betty Margaret Sandra Ashley
    Kimberly Emily Donna Michelle Carol Amanda Dorothy Melissa Deborah Stephanie Rebecca Sharon Laura Cynthia
    Kathleen Amy Angela Shirley Anna Brenda Pamela Emma Nicole Helen Samantha Katherine Christine Debra Rachel
    Carolyn Janet Catherine Maria Heather Diane Ruth Julie Olivia Joyce Virginia Victoria Kelly Lauren Christina
    Joan Evelyn Judith Megan Andrea Cheryl Hannah Jacqueline Martha Gloria Teresa Ann Sara Madison Frances Kathryn
    Janice Jean Abigail Alice Judy Sophia Grace Denise Amber Doris Marilyn Danielle Beverly Isabella Theresa Diana
    Natalie Brittany Charlotte Marie Kayla Alexis Lori Tiffany Rose Kathy Tammy Irene Jane Lillian Ava Mia Chloe
    Ella Lily Zoe Harper Avery Sofia Leah Allison Savannah Audrey Claire Stella Violet Hazel Aurora Eleanor
    Penelope Layla Nora Riley Scarlett Lucy Anne Peggy Wanda Bonnie Julia Ruby Lois Tina Phyllis Norma Paula Annie
    Dawn Holly Erin Kristin Katie Kate Beth Jill Valerie Connie Sylvia Josephine Florence Lucille Edna Thelma Ethel
    Rita Gail Carmen Rosa Veronica Vanessa Monica Erica Alicia Yvonne Regina Sherry Wendy Kristen Crystal Tracy
    Courtney Caroline Molly Alyssa Jasmine Madeline Jamie Leslie Tara
    """)

  /// The 600 most common US surnames (2010 census order, apostrophes restored).
  static let surnames = Array(
    words(
      """
      Smith Johnson Williams Brown Jones Garcia Miller Davis Rodriguez Martinez Hernandez Lopez Gonzalez Wilson
      Anderson Thomas Taylor Moore Jackson Martin Lee Perez Thompson White Harris Sanchez Clark Ramirez Lewis
      Robinson Walker Young Allen King Wright Scott Torres Nguyen Hill Flores Green Adams Nelson Baker Hall Rivera
      Campbell Mitchell Carter Roberts Gomez Phillips Evans Turner Diaz Parker Cruz Edwards Collins Reyes Stewart
      Morris Morales Murphy Cook Rogers Gutierrez Ortiz Morgan Cooper Peterson Bailey Reed Kelly Howard Ramos Kim
      Cox Ward Richardson Watson Brooks Chavez Wood James Bennett Gray Mendoza Ruiz Hughes Price Alvarez Castillo
      Sanders Patel Myers Long Ross Foster Jimenez Powell Jenkins Perry Russell Sullivan Bell Coleman Butler
      Henderson Barnes Gonzales Fisher Vasquez Simmons Romero Jordan Patterson Alexander Hamilton Graham Reynolds
      Griffin Wallace Moreno West Cole Hayes Bryant Herrera Gibson Ellis Tran Medina Aguilar Stevens Murray Ford
      Castro Marshall Owens Harrison Fernandez McDonald Woods Washington Kennedy Wells Vargas Henry Chen Freeman
      Webb Tucker Guzman Burns Crawford Olson Simpson Porter Hunter Gordon Mendez Silva Shaw Snyder Mason Dixon
      Munoz Hunt Hicks Holmes Palmer Wagner Black Robertson Boyd Rose Stone Salazar Fox Warren Mills Meyer Rice
      Schmidt Garza Daniels Ferguson Nichols Stephens Soto Weaver Ryan Gardner Payne Grant Dunn Kelley Spencer
      Hawkins Arnold Pierce Vazquez Hansen Peters Santos Hart Bradley Knight Elliott Cunningham Duncan Armstrong
      Hudson Carroll Lane Riley Andrews Alvarado Ray Delgado Berry Perkins Hoffman Johnston Matthews Pena Richards
      Contreras Willis Carpenter Lawrence Sandoval Guerrero George Chapman Rios Estrada Ortega Watkins Greene Nunez
      Wheeler Valdez Harper Burke Larson Santiago Maldonado Morrison Franklin Carlson Austin Dominguez Carr Lawson
      Jacobs O'Brien Lynch Singh Vega Bishop Montgomery Oliver Jensen Harvey Williamson Gilbert Dean Sims Espinoza
      Howell Li Wong Reid Hanson Le McCoy Garrett Burton Fuller Wang Weber Welch Rojas Lucas Marquez Fields Park
      Yang Little Banks Padilla Day Walsh Bowman Schultz Luna Fowler Mejia Davidson Acosta Brewer May Holland Juarez
      Newman Pearson Curtis Cortez Douglas Schneider Joseph Barrett Navarro Figueroa Keller Avila Wade Molina
      Stanley Hopkins Campos Barnett Bates Chambers Caldwell Beck Lambert Miranda Byrd Craig Ayala Lowe Frazier
      Powers Neal Leonard Gregory Carrillo Sutton Fleming Rhodes Shelton Schwartz Norris Jennings Watts Duran
      Walters Cohen McDaniel Moran Parks Steele Vaughn Becker Holt Deleon Barker Terry Hale Leon Benson Haynes
      Horton Miles Lyons Pham Graves Bush Thornton Wolfe Warner Cabrera McKinney Mann Zimmerman Dawson Lara Fletcher
      Page McCarthy Love Robles Cervantes Solis Erickson Reeves Chang Klein Salinas Fuentes Baldwin Daniel Simon
      Velasquez Hardy Higgins Aguirre Lin Cummings Chandler Sharp Barber Bowen Ochoa Dennis Robbins Liu Ramsey
      Francis Griffith Paul Blair O'Connor Cardenas Pacheco Cross Calderon Quinn Moss Swanson Chan Rivas Khan
      Rodgers Serrano Fitzgerald Rosales Stevenson Christensen Manning Gill Curry McLaughlin Harmon McGee Gross
      Doyle Garner Newton Burgess Reese Walton Blake Trujillo Adkins Brady Goodman Roman Webster Goodwin Fischer
      Huang Potter Delacruz Montoya Todd Wu Hines Mullins Castaneda Malone Cannon Tate Mack Sherman Hubbard Hodges
      Zhang Guerra Wolf Valencia Saunders Franco Rowe Gallagher Farmer Hammond Hampton Townsend Ingram Wise
      Gallegos Clarke Barton Schroeder Maxwell Waters Logan Camacho Strickland Norman Person Colon Parsons Frank
      Harrington Glover Osborne Buchanan Casey Floyd Patton Ibarra Ball Tyler Suarez Bowers Orozco Salas Cobb Gibbs
      Andrade Bauer Conner Moody Escobar McGuire Lloyd Mueller Hartman French Kramer McBride Pope Lindsey Velazquez
      Norton McCormick Sparks Flynn Yates Hogan Marsh Macias Villanueva Zamora Pratt Stokes Owen Ballard Lang Brock
      Villarreal Charles Drake Barrera Cain Patrick Pineda Burnett Mercado Santana Shepherd Bautista Ali Shaffer
      Lamb Trevino McKenzie Hess Olsen Cochran Morton Nash Wilkins Petersen Briggs Shah Roth Nicholson Holloway
      Lozano Rangel Flowers Hoover Short Arias Mora Valenzuela Bryan Meyers Weiss Underwood Bass Greer Summers
      Houston Carson Morrow Clayton Whitaker Decker Yoder Collier Zuniga Carey Wilcox Melendez Poole Roberson
      Larsen Conley Davenport Copeland Massey Lam Huff Rocha Cameron Jefferson Hood Monroe Anthony Pittman Huynh
      Randall Singleton Kirk Combs Mathis Christian Skinner Bradford Richard Galvan Wall Boone Kirby Wilkinson
      Bridges Bruce Atkinson Velez Meza Roy Vincent York Hodge Villa Abbott Allison Tapia Gates Chase Sosa Sweeney
      Farrell Wyatt Dalton Horn Barron Phelps Yu Dickerson Heath Foley Atkins Mathews Bonilla Acevedo Benitez
      Zavala Hensley Glenn Cisneros Harrell Shields Rubio Choi Huffman Boyer Garrison Arroyo Bond Kane Hancock
      Callahan Dillon Cline Wiggins Grimes Arellano Melton O'Neill Savage Ho Beltran Pitts Parrish Ponce Rich Booth
      Koch Golden Ware Brennan McDowell Marks Cantu Humphrey Baxter Sawyer Clay Tanner Hutchinson Kaur Berg Wiley
      Gilmore Russo Villegas Hobbs Keith Wilkerson Ahmed Beard McClain Montes Mata Rosario Vang Walter Henson
      O'Neal Mosley McClure Beasley Stephenson Snow Huerta Preston Vance Barry Johns Eaton Blackwell Dyer Prince
      Macdonald Solomon Guevara Stafford English Hurst Woodard Cortes Shannon Kemp Nolan McCullough Merritt Murillo
      Moon Salgado Strong Kline Cordova Barajas Roach Rosas Winters Jacobson Lester Knox Bullock Kerr Leach Meadows
      Orr Davila Whitehead Pruitt Kent Conway McKee Barr David Dejesus Marin Berger McIntyre Blankenship Gaines
      """
    ).prefix(600))

  /// Accented names (about 1% of people carry one); duplicates often lose the accents.
  static let accentedMaleFirstNames = ["José", "André", "Noël", "Héctor", "Jesús", "Raúl", "Ramón", "Joël", "Jürgen"]
  static let accentedFemaleFirstNames = [
    "Zoë", "Renée", "Chloé", "Inés", "María", "Sofía", "Léa", "Amélie", "Hélène", "Agnès", "Zoé", "Mónica",
  ]
  static let accentedSurnames = [
    "Müller", "García", "Hernández", "Pérez", "Martínez", "González", "Rodríguez", "López", "Sánchez", "Ramírez",
    "Gómez", "Núñez", "Peña", "Muñoz", "Schröder", "Côté", "Bélanger", "Gagné", "Lefèvre", "Jiménez", "Álvarez",
    "Díaz", "Fernández", "Gutiérrez", "Domínguez", "Vázquez", "Ibáñez", "Méndez", "Köhler", "Böhm",
  ]

  /// Unaccented forms for the accented letters used above.
  static let asciiFold: [Character: Character] = [
    "á": "a", "à": "a", "ä": "a", "â": "a", "é": "e", "è": "e", "ë": "e", "ê": "e", "í": "i", "ï": "i", "ó": "o",
    "ö": "o", "ô": "o", "ú": "u", "ü": "u", "ñ": "n", "ç": "c", "Á": "A", "É": "E", "Í": "I", "Ó": "O", "Ö": "O",
    "Ú": "U", "Ü": "U", "Ñ": "N",
  ]

  /// Formal first name → nicknames seen in forms.
  static let nicknames: [String: [String]] = [
    "Robert": ["Bob", "Rob", "Bobby"], "William": ["Bill", "Will", "Billy"],
    "Elizabeth": ["Liz", "Beth", "Lizzie", "Betty"], "Katherine": ["Kate", "Katie", "Kathy"],
    "Catherine": ["Cathy", "Kate"], "Kathleen": ["Kathy", "Kate"], "Margaret": ["Maggie", "Peggy", "Meg"],
    "James": ["Jim", "Jimmy", "Jamie"], "Michael": ["Mike", "Mikey"], "John": ["Johnny", "Jack"],
    "Richard": ["Rick", "Rich", "Dick"], "Joseph": ["Joe", "Joey"], "Thomas": ["Tom", "Tommy"],
    "Charles": ["Charlie", "Chuck"], "Christopher": ["Chris"], "Daniel": ["Dan", "Danny"], "Matthew": ["Matt"],
    "Anthony": ["Tony"], "Steven": ["Steve"], "Stephen": ["Steve"], "Andrew": ["Andy", "Drew"],
    "Joshua": ["Josh"], "Kenneth": ["Ken", "Kenny"], "Edward": ["Ed", "Eddie", "Ted"], "Timothy": ["Tim"],
    "Jeffrey": ["Jeff"], "Nicholas": ["Nick"], "Jonathan": ["Jon"], "Benjamin": ["Ben"], "Samuel": ["Sam"],
    "Gregory": ["Greg"], "Alexander": ["Alex"], "Patrick": ["Pat"], "Raymond": ["Ray"], "Douglas": ["Doug"],
    "Zachary": ["Zach"], "Peter": ["Pete"], "Donald": ["Don"], "Ronald": ["Ron"], "Lawrence": ["Larry"],
    "Gerald": ["Jerry"], "Frederick": ["Fred"], "Jennifer": ["Jen", "Jenny"], "Patricia": ["Pat", "Patty", "Trish"],
    "Susan": ["Sue", "Susie"], "Deborah": ["Debbie", "Deb"], "Rebecca": ["Becky"], "Pamela": ["Pam"],
    "Christine": ["Chris", "Chrissy"], "Cynthia": ["Cindy"], "Samantha": ["Sam"], "Victoria": ["Vicky", "Tori"],
    "Judith": ["Judy"], "Jacqueline": ["Jackie"], "Abigail": ["Abby"], "Barbara": ["Barb"],
    "Dorothy": ["Dot", "Dottie"], "Kimberly": ["Kim"], "Stephanie": ["Steph"], "Melissa": ["Missy"],
    "Amanda": ["Mandy"], "Jessica": ["Jess"], "Theresa": ["Terri"], "Teresa": ["Terri"], "Alexis": ["Lexi"],
  ]

  /// Syllables for the long tail of rare surnames (about 70 × 16 × 60 combinations).
  static let surnameStarts = words(
    """
    Ab Al Ash Bal Bar Bel Ber Bran Brook Cal Car Cor Dal Dan Del Dor Dun El Fal Far Fen Gal Gar Gil Gor Hal Har
    Hol Kal Kel Ken Kor Lan Lar Lin Lor Mal Mar Mel Mor Nor Ost Pal Pem Quin Ral Ren Rod Sal Sel Stan Tal Tor Val
    Ver Wal Wen Wes Win Yar Zel Bro Cran Dra Fro Gra Kra Pra Stra Tre Vor
    """)
  static let surnameMiddles = ["", "a", "e", "i", "o", "u", "en", "er", "in", "an", "ou", "el", "ar", "is", "ol", "y"]
  static let surnameEnds = words(
    """
    son sen man mann ley ly ton ston berg burg ski sky ford well wood worth field dale ridge more by ham ling ard
    ett ick ier ing ow ez ini ino ova ov ek ak as es is ich ovic stein baum hart holt land lund quist strom lin ler
    ner ster wick wright ock den don ney ray
    """)

  /// US cities, most populous first: name, lowest zip, number of zips, area codes.
  static let cities: [City] = [
    City("New York", 10001, 30, [212, 646, 917, 718, 347, 332], aliases: ["New York City", "NYC"]),
    City("Los Angeles", 90001, 30, [213, 310, 323, 424, 818], aliases: ["LA"]),
    City("Chicago", 60601, 30, [312, 773, 872]),
    City("Houston", 77001, 30, [713, 281, 832, 346]),
    City("Phoenix", 85001, 30, [602, 480, 623]),
    City("Philadelphia", 19102, 30, [215, 267, 445]),
    City("San Antonio", 78201, 30, [210, 726]),
    City("San Diego", 92101, 30, [619, 858]),
    City("Dallas", 75201, 30, [214, 469, 972]),
    City("San Jose", 95110, 30, [408, 669]),
    City("Austin", 78701, 15, [512, 737]),
    City("Jacksonville", 32202, 15, [904]),
    City("Fort Worth", 76102, 15, [817, 682]),
    City("Columbus", 43201, 15, [614, 380]),
    City("Charlotte", 28202, 15, [704, 980]),
    City("San Francisco", 94102, 15, [415, 628], aliases: ["SF"]),
    City("Indianapolis", 46201, 15, [317, 463]),
    City("Seattle", 98101, 15, [206, 564]),
    City("Denver", 80202, 15, [303, 720]),
    City("Washington", 20001, 15, [202, 771], aliases: ["Washington DC", "Washington, D.C."]),
    City("Boston", 2108, 15, [617, 857]),
    City("El Paso", 79901, 15, [915]),
    City("Nashville", 37201, 15, [615, 629]),
    City("Detroit", 48201, 15, [313]),
    City("Oklahoma City", 73102, 15, [405, 572]),
    City("Portland", 97201, 15, [503, 971]),
    City("Las Vegas", 89101, 15, [702, 725]),
    City("Memphis", 38103, 15, [901]),
    City("Louisville", 40202, 15, [502]),
    City("Baltimore", 21201, 15, [410, 443, 667]),
    City("Milwaukee", 53202, 8, [414]),
    City("Albuquerque", 87102, 8, [505]),
    City("Tucson", 85701, 8, [520]),
    City("Fresno", 93701, 8, [559]),
    City("Sacramento", 95814, 8, [916, 279]),
    City("Kansas City", 64105, 8, [816]),
    City("Mesa", 85201, 8, [480]),
    City("Atlanta", 30303, 8, [404, 678, 470]),
    City("Omaha", 68102, 8, [402, 531]),
    City("Colorado Springs", 80903, 8, [719]),
    City("Raleigh", 27601, 8, [919, 984]),
    City("Miami", 33125, 8, [305, 786]),
    City("Long Beach", 90802, 8, [562]),
    City("Virginia Beach", 23451, 8, [757]),
    City("Oakland", 94601, 8, [510, 341]),
    City("Minneapolis", 55401, 8, [612]),
    City("Tulsa", 74103, 8, [918, 539]),
    City("Tampa", 33602, 8, [813, 656]),
    City("Arlington", 76010, 8, [817, 682]),
    City("New Orleans", 70112, 8, [504]),
    City("Wichita", 67202, 8, [316]),
    City("Cleveland", 44101, 8, [216]),
    City("Bakersfield", 93301, 8, [661]),
    City("Aurora", 80010, 8, [303, 720]),
    City("Anaheim", 92801, 8, [714, 657]),
    City("Honolulu", 96813, 8, [808]),
    City("Santa Ana", 92701, 8, [714, 657]),
    City("Riverside", 92501, 8, [951]),
    City("Corpus Christi", 78401, 8, [361]),
    City("Lexington", 40502, 8, [859]),
    City("Stockton", 95202, 8, [209]),
    City("Henderson", 89002, 8, [702, 725]),
    City("Saint Paul", 55101, 8, [651], aliases: ["St. Paul", "St Paul"]),
    City("St. Louis", 63101, 8, [314], aliases: ["Saint Louis", "St Louis"]),
    City("Cincinnati", 45202, 8, [513]),
    City("Pittsburgh", 15222, 8, [412, 878]),
    City("Greensboro", 27401, 8, [336]),
    City("Anchorage", 99501, 8, [907]),
    City("Plano", 75023, 8, [972, 469]),
    City("Lincoln", 68502, 8, [402]),
    City("Orlando", 32801, 8, [407, 321]),
    City("Irvine", 92602, 8, [949]),
    City("Newark", 7102, 8, [973, 862]),
    City("Toledo", 43604, 8, [419, 567]),
    City("Durham", 27701, 8, [919, 984]),
    City("Chula Vista", 91910, 8, [619]),
    City("Fort Wayne", 46802, 8, [260]),
    City("Jersey City", 7302, 8, [201, 551]),
    City("St. Petersburg", 33701, 8, [727], aliases: ["Saint Petersburg", "St Petersburg"]),
    City("Laredo", 78040, 8, [956]),
    City("Madison", 53703, 8, [608]),
    City("Chandler", 85224, 8, [480]),
    City("Buffalo", 14202, 8, [716]),
    City("Lubbock", 79401, 8, [806]),
    City("Scottsdale", 85251, 8, [480]),
    City("Reno", 89501, 8, [775]),
    City("Glendale", 85301, 8, [623]),
    City("Gilbert", 85233, 8, [480]),
    City("Winston-Salem", 27101, 8, [336], aliases: ["Winston Salem"]),
    City("North Las Vegas", 89030, 8, [702, 725]),
    City("Norfolk", 23510, 8, [757]),
    City("Chesapeake", 23320, 8, [757]),
    City("Garland", 75040, 8, [972, 469]),
    City("Irving", 75060, 8, [972, 469]),
    City("Hialeah", 33010, 8, [305, 786]),
    City("Fremont", 94536, 8, [510]),
    City("Boise", 83702, 8, [208, 986]),
    City("Richmond", 23219, 8, [804]),
    City("Baton Rouge", 70801, 8, [225]),
    City("Spokane", 99201, 8, [509]),
    City("Des Moines", 50309, 8, [515]),
    City("Tacoma", 98402, 8, [253]),
    City("San Bernardino", 92401, 8, [909]),
    City("Modesto", 95354, 8, [209]),
    City("Fontana", 92335, 8, [909]),
    City("Birmingham", 35203, 8, [205, 659]),
    City("Oxnard", 93030, 8, [805]),
    City("Fayetteville", 28301, 8, [910]),
    City("Rochester", 14604, 8, [585]),
    City("Salt Lake City", 84101, 8, [801, 385], aliases: ["SLC"]),
    City("Providence", 2903, 8, [401]),
    City("Hartford", 6103, 8, [860, 959]),
    City("Burlington", 5401, 8, [802]),
    City("Manchester", 3101, 8, [603]),
    City("Little Rock", 72201, 8, [501]),
    City("Jackson", 39201, 8, [601, 769]),
    City("Charleston", 29401, 8, [843, 854]),
    City("Savannah", 31401, 8, [912]),
    City("Knoxville", 37902, 8, [865]),
    City("Grand Rapids", 49503, 8, [616]),
    City("Akron", 44308, 8, [330, 234]),
    City("Dayton", 45402, 8, [937, 326]),
    City("Syracuse", 13202, 8, [315, 680]),
    City("Albany", 12207, 8, [518, 838]),
  ]

  static let streetNames = words(
    """
    Main Oak Pine Maple Cedar Elm Washington Lake Hill Park Walnut Sunset Lincoln Jackson Church River Highland
    Forest Meadow Spring Willow Jefferson Adams Madison Franklin Chestnut Ridge Valley Center Mill Union Lakeview
    Broad Market Prospect Cherry Dogwood Magnolia Sycamore Birch Hickory Spruce Laurel Poplar Juniper Aspen College
    School Railroad Water North South 1st 2nd 3rd 4th 5th 6th 7th 8th 9th 10th 12th 14th Harbor Bay Ocean Canyon
    Fairview Greenwood Woodland Rosewood Orchard Cambridge Oxford Heritage Liberty Victoria King Queen Wilson
    Kennedy Roosevelt Grant Cleveland Monroe Hamilton Garfield Valley Vista Mission
    """)
  /// Street suffixes: abbreviation, full word, relative frequency.
  static let streetSuffixes: [(short: String, full: String, weight: Double)] = [
    ("St", "Street", 30), ("Ave", "Avenue", 20), ("Rd", "Road", 12), ("Dr", "Drive", 12), ("Ln", "Lane", 7),
    ("Blvd", "Boulevard", 4), ("Ct", "Court", 5), ("Way", "Way", 4), ("Pl", "Place", 3), ("Ter", "Terrace", 1.5),
    ("Cir", "Circle", 1.5),
  ]

  /// Email domains and relative frequency; the company domains are fictional (`example.*`).
  static let emailProviders: [(domain: String, weight: Double)] = [
    ("gmail.com", 34), ("yahoo.com", 14), ("outlook.com", 11), ("hotmail.com", 8), ("icloud.com", 7), ("aol.com", 3),
    ("comcast.net", 3), ("example.com", 5), ("acme.example.com", 4), ("globex.example.com", 3),
    ("initech.example.org", 3), ("umbrella.example.net", 2), ("example.org", 3),
  ]

  /// QWERTY neighbours of each lowercase letter `a`…`z`, for plausible typos.
  static let keyboardNeighbours: [[UInt8]] = [
    "qwsz", "vghn", "xdfv", "serfcx", "wrds", "drtgvc", "ftyhbv", "gyujnb", "uojk", "huikmn", "jiolm", "kop", "njk",
    "bhjm", "iplk", "ol", "wa", "etdf", "awedxz", "ryfg", "yihj", "cfgb", "qeas", "zsdc", "tugh", "asx",
  ].map { Array($0.utf8) }
}
