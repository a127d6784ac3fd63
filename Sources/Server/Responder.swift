import EventLoops
import HTTP1

/// The way back to the client for one request. Safe to call from any thread;
/// it hops to the connection's loop.
public struct Responder: Sendable {
    let connection: Connection
    let sequence: UInt64

    public var loop: EventLoop { connection.loop }

    /// Drops the connection without an answer, with a TCP reset (fault injection).
    public func abort() {
        let connection = self.connection
        let sequence = self.sequence
        onLoop { connection.abort(sequence: sequence) }
    }

    /// Writes bytes that are not an HTTP answer, then closes (fault injection).
    public func respondRaw(_ bytes: [UInt8]) {
        let connection = self.connection
        let sequence = self.sequence
        onLoop { connection.respondRaw(bytes, sequence: sequence) }
    }

    private func onLoop(_ body: @escaping @Sendable () -> Void) {
        if connection.loop.inLoop { body() } else { connection.loop.execute(body) }
    }

    /// Answers with a streamed `response` (`response.streamed`): its head
    /// and the body bytes it holds now; the rest goes through the returned
    /// writer as it arrives. On the connection's loop only. Nil when the
    /// connection is gone; `source` is then never called.
    public func respond(_ response: Response, streamingFrom source: ResponseBodySource) -> ResponseBodyWriter? {
        connection.loop.assertInLoop()
        guard connection.respond(response, streamingFrom: source, sequence: sequence) else { return nil }
        return ResponseBodyWriter(connection: connection, sequence: sequence)
    }

    public func respond(_ response: Response) {
        if connection.loop.inLoop {
            connection.respond(response, sequence: sequence)
        } else {
            let connection = self.connection
            let sequence = self.sequence
            connection.loop.execute { connection.respond(response, sequence: sequence) }
        }
    }
}

/// Where a streamed body comes from (the upstream exchange). Called on the
/// connection's loop.
public protocol ResponseBodySource: AnyObject {
    /// The client has caught up: deliver more.
    func resume()
    /// The body is not wanted any more (the client went away, timed out, or
    /// the answer has no body after all): stop and release.
    func cancel()
}

/// The rest of a streamed body, written on the connection's loop. At most
/// `ConnectionStateMachine.streamHighWater` bytes wait for the client: `write` returns
/// false past that, and the source waits for `resume`.
public struct ResponseBodyWriter {
    let connection: Connection
    let sequence: UInt64

    /// Queues and sends `bytes`; false when the source should wait for
    /// `resume` (or stop: the connection is gone, and `cancel` came).
    public func write(_ bytes: UnsafeRawBufferPointer) -> Bool {
        connection.write(streamed: bytes, sequence: sequence)
    }

    /// The body is complete.
    public func finish() {
        connection.endStream(sequence: sequence)
    }

    /// The body cannot be completed: the connection is closed, so that the
    /// client sees the answer end early rather than wait.
    public func abort() {
        connection.abortStream(sequence: sequence)
    }
}
