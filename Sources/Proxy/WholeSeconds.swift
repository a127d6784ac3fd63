import EventLoops

/// A length of time in whole seconds, rounded down, for answers, logs and
/// metrics. A token's times come from the network, so whatever they are,
/// this stays within about ten years.
func wholeSeconds(_ length: Nanoseconds) -> Int {
    Int(min(length / 1_000_000_000, 315_360_000))
}
