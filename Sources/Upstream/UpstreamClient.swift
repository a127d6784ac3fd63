import CCurl
#if canImport(Glibc)
import Glibc
#endif
import EventLoops
import HTTP1
import Synchronization

/// Exchanges with the upstream on one event loop.
///
/// libcurl makes the connections: one multi handle per loop, driven with
/// `curl_multi_socket_action` in the loop's epoll set, runs each connect
/// (resolve, TCP, TLS with peer and host verification, no proxy) as a
/// CONNECT_ONLY transfer. Once connected, the connection is the proxy's: it
/// writes the request head and body and reads the answer with the HTTP1
/// parser, through `curl_easy_send`/`curl_easy_recv` for TLS and on the
/// socket for plain HTTP. Kept-alive connections wait in a pool, watched by
/// epoll so that one the server closes is dropped at once.
///
/// Deciding every retry here is the point: a request is re-sent only when it
/// is `resendable` (GET, HEAD, OPTIONS, or carries a V2 Idempotency-Key) and
/// met a reused connection that failed before any byte of an answer; any
/// other request whose connection fails is answered 502, never sent twice.
///
/// `@unchecked Sendable`: confined to `loop`.
public final class UpstreamClient: @unchecked Sendable {
    public let loop: EventLoop
    public let configuration: UpstreamConfiguration
    private let endpoint: Endpoint
    private var multi: UnsafeMutableRawPointer?
    /// libcurl's sockets while it connects them.
    private var sockets: [Int32: CurlSocket] = [:]
    /// Connected connections by descriptor. libcurl can close one of these
    /// itself (see `socketClosing`); this is how the client hears of it.
    private var connectedByFD: [Int32: UpstreamConnection] = [:]
    /// Connections whose socket libcurl closed, handled after the libcurl
    /// call that closed them has returned.
    private var lost: [UpstreamConnection] = []
    private var curlDeadline: UInt64?
    /// Kept-alive connections, most recently used last.
    private var idle: [UpstreamConnection] = []
    /// Running exchanges, for the timeout sweep.
    private var running: [UpstreamExchange] = []
    private var sweepDeadline: UInt64?
    /// When the oldest idle connection passes the idle timeout.
    private var idleSweepDeadline: UInt64?
    private let maxIdleNanoseconds: UInt64
    private let timeoutNanoseconds: UInt64
    /// A streamed chunked body's decoded bytes, on their way to the sink.
    private var decoded: [UInt8] = []
    private var spareHandles: [UnsafeMutableRawPointer] = []
    /// The loop's TLS session cache, set on every easy handle: without it
    /// each handle keeps its own, and a handle that has never connected
    /// (every one the pool adds as concurrency grows) does a full handshake.
    /// Failure when it could not be made; every connect then fails with it.
    /// None for plain HTTP, and once closed.
    private var sessionShare: Result<UnsafeMutableRawPointer, UpstreamError>?
    private var errorBuffers: [UnsafeMutableRawPointer: UnsafeMutablePointer<CChar>] = [:]
    /// Every read lands here first: one buffer per loop.
    private let readBuffer = UnsafeMutableRawBufferPointer.allocate(byteCount: 65536, alignment: 16)
    private let opened = Atomic<Int>(0)

    /// Kept-alive connections per loop beyond which the oldest is closed.
    static let maxIdleConnections = 512
    static let maxAnswerHeadBytes = 65536
    /// The most plaintext one TLS record carries.
    static let tlsRecordBytes = 16384
    /// A body still coming once this much of it is buffered is streamed.
    static let streamThreshold = 65536
    static let sweepNanoseconds: UInt64 = 50_000_000
    /// Edge-triggered; writable only while a request waits for room.
    static let readEvents = EventLoop.readable | EventLoop.hangup | EventLoop.edgeTriggered

    /// Upstream connections opened so far (new TCP/TLS connections, not
    /// reuses). Readable from any thread.
    public var connectionsOpened: Int { opened.load(ordering: .relaxed) }

    /// Kept-alive connections waiting in the pool; on the loop.
    public var idleConnectionCount: Int {
        loop.assertInLoop()
        return idle.count
    }

    /// Once per process, before any thread uses libcurl.
    public static let globalInit: Void = {
        curl_global_init(Int(CURL_GLOBAL_ALL))
    }()

    public static var versionDescription: String { String(cString: curl_version()) }

    public init(loop: EventLoop, configuration: UpstreamConfiguration) {
        _ = Self.globalInit
        self.loop = loop
        self.configuration = configuration
        self.endpoint = Endpoint(configuration.baseURL)
        self.maxIdleNanoseconds = UInt64(max(1, configuration.idleTimeoutMilliseconds)) &* 1_000_000
        self.timeoutNanoseconds = UInt64(max(1, configuration.timeoutMilliseconds)) &* 1_000_000
        self.sessionShare = endpoint.tls ? Self.makeSessionShare() : nil
    }

