/// The head of an upstream's answer (RFC 9112 §4 and §6), as offsets into
/// the bytes it was parsed from.
public struct UpstreamHead: Sendable {
    /// The field type of both kinds of head.
    public typealias Field = HeaderField

    /// The `x` of `HTTP/1.x`.
    public var minorVersion: Int
    public var status: Int
    /// Empty when the status line has no reason phrase.
    public var reason: Range<Int>
    public var fields: [Field]
    public var contentLength: Int?
    public var chunked: Bool
    /// The connection ends with this answer (`Connection: close`, or HTTP/1.0
    /// without keep-alive).
    public var closes: Bool
    /// What its `Connection` fields say (names listed there are hop-by-hop
    /// for this answer).
    public var connection: ConnectionOptions
    /// Bytes of the head, the blank line included.
    public var length: Int

    /// Whether a field of this head (`bytes`, the head it was parsed from)
    /// must not be relayed: hop-by-hop by RFC 9110 §7.6.1, or named in this
    /// answer's `Connection`, decided as for a request.
    public func isHopByHop(_ field: Field, in bytes: UnsafeRawBufferPointer) -> Bool {
        connection.isHopByHop(field, in: bytes)
    }
}

/// Reads an answer's head strictly: the proxy relays what it frames, so an
/// answer whose framing two readers could see differently (Content-Length
/// with Transfer-Encoding, conflicting lengths, obs-fold, bare LF) is refused
/// rather than guessed at. The line ends, field lines, version and numbers
/// are read by `HeadSyntax`, as a request's are; the status line and what the
/// fields mean for the answer's framing are read here.
public enum ResponseHeadParser {
    public enum Outcome: Sendable {
        case incomplete
        case complete(UpstreamHead)
        case failure(AnswerHeadError)
    }

    public static func parse(_ bytes: UnsafeRawBufferPointer, maxHeadBytes: Int) -> Outcome {
        var statusLineEnd: Int?
        let end: Int
        switch HeadSyntax.scan(bytes, start: 0, from: 0, firstLineEnd: &statusLineEnd) {
        case .end(let offset):
            end = offset
        case .bareLF, .bareCR:
            // Not HTTP/1.1: refused now, not after waiting for a blank line
            // that a server ending its lines with LF alone never sends.
            return .failure(.bareLineEnd)
        case .incomplete:
            return bytes.count > maxHeadBytes ? .failure(.tooLarge(limit: maxHeadBytes)) : .incomplete
        }
        if end > maxHeadBytes { return .failure(.tooLarge(limit: maxHeadBytes)) }
        let raw = UnsafeRawBufferPointer(rebasing: bytes[0..<end])
        // The scan ended at a blank line, so the status line has its LF.
        guard let statusEnd = statusLineEnd, let (minor, status, reason) = statusLine(raw, statusEnd - 2) else {
            return .failure(.malformedStatusLine)
        }
        // The fields parsed into an array of this function's own, then moved
        // into the head: a head returned with its array and unwrapped here
        // shared it, and the first field appended copied it.
        var fields: [HeaderField] = []
        fields.reserveCapacity(16)
        if let defect = HeadSyntax.parseFields(raw, from: statusEnd, maxCount: .max, into: &fields) {
            return .failure(.malformedField(defect))
        }
        var head = UpstreamHead(
            minorVersion: minor, status: status, reason: reason, fields: fields, contentLength: nil,
            chunked: false, closes: false, connection: ConnectionOptions(), length: end)
        var transferEncoding = false
        for field in head.fields {
            switch field.kind {
            case .contentLength:
                guard let n = HeadSyntax.contentLength(raw[field.value]) else { return .failure(.invalidContentLength) }
                if let seen = head.contentLength, seen != n { return .failure(.conflictingContentLength) }
                head.contentLength = n
            case .transferEncoding:
                transferEncoding = true
                // Only `chunked`, alone, is a framing the proxy relays.
                guard raw[field.value].equalsLowercased("chunked"), !head.chunked else {
                    return .failure(.unsupportedTransferEncoding)
                }
                head.chunked = true
            case .connection:
                head.connection.read(raw[field.value])
            default:
                break
            }
        }
        if transferEncoding && head.contentLength != nil { return .failure(.bothLengths) }
        head.closes = !head.connection.persists(minorVersion: head.minorVersion)
        return .complete(head)
    }

    /// `HTTP/1.x SSS reason` up to the CR at `end`; the reason and the space
    /// before it may be missing.
    private static func statusLine(_ b: UnsafeRawBufferPointer, _ end: Int) -> (minor: Int, status: Int, reason: Range<Int>)? {
        guard end >= 12, let (major, minor) = HeadSyntax.version(b, at: 0, limit: end), major == 1, minor <= 1,
            b[8] == ASCII.space, let status = ASCII.decimal(b[9..<12]), status >= 100
        else { return nil }
        var reason = end..<end
        if end > 12 {
            guard b[12] == ASCII.space else { return nil }
            for i in 13..<end where !ASCII.isFieldValueChar[Int(b[i])] { return nil }
            reason = 13..<end
        }
        return (minor, status, reason)
    }
}
