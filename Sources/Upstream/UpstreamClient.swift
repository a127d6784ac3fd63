import CCurl
#if canImport(Glibc)
import Glibc
#endif
import EventLoops
import HTTP1
import Synchronization

/// Exchanges with the upstream on one event loop: the coordinator.
///
/// `CurlMulti` makes the connections (libcurl, CONNECT_ONLY); once connected,
/// a connection is the client's: it writes the request (`RequestEncoder`) and
/// reads the answer, feeding each exchange's `ExchangeStateMachine` what
/// happened and doing what it answers. Kept-alive connections wait in the
/// `ConnectionPool`, watched by epoll so that one the server closes is
/// dropped at once.
///
/// Retries are the machine's to decide, in one place: a request is re-sent
/// only when it is `resendable` (GET, HEAD, OPTIONS, or carries a V2
/// Idempotency-Key) and met a reused connection that failed before any byte
/// of an answer; any other request whose connection fails is answered 502,
/// never sent twice.
///
/// `@unchecked Sendable`: confined to `loop`.
public final class UpstreamClient: @unchecked Sendable {
    public let loop: EventLoop
    public let configuration: UpstreamConfiguration
    private let encoder: RequestEncoder
    var curl: CurlMulti!
    var pool: ConnectionPool<UpstreamConnection>
    /// Connected connections by descriptor. libcurl can close one of these
    /// itself (see `socketClosing`); this is how the client hears of it.
    var connectedBySocket: [Socket: UpstreamConnection] = [:]
    /// Connections whose socket libcurl closed, handled after the libcurl
    /// call that closed them has returned.
    var lost: [UpstreamConnection] = []
    /// Running exchanges, for the timeout sweep.
    var running: [UpstreamExchange] = []
    var sweepDeadline: Nanoseconds?
    private let timeout: Nanoseconds
    /// A streamed chunked body's decoded bytes, on their way to the sink.
    private var decoded: [UInt8] = []
    /// Every read lands here first: one buffer per loop.
    private let readBuffer = UnsafeMutableRawBufferPointer.allocate(byteCount: 65536, alignment: 16)
    private let opened = Atomic<Int>(0)

    /// Kept-alive connections per loop beyond which the oldest is closed.
    static let maxIdleConnections = 512
    static let sweepNanoseconds: Nanoseconds = 50_000_000
    /// Edge-triggered; writable only while a request waits for room.
    static let readEvents = EventLoop.readable | EventLoop.hangup | EventLoop.edgeTriggered

    /// Upstream connections opened so far (new TCP/TLS connections, not
    /// reuses). Readable from any thread.
    public var connectionsOpened: Int { opened.load(ordering: .relaxed) }

    /// Kept-alive connections waiting in the pool; on the loop.
    public var idleConnectionCount: Int {
        loop.assertInLoop()
        return pool.count
    }

    /// Kept-alive TLS connections whose OpenSSL reads ahead (every one
    /// should: see CurlMulti's handle set-up); on the loop.
    public var idleConnectionsReadingAhead: Int {
        loop.assertInLoop()
        return pool.connections.filter { $0.tls && ccurl_easy_tls_reads_ahead($0.easy) == 1 }.count
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
        let endpoint = Endpoint(configuration.baseURL)
        self.encoder = RequestEncoder(endpoint: endpoint)
        self.timeout = max(1, configuration.timeout)
        self.pool = ConnectionPool(
            idleTimeout: max(1, configuration.idleTimeout),
            capacity: Self.maxIdleConnections)
        self.curl = CurlMulti(client: self, loop: loop, endpoint: endpoint, configuration: configuration)
    }

    deinit {
        readBuffer.deallocate()
    }

    // MARK: - Sending