    /// A share of TLS sessions alone. Not the DNS cache: every handle in a
    /// multi handle already uses the multi handle's (libcurl 7.88,
    /// `curl_multi_add_handle`), and there is one multi handle per loop. Not
    /// the connection cache: the pool owns the connections (see
    /// docs/architecture.md). No lock functions: libcurl needs them only when
    /// handles sharing the data run on several threads, and every handle of
    /// this share runs on the client's loop alone.
    ///
    /// libcurl 7.88 keeps one session per server, replaced by each ticket a
    /// connection receives; OpenSSL lets a TLS 1.3 session resume one
    /// handshake, so a connection that starts after another has resumed with
    /// it, before that one's ticket is read, does a full handshake.
    private static func makeSessionShare() -> Result<UnsafeMutableRawPointer, UpstreamError> {
        guard let share = curl_share_init() else {
            return .failure(.unreachable("cannot set up the TLS session cache: out of memory"))
        }
        let rc = ccurl_share_setopt_lock_data(share, CURLSHOPT_SHARE, CURL_LOCK_DATA_SSL_SESSION)
        guard rc == CURLSHE_OK else {
            _ = curl_share_cleanup(share)  // no handle uses it yet
            return .failure(.unreachable("cannot set up the TLS session cache: \(String(cString: curl_share_strerror(rc)))"))
        }
        return .success(share)
    }

    deinit {
        readBuffer.deallocate()
    }

    private func ensureMulti() -> UnsafeMutableRawPointer {
        if let multi { return multi }
        let m = curl_multi_init()!
        let me = Unmanaged.passUnretained(self).toOpaque()
        ccurl_multi_setopt_socket_callback(m, Self.socketCallback)
        ccurl_multi_setopt_pointer(m, CURLMOPT_SOCKETDATA, me)
        ccurl_multi_setopt_timer_callback(m, Self.timerCallback)
        ccurl_multi_setopt_pointer(m, CURLMOPT_TIMERDATA, me)
        multi = m
        loop.addDeadlineSource(self)
        return m
    }

    // MARK: - Sending

    /// Sends `request`; `completion` runs on the loop, exactly once.
    public func send(
        _ request: UpstreamRequest, completion: @escaping (Result<UpstreamResponse, UpstreamError>) -> Void
    ) {
        loop.assertInLoop()
        _ = ensureMulti()
        let deadline = MonotonicClock.now() &+ timeoutNanoseconds
        var head = endpoint.requestHead(request)
        // TLS sends one buffer per call: a body that fits one record is
        // copied behind the head, so the request is one record, one write.
        // (Plain HTTP sends head and body together without a copy.)
        let bodyInHead = endpoint.tls && (request.body?.count ?? Int.max) <= Self.tlsRecordBytes
        if bodyInHead, let body = request.body { head.append(contentsOf: body) }
        let exchange = UpstreamExchange(
            request: request, head: head, bodyInHead: bodyInHead, deadline: deadline, completion: completion)
        exchange.slot = running.count
        running.append(exchange)
        if sweepDeadline == nil { sweepDeadline = loop.now &+ Self.sweepNanoseconds }
        start(exchange)
    }

    /// Every method takes a kept-alive connection when there is one (most
    /// recently used first): a payment call is as fast as a read. What makes
    /// that safe is `broken`: a request is never re-sent unless re-sending it
    /// cannot apply it twice.
    private func start(_ exchange: UpstreamExchange) {
        if !exchange.retried, let connection = takeIdle() {
            attach(exchange, to: connection)
            write(connection)
        } else {
            connect(for: exchange)
        }
    }

    private func takeIdle() -> UpstreamConnection? {
        let now = loop.now
        while let connection = idle.popLast() {
            if connection.fd >= 0 && now < connection.reusableUntil { return connection }
            close(connection)
        }
        return nil
    }

    private func attach(_ exchange: UpstreamExchange, to connection: UpstreamConnection) {
        connection.state = .busy
        connection.exchange = exchange
        exchange.connection = connection
    }

    private func connect(for exchange: UpstreamExchange) {
        let multi = ensureMulti()
        guard let easy = spareHandles.popLast() ?? takeNewHandle(for: exchange) else { return }
        errorBuffers[easy]?[0] = 0
        let connection = UpstreamConnection(easy: easy, tls: endpoint.tls, client: self)
        ccurl_easy_setopt_pointer(easy, CURLOPT_PRIVATE, Unmanaged.passUnretained(connection).toOpaque())
        attach(exchange, to: connection)
        connection.state = .connecting
        let rc = curl_multi_add_handle(multi, easy)
        if rc != CURLM_OK {
            connection.state = .closed
            spareHandles.append(easy)
            finish(exchange, .failure(.unreachable("cannot start connecting: \(String(cString: curl_multi_strerror(rc)))")))
        }
    }

