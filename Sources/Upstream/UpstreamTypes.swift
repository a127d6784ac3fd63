import EventLoops
import HTTP1

/// Where and how to reach the upstream API.
public struct UpstreamConfiguration: Sendable {
    /// `https://api.iamport.kr`, without a trailing slash.
    public var baseURL: String
    /// PEM bundle to trust instead of the system store. Verification is always on.
    public var caFile: String?
    /// Whole exchange, connect included.
    public var timeout: Nanoseconds
    /// Largest answer accepted from the upstream.
    public var maxResponseBytes: Int
    /// An idle kept-alive connection is closed after this, never reused:
    /// below the usual 60 s idle timeouts of servers and load balancers.
    public var idleTimeout: Nanoseconds
    /// libcurl's own age limit for connections in its cache
    /// (`CURLOPT_MAXAGE_CONN`). The pool decides reuse, so it is unlimited;
    /// tests lower it to make libcurl close connections the proxy holds.
    public var libcurlMaxConnectionAge: Nanoseconds = .max

    public init(baseURL: String, caFile: String? = nil, timeout: Nanoseconds = .seconds(30), maxResponseBytes: Int = 64 << 20,
                idleTimeout: Nanoseconds = .seconds(50)) {
        var base = baseURL
        while base.hasSuffix("/") { base.removeLast() }
        self.baseURL = base
        self.caFile = caFile
        self.timeout = timeout
        self.maxResponseBytes = maxResponseBytes
        self.idleTimeout = idleTimeout
    }
}

extension UpstreamConfiguration {
    /// `host[:port]` of the base URL: what the upstream sees in `Host`.
    public var authority: [UInt8] { Endpoint(baseURL).authority }
}

/// One request to the upstream.
public struct UpstreamRequest: Sendable {
    public var method: Method
    /// The method's own bytes, for methods outside `Method`'s list.
    public var methodName: String
    /// Path and query, starting with `/`.
    public var pathAndQuery: [UInt8]
    /// Header lines `Name: value`, each followed by a NUL byte, written to
    /// the upstream in this order after `Host` and `firstLine`.
    public var headerLines: [UInt8]
    /// A first header line (the Authorization), kept apart so that a replay
    /// can change it alone. No NUL.
    public var firstLine: [UInt8]
    public var body: [UInt8]?
    /// Whether the request may go once more on a fresh connection when a
    /// reused one fails before any byte of an answer: GET, HEAD and OPTIONS
    /// by default; a V2 request with an `Idempotency-Key` too (the API
    /// deduplicates it). Never a payment call whose outcome is unknown.
    public var resendable: Bool

    public init(method: Method, methodName: String, pathAndQuery: [UInt8], headerLines: [UInt8], firstLine: [UInt8] = [],
                body: [UInt8]?) {
        self.resendable = method == .get || method == .head || method == .options
        self.method = method
        self.methodName = methodName
        self.pathAndQuery = pathAndQuery
        self.headerLines = headerLines
        self.firstLine = firstLine
        self.body = body
    }

}

public struct UpstreamResponse: Sendable {
    public var status: Int
    public var reason: [UInt8]?
    /// End-to-end header lines, each ending in CRLF; hop-by-hop fields,
    /// Content-Length, X-Request-Id and `X-Iamport-Proxy-*` removed.
    public var headerBlock: [UInt8]
    public var body: [UInt8]
    /// The Content-Length the upstream declared (kept for answers to HEAD).
    public var declaredLength: Int?
    /// Set when the answer is too large to hold: `body` is its beginning,
    /// the rest comes through this stream (which must be started or
    /// cancelled at once).
    public var stream: UpstreamBodyStream?

    public init(status: Int, reason: [UInt8]? = nil, headerBlock: [UInt8] = [], body: [UInt8] = [], declaredLength: Int? = nil) {
        self.status = status
        self.reason = reason
        self.headerBlock = headerBlock
        self.body = body
        self.declaredLength = declaredLength
    }
}

public enum UpstreamError: Error, Sendable, Equatable {
    /// Could not connect, resolve or complete TLS: nothing was sent.
    case unreachable(String)
    /// No complete answer within the timeout.
    case timeout
    /// The exchange broke after the request may have been sent (reset,
    /// malformed answer, answer too large).
    case failed(String)

    public var message: String {
        switch self {
        case .unreachable(let m), .failed(let m): return m
        case .timeout: return "no answer within the upstream timeout"
        }
    }
}
