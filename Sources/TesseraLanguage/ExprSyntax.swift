import TesseraModel

/// A problem in an expression, at a character offset of the expression text.
public struct ExprError: Error, Sendable, Hashable {
  public var offset: Int
  public var length: Int
  public var message: String
  public var severity: Severity
  public init(_ message: String, offset: Int, length: Int = 1, severity: Severity = .error) {
    self.message = message
    self.offset = offset
    self.length = max(1, length)
    self.severity = severity
  }
}

/// The syntax tree of an expression. Every node keeps its span in the expression text.
public indirect enum ExprNode: Sendable {
  case literal(Value)
  case name(String)
  case member(Expr, String)
  case index(Expr, Expr)
  case call(String, [Expr])
  case unary(String, Expr)
  case binary(String, Expr, Expr)
  case conditional(Expr, Expr, Expr)
  case list([Expr])
}

public struct Expr: Sendable {
  public var node: ExprNode
  public var offset: Int
  public var length: Int
  public init(_ node: ExprNode, offset: Int, length: Int) {
    self.node = node
    self.offset = offset
    self.length = length
  }

  /// The dotted path this expression names (`traits.city`), if it is one.
  public var path: [String]? {
    func walk(_ n: ExprNode) -> [String]? {
      switch n {
      case .name(let s): return [s]
      case .member(let base, let f): return walk(base.node).map { $0 + [f] }
      default: return nil
      }
    }
    return walk(node)
  }
}

struct Token: Equatable {
  enum Kind: Equatable {
    case ident(String)
    case int(Int64)
    case double(Double)
    case string(String)
    case duration(TimeSpan)
    case op(String)
    case end
  }
  var kind: Kind
  var offset: Int
  var length: Int
}

/// Splits expression text into tokens.
struct Lexer {
  let chars: [Character]
  var i = 0

  init(_ text: String) { chars = Array(text) }

  static let twoCharOps: Set<String> = ["==", "!=", "<=", ">=", "&&", "||"]
  static let oneCharOps: Set<Character> = [
    "<", ">", "!", "+", "-", "*", "/", "%", "?", ":", ".", "(", ")", "[", "]", ",",
  ]

  mutating func tokens() throws(ExprError) -> [Token] {
    var out: [Token] = []
    while true {
      let t = try next()
      out.append(t)
      if t.kind == .end { return out }
    }
  }

