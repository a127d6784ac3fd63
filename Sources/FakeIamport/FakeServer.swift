import EventLoops
import HTTP1
import Server
import Synchronization

/// The server a fake runs on: its own loops, 127.0.0.1 by default, bodies up
/// to 16 MiB. Shared by FakeIamport and FakePortOneV2.
final class FakeServer: Sendable {
    private let server = Mutex<Server?>(nil)
    private let group = Mutex<EventLoopGroup?>(nil)

    /// Starts listening with `handler`; returns the bound address.
    /// `idleTimeout`: how long an idle keep-alive connection stays open.
    func start(_ handler: any HTTPHandler, listen: String, loops: Int, idleTimeout: Nanoseconds) throws -> SocketAddress {
        let group = try EventLoopGroup(count: loops)
        let server = Server(
            configuration: Server.Configuration(listen: listen, limits: Limits(maxBodyBytes: 16 << 20), idleTimeout: idleTimeout),
            group: group, handler: handler)
        let address = try server.start()
        self.server.withLock { $0 = server }
        self.group.withLock { $0 = group }
        return address
    }

    func stop() {
        if let server = server.withLock({ $0 }) { server.shutdown(grace: .milliseconds(200)) }
        group.withLock { $0 }?.shutdown()
    }

    /// Connections accepted since start: with a proxy in front, the number of
    /// upstream connections it opened.
    var connectionsAccepted: Int { server.withLock { $0?.acceptedConnections ?? 0 } }
}
