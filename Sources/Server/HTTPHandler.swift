import EventLoops
import HTTP1

/// A complete request as the server hands it to its handler.
public struct Request: Sendable {
    public var head: RequestHead
    public var body: [UInt8]
    /// The peer's address, as text (for X-Forwarded-For and logs).
    public var clientAddress: String
    /// Monotonic time at which the head was complete.
    public var receivedAt: Nanoseconds
    public let loop: EventLoop
}

/// Failures the server detects before or instead of a handler.
public enum ServerError: Sendable, Equatable {
    case malformed(HTTPError)
    case headerTimeout
    /// The body did not arrive in time.
    case bodyTimeout
    case overloaded
    case shuttingDown
}

/// What the server knows nothing of: how to answer. Implemented by the proxy
/// and by the fake API.
public protocol HTTPHandler: AnyObject, Sendable {
    /// Called on the request's loop. The handler answers exactly once through
    /// `responder`, from any thread.
    func handle(_ request: Request, responder: Responder)

    /// A head is complete and its body not yet read: refuse it now (for
    /// example, before a 100 Continue) by returning a response, or nil to go on.
    /// Called on `loop`, the connection's.
    func screen(_ head: RequestHead, clientAddress: String, loop: EventLoop) -> Response?

    /// The answer the server sends on its own for `error`, given the head if
    /// one was parsed.
    func errorResponse(_ error: ServerError, head: RequestHead?) -> Response

    /// Told of an answer the server sent on its own (for logs and metrics).
    func didRespondOnItsOwn(_ error: ServerError, status: Int, head: RequestHead?, clientAddress: String)

    /// Something an operator should know that is not about one request
    /// (out of file descriptors, a failing accept).
    func serverNotice(_ message: String)
}

extension HTTPHandler {
    public func screen(_ head: RequestHead, clientAddress: String, loop: EventLoop) -> Response? { nil }
    public func didRespondOnItsOwn(_ error: ServerError, status: Int, head: RequestHead?, clientAddress: String) {}
}
