#if canImport(Glibc)
import Glibc
#endif
import EventLoops
import Testing

/// `Socket` over real loopback connections: what each call reports, in
/// each case the loops and the probe act on.
@Suite struct SocketTests {
    /// A listener on a free port, a blocking client connected to it, and
    /// the accepted (non-blocking) server side.
    private func connectedPair() throws -> (listener: Socket, client: Socket, server: Socket) {
        let (listener, bound) = try Socket.listening(on: try SocketAddress.resolve("127.0.0.1:0"), backlog: 8)
        let client = try Socket.stream(family: bound.family, blocking: true)
        try client.connect(to: bound)
        for _ in 0..<1000 {
            if let (server, _) = try listener.accept() { return (listener, client, server) }
            usleep(1000)
        }
        throw SystemError("accept", errno: ETIMEDOUT)
    }

    private func closeAll(_ sockets: Socket...) {
        for socket in sockets { socket.close() }
    }

    @Test func listeningOnPortZeroReportsTheRealPort() throws {
        let (listener, bound) = try Socket.listening(on: try SocketAddress.resolve("127.0.0.1:0"), backlog: 8)
        defer { listener.close() }
        #expect(bound.port > 0)
        #expect(bound.host == "127.0.0.1")
        #expect(try listener.localAddress().port == bound.port)
    }

    @Test func aPortInUseIsABindErrorWithItsErrno() throws {
        let (listener, bound) = try Socket.listening(on: try SocketAddress.resolve("127.0.0.1:0"), backlog: 8)
        defer { listener.close() }
        #expect {
            _ = try Socket.listening(on: bound, backlog: 8)
        } throws: { error in
            guard let error = error as? SystemError else { return false }
            return error.errno == EADDRINUSE && error.call.hasPrefix("bind(127.0.0.1:")
        }
    }

    @Test func acceptWithNobodyWaitingIsNil() throws {
        let (listener, _) = try Socket.listening(on: try SocketAddress.resolve("127.0.0.1:0"), backlog: 8)
        defer { listener.close() }
        #expect(try listener.accept() == nil)
    }

    @Test func bothPartsOfASendArriveInOrder() throws {
        let (listener, client, server) = try connectedPair()
        defer { closeAll(listener, client, server) }
        let head = Array("HEAD|".utf8), body = Array("BODY".utf8)
        let n = try head.withUnsafeBytes { h in try body.withUnsafeBytes { b in try server.send(h, b) } }
        #expect(n == 9)
        var buffer = [UInt8](repeating: 0, count: 64)
        var received = 0
        while received < 9 {
            guard case .bytes(let got) = try buffer.withUnsafeMutableBytes({
                try client.read(into: UnsafeMutableRawBufferPointer(rebasing: $0[received...]))
            }) else { break }
            received += got
        }
        #expect(Array(buffer[0..<received]) == head + body)
    }

    @Test func readReportsNothingYetThenTheEnd() throws {
        let (listener, client, server) = try connectedPair()
        defer { closeAll(listener, client, server) }
        var buffer = [UInt8](repeating: 0, count: 16)
        #expect(try buffer.withUnsafeMutableBytes { try server.read(into: $0) } == .wouldBlock)
        #expect(try server.hasInputOrEnd() == false)
        try client.shutdownWrite()
        var outcome = Socket.ReadOutcome.wouldBlock
        for _ in 0..<1000 where outcome == .wouldBlock {
            outcome = try buffer.withUnsafeMutableBytes { try server.read(into: $0) }
            if outcome == .wouldBlock { usleep(1000) }
        }
        #expect(outcome == .end)
        #expect(try server.hasInputOrEnd() == true)
    }

    @Test func aFullSocketTakesZeroBytes() throws {
        let (listener, client, server) = try connectedPair()
        defer { closeAll(listener, client, server) }
        let chunk = [UInt8](repeating: 0x61, count: 65536)
        var total = 0
        var last = -1
        // The client never reads: the kernel's buffers fill within some MiB.
        for _ in 0..<10_000 {
            last = try chunk.withUnsafeBytes { try server.send($0) }
            if last == 0 { break }
            total += last
        }
        #expect(last == 0)
        #expect(total > 0)
    }

    @Test func resetOnCloseResetsThePeer() throws {
        let (listener, client, server) = try connectedPair()
        defer { closeAll(listener, client) }
        try server.setResetOnClose()
        server.close()
        var buffer = [UInt8](repeating: 0, count: 16)
        #expect {
            _ = try buffer.withUnsafeMutableBytes { try client.read(into: $0) }
        } throws: { error in
            (error as? SystemError)?.errno == ECONNRESET
        }
    }

    @Test func optionsTakeOnAnOpenSocket() throws {
        let (listener, client, server) = try connectedPair()
        defer { closeAll(listener, client, server) }
        try server.setNoDelay()
        try client.setBlockingTimeouts(seconds: 1)
        var on: Int32 = 0
        var length = socklen_t(MemoryLayout<Int32>.size)
        #expect(getsockopt(server.descriptor, Int32(IPPROTO_TCP), TCP_NODELAY, &on, &length) == 0)
        #expect(on != 0)
    }
}
