import Foundation
import TesseraModel

public typealias Evaluator = @Sendable (Env) -> Value

/// A type-checked expression compiled to a tree of closures: parsed once, evaluated per event.
public struct CompiledExpr: Sendable {
  public let text: String
  public let type: ExprType
  /// Dotted names the expression reads (`traits.city`, `segments.vip`, raw fields), for dependency checks.
  public let references: Set<String>
  /// Whether the expression reads the clock (`now()`): its value may change with nothing it references changing.
  public let readsClock: Bool
  /// The value, when the expression is a constant.
  public let constant: Value?
  /// Each read of a raw record field (source mappings), with where its name is in `text`, in text order.
  public let rawReads: [RawRead]
  @usableFromInline let eval: Evaluator

  @inlinable public func evaluate(_ env: Env) -> Value { eval(env) }
}

/// A field of the raw record an expression reads (`customer.email`), and where its name is in the text.
public struct RawRead: Sendable, Hashable {
  /// The dotted path, as the record is looked up.
  public var path: String
  /// Character offset and length of the name in the expression text.
  public var offset: Int
  public var length: Int
}

/// Type-checks and compiles expressions against a `Scope`.
public enum ExprCompiler {
  /// Parses, checks and compiles `text`. On failure the errors carry offsets into `text`.
  public static func compile(_ text: String, in scope: Scope, expecting expected: ExprType? = nil)
    -> (expr: CompiledExpr?, errors: [ExprError])
  {
    let ast: Expr
    do {
      ast = try Parser.parse(text)
    } catch {
      return (nil, [error])
    }
    var checker = Checker(scope: scope)
    let typed = checker.check(ast)
    if let expected, checker.errors.isEmpty, !typed.type.isAssignable(to: expected) {
      checker.errors.append(
        ExprError(
          "expected \(article(expected)) expression in \(scope.place), found \(typed.type)", offset: ast.offset,
          length: ast.length))
    }
    let errors = checker.errors.filter { $0.severity == .error }
    guard errors.isEmpty else { return (nil, checker.errors) }
    return (
      CompiledExpr(
        text: text, type: typed.type, references: checker.references, readsClock: checker.readsClock,
        constant: typed.constant, rawReads: checker.rawReads.sorted { $0.offset < $1.offset }, eval: typed.eval),
      checker.errors
    )
  }

  static func article(_ t: ExprType) -> String {
    let s = t.description
    return (["a", "e", "i", "o", "u"].contains(s.first.map(String.init) ?? "") ? "an " : "a ") + s
  }
}

struct Typed {
  var type: ExprType
  var eval: Evaluator
  var constant: Value?

  static func const(_ v: Value, _ t: ExprType) -> Typed { Typed(type: t, eval: { _ in v }, constant: v) }
  static let error = Typed(type: .dyn, eval: { _ in .null }, constant: nil)
}

struct Checker {
  let scope: Scope
  var errors: [ExprError] = []
  var references: Set<String> = []
  var rawReads: [RawRead] = []
  var readsClock = false

  init(scope: Scope) { self.scope = scope }

  mutating func fail(_ message: String, _ e: Expr) -> Typed {
    errors.append(ExprError(message, offset: e.offset, length: e.length))
    return .error
  }

  static func literalType(_ v: Value) -> ExprType {
    switch v {
    case .null: return .null
    case .bool: return .bool
    case .int: return .int
    case .double: return .double
    case .string: return .string
    case .timestamp: return .timestamp
    case .duration: return .duration
    case .list: return .list(.dyn)
    case .map: return .map
    }
  }

