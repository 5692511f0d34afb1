extension ProbabilisticRule {
  /// Per blocking rule, the traits and identifier kinds its keys read (`last_name` for
  /// `soundex(traits.last_name)`; `signals.ip_prefix` for a device signal): a record lacking one of a blocking rule's names has no key of it, so that
  /// rule never compares it with anything.
  public var blockingInputs: [Set<String>] {
    blocking.map { keys in
      Set(
        keys.flatMap(\.references).compactMap { ref -> String? in
          let parts = ref.split(separator: ".", maxSplits: 1)
          guard parts.count == 2, parts[0] != "profile" else { return nil }
          // Device signals keep their namespace (`signals.ip`), as the rule's comparisons name them.
          return parts[0] == "signals" ? ref : String(parts[1])
        })
    }
  }
}
