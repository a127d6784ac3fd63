#if canImport(Glibc)
import Glibc
#endif
import CSystem
import EventLoops
import HTTP1

/// Accepts connections on the listening socket (on one loop) and hands each
/// to the next loop of the group. Over `--max-connections` a client gets a
/// 503 and a close; when the process runs out of descriptors, a reserved one
/// is freed to accept and close the connection, so the listener never spins.
///
/// `@unchecked Sendable`: confined to `loop`.
final class Acceptor: EventHandler, @unchecked Sendable {
    private var socket: Socket?
    unowned let server: Server
    let loop: EventLoop
    /// A descriptor held back for the moment the process has none left.
    private var reserveFD: Int32
    private var lastNotice: Nanoseconds = 0

    init(socket: Socket, server: Server, loop: EventLoop) {
        self.socket = socket
        self.server = server
        self.loop = loop
        self.reserveFD = open("/dev/null", O_RDONLY | O_CLOEXEC)
    }

    /// Stops listening. Connections the kernel has already completed are
    /// taken first (and told the server is shutting down), because closing a
    /// listening socket resets every connection still in its queue.
    func stop() {
        guard let socket else { return }
        handleEvent(0)
        loop.unregister(socket, handler: self)
        socket.close()
        self.socket = nil
        closeReserve()
    }

    func handleEvent(_ events: UInt32) {
        // While stopping, until the queue is empty; otherwise 64 at a time,
        // so that one busy listener cannot starve the loop's connections.
        for _ in 0..<(server.isShuttingDown ? Int.max : 64) {
            guard let socket else { return }
            let client: Socket
            let address: String
            do {
                guard let (accepted, peer) = try socket.accept() else { return }
                client = accepted
                address = peer.host
            } catch {
                switch error.errno {
                case ECONNABORTED, EPROTO:
                    continue  // that client gave up; the next one may be waiting
                case EMFILE, ENFILE, ENOBUFS, ENOMEM:
                    shedWithoutDescriptors(error)
                    return
                default:
                    notice("accept failed: \(error)")
                    return
                }
            }
            guard server.connectionOpened() else {
                refuse(client, with: .overloaded, address: address)
                continue
            }
            do {
                try client.setNoDelay()
            } catch {
                // Answers would wait on Nagle's algorithm: refused rather than slow.
                notice("cannot set TCP_NODELAY on an accepted connection: \(error)")
                client.close()
                server.connectionClosed()
                continue
            }
            let target = server.group.next()
            let server = self.server
            if target === loop {
                Connection(socket: client, loop: target, server: server, clientAddress: address).start()
            } else {
                target.execute {
                    Connection(socket: client, loop: target, server: server, clientAddress: address).start()
                }
            }
        }
    }

    /// Best effort: one non-blocking write of the error answer, then close.
    /// A client that cannot take it (its window full, already gone) is
    /// closed all the same: the connection is refused either way.
    private func refuse(_ client: Socket, with error: ServerError, address: String) {
        let response = server.handler.errorResponse(error, head: nil)
        server.handler.didRespondOnItsOwn(error, status: response.status, head: nil, clientAddress: address)
        var out: [UInt8] = []
        ResponseSerializer.writeHead(response, requestMethod: .get, keepAlive: false, http10Client: false, into: &out)
        out.append(contentsOf: response.body)
        _ = try? out.withUnsafeBytes { try client.send($0) }
        try? client.shutdownWrite()
        client.close()
    }

    /// Out of descriptors: the reserved one is given up for a moment, to
    /// take the oldest waiting connection and refuse it, so the listener's
    /// queue does not fill and readiness does not fire forever.
    private func shedWithoutDescriptors(_ error: SystemError) {
        notice("out of file descriptors (\(error)); shedding connections")
        guard let socket, reserveFD >= 0 else { return }
        closeReserve()
        if let (client, _) = try? socket.accept() { refuse(client, with: .overloaded, address: "unknown") }
        reserveFD = open("/dev/null", O_RDONLY | O_CLOEXEC)
    }

    private func closeReserve() {
        guard reserveFD >= 0 else { return }
        if Glibc.close(reserveFD) != 0 { assert(errno != EBADF, "the reserved descriptor was closed elsewhere") }
        reserveFD = -1
    }

    private func notice(_ message: String) {
        let now = MonotonicClock.now()
        if now &- lastNotice > 1_000_000_000 {
            lastNotice = now
            server.handler.serverNotice(message)
        }
    }
}