  mutating func check(_ e: Expr) -> Typed {
    switch e.node {
    case .literal(let v):
      return .const(v, Checker.literalType(v))
    case .name, .member:
      if let path = e.path { return resolve(path, e) }
      guard case .member(let base, let field) = e.node else { return .error }
      let b = check(base)
      return member(b, field, e)
    case .index(let base, let idx):
      return index(check(base), check(idx), e, idx)
    case .list(let items):
      let typed = items.map { check($0) }
      let elem = typed.dropFirst().reduce(typed.first?.type ?? .dyn) { ExprType.unify($0, $1.type) ?? .dyn }
      if typed.allSatisfy({ $0.constant != nil }) {
        return .const(.list(typed.compactMap(\.constant)), .list(elem))
      }
      let evals = typed.map(\.eval)
      return Typed(type: .list(elem), eval: { env in .list(evals.map { $0(env) }) }, constant: nil)
    case .unary(let op, let operand):
      return unary(op, check(operand), e)
    case .binary(let op, let l, let r):
      return binary(op, check(l), check(r), e, l, r)
    case .conditional(let c, let a, let b):
      let tc = check(c)
      let ta = check(a)
      let tb = check(b)
      if !(tc.type == .bool || tc.type.isDynOrNull) {
        return fail("condition of `?:` must be bool, found \(tc.type)", c)
      }
      guard let t = ExprType.unify(ta.type, tb.type) else {
        return fail("branches of `?:` have different types: \(ta.type) and \(tb.type)", e)
      }
      let (ce, ae, be) = (tc.eval, ta.eval, tb.eval)
      return fold(Typed(type: t, eval: { env in ce(env).isTrue ? ae(env) : be(env) }, constant: nil), tc, ta, tb)
    case .call(let name, let args):
      return call(name, args, e)
    }
  }

  // MARK: names

  mutating func resolve(_ path: [String], _ e: Expr) -> Typed {
    let root = path[0]
    if let v = scope.variables[root] {
      references.insert(root)
      return dig(slot(v.slot, v.type), path.dropFirst(), e)
    }
    if let ns = scope.namespaces[root] {
      guard path.count > 1 else {
        if let open = ns.openSlot {
          references.insert(root)
          return slot(open, .map)
        }
        return fail(
          "`\(root)` is a namespace; name one of its fields, like `\(root).\(ns.fields.keys.sorted().first ?? "name")`",
          e)
      }
      let field = path[1]
      if let f = ns.fields[field] {
        references.insert("\(root).\(field)")
        return dig(slot(f.slot, f.type), path.dropFirst(2), e)
      }
      if let open = ns.openSlot {
        references.insert("\(root).\(field)")
        return lookup(open, Array(path.dropFirst()), .dyn)
      }
      let known = ns.fields.keys.map { "\(root).\($0)" }
      return fail(
        "unknown field `\(root).\(field)` in \(scope.place)" + Suggest.didYouMean("\(root).\(field)", in: known), e)
    }
    if let raw = scope.rawSlot {
      let key = path.joined(separator: ".")
      references.insert(key)
      rawReads.append(RawRead(path: key, offset: e.offset, length: e.length))
      return lookup(raw, path, scope.rawTypes[key] ?? scope.rawDefault)
    }
    if ExprFunctions.all[root] != nil, path.count == 1 {
      return fail("`\(root)` is a function; call it as `\(root)(…)`", e)
    }
    let known = scope.knownNames
    let name = path.count > 1 && scope.namespaces[root] == nil ? root : path.joined(separator: ".")
    return fail(
      "unknown name `\(root)` in \(scope.place)" + Suggest.didYouMean(name, in: known + Array(scope.namespaces.keys)),
      Expr(e.node, offset: e.offset, length: root.count))
  }

  func slot(_ i: Int, _ t: ExprType) -> Typed {
    Typed(type: t, eval: { env in env.slots[i] }, constant: nil)
  }

  func lookup(_ slot: Int, _ path: [String], _ t: ExprType) -> Typed {
    if path.count == 1 {
      let k = path[0]
      return Typed(
        type: t,
        eval: { env in
          if case .map(let m) = env.slots[slot] { return m[k] ?? .null }
          return .null
        }, constant: nil)
    }
    return Typed(type: t, eval: { env in env.slots[slot].lookup(path) }, constant: nil)
  }

  mutating func dig(_ base: Typed, _ rest: ArraySlice<String>, _ e: Expr) -> Typed {
    var t = base
    for f in rest { t = member(t, f, e) }
    return t
  }

