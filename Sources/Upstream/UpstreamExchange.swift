import HTTP1

/// A request on its way and its answer coming back.
final class UpstreamExchange {
    let request: UpstreamRequest
    /// Request line and fields, serialized once; the body follows from
    /// `request.body`, unless it was appended here (`bodyInHead`).
    let head: [UInt8]
    /// A small body on a TLS connection rides in `head`: one TLS record for
    /// the whole request instead of two.
    let bodyInHead: Bool
    /// When the sweep fails it: the answer's head is due by then, and once
    /// its body streams, each stretch of it (none while the client is behind).
    var deadline: UInt64
    var completion: ((Result<UpstreamResponse, UpstreamError>) -> Void)?
    var connection: UpstreamConnection?
    /// Position in the client's list of running exchanges.
    var slot = -1
    /// Already moved once to a fresh connection after a reused one failed.
    var retried = false

    // Progress, reset for a retry.
    var sent = 0
    var receivedAny = false
    /// The answer's bytes until its head is complete.
    var inbox: [UInt8] = []
    var answer: UpstreamResponse?
    var framing = Framing.none
    /// The connection cannot carry another request after this answer (the
    /// server said `close`, or sent bytes past the answer's end).
    var closeAfter = false
    /// Body bytes received so far (checked against the answer size limit).
    var bodyBytes = 0
    /// The head went to the caller; the body goes to `sink` as it comes.
    var streaming = false
    var sink: UpstreamBodySink?
    /// The sink is full: no reads until it asks for more.
    var paused = false

    enum Framing {
        case none
        case length(remaining: Int)
        case chunked(ChunkedDecoder)
        case untilClose
    }

    init(request: UpstreamRequest, head: [UInt8], bodyInHead: Bool = false, deadline: UInt64,
         completion: @escaping (Result<UpstreamResponse, UpstreamError>) -> Void) {
        self.request = request
        self.head = head
        self.bodyInHead = bodyInHead
        self.deadline = deadline
        self.completion = completion
    }

    var totalBytes: Int { head.count + (bodyInHead ? 0 : request.body?.count ?? 0) }

    func resetProgress() {
        sent = 0
        receivedAny = false
        inbox.removeAll(keepingCapacity: true)
        answer = nil
        framing = .none
        closeAfter = false
        bodyBytes = 0
    }
}