    /// A handle that only connects; set up once, reused for later connections.
    private func makeHandle() -> Result<UnsafeMutableRawPointer, UpstreamError> {
        var share: UnsafeMutableRawPointer?
        switch sessionShare {
        case .failure(let error)?: return .failure(error)
        case .success(let made)?: share = made
        case nil: break
        }
        guard let easy = curl_easy_init() else {
            return .failure(.unreachable("cannot set up a connection handle: out of memory"))
        }
        var setup = HandleSetup(easy)
        setup.long(CURLOPT_CONNECT_ONLY, 1)
        setup.string(CURLOPT_URL, endpoint.connectURL)
        setup.long(CURLOPT_NOSIGNAL, 1)
        // Never through a proxy from the environment (http_proxy, https_proxy).
        setup.string(CURLOPT_PROXY, "")
        setup.string(CURLOPT_PROTOCOLS_STR, "http,https")
        setup.long(CURLOPT_HTTP_VERSION, Int(CURL_HTTP_VERSION_1_1))
        setup.long(CURLOPT_TCP_KEEPALIVE, 1)
        // A CONNECT_ONLY connection stays in libcurl's connection cache, where
        // it looks idle from the end of its connect on, whatever the proxy does
        // with it; libcurl would close it there once older than this (118 s by
        // default) the next time it opens a connection. The pool decides reuse.
        setup.long(CURLOPT_MAXAGE_CONN, configuration.libcurlMaxConnectionAgeSeconds)
        // libcurl's own receive buffer is never used (answers are read into
        // the client's buffer): the smallest size spares 15 KiB a connection.
        setup.long(CURLOPT_BUFFERSIZE, 1024)
        setup.long(CURLOPT_CONNECTTIMEOUT_MS, max(1, min(configuration.timeoutMilliseconds, 10_000)))
        if let caFile = configuration.caFile { setup.string(CURLOPT_CAINFO, caFile) }
        setup.check(CURLOPT_CLOSESOCKETFUNCTION, ccurl_easy_setopt_closesocket_callback(easy, Self.closeSocketCallback))
        setup.pointer(CURLOPT_CLOSESOCKETDATA, Unmanaged.passUnretained(self).toOpaque())
        if let share { setup.pointer(CURLOPT_SHARE, share) }
        let errorBuffer = UnsafeMutablePointer<CChar>.allocate(capacity: Int(CURL_ERROR_SIZE) + 1)
        errorBuffer.initialize(repeating: 0, count: Int(CURL_ERROR_SIZE) + 1)
        setup.pointer(CURLOPT_ERRORBUFFER, errorBuffer)
        if let failure = setup.failure {
            // Leaves the share (if it joined it) as it goes.
            curl_easy_cleanup(easy)
            errorBuffer.deallocate()
            return .failure(.unreachable("cannot set up a connection handle: \(failure)"))
        }
        errorBuffers[easy] = errorBuffer
        return .success(easy)
    }

    /// A new handle, or nil once `exchange` has failed for want of one.
    private func takeNewHandle(for exchange: UpstreamExchange) -> UnsafeMutableRawPointer? {
        switch makeHandle() {
        case .success(let easy):
            return easy
        case .failure(let error):
            finish(exchange, .failure(error))
            return nil
        }
    }

    /// libcurl finished a connect: the socket becomes the proxy's.
    private func connected(_ connection: UpstreamConnection, code: CURLcode) {
        guard let exchange = connection.exchange, connection.state == .connecting else {
            close(connection)
            return
        }
        var fd: curl_socket_t = -1
        if code == CURLE_OK { ccurl_easy_getinfo_socket(connection.easy, CURLINFO_ACTIVESOCKET, &fd) }
        guard code == CURLE_OK, fd >= 0 else {
            let detail = Self.connectFailure(code, errorText(connection.easy, code))
            close(connection)
            finish(exchange, code == CURLE_OPERATION_TIMEDOUT ? .failure(.timeout) : .failure(.unreachable(detail)))
            return
        }
        opened.add(1, ordering: .relaxed)
        if let socket = sockets.removeValue(forKey: fd) { loop.unregister(fd, handler: socket) }
        connection.fd = fd
        connectedByFD[fd] = connection
        do {
            try loop.register(fd, events: Self.readEvents, handler: connection)
        } catch {
            close(connection)
            finish(exchange, .failure(.unreachable("cannot watch the upstream connection: \(error)")))
            return
        }
        connection.state = .busy
        write(connection)
    }

    /// What a failed connect means to an operator: a refused certificate
    /// is a matter of the CA (`--upstream-ca-file`, the trust store), not
    /// of the network or the credentials, and says so.
    static func connectFailure(_ code: CURLcode, _ detail: String) -> String {
        switch code {
        case CURLE_PEER_FAILED_VERIFICATION, CURLE_SSL_ISSUER_ERROR, CURLE_SSL_PINNEDPUBKEYNOTMATCH:
            return "the upstream's TLS certificate was refused (\(detail)); check the CA it is verified against "
                + "(--upstream-ca-file, or the system trust store); nothing was sent"
        case CURLE_SSL_CACERT_BADFILE:
            return "the CA file to verify the upstream with cannot be used (\(detail)); nothing was sent"
        case CURLE_SSL_CONNECT_ERROR:
            return "the TLS handshake with the upstream failed (\(detail)); nothing was sent"
        default:
            return detail
        }
    }

    private func errorText(_ easy: UnsafeMutableRawPointer, _ code: CURLcode) -> String {
        let message = errorBuffers[easy].map { String(cString: $0) } ?? ""
        return message.isEmpty ? String(cString: curl_easy_strerror(code)) : message
    }

    // MARK: - The exchange on a connection

