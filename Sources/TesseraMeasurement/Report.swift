import TesseraCompiler
import TesseraModel

/// A funnel counted by one unit: how many units reached each step, in order, within the window.
public struct FunnelResult: Sendable, Hashable {
  public struct Step: Sendable, Hashable {
    public var name: String
    public var units: Int
    /// Of the units that entered (step 1), in percent.
    public var conversion: Double
    /// Of the units that reached the step before, in percent.
    public var fromPrevious: Double
    /// The median time from the step before (seconds); nil for the first step or when nobody reached it.
    public var medianSeconds: Double?
  }
  public var unit: CountingUnit
  public var steps: [Step]
}

/// One row of an attribution model: a channel (or campaign) and the conversions and value credited to it.
public struct Credit: Sendable, Hashable {
  public var key: String
  public var conversions: Double
  public var value: Double
  public init(key: String, conversions: Double, value: Double) {
    self.key = key
    self.conversions = conversions
    self.value = value
  }
}

/// One model's credit, by key.
public struct ModelCredits: Sendable, Hashable {
  public var model: AttributionModel
  public var credits: [Credit]
}

/// A sequence of channels that led to conversions.
public struct ConversionPath: Sendable, Hashable {
  /// The channels of the touches in the look-back window, in order, consecutive repeats folded.
  public var channels: [String]
  public var conversions: Int
  public var units: Int
  public var value: Double
  public var text: String { channels.isEmpty ? "(no touch)" : channels.joined(separator: " → ") }
}

/// An attribution report counted by one unit: conversions, credit by model, and the top paths.
public struct AttributionResult: Sendable, Hashable {
  public var unit: CountingUnit
  /// Units with a touch or a conversion.
  public var units: Int
  public var conversions: Int
  public var convertingUnits: Int
  public var value: Double
  /// Conversions with no touch in the look-back window, and their value.
  public var unattributed: Int
  public var unattributedValue: Double
  /// By model (in declaration order), the credited rows by key.
  public var models: [ModelCredits]
  public var paths: [ConversionPath]

  /// The credit a model gave `key` (0 when none).
  public func credit(_ model: AttributionModel, _ key: String) -> Credit? {
    models.first { $0.model == model }?.credits.first { $0.key == key }
  }
}

/// A report over the event log, by each requested unit.
public struct MeasurementReport: Sendable {
  public enum Body: Sendable {
    case funnel([FunnelResult])
    case attribution([AttributionResult])
  }
  public var name: String
  public var kind: String
  public var from: Timestamp?
  public var to: Timestamp?
  public var body: Body
  /// Logged events their source's mapping could not read (skipped, counted).
  public var unreadable: Int
  /// How many events the log holds.
  public var events: Int

  public var funnels: [FunnelResult] {
    if case .funnel(let f) = body { return f }
    return []
  }
  public var attributions: [AttributionResult] {
    if case .attribution(let a) = body { return a }
    return []
  }
  public func funnel(_ unit: CountingUnit) -> FunnelResult? { funnels.first { $0.unit == unit } }
  public func attribution(_ unit: CountingUnit) -> AttributionResult? { attributions.first { $0.unit == unit } }
}
