/// Header rules shared by both directions of the proxy.
public enum HeaderRules {
    /// Calls `body` with each non-empty option of a `Connection` value, as
    /// received (not lower-cased), without allocating.
    public static func forEachConnectionOption(
        _ value: UnsafeRawBufferPointer.SubSequence, _ body: (UnsafeRawBufferPointer.SubSequence) -> Void
    ) {
        var start = value.startIndex
        for i in value.startIndex...value.endIndex where i == value.endIndex || value[i] == ASCII.comma {
            var lo = start
            var hi = i
            while lo < hi && ASCII.isOWS(value[lo]) { lo += 1 }
            while hi > lo && ASCII.isOWS(value[hi - 1]) { hi -= 1 }
            if lo < hi { body(value[lo..<hi]) }
            start = i + 1
        }
    }
}