  mutating func member(_ b: Typed, _ field: String, _ e: Expr) -> Typed {
    switch b.type {
    case .map, .dyn, .null:
      let be = b.eval
      return Typed(
        type: .dyn,
        eval: { env in
          if case .map(let m) = be(env) { return m[field] ?? .null }
          return .null
        }, constant: nil)
    default:
      return fail("a value of type \(b.type) has no field `\(field)`", e)
    }
  }

  mutating func index(_ b: Typed, _ i: Typed, _ e: Expr, _ ie: Expr) -> Typed {
    let (be, ie2) = (b.eval, i.eval)
    switch b.type {
    case .list(let elem):
      guard i.type == .int || i.type.isDynOrNull else { return fail("a list index must be int, found \(i.type)", ie) }
      return fold(
        Typed(
          type: elem,
          eval: { env in
            guard case .list(let l) = be(env), case .int(let n) = ie2(env) else { return .null }
            let k = n < 0 ? Int(n) + l.count : Int(n)
            return k >= 0 && k < l.count ? l[k] : .null
          }, constant: nil), b, i)
    case .map, .dyn, .null:
      guard i.type == .string || i.type == .int || i.type.isDynOrNull else {
        return fail("an index must be a string key or an int position, found \(i.type)", ie)
      }
      return Typed(
        type: .dyn,
        eval: { env in
          switch (be(env), ie2(env)) {
          case (.map(let m), .string(let k)): return m[k] ?? .null
          case (.list(let l), .int(let n)):
            let k = n < 0 ? Int(n) + l.count : Int(n)
            return k >= 0 && k < l.count ? l[k] : .null
          default: return .null
          }
        }, constant: nil)
    default:
      return fail("a value of type \(b.type) cannot be indexed", e)
    }
  }

  // MARK: operators

  mutating func unary(_ op: String, _ t: Typed, _ e: Expr) -> Typed {
    let te = t.eval
    if op == "!" {
      guard t.type == .bool || t.type.isDynOrNull else {
        return fail("operator `!` needs a bool operand, found \(t.type)", e)
      }
      return fold(Typed(type: .bool, eval: { env in .bool(!te(env).isTrue) }, constant: nil), t)
    }
    guard t.type.isNumeric || t.type == .duration || t.type.isDynOrNull else {
      return fail("operator `-` needs a number or duration, found \(t.type)", e)
    }
    return fold(
      Typed(
        type: t.type == .null ? .dyn : t.type,
        eval: { env in
          switch te(env) {
          case .int(let i): return .int(0 &- i)
          case .double(let d): return .double(-d)
          case .duration(let d): return .duration(TimeSpan(microseconds: 0 &- d.microseconds))
          default: return .null
          }
        }, constant: nil), t)
  }

  /// Evaluates an operation on constants at compile time.
  func fold(_ r: Typed, _ operands: Typed...) -> Typed { fold(r, operands) }

  static func orderable(_ a: ExprType, _ b: ExprType) -> Bool {
    if a == .dyn || b == .dyn {
      let other = a == .dyn ? b : a
      return !(other == .bool || other == .map || other.isList)
    }
    if a.isNumeric && b.isNumeric { return true }
    return a == b && [.string, .timestamp, .duration].contains(a)
  }

  static func equatable(_ a: ExprType, _ b: ExprType) -> Bool {
    a.isDynOrNull || b.isDynOrNull || ExprType.unify(a, b) != nil
  }

