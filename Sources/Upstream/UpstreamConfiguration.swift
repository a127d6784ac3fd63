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
