#if canImport(Glibc)
import Glibc
#endif
import CSystem
import EventLoops
import HTTP1

/// One client connection: reads requests, hands them to the handler one at a
/// time (pipelined requests wait in the buffer, so answers go out in order),
/// writes the answers, and enforces the timeouts of each phase.
///
/// `@unchecked Sendable`: confined to `loop`; `Responder` hops there first.
final class Connection: EventHandler, @unchecked Sendable {
    enum State {
        /// Between requests; no byte of the next head yet.
        case idle
        case readingHead
        case readingBody
        /// The handler has the request.
        case processing
        case writing
        /// The head is out; the body is written as its source delivers it.
        case streaming
        /// Answer sent, write side shut; reading until the peer closes.
        case lingering
        case closed
    }

    private enum Deadline {
        case none, idle, head, body, write, linger
    }

    let fd: Int32
    let loop: EventLoop
    let server: Server
    let clientAddress: String
    private var input: InputBuffer
    private var parser: HeadParser
    private(set) var state: State = .idle
    private var head: RequestHead?
    private var body: [UInt8] = []
    private var bodyRemaining = 0
    private var chunkedDecoder: ChunkedDecoder?
    private var sequence: UInt64 = 0
    private var readable = false
    private var peerClosed = false
    private var deadline: UInt64 = 0
    /// When the whole request body must be in, whatever its progress.
    private var bodyDeadline: UInt64 = 0
    private var deadlineKind: Deadline = .none
    private var outHead: [UInt8] = []
    private var outBody: [UInt8] = []
    private var outOffset = 0
    private var closeAfterWrite = false
    /// While streaming: where the body comes from, how it is framed, and
    /// whether the source waits for room.
    private var bodySource: ResponseBodySource?
    private var streamChunked = false
    private var streamEnded = false
    private var sourcePaused = false

    private static let initialBufferSize = 4096
    /// Body bytes waiting for the client beyond which a streaming source is
    /// asked to wait: what bounds memory when a client reads slowly.
    static let streamHighWater = 256 * 1024

    init(fd: Int32, loop: EventLoop, server: Server, clientAddress: String) {
        self.fd = fd
        self.loop = loop
        self.server = server
        self.clientAddress = clientAddress
        self.input = InputBuffer(capacity: Self.initialBufferSize)
        self.parser = HeadParser(limits: server.configuration.limits)
    }

    func start() {
        loop.assertInLoop()
        do {
            try loop.register(
                fd, events: EventLoop.readable | EventLoop.writable | EventLoop.hangup | EventLoop.edgeTriggered,
                handler: self)
        } catch {
            Glibc.close(fd)
            server.connectionClosed()
            state = .closed
            return
        }
        setDeadline(.head, seconds: server.configuration.headTimeout)
        if server.isShuttingDown {
            // Accepted as shutdown began: a 503 and a lingering close. A bare
            // close with a request unread would make the kernel reset it.
            sendServerError(.shuttingDown, head: nil)
        }
    }

    // MARK: - Events

    func handleEvent(_ events: UInt32) {
        if state == .closed { return }
        if events & EventLoop.error != 0 {
            close()
            return
        }
        if events & (EventLoop.readable | EventLoop.hangup) != 0 { readable = true }
        if events & EventLoop.writable != 0 && hasPendingOutput {
            flush()
            if state == .closed { return }
        }
        if readable { driveInput() }
    }

    private var hasPendingOutput: Bool { outOffset < outHead.count + outBody.count }

    private var wantsInput: Bool {
        switch state {
        case .idle, .readingHead, .readingBody, .lingering: return true
        case .processing, .writing, .streaming, .closed: return false
        }
    }

    /// Processes buffered bytes and reads more while the current phase wants them.
    private func driveInput() {
        while state != .closed {
            if !processBuffered() { return }
            guard readable, !peerClosed else {
                if peerClosed { peerHasClosed() }
                return
            }
            let limit = max(server.configuration.limits.maxHeadBytes + 4096, Self.initialBufferSize)
            guard input.reserveSpace(minimum: 1024, limit: limit) else {
                // Only reachable while reading a head that the parser will refuse.
                return
            }
            var readError: Int32 = 0
            var freeSpace = 0
            let n = input.withFreeSpace { free -> Int in
                freeSpace = free.count
                let r = read(fd, free.baseAddress, free.count)
                if r < 0 { readError = errno }
                return r
            }
            if n > 0 {
                // A short read drained the socket: with edge triggering, the next
                // arrival raises a new event.
                if n < freeSpace { readable = false }
                if state == .idle {
                    state = .readingHead
                    setDeadline(.head, seconds: server.configuration.headTimeout)
                }
                if state == .readingBody { armBodyDeadline() }
            } else if n == 0 {
                peerClosed = true
                readable = false
            } else if readError == EAGAIN || readError == EWOULDBLOCK {
                readable = false
                return
            } else if readError != EINTR {
                close()
                return
            }
        }
    }

