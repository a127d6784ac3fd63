import HTTP1
import Server

/// Everything the proxy refuses before forwarding, whoever noticed it: the
/// server (a malformed head, a timeout, overload, shutdown) or the proxy's
/// routing (a refused path, a missing client token, the allow list, a V2
/// credential endpoint, another host). One error, one message, and the API
/// whose error shape the answer takes.
struct Refusal: Error, Sendable {
    let error: ProxyError
    /// Never holds a token or a secret.
    let message: String
    let api: AccountAPI

    init(_ error: ProxyError, _ message: String, _ api: AccountAPI = .v1) {
        self.error = error
        self.message = message
        self.api = api
    }

    /// What the server noticed, in the proxy's words.
    init(_ serverError: ServerError, _ api: AccountAPI = .v1) {
        switch serverError {
        case .malformed(let http): self.init(http, api)
        case .headerTimeout: self.init(.headerTimeout, "request head not complete within the header timeout", api)
        case .bodyTimeout: self.init(.bodyTimeout, "request body not received in time", api)
        case .overloaded: self.init(.overloaded, "too many open connections", api)
        case .shuttingDown: self.init(.shuttingDown, "the proxy is shutting down", api)
        }
    }

    /// A head the parser refused.
    init(_ http: HTTPError, _ api: AccountAPI = .v1) {
        switch http {
        case .badRequest(let why): self.init(.badRequest, why, api)
        case .methodNotAllowed:
            self.init(.notAllowed, "CONNECT and requests for other hosts are refused: this is not an open proxy", api)
        case .uriTooLong: self.init(.uriTooLong, "request line too long", api)
        case .headersTooLarge: self.init(.headersTooLarge, "request head too large", api)
        case .bodyTooLarge: self.init(.bodyTooLarge, "request body too large", api)
        case .notImplemented: self.init(.notImplemented, "only the chunked transfer coding is supported", api)
        case .versionNotSupported: self.init(.versionNotSupported, "only HTTP/1.0 and HTTP/1.1 are supported", api)
        }
    }

    func response(requestID: [UInt8]?) -> Response {
        error.response(message, requestID: requestID, api: api)
    }
}
