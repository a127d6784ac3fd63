/// Why a request cannot be served, as decided by the wire-format rules.
/// Each case maps to one status; the connection is closed after any of them
/// because the framing of what follows can no longer be trusted.
public enum HTTPError: Error, Equatable, Sendable {
    /// Malformed request line, header or body framing (400).
    case badRequest(String)
    /// `CONNECT` or another authority-form request (405).
    case methodNotAllowed
    /// Request line longer than its limit (414).
    case uriTooLong
    /// Head longer than `--max-header-bytes` or too many fields (431).
    case headersTooLarge
    /// Body longer than `--max-body-bytes` (413).
    case bodyTooLarge
    /// A transfer coding other than chunked (501).
    case notImplemented
    /// A protocol version other than HTTP/1.0 and HTTP/1.1 (505).
    case versionNotSupported

    public var status: Int {
        switch self {
        case .badRequest: return 400
        case .methodNotAllowed: return 405
        case .uriTooLong: return 414
        case .headersTooLarge: return 431
        case .bodyTooLarge: return 413
        case .notImplemented: return 501
        case .versionNotSupported: return 505
        }
    }
}

/// Why an upstream's answer head cannot be relayed. Every case is the same
/// 502 `upstream_failed` to the client; `description` is the reason given.
public enum AnswerHeadError: Error, Equatable, Sendable, CustomStringConvertible {
    /// A bare LF or CR: refused at once, before the head ends.
    case bareLineEnd
    /// The head is longer than the limit, before or after it ends.
    case tooLarge(limit: Int)
    /// Not `HTTP/1.0` or `HTTP/1.1`, a status that is not three digits from
    /// 100, or a reason phrase with a control byte.
    case malformedStatusLine
    /// A field line that a request would be refused for too.
    case malformedField(FieldLineDefect)
    case invalidContentLength
    case conflictingContentLength
    /// A coding other than `chunked` alone, or `chunked` twice.
    case unsupportedTransferEncoding
    /// Both Content-Length and Transfer-Encoding.
    case bothLengths

    public var description: String {
        switch self {
        case .bareLineEnd: return "bare LF or CR in the answer head"
        case .tooLarge(let limit): return "answer head larger than \(limit) bytes"
        case .malformedStatusLine: return "malformed status line"
        case .malformedField: return "malformed field line in the answer head"
        case .invalidContentLength: return "invalid Content-Length in the answer"
        case .conflictingContentLength: return "conflicting Content-Length in the answer"
        case .unsupportedTransferEncoding: return "unsupported Transfer-Encoding in the answer"
        case .bothLengths: return "answer with both Content-Length and Transfer-Encoding"
        }
    }
}
