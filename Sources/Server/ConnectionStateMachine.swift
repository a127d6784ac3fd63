import EventLoops
import HTTP1

/// The protocol of one server connection, without its socket: which phase it
/// is in, what each phase waits for and until when, and what the connection
/// must do next. Every event is a `mutating func` returning an `Action`; the
/// `Connection` performs the actions (syscalls, handler calls) and reports
/// their outcome as further events. Times are monotonic nanoseconds passed
/// in, so tests drive it with scripted bytes and a manual clock.
///
/// It owns the receive buffer and the pending output, because deciding what
/// to do depends on both (a buffered pipelined request, unsent answer bytes).
struct ConnectionStateMachine {
    /// The timeouts, in nanoseconds.
    struct Timeouts {
        var head: UInt64
        /// Without a byte of the request body.
        var body: UInt64
        /// For the whole request body, from its head.
        var bodyTotal: UInt64
        var idle: Nanoseconds
        /// Without progress writing an answer.
        var write: UInt64
        /// For the peer to close after our answer and half-close.
        var linger: UInt64

        init(head: Nanoseconds, body: Nanoseconds, bodyTotal: Nanoseconds, idle: Nanoseconds, write: Nanoseconds, linger: Nanoseconds) {
            self.head = head
            self.body = body
            self.bodyTotal = bodyTotal
            self.idle = idle
            self.write = write
            self.linger = linger
        }

        init(_ configuration: Server.Configuration) {
            self.init(
                head: configuration.headTimeout, body: configuration.bodyTimeout,
                bodyTotal: configuration.bodyTotalTimeout, idle: configuration.idleTimeout,
                write: configuration.writeTimeout, linger: .seconds(2))
        }
    }

    /// How far a request body has come.
    enum BodyProgress {
        case length(remaining: Int)
        case chunked(ChunkedDecoder)
    }

    struct BodyRead {
        var head: RequestHead
        var progress: BodyProgress
        var bytes: [UInt8]
        /// The next byte is due by then, and the whole body by `totalDeadline`:
        /// a byte every few seconds does not hold a connection.
        var deadline: Nanoseconds
        let totalDeadline: Nanoseconds
    }

    enum StreamPhase {
        /// The source delivers as it can.
        case flowing(any ResponseBodySource)
        /// The client is `streamHighWater` bytes behind: the source waits for `resume`.
        case paused(any ResponseBodySource)
        /// The source is done; what is queued still goes out.
        case ended
    }

    struct Stream {
        var phase: StreamPhase
        var chunked: Bool
        var closeAfter: Bool
        /// While output is pending: the client must read some of it by then.
        var writeDeadline: Nanoseconds
    }

    enum State {
        /// Between requests (or before the first), no byte of the next head yet.
        case idle(closeAt: Nanoseconds)
        case readingHead(deadline: Nanoseconds)
        /// The head is complete; the handler decides whether to refuse it
        /// before its body is read.
        case screening(RequestHead)
        case readingBody(BodyRead)
        /// The handler has the request; the head stays for the answer's framing.
        case processing(RequestHead)
        /// A whole answer is being written.
        case writing(closeAfter: Bool, deadline: Nanoseconds)
        /// The head is out; the body is written as its source delivers it.
        case streaming(Stream)
        /// Answer sent, write side shut; reading until the peer closes.
        case lingering(closeAt: Nanoseconds)
        case closed
        /// Only while a payload is changed in place: the state must not hold
        /// a second reference to a buffer being appended to (copy on write).
        case modifying
    }

    /// What the connection must do next.
    enum Action {
        /// Read more bytes when the socket has them, then `processInput`.
        case readMore
        /// Nothing until the next event (the handler, the socket, the clock).
        case wait
        /// Ask the handler's `screen`, then report with `screened`.
        case screen(RequestHead)
        /// Hand the request to the handler.
        case dispatch(RequestHead, body: [UInt8], sequence: UInt64)
        /// Answer on the server's own account, then report with `respondOnItsOwn`.
        case sendError(ServerError, head: RequestHead?)
        /// Send `pendingOutput`, then report `wrote` or `writeBlocked`.
        case write
        /// Shut the write side; read and discard until the peer closes.
        case linger
        /// An answer is out and the connection stays: a pipelined request may
        /// wait in the buffer or on the socket.
        case awaitNextRequest
        /// The client caught up with a paused stream.
        case resumeSource(any ResponseBodySource)
        case close
        /// Close with a TCP reset.
        case reset
    }