  mutating func binary(_ op: String, _ l: Typed, _ r: Typed, _ e: Expr, _ le: Expr, _ re: Expr) -> Typed {
    let (lf, rf) = (l.eval, r.eval)
    switch op {
    case "&&", "||":
      for (t, x) in [(l, le), (r, re)] where !(t.type == .bool || t.type.isDynOrNull) {
        return fail("operator `\(op)` needs bool operands, found \(t.type)", x)
      }
      let eval: Evaluator
      if op == "&&" {
        eval = { env in lf(env).isTrue ? .bool(rf(env).isTrue) : .bool(false) }
      } else {
        eval = { env in lf(env).isTrue ? .bool(true) : .bool(rf(env).isTrue) }
      }
      return fold(Typed(type: .bool, eval: eval, constant: nil), l, r)
    case "==", "!=":
      guard Checker.equatable(l.type, r.type) else {
        return fail("operator `\(op)` cannot compare \(l.type) with \(r.type)", e)
      }
      let eq = op == "=="
      if let c = r.constant, case .string(let s) = c {
        return fold(
          Typed(
            type: .bool,
            eval: { env in
              if case .string(let x) = lf(env) { return .bool((x == s) == eq) }
              return .bool(!eq)
            }, constant: nil), l, r)
      }
      return fold(Typed(type: .bool, eval: { env in .bool(Value.equal(lf(env), rf(env)) == eq) }, constant: nil), l, r)
    case "<", "<=", ">", ">=":
      if l.type == .null || r.type == .null {
        return fail("comparison with null is always false; test presence with `exists(…)`", e)
      }
      guard Checker.orderable(l.type, r.type) else {
        return fail("operator `\(op)` cannot compare \(l.type) with \(r.type)", e)
      }
      let test: @Sendable (Int) -> Bool
      switch op {
      case "<": test = { $0 < 0 }
      case "<=": test = { $0 <= 0 }
      case ">": test = { $0 > 0 }
      default: test = { $0 >= 0 }
      }
      // Fast path: a number compared with a numeric constant.
      if let c = r.constant?.doubleValue, l.type.isNumeric || l.type == .dyn {
        let eval: Evaluator
        switch op {
        case "<": eval = { env in .bool(lf(env).doubleValue.map { $0 < c } ?? false) }
        case "<=": eval = { env in .bool(lf(env).doubleValue.map { $0 <= c } ?? false) }
        case ">": eval = { env in .bool(lf(env).doubleValue.map { $0 > c } ?? false) }
        default: eval = { env in .bool(lf(env).doubleValue.map { $0 >= c } ?? false) }
        }
        return fold(Typed(type: .bool, eval: eval, constant: nil), l, r)
      }
      return fold(
        Typed(
          type: .bool, eval: { env in .bool(Value.compare(lf(env), rf(env)).map(test) ?? false) }, constant: nil), l,
        r)
    case "in":
      switch r.type {
      case .list(let elem):
        guard Checker.equatable(l.type, elem) else {
          return fail("operator `in` cannot look for \(l.type) in \(r.type)", e)
        }
      case .map:
        guard l.type == .string || l.type.isDynOrNull else { return fail("map keys are strings; found \(l.type)", le) }
      case .dyn, .null: break
      default: return fail("operator `in` needs a list or map on its right, found \(r.type)", re)
      }
      if let c = r.constant, case .list(let items) = c, items.allSatisfy({ $0.stringValue != nil }) {
        let set = Set(items.compactMap(\.stringValue))
        return fold(
          Typed(
            type: .bool,
            eval: { env in
              if case .string(let s) = lf(env) { return .bool(set.contains(s)) }
              return .bool(false)
            }, constant: nil), l, r)
      }
      return fold(
        Typed(
          type: .bool,
          eval: { env in
            let x = lf(env)
            switch rf(env) {
            case .list(let l): return .bool(l.contains { Value.equal($0, x) })
            case .map(let m): return .bool(x.stringValue.map { m[$0] != nil } ?? false)
            default: return .bool(false)
            }
          }, constant: nil), l, r)
    default:
      guard let t = Checker.arithmeticType(op, l.type, r.type) else {
        return fail("operator `\(op)` cannot be applied to \(l.type) and \(r.type)", e)
      }
      if op == "/" || op == "%", let c = r.constant, c.doubleValue == 0 {
        return fail("division by zero", re)
      }
      return fold(Typed(type: t, eval: { env in Checker.arithmetic(op, lf(env), rf(env)) }, constant: nil), l, r)
    }
  }

