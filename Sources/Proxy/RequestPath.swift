import HTTP1

/// The path and query of a request, checked so that what is matched
/// (allowlist, local routes) is what the upstream will see.
struct RequestPath {
    /// Path bytes as received (percent-encoding kept), starting with `/`.
    var path: ArraySlice<UInt8>
    /// Query without `?`, or nil.
    var query: ArraySlice<UInt8>?

    enum Failure: Error { case invalid(String) }

    /// Splits the target and refuses paths that different parsers could read
    /// differently: dot segments, empty segments, encoded `/` `\` `.` or NUL,
    /// backslashes and malformed escapes.
    static func parse(_ target: ArraySlice<UInt8>) -> Result<RequestPath, Failure> {
        var pathEnd = target.endIndex
        if let q = target.firstIndex(of: ASCII.question) { pathEnd = q }
        let path = target[target.startIndex..<pathEnd]
        let query = pathEnd < target.endIndex ? target[(pathEnd + 1)...] : nil
        guard path.first == ASCII.slash else { return .failure(.invalid("path must start with /")) }
        var segmentStart = path.startIndex + 1
        var i = segmentStart
        while i <= path.endIndex {
            if i == path.endIndex || path[i] == ASCII.slash {
                let segment = path[segmentStart..<i]
                if segment.isEmpty && i != path.endIndex { return .failure(.invalid("empty path segment")) }
                if isDotSegment(segment) { return .failure(.invalid("dot segment in path")) }
                segmentStart = i + 1
            } else if path[i] == ASCII.backslash {
                return .failure(.invalid("backslash in path"))
            } else if path[i] == ASCII.percent {
                guard i + 2 < path.endIndex, let hi = ASCII.hexValue(path[i + 1]), let lo = ASCII.hexValue(path[i + 2])
                else { return .failure(.invalid("malformed percent-encoding in path")) }
                let decoded = hi << 4 | lo
                if decoded == ASCII.slash || decoded == ASCII.backslash || decoded == 0 {
                    return .failure(.invalid("encoded separator or NUL in path"))
                }
            }
            i += 1
        }
        return .success(RequestPath(path: path, query: query))
    }

    /// `.` or `..`, in any mix of literal and `%2E` dots; decoded on the fly
    /// (this runs for every segment of every request).
    private static func isDotSegment(_ segment: ArraySlice<UInt8>) -> Bool {
        var dots = 0
        var i = segment.startIndex
        while i < segment.endIndex {
            if segment[i] == ASCII.dot {
                i += 1
            } else if segment[i] == ASCII.percent, i + 2 < segment.endIndex, segment[i + 1] == UInt8(ascii: "2"),
                ASCII.lower(segment[i + 2]) == UInt8(ascii: "e")
            {
                i += 3
            } else {
                return false
            }
            dots += 1
            if dots > 2 { return false }
        }
        return dots > 0
    }

    static func percentDecoded(_ bytes: ArraySlice<UInt8>) -> [UInt8] {
        var out: [UInt8] = []
        out.reserveCapacity(bytes.count)
        var i = bytes.startIndex
        while i < bytes.endIndex {
            if bytes[i] == ASCII.percent, i + 2 < bytes.endIndex,
                let hi = ASCII.hexValue(bytes[i + 1]), let lo = ASCII.hexValue(bytes[i + 2])
            {
                out.append(hi << 4 | lo)
                i += 3
            } else {
                out.append(bytes[i])
                i += 1
            }
        }
        return out
    }

    /// The decoded segments, for matching.
    var segments: [[UInt8]] {
        path.dropFirst().split(separator: ASCII.slash, omittingEmptySubsequences: false).map {
            RequestPath.percentDecoded($0)
        }
    }

    func pathEquals(_ literal: StaticString) -> Bool {
        literal.withUTF8Buffer { path.elementsEqual($0) }
    }

    /// Path and query as forwarded: the query without `_token` parameters
    /// (an old way of passing the token, which the proxy replaces).
    func forwardedPathAndQuery() -> [UInt8] {
        var out: [UInt8] = []
        out.reserveCapacity(path.count + 1 + (query?.count ?? 0))
        out.append(contentsOf: path)
        guard let query else { return out }
        if !query.containsTokenParameter() {
            out.append(ASCII.question)
            out.append(contentsOf: query)
            return out
        }
        var kept: [ArraySlice<UInt8>] = []
        for parameter in query.split(separator: ASCII.ampersand, omittingEmptySubsequences: false)
        where !RequestPath.isTokenParameter(parameter) {
            kept.append(parameter)
        }
        if kept.isEmpty { return out }
        out.append(ASCII.question)
        for (n, parameter) in kept.enumerated() {
            if n > 0 { out.append(ASCII.ampersand) }
            out.append(contentsOf: parameter)
        }
        return out
    }
}

extension RequestPath {
    /// A `_token=…` parameter (the name possibly percent-encoded).
    static func isTokenParameter(_ parameter: ArraySlice<UInt8>) -> Bool {
        let name = parameter.prefix { $0 != ASCII.equals }
        // Cheap test first: a plain `_token` or anything with an escape in it.
        if name.count != 6 && !name.contains(ASCII.percent) { return false }
        return RequestPath.percentDecoded(name).elementsEqual("_token".utf8)
    }
}

extension ArraySlice where Element == UInt8 {
    /// Without splitting (which would allocate): most queries have no `_token`.
    fileprivate func containsTokenParameter() -> Bool {
        var start = startIndex
        for i in startIndex...endIndex where i == endIndex || self[i] == ASCII.ampersand {
            if RequestPath.isTokenParameter(self[start..<i]) { return true }
            start = i + 1
        }
        return false
    }
}
