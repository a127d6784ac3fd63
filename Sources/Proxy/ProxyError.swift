import HTTP1
import Server

/// Every answer the proxy produces itself (SPEC.md, "The proxy's own
/// answers"): a status, a stable name sent in `X-Iamport-Proxy-Error`, and
/// the API's envelope with a message.
public enum ProxyError: String, Sendable, CaseIterable {
    case badRequest = "bad_request"
    case clientUnauthorized = "client_unauthorized"
    case forbidden = "forbidden"
    case notFound = "not_found"
    case notAllowed = "not_allowed"
    case headerTimeout = "header_timeout"
    case bodyTimeout = "body_timeout"
    case bodyTooLarge = "body_too_large"
    case uriTooLong = "uri_too_long"
    case headersTooLarge = "headers_too_large"
    case notImplemented = "not_implemented"
    case versionNotSupported = "version_not_supported"
    case upstreamUnreachable = "upstream_unreachable"
    case upstreamFailed = "upstream_failed"
    case tokenUnavailable = "token_unavailable"
    case upstreamTimeout = "upstream_timeout"
    case overloaded = "overloaded"
    case shuttingDown = "shutting_down"

    public var status: Int {
        switch self {
        case .badRequest: return 400
        case .clientUnauthorized: return 401
        case .forbidden: return 403
        case .notFound: return 404
        case .notAllowed: return 405
        case .headerTimeout, .bodyTimeout: return 408
        case .bodyTooLarge: return 413
        case .uriTooLong: return 414
        case .headersTooLarge: return 431
        case .notImplemented: return 501
        case .versionNotSupported: return 505
        case .upstreamUnreachable, .upstreamFailed, .tokenUnavailable: return 502
        case .upstreamTimeout: return 504
        case .overloaded, .shuttingDown: return 503
        }
    }

    /// The answer in the shape of `api`'s own errors, so that its SDKs read
    /// it: V1's envelope, or V2's `{"type": ..., "message": ...}`. `message`
    /// must never hold a token or the secret.
    public func response(_ message: String, requestID: [UInt8]?, api: AccountAPI = .v1) -> Response {
        var response = Response(status: status)
        response.addHeader("Content-Type", "application/json; charset=utf-8")
        response.addHeader("X-Iamport-Proxy-Error", rawValue)
        if let requestID { response.addHeader("X-Request-Id", bytes: requestID) }
        switch api {
        case .v1: response.body = envelopeBody("iamport-proxy: " + message)
        case .v2: response.body = v2ErrorBody(type: v2Type, "iamport-proxy: " + message)
        }
        return response
    }

    /// V2's own error type where one fits (its SDKs raise their usual
    /// errors for it), else this name in upper snake case.
    public var v2Type: String {
        switch self {
        case .clientUnauthorized: return "UNAUTHORIZED"
        case .forbidden, .notAllowed: return "FORBIDDEN"
        case .badRequest: return "INVALID_REQUEST"
        default: return rawValue.uppercased()
        }
    }

}

/// `{"code":-1,"message":"...","response":null}`
func envelopeBody(_ message: String) -> [UInt8] {
    var out = Array(#"{"code":-1,"message":"#.utf8)
    appendJSONString(message, to: &out)
    out.append(contentsOf: #","response":null}"#.utf8)
    return out
}

/// `{"type":"...","message":"..."}`: PortOne V2's error shape.
func v2ErrorBody(type: String, _ message: String) -> [UInt8] {
    var out = Array(#"{"type":"#.utf8)
    appendJSONString(type, to: &out)
    out.append(contentsOf: #","message":"#.utf8)
    appendJSONString(message, to: &out)
    out.append(UInt8(ascii: "}"))
    return out
}

/// The lower-case hex digit of `value & 0xF`. Arithmetic, not a table: an
/// array global is initialised lazily, a `swift_once` on every use.
@inline(__always)
func hexDigit(_ value: UInt64) -> UInt8 {
    let nibble = UInt8(truncatingIfNeeded: value & 0xF)
    return nibble < 10 ? 0x30 &+ nibble : 0x57 &+ nibble
}
