import EventLoops
import HTTP1

/// One request to the upstream and its answer, as states and events: no
/// sockets, no clock of its own. The client feeds it what happened (bytes
/// written, bytes read, the connection ending, the time) and does what the
/// returned action says.
///
/// ```
///  writing(sent) ──wrote(n), all sent──► awaitingHead(inbox) ──bytesRead: head──► readingBody(answer, body)
///     ▲                                      │ malformed head: fail                  │ 64 KiB buffered: handOver
///     │ retry (resendable, reused,           │                                       ▼
///     │ nothing heard, not yet retried)      │                          streaming(body, paused)
///     └───────── connectionBroke / Closed ◄──┘                                       │
///  any state ──deadlineReached(now ≥ deadline) / cancelled / body ends / fails──► done
/// ```
struct ExchangeStateMachine {
    enum State {
        /// The request is going out; `sent` bytes of it so far.
        case writing(sent: Int)
        /// The request is out. `inbox`: the bytes of a head not complete yet
        /// (usually none: a head that arrives whole is parsed where it
        /// landed). `heardAny`: some byte of an answer arrived (an interim
        /// 1xx answer counts), so the request reached the server.
        case awaitingHead(inbox: [UInt8], heardAny: Bool)
        /// The head is read; the body is kept in `answer`.
        case readingBody(answer: UpstreamResponse, body: Body)
        /// The answer went to the caller with the body so far; the rest goes
        /// to its sink. `paused`: the sink is full, no reads until it asks.
        case streaming(body: Body, paused: Bool)
        /// Answered, failed, timed out or cancelled.
        case done
    }

    /// How the body ends, and how much of it came.
    struct Body {
        var framing: Framing
        /// Body bytes so far, against the size limit.
        var received = 0
        /// The connection cannot carry another request after this answer
        /// (the server said `close`, or sent bytes past the answer's end).
        var closeAfter: Bool
    }

    enum Framing {
        case length(remaining: Int)
        case chunked(ChunkedDecoder)
        case untilClose
    }

    enum WriteAction: Equatable {
        /// Write the request's bytes from this offset on.
        case writeMore(from: Int)
        /// All is written: wait for the answer (its arrival is a read event).
        case awaitAnswer
    }

    enum Action {
        /// Nothing to do but read on (or wait).
        case none
        /// The whole answer: the connection is parked when `reusable`, else closed.
        case deliver(UpstreamResponse, reusable: Bool)
        /// A large answer's head and body so far: the rest streams.
        case handOver(UpstreamResponse)
        /// Streamed body bytes for the sink: a range of the bytes read, or the
        /// caller's `decoded` buffer (chunked). Then read on, or the body ended.
        case forward(BodyPiece, then: AfterPiece)
        /// Close the connection and send the request again on a fresh one.
        case retry
        /// Close the connection; the exchange failed.
        case fail(UpstreamError)
    }

    enum BodyPiece: Equatable {
        case input(Range<Int>)
        case decoded
    }

    enum AfterPiece: Equatable {
        case readOn
        case end(reusable: Bool)
    }

    static let maxAnswerHeadBytes = 65536
    /// A body still coming once this much of it is buffered is streamed.
    static let streamThreshold = 65536

    private(set) var state: State = .writing(sent: 0)
    /// When `deadlineReached` fails it: the answer's head is due by then, and
    /// once its body streams, each stretch of it (none while the sink is full).
    private(set) var deadline: Nanoseconds
    /// Already moved once to a fresh connection after a reused one failed.
    private(set) var retried = false
    /// The connection it runs on carried an exchange before: the server may
    /// have closed it while it was idle.
    var onReusedConnection = false
    /// The server's `Keep-Alive: timeout=N`, once its answer's head said so.
    private(set) var keepAliveSeconds: Int?

    let totalBytes: Int
    let resendable: Bool
    /// An answer to HEAD has no body.
    let isHead: Bool
    let maxResponseBytes: Int
    let timeout: Nanoseconds

    init(totalBytes: Int, resendable: Bool, isHead: Bool, maxResponseBytes: Int, timeout: Nanoseconds, deadline: Nanoseconds) {
        self.totalBytes = totalBytes
        self.resendable = resendable
        self.isHead = isHead
        self.maxResponseBytes = maxResponseBytes
        self.timeout = timeout
        self.deadline = deadline
    }

    var isPaused: Bool {
        if case .streaming(_, paused: true) = state { return true }
        return false
    }

    var isStreaming: Bool {
        if case .streaming = state { return true }
        return false
    }

    /// Some byte of an answer arrived.
    var heardAny: Bool {
        switch state {
        case .writing: return false
        case .awaitingHead(_, let heardAny): return heardAny
        case .readingBody, .streaming, .done: return true
        }
    }

    /// The state, left `done` meanwhile: payloads move out unshared, so
    /// appending to them copies nothing. Every path puts a state back.
    private mutating func take() -> State {
        let current = state
        state = .done
        return current
    }

    // MARK: - Events

