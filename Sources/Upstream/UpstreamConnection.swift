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
final class UpstreamConnection: EventHandler {
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
    /// Known once connected.
    var fd: Int32 = -1
    var exchange: UpstreamExchange?
    /// Whether an exchange has completed on it before: a request on a reused
    /// connection can meet a close the server sent while it was idle.
    var reused = false
    /// Monotonic time after which an idle connection is closed, not reused.
    var reusableUntil: UInt64 = 0
    /// The server's `Keep-Alive: timeout=N` less a margin, in nanoseconds.
    var serverIdleLimit: UInt64?
    /// EPOLLOUT is in the registered events.
    var watchingWritable = false

    init(easy: UnsafeMutableRawPointer, tls: Bool, client: UpstreamClient) {
        self.easy = easy
        self.tls = tls
        self.client = client
    }

    func handleEvent(_ events: UInt32) {
        client.connectionEvent(self, events)
    }

    /// Writes from `buffer`; bytes written, 0 when the socket is full, or nil on error.
    func send(_ buffer: UnsafeRawBufferPointer) -> Int? {
        if fd < 0 { return nil }  // closed under it (see UpstreamClient.socketClosing)
        if buffer.isEmpty { return 0 }
        if tls {
            var n = 0
            let rc = curl_easy_send(easy, buffer.baseAddress, buffer.count, &n)
            if rc == CURLE_AGAIN { return 0 }
            return rc == CURLE_OK ? n : nil
        }
        // Plain HTTP: libcurl would only wrap this same call (after finding
        // the connection in its cache), so the socket is written directly.
        let n = Glibc.send(fd, buffer.baseAddress, buffer.count, Int32(MSG_NOSIGNAL))
        if n >= 0 { return n }
        return errno == EAGAIN || errno == EWOULDBLOCK ? 0 : nil
    }

    enum ReadResult {
        case bytes(Int)
        case wouldBlock
        case closed
        case failed(String)
    }

    func receive(into buffer: UnsafeMutableRawBufferPointer) -> ReadResult {
        if fd < 0 { return .closed }
        if tls {
            var n = 0
            let rc = curl_easy_recv(easy, buffer.baseAddress, buffer.count, &n)
            if rc == CURLE_AGAIN { return .wouldBlock }
            if rc != CURLE_OK { return .failed(String(cString: curl_easy_strerror(rc))) }
            return n == 0 ? .closed : .bytes(n)
        }
        let n = Glibc.recv(fd, buffer.baseAddress, buffer.count, 0)
        if n > 0 { return .bytes(n) }
        if n == 0 { return .closed }
        if errno == EAGAIN || errno == EWOULDBLOCK { return .wouldBlock }
        return .failed(SystemError("recv").description)
    }
}

/// A request on its way and its answer coming back.
final class UpstreamExchange {
    let request: UpstreamRequest
    /// Request line and fields, serialized once; the body follows from `request.body`.
    let head: [UInt8]
    /// When the sweep fails it: the answer's head is due by then, and once
    /// its body streams, each stretch of it (none while the client is behind).
    var deadline: UInt64
    var completion: ((Result<UpstreamResponse, UpstreamError>) -> Void)?
    var connection: UpstreamConnection?
    /// Position in the client's list of running exchanges.
    var slot = -1
    /// Already moved once to a fresh connection after a reused one failed.
    var retried = false

    // Progress, reset for a retry.
    var sent = 0
    var receivedAny = false
    /// The answer's bytes until its head is complete.
    var inbox: [UInt8] = []
    var answer: UpstreamResponse?
    var framing = Framing.none
    /// The connection cannot carry another request after this answer (the
    /// server said `close`, or sent bytes past the answer's end).
    var closeAfter = false
    /// Body bytes received so far (checked against the answer size limit).
    var bodyBytes = 0
    /// The head went to the caller; the body goes to `sink` as it comes.
    var streaming = false
    var sink: UpstreamBodySink?
    /// The sink is full: no reads until it asks for more.
    var paused = false

    enum Framing {
        case none
        case length(remaining: Int)
        case chunked(ChunkedDecoder)
        case untilClose
    }

    init(request: UpstreamRequest, head: [UInt8], deadline: UInt64,
         completion: @escaping (Result<UpstreamResponse, UpstreamError>) -> Void) {
        self.request = request
        self.head = head
        self.deadline = deadline
        self.completion = completion
    }