    /// Sends `request`, with `firstLine` instead of its own when given;
    /// `completion` runs on the loop, exactly once.
    public func send(
        _ request: UpstreamRequest, firstLine: [UInt8]? = nil,
        completion: @escaping (Result<UpstreamResponse, UpstreamError>) -> Void
    ) {
        loop.assertInLoop()
        curl.start()
        let deadline = loop.now &+ timeout  // the loop's time: a deadline seconds away
        let (head, bodyInHead) = encoder.encode(request, firstLine: firstLine)
        // The machine made in the call: a local passed on was copied, then destroyed.
        let exchange = UpstreamExchange(
            request: request, head: head, bodyInHead: bodyInHead,
            machine: ExchangeStateMachine(
                totalBytes: UpstreamExchange.totalBytes(head: head, bodyInHead: bodyInHead, request: request),
                resendable: request.resendable, isHead: request.method == .head,
                maxResponseBytes: configuration.maxResponseBytes, timeout: timeout, deadline: deadline),
            completion: completion)
        exchange.slot = running.count
        running.append(exchange)
        if sweepDeadline == nil { sweepDeadline = loop.now &+ Self.sweepNanoseconds }
        start(exchange)
    }

    /// Every method takes a kept-alive connection when there is one (most
    /// recently used first): a payment call is as fast as a read. What makes
    /// that safe is the machine's retry rule: a request is never re-sent
    /// unless re-sending it cannot apply it twice.
    private func start(_ exchange: UpstreamExchange) {
        if !exchange.machine.retried, let connection = pool.take(now: loop.now, closing: { close($0) }) {
            attach(exchange, to: connection)
            write(connection)
        } else {
            connect(for: exchange)
        }
    }

    private func attach(_ exchange: UpstreamExchange, to connection: UpstreamConnection) {
        connection.state = .busy
        connection.exchange = exchange
        exchange.connection = connection
        exchange.machine.onReusedConnection = connection.reused
    }

    func connect(for exchange: UpstreamExchange) {
        switch curl.connect() {
        case .success(let connection):
            attach(exchange, to: connection)
            connection.state = .connecting
        case .failure(let error):
            finish(exchange, .failure(error))
        }
    }

    /// libcurl finished a connect: the socket becomes the connection's.
    func connectFinished(_ connection: UpstreamConnection, code: CURLcode) {
        guard let exchange = connection.exchange, connection.state == .connecting else {
            close(connection)
            return
        }
        let socket: Socket
        switch curl.connectedSocket(connection, code: code) {
        case .success(let connected):
            socket = connected
        case .failure(let error):
            close(connection)
            finish(exchange, .failure(error))
            return
        }
        opened.add(1, ordering: .relaxed)
        connection.socket = socket
        connectedBySocket[socket] = connection
        do {
            try loop.register(socket, events: Self.readEvents, handler: connection)
        } catch {
            close(connection)
            finish(exchange, .failure(.unreachable("cannot watch the upstream connection: \(error)")))
            return
        }
        connection.state = .busy
        write(connection)
    }

    // MARK: - The exchange on a connection

