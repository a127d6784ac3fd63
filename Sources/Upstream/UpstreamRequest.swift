import EventLoops
import HTTP1

/// One request to the upstream.
public struct UpstreamRequest: Sendable {
    public var method: Method
    /// The method's own bytes, for methods outside `Method`'s list.
    public var methodName: String
    /// Path and query, starting with `/` (usually a slice of the client's
    /// request head: written into the upstream's head, not copied before).
    public var pathAndQuery: ArraySlice<UInt8>
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

    @inlinable
    public init(method: Method, methodName: String, pathAndQuery: [UInt8], headerLines: [UInt8], firstLine: [UInt8] = [],
                body: [UInt8]?) {
        self.init(method: method, methodName: methodName, pathAndQuery: pathAndQuery[...], headerLines: headerLines,
                  firstLine: firstLine, body: body)
    }

    /// `alsoResendable`: re-sendable whatever the method (a V2 request with
    /// an `Idempotency-Key`).
    @inlinable
    public init(method: Method, methodName: String, pathAndQuery: ArraySlice<UInt8>, headerLines: [UInt8],
                firstLine: [UInt8] = [], body: [UInt8]?, alsoResendable: Bool = false) {
        self.resendable = alsoResendable || method == .get || method == .head || method == .options
        self.method = method
        self.methodName = methodName
        self.pathAndQuery = pathAndQuery
        self.headerLines = headerLines
        self.firstLine = firstLine
        self.body = body
    }

}