    func connectionEvent(_ connection: UpstreamConnection, _ events: UInt32) {
        switch connection.state {
        case .busy:
            guard let exchange = connection.exchange else { return }
            if exchange.sent < exchange.totalBytes {
                write(connection)
            } else {
                read(connection)
            }
        case .idle:
            probeIdle(connection)
        case .connecting, .closed:
            break
        }
    }

    private func write(_ connection: UpstreamConnection) {
        guard let exchange = connection.exchange else { return }
        while exchange.sent < exchange.totalBytes {
            let written: Int?
            if exchange.sent < exchange.head.count {
                written = exchange.head.withUnsafeBytes { head in
                    let rest = UnsafeRawBufferPointer(rebasing: head[exchange.sent...])
                    guard !exchange.bodyInHead, let body = exchange.request.body, !body.isEmpty else {
                        return connection.send(rest)
                    }
                    // The head's rest and the body in one call where the
                    // connection can (plain HTTP: one sendmsg).
                    return body.withUnsafeBytes { connection.send(rest, then: $0) }
                }
            } else {
                let offset = exchange.sent - exchange.head.count
                written = exchange.request.body!.withUnsafeBytes { connection.send(UnsafeRawBufferPointer(rebasing: $0[offset...])) }
            }
            guard let written else {
                broken(connection, exchange, "sending the request failed")
                return
            }
            if written == 0 {
                // The socket is full: watch for room (small requests never get here).
                if !connection.watchingWritable {
                    do {
                        try loop.modify(connection.fd, events: Self.readEvents | EventLoop.writable)
                    } catch {
                        broken(connection, exchange, "cannot watch the upstream connection: \(error)")
                        return
                    }
                    connection.watchingWritable = true
                }
                return
            }
            exchange.sent += written
        }
        if connection.watchingWritable {
            connection.watchingWritable = false
            do {
                try loop.modify(connection.fd, events: Self.readEvents)
            } catch {
                broken(connection, exchange, "cannot watch the upstream connection: \(error)")
                return
            }
        }
        // No read now: the answer cannot be there yet, and trying would cost
        // a `recv` that fails with EAGAIN. Its arrival is an epoll event.
    }

    private func read(_ connection: UpstreamConnection) {
        while let exchange = connection.exchange, connection.state == .busy, !exchange.paused {
            switch connection.receive(into: readBuffer) {
            case .bytes(let n):
                exchange.receivedAny = true
                consume(UnsafeRawBufferPointer(rebasing: readBuffer[0..<n]), connection, exchange)
            case .wouldBlock:
                return
            case .closed:
                peerClosed(connection, exchange)
                return
            case .failed(let why):
                broken(connection, exchange, why)
                return
            }
        }
    }

    /// The connection ended under an exchange: the end of a close-delimited
    /// answer, or a broken exchange.
    private func peerClosed(_ connection: UpstreamConnection, _ exchange: UpstreamExchange) {
        if exchange.answer != nil, case .untilClose = exchange.framing {
            complete(connection, exchange, reusable: false)
        } else {
            broken(connection, exchange, exchange.receivedAny
                   ? "the upstream closed the connection in the middle of its answer"
                   : "the upstream closed the connection without answering")
        }
    }

    private func consume(_ bytes: UnsafeRawBufferPointer, _ connection: UpstreamConnection, _ exchange: UpstreamExchange) {
        if exchange.answer != nil {
            readBody(bytes, connection, exchange)
        } else if exchange.inbox.isEmpty {
            // Usually the whole head arrives in one read: parsed where it
            // landed, so the body is copied once, into the answer.
            if !readHead(bytes, connection, exchange) { exchange.inbox.append(contentsOf: bytes) }
        } else {
            exchange.inbox.append(contentsOf: bytes)
            let inbox = exchange.inbox
            exchange.inbox = []
            if !inbox.withUnsafeBytes({ readHead($0, connection, exchange) }) { exchange.inbox = inbox }
        }
    }

    /// Reads the answer's head from `bytes` (interim 1xx answers skipped) and
    /// passes what follows it on as body. False when the head is not all
    /// there yet, and nothing was taken.
    private func readHead(_ bytes: UnsafeRawBufferPointer, _ connection: UpstreamConnection,
                          _ exchange: UpstreamExchange) -> Bool {
        var offset = 0
        while true {
            let rest = UnsafeRawBufferPointer(rebasing: bytes[offset...])
            switch ResponseHeadParser.parse(rest, maxHeadBytes: Self.maxAnswerHeadBytes) {
            case .incomplete:
                if offset == 0 { return false }
                exchange.inbox = Array(rest)  // after an interim answer
                return true
            case .failure(let why):
                fail(connection, exchange, .failed(why.description))
                return true
            case .complete(let head):
                if head.status < 200 {
                    if head.status == 101 {
                        fail(connection, exchange, .failed("the upstream switched protocols"))
                        return true
                    }
                    offset += head.length
                    continue
                }
                guard beginAnswer(head, UnsafeRawBufferPointer(rebasing: rest[0..<head.length]), exchange) else {
                    fail(connection, exchange, .failed(tooLarge))
                    return true
                }
                if head.length == rest.count, case .none = exchange.framing {
                    complete(connection, exchange, reusable: !head.closes)
                } else {
                    readBody(UnsafeRawBufferPointer(rebasing: rest[head.length...]), connection, exchange)
                }
                return true
            }
        }
    }

