/// Header rules shared by both directions of the proxy.
public enum HeaderRules {
    /// Calls `body` with each non-empty option of a `Connection` value, as
    /// received (not lower-cased), without allocating.
    public static func forEachConnectionOption(
        _ value: UnsafeRawBufferPointer.SubSequence, _ body: (UnsafeRawBufferPointer.SubSequence) -> Void
    ) {
        forEachListElement(value) { option in
            if !option.isEmpty { body(option) }
        }
    }

    /// Calls `body` with each element of a comma-separated list, without the
    /// surrounding whitespace. Empty elements are passed as empty slices.
    /// Generic inside this module only (specialized here for the request's
    /// bytes and the upstream's), so no caller walks it through witness tables.
    static func forEachListElement<Bytes: Collection>(_ value: Bytes, _ body: (Bytes.SubSequence) -> Void)
    where Bytes.Element == UInt8, Bytes.Index == Int {
        var elementStart = value.startIndex
        var i = value.startIndex
        func emit(_ range: Range<Int>) {
            var s = range.lowerBound
            var e = range.upperBound
            while s < e && ASCII.isOWS(value[s]) { s += 1 }
            while e > s && ASCII.isOWS(value[e - 1]) { e -= 1 }
            body(value[s..<e])
        }
        while i < value.endIndex {
            if value[i] == ASCII.comma {
                emit(elementStart..<i)
                elementStart = i + 1
            }
            i += 1
        }
        emit(elementStart..<value.endIndex)
    }
}

/// What the `Connection` fields of one head say (RFC 9110 §7.6.1), for a
/// request and an answer alike: whether the connection persists, and which
/// other fields are hop-by-hop for this message. The one place that decides
/// which fields a `Connection` header names.
public struct ConnectionOptions: Sendable, Equatable {
    /// `close` was among the options.
    public var close = false
    /// `keep-alive` was among the options.
    public var keepAlive = false
    /// An option that is not a token (a request with one is refused; in an
    /// answer it names no field, since field names are tokens).
    public var sawInvalid = false
    /// The other options, as ranges of the head: names of fields that must
    /// not be forwarded with this message.
    public var names: [Range<Int>] = []

    public init() {}

    /// Adds the options of one `Connection` field, whose value is `value`.
    mutating func read<Bytes: Collection>(_ value: Bytes) where Bytes.Element == UInt8, Bytes.Index == Int {
        // The usual values, one option alone, without walking a list.
        if value.equalsLowercased("keep-alive") { keepAlive = true; return }
        if value.equalsLowercased("close") { close = true; return }
        let isTokenChar = ASCII.isTokenChar
        HeaderRules.forEachListElement(value) { option in
            if option.isEmpty { return }
            if !option.allSatisfy({ isTokenChar[Int($0)] }) { sawInvalid = true; return }
            if option.equalsLowercased("close") {
                close = true
            } else if option.equalsLowercased("keep-alive") {
                keepAlive = true
            } else {
                names.append(option.startIndex..<option.endIndex)
            }
        }
    }

    /// Whether the connection stays open after this message: HTTP/1.1 unless
    /// `close`, HTTP/1.0 only with `keep-alive` and without `close`.
    public func persists(minorVersion: Int) -> Bool {
        minorVersion == 0 ? keepAlive && !close : !close
    }

    /// Whether `field` of the head `bytes` must not be forwarded: hop-by-hop
    /// by RFC 9110 §7.6.1, or named in this message's `Connection`.
    @inline(__always)
    func isHopByHop<Bytes: Collection>(_ field: HeaderField, in bytes: Bytes) -> Bool
    where Bytes.Element == UInt8, Bytes.Index == Int {
        if field.kind.isHopByHop { return true }
        if names.isEmpty { return false }
        let name = bytes[field.name]
        return names.contains { bytes[$0].equalsIgnoringCase(name) }
    }
}