    var totalBytes: Int { head.count + (request.body?.count ?? 0) }

    func resetProgress() {
        sent = 0
        receivedAny = false
        inbox.removeAll(keepingCapacity: true)
        answer = nil
        framing = .none
        closeAfter = false
        bodyBytes = 0
    }
}

/// Where the upstream is, and how a request to it is written.
struct Endpoint {
    let tls: Bool
    /// `scheme://authority/`: what libcurl connects to.
    let connectURL: String
    /// `Host` field value.
    let authority: [UInt8]
    /// A path the base URL carries, put before every request's path.
    let pathPrefix: [UInt8]

    init(_ baseURL: String) {
        let bytes = Array(baseURL.utf8)
        var rest = bytes[...]
        var tls = false
        if let i = bytes.firstIndex(of: ASCII.colon), bytes[i...].starts(with: "://".utf8) {
            tls = bytes[..<i].equalsLowercased("https")
            rest = bytes[(i + 3)...]
        }
        let slash = rest.firstIndex(of: ASCII.slash) ?? rest.endIndex
        self.tls = tls
        authority = Array(rest[..<slash])
        var prefix = Array(rest[slash...])
        while prefix.last == ASCII.slash { prefix.removeLast() }
        pathPrefix = prefix
        connectURL = (tls ? "https://" : "http://") + String(decoding: authority, as: UTF8.self) + "/"
    }

    /// `METHOD target HTTP/1.1`, `Host`, the first line (the Authorization),
    /// the request's own lines, `Content-Length` when there is a body (or the
    /// method expects one), and the blank line.
    func requestHead(_ request: UpstreamRequest) -> [UInt8] {
        var head: [UInt8] = []
        head.reserveCapacity(64 + pathPrefix.count + request.pathAndQuery.count + authority.count
                             + request.firstLine.count + request.headerLines.count + 2 * 16)
        var method = request.methodName
        method.withUTF8 { head.append(contentsOf: $0) }
        head.append(ASCII.space)
        head.append(contentsOf: pathPrefix)
        head.append(contentsOf: request.pathAndQuery)
        head.append(contentsOf: " HTTP/1.1\r\nHost: ".utf8)
        head.append(contentsOf: authority)
        head.append(contentsOf: "\r\n".utf8)
        if !request.firstLine.isEmpty {
            head.append(contentsOf: request.firstLine)
            head.append(contentsOf: "\r\n".utf8)
        }
        var start = 0
        for (i, b) in request.headerLines.enumerated() where b == 0 {
            head.append(contentsOf: request.headerLines[start..<i])
            head.append(contentsOf: "\r\n".utf8)
            start = i + 1
        }
        if let body = request.body {
            head.append(contentsOf: "Content-Length: ".utf8)
            head.append(contentsOf: String(body.count).utf8)
            head.append(contentsOf: "\r\n".utf8)
        } else if request.method == .post || request.method == .put || request.method == .patch {
            head.append(contentsOf: "Content-Length: 0\r\n".utf8)
        }
        head.append(contentsOf: "\r\n".utf8)
        return head
    }
}

/// Where a streamed answer's body goes, on the client's loop.
public protocol UpstreamBodySink: AnyObject {
    /// Takes `bytes` (all of them); false when it wants no more until
    /// `UpstreamBodyStream.resume` is called.
    func body(_ bytes: UnsafeRawBufferPointer) -> Bool
    /// The body is complete.
    func end()
    /// The answer broke off (timeout, reset, malformed chunk, too large).
    func failed(_ error: UpstreamError)
}

/// The rest of an answer too large to hold: given with its head to the
/// caller of `UpstreamClient.send`, which must `start` it (or `cancel` it)
/// before returning. Confined to the client's loop.
public final class UpstreamBodyStream: @unchecked Sendable {
    private unowned let client: UpstreamClient
    private weak var exchange: UpstreamExchange?

    init(client: UpstreamClient, exchange: UpstreamExchange) {
        self.client = client
        self.exchange = exchange
    }

    /// The body from here on goes to `sink`.
    public func start(_ sink: UpstreamBodySink) {
        if let exchange { client.start(exchange, sink: sink) }
    }

    /// The sink has room again.
    public func resume() {
        if let exchange { client.resume(exchange) }
    }

    /// The body is not wanted: the upstream connection is closed.
    public func cancel() {
        if let exchange { client.cancel(exchange) }
    }
}