    /// The pending answer bytes: a head (or the 100 Continue line) and a body,
    /// sent together with one vectored write.
    struct Output {
        var head: [UInt8] = []
        var body: [UInt8] = []
        var offset = 0

        var isPending: Bool { offset < head.count + body.count }
        var pendingCount: Int { head.count + body.count - offset }
    }

    static let initialBufferSize = 4096
    /// Body bytes waiting for the client beyond which a streaming source is
    /// asked to wait: what bounds memory when a client reads slowly.
    static let streamHighWater = 256 * 1024

    private(set) var state: State
    private(set) var input: InputBuffer
    private(set) var output = Output()
    /// The head's progress lives outside the state: the parser resumes its
    /// scan over the buffer and is reset, not rebuilt, for each request.
    private var parser: HeadParser
    private let limits: Limits
    private let timeouts: Timeouts
    /// The request the handler has or last had; a `Responder` holding
    /// another is stale.
    private(set) var sequence: UInt64 = 0
    /// The peer sent FIN: answer what is in progress, then close.
    private(set) var peerHasClosed = false

    init(limits: Limits, timeouts: Timeouts, now: Nanoseconds) {
        self.limits = limits
        self.timeouts = timeouts
        self.parser = HeadParser(limits: limits)
        self.input = InputBuffer(capacity: Self.initialBufferSize)
        // A new connection has the head timeout for its first byte.
        self.state = .idle(closeAt: now &+ timeouts.head)
    }

    var isClosed: Bool {
        if case .closed = state { return true }
        return false
    }

    var isStreaming: Bool {
        if case .streaming = state { return true }
        return false
    }

    var hasPendingOutput: Bool { output.isPending }

    // MARK: - Reading

    /// A connection accepted as shutdown began gets a 503 and a lingering
    /// close: a bare close with a request unread would make the kernel reset it.
    mutating func started(shuttingDown: Bool) -> Action {
        shuttingDown ? .sendError(.shuttingDown, head: nil) : .wait
    }

    /// Reads into the buffer's free space with `fill`, which returns what
    /// `read(2)` returns. Nil when no room is left (only while reading a head
    /// the parser will refuse).
    mutating func read(now: UInt64, _ fill: (UnsafeMutableRawBufferPointer) -> Int) -> Int? {
        let limit = max(limits.maxHeadBytes + 4096, Self.initialBufferSize)
        guard input.reserveSpace(minimum: 1024, limit: limit) else { return nil }
        let n = input.withFreeSpace(fill)
        if n > 0 { bytesArrived(now: now) }
        return n
    }

    private mutating func bytesArrived(now: Nanoseconds) {
        switch state {
        case .idle:
            state = .readingHead(deadline: now &+ timeouts.head)
        case .readingBody(var body):
            state = .modifying
            body.deadline = min(now &+ timeouts.body, body.totalDeadline)
            state = .readingBody(body)
        default:
            break
        }
    }

    /// Works through the buffered bytes as far as the current phase allows.
    mutating func processInput(now: Nanoseconds, shuttingDown: Bool) -> Action {
        switch state {
        case .idle, .readingHead:
            if input.isEmpty { return .readMore }
            if case .idle = state { state = .readingHead(deadline: now &+ timeouts.head) }
            let outcome = input.withReadable { parser.parse($0) }
            switch outcome {
            case .incomplete:
                return .readMore
            case .failure(let error):
                return .sendError(.malformed(error), head: nil)
            case .complete(let head, let consumed):
                input.consume(consumed)
                if shuttingDown { return .sendError(.shuttingDown, head: head) }
                if case .contentLength(let length) = head.framing, length > limits.maxBodyBytes {
                    return .sendError(.malformed(.bodyTooLarge), head: head)
                }
                state = .screening(head)
                return .screen(head)
            }
        case .readingBody:
            return readBody()
        case .lingering:
            input.consume(input.readableCount)
            return .readMore
        case .screening, .processing, .writing, .streaming, .closed, .modifying:
            return .wait
        }
    }

