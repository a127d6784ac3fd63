import HTTP1

/// The path and query of a request: as sent (what the upstream receives) and
/// in canonical form (what every decision is taken on, see `CanonicalPath`).
struct RequestPath {
    /// Path bytes as received (percent-encoding kept), starting with `/`.
    var path: ArraySlice<UInt8>
    /// Query without `?`, or nil.
    var query: ArraySlice<UInt8>?
    /// The canonical path: `path` itself when it is already canonical.
    var canonical: ArraySlice<UInt8>
    /// Path and query as received, in one piece of the head's bytes; nil
    /// when the path is not the one received (an absolute-form target
    /// without a path is sent as `/`).
    var sent: ArraySlice<UInt8>?

    /// The request's path, canonicalised once by the head parser.
    static func of(_ head: RequestHead) -> Result<RequestPath, PathRefusal> {
        let query = head.path.upperBound < head.target.upperBound
            ? head[(head.path.upperBound + 1)..<head.target.upperBound] : nil
        let sent = head.path.isEmpty ? nil : head[head.path.lowerBound..<head.target.upperBound]
        return make(path: head[head.path], query: query, sent: sent, canonical: head.canonicalPath)
    }

    /// The request's canonical path alone (all the screen needs), or why its
    /// path is refused: `of`'s canonical part, without splitting the rest.
    static func canonical(of head: RequestHead) -> Result<ArraySlice<UInt8>, PathRefusal> {
        switch head.canonicalPath {
        case .asSent: return .success(head[head.path])
        case .rewritten(let bytes): return .success(bytes[...])
        case .refused(let why): return .failure(why)
        }
    }

    /// Splits and canonicalises a target in origin form, as the head parser
    /// does (for tests).
    static func parse(_ target: ArraySlice<UInt8>) -> Result<RequestPath, PathRefusal> {
        let pathEnd = target.firstIndex(of: ASCII.question) ?? target.endIndex
        let path = target[..<pathEnd]
        let query = pathEnd < target.endIndex ? target[(pathEnd + 1)...] : nil
        return make(path: path, query: query, sent: path.isEmpty ? nil : target[path.startIndex...],
                    canonical: CanonicalPath.of(path))
    }

    private static func make(
        path: ArraySlice<UInt8>, query: ArraySlice<UInt8>?, sent: ArraySlice<UInt8>?, canonical: CanonicalPath
    ) -> Result<RequestPath, PathRefusal> {
        switch canonical {
        case .asSent: return .success(RequestPath(path: path, query: query, canonical: path, sent: sent))
        case .rewritten(let bytes):
            // An absolute-form target without a path is sent as `/`.
            let sentPath = path.isEmpty ? bytes[...] : path
            return .success(RequestPath(path: sentPath, query: query, canonical: bytes[...], sent: path.isEmpty ? nil : sent))
        case .refused(let refusal): return .failure(refusal)
        }
    }

    /// Under `/_proxy/`: answered by the proxy, never forwarded.
    var isLocalEndpoint: Bool { Self.isLocalEndpoint(canonical) }

    static func isLocalEndpoint(_ canonical: ArraySlice<UInt8>) -> Bool { canonical.hasPrefix("/_proxy/") }

    func canonicalEquals(_ literal: StaticString) -> Bool {
        literal.withUTF8Buffer { canonical.elementsEqual($0) }
    }

    /// `/users/getToken` in any spelling a server might route there: any
    /// case, `;` parameters on either segment, a trailing slash (repeated
    /// slashes and escapes are gone from the canonical form already). Such a
    /// request is never forwarded: its body holds the caller's `imp_secret`.
    var isGetToken: Bool { Self.isGetToken(canonical) }

    static func isGetToken(_ canonical: ArraySlice<UInt8>) -> Bool {
        var rest = canonical.dropFirst()  // the leading `/`
        guard takeSegment(&rest, equalTo: "users"), takeSegment(&rest, equalTo: "gettoken") else {
            return false
        }
        return rest.isEmpty
    }

    /// PortOne V2's credential endpoints, `/login/api-secret` and
    /// `/token/refresh`, in the same spellings as getToken: never forwarded
    /// for a V2 account (they would hand the app a credential of the account).
    var isV2CredentialEndpoint: Bool { Self.isV2CredentialEndpoint(canonical) }

    static func isV2CredentialEndpoint(_ canonical: ArraySlice<UInt8>) -> Bool {
        var login = canonical.dropFirst()
        if takeSegment(&login, equalTo: "login"), takeSegment(&login, equalTo: "api-secret"), login.isEmpty {
            return true
        }
        var token = canonical.dropFirst()
        return takeSegment(&token, equalTo: "token") && takeSegment(&token, equalTo: "refresh") && token.isEmpty
    }

    /// The value of the query parameter `name` as sent (not decoded), or nil.
    func queryValue(_ name: StaticString) -> ArraySlice<UInt8>? {
        guard let query else { return nil }
        for pair in query.split(separator: ASCII.ampersand) {
            let eq = pair.firstIndex(of: ASCII.equals) ?? pair.endIndex
            let key = pair[..<eq]
            if name.withUTF8Buffer({ key.elementsEqual($0) }) {
                return eq < pair.endIndex ? pair[(eq + 1)...] : pair[eq...]
            }
        }
        return nil
    }

