/// A request on its way and its answer coming back: what the client keeps
/// of one exchange. Its protocol state is `machine`; the rest is who waits
/// for the outcome and where it runs.
final class UpstreamExchange {
    /// Request line and fields, serialized once; `body` follows, unless it
    /// was appended here (`bodyInHead`).
    let head: [UInt8]
    /// The request's body to send after `head`: nil when there is none or
    /// it is in `head`. (Only the bytes are kept, not the request.)
    let body: [UInt8]?
    /// A small body on a TLS connection rides in `head`: one TLS record for
    /// the whole request instead of two.
    let bodyInHead: Bool
    var machine: ExchangeStateMachine
    var completion: ((Result<UpstreamResponse, UpstreamError>) -> Void)?
    var connection: UpstreamConnection?
    /// Position in the client's list of running exchanges.
    var slot = -1
    /// Where a streamed body goes, once the caller has started the stream.
    var sink: UpstreamBodySink?

    init(request: UpstreamRequest, head: [UInt8], bodyInHead: Bool, machine: ExchangeStateMachine,
         completion: @escaping (Result<UpstreamResponse, UpstreamError>) -> Void) {
        self.head = head
        let body = bodyInHead ? nil : request.body
        self.body = body?.isEmpty == true ? nil : body
        self.bodyInHead = bodyInHead
        self.machine = machine
        self.completion = completion
    }

    /// The request's bytes: the head, then the body unless it is in the head.
    static func totalBytes(head: [UInt8], bodyInHead: Bool, request: UpstreamRequest) -> Int {
        head.count + (bodyInHead ? 0 : request.body?.count ?? 0)
    }
}