    /// The handler's verdict on the head: `refusal` is answered at once.
    mutating func screened(_ refusal: Response?, now: Nanoseconds, shuttingDown: Bool) -> Action {
        guard case .screening(let head) = state else { return .wait }
        if let refusal {
            // The body, if any, stays unread: the connection cannot be reused;
            // nor after a request for another host. A refused path (400) or
            // client token (401) or call (403) leaves it open, as SPEC says.
            let forceClose = head.framing != .none || refusal.status == 405
            startResponse(refusal, head: head, forceClose: forceClose, shuttingDown: shuttingDown, now: now)
            return .write
        }
        let progress: BodyProgress
        var bytes: [UInt8] = []
        switch head.framing {
        case .none:
            return dispatch(head, body: bytes)
        case .contentLength(let length):
            // The usual request: its whole body came with its head. Taken in
            // one copy of the right size, without the body-reading state.
            if input.readableCount >= length {
                let body = input.withReadable { bytesCopied(UnsafeRawBufferPointer(rebasing: $0[0..<length])) }
                input.consume(length)
                return dispatch(head, body: body)
            }
            progress = .length(remaining: length)
            bytes.reserveCapacity(length)
        case .chunked:
            progress = .chunked(ChunkedDecoder(limits: limits))
        }
        let total = now &+ timeouts.bodyTotal
        state = .readingBody(
            BodyRead(
                head: head, progress: progress, bytes: bytes, deadline: min(now &+ timeouts.body, total),
                totalDeadline: total))
        if head.expectContinue && input.isEmpty {
            output.head.append(contentsOf: ResponseSerializer.continueLine)
            return .write  // then `processInput` again, for the body
        }
        return readBody()
    }

    private mutating func readBody() -> Action {
        guard case .readingBody(var body) = state else { return .wait }
        state = .modifying
        switch body.progress {
        case .chunked(var decoder):
            let outcome = input.withReadable { decoder.decode($0, into: &body.bytes) }
            body.progress = .chunked(decoder)
            switch outcome {
            case .needMore(let consumed):
                input.consume(consumed)
                state = .readingBody(body)
                return .readMore
            case .done(let consumed):
                input.consume(consumed)
                return dispatch(body.head, body: body.bytes)
            case .failure(let error):
                state = .readingBody(body)
                return .sendError(.malformed(error), head: body.head)
            }
        case .length(let remaining):
            let take = min(remaining, input.readableCount)
            if take > 0 {
                input.withReadable { body.bytes.append(contentsOf: UnsafeRawBufferPointer(rebasing: $0[0..<take])) }
                input.consume(take)
            }
            if remaining == take { return dispatch(body.head, body: body.bytes) }
            body.progress = .length(remaining: remaining - take)
            state = .readingBody(body)
            return .readMore
        }
    }

    private mutating func dispatch(_ head: RequestHead, body: [UInt8]) -> Action {
        sequence &+= 1
        state = .processing(head)
        return .dispatch(head, body: body, sequence: sequence)
    }

    /// The peer sent FIN (a read returned 0): what is being answered still
    /// is; a connection waiting for a request or its body closes.
    mutating func peerClosed() -> Action {
        peerHasClosed = true
        switch state {
        case .screening, .processing, .writing, .streaming, .modifying:
            return .wait
        case .idle, .readingHead, .readingBody, .lingering, .closed:
            return .close
        }
    }

    // MARK: - Answers

    /// The handler's answer to request `sequence`; nil when that request is
    /// not the one waiting (the connection moved on or closed).
    mutating func respond(_ response: Response, sequence: UInt64, now: UInt64, shuttingDown: Bool) -> Action? {
        guard case .processing(let head) = state, sequence == self.sequence else { return nil }
        startResponse(response, head: head, forceClose: false, shuttingDown: shuttingDown, now: now)
        return .write
    }

    /// A streamed answer: its head and the body bytes at hand now; the rest
    /// through `appendStreamed`. Afterwards `isStreaming` tells whether the
    /// body is wanted at all (not after a HEAD request, or for a 304).
    mutating func respond(
        _ response: Response, streamingFrom source: any ResponseBodySource, sequence: UInt64, now: UInt64,
        shuttingDown: Bool
    ) -> Action? {
        guard case .processing(let head) = state, sequence == self.sequence else { return nil }
        startResponse(response, head: head, forceClose: false, shuttingDown: shuttingDown, now: now, source: source)
        return .write
    }

    /// The server's own answer to `sendError`; the connection closes after it.
    mutating func respondOnItsOwn(_ response: Response, head: RequestHead?, now: Nanoseconds) -> Action {
        startResponse(response, head: head, forceClose: true, shuttingDown: true, now: now)
        return .write
    }

