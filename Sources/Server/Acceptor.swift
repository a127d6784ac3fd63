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
    private var fd: Int32
    unowned let server: Server
    let loop: EventLoop
    private var reserveFD: Int32
    private var lastNotice: UInt64 = 0

    init(fd: Int32, server: Server, loop: EventLoop) {
        self.fd = fd
        self.server = server
        self.loop = loop
        self.reserveFD = open("/dev/null", O_RDONLY | O_CLOEXEC)
    }

    /// Stops listening. Connections the kernel has already completed are
    /// taken first (and told the server is shutting down), because closing a
    /// listening socket resets every connection still in its queue.
    func stop() {
        guard fd >= 0 else { return }
        handleEvent(0)
        loop.unregister(fd, handler: self)
        Glibc.close(fd)
        fd = -1
        if reserveFD >= 0 { Glibc.close(reserveFD); reserveFD = -1 }
    }

    func handleEvent(_ events: UInt32) {
        // While stopping, until the queue is empty; otherwise 64 at a time,
        // so that one busy listener cannot starve the loop's connections.
        for _ in 0..<(server.isShuttingDown ? Int.max : 64) {
            guard fd >= 0 else { return }
            var storage = sockaddr_storage()
            var length = socklen_t(MemoryLayout<sockaddr_storage>.size)
            let client = withUnsafeMutablePointer(to: &storage) { ptr in
                ptr.withMemoryRebound(to: sockaddr.self, capacity: 1) {
                    csystem_accept4(fd, $0, &length)
                }
            }
            if client < 0 {
                let code = errno
                switch code {
                case EAGAIN, EWOULDBLOCK:
                    return
                case EINTR, ECONNABORTED, EPROTO:
                    continue
                case EMFILE, ENFILE, ENOBUFS, ENOMEM:
                    shedWithoutDescriptors(code)
                    return
                default:
                    notice("accept failed: \(SystemError("accept4", errno: code))")
                    return
                }
            }
            let address = SocketAddress(storage: storage, length: length).host
            guard server.connectionOpened() else {
                refuse(client, with: .overloaded, address: address)
                continue
            }
            var one: Int32 = 1
            setsockopt(client, Int32(IPPROTO_TCP), TCP_NODELAY, &one, socklen_t(MemoryLayout<Int32>.size))
            let target = server.group.next()
            let server = self.server
            if target === loop {
                Connection(fd: client, loop: target, server: server, clientAddress: address).start()
            } else {
                target.execute {
                    Connection(fd: client, loop: target, server: server, clientAddress: address).start()
                }
            }
        }
    }

    /// Best effort: one non-blocking write of the error answer, then close.
    private func refuse(_ client: Int32, with error: ServerError, address: String) {
        let response = server.handler.errorResponse(error, head: nil)
        server.handler.didRespondOnItsOwn(error, status: response.status, head: nil, clientAddress: address)
        var out: [UInt8] = []
        ResponseSerializer.writeHead(response, requestMethod: .get, keepAlive: false, http10Client: false, into: &out)
        out.append(contentsOf: response.body)
        _ = out.withUnsafeBytes { send(client, $0.baseAddress, $0.count, csystem_msg_nosignal) }
        shutdown(client, csystem_shut_wr)
        Glibc.close(client)
    }

    private func shedWithoutDescriptors(_ code: Int32) {
        notice("out of file descriptors (\(SystemError("accept4", errno: code))); shedding connections")
        guard reserveFD >= 0 else { return }
        Glibc.close(reserveFD)
        let client = csystem_accept4(fd, nil, nil)
        if client >= 0 { refuse(client, with: .overloaded, address: "unknown") }
        reserveFD = open("/dev/null", O_RDONLY | O_CLOEXEC)
    }

    private func notice(_ message: String) {
        let now = MonotonicClock.now()
        if now &- lastNotice > 1_000_000_000 {
            lastNotice = now
            server.handler.serverNotice(message)
        }
    }
}