  mutating func next() throws(ExprError) -> Token {
    while i < chars.count, chars[i].isWhitespace { i += 1 }
    guard i < chars.count else { return Token(kind: .end, offset: chars.count, length: 1) }
    let start = i
    let c = chars[i]
    if c.isLetter || c == "_" {
      while i < chars.count, chars[i].isLetter || chars[i].isNumber || chars[i] == "_" { i += 1 }
      return Token(kind: .ident(String(chars[start..<i])), offset: start, length: i - start)
    }
    if c.isASCII, c.isNumber {
      while i < chars.count, chars[i].isASCII, chars[i].isNumber { i += 1 }
      var isDouble = false
      if i + 1 < chars.count, chars[i] == ".", chars[i + 1].isASCII, chars[i + 1].isNumber {
        isDouble = true
        i += 1
        while i < chars.count, chars[i].isASCII, chars[i].isNumber { i += 1 }
      }
      if i < chars.count, chars[i] == "e" || chars[i] == "E",
        i + 1 < chars.count,
        chars[i + 1].isNumber
          || ((chars[i + 1] == "-" || chars[i + 1] == "+") && i + 2 < chars.count && chars[i + 2].isNumber)
      {
        isDouble = true
        i += 2
        while i < chars.count, chars[i].isASCII, chars[i].isNumber { i += 1 }
      }
      let numberText = String(chars[start..<i])
      // A number followed directly by letters is a duration literal: 90d, 24h, 1h30m, 250ms.
      if !isDouble, i < chars.count, chars[i].isLetter {
        while i < chars.count, chars[i].isLetter || (chars[i].isASCII && chars[i].isNumber) { i += 1 }
        let text = String(chars[start..<i])
        guard let span = TimeSpan(parsing: text) else {
          throw ExprError(
            "invalid duration `\(text)`; write a number with a unit: w, d, h, m, s, ms, us (e.g. 90d, 1h30m)",
            offset: start, length: i - start)
        }
        return Token(kind: .duration(span), offset: start, length: i - start)
      }
      if isDouble {
        guard let d = Double(numberText) else {
          throw ExprError("invalid number `\(numberText)`", offset: start, length: i - start)
        }
        return Token(kind: .double(d), offset: start, length: i - start)
      }
      guard let n = Int64(numberText) else {
        throw ExprError("integer `\(numberText)` is too large", offset: start, length: i - start)
      }
      return Token(kind: .int(n), offset: start, length: i - start)
    }
    if c == "\"" || c == "'" {
      i += 1
      var s = ""
      while i < chars.count, chars[i] != c {
        if chars[i] == "\\" {
          i += 1
          guard i < chars.count else { break }
          switch chars[i] {
          case "n": s.append("\n")
          case "t": s.append("\t")
          case "r": s.append("\r")
          case "\\": s.append("\\")
          case "\"": s.append("\"")
          case "'": s.append("'")
          default:
            throw ExprError("unknown escape `\\\(chars[i])` in string", offset: i - 1, length: 2)
          }
        } else {
          s.append(chars[i])
        }
        i += 1
      }
      guard i < chars.count else {
        throw ExprError("unterminated string; close it with \(c)", offset: start, length: chars.count - start)
      }
      i += 1
      return Token(kind: .string(s), offset: start, length: i - start)
    }
    if i + 1 < chars.count {
      let two = String(chars[i...i + 1])
      if Lexer.twoCharOps.contains(two) {
        i += 2
        return Token(kind: .op(two), offset: start, length: 2)
      }
    }
    if Lexer.oneCharOps.contains(c) {
      i += 1
      return Token(kind: .op(String(c)), offset: start, length: 1)
    }
    if c == "=" { throw ExprError("unexpected `=`; compare with `==`", offset: start) }
    if c == "&" { throw ExprError("unexpected `&`; use `&&` for logical and", offset: start) }
    if c == "|" { throw ExprError("unexpected `|`; use `||` for logical or", offset: start) }
    throw ExprError("unexpected character `\(c)`", offset: start)
  }
}

/// A precedence-climbing parser. Precedence, loosest first: `?:`, `||`, `&&`, `== != < <= > >= in`,
/// `+ -`, `* / %`, unary `! -`, postfix `.field [index] (call)`.
public struct Parser {
  var tokens: [Token]
  var pos = 0
  let textLength: Int

  public static func parse(_ text: String) throws(ExprError) -> Expr {
    var lexer = Lexer(text)
    let tokens = try lexer.tokens()
    var p = Parser(tokens: tokens, textLength: text.count)
    if case .end = tokens[0].kind { throw ExprError("empty expression", offset: 0) }
    let e = try p.conditional()
    if case .end = p.peek.kind { return e }
    throw ExprError(
      "unexpected \(p.describe(p.peek)) after the end of the expression", offset: p.peek.offset, length: p.peek.length)
  }

  var peek: Token { tokens[pos] }

  func describe(_ t: Token) -> String {
    switch t.kind {
    case .ident(let s): return "`\(s)`"
    case .int(let n): return "`\(n)`"
    case .double(let d): return "`\(d)`"
    case .string: return "string"
    case .duration(let d): return "`\(d)`"
    case .op(let o): return "`\(o)`"
    case .end: return "end of expression"
    }
  }

  mutating func advance() -> Token {
    let t = tokens[pos]
    if pos < tokens.count - 1 { pos += 1 }
    return t
  }

  mutating func isOp(_ o: String) -> Bool {
    if case .op(o) = peek.kind { return true }
    return false
  }

  mutating func expectOp(_ o: String, _ context: String) throws(ExprError) -> Token {
    guard isOp(o) else {
      throw ExprError("expected `\(o)` \(context), found \(describe(peek))", offset: peek.offset, length: peek.length)
    }
    return advance()
  }

  static func span(_ a: Expr, _ b: Expr) -> (Int, Int) { (a.offset, b.offset + b.length - a.offset) }

  mutating func conditional() throws(ExprError) -> Expr {
    let cond = try binary(0)
    guard isOp("?") else { return cond }
    _ = advance()
    let a = try conditional()
    _ = try expectOp(":", "between the branches of `?:`")
    let b = try conditional()
    let (o, l) = Parser.span(cond, b)
    return Expr(.conditional(cond, a, b), offset: o, length: l)
  }