  static func arithmeticType(_ op: String, _ a: ExprType, _ b: ExprType) -> ExprType? {
    if a.isDynOrNull || b.isDynOrNull {
      let other = a.isDynOrNull ? b : a
      return other == .bool || other == .map ? nil : .dyn
    }
    switch op {
    case "+":
      if a == .int && b == .int { return .int }
      if a.isNumeric && b.isNumeric { return .double }
      if a == .string && b == .string { return .string }
      if a == .timestamp && b == .duration { return .timestamp }
      if a == .duration && b == .timestamp { return .timestamp }
      if a == .duration && b == .duration { return .duration }
      if case .list(let x) = a, case .list(let y) = b { return .list(ExprType.unify(x, y) ?? .dyn) }
      return nil
    case "-":
      if a == .int && b == .int { return .int }
      if a.isNumeric && b.isNumeric { return .double }
      if a == .timestamp && b == .duration { return .timestamp }
      if a == .timestamp && b == .timestamp { return .duration }
      if a == .duration && b == .duration { return .duration }
      return nil
    case "*":
      if a == .int && b == .int { return .int }
      if a.isNumeric && b.isNumeric { return .double }
      if (a == .duration && b.isNumeric) || (a.isNumeric && b == .duration) { return .duration }
      return nil
    case "/":
      if a.isNumeric && b.isNumeric { return .double }
      if a == .duration && b.isNumeric { return .duration }
      return nil
    case "%":
      return a == .int && b == .int ? .int : nil
    default: return nil
    }
  }

  @Sendable static func arithmetic(_ op: String, _ a: Value, _ b: Value) -> Value {
    switch (op, a, b) {
    case ("+", .int(let x), .int(let y)): return .int(x &+ y)
    case ("-", .int(let x), .int(let y)): return .int(x &- y)
    case ("*", .int(let x), .int(let y)): return .int(x &* y)
    case ("%", .int(let x), .int(let y)):
      // `Int64.min % -1` overflows; its remainder is 0.
      return y == 0 ? .null : .int(x.remainderReportingOverflow(dividingBy: y).partialValue)
    case ("+", .string(let x), .string(let y)): return .string(x + y)
    case ("+", .list(let x), .list(let y)): return .list(x + y)
    case ("+", .timestamp(let t), .duration(let d)), ("+", .duration(let d), .timestamp(let t)):
      return .timestamp(t + d)
    case ("-", .timestamp(let t), .duration(let d)): return .timestamp(t - d)
    case ("-", .timestamp(let t), .timestamp(let u)): return .duration(t - u)
    case ("+", .duration(let d), .duration(let e)):
      return .duration(TimeSpan(microseconds: d.microseconds &+ e.microseconds))
    case ("-", .duration(let d), .duration(let e)):
      return .duration(TimeSpan(microseconds: d.microseconds &- e.microseconds))
    case ("*", .duration(let d), _): return b.doubleValue.map { span(seconds: d.seconds * $0) } ?? .null
    case ("*", _, .duration(let d)): return a.doubleValue.map { span(seconds: d.seconds * $0) } ?? .null
    case ("/", .duration(let d), _):
      guard let y = b.doubleValue, y != 0 else { return .null }
      return span(seconds: d.seconds / y)
    default:
      guard let x = a.doubleValue, let y = b.doubleValue else { return .null }
      switch op {
      case "+": return .double(x + y)
      case "-": return .double(x - y)
      case "*": return .double(x * y)
      case "/": return y == 0 ? .null : .double(x / y)
      default: return .null
      }
    }
  }

  /// A scaled duration, or null when it is not finite or does not fit in microseconds.
  static func span(seconds: Double) -> Value {
    guard seconds.isFinite, abs(seconds) < 9.2e12 else { return .null }
    return .duration(TimeSpan(seconds: seconds))
  }

  // MARK: calls

