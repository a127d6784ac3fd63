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