    func connectionEvent(_ connection: UpstreamConnection, _ events: UInt32) {
        switch connection.state {
        case .busy:
            guard let exchange = connection.exchange else { return }
            if case .writing = exchange.machine.state {
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
        guard let exchange = connection.exchange, case .writing(var sent) = exchange.machine.state else { return }
        do {
            while true {
                guard let written = connection.sendRequest(exchange, from: sent) else {
                    return perform(exchange.machine.connectionBroke("sending the request failed"), connection, exchange)
                }
                // The socket is full: watch for room (small requests never get here).
                if written == 0 { return try connection.watchWritable(true) }
                guard case .writeMore(let from) = exchange.machine.wrote(written) else { break }
                sent = from
            }
            try connection.watchWritable(false)
        } catch {
            perform(exchange.machine.connectionBroke("cannot watch the upstream connection: \(error)"), connection, exchange)
        }
        // No read now: the answer cannot be there yet, and trying would cost
        // a `recv` that fails with EAGAIN. Its arrival is an epoll event.
    }

    func read(_ connection: UpstreamConnection) {
        while let exchange = connection.exchange, connection.state == .busy, !exchange.machine.isPaused {
            switch connection.receive(into: readBuffer) {
            case .bytes(let n):
                let bytes = UnsafeRawBufferPointer(rebasing: readBuffer[0..<n])
                perform(exchange.machine.bytesRead(bytes, decoded: &decoded), connection, exchange, bytes)
            case .wouldBlock:
                return
            case .closed:
                perform(exchange.machine.connectionClosed(), connection, exchange)
                return
            case .failed(let why):
                perform(exchange.machine.connectionBroke(why), connection, exchange)
                return
            }
        }
    }

    /// Does what the exchange's machine answered to an event; `bytes` are
    /// those the event read.
    func perform(_ action: ExchangeStateMachine.Action, _ connection: UpstreamConnection,
                         _ exchange: UpstreamExchange, _ bytes: UnsafeRawBufferPointer = UnsafeRawBufferPointer(start: nil, count: 0)) {
        switch action {
        case .none:
            break
        case .deliver(let answer, let reusable):
            release(connection, of: exchange, reusable: reusable)
            finish(exchange, .success(answer))
        case .handOver(var answer):
            // The receiver starts the stream (or cancels it) before it returns.
            answer.stream = UpstreamBodyStream(client: self, exchange: exchange)
            let completion = exchange.completion
            exchange.completion = nil
            completion?(.success(answer))
            if exchange.connection === connection && exchange.sink == nil { cancel(exchange) }
        case .forward(let piece, let after):
            guard let sink = exchange.sink else { return }
            let taken: Bool?
            switch piece {
            case .input(let range):
                taken = range.isEmpty ? nil : sink.body(UnsafeRawBufferPointer(rebasing: bytes[range]))
            case .decoded:
                taken = decoded.isEmpty ? nil : decoded.withUnsafeBytes { sink.body($0) }
            }
            if let taken {
                if taken { exchange.machine.sinkTook(now: loop.now) } else { exchange.machine.streamPaused() }
            }
            // A sink can cancel the stream as it takes a piece.
            guard exchange.connection === connection, case .end(let reusable) = after else { return }
            release(connection, of: exchange, reusable: reusable)
            retire(exchange)
            exchange.sink = nil
            sink.end()
        case .retry:
            close(connection)
            connect(for: exchange)
        case .fail(let error):
            close(connection)
            finish(exchange, .failure(error))
        }
    }

    /// Hands the outcome over, once: to the completion, or to the sink of a
    /// streamed answer whose head went out before.
    func finish(_ exchange: UpstreamExchange, _ result: Result<UpstreamResponse, UpstreamError>) {
        retire(exchange)
        if let completion = exchange.completion {
            exchange.completion = nil
            completion(result)
        } else if let sink = exchange.sink {
            exchange.sink = nil
            switch result {
            case .success: sink.end()
            case .failure(let error): sink.failed(error)
            }
        }
    }

    /// Out of the running list.
    private func retire(_ exchange: UpstreamExchange) {
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
    }

    // MARK: - Streamed bodies (UpstreamBodyStream's calls)

    func start(_ exchange: UpstreamExchange, sink: UpstreamBodySink) {
        loop.assertInLoop()
        guard exchange.machine.isStreaming, exchange.connection != nil else { return }
        exchange.sink = sink
    }

    func resume(_ exchange: UpstreamExchange) {
        loop.assertInLoop()
        guard let connection = exchange.connection, exchange.machine.streamResumed(now: loop.now) else { return }
        read(connection)
    }

    /// The body is not wanted: the connection, mid-answer, cannot be reused.
    func cancel(_ exchange: UpstreamExchange) {
        loop.assertInLoop()
        exchange.sink = nil
        guard let connection = exchange.connection else { return }
        perform(exchange.machine.cancelled(), connection, exchange)
    }
}
