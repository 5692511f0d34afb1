/// The rates of the generator's model: how often a later record of a person is corrupted, and how many persons
/// share an address with others. `standard` is the model of examples/people/README.md; `hard` has more typos and
/// more shared addresses (larger households, and unrelated neighbours in apartment buildings), so matching rules
/// are not measured on one data shape only.
struct NoiseProfile: Sendable {
  var name: String
  /// Units that are households of 2–4 persons sharing surname and address.
  var householdUnitShare: Double
  /// Single persons who live in an apartment building another unit already lives in: same street number,
  /// street, city and postcode, their own apartment.
  var sharedBuildingShare: Double
  var twinsShare: Double
  var nameTypo: Double
  var nickname: Double
  var swappedNames: Double
  var dateOfBirthError: Double
  var moved: Double
  var newEmail: Double
  var emailTypo: Double
  var phoneTypo: Double
  var streetStyle: Double
  var cityAlias: Double
  var caseAndSpacing: Double

  static let standard = NoiseProfile(
    name: "standard", householdUnitShare: 0.1176, sharedBuildingShare: 0, twinsShare: 0.01, nameTypo: 0.08,
    nickname: 0.05, swappedNames: 0.02, dateOfBirthError: 0.03, moved: 0.10, newEmail: 0.05, emailTypo: 0.03,
    phoneTypo: 0.02, streetStyle: 0.05, cityAlias: 0.1, caseAndSpacing: 0.05)

  static let hard = NoiseProfile(
    name: "hard", householdUnitShare: 0.25, sharedBuildingShare: 0.15, twinsShare: 0.03, nameTypo: 0.16,
    nickname: 0.08, swappedNames: 0.03, dateOfBirthError: 0.06, moved: 0.15, newEmail: 0.08, emailTypo: 0.06,
    phoneTypo: 0.04, streetStyle: 0.10, cityAlias: 0.15, caseAndSpacing: 0.10)

  static let all = [standard, hard]
}
