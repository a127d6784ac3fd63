import EventLoops
import HTTP1

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
