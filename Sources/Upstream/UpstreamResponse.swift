import EventLoops
import HTTP1

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
