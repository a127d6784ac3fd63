import HTTP1

@testable import Server

/// A `ConnectionStateMachine` with a scripted peer instead of a socket: it
/// performs the actions as `Connection` does, with a manual clock, a
/// client that sends text and reads as much as `room` allows, and a handler
/// whose calls are recorded for the test to answer.
final class Wire {
    typealias Action = ConnectionStateMachine.Action

    static let second: UInt64 = 1_000_000_000
    static let timeouts = ConnectionStateMachine.Timeouts(
        head: 10 * second, body: 10 * second, bodyTotal: 30 * second, idle: 60 * second, write: 60 * second,
        linger: 2 * second)

    var machine: ConnectionStateMachine
    var clock: UInt64 = 1_000 * Wire.second
    /// What the client has received.
    var received: [UInt8] = []
    /// Bytes the socket takes before a write would block.
    var room = Int.max
    var requests: [(head: RequestHead, body: [UInt8], sequence: UInt64)] = []
    var screened = 0
    /// What `screen` answers.
    var refusal: Response?
    var ownAnswers: [ServerError] = []
    var shuttingDown = false
    var writeSideShut = false
    var closed = false
    var wasReset = false
    var cancelledOnClose: (any ResponseBodySource)?
    /// `.awaitNextRequest` came: the loop would process the buffer next.
    private var wakeScheduled = false

    init(limits: Limits = Limits()) {
        machine = ConnectionStateMachine(limits: limits, timeouts: Self.timeouts, now: 1_000 * Wire.second)
    }

    var text: String { String(decoding: received, as: UTF8.self) }
    /// The statuses of the answers received, in order.
    var statuses: [Int] {
        let text = self.text
        return text.ranges(of: "HTTP/1.1 ").compactMap { Int(text[$0.upperBound...].prefix(3)) }
    }

    func advance(seconds: Double) { clock += UInt64(seconds * 1e9) }

    /// The client sends `text`; it is read in pieces of at most the buffer's room.
    func send(_ text: String) { send(Array(text.utf8)) }

    func send(_ bytes: [UInt8]) {
        var rest = bytes[...]
        while !rest.isEmpty && !machine.isClosed {
            let n = machine.read(now: clock) { free in
                let n = min(free.count, rest.count)
                free.copyBytes(from: rest.prefix(n))
                return n
            }
            guard let n, n > 0 else { return }
            rest = rest.dropFirst(n)
            drive()
        }
    }

    /// The client half-closes.
    func peerCloses() { perform(machine.peerClosed()) }

    /// The client reads `bytes` more (or everything) of what waits for it.
    func clientReads(_ bytes: Int = Int.max) {
        room = bytes == Int.max ? Int.max : room + bytes
        if machine.hasPendingOutput { run(.write) }
    }

    /// The periodic deadline check at the current clock.
    func tick() { run(machine.deadlineReached(now: clock)) }

    func shutdown() {
        shuttingDown = true
        run(machine.shutdownRequested())
    }

    func respond(_ response: Response, to sequence: UInt64? = nil) {
        guard
            let action = machine.respond(
                response, sequence: sequence ?? machine.sequence, now: clock, shuttingDown: shuttingDown)
        else { return }
        run(action)
    }

    func respond(status: Int = 200, body: String, to sequence: UInt64? = nil) {
        respond(Response(status: status, body: Array(body.utf8)), to: sequence)
    }

    // MARK: - The shell, as Connection has it

    private func drive() {
        guard !machine.isClosed else { return }
        guard perform(machine.processInput(now: clock, shuttingDown: shuttingDown)) else { return }
        if machine.peerHasClosed { perform(machine.peerClosed()) }
    }

    func run(_ action: Action) {
        if perform(action) { drive() }
        while wakeScheduled && !machine.isClosed {
            wakeScheduled = false
            drive()
        }
    }

    @discardableResult
    func perform(_ first: Action) -> Bool {
        var action = first
        while true {
            switch action {
            case .readMore:
                return true
            case .wait:
                return false
            case .screen:
                screened += 1
                action = machine.screened(refusal, now: clock, shuttingDown: shuttingDown)
            case .dispatch(let head, let body, let sequence):
                requests.append((head, body, sequence))
                return false
            case .sendError(let error, let head):
                ownAnswers.append(error)
                action = machine.respondOnItsOwn(Response(status: Self.status(of: error)), head: head, now: clock)
            case .write:
                action = flush()
            case .linger:
                writeSideShut = true
                if machine.peerHasClosed {
                    close()
                    return false
                }
                return true
            case .awaitNextRequest:
                if !machine.input.isEmpty || machine.peerHasClosed { wakeScheduled = true }
                return false
            case .resumeSource(let source):
                source.resume()
                return false
            case .close:
                close()
                return false
            case .reset:
                wasReset = true
                close()
                return false
            }
        }
    }

    private func flush() -> Action {
        while true {
            let n = machine.withPendingOutput { head, body -> Int in
                let fromHead = min(room, head.count)
                received.append(contentsOf: head.prefix(fromHead))
                let fromBody = min(room - fromHead, body.count)
                received.append(contentsOf: body.prefix(fromBody))
                return fromHead + fromBody
            }
            if n == 0 { return machine.writeBlocked() }
            if room != Int.max { room -= n }
            let next = machine.wrote(n, now: clock)
            if case .write = next { continue }
            return next
        }
    }

    private func close() {
        closed = true
        if let source = machine.closed() {
            cancelledOnClose = source
            source.cancel()
        }
    }

    static func status(of error: ServerError) -> Int {
        switch error {
        case .malformed(let error): error.status
        case .headerTimeout, .bodyTimeout: 408
        case .overloaded, .shuttingDown: 503
        }
    }
}
