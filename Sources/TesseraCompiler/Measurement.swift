import TesseraLanguage
import TesseraModel

/// Which events are marketing touches, and the channel and campaign each one is credited to.
public struct TouchpointDecl: Sendable {
  public var name: String
  public var location: SourceLocation
  /// Which events are touches of this kind (event scope).
  public var filter: CompiledExpr
  /// The channel (a string); a touch whose channel is null or empty is `direct`.
  public var channel: CompiledExpr?
  /// The campaign (a string); null or empty is `(none)`.
  public var campaign: CompiledExpr?
}

/// Which events are conversions, and what each is worth.
public struct ConversionDecl: Sendable {
  public var name: String
  public var location: SourceLocation
  public var filter: CompiledExpr
  /// A number; null counts the conversion with value 0.
  public var value: CompiledExpr?
}

/// One step of a funnel: the events that make it.
public struct FunnelStep: Sendable {
  public var name: String
  public var filter: CompiledExpr
  public var location: SourceLocation
}

/// Ordered steps a unit (person, device, session) must take within `window` of the first.
public struct FunnelDecl: Sendable {
  public var name: String
  public var location: SourceLocation
  public var description: String?
  public var steps: [FunnelStep]
  public var window: TimeSpan
  /// Values every step of one attempt must share (Amplitude's "hold property constant"), in the event scope.
  public var holdConstant: [CompiledExpr]
}

public enum AttributionModel: String, Sendable, CaseIterable {
  case first_touch, last_touch, last_non_direct, linear, position_based, time_decay
}

/// What attribution credits: the touch's channel or its campaign.
public enum CreditTarget: String, Sendable, CaseIterable { case channel, campaign }

/// Credit for one conversion's value among the touches before it, under several models side by side.
public struct AttributionDecl: Sendable {
  public var name: String
  public var location: SourceLocation
  public var description: String?
  public var conversion: String
  /// The touchpoint kinds counted; every declared one when the declaration names none.
  public var touchpoints: [String]
  public var lookback: TimeSpan
  public var models: [AttributionModel]
  public var creditTo: CreditTarget
  /// `position_based`: the shares of the first and the last touch; the middle ones split the rest.
  public var firstWeight: Double
  public var lastWeight: Double
  /// `time_decay`: a touch `half_life` older than the conversion gets half the weight of one at its time.
  public var halfLife: TimeSpan
}

/// The `measurement` section: touches, conversions, funnels and attribution, counted by people.
public struct MeasurementConfig: Sendable {
  /// The identifier kind that names a device (counting `by devices`); nil: events count by their strongest
  /// identifier.
  public var device: String?
  /// A session ends after this long without an event of its device.
  public var sessionTimeout = TimeSpan(seconds: 1800)
  public var touchpoints: [TouchpointDecl] = []
  public var conversions: [ConversionDecl] = []
  public var funnels: [FunnelDecl] = []
  public var attribution: [AttributionDecl] = []
  public init() {}

  public func funnel(_ name: String) -> FunnelDecl? { funnels.first { $0.name == name } }
  public func attribution(_ name: String) -> AttributionDecl? { attribution.first { $0.name == name } }
  public func conversion(_ name: String) -> ConversionDecl? { conversions.first { $0.name == name } }
  /// The names `tessera report` accepts: funnels and attribution reports.
  public var reportNames: [String] { funnels.map(\.name) + attribution.map(\.name) }
}