    /// A field name starting with `X-Iamport-Proxy-`, in any case.
    static func isProxyField<Name: Collection>(_ name: Name) -> Bool where Name.Element == UInt8 {
        name.count > 16 && name.prefix(16).equalsLowercased("x-iamport-proxy-")
    }

    /// `timeout=N` of a `Keep-Alive` field value, N being at most 9 digits.
    static func keepAliveTimeout<Bytes: Collection>(_ value: Bytes) -> Int? where Bytes.Element == UInt8 {
        var seconds: Int?
        for parameter in value.split(separator: UInt8(ascii: ",")) {
            let trimmed = parameter.drop { $0 == ASCII.space || $0 == ASCII.tab }
            guard trimmed.count > 8, trimmed.prefix(8).equalsLowercased("timeout=") else { continue }
            let digits = trimmed.dropFirst(8).prefix { $0 != ASCII.space && $0 != ASCII.tab }
            guard !digits.isEmpty, digits.count <= 9, digits.allSatisfy({ $0 >= 0x30 && $0 <= 0x39 }) else { return nil }
            seconds = digits.reduce(0) { $0 * 10 + Int($1 - 0x30) }
        }
        return seconds
    }

    private var tooLarge: String { "upstream answer larger than \(configuration.maxResponseBytes) bytes" }

    /// The answer's status and end-to-end fields, and how its body ends.
    /// False when the declared length is over the limit.
    private func beginAnswer(_ head: UpstreamHead, _ bytes: UnsafeRawBufferPointer, _ exchange: UpstreamExchange) -> Bool {
        var answer = UpstreamResponse(status: head.status)
        if !head.reason.isEmpty {
            let phrase = UnsafeRawBufferPointer(rebasing: bytes[head.reason])
            // The usual phrase is written by the serializer byte for byte.
            let standard = ResponseSerializer.reasonPhrase(head.status)
            if !standard.withUTF8Buffer({ phrase.elementsEqual($0) }) { answer.reason = Array(phrase) }
        }
        var block: [UInt8] = []
        block.reserveCapacity(head.length)
        for field in head.fields {
            switch field.kind {
            case .contentLength:
                continue  // written again by the serializer
            case .requestID:
                continue  // the proxy's own is added: the upstream cannot speak for the proxy
            case .keepAlive:
                if let seconds = Self.keepAliveTimeout(bytes[field.value]) {
                    // Reuse stops a second before the server's own limit.
                    exchange.connection?.serverIdleLimit =
                        UInt64(max(0, min(seconds, 3600) - 1)) &* 1_000_000_000
                }
                continue
            case .other:
                // Nor may it speak in the proxy's name (`X-Iamport-Proxy-Error`,
                // `X-Iamport-Proxy-Replayed`, …).
                if Self.isProxyField(bytes[field.name]) { continue }
            default:
                break
            }
            // Hop-by-hop, or named in the answer's `Connection`: decided as for requests.
            if head.isHopByHop(field, in: bytes) { continue }
            block.append(contentsOf: bytes[field.name.lowerBound..<field.value.upperBound])
            block.append(ASCII.cr)
            block.append(ASCII.lf)
        }
        answer.headerBlock = block
        answer.declaredLength = head.contentLength
        let noBody = exchange.request.method == .head || head.status == 204 || head.status == 304
        if noBody {
            exchange.framing = .none
        } else if head.chunked {
            exchange.framing = .chunked(ChunkedDecoder(limits: Limits(maxBodyBytes: configuration.maxResponseBytes)))
        } else if let length = head.contentLength {
            if length > configuration.maxResponseBytes { return false }
            // Never more than is buffered before the body streams: the
            // declared length is the upstream's word, not an allocation size.
            answer.body.reserveCapacity(length <= Self.streamThreshold + 65536 ? length : Self.streamThreshold)
            exchange.framing = .length(remaining: length)
        } else {
            exchange.framing = .untilClose
        }
        exchange.answer = answer
        exchange.closeAfter = head.closes  // reuse is off either way
        return true
    }

    private func readBody(_ bytes: UnsafeRawBufferPointer, _ connection: UpstreamConnection, _ exchange: UpstreamExchange) {
        switch exchange.framing {
        case .none:
            if !bytes.isEmpty { exchange.closeAfter = true }
            complete(connection, exchange, reusable: !exchange.closeAfter)
        case .length(let remaining):
            let take = min(remaining, bytes.count)
            if take < bytes.count { exchange.closeAfter = true }
            exchange.framing = .length(remaining: remaining - take)
            guard pass(UnsafeRawBufferPointer(rebasing: bytes[0..<take]), connection, exchange) else { return }
            if remaining - take == 0 {
                complete(connection, exchange, reusable: !exchange.closeAfter)
            } else {
                streamIfLarge(connection, exchange)
            }
        case .chunked(var decoder):
            exchange.framing = .none  // the decoder is moved out while it works
            let outcome: ChunkedDecoder.Outcome
            if exchange.streaming {
                decoded.removeAll(keepingCapacity: true)
                outcome = decoder.decode(bytes, into: &decoded)
            } else {
                outcome = decoder.decode(bytes, into: &exchange.answer!.body)
            }
            switch outcome {
            case .needMore:
                exchange.framing = .chunked(decoder)
            case .done(let consumed):
                if consumed < bytes.count { exchange.closeAfter = true }
            case .failure(.bodyTooLarge):
                fail(connection, exchange, .failed(tooLarge))
                return
            case .failure:
                fail(connection, exchange, .failed("malformed chunked answer from the upstream"))
                return
            }
            if exchange.streaming {
                guard decoded.withUnsafeBytes({ pass($0, connection, exchange) }) else { return }
            }
            if case .done = outcome {
                complete(connection, exchange, reusable: !exchange.closeAfter)
            } else {
                streamIfLarge(connection, exchange)
            }
        case .untilClose:
            guard pass(bytes, connection, exchange) else { return }
            streamIfLarge(connection, exchange)
        }
    }