  static let levels: [[String]] = [
    ["||"], ["&&"], ["==", "!=", "<", "<=", ">", ">=", "in"], ["+", "-"], ["*", "/", "%"],
  ]

  func binaryOp(at level: Int) -> String? {
    switch peek.kind {
    case .op(let o) where Parser.levels[level].contains(o): return o
    case .ident("in") where level == 2: return "in"
    default: return nil
    }
  }

  mutating func binary(_ level: Int) throws(ExprError) -> Expr {
    if level == Parser.levels.count { return try unary() }
    var lhs = try binary(level + 1)
    while let op = binaryOp(at: level) {
      let opToken = advance()
      let rhs = try binary(level + 1)
      if level == 2, binaryOp(at: level) != nil {
        throw ExprError(
          "comparisons do not chain; combine them with `&&`", offset: peek.offset, length: peek.length)
      }
      let (o, l) = Parser.span(lhs, rhs)
      _ = opToken
      lhs = Expr(.binary(op, lhs, rhs), offset: o, length: l)
    }
    return lhs
  }

  mutating func unary() throws(ExprError) -> Expr {
    if isOp("!") || isOp("-") {
      let t = advance()
      guard case .op(let o) = t.kind else { return try postfix() }
      let operand = try unary()
      return Expr(.unary(o, operand), offset: t.offset, length: operand.offset + operand.length - t.offset)
    }
    return try postfix()
  }

  mutating func postfix() throws(ExprError) -> Expr {
    var e = try primary()
    while true {
      if isOp(".") {
        _ = advance()
        let t = advance()
        guard case .ident(let name) = t.kind else {
          throw ExprError("expected a field name after `.`, found \(describe(t))", offset: t.offset, length: t.length)
        }
        e = Expr(.member(e, name), offset: e.offset, length: t.offset + t.length - e.offset)
      } else if isOp("[") {
        _ = advance()
        let idx = try conditional()
        let close = try expectOp("]", "to close the index")
        e = Expr(.index(e, idx), offset: e.offset, length: close.offset + 1 - e.offset)
      } else if isOp("(") {
        guard case .name(let fname) = e.node else {
          throw ExprError("only functions can be called", offset: peek.offset, length: peek.length)
        }
        _ = advance()
        var args: [Expr] = []
        if !isOp(")") {
          args.append(try conditional())
          while isOp(",") {
            _ = advance()
            args.append(try conditional())
          }
        }
        let close = try expectOp(")", "to close the call of `\(fname)`")
        e = Expr(.call(fname, args), offset: e.offset, length: close.offset + 1 - e.offset)
      } else {
        return e
      }
    }
  }

  mutating func primary() throws(ExprError) -> Expr {
    let t = advance()
    switch t.kind {
    case .int(let n): return Expr(.literal(.int(n)), offset: t.offset, length: t.length)
    case .double(let d): return Expr(.literal(.double(d)), offset: t.offset, length: t.length)
    case .string(let s): return Expr(.literal(.string(s)), offset: t.offset, length: t.length)
    case .duration(let d): return Expr(.literal(.duration(d)), offset: t.offset, length: t.length)
    case .ident("true"): return Expr(.literal(.bool(true)), offset: t.offset, length: t.length)
    case .ident("false"): return Expr(.literal(.bool(false)), offset: t.offset, length: t.length)
    case .ident("null"): return Expr(.literal(.null), offset: t.offset, length: t.length)
    case .ident(let name): return Expr(.name(name), offset: t.offset, length: t.length)
    case .op("("):
      let e = try conditional()
      _ = try expectOp(")", "to close `(`")
      return e
    case .op("["):
      var items: [Expr] = []
      if !isOp("]") {
        items.append(try conditional())
        while isOp(",") {
          _ = advance()
          items.append(try conditional())
        }
      }
      let close = try expectOp("]", "to close the list")
      return Expr(.list(items), offset: t.offset, length: close.offset + 1 - t.offset)
    case .end:
      throw ExprError("expression ends too early; expected a value", offset: t.offset)
    default:
      throw ExprError("expected a value, found \(describe(t))", offset: t.offset, length: t.length)
    }
  }
}