  mutating func call(_ name: String, _ args: [Expr], _ e: Expr) -> Typed {
    guard let f = ExprFunctions.all[name] else {
      _ = args.map { check($0) }
      return fail(
        "unknown function `\(name)`" + Suggest.didYouMean(name, in: ExprFunctions.all.keys),
        Expr(e.node, offset: e.offset, length: name.count))
    }
    let typed = args.map { check($0) }
    let minArgs = f.params.count - f.optional - (f.variadic ? 1 : 0)
    let maxArgs = f.variadic ? Int.max : f.params.count
    if typed.count < max(minArgs, f.variadic ? 1 : 0) || typed.count > maxArgs {
      let expected: String
      if f.variadic {
        expected = "at least 1 argument"
      } else if f.optional > 0 {
        expected = "\(minArgs) to \(f.params.count) arguments"
      } else {
        expected = "\(f.params.count) argument\(f.params.count == 1 ? "" : "s")"
      }
      return fail("function `\(name)` takes \(expected), found \(typed.count)", e)
    }
    for (i, t) in typed.enumerated() {
      let p = f.params[min(i, f.params.count - 1)]
      if !t.type.isAssignable(to: p) || (p == .string && t.type == .int) {
        return fail("argument \(i + 1) of `\(name)` must be \(p), found \(t.type)", args[i])
      }
    }
    let evals = typed.map(\.eval)
    let resultType = f.result(typed.map(\.type))
    let propagate = !f.takesNull

    if name == "matches" { return matches(typed, args, evals) }
    if name == "duration", let c = typed[0].constant, case .string(let s) = c, TimeSpan(parsing: s) == nil {
      return fail("invalid duration `\(s)`; write a number with a unit: w, d, h, m, s, ms, us (e.g. 90d)", args[0])
    }
    if name == "phone_e164", typed.count > 1, let c = typed[1].constant, case .string(let region) = c,
      !Normalize.isKnownRegion(region)
    {
      return fail(
        "unknown phone region `\(region)`; use an ISO 3166 code such as "
          + Normalize.callingCodes.keys.sorted().prefix(6).joined(separator: ", "), args[1])
    }
    let eval: Evaluator
    switch f.impl {
    case .env(let g):
      readsClock = true
      eval = g
    case .one(let g):
      let a = evals[0]
      if propagate {
        eval = { env in
          let v = a(env)
          return v.isNull ? .null : g(v)
        }
      } else {
        eval = { env in g(a(env)) }
      }
    case .two(let g):
      let (a, b) = (evals[0], evals[1])
      eval = { env in
        let x = a(env)
        let y = b(env)
        if propagate, x.isNull || y.isNull { return .null }
        return g(x, y)
      }
    case .many(let g):
      eval = { env in
        let values = evals.map { $0(env) }
        if propagate, values.contains(where: \.isNull) { return .null }
        return g(values)
      }
    }
    if name == "now" { return Typed(type: resultType, eval: eval, constant: nil) }
    return fold(Typed(type: resultType, eval: eval, constant: nil), typed)
  }

  func fold(_ r: Typed, _ operands: [Typed]) -> Typed {
    guard operands.allSatisfy({ $0.constant != nil }) else { return r }
    return .const(r.eval(Env(slots: [])), r.type)
  }

  mutating func matches(_ typed: [Typed], _ args: [Expr], _ evals: [Evaluator]) -> Typed {
    guard let c = typed[1].constant, case .string(let pattern) = c else {
      return fail(
        "the pattern of `matches` must be a string literal, so it can be checked before the pipeline runs", args[1])
    }
    let regex: NSRegularExpression
    do {
      regex = try NSRegularExpression(pattern: pattern)
    } catch {
      return fail("invalid regular expression `\(pattern)`", args[1])
    }
    let a = evals[0]
    return Typed(
      type: .bool,
      eval: { env in
        guard case .string(let s) = a(env) else { return .null }
        let range = NSRange(s.startIndex..<s.endIndex, in: s)
        return .bool(regex.firstMatch(in: s, options: [], range: range) != nil)
      }, constant: nil)
  }
}

extension ExprType {
  var isList: Bool {
    if case .list = self { return true }
    return false
  }
}
