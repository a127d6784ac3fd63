#if canImport(Glibc)
import Glibc
#endif
import CSystem

/// A stream socket's descriptor and every POSIX call the project makes on
/// one: nothing else in the code base holds a socket as a raw number.
///
/// A value, not an owner with a `deinit`: the type that holds it (a client
/// `Connection`, the `Acceptor`, an `UpstreamConnection`) closes it exactly
/// once, and a socket libcurl opened is closed by libcurl. Calls retry EINTR,
/// report "try again later" as a value, and throw `SystemError` for every
/// other failure; EBADF is a programming error and stops a debug build.
public struct Socket: Sendable, Hashable, CustomStringConvertible {
    public let descriptor: Int32

    /// Takes a descriptor opened elsewhere (libcurl's, or a test's).
    public init(adopting descriptor: Int32) {
        precondition(descriptor >= 0, "not a descriptor: \(descriptor)")
        self.descriptor = descriptor
    }

    public var description: String { "socket \(descriptor)" }

    // MARK: - Opening

    /// A new TCP socket for `family`, close-on-exec, non-blocking unless asked.
    public static func stream(family: Int32, blocking: Bool = false) throws(SystemError) -> Socket {
        var type = Int32(SOCK_STREAM.rawValue) | Int32(SOCK_CLOEXEC.rawValue)
        if !blocking { type |= Int32(SOCK_NONBLOCK.rawValue) }
        return Socket(adopting: try syscall("socket") { Glibc.socket(family, type, 0) })
    }

    /// A non-blocking socket listening on `address`; closed again if any step fails.
    /// - Returns: the socket and the address it is bound to (the real port when 0 was asked for).
    public static func listening(on address: SocketAddress, backlog: Int32) throws(SystemError) -> (Socket, SocketAddress) {
        let socket = try stream(family: address.family)
        do {
            try socket.setOption(SOL_SOCKET, SO_REUSEADDR, Int32(1), "setsockopt(SO_REUSEADDR)")
            _ = try address.withSockaddr { (sa, length) throws(SystemError) in
                try syscall("bind(\(address))") { Glibc.bind(socket.descriptor, sa, length) }
            }
            _ = try syscall("listen") { Glibc.listen(socket.descriptor, backlog) }
            return (socket, try socket.localAddress())
        } catch {
            socket.close()
            throw error
        }
    }

    /// Accepts one waiting connection, non-blocking and close-on-exec.
    /// - Returns: nil when none is waiting.
    public func accept() throws(SystemError) -> (Socket, SocketAddress)? {
        while true {
            var address = SocketAddress(storage: sockaddr_storage(), length: socklen_t(MemoryLayout<sockaddr_storage>.size))
            let fd = withUnsafeMutablePointer(to: &address.storage) { ptr in
                ptr.withMemoryRebound(to: sockaddr.self, capacity: 1) { csystem_accept4(descriptor, $0, &address.length) }
            }
            if fd >= 0 { return (Socket(adopting: fd), address) }
            let code = errno
            if code == EINTR { continue }
            if code == EAGAIN || code == EWOULDBLOCK { return nil }
            throw failure("accept4", code)
        }
    }

    /// Connects, blocking (for `healthcheck`'s probe, not for the loops).
    public func connect(to address: SocketAddress) throws(SystemError) {
        _ = try address.withSockaddr { (sa, length) throws(SystemError) in
            try syscall("connect(\(address))") { Glibc.connect(descriptor, sa, length) }
        }
    }

    // MARK: - Reading and writing

    public enum ReadOutcome: Equatable, Sendable {
        /// This many bytes (more than zero) landed in the buffer.
        case bytes(Int)
        /// The peer closed its side: no more bytes will come.
        case end
        /// Nothing to read now (a non-blocking socket).
        case wouldBlock
    }

    /// Reads into `buffer` (which is not empty).
    @inline(__always)
    public func read(into buffer: UnsafeMutableRawBufferPointer) throws(SystemError) -> ReadOutcome {
        while true {
            let n = Glibc.recv(descriptor, buffer.baseAddress, buffer.count, 0)
            if n > 0 { return .bytes(n) }
            if n == 0 { return .end }
            let code = errno
            if code == EINTR { continue }
            if code == EAGAIN || code == EWOULDBLOCK { return .wouldBlock }
            throw failure("recv", code)
        }
    }

    /// Whether the peer has closed the connection or sent something,
    /// without consuming it; false while there is nothing to read.
    public func hasInputOrEnd() throws(SystemError) -> Bool {
        var byte: UInt8 = 0
        while true {
            let n = Glibc.recv(descriptor, &byte, 1, Int32(MSG_PEEK | MSG_DONTWAIT))
            if n >= 0 { return true }
            let code = errno
            if code == EINTR { continue }
            if code == EAGAIN || code == EWOULDBLOCK { return false }
            throw failure("recv(MSG_PEEK)", code)
        }
    }