    mutating func wrote(_ n: Int) -> WriteAction {
        guard case .writing(let sent) = state else { return .awaitAnswer }
        if sent + n < totalBytes {
            state = .writing(sent: sent + n)
            return .writeMore(from: sent + n)
        }
        state = .awaitingHead(inbox: [], heardAny: false)
        return .awaitAnswer
    }

    /// Bytes of the answer. `decoded` is the caller's scratch buffer for a
    /// streamed chunked body.
    mutating func bytesRead(_ bytes: UnsafeRawBufferPointer, decoded: inout [UInt8]) -> Action {
        switch take() {
        case .awaitingHead(var inbox, _):
            if inbox.isEmpty {
                // Usually the whole head arrives in one read: parsed where it
                // landed, so the body is copied once, into the answer.
                if let action = readHead(bytes) { return action }
                inbox.append(contentsOf: bytes)
            } else {
                inbox.append(contentsOf: bytes)
                if let action = inbox.withUnsafeBytes({ readHead($0) }) { return action }
            }
            state = .awaitingHead(inbox: inbox, heardAny: true)
            return .none
        case .readingBody(var answer, var body):
            return readBody(bytes, &answer, &body)
        case .streaming(var body, let paused):
            return stream(bytes, &body, paused: paused, decoded: &decoded)
        case let other:
            state = other
            return .none
        }
    }

    /// The server closed the connection: the end of a close-delimited
    /// answer, or a broken exchange.
    mutating func connectionClosed() -> Action {
        switch take() {
        case .readingBody(let answer, let body):
            if case .untilClose = body.framing { return .deliver(answer, reusable: false) }
            state = .readingBody(answer: answer, body: body)
        case .streaming(let body, let paused):
            if case .untilClose = body.framing { return .forward(.input(0..<0), then: .end(reusable: false)) }
            state = .streaming(body: body, paused: paused)
        case let other:
            state = other
        }
        return connectionBroke(heardAny
            ? "the upstream closed the connection in the middle of its answer"
            : "the upstream closed the connection without answering")
    }

    /// The connection broke. A resendable request (GET, HEAD, OPTIONS, or a
    /// V2 request with an Idempotency-Key) that met a reused connection
    /// before any byte of an answer goes once more, on a fresh connection
    /// (the server may have closed it while idle). Anything else fails: a
    /// POST, PUT, PATCH or DELETE whose request may have reached the server
    /// is never sent again, whatever the connection, and the message says
    /// its outcome is unknown.
    mutating func connectionBroke(_ why: String) -> Action {
        if case .done = state { return .none }
        let heard = heardAny
        if onReusedConnection && !heard && resendable && !retried {
            retried = true
            onReusedConnection = false
            state = .writing(sent: 0)
            return .retry
        }
        state = .done
        if !resendable && !heard {
            return .fail(.failed("\(why); the request was not re-sent, and may or may not have been applied"))
        }
        return .fail(.failed(why))
    }

    mutating func deadlineReached(now: Nanoseconds) -> Action {
        if case .done = state { return .none }
        guard deadline <= now else { return .none }
        state = .done
        return .fail(.timeout)
    }

    /// The sink took a piece and has room: the timeout bounds each stretch
    /// of upstream bytes.
    mutating func sinkTook(now: Nanoseconds) {
        deadline = now &+ timeout
    }

    /// The client is behind: no more reads until it catches up, and no
    /// upstream timeout meanwhile (the client's own limit applies).
    mutating func streamPaused() {
        deadline = .max
        if case .streaming(let body, paused: false) = state { state = .streaming(body: body, paused: true) }
    }

    /// The sink has room again. False when the stream was not paused.
    mutating func streamResumed(now: Nanoseconds) -> Bool {
        guard case .streaming(let body, paused: true) = state else { return false }
        state = .streaming(body: body, paused: false)
        deadline = now &+ timeout
        return true
    }

    /// The answer is not wanted any more.
    mutating func cancelled() -> Action {
        state = .done
        return .fail(.failed("the answer was not wanted any more"))
    }

    // MARK: - The answer's head

    private var tooLarge: UpstreamError { .failed("upstream answer larger than \(maxResponseBytes) bytes") }

