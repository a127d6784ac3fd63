/// Incremental request-head parser.
///
/// Bytes arrive in pieces; `parse` is called with everything buffered so far
/// for the current request. It remembers how far it has scanned for the end
/// of the head, so the total work stays linear however the bytes are split.
/// Line ends are checked during that scan (bare CR or LF fail at once, not
/// after a timeout), and the complete head is then parsed in one pass.
public struct HeadParser: Sendable {
    public enum Outcome: Sendable {
        case incomplete
        /// `consumed` counts the head and any empty lines before it.
        case complete(RequestHead, consumed: Int)
        case failure(HTTPError)
    }

    public var limits: Limits
    private var scanned = 0
    private var start = 0
    private var requestLineEnd: Int?
    /// The last head's box, refilled by the next head if nothing else holds
    /// it by then (the exchange is over): the box, its bytes and its fields
    /// keep their memory, so a kept-alive connection's heads after the first
    /// cost no allocation (three, and their frees, a request otherwise).
    private var spare: RequestHead.Storage?
    /// A box whose bytes outgrew this is not kept: an idle connection holds
    /// at most about this much for its next head (and its fields, at most
    /// the field limit's worth).
    static let maxSpareBytes = 4096

    public init(limits: Limits) {
        self.limits = limits
    }

    /// Forget the progress of the previous head; call after each complete one.
    public mutating func reset() {
        scanned = 0
        start = 0
        requestLineEnd = nil
    }

    public mutating func parse(_ buffer: UnsafeRawBufferPointer) -> Outcome {
        let n = buffer.count
        // RFC 9112 §2.2: ignore at least one empty line before the request line.
        if scanned == 0 {
            var s = start
            while s + 1 < n, buffer[s] == ASCII.cr, buffer[s + 1] == ASCII.lf {
                s += 2
                if s > 8 { return .failure(.badRequest("empty lines before the request line")) }
            }
            if s < n, buffer[s] == ASCII.lf { return .failure(.badRequest("bare LF line end")) }
            if s + 1 >= n && s < n && buffer[s] == ASCII.cr { start = s; return .incomplete }
            start = s
            scanned = s
        }
        let i: Int
        switch HeadSyntax.scan(buffer, start: start, from: scanned, firstLineEnd: &requestLineEnd) {
        case .end(let end):
            if end - start > limits.maxHeadBytes { return .failure(.headersTooLarge) }
            scanned = 0
            let head = UnsafeRawBufferPointer(rebasing: buffer[start..<end])
            start = 0
            requestLineEnd = nil
            switch Self.parseHead(head, limits: limits, reusing: takeSpare()) {
            case .success(let parsed):
                if parsed.storage.bytes.capacity <= Self.maxSpareBytes { spare = parsed.storage }
                return .complete(parsed, consumed: end)
            case .failure(let error):
                return .failure(error)
            }
        case .bareLF:
            return .failure(.badRequest("bare LF line end"))
        case .bareCR:
            return .failure(.badRequest("bare CR in head"))
        case .incomplete(let resume):
            i = resume
        }
        scanned = i
        if requestLineEnd == nil && i - start > limits.maxRequestLineBytes { return .failure(.uriTooLong) }
        if i - start > limits.maxHeadBytes { return .failure(.headersTooLarge) }
        return .incomplete
    }

    /// The spare box, if it is there and nothing else holds it.
    private mutating func takeSpare() -> RequestHead.Storage? {
        guard var box = spare else { return nil }
        spare = nil
        return isKnownUniquelyReferenced(&box) ? box : nil
    }

    // MARK: - The complete head

    /// `reusing`: a box nothing else holds, whose arrays are refilled.
    static func parseHead(
        _ raw: UnsafeRawBufferPointer, limits: Limits, reusing spare: RequestHead.Storage? = nil
    ) -> Result<RequestHead, HTTPError> {
        var bytes: [UInt8] = []
        var fields: [HeaderField] = []
        if let spare {
            // Moved out, so each is uniquely held and keeps its memory.
            swap(&bytes, &spare.bytes)
            swap(&fields, &spare.fields)
            bytes.removeAll(keepingCapacity: true)
            fields.removeAll(keepingCapacity: true)
            bytes.append(contentsOf: raw)
        } else {
            bytes = [UInt8](raw)
        }
        return bytes.withUnsafeBufferPointer { buf in
            parseHead(buf, bytes: bytes, fields: &fields, limits: limits, reusing: spare)
        }
    }

