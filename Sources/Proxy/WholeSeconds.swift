/// A duration in whole seconds for answers, logs and metrics. `Int(_:)` traps
/// on NaN, infinity or a value past Int's range; a token's times come from the
/// network, so whatever they are, this clamps to 0 through about ten years.
func wholeSeconds(_ seconds: Double) -> Int {
    guard seconds.isFinite, seconds > 0 else { return 0 }
    return Int(min(seconds, 315_360_000))
}
