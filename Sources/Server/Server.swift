#if canImport(Glibc)
import Glibc
#endif
import Dispatch
import EventLoops
import HTTP1
import Synchronization

/// The HTTP/1.1 server: a listening socket, connections spread over the
/// loops of a group, limits, timeouts and graceful shutdown. It knows
/// nothing of what it serves; `HTTPHandler` does.
public final class Server: Sendable {
    public struct Configuration: Sendable {
        public var listen: String
        public var limits: Limits
        public var maxConnections: Int
        /// For a request's head, from its first byte.
        public var headTimeout: Nanoseconds
        /// Without a byte of the request body.
        public var bodyTimeout: Nanoseconds
        /// For the whole request body, from its head.
        public var bodyTotalTimeout: Nanoseconds
        /// A kept-alive connection waiting for its next request.
        public var idleTimeout: Nanoseconds
        /// A client may read nothing of its answer for this long before it is dropped.
        public var writeTimeout: Nanoseconds

        public init(
            listen: String = "127.0.0.1:0", limits: Limits = Limits(), maxConnections: Int = 4096,
            headTimeout: Nanoseconds = .seconds(10), bodyTimeout: Nanoseconds = .seconds(10),
            bodyTotalTimeout: Nanoseconds = .seconds(30), idleTimeout: Nanoseconds = .seconds(60),
            writeTimeout: Nanoseconds = .seconds(60)
        ) {
            self.listen = listen
            self.limits = limits
            self.maxConnections = maxConnections
            self.headTimeout = headTimeout
            self.bodyTimeout = bodyTimeout
            self.bodyTotalTimeout = bodyTotalTimeout
            self.idleTimeout = idleTimeout
            self.writeTimeout = writeTimeout
        }
    }

    public let configuration: Configuration
    public let group: EventLoopGroup
    let handler: any HTTPHandler
    private let open = Atomic<Int>(0)
    private let accepted = Atomic<Int>(0)
    private let shuttingDown = Atomic<Bool>(false)
    private let acceptor = Mutex<Acceptor?>(nil)
    /// Signalled when the last connection closes during shutdown.
    private let lastClosed = DispatchSemaphore(value: 0)

    /// Connections open across every server that shares it.
    private let budget: ConnectionBudget

    /// `budget`: shared by the servers of one process (several listeners),
    /// so that `maxConnections` bounds them together; by default this
    /// server's own.
    public init(configuration: Configuration, group: EventLoopGroup, handler: any HTTPHandler,
                budget: ConnectionBudget? = nil) {
        self.configuration = configuration
        self.group = group
        self.handler = handler
        self.budget = budget ?? ConnectionBudget(limit: configuration.maxConnections)
    }

    /// Connections open now.
    public var openConnections: Int { open.load(ordering: .relaxed) }
    /// Connections accepted since start.
    public var acceptedConnections: Int { accepted.load(ordering: .relaxed) }
    public var isShuttingDown: Bool { shuttingDown.load(ordering: .relaxed) }

    /// Binds and starts accepting. Returns the bound address (with the real
    /// port when port 0 was asked for).
    public func start() throws -> SocketAddress {
        let address = try SocketAddress.resolve(configuration.listen)
        let (socket, bound) = try Socket.listening(on: address, backlog: 1024)
        let loop = group.loops[0]
        let acceptor = Acceptor(socket: socket, server: self, loop: loop)
        self.acceptor.withLock { $0 = acceptor }
        for each in group.loops {
            each.execute { [self] in
                if each === loop {
                    do {
                        try loop.register(socket, events: EventLoop.readable, handler: acceptor)
                    } catch {
                        handler.serverNotice("cannot watch the listening socket: \(error)")
                    }
                }
                self.scheduleSweep(on: each)
            }
        }
        return bound
    }

    /// Every second, each loop checks its connections' deadlines.
    private func scheduleSweep(on loop: EventLoop) {
        loop.schedule(after: .milliseconds(1000)) { [self] in
            let now = MonotonicClock.now()
            loop.forEachHandler { $0.checkDeadline(now: now) }
            scheduleSweep(on: loop)
        }
    }

    /// Graceful shutdown: stop accepting, close idle connections, let busy
    /// ones finish their answer (then close them), and after `grace` seconds
    /// close whatever is left. Blocks until done.
    /// - Returns: whether every connection finished within the grace period.
    @discardableResult
    public func shutdown(grace: Nanoseconds) -> Bool {
        beginShutdown()
        return finishShutdown(grace: grace)
    }

    /// The first half of `shutdown`: stops accepting and closes idle
    /// connections, without waiting (a process with several listeners stops
    /// them all before waiting for any).
    public func beginShutdown() {
        guard !shuttingDown.exchange(true, ordering: .acquiringAndReleasing) else { return }
        let acceptor = self.acceptor.withLock { $0 }
        if let acceptor {
            let stopped = Latch<Void>()
            acceptor.loop.execute {
                acceptor.stop()
                stopped.set()
            }
            _ = stopped.wait()
        }
        for loop in group.loops {
            loop.execute { [self] in
                loop.forEachHandler { handler in
                    if let connection = handler as? Connection, connection.server === self { connection.closeIfIdle() }
                }
            }
        }
    }

    /// The second half: waits for busy connections to finish, for at most
    /// `grace` seconds, closing what is left a little before the end.
    /// - Returns: whether every connection finished in time.
    @discardableResult
    public func finishShutdown(grace: Nanoseconds) -> Bool {
        // The grace period bounds the whole drain: what is still open a
        // little before its end (a stuck exchange) is closed then.
        let start = MonotonicClock.now()
        let end = grace > Nanoseconds.max - start ? Nanoseconds.max : start + grace
        let forceAt = end - min(grace / 10, .milliseconds(500))
        waitForNoConnections(until: forceAt)
        let clean = openConnections == 0
        if !clean {
            for loop in group.loops {
                loop.execute { [self] in
                    loop.forEachHandler { handler in
                        if let connection = handler as? Connection, connection.server === self { connection.close() }
                    }
                }
            }
            waitForNoConnections(until: end)
        }
        return clean
    }

    /// Blocks until no connection is open or `deadline` (monotonic
    /// nanoseconds) passes; woken by the last close, not polling.
    private func waitForNoConnections(until deadline: Nanoseconds) {
        while openConnections > 0 {
            let now = MonotonicClock.now()
            guard now < deadline else { return }
            _ = lastClosed.wait(timeout: .now() + .nanoseconds(Int(min(deadline - now, 1_000_000_000))))
        }
    }

    // MARK: - Accounting, called on loops

    func connectionOpened() -> Bool {
        guard budget.take() else { return false }
        open.wrappingAdd(1, ordering: .relaxed)
        accepted.wrappingAdd(1, ordering: .relaxed)
        return true
    }

    func connectionClosed() {
        budget.give()
        if open.wrappingSubtract(1, ordering: .relaxed).newValue == 0 && isShuttingDown { lastClosed.signal() }
    }
}

extension HTTPHandler {
    public func serverNotice(_ message: String) {}
}

/// The connections a process may hold open at once, across its listeners.
public final class ConnectionBudget: Sendable {
    public let limit: Int
    private let open = Atomic<Int>(0)

    public init(limit: Int) {
        self.limit = limit
    }

    /// Takes one connection's place; false when none is left.
    func take() -> Bool {
        if open.wrappingAdd(1, ordering: .relaxed).newValue > limit {
            open.wrappingSubtract(1, ordering: .relaxed)
            return false
        }
        return true
    }

    func give() {
        open.wrappingSubtract(1, ordering: .relaxed)
    }
}