    /// - Returns: whether more input is wanted now.
    private func processBuffered() -> Bool {
        switch state {
        case .idle, .readingHead:
            if input.isEmpty { return true }
            if state == .idle {
                state = .readingHead
                setDeadline(.head, seconds: server.configuration.headTimeout)
            }
            let outcome = input.withReadable { parser.parse($0) }
            switch outcome {
            case .incomplete:
                return true
            case .failure(let error):
                sendServerError(.malformed(error), head: nil)
                return false
            case .complete(let parsed, let consumed):
                input.consume(consumed)
                return headComplete(parsed)
            }
        case .readingBody:
            return readBody()
        case .lingering:
            input.consume(input.readableCount)
            return true
        case .processing, .writing, .streaming, .closed:
            return false
        }
    }

    private func headComplete(_ parsed: RequestHead) -> Bool {
        head = parsed
        let limits = server.configuration.limits
        if server.isShuttingDown {
            sendServerError(.shuttingDown, head: parsed)
            return false
        }
        if case .contentLength(let length) = parsed.framing, length > limits.maxBodyBytes {
            sendServerError(.malformed(.bodyTooLarge), head: parsed)
            return false
        }
        if let refusal = server.handler.screen(parsed, clientAddress: clientAddress, loop: loop) {
            // The body, if any, stays unread: the connection cannot be reused;
            // nor after a request for another host. A refused path (400) or
            // client token (401) or call (403) leaves it open, as SPEC says.
            startResponse(refusal, forceClose: parsed.framing != .none || refusal.status == 405)
            return false
        }
        switch parsed.framing {
        case .none:
            dispatch()
            return false
        case .contentLength(let length):
            bodyRemaining = length
            body = []
            body.reserveCapacity(length)
        case .chunked:
            chunkedDecoder = ChunkedDecoder(limits: limits)
            body = []
        }
        state = .readingBody
        bodyDeadline = MonotonicClock.now() &+ UInt64(server.configuration.bodyTotalTimeout * 1_000_000_000)
        armBodyDeadline()
        if parsed.expectContinue && input.isEmpty {
            outHead.append(contentsOf: ResponseSerializer.continueLine)
            flush()
        }
        return state == .readingBody && readBody()
    }

    /// - Returns: whether more input is wanted.
    private func readBody() -> Bool {
        if var decoder = chunkedDecoder {
            let outcome = input.withReadable { decoder.decode($0, into: &body) }
            chunkedDecoder = decoder
            switch outcome {
            case .needMore(let consumed):
                input.consume(consumed)
                return true
            case .done(let consumed):
                input.consume(consumed)
                chunkedDecoder = nil
                dispatch()
                return false
            case .failure(let error):
                sendServerError(.malformed(error), head: head)
                return false
            }
        }
        let take = min(bodyRemaining, input.readableCount)
        if take > 0 {
            input.withReadable { body.append(contentsOf: UnsafeRawBufferPointer(rebasing: $0[0..<take])) }
            input.consume(take)
            bodyRemaining -= take
        }
        if bodyRemaining == 0 {
            dispatch()
            return false
        }
        return true
    }

    private func dispatch() {
        guard let head else { return }
        state = .processing
        deadlineKind = .none
        sequence &+= 1
        let request = Request(
            head: head, body: body, clientAddress: clientAddress, receivedAt: loop.now, loop: loop)
        body = []
        server.handler.handle(request, responder: Responder(connection: self, sequence: sequence))
    }

    // MARK: - Answers

    func respond(_ response: Response, sequence: UInt64) {
        loop.assertInLoop()
        guard state == .processing, sequence == self.sequence else { return }
        startResponse(response, forceClose: false)
    }

    /// Starts a streamed answer (`response.streamed`): the head and the body
    /// bytes at hand now, the rest through `write(streamed:)`.
    func respond(_ response: Response, streamingFrom source: ResponseBodySource, sequence: UInt64) -> Bool {
        loop.assertInLoop()
        guard state == .processing, sequence == self.sequence else { return false }
        bodySource = source
        startResponse(response, forceClose: false)
        return state == .streaming
    }