    /// Bytes that are not an HTTP answer, then a close (fault injection).
    mutating func respondRaw(_ bytes: [UInt8], sequence: UInt64, now: UInt64) -> Action {
        guard case .processing = state, sequence == self.sequence else { return .wait }
        output = Output(head: bytes, body: [], offset: 0)
        state = .writing(closeAfter: true, deadline: now &+ timeouts.write)
        return .write
    }

    /// Drops the connection without an answer (fault injection).
    mutating func abort(sequence: UInt64) -> Action {
        guard case .processing = state, sequence == self.sequence else { return .wait }
        return .reset
    }

    private mutating func startResponse(
        _ response: Response, head: RequestHead?, forceClose: Bool, shuttingDown: Bool, now: Nanoseconds,
        source: (any ResponseBodySource)? = nil
    ) {
        let keepAlive = !forceClose && (head?.keepAlive ?? false) && !shuttingDown && !peerHasClosed
        if !output.isPending {
            output.head.removeAll(keepingCapacity: true)
            output.offset = 0
        }
        // Else a 100 Continue is still unsent: the head goes after it.
        let written = ResponseSerializer.writeHead(
            response, requestMethod: head?.method ?? .get, keepAlive: keepAlive,
            http10Client: head?.minorVersion == 0, into: &output.head)
        let deadline = now &+ timeouts.write
        if response.streamed && written.sendsBody, let source {
            if written.chunked && !response.body.isEmpty {
                output.body = []
                ResponseSerializer.appendChunkSize(response.body.count, to: &output.body)
                output.body.append(contentsOf: response.body)
                output.body.append(ASCII.cr)
                output.body.append(ASCII.lf)
            } else {
                output.body = response.body
            }
            state = .streaming(
                Stream(phase: .flowing(source), chunked: written.chunked, closeAfter: written.closes, writeDeadline: deadline))
        } else {
            output.body = written.sendsBody ? response.body : []
            state = .writing(closeAfter: written.closes, deadline: deadline)
        }
    }

    /// More of a streamed body. False when it is not wanted (the stream
    /// ended, or the connection moved on or closed).
    mutating func appendStreamed(_ bytes: UnsafeRawBufferPointer, sequence: UInt64, now: UInt64) -> Bool {
        guard case .streaming(var stream) = state, sequence == self.sequence else { return false }
        if case .ended = stream.phase { return false }
        if bytes.isEmpty { return true }
        if !output.isPending {
            stream.writeDeadline = now &+ timeouts.write
            state = .streaming(stream)
        }
        if stream.chunked {
            ResponseSerializer.appendChunkSize(bytes.count, to: &output.body)
            output.body.append(contentsOf: bytes)
            output.body.append(ASCII.cr)
            output.body.append(ASCII.lf)
        } else {
            output.body.append(contentsOf: bytes)
        }
        return true
    }

    /// After a streamed write was sent as far as the socket took it: whether
    /// the source may go on. Past `streamHighWater` unsent bytes the stream
    /// pauses until the output drains.
    mutating func streamHasRoom() -> Bool {
        guard case .streaming(var stream) = state, case .flowing(let source) = stream.phase else { return false }
        if output.pendingCount >= Self.streamHighWater {
            stream.phase = .paused(source)
            state = .streaming(stream)
            return false
        }
        return true
    }

    /// The streamed body is complete.
    mutating func endStream(sequence: UInt64, now: UInt64) -> Action {
        guard case .streaming(var stream) = state, sequence == self.sequence else { return .wait }
        if case .ended = stream.phase { return .wait }
        stream.phase = .ended
        state = .streaming(stream)
        if stream.chunked { output.body.append(contentsOf: ResponseSerializer.lastChunk) }
        return output.isPending ? .write : outputDrained(now: now)
    }

    /// The streamed body cannot be completed: the client sees the connection
    /// end before the body does. The source is not cancelled; it gave up.
    mutating func abortStream(sequence: UInt64) -> Action {
        guard case .streaming(var stream) = state, sequence == self.sequence else { return .wait }
        stream.phase = .ended
        state = .streaming(stream)
        return .close
    }

    // MARK: - Writing

