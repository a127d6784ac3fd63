import EventLoops

/// What the pool needs to know of a connection.
protocol PoolableConnection: AnyObject {
    /// False once its socket is gone (libcurl closed it under the pool).
    var isOpen: Bool { get }
}

/// Kept-alive connections waiting for a request, most recently used taken
/// first, each reusable until the idle timeout or the server's own
/// `Keep-Alive: timeout=N` less a second, whichever comes first. Pure: the
/// caller says what time it is and closes what the pool gives up.
struct ConnectionPool<Connection: PoolableConnection> {
    /// Most recently used last.
    private var idle: [(connection: Connection, reusableUntil: Nanoseconds)] = []
    /// When the sweep is next due: the first reuse limit of the connections
    /// parked since the last sweep.
    private(set) var nextSweep: Nanoseconds?
    let idleTimeout: Nanoseconds
    /// Kept-alive connections beyond which the oldest is closed.
    let capacity: Int

    init(idleTimeout: Nanoseconds, capacity: Int) {
        self.idleTimeout = idleTimeout
        self.capacity = capacity
    }

    var count: Int { idle.count }

    /// The waiting connections, oldest first.
    var connections: [Connection] { idle.map(\.connection) }

    /// The server's `Keep-Alive: timeout=N` as a reuse limit: a second
    /// before the server's own, at most an hour.
    static func serverIdleLimit(keepAliveSeconds seconds: Int) -> Nanoseconds {
        UInt64(max(0, min(seconds, 3600) - 1)) &* 1_000_000_000
    }

    /// Parks `connection`; returns the oldest one when the pool is over its
    /// capacity (the caller closes it).
    mutating func park(_ connection: Connection, now: Nanoseconds, serverIdleLimit: Nanoseconds?) -> Connection? {
        var until = now &+ idleTimeout
        if let serverIdleLimit { until = min(until, now &+ serverIdleLimit) }
        idle.append((connection, until))
        let evicted = idle.count > capacity ? idle.removeFirst().connection : nil
        if nextSweep == nil { nextSweep = until }
        return evicted
    }

    /// The most recently used connection still reusable at `now`; those
    /// found past their limit (or closed) on the way are given to `close`.
    mutating func take(now: Nanoseconds, closing close: (Connection) -> Void) -> Connection? {
        while let entry = idle.popLast() {
            if entry.connection.isOpen && now < entry.reusableUntil { return entry.connection }
            close(entry.connection)
        }
        return nil
    }

    /// Takes `connection` out (the server closed it while it waited).
    @discardableResult
    mutating func remove(_ connection: Connection) -> Bool {
        guard let i = idle.firstIndex(where: { $0.connection === connection }) else { return false }
        idle.remove(at: i)
        return true
    }

    /// Gives the connections past their reuse limit to `close`, so that they
    /// do not hold descriptors (theirs and the server's) until next taken.
    mutating func sweep(now: Nanoseconds, closing close: (Connection) -> Void) {
        var next: UInt64?
        idle.removeAll { entry in
            if entry.reusableUntil <= now {
                close(entry.connection)
                return true
            }
            next = min(next ?? .max, entry.reusableUntil)
            return false
        }
        nextSweep = next
    }

    /// Gives every connection to `close`.
    mutating func removeAll(closing close: (Connection) -> Void) {
        for entry in idle { close(entry.connection) }
        idle.removeAll()
        nextSweep = nil
    }
}