    /// Body bytes: kept in the answer while it is buffered, handed to the
    /// sink once it streams. False when the exchange ended meanwhile (a
    /// sink can cancel it, and a body over the limit fails it).
    private func pass(_ bytes: UnsafeRawBufferPointer, _ connection: UpstreamConnection, _ exchange: UpstreamExchange) -> Bool {
        let (total, overflow) = exchange.bodyBytes.addingReportingOverflow(bytes.count)
        guard !overflow, total <= configuration.maxResponseBytes else {
            fail(connection, exchange, .failed(tooLarge))
            return false
        }
        exchange.bodyBytes = total
        guard exchange.streaming else {
            exchange.answer!.body.append(contentsOf: bytes)
            return true
        }
        guard let sink = exchange.sink else { return false }
        if bytes.isEmpty { return true }
        if sink.body(bytes) {
            // The timeout bounds each stretch of upstream bytes.
            exchange.deadline = loop.now &+ timeoutNanoseconds
        } else {
            // The client is behind: no more reads until it catches up, and
            // no upstream timeout meanwhile (the client's own limit applies).
            exchange.paused = true
            exchange.deadline = .max
        }
        return exchange.connection === connection
    }

    /// An answer still coming whose buffered body has reached the threshold
    /// goes to the client now, its head first, and streams from here on:
    /// what an exchange holds stays bounded whatever the answer's size.
    private func streamIfLarge(_ connection: UpstreamConnection, _ exchange: UpstreamExchange) {
        guard !exchange.streaming, exchange.connection === connection,
            let body = exchange.answer?.body, body.count >= Self.streamThreshold
        else { return }
        exchange.streaming = true
        let stream = UpstreamBodyStream(client: self, exchange: exchange)
        var answer = exchange.answer!
        answer.stream = stream
        exchange.answer!.body = []
        let completion = exchange.completion
        exchange.completion = nil
        // The receiver starts the stream (or cancels it) before it returns.
        completion?(.success(answer))
        if exchange.connection === connection && exchange.sink == nil {
            cancel(exchange)
        }
    }

    // MARK: - Streamed bodies (UpstreamBodyStream's calls)

    func start(_ exchange: UpstreamExchange, sink: UpstreamBodySink) {
        loop.assertInLoop()
        guard exchange.streaming, exchange.connection != nil else { return }
        exchange.sink = sink
    }

    func resume(_ exchange: UpstreamExchange) {
        loop.assertInLoop()
        guard exchange.paused, let connection = exchange.connection else { return }
        exchange.paused = false
        exchange.deadline = loop.now &+ timeoutNanoseconds
        read(connection)
    }

    /// The body is not wanted: the connection, mid-answer, cannot be reused.
    func cancel(_ exchange: UpstreamExchange) {
        loop.assertInLoop()
        exchange.sink = nil
        guard let connection = exchange.connection else { return }
        close(connection)
        finish(exchange, .failure(.failed("the answer was not wanted any more")))
    }

    /// The whole answer is in: the connection goes back to the pool when
    /// it can carry another request.
    private func complete(_ connection: UpstreamConnection, _ exchange: UpstreamExchange, reusable: Bool) {
        let answer = exchange.answer!
        exchange.answer = nil
        if reusable {
            park(connection)
        } else {
            close(connection)
        }
        finish(exchange, .success(answer))
    }

    /// The connection broke. A resendable request (GET, HEAD, OPTIONS, or a
    /// V2 request with an Idempotency-Key) that met a reused connection
    /// before any byte of an answer goes once more, on a fresh connection
    /// (the server may have closed it while idle). Anything else fails: a
    /// POST, PUT, PATCH or DELETE whose request may have reached the server
    /// is never sent again, whatever the connection, and the message says
    /// its outcome is unknown.
    private func broken(_ connection: UpstreamConnection, _ exchange: UpstreamExchange, _ why: String) {
        let retriable = exchange.request.resendable
        if connection.reused && !exchange.receivedAny && retriable && !exchange.retried {
            close(connection)
            exchange.retried = true
            exchange.resetProgress()
            connect(for: exchange)
            return
        }
        if !retriable && !exchange.receivedAny {
            fail(connection, exchange, .failed(
                "\(why); the request was not re-sent, and may or may not have been applied"))
            return
        }
        fail(connection, exchange, .failed(why))
    }

