import CCurl
import EventLoops
#if canImport(Glibc)
import Glibc
#endif
import HTTP1

/// One connection to the upstream. libcurl opens it (resolve, connect, TLS
/// with verification) as a CONNECT_ONLY transfer and keeps it: the easy
/// handle stays in the multi handle for as long as the connection lives,
/// because removing it closes the connection. The proxy then writes requests
/// and reads answers on it itself.
///
/// Confined to its client's loop.
final class UpstreamConnection: EventHandler, PoolableConnection {
    enum State {
        case connecting
        case busy
        case idle
        case closed
    }

    let easy: UnsafeMutableRawPointer
    let tls: Bool
    unowned let client: UpstreamClient
    var state = State.connecting
    /// Known once connected; nil again once closed (libcurl may close it
    /// first: see UpstreamClient.socketClosing).
    var socket: Socket?
    var exchange: UpstreamExchange?
    /// Whether an exchange has completed on it before: a request on a reused
    /// connection can meet a close the server sent while it was idle.
    var reused = false
    /// The server's `Keep-Alive: timeout=N` less a margin, in nanoseconds.
    var serverIdleLimit: Nanoseconds?
    /// EPOLLOUT is in the registered events.
    var watchingWritable = false

    init(easy: UnsafeMutableRawPointer, tls: Bool, client: UpstreamClient) {
        self.easy = easy
        self.tls = tls
        self.client = client
    }

    var isOpen: Bool { socket != nil }

    func handleEvent(_ events: UInt32) {
        client.connectionEvent(self, events)
    }

    /// Writes from `buffer`; bytes written, 0 when the socket is full, or nil on error.
    func send(_ buffer: UnsafeRawBufferPointer) -> Int? {
        send(buffer, then: UnsafeRawBufferPointer(start: nil, count: 0))
    }

    /// Writes `first` then `second` in one call on plain HTTP (`sendmsg`
    /// with both); on TLS, `first` alone (libcurl sends one buffer a call).
    /// Bytes written, 0 when the socket is full, or nil on error.
    func send(_ first: UnsafeRawBufferPointer, then second: UnsafeRawBufferPointer) -> Int? {
        guard let socket else { return nil }
        if tls {
            let buffer = first.isEmpty ? second : first
            if buffer.isEmpty { return 0 }
            var n = 0
            let rc = curl_easy_send(easy, buffer.baseAddress, buffer.count, &n)
            if rc == CURLE_AGAIN { return 0 }
            return rc == CURLE_OK ? n : nil
        }
        // Plain HTTP: libcurl would only wrap this same call (after finding
        // the connection in its cache), so the socket is written directly.
        return try? socket.send(first, second)
    }

    /// Writes `exchange`'s request from byte `offset` on: the head's rest
    /// and the body together where the connection can (plain HTTP: one
    /// `sendmsg`), then the body's rest. Bytes written, 0 when the socket
    /// is full, or nil on error.
    func sendRequest(_ exchange: UpstreamExchange, from offset: Int) -> Int? {
        if offset < exchange.head.count {
            return exchange.head.withUnsafeBytes { head in
                let rest = UnsafeRawBufferPointer(rebasing: head[offset...])
                guard let body = exchange.body else { return send(rest) }
                return body.withUnsafeBytes { send(rest, then: $0) }
            }
        }
        let bodyOffset = offset - exchange.head.count
        return exchange.body!.withUnsafeBytes { send(UnsafeRawBufferPointer(rebasing: $0[bodyOffset...])) }
    }

    /// Adds or removes write events (read events stay, edge-triggered).
    func watchWritable(_ on: Bool) throws(SystemError) {
        guard on != watchingWritable else { return }
        guard let socket else { return }
        try client.loop.modify(socket, events: UpstreamClient.readEvents | (on ? EventLoop.writable : 0))
        watchingWritable = on
    }

    enum ReadResult {
        case bytes(Int)
        case wouldBlock
        case closed
        case failed(String)
    }

    func receive(into buffer: UnsafeMutableRawBufferPointer) -> ReadResult {
        guard let socket else { return .closed }
        if tls {
            var n = 0
            let rc = curl_easy_recv(easy, buffer.baseAddress, buffer.count, &n)
            if rc == CURLE_AGAIN { return .wouldBlock }
            if rc != CURLE_OK { return .failed(String(cString: curl_easy_strerror(rc))) }
            return n == 0 ? .closed : .bytes(n)
        }
        do {
            switch try socket.read(into: buffer) {
            case .bytes(let n): return .bytes(n)
            case .end: return .closed
            case .wouldBlock: return .wouldBlock
            }
        } catch {
            return .failed(error.description)
        }
    }
}
