/// The head of an upstream's answer (RFC 9112 §4 and §6), as offsets into
/// the bytes it was parsed from.
public struct UpstreamHead: Sendable {
    public struct Field: Sendable {
        public var name: Range<Int>
        public var value: Range<Int>
        public var kind: FieldKind
    }

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
    /// Bytes of the head, the blank line included.
    public var length: Int
}

/// Reads an answer's head strictly: the proxy relays what it frames, so an
/// answer whose framing two readers could see differently (Content-Length
/// with Transfer-Encoding, conflicting lengths, obs-fold, bare LF) is refused
/// rather than guessed at.
public enum ResponseHeadParser {
    public enum Outcome: Sendable {
        case incomplete
        case complete(UpstreamHead)
        case failure(String)
    }

    public static func parse(_ bytes: UnsafeRawBufferPointer, maxHeadBytes: Int) -> Outcome {
        let end: Int
        switch headEnd(bytes) {
        case .at(let offset):
            end = offset
        case .bareLineEnd:
            // Not HTTP/1.1: refused now, not after waiting for a blank line
            // that a server ending its lines with LF alone never sends.
            return .failure("bare LF or CR in the answer head")
        case .incomplete:
            return bytes.count > maxHeadBytes ? .failure("answer head larger than \(maxHeadBytes) bytes") : .incomplete
        }
        if end > maxHeadBytes { return .failure("answer head larger than \(maxHeadBytes) bytes") }
        guard let statusEnd = Self.lineEnd(bytes, from: 0, limit: end) else { return .failure("malformed status line") }
        guard var head = statusLine(bytes, statusEnd) else { return .failure("malformed status line") }
        head.length = end
        var i = statusEnd + 2
        var keepAlive = false
        var transferEncoding = false
        while i < end - 2 {
            guard let e = Self.lineEnd(bytes, from: i, limit: end) else { return .failure("bare LF in the answer head") }
            guard let field = fieldLine(bytes, i, e) else { return .failure("malformed field line in the answer head") }
            switch field.kind {
            case .contentLength:
                guard let n = decimal(bytes, field.value) else { return .failure("invalid Content-Length in the answer") }
                if let seen = head.contentLength, seen != n { return .failure("conflicting Content-Length in the answer") }
                head.contentLength = n
            case .transferEncoding:
                transferEncoding = true
                // Only `chunked`, alone, is a framing the proxy relays.
                let value = UnsafeRawBufferPointer(rebasing: bytes[field.value])
                guard value.equalsLowercased("chunked"), !head.chunked else {
                    return .failure("unsupported Transfer-Encoding in the answer")
                }
                head.chunked = true
            case .connection:
                HeaderRules.forEachConnectionOption(bytes[field.value]) { option in
                    if option.equalsLowercased("close") { head.closes = true }
                    if option.equalsLowercased("keep-alive") { keepAlive = true }
                }
            default:
                break
            }
            head.fields.append(field)
            i = e + 2
        }
        if transferEncoding && head.contentLength != nil {
            return .failure("answer with both Content-Length and Transfer-Encoding")
        }
        if head.minorVersion == 0 && !keepAlive { head.closes = true }
        return .complete(head)
    }

    enum HeadEnd: Equatable {
        /// Offset just past the blank line.
        case at(Int)
        case incomplete
        /// An LF without its CR, or a CR without its LF, before the end.
        case bareLineEnd
    }

    /// Where the head ends, checking every line end on the way.
    static func headEnd(_ b: UnsafeRawBufferPointer) -> HeadEnd {
        var i = 0
        while i < b.count {
            let byte = b[i]
            if byte == ASCII.lf {
                if i == 0 || b[i - 1] != ASCII.cr { return .bareLineEnd }
                if i >= 3 && b[i - 2] == ASCII.lf && b[i - 3] == ASCII.cr { return .at(i + 1) }
            } else if i > 0 && b[i - 1] == ASCII.cr {
                return .bareLineEnd
            }
            i += 1
        }
        return .incomplete
    }

    /// The CR of the line starting at `from`; nil for a bare LF.
    private static func lineEnd(_ b: UnsafeRawBufferPointer, from: Int, limit: Int) -> Int? {
        var i = from
        while i < limit {
            if b[i] == ASCII.lf { return nil }
            if b[i] == ASCII.cr { return i + 1 < limit && b[i + 1] == ASCII.lf ? i : nil }
            i += 1
        }
        return nil
    }

    /// `HTTP/1.x SSS reason`; the reason and the space before it may be missing.
    private static func statusLine(_ b: UnsafeRawBufferPointer, _ end: Int) -> UpstreamHead? {
        guard end >= 12, b[0] == UInt8(ascii: "H"), b[1] == UInt8(ascii: "T"), b[2] == UInt8(ascii: "T"),
            b[3] == UInt8(ascii: "P"), b[4] == ASCII.slash, b[5] == UInt8(ascii: "1"), b[6] == ASCII.dot,
            b[7] == UInt8(ascii: "0") || b[7] == UInt8(ascii: "1"), b[8] == ASCII.space
        else { return nil }
        var status = 0
        for i in 9..<12 {
            guard b[i] >= 0x30 && b[i] <= 0x39 else { return nil }
            status = status * 10 + Int(b[i] - 0x30)
        }
        guard status >= 100 else { return nil }
        var reason = end..<end
        if end > 12 {
            guard b[12] == ASCII.space else { return nil }
            for i in 13..<end where !ASCII.isFieldValueChar[Int(b[i])] { return nil }
            reason = 13..<end
        }
        var fields: [UpstreamHead.Field] = []
        fields.reserveCapacity(16)
        return UpstreamHead(
            minorVersion: Int(b[7] - 0x30), status: status, reason: reason, fields: fields, contentLength: nil,
            chunked: false, closes: false, length: 0)
    }

    /// `name: value` between `start` and the CR at `end`; no obs-fold, no
    /// space before the colon.
    private static func fieldLine(_ b: UnsafeRawBufferPointer, _ start: Int, _ end: Int) -> UpstreamHead.Field? {
        var i = start
        while i < end && ASCII.isTokenChar[Int(b[i])] { i += 1 }
        guard i > start, i < end, b[i] == ASCII.colon else { return nil }
        let name = start..<i
        var lo = i + 1
        var hi = end
        while lo < hi && ASCII.isOWS(b[lo]) { lo += 1 }
        while hi > lo && ASCII.isOWS(b[hi - 1]) { hi -= 1 }
        for j in lo..<hi where !ASCII.isFieldValueChar[Int(b[j])] { return nil }
        let kind = FieldKind.classify(UnsafeRawBufferPointer(rebasing: b[name]))
        return UpstreamHead.Field(name: name, value: lo..<hi, kind: kind)
    }

    /// A Content-Length: at most 15 digits (the read itself is checked too).
    private static func decimal(_ b: UnsafeRawBufferPointer, _ range: Range<Int>) -> Int? {
        guard range.count <= 15 else { return nil }
        return ASCII.decimal(UnsafeRawBufferPointer(rebasing: b[range]))
    }
}
