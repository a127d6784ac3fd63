/// A value that must never be printed: the API secret, the key, a token.
/// Every textual form of it is redacted, so an accidental interpolation or
/// dump cannot leak it; the value is read only through `reveal`.
public struct Secret: Sendable, Equatable, CustomStringConvertible, CustomDebugStringConvertible, CustomReflectable {
    private let value: String

    public init(_ value: String) {
        self.value = value
    }

    public func reveal<R>(_ body: (String) throws -> R) rethrows -> R {
        try body(value)
    }

    public var isEmpty: Bool { value.isEmpty }
    public var description: String { "<redacted>" }
    public var debugDescription: String { "<redacted>" }
    public var customMirror: Mirror { Mirror(self, children: []) }

    /// Constant-time comparison: the time taken does not depend on where the
    /// first difference is (only on the lengths).
    public func constantTimeEquals<C: Collection>(_ other: C) -> Bool where C.Element == UInt8 {
        value.utf8.withContiguousStorageIfAvailable { mine in
            constantTimeCompare(mine, other)
        } ?? constantTimeCompare(Array(value.utf8), other)
    }
}

func constantTimeCompare<A: Collection, B: Collection>(_ a: A, _ b: B) -> Bool
where A.Element == UInt8, B.Element == UInt8 {
    var difference: UInt8 = a.count == b.count ? 0 : 1
    // Compare against ourselves when lengths differ so the work does not stop early.
    if a.count == b.count {
        for (x, y) in zip(a, b) { difference |= x ^ y }
    } else {
        for x in a { difference |= x ^ x }
    }
    return difference == 0
}