    private func fail(_ connection: UpstreamConnection, _ exchange: UpstreamExchange, _ error: UpstreamError) {
        close(connection)
        finish(exchange, .failure(error))
    }

    /// Hands the outcome over, once.
    private func finish(_ exchange: UpstreamExchange, _ result: Result<UpstreamResponse, UpstreamError>) {
        exchange.connection = nil
        if exchange.slot >= 0 {
            let last = running.removeLast()
            if last !== exchange {
                running[exchange.slot] = last
                last.slot = exchange.slot
            }
            exchange.slot = -1
        }
        if running.isEmpty { sweepDeadline = nil }
        if let completion = exchange.completion {
            exchange.completion = nil
            completion(result)
        } else if let sink = exchange.sink {
            // A streamed answer: its head went out before; this is its end.
            exchange.sink = nil
            switch result {
            case .success: sink.end()
            case .failure(let error): sink.failed(error)
            }
        }
    }

    // MARK: - Connections

    private func park(_ connection: UpstreamConnection) {
        connection.exchange = nil
        connection.state = .idle
        connection.reused = true
        var until = loop.now &+ maxIdleNanoseconds
        if let serverLimit = connection.serverIdleLimit { until = min(until, loop.now &+ serverLimit) }
        connection.reusableUntil = until
        idle.append(connection)
        if idle.count > Self.maxIdleConnections { close(idle.removeFirst()) }
        if idleSweepDeadline == nil { idleSweepDeadline = until }
    }

    /// Closes the idle connections past their reuse limit, so that they do
    /// not hold descriptors (theirs and the server's) until next taken.
    private func sweepIdle() {
        let now = loop.now
        var next: UInt64?
        idle.removeAll { connection in
            if connection.reusableUntil <= now {
                close(connection)
                return true
            }
            next = min(next ?? .max, connection.reusableUntil)
            return false
        }
        idleSweepDeadline = next
    }

