/// Header rules shared by both directions of the proxy.
public enum HeaderRules {
    /// Calls `body` with each non-empty option of a `Connection` value, as
    /// received (not lower-cased), without allocating.
    public static func forEachConnectionOption(
        _ value: UnsafeRawBufferPointer.SubSequence, _ body: (UnsafeRawBufferPointer.SubSequence) -> Void
    ) {
        HeadParser.forEachListElement(value) { option in
            if !option.isEmpty { body(option) }
        }
    }
}