    /// More of a streamed body. False when the client is this far behind
    /// (the source then waits for `resume`), or gone.
    func write(streamed bytes: UnsafeRawBufferPointer, sequence: UInt64) -> Bool {
        guard state == .streaming, sequence == self.sequence, !streamEnded else { return false }
        if bytes.isEmpty { return true }
        if streamChunked {
            ResponseSerializer.appendChunkSize(bytes.count, to: &outBody)
            outBody.append(contentsOf: bytes)
            outBody.append(ASCII.cr)
            outBody.append(ASCII.lf)
        } else {
            outBody.append(contentsOf: bytes)
        }
        flush()
        guard state == .streaming else { return false }
        if outHead.count + outBody.count - outOffset >= Self.streamHighWater {
            sourcePaused = true
            return false
        }
        return true
    }

    /// The streamed body is complete.
    func endStream(sequence: UInt64) {
        guard state == .streaming, sequence == self.sequence, !streamEnded else { return }
        streamEnded = true
        bodySource = nil
        if streamChunked { outBody.append(contentsOf: ResponseSerializer.lastChunk) }
        flush()
    }

    /// The streamed body cannot be completed (its source failed): the client
    /// sees the connection end before the body does.
    func abortStream(sequence: UInt64) {
        guard state == .streaming, sequence == self.sequence else { return }
        bodySource = nil
        close()
    }

    func abort(sequence: UInt64) {
        guard state == .processing, sequence == self.sequence else { return }
        var linger = Glibc.linger(l_onoff: 1, l_linger: 0)
        setsockopt(fd, SOL_SOCKET, SO_LINGER, &linger, socklen_t(MemoryLayout<Glibc.linger>.size))
        close()
    }

    func respondRaw(_ bytes: [UInt8], sequence: UInt64) {
        guard state == .processing, sequence == self.sequence else { return }
        closeAfterWrite = true
        outHead = bytes
        outBody = []
        outOffset = 0
        state = .writing
        flush()
    }

    private func sendServerError(_ error: ServerError, head: RequestHead?) {
        let response = server.handler.errorResponse(error, head: head)
        server.handler.didRespondOnItsOwn(error, status: response.status, head: head, clientAddress: clientAddress)
        startResponse(response, forceClose: true)
    }

    private func startResponse(_ response: Response, forceClose: Bool) {
        let keepAlive = !forceClose && (head?.keepAlive ?? false) && !server.isShuttingDown && !peerClosed
        if !hasPendingOutput {
            outHead.removeAll(keepingCapacity: true)
            outOffset = 0
        }
        let written = ResponseSerializer.writeHead(
            response, requestMethod: head?.method ?? .get, keepAlive: keepAlive,
            http10Client: head?.minorVersion == 0, into: &outHead)
        closeAfterWrite = written.closes
        if response.streamed && written.sendsBody && bodySource != nil {
            state = .streaming
            streamChunked = written.chunked
            streamEnded = false
            sourcePaused = false
            if written.chunked && !response.body.isEmpty {
                outBody = []
                ResponseSerializer.appendChunkSize(response.body.count, to: &outBody)
                outBody.append(contentsOf: response.body)
                outBody.append(ASCII.cr)
                outBody.append(ASCII.lf)
            } else {
                outBody = response.body
            }
        } else {
            // Nothing streams after this head (a HEAD request, or a status
            // without content): the source is told it is not wanted.
            if let source = bodySource {
                bodySource = nil
                source.cancel()
            }
            outBody = written.sendsBody ? response.body : []
            state = .writing
        }
        flush()
    }