    private static func parseHead(
        _ buf: UnsafeBufferPointer<UInt8>, bytes: [UInt8], fields: inout [HeaderField], limits: Limits,
        reusing spare: RequestHead.Storage?
    ) -> Result<RequestHead, HTTPError> {
        let raw = UnsafeRawBufferPointer(buf)
        let n = buf.count
        var i = 0

        // method SP request-target SP HTTP-version CRLF
        let isTokenChar = ASCII.isTokenChar, isTargetChar = ASCII.isTargetChar  // once, not at every byte
        let methodStart = i
        while i < n && isTokenChar[Int(buf[i])] { i += 1 }
        if i == methodStart || i >= n || buf[i] != ASCII.space {
            return .failure(.badRequest("malformed request line"))
        }
        let methodRange = methodStart..<i
        i += 1
        let targetStart = i
        while i < n && isTargetChar[Int(buf[i])] { i += 1 }
        if i == targetStart || i >= n || buf[i] != ASCII.space {
            return .failure(.badRequest("malformed request target"))
        }
        let target = targetStart..<i
        if i - methodStart > limits.maxRequestLineBytes { return .failure(.uriTooLong) }
        i += 1
        // "HTTP/" DIGIT "." DIGIT CRLF
        guard let (major, minor) = HeadSyntax.version(raw, at: i, limit: n), i + 10 <= n,
            buf[i + 8] == ASCII.cr, buf[i + 9] == ASCII.lf
        else {
            return .failure(.badRequest("malformed HTTP version"))
        }
        guard major == 1, minor <= 1 else { return .failure(.versionNotSupported) }
        i += 10

        let method = Method.classify(bytes[methodRange])
        if method == .connect { return .failure(.methodNotAllowed) }

        // Fields, up to the final CRLF.
        if fields.capacity < 12 { fields.reserveCapacity(12) }
        if let defect = HeadSyntax.parseFields(raw, from: i, maxCount: limits.maxHeaderCount, into: &fields) {
            return .failure(HTTPError(defect))
        }

        let head = RequestHead(
            reusing: spare, bytes: bytes, method: method, methodRange: methodRange, target: target,
            minorVersion: minor, fields: fields)
        // The rest is written into the box directly: it is this head's alone
        // (new, or the spare nothing else held), though the caller may still
        // hold the spare, which copy-on-write would take for a sharer.
        let box = head.storage
        if let error = interpretFields(box) { return .failure(error) }
        switch classifyTarget(bytes, target) {
        case .success(let form): box.targetForm = form
        case .failure(let error): return .failure(error)
        }
        var pathStart = target.lowerBound
        if case .absolute(_, let path) = box.targetForm { pathStart = path.lowerBound }
        var pathEnd = pathStart
        while pathEnd < target.upperBound && buf[pathEnd] != ASCII.question { pathEnd += 1 }
        box.path = pathStart..<pathEnd
        box.canonicalPath = CanonicalPath.of(UnsafeBufferPointer(rebasing: buf[pathStart..<pathEnd]))
        return .success(head)
    }