    /// An idle connection became readable: usually the server closing it (or
    /// a TLS session ticket, which libcurl consumes). Anything else is
    /// unexpected on an idle HTTP/1.1 connection.
    private func probeIdle(_ connection: UpstreamConnection) {
        var byte: UInt8 = 0
        let stillOpen: Bool
        if connection.tls {
            stillOpen = withUnsafeMutableBytes(of: &byte) { connection.receive(into: $0) }.isWouldBlock
        } else {
            let n = Glibc.recv(connection.fd, &byte, 1, Int32(MSG_PEEK | MSG_DONTWAIT))
            stillOpen = n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)
        }
        if stillOpen { return }
        if let i = idle.firstIndex(where: { $0 === connection }) { idle.remove(at: i) }
        close(connection)
    }

    /// libcurl is closing `fd`. Its connection cache still lists every
    /// CONNECT_ONLY connection and may close one the proxy holds (a socket
    /// error, a FIN, an age limit): the connection must hear of it before the
    /// number is reused, or it would later write to, wait on or unregister
    /// whatever descriptor gets that number next.
    fileprivate func socketClosing(_ fd: Int32) {
        if let socket = sockets.removeValue(forKey: fd) { loop.unregister(fd, handler: socket) }
        guard let connection = connectedByFD.removeValue(forKey: fd) else { return }
        loop.unregister(fd, handler: connection)
        connection.fd = -1
        if lost.isEmpty {
            // Inside a libcurl call: act once it has returned.
            loop.schedule(at: 0) { [self] in handleLost() }
        }
        lost.append(connection)
    }

    /// Connections libcurl closed: idle ones leave the pool; an exchange on
    /// one sees the connection end (a safe request on a reused connection
    /// without any answer byte goes again on a fresh one; others fail).
    private func handleLost() {
        while let connection = lost.popLast() {
            switch connection.state {
            case .idle:
                if let i = idle.firstIndex(where: { $0 === connection }) { idle.remove(at: i) }
                close(connection)
            case .busy:
                if let exchange = connection.exchange {
                    peerClosed(connection, exchange)
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
    private func close(_ connection: UpstreamConnection) {
        guard connection.state != .closed else { return }
        connection.state = .closed
        connection.exchange = nil
        if connection.fd >= 0 {
            connectedByFD.removeValue(forKey: connection.fd)
            loop.unregister(connection.fd, handler: connection)
            connection.fd = -1
        }
        if let multi { curl_multi_remove_handle(multi, connection.easy) }
        ccurl_easy_setopt_pointer(connection.easy, CURLOPT_PRIVATE, nil)
        if spareHandles.count < 64 {
            spareHandles.append(connection.easy)
        } else {
            curl_easy_cleanup(connection.easy)
            errorBuffers.removeValue(forKey: connection.easy)?.deallocate()
        }
    }

    /// Exchanges past their deadline fail with a timeout; their connections close.
    private func sweep() {
        let now = loop.now
        var i = 0
        while i < running.count {
            let exchange = running[i]
            if exchange.deadline <= now {
                if let connection = exchange.connection { close(connection) }
                finish(exchange, .failure(.timeout))  // moves the last one into slot i
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
        for connection in idle { close(connection) }
        idle.removeAll()
        lost.removeAll()
        curlDeadline = nil
        sweepDeadline = nil
        idleSweepDeadline = nil
        if let multi {
            loop.removeDeadlineSource(self)
            curl_multi_cleanup(multi)
            self.multi = nil
        }
        for (fd, socket) in sockets { loop.unregister(fd, handler: socket) }
        sockets.removeAll()
        for easy in spareHandles {
            curl_easy_cleanup(easy)
            errorBuffers.removeValue(forKey: easy)?.deallocate()
        }
        spareHandles.removeAll()
        // Last: libcurl refuses to free a share some easy handle still uses.
        if case .success(let share)? = sessionShare {
            let rc = curl_share_cleanup(share)
            assert(rc == CURLSHE_OK, "TLS session share still in use: \(String(cString: curl_share_strerror(rc)))")
            sessionShare = nil
        }
    }

    // MARK: - Driving libcurl's connects

    private static let socketCallback: ccurl_socket_callback = { _, fd, what, userp, _ in
        let client = Unmanaged<UpstreamClient>.fromOpaque(userp!).takeUnretainedValue()
        client.watch(fd, what: what)
        return 0
    }

    private static let timerCallback: ccurl_timer_callback = { _, timeoutMs, userp in
        let client = Unmanaged<UpstreamClient>.fromOpaque(userp!).takeUnretainedValue()
        client.curlDeadline = timeoutMs < 0 ? nil : MonotonicClock.now() &+ UInt64(timeoutMs) &* 1_000_000
        return 0
    }

    /// libcurl closes a socket: forget it first, so its number can be reused.
    private static let closeSocketCallback: ccurl_closesocket_callback = { clientp, fd in
        let client = Unmanaged<UpstreamClient>.fromOpaque(clientp!).takeUnretainedValue()
        client.socketClosing(fd)
        return Glibc.close(fd)
    }

    private func watch(_ fd: Int32, what: Int32) {
        if what == CURL_POLL_REMOVE {
            if let socket = sockets.removeValue(forKey: fd) { loop.unregister(fd, handler: socket) }
            return
        }
        var events: UInt32 = 0
        if what & CURL_POLL_IN != 0 { events |= EventLoop.readable }
        if what & CURL_POLL_OUT != 0 { events |= EventLoop.writable }
        if let socket = sockets[fd] {
            guard socket.events != events else { return }
            do {
                try loop.modify(fd, events: events)
                socket.events = events
                return
            } catch {
                // The number was closed without libcurl's close-socket
                // callback (its resolver's socket pair) and is a new socket
                // now: register that one.
                sockets.removeValue(forKey: fd)
                loop.unregister(fd, handler: socket)
            }
        }
        do {
            let socket = CurlSocket(fd: fd, client: self)
            try loop.register(fd, events: events, handler: socket)
            socket.events = events
            sockets[fd] = socket
        } catch {
            // libcurl then times the connect out.
        }
    }

    func socketAction(_ fd: Int32, events: Int32) {
        guard let multi else { return }
        var running: Int32 = 0
        curl_multi_socket_action(multi, fd, events, &running)
        var remaining: Int32 = 0
        while let message = curl_multi_info_read(multi, &remaining) {
            guard ccurl_msg_kind(message) == CURLMSG_DONE, let easy = ccurl_msg_easy(message) else { continue }
            let code = ccurl_msg_result(message)
            var context: UnsafeMutableRawPointer?
            ccurl_easy_getinfo_pointer(easy, CURLINFO_PRIVATE, &context)
            guard let context else { continue }
            connected(Unmanaged<UpstreamConnection>.fromOpaque(context).takeUnretainedValue(), code: code)
        }
    }
}

extension UpstreamClient: DeadlineSource {
    public var nextDeadline: UInt64? {
        var next = curlDeadline ?? .max
        if let d = sweepDeadline, d < next { next = d }
        if let d = idleSweepDeadline, d < next { next = d }
        return next == .max ? nil : next
    }

    public func deadlineReached() {
        let now = MonotonicClock.now()
        if let d = curlDeadline, d <= now {
            curlDeadline = nil
            socketAction(CURL_SOCKET_TIMEOUT, events: 0)
        }
        if let d = sweepDeadline, d <= now { sweep() }
        if let d = idleSweepDeadline, d <= now { sweepIdle() }
    }
}

extension UpstreamConnection.ReadResult {
    var isWouldBlock: Bool {
        if case .wouldBlock = self { return true }
        return false
    }
}

/// A socket of libcurl's, in the loop's epoll set while libcurl connects it.
final class CurlSocket: EventHandler {
    let fd: Int32
    unowned let client: UpstreamClient
    var events: UInt32?

    init(fd: Int32, client: UpstreamClient) {
        self.fd = fd
        self.client = client
    }

    func handleEvent(_ events: UInt32) {
        var bits: Int32 = 0
        if events & (EventLoop.readable | EventLoop.hangup) != 0 { bits |= CURL_CSELECT_IN }
        if events & EventLoop.writable != 0 { bits |= CURL_CSELECT_OUT }
        if events & EventLoop.error != 0 { bits |= CURL_CSELECT_ERR }
        client.socketAction(fd, events: bits)
    }
}