    /// Writes pending output with one sendmsg of head and body.
    private func flush() {
        while hasPendingOutput {
            let headCount = outHead.count
            let written: Int = outHead.withUnsafeBytes { headBytes in
                outBody.withUnsafeBytes { bodyBytes in
                    var iov = (iovec(), iovec())
                    var count = 0
                    withUnsafeMutableBytes(of: &iov) { raw in
                        let vecs = raw.bindMemory(to: iovec.self)
                        if outOffset < headCount {
                            vecs[count] = iovec(
                                iov_base: UnsafeMutableRawPointer(mutating: headBytes.baseAddress! + outOffset),
                                iov_len: headCount - outOffset)
                            count += 1
                            if !bodyBytes.isEmpty {
                                vecs[count] = iovec(
                                    iov_base: UnsafeMutableRawPointer(mutating: bodyBytes.baseAddress!),
                                    iov_len: bodyBytes.count)
                                count += 1
                            }
                        } else {
                            let bodyOffset = outOffset - headCount
                            vecs[count] = iovec(
                                iov_base: UnsafeMutableRawPointer(mutating: bodyBytes.baseAddress! + bodyOffset),
                                iov_len: bodyBytes.count - bodyOffset)
                            count += 1
                        }
                    }
                    return withUnsafeMutableBytes(of: &iov) { raw -> Int in
                        var msg = msghdr()
                        msg.msg_iov = raw.baseAddress!.assumingMemoryBound(to: iovec.self)
                        msg.msg_iovlen = count
                        return sendmsg(fd, &msg, csystem_msg_nosignal)
                    }
                }
            }
            if written > 0 {
                outOffset += written
                if deadlineKind == .write { setDeadline(.write, seconds: server.configuration.writeTimeout) }
                continue
            }
            let code = errno
            if written < 0 && code == EINTR { continue }
            if written < 0 && (code == EAGAIN || code == EWOULDBLOCK) {
                setDeadline(.write, seconds: server.configuration.writeTimeout)
                return
            }
            close()
            return
        }
        outHead.removeAll(keepingCapacity: true)
        outBody.removeAll(keepingCapacity: state == .streaming)
        outOffset = 0
        if state == .streaming {
            if deadlineKind == .write { deadlineKind = .none }  // waiting for the source now, not the client
            if streamEnded {
                writeComplete()
            } else if sourcePaused {
                sourcePaused = false
                bodySource?.resume()
            }
            return
        }
        if state == .writing { writeComplete() }
        if state == .readingBody && deadlineKind == .write {
            armBodyDeadline()
        }
    }

    private func writeComplete() {
        head = nil
        outBody = []  // a streamed answer's buffer is not kept while idle
        if closeAfterWrite {
            startLingering()
            return
        }
        state = .idle
        parser.reset()
        input.shrinkIfIdle(to: Self.initialBufferSize)
        setDeadline(.idle, seconds: server.configuration.idleTimeout)
        if !input.isEmpty || readable || peerClosed {
            // Pipelined requests waiting in the buffer, or more on the socket.
            loop.schedule(at: 0) { [weak self] in self?.driveInput() }
        }
    }

    /// Half-close and drain, so that unread request bytes do not make the
    /// kernel reset the connection before the client has read the answer.
    private func startLingering() {
        state = .lingering
        shutdown(fd, csystem_shut_wr)
        setDeadline(.linger, seconds: 2)
        input.consume(input.readableCount)
        if peerClosed { close() } else if readable { driveInput() }
    }

    private func peerHasClosed() {
        switch state {
        case .processing, .writing, .streaming:
            break  // answer, then close
        default:
            close()
        }
    }

    // MARK: - Timeouts and closing

    /// A body must progress every `bodyTimeout` and be complete by
    /// `bodyDeadline`: a byte every few seconds does not hold a connection.
    private func armBodyDeadline() {
        setDeadline(.body, seconds: server.configuration.bodyTimeout)
        deadline = min(deadline, bodyDeadline)
    }

    private func setDeadline(_ kind: Deadline, seconds: Double) {
        deadlineKind = kind
        deadline = MonotonicClock.now() &+ UInt64(seconds * 1_000_000_000)
    }

    func checkDeadline(now: UInt64) {
        guard deadlineKind != .none, now >= deadline else { return }
        switch deadlineKind {
        case .head:
            if state == .readingHead && !input.isEmpty {
                sendServerError(.headerTimeout, head: nil)
            } else {
                close()
            }
        case .body:
            sendServerError(.bodyTimeout, head: head)
        case .none:
            break
        case .idle, .write, .linger:
            close()
        }
    }

    /// Closes at once: called on errors, timeouts and the end of a linger.
    func close() {
        guard state != .closed else { return }
        state = .closed
        deadlineKind = .none
        loop.unregister(fd, handler: self)
        Glibc.close(fd)
        outHead = []
        outBody = []
        server.connectionClosed()
        if let source = bodySource {
            bodySource = nil
            source.cancel()
        }
    }

    /// During shutdown: idle connections go now, busy ones after their answer.
    func closeIfIdle() {
        if state == .idle || (state == .readingHead && input.isEmpty) { close() }
    }
}