    /// Writes `first`, then `second`, in one `sendmsg` (either may be
    /// empty), without SIGPIPE.
    /// - Returns: the bytes written; 0 when the socket has no room now, or
    ///   when both parts are empty (callers check for pending bytes first).
    @inline(__always)
    public func send(_ first: UnsafeRawBufferPointer, _ second: UnsafeRawBufferPointer = .init(start: nil, count: 0))
        throws(SystemError) -> Int
    {
        var vectors = (iovec(), iovec())
        var count = 0
        withUnsafeMutableBytes(of: &vectors) { raw in
            let slots = raw.bindMemory(to: iovec.self)
            if !first.isEmpty {
                slots[0] = iovec(iov_base: UnsafeMutableRawPointer(mutating: first.baseAddress!), iov_len: first.count)
                count = 1
            }
            if !second.isEmpty {
                slots[count] = iovec(iov_base: UnsafeMutableRawPointer(mutating: second.baseAddress!), iov_len: second.count)
                count += 1
            }
        }
        if count == 0 { return 0 }
        while true {
            let n = withUnsafeMutableBytes(of: &vectors) { raw -> Int in
                var message = msghdr()
                message.msg_iov = raw.baseAddress!.assumingMemoryBound(to: iovec.self)
                message.msg_iovlen = count
                return Glibc.sendmsg(descriptor, &message, csystem_msg_nosignal)
            }
            if n >= 0 { return n }
            let code = errno
            if code == EINTR { continue }
            if code == EAGAIN || code == EWOULDBLOCK { return 0 }
            throw failure("sendmsg", code)
        }
    }

    // MARK: - Options and closing

    /// Sends without waiting to coalesce small writes (Nagle's algorithm off).
    public func setNoDelay() throws(SystemError) {
        try setOption(Int32(IPPROTO_TCP), TCP_NODELAY, Int32(1), "setsockopt(TCP_NODELAY)")
    }

    /// Makes `close` send a reset instead of a FIN (SO_LINGER with 0).
    public func setResetOnClose() throws(SystemError) {
        try setOption(SOL_SOCKET, SO_LINGER, linger(l_onoff: 1, l_linger: 0), "setsockopt(SO_LINGER)")
    }

    /// Bounds each blocking read and write (SO_RCVTIMEO, SO_SNDTIMEO).
    public func setBlockingTimeouts(seconds: Int) throws(SystemError) {
        let limit = timeval(tv_sec: seconds, tv_usec: 0)
        try setOption(SOL_SOCKET, SO_RCVTIMEO, limit, "setsockopt(SO_RCVTIMEO)")
        try setOption(SOL_SOCKET, SO_SNDTIMEO, limit, "setsockopt(SO_SNDTIMEO)")
    }

    /// Half-closes: the peer reads the end of the stream; reading goes on.
    public func shutdownWrite() throws(SystemError) {
        _ = try syscall("shutdown(SHUT_WR)") { Glibc.shutdown(descriptor, csystem_shut_wr) }
    }

    /// Closes the descriptor. Linux releases it whatever `close` returns
    /// (EINTR and EIO included), so only EBADF, a close of a number not
    /// ours, is reported, as the programming error it is.
    public func close() {
        if Glibc.close(descriptor) != 0 {
            let code = errno
            assert(code != EBADF, "\(self) closed twice or never opened")
        }
    }

    public func localAddress() throws(SystemError) -> SocketAddress {
        var address = SocketAddress(storage: sockaddr_storage(), length: socklen_t(MemoryLayout<sockaddr_storage>.size))
        _ = try withUnsafeMutablePointer(to: &address.storage) { (ptr) throws(SystemError) in
            try ptr.withMemoryRebound(to: sockaddr.self, capacity: 1) { (sa) throws(SystemError) in
                try syscall("getsockname") { Glibc.getsockname(descriptor, sa, &address.length) }
            }
        }
        return address
    }

    private func setOption<Value: BitwiseCopyable>(_ level: Int32, _ name: Int32, _ value: Value, _ call: String)
        throws(SystemError)
    {
        _ = try withUnsafeBytes(of: value) { (raw) throws(SystemError) in
            try syscall(call) { Glibc.setsockopt(descriptor, level, name, raw.baseAddress, socklen_t(raw.count)) }
        }
    }

    private func failure(_ call: String, _ code: Int32) -> SystemError {
        assert(code != EBADF, "\(call) on \(self), which is not open")
        return SystemError(call, errno: code)
    }
}