    /// Reads the answer's head from `bytes` (interim 1xx answers skipped) and
    /// what follows it as body. Nil when the head is not all there yet and
    /// nothing was taken (the state is left to the caller).
    private mutating func readHead(_ bytes: UnsafeRawBufferPointer) -> Action? {
        var offset = 0
        while true {
            let rest = UnsafeRawBufferPointer(rebasing: bytes[offset...])
            switch ResponseHeadParser.parse(rest, maxHeadBytes: Self.maxAnswerHeadBytes) {
            case .incomplete:
                if offset == 0 { return nil }
                state = .awaitingHead(inbox: Array(rest), heardAny: true)  // after an interim answer
                return Action.none
            case .failure(let why):
                return .fail(.failed(why.description))
            case .complete(let head):
                if head.status < 200 {
                    if head.status == 101 { return .fail(.failed("the upstream switched protocols")) }
                    offset += head.length
                    continue
                }
                var (answer, keepAlive) = AnswerHead.response(head, UnsafeRawBufferPointer(rebasing: rest[0..<head.length]))
                if let keepAlive { keepAliveSeconds = keepAlive }
                let body = UnsafeRawBufferPointer(rebasing: rest[head.length...])
                if isHead || head.status == 204 || head.status == 304 {
                    // No body: anything after the head means the connection
                    // cannot be trusted with another request.
                    return .deliver(answer, reusable: !head.closes && body.isEmpty)
                }
                let framing: Framing
                if head.chunked {
                    framing = .chunked(ChunkedDecoder(limits: Limits(maxBodyBytes: maxResponseBytes)))
                } else if let length = head.contentLength {
                    if length > maxResponseBytes { return .fail(tooLarge) }
                    // The usual answer: all of it came with its head. Taken in
                    // one copy of the right size (bytes that follow it make
                    // the connection unfit for reuse, as below).
                    if body.count >= length {
                        answer.body = bytesCopied(UnsafeRawBufferPointer(rebasing: body[0..<length]))
                        return .deliver(answer, reusable: !head.closes && body.count == length)
                    }
                    // Never more than is buffered before the body streams: the
                    // declared length is the upstream's word, not an allocation size.
                    answer.body.reserveCapacity(length <= Self.streamThreshold + 65536 ? length : Self.streamThreshold)
                    framing = .length(remaining: length)
                } else {
                    framing = .untilClose
                }
                var progress = Body(framing: framing, closeAfter: head.closes)  // reuse is off either way
                return readBody(body, &answer, &progress)
            }
        }
    }

    // MARK: - The body

    /// Counts `n` more body bytes; false past the size limit.
    private func counted(_ n: Int, _ body: inout Body) -> Bool {
        let (total, overflow) = body.received.addingReportingOverflow(n)
        guard !overflow, total <= maxResponseBytes else { return false }
        body.received = total
        return true
    }

    /// A Content-Length body's share of `available` bytes, counted against
    /// the size limit (nil past it). Bytes after the body's end make the
    /// connection unfit for reuse.
    private func takeFromLength(_ remaining: Int, of available: Int, _ body: inout Body) -> Int? {
        let take = min(remaining, available)
        if take < available { body.closeAfter = true }
        body.framing = .length(remaining: remaining - take)
        return counted(take, &body) ? take : nil
    }

    /// Body bytes while the answer is buffered. An answer still coming whose
    /// buffered body has reached the threshold is handed over now and
    /// streams from here on: what an exchange holds stays bounded.
    private mutating func readBody(_ bytes: UnsafeRawBufferPointer, _ answer: inout UpstreamResponse,
                                   _ body: inout Body) -> Action {
        switch body.framing {
        case .length(let remaining):
            guard let take = takeFromLength(remaining, of: bytes.count, &body) else { return .fail(tooLarge) }
            answer.body.append(contentsOf: UnsafeRawBufferPointer(rebasing: bytes[0..<take]))
            if remaining - take == 0 { return .deliver(answer, reusable: !body.closeAfter) }
        case .chunked(var decoder):
            // The decoder's own limit bounds a buffered chunked body.
            let outcome = decoder.decode(bytes, into: &answer.body)
            switch outcome {
            case .needMore:
                body.framing = .chunked(decoder)
            case .done(let consumed):
                return .deliver(answer, reusable: !body.closeAfter && consumed == bytes.count)
            case .failure(.bodyTooLarge):
                return .fail(tooLarge)
            case .failure:
                return .fail(.failed("malformed chunked answer from the upstream"))
            }
        case .untilClose:
            guard counted(bytes.count, &body) else { return .fail(tooLarge) }
            answer.body.append(contentsOf: bytes)
        }
        if answer.body.count >= Self.streamThreshold {
            state = .streaming(body: body, paused: false)
            return .handOver(answer)
        }
        state = .readingBody(answer: answer, body: body)
        return .none
    }

    /// Body bytes once the answer streams: they go to the sink as they come.
    private mutating func stream(_ bytes: UnsafeRawBufferPointer, _ body: inout Body, paused: Bool,
                                 decoded: inout [UInt8]) -> Action {
        let piece: BodyPiece
        var ended = false
        switch body.framing {
        case .length(let remaining):
            guard let take = takeFromLength(remaining, of: bytes.count, &body) else { return .fail(tooLarge) }
            piece = .input(0..<take)
            ended = remaining - take == 0
        case .chunked(var decoder):
            decoded.removeAll(keepingCapacity: true)
            switch decoder.decode(bytes, into: &decoded) {
            case .needMore:
                body.framing = .chunked(decoder)
            case .done(let consumed):
                if consumed < bytes.count { body.closeAfter = true }
                ended = true
            case .failure(.bodyTooLarge):
                return .fail(tooLarge)
            case .failure:
                return .fail(.failed("malformed chunked answer from the upstream"))
            }
            guard counted(decoded.count, &body) else { return .fail(tooLarge) }
            piece = .decoded
        case .untilClose:
            guard counted(bytes.count, &body) else { return .fail(tooLarge) }
            piece = .input(0..<bytes.count)
        }
        if ended { return .forward(piece, then: .end(reusable: !body.closeAfter)) }
        state = .streaming(body: body, paused: paused)
        return .forward(piece, then: .readOn)
    }
}