    /// Consumes one segment whose name (before `;` or `%3B`) is `lowercased`
    /// ignoring case, and the `/` after it.
    private static func takeSegment(_ rest: inout ArraySlice<UInt8>, equalTo lowercased: StaticString) -> Bool {
        // Most paths differ at the first byte: no walk of the segment then.
        guard let first = rest.first,
              lowercased.withUTF8Buffer({ $0.first == ASCII.lower(first) }) else { return false }
        let end = rest.firstIndex(of: ASCII.slash) ?? rest.endIndex
        let segment = rest[..<end]
        // Escapes in the canonical form have upper-case hex digits.
        var nameEnd = segment.startIndex
        while nameEnd < segment.endIndex && segment[nameEnd] != ASCII.semicolon
            && !(segment[nameEnd] == ASCII.percent && segment[(nameEnd + 1)...].hasPrefix("3B"))
        {
            nameEnd += 1
        }
        guard segment[..<nameEnd].equalsLowercased(lowercased) else { return false }
        rest = end < rest.endIndex ? rest[(end + 1)...] : rest[end...]
        return true
    }

    /// Percent-decodes `bytes` (malformed escapes are kept as they are).
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

    /// Path and query as forwarded: the path as sent, the query without its
    /// `_token` parameters (an old way of passing the token, which the proxy
    /// replaces). Usually the received bytes themselves, not a copy.
    func forwardedPathAndQuery() -> ArraySlice<UInt8> {
        let stripping = query?.containsTokenParameter() ?? false
        if !stripping, let sent { return sent }
        var out: [UInt8] = []
        out.reserveCapacity(path.count + 1 + (query?.count ?? 0))
        out.append(contentsOf: path)
        guard let query else { return out[...] }
        guard stripping else {
            out.append(ASCII.question)
            out.append(contentsOf: query)
            return out[...]
        }
        // Kept parameters, each with the separator that came before it.
        var kept = 0
        var start = query.startIndex
        for i in query.startIndex...query.endIndex where i == query.endIndex || Self.isSeparator(query[i]) {
            let parameter = query[start..<i]
            if !Self.isTokenParameter(parameter) {
                out.append(kept == 0 ? ASCII.question : query[start - 1])
                out.append(contentsOf: parameter)
                kept += 1
            }
            start = i + 1
        }
        return out[...]
    }

    /// `&`, and `;`, which some servers also split a query on.
    static func isSeparator(_ b: UInt8) -> Bool { b == ASCII.ampersand || b == ASCII.semicolon }
}

extension RequestPath {
    /// A parameter a server might read as `_token`: its name decoded
    /// (escapes with hex digits in either case, `+` as a space) is `_token`
    /// in any case, PHP's `.token` too, with spaces around it and maybe `[…]`
    /// after it. Decoded on the fly: this runs for every parameter of every
    /// request.
    static func isTokenParameter(_ parameter: ArraySlice<UInt8>) -> Bool {
        let name = parameter.prefix { $0 != ASCII.equals }
        // Cheap test first: a name too short is not `_token`, however written.
        if name.count < 6 { return false }
        var decoded = FormDecodedBytes(name)
        var b = decoded.next()
        while b == ASCII.space { b = decoded.next() }
        guard b == UInt8(ascii: "_") || b == ASCII.dot else { return false }
        for expected in "token".utf8 {
            guard let next = decoded.next(), ASCII.lower(next) == expected else { return false }
        }
        b = decoded.next()
        while b == ASCII.space { b = decoded.next() }
        return b == nil || b == UInt8(ascii: "[")
    }
}

/// The bytes of a form-encoded name, decoded one at a time without a copy.
private struct FormDecodedBytes: IteratorProtocol {
    let bytes: ArraySlice<UInt8>
    var i: Int

    init(_ bytes: ArraySlice<UInt8>) {
        self.bytes = bytes
        i = bytes.startIndex
    }

    mutating func next() -> UInt8? {
        guard i < bytes.endIndex else { return nil }
        let b = bytes[i]
        if b == ASCII.percent, i + 2 < bytes.endIndex, let hi = ASCII.hexValue(bytes[i + 1]),
            let lo = ASCII.hexValue(bytes[i + 2])
        {
            i += 3
            return hi << 4 | lo
        }
        i += 1
        return b == UInt8(ascii: "+") ? ASCII.space : b
    }
}

extension ArraySlice where Element == UInt8 {
    /// Without splitting (which would allocate): most queries have no `_token`.
    fileprivate func containsTokenParameter() -> Bool {
        var start = startIndex
        for i in startIndex...endIndex where i == endIndex || RequestPath.isSeparator(self[i]) {
            if RequestPath.isTokenParameter(self[start..<i]) { return true }
            start = i + 1
        }
        return false
    }
}
