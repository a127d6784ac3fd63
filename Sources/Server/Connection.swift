#if canImport(Glibc)
import Glibc
#endif
import CSystem
import EventLoops
import HTTP1

/// One client connection's socket: it reads, writes and closes, calls the
/// handler, and performs what its `ConnectionStateMachine` decides. The
/// protocol (pipelining in order, keep-alive, 100-continue, timeouts,
/// streaming backpressure) lives in the state machine.
///
/// The machine's deadlines count from the loop's time (`loop.now`, read once
/// per loop iteration), not a clock read per event: timeouts are seconds
/// long, an iteration microseconds.
///
/// `@unchecked Sendable`: confined to `loop`; `Responder` hops there first.
final class Connection: EventHandler, @unchecked Sendable {
    typealias Action = ConnectionStateMachine.Action

    let socket: Socket
    let loop: EventLoop
    let server: Server
    let clientAddress: String
    private var machine: ConnectionStateMachine
    /// Edge-triggered: the socket may hold bytes until a read comes up short.
    private var readable = false

    init(socket: Socket, loop: EventLoop, server: Server, clientAddress: String) {
        self.socket = socket
        self.loop = loop
        self.server = server
        self.clientAddress = clientAddress
        self.machine = ConnectionStateMachine(
            limits: server.configuration.limits, timeouts: .init(server.configuration), now: loop.now)
    }

    func start() {
        loop.assertInLoop()
        do {
            try loop.register(
                socket, events: EventLoop.readable | EventLoop.writable | EventLoop.hangup | EventLoop.edgeTriggered,
                handler: self)
        } catch {
            socket.close()
            server.connectionClosed()
            _ = machine.closed()
            return
        }
        run(machine.started(shuttingDown: server.isShuttingDown))
    }

    // MARK: - Events

    func handleEvent(_ events: UInt32) {
        if machine.isClosed { return }
        if events & EventLoop.error != 0 {
            close()
            return
        }
        if events & (EventLoop.readable | EventLoop.hangup) != 0 { readable = true }
        if events & EventLoop.writable != 0 && machine.hasPendingOutput {
            perform(.write)
            if machine.isClosed { return }
        }
        if readable { driveInput() }
    }

    /// Processes buffered bytes and reads more while the machine wants them.
    private func driveInput() {
        while !machine.isClosed {
            guard perform(machine.processInput(now: loop.now, shuttingDown: server.isShuttingDown)) else {
                return
            }
            if machine.peerHasClosed {
                perform(machine.peerClosed())
                return
            }
            guard readable else { return }
            var outcome = Socket.ReadOutcome.wouldBlock
            var freeSpace = 0
            var failed = false
            guard
                machine.read(
                    now: loop.now,
                    { free -> Int in
                        freeSpace = free.count
                        do {
                            outcome = try socket.read(into: free)
                        } catch {
                            failed = true
                            return -1
                        }
                        if case .bytes(let n) = outcome { return n }
                        return 0
                    }) != nil
            else { return }
            switch outcome {
            case _ where failed:
                close()
                return
            case .bytes(let n):
                // A short read drained the socket: with edge triggering, the next
                // arrival raises a new event.
                if n < freeSpace { readable = false }
            case .end:
                readable = false
                perform(machine.peerClosed())
                return
            case .wouldBlock:
                readable = false
                return
            }
        }
    }

