/// The one form of a request path that every decision about it is taken on
/// (local endpoints, the local getToken, the allow list): repeated slashes
/// merged, percent-encoded unreserved characters decoded (RFC 3986 §6.2.2.2)
/// and the hex digits of the other escapes upper-cased (§6.2.2.1). Nothing
/// else changes, so the path as sent and its canonical form differ only in
/// ways RFC 3986 or every common server reads as the same path.
///
/// Paths that servers read in different ways are refused instead: dot
/// segments in any spelling (`..`, `%2e`, and with path parameters, `..;x`,
/// `.;`, `.%3B`, which Tomcat and Spring resolve), path parameters on an
/// empty segment (`/;x/`), encoded `/` or `\`, a backslash, malformed
/// escapes, and NUL, control or non-ASCII bytes, raw or encoded.
public enum CanonicalPath: Sendable, Equatable {
    /// The path as sent is canonical (the common case: nothing is copied).
    case asSent
    /// The canonical form, which differs from the path as sent.
    case rewritten([UInt8])
    case refused(PathRefusal)

    /// The canonical form of `path` (the target up to `?`). An empty path
    /// (absolute form without one) is `/`.
    public static func of(_ path: UnsafeBufferPointer<UInt8>) -> CanonicalPath {
        let n = path.count
        if n == 0 { return .rewritten([ASCII.slash]) }
        guard path[0] == ASCII.slash else { return .refused(.notAbsolute) }
        var rewrite = false
        var segmentStart = 1
        var i = 1
        while i < n {
            let b = path[i]
            switch b {
            case ASCII.slash:
                if let refusal = checkSegment(path, segmentStart, i) { return .refused(refusal) }
                if path[i - 1] == ASCII.slash { rewrite = true }
                segmentStart = i + 1
                i += 1
            case ASCII.percent:
                guard i + 2 < n, let hi = ASCII.hexValue(path[i + 1]), let lo = ASCII.hexValue(path[i + 2]) else {
                    return .refused(.malformedEscape)
                }
                let decoded = hi << 4 | lo
                if decoded == ASCII.slash || decoded == ASCII.backslash { return .refused(.encodedSeparator) }
                if decoded < 0x20 || decoded == 0x7F { return .refused(.controlByte) }
                if isUnreserved(decoded) || isLowerHex(path[i + 1]) || isLowerHex(path[i + 2]) { rewrite = true }
                i += 3
            case ASCII.backslash:
                return .refused(.backslash)
            default:
                guard b > 0x20 && b < 0x7F else { return .refused(.controlByte) }
                i += 1
            }
        }
        if let refusal = checkSegment(path, segmentStart, n) { return .refused(refusal) }
        return rewrite ? .rewritten(rewritten(path)) : .asSent
    }

    public static func of(_ path: ArraySlice<UInt8>) -> CanonicalPath {
        path.withUnsafeBufferPointer { of($0) }
    }

    /// Whether `b` is an unreserved character of RFC 3986 §2.3, which an
    /// escape only obscures.
    @inlinable
    public static func isUnreserved(_ b: UInt8) -> Bool {
        switch b {
        case UInt8(ascii: "a")...UInt8(ascii: "z"), UInt8(ascii: "A")...UInt8(ascii: "Z"),
            UInt8(ascii: "0")...UInt8(ascii: "9"), UInt8(ascii: "-"), UInt8(ascii: "."), UInt8(ascii: "_"),
            UInt8(ascii: "~"):
            return true
        default:
            return false
        }
    }

    private static func isLowerHex(_ b: UInt8) -> Bool {
        b >= UInt8(ascii: "a") && b <= UInt8(ascii: "f")
    }

    /// The segment `start..<end` (escapes already checked up to `end`): its
    /// name, before any path parameters (`;` or `%3B`), must not be a dot
    /// segment nor empty with parameters.
    private static func checkSegment(_ path: UnsafeBufferPointer<UInt8>, _ start: Int, _ end: Int) -> PathRefusal? {
        var dots = 0
        var other = false
        var i = start
        while i < end {
            let b = path[i]
            if b == ASCII.semicolon { break }
            if b == ASCII.percent {
                // The caller's scan has validated every escape before `end`.
                let decoded = (ASCII.hexValue(path[i + 1]) ?? 0) << 4 | (ASCII.hexValue(path[i + 2]) ?? 0)
                if decoded == ASCII.semicolon { break }
                if decoded == ASCII.dot { dots += 1 } else { other = true }
                i += 3
                continue
            }
            if b == ASCII.dot { dots += 1 } else { other = true }
            i += 1
        }
        let hasParameters = i < end
        if !other && (dots == 1 || dots == 2) { return .dotSegment }
        if !other && dots == 0 && hasParameters { return .parametersOnEmptySegment }
        return nil
    }

    /// The second pass, for the paths that need one.
    private static func rewritten(_ path: UnsafeBufferPointer<UInt8>) -> [UInt8] {
        var out: [UInt8] = []
        out.reserveCapacity(path.count)
        var i = 0
        while i < path.count {
            let b = path[i]
            if b == ASCII.slash && out.last == ASCII.slash {
                i += 1
            } else if b == ASCII.percent, let hi = ASCII.hexValue(path[i + 1]), let lo = ASCII.hexValue(path[i + 2]) {
                let decoded = hi << 4 | lo
                if isUnreserved(decoded) {
                    out.append(decoded)
                } else {
                    out.append(ASCII.percent)
                    out.append(upperHexDigits[Int(hi)])
                    out.append(upperHexDigits[Int(lo)])
                }
                i += 3
            } else {
                out.append(b)
                i += 1
            }
        }
        return out
    }

    private static let upperHexDigits: [UInt8] = Array("0123456789ABCDEF".utf8)
}

/// Why a path was refused (always 400: no iamport path looks like this).
public enum PathRefusal: Error, Sendable, Equatable {
    case notAbsolute
    case dotSegment
    case parametersOnEmptySegment
    case encodedSeparator
    case backslash
    case malformedEscape
    case controlByte

    public var message: String {
        switch self {
        case .notAbsolute: return "path must start with /"
        case .dotSegment: return "dot segment in path"
        case .parametersOnEmptySegment: return "path parameters on an empty segment"
        case .encodedSeparator: return "encoded / or \\ in path"
        case .backslash: return "backslash in path"
        case .malformedEscape: return "malformed percent-encoding in path"
        case .controlByte: return "NUL, control or non-ASCII byte in path"
        }
    }
}
