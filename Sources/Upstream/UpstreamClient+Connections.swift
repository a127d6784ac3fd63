import CCurl
#if canImport(Glibc)
import Glibc
#endif
import EventLoops

/// The client's connections once an answer has ended or libcurl or the
/// server closed them: the pool, the sweeps, closing.
extension UpstreamClient {
    /// An answer ended: the connection goes back to the pool when it can
    /// carry another request, else it closes.
    func release(_ connection: UpstreamConnection, of exchange: UpstreamExchange, reusable: Bool) {
        guard reusable else {
            close(connection)
            return
        }
        connection.exchange = nil
        connection.state = .idle
        connection.reused = true
        if let seconds = exchange.machine.keepAliveSeconds {
            connection.serverIdleLimit = ConnectionPool<UpstreamConnection>.serverIdleLimit(keepAliveSeconds: seconds)
        }
        if let evicted = pool.park(connection, now: loop.now, serverIdleLimit: connection.serverIdleLimit) {
            close(evicted)
        }
    }

    /// An idle connection became readable: usually the server closing it (or
    /// a TLS session ticket, which libcurl consumes). Anything else is
    /// unexpected on an idle HTTP/1.1 connection.
    func probeIdle(_ connection: UpstreamConnection) {
        var byte: UInt8 = 0
        let stillOpen: Bool
        if connection.tls {
            stillOpen = withUnsafeMutableBytes(of: &byte) { connection.receive(into: $0) }.isWouldBlock
        } else {
            // Bytes or the end on an idle connection, or a broken socket: all the same, it goes.
            stillOpen = (try? connection.socket?.hasInputOrEnd()) == false
        }
        if stillOpen { return }
        pool.remove(connection)
        close(connection)
    }

    /// libcurl is closing `fd`. Its connection cache still lists every
    /// CONNECT_ONLY connection and may close one the proxy holds (a socket
    /// error, a FIN, an age limit): the connection must hear of it before the
    /// number is reused, or it would later write to, wait on or unregister
    /// whatever descriptor gets that number next.
    func socketClosing(_ socket: Socket) {
        guard let connection = connectedBySocket.removeValue(forKey: socket) else { return }
        loop.unregister(socket, handler: connection)
        connection.socket = nil
        if lost.isEmpty {
            // Inside a libcurl call: act once it has returned.
            loop.schedule(at: 0) { [self] in handleLost() }
        }
        lost.append(connection)
    }

    /// Connections libcurl closed: idle ones leave the pool; an exchange on
    /// one sees the connection end (a safe request on a reused connection
    /// without any answer byte goes again on a fresh one; others fail).
    func handleLost() {
        while let connection = lost.popLast() {
            switch connection.state {
            case .idle:
                pool.remove(connection)
                close(connection)
            case .busy:
                if let exchange = connection.exchange {
                    perform(exchange.machine.connectionClosed(), connection, exchange)
                } else {
                    close(connection)
                }
            case .connecting, .closed:
                break
            }
        }
    }

    /// Closes a connection (or stops its connect): out of the epoll set
    /// first, then libcurl closes the socket as the handle leaves the multi
    /// handle.
    func close(_ connection: UpstreamConnection) {
        guard connection.state != .closed else { return }
        connection.state = .closed
        connection.exchange = nil
        if let socket = connection.socket {
            connectedBySocket.removeValue(forKey: socket)
            loop.unregister(socket, handler: connection)
            connection.socket = nil
        }
        curl.remove(connection)
    }

    /// Exchanges past their deadline fail with a timeout; their connections close.
    func sweep() {
        let now = loop.now
        var i = 0
        while i < running.count {
            let exchange = running[i]
            if case .fail(let error) = exchange.machine.deadlineReached(now: now) {
                if let connection = exchange.connection { close(connection) }
                finish(exchange, .failure(error))  // moves the last one into slot i
            } else {
                i += 1
            }
        }
        sweepDeadline = running.isEmpty ? nil : now &+ Self.sweepNanoseconds
    }

    /// Releases everything; on the loop, once no request is running.
    public func close() {
        loop.assertInLoop()
        for exchange in running {
            if let connection = exchange.connection { close(connection) }
        }
        running.removeAll()
        pool.removeAll(closing: { close($0) })
        lost.removeAll()
        sweepDeadline = nil
        curl.close()
    }
}

extension UpstreamClient: DeadlineSource {
    public var nextDeadline: Nanoseconds? {
        var next = curl.deadline ?? .max
        if let d = sweepDeadline, d < next { next = d }
        if let d = pool.nextSweep, d < next { next = d }
        return next == .max ? nil : next
    }

    public func deadlineReached() {
        let now = MonotonicClock.now()
        curl.deadlineReached(now: now)
        if let d = sweepDeadline, d <= now { sweep() }
        if let d = pool.nextSweep, d <= now { pool.sweep(now: loop.now, closing: { close($0) }) }
    }
}

extension UpstreamConnection.ReadResult {
    var isWouldBlock: Bool {
        if case .wouldBlock = self { return true }
        return false
    }
}