    /// Performs `action` and the ones it leads to.
    /// - Returns: whether the machine now wants input.
    @discardableResult
    private func perform(_ first: Action) -> Bool {
        var action = first
        while true {
            switch action {
            case .readMore:
                return true
            case .wait:
                return false
            case .screen(let head):
                let refusal = server.handler.screen(head, clientAddress: clientAddress, loop: loop)
                action = machine.screened(refusal, now: loop.now, shuttingDown: server.isShuttingDown)
            case .dispatch(let head, let body, let sequence):
                action = .wait  // drops its reference: the handler gets the only one to the body
                let request = Request(
                    head: head, body: body, clientAddress: clientAddress, receivedAt: loop.now, loop: loop)
                server.handler.handle(request, responder: Responder(connection: self, sequence: sequence))
                return false
            case .sendError(let error, let head):
                let response = server.handler.errorResponse(error, head: head)
                server.handler.didRespondOnItsOwn(error, status: response.status, head: head, clientAddress: clientAddress)
                action = machine.respondOnItsOwn(response, head: head, now: loop.now)
            case .write:
                action = flush()
            case .linger:
                do {
                    try socket.shutdownWrite()
                } catch {
                    close()  // the peer is gone already: nothing to linger for
                    return false
                }
                if machine.peerHasClosed {
                    close()
                    return false
                }
                return true
            case .awaitNextRequest:
                if !machine.input.isEmpty || readable || machine.peerHasClosed {
                    // Pipelined requests waiting in the buffer, or more on the
                    // socket; not from inside the handler's call.
                    loop.schedule(at: 0) { [weak self] in self?.driveInput() }
                }
                return false
            case .resumeSource(let source):
                source.resume()
                return false
            case .close:
                close()
                return false
            case .reset:
                // A connection that cannot take SO_LINGER ends with a FIN instead.
                try? socket.setResetOnClose()
                close()
                return false
            }
        }
    }

    /// For events from outside the input path (the handler, the clock).
    private func run(_ action: Action) {
        if perform(action) { driveInput() }
    }

    /// Writes pending output with one sendmsg of head and body.
    private func flush() -> Action {
        while true {
            // Nothing (left) to write: the same step as the last byte written.
            guard machine.hasPendingOutput else { return machine.wrote(0, now: loop.now) }
            var failed = false
            let written = machine.withPendingOutput { head, body -> Int in
                do {
                    return try socket.send(head, body)
                } catch {
                    failed = true  // the peer reset the connection, or it broke
                    return 0
                }
            }
            if failed { return .close }
            if written == 0 { return machine.writeBlocked() }
            let next = machine.wrote(written, now: loop.now)
            if case .write = next { continue }
            return next
        }
    }

    // MARK: - Answers

    func respond(_ response: Response, sequence: UInt64) {
        loop.assertInLoop()
        guard
            let action = machine.respond(
                response, sequence: sequence, now: loop.now, shuttingDown: server.isShuttingDown)
        else { return }
        run(action)
    }

    /// Starts a streamed answer (`response.streamed`): the head and the body
    /// bytes at hand now, the rest through `write(streamed:)`.
    func respond(_ response: Response, streamingFrom source: ResponseBodySource, sequence: UInt64) -> Bool {
        loop.assertInLoop()
        guard
            let action = machine.respond(
                response, streamingFrom: source, sequence: sequence, now: loop.now,
                shuttingDown: server.isShuttingDown)
        else { return false }
        // Nothing streams after this head (a HEAD request, or a status
        // without content): the source is told it is not wanted.
        if !machine.isStreaming { source.cancel() }
        run(action)
        return machine.isStreaming
    }

    /// More of a streamed body. False when the client is this far behind
    /// (the source then waits for `resume`), or gone.
    func write(streamed bytes: UnsafeRawBufferPointer, sequence: UInt64) -> Bool {
        guard machine.appendStreamed(bytes, sequence: sequence, now: loop.now) else { return false }
        if machine.hasPendingOutput { run(.write) }
        return machine.streamHasRoom()
    }

    /// The streamed body is complete.
    func endStream(sequence: UInt64) {
        run(machine.endStream(sequence: sequence, now: loop.now))
    }

    /// The streamed body cannot be completed (its source failed): the client
    /// sees the connection end before the body does.
    func abortStream(sequence: UInt64) {
        run(machine.abortStream(sequence: sequence))
    }

    func abort(sequence: UInt64) {
        run(machine.abort(sequence: sequence))
    }

    func respondRaw(_ bytes: [UInt8], sequence: UInt64) {
        run(machine.respondRaw(bytes, sequence: sequence, now: loop.now))
    }

    // MARK: - Timeouts and closing

    func checkDeadline(now: Nanoseconds) {
        run(machine.deadlineReached(now: now))
    }

    /// Closes at once: called on errors, timeouts and the end of a linger.
    func close() {
        guard !machine.isClosed else { return }
        let source = machine.closed()
        loop.unregister(socket, handler: self)
        socket.close()
        server.connectionClosed()
        source?.cancel()
    }

    /// During shutdown: idle connections go now, busy ones after their answer.
    func closeIfIdle() {
        run(machine.shutdownRequested())
    }
}