    /// Framing, persistence and expectations from the fields, with the
    /// anti-smuggling rules of RFC 9112 §6.3.
    private static func interpretFields(_ head: RequestHead.Storage) -> HTTPError? {
        var contentLength: Int?
        var sawTransferEncoding = false
        var chunked = false
        var hostCount = 0
        let bytes = head.bytes

        for field in head.fields {
            let value = bytes[field.value]
            switch field.kind {
            case .host:
                hostCount += 1
            case .contentLength:
                if contentLength != nil { return .badRequest("more than one Content-Length") }
                guard let length = parseContentLength(value) else { return .badRequest("invalid Content-Length") }
                contentLength = length
            case .transferEncoding:
                // Codings accumulate across repeated fields; chunked must come last, once.
                var sawAny = false
                var failure: HTTPError?
                HeaderRules.forEachListElement(value) { coding in
                    sawAny = true
                    if failure != nil { return }
                    if chunked {
                        failure = .badRequest("chunked is not the last transfer coding")
                    } else if coding.isEmpty {
                        failure = .badRequest("empty transfer coding")
                    } else if coding.equalsLowercased("chunked") {
                        chunked = true
                    } else {
                        failure = .notImplemented
                    }
                }
                if let failure { return failure }
                if !sawAny { return .badRequest("empty Transfer-Encoding") }
                sawTransferEncoding = true
            case .connection:
                head.connection.read(value)
                if head.connection.sawInvalid { return .badRequest("invalid Connection option") }
            case .expect:
                if value.equalsLowercased("100-continue") { head.expectContinue = true }
            default:
                break
            }
        }

        if head.minorVersion == 1 && hostCount != 1 {
            return .badRequest(hostCount == 0 ? "missing Host" : "more than one Host")
        }
        if hostCount > 1 { return .badRequest("more than one Host") }
        if sawTransferEncoding {
            if contentLength != nil { return .badRequest("both Content-Length and Transfer-Encoding") }
            if head.minorVersion == 0 { return .badRequest("Transfer-Encoding in an HTTP/1.0 request") }
            if !chunked { return .badRequest("chunked is not the last transfer coding") }
            head.framing = .chunked
        } else if let contentLength, contentLength > 0 {
            head.framing = .contentLength(contentLength)
        }
        head.keepAlive = head.connection.persists(minorVersion: head.minorVersion)
        if head.minorVersion == 0 { head.expectContinue = false }
        if head.framing == .none { head.expectContinue = false }
        return nil
    }

    /// A Content-Length value (see `HeadSyntax.contentLength`).
    static func parseContentLength(_ value: ArraySlice<UInt8>) -> Int? {
        HeadSyntax.contentLength(value)
    }

    /// Origin form, or absolute form (which the proxy may accept for its own
    /// upstream only). Asterisk and authority forms are refused here.
    static func classifyTarget(_ bytes: [UInt8], _ target: Range<Int>) -> Result<TargetForm, HTTPError> {
        let t = bytes[target]
        if t.first == ASCII.slash {
            if t.contains(ASCII.hash) { return .failure(.badRequest("fragment in request target")) }
            return .success(.origin)
        }
        let schemeLength: Int
        if t.prefix(7).equalsLowercased("http://") {
            schemeLength = 7
        } else if t.prefix(8).equalsLowercased("https://") {
            schemeLength = 8
        } else if t.elementsEqual("*".utf8) {
            return .failure(.badRequest("asterisk-form request target"))
        } else {
            return .failure(.methodNotAllowed)  // authority form names another host
        }
        let authorityStart = target.lowerBound + schemeLength
        var i = authorityStart
        while i < target.upperBound && bytes[i] != ASCII.slash && bytes[i] != ASCII.question { i += 1 }
        if i == authorityStart { return .failure(.badRequest("absolute-form target without a host")) }
        if bytes[authorityStart..<i].contains(UInt8(ascii: "@")) {
            return .failure(.badRequest("user information in request target"))
        }
        if bytes[i..<target.upperBound].contains(ASCII.hash) {
            return .failure(.badRequest("fragment in request target"))
        }
        return .success(.absolute(authority: authorityStart..<i, path: i..<target.upperBound))
    }
}

extension HTTPError {
    /// A request's field-line defect: 400, or 431 past the field count.
    init(_ defect: FieldLineDefect) {
        switch defect {
        case .obsoleteLineFolding: self = .badRequest("obsolete line folding")
        case .malformedName: self = .badRequest("malformed header field name")
        case .emptyName: self = .badRequest("empty header field name")
        case .controlCharacter: self = .badRequest("control character in header field value")
        case .tooMany: self = .headersTooLarge
        }
    }
}
