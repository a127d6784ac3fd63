/// Where a streamed answer's body goes, on the client's loop.
public protocol UpstreamBodySink: AnyObject {
    /// Takes `bytes` (all of them); false when it wants no more until
    /// `UpstreamBodyStream.resume` is called.
    func body(_ bytes: UnsafeRawBufferPointer) -> Bool
    /// The body is complete.
    func end()
    /// The answer broke off (timeout, reset, malformed chunk, too large).
    func failed(_ error: UpstreamError)
}

/// The rest of an answer too large to hold: given with its head to the
/// caller of `UpstreamClient.send`, which must `start` it (or `cancel` it)
/// before returning. Confined to the client's loop.
public final class UpstreamBodyStream: @unchecked Sendable {
    private unowned let client: UpstreamClient
    private weak var exchange: UpstreamExchange?

    init(client: UpstreamClient, exchange: UpstreamExchange) {
        self.client = client
        self.exchange = exchange
    }

    /// The body from here on goes to `sink`.
    public func start(_ sink: UpstreamBodySink) {
        if let exchange { client.start(exchange, sink: sink) }
    }

    /// The sink has room again.
    public func resume() {
        if let exchange { client.resume(exchange) }
    }

    /// The body is not wanted: the upstream connection is closed.
    public func cancel() {
        if let exchange { client.cancel(exchange) }
    }
}