    /// The pending output, as the unsent part of the head and the body (either may be empty).
    /// Mutating though it changes nothing: called on the connection's stored
    /// machine, a non-mutating call with a closure copied the whole machine.
    mutating func withPendingOutput<R>(_ body: (UnsafeRawBufferPointer, UnsafeRawBufferPointer) -> R) -> R {
        output.head.withUnsafeBytes { head in
            output.body.withUnsafeBytes { bodyBytes in
                let offset = output.offset
                if offset < head.count {
                    return body(UnsafeRawBufferPointer(rebasing: head[offset...]), bodyBytes)
                }
                return body(
                    UnsafeRawBufferPointer(start: nil, count: 0),
                    UnsafeRawBufferPointer(rebasing: bodyBytes[(offset - head.count)...]))
            }
        }
    }

    /// `count` bytes of the pending output went out.
    mutating func wrote(_ count: Int, now: UInt64) -> Action {
        output.offset += count
        // The write timeout counts from the last progress.
        switch state {
        case .writing(let closeAfter, _):
            state = .writing(closeAfter: closeAfter, deadline: now &+ timeouts.write)
        case .streaming(var stream):
            stream.writeDeadline = now &+ timeouts.write
            state = .streaming(stream)
        default:
            break
        }
        return output.isPending ? .write : outputDrained(now: now)
    }

    /// The socket takes no more for now; it will say when it does. The body
    /// of a request is read meanwhile (its 100 Continue may be what waits).
    func writeBlocked() -> Action {
        if case .readingBody = state { return .readMore }
        return .wait
    }

    private mutating func outputDrained(now: Nanoseconds) -> Action {
        output.head.removeAll(keepingCapacity: true)
        output.offset = 0
        switch state {
        case .readingBody:
            output.body.removeAll()
            return .readMore
        case .writing(let closeAfter, _):
            return answerDone(closeAfter: closeAfter, now: now)
        case .streaming(var stream):
            output.body.removeAll(keepingCapacity: true)
            switch stream.phase {
            case .ended:
                return answerDone(closeAfter: stream.closeAfter, now: now)
            case .paused(let source):
                stream.phase = .flowing(source)
                state = .streaming(stream)
                return .resumeSource(source)
            case .flowing:
                return .wait
            }
        default:
            output.body.removeAll()
            return .wait
        }
    }

    private mutating func answerDone(closeAfter: Bool, now: Nanoseconds) -> Action {
        output.body = []  // a streamed answer's buffer is not kept while idle
        if closeAfter {
            // Half-close and drain, so that unread request bytes do not make
            // the kernel reset the connection before the client has read the answer.
            state = .lingering(closeAt: now &+ timeouts.linger)
            input.consume(input.readableCount)
            return .linger
        }
        state = .idle(closeAt: now &+ timeouts.idle)
        parser.reset()
        input.shrinkIfIdle(to: Self.initialBufferSize)
        return .awaitNextRequest
    }

    // MARK: - Time, shutdown, close

    /// The clock says `now`: whatever phase is overdue ends.
    func deadlineReached(now: Nanoseconds) -> Action {
        switch state {
        case .idle(let closeAt), .lingering(let closeAt):
            return now >= closeAt ? .close : .wait
        case .readingHead(let deadline):
            guard now >= deadline else { return .wait }
            return input.isEmpty ? .close : .sendError(.headerTimeout, head: nil)
        case .readingBody(let body):
            return now >= body.deadline ? .sendError(.bodyTimeout, head: body.head) : .wait
        case .writing(_, let deadline):
            return now >= deadline ? .close : .wait
        case .streaming(let stream):
            // With nothing pending it waits for the source, not the client.
            return output.isPending && now >= stream.writeDeadline ? .close : .wait
        case .screening, .processing, .closed, .modifying:
            return .wait
        }
    }

    /// During shutdown: idle connections go now, busy ones after their answer.
    func shutdownRequested() -> Action {
        switch state {
        case .idle: return .close
        case .readingHead where input.isEmpty: return .close
        default: return .wait
        }
    }

    /// The connection is closed. Returns the stream source to cancel, if any.
    mutating func closed() -> (any ResponseBodySource)? {
        var source: (any ResponseBodySource)?
        if case .streaming(let stream) = state {
            switch stream.phase {
            case .flowing(let s), .paused(let s): source = s
            case .ended: break
            }
        }
        state = .closed
        output = Output()
        return source
    }
}
