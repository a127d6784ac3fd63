import CCurl
#if canImport(Glibc)
import Glibc
#endif
import EventLoops
import HTTP1
import Synchronization

/// Exchanges with the upstream through one libcurl multi handle, driven on
/// one event loop with `curl_multi_socket_action`: curl's sockets sit in the
/// loop's epoll set beside the client connections, and its timer is a
/// deadline the loop watches, so a request's whole way (client, upstream, answer) stays on one
/// thread. The multi handle's connection cache keeps upstream connections,
/// TLS included, alive across requests; easy handles are reused.
///
/// `@unchecked Sendable`: confined to `loop`.
public final class UpstreamClient: @unchecked Sendable {
    public let loop: EventLoop
    public let configuration: UpstreamConfiguration
    private var multi: UnsafeMutableRawPointer?
    private var idleHandles: [UnsafeMutableRawPointer] = []
    private var errorBuffers: [UnsafeMutableRawPointer: UnsafeMutablePointer<CChar>] = [:]
    /// libcurl's one timer, watched by the loop as a deadline source.
    private var curlDeadline: UInt64?
    /// libcurl's sockets in the epoll set, with the events registered for
    /// them. A socket libcurl stops watching (an idle kept-alive connection)
    /// stays registered: the next transfer on it usually wants the same
    /// events, so no epoll_ctl is needed either way. libcurl tells us when it
    /// closes one (CLOSESOCKETFUNCTION), so an entry never outlives its
    /// descriptor.
    /// (Entries are objects, changed in place: the dictionary is only read
    /// on the hot path, never modified through an accessor.)
    private var sockets: [Int32: CurlSocket] = [:]
    private var active = 0
    /// The base URL followed by the current request's path: rebuilt in place.
    private var urlScratch: [UInt8]
    private let baseURLLength: Int
    private let opened = Atomic<Int>(0)
    /// Upstream connections opened so far (new TCP/TLS connections, not
    /// reuses). Readable from any thread.
    public var connectionsOpened: Int { opened.load(ordering: .relaxed) }

    /// Once per process, before any thread uses libcurl.
    public static let globalInit: Void = {
        curl_global_init(Int(CURL_GLOBAL_ALL))
    }()

    public static var versionDescription: String { String(cString: curl_version()) }

    public init(loop: EventLoop, configuration: UpstreamConfiguration) {
        _ = Self.globalInit
        self.loop = loop
        self.configuration = configuration
        urlScratch = Array(configuration.baseURL.utf8)
        baseURLLength = urlScratch.count
        urlScratch.reserveCapacity(baseURLLength + 1024)
    }

    /// Creates the multi handle; on the loop.
    private func ensureMulti() -> UnsafeMutableRawPointer {
        if let multi { return multi }
        let m = curl_multi_init()!
        let me = Unmanaged.passUnretained(self).toOpaque()
        ccurl_multi_setopt_socket_callback(m, Self.socketCallback)
        ccurl_multi_setopt_pointer(m, CURLMOPT_SOCKETDATA, me)
        ccurl_multi_setopt_timer_callback(m, Self.timerCallback)
        ccurl_multi_setopt_pointer(m, CURLMOPT_TIMERDATA, me)
        ccurl_multi_setopt_long(m, CURLMOPT_MAXCONNECTS, 512)
        multi = m
        loop.addDeadlineSource(self)
        return m
    }

    /// Sends `request`; `completion` runs on the loop, exactly once.
    public func send(
        _ request: UpstreamRequest, completion: @escaping (Result<UpstreamResponse, UpstreamError>) -> Void
    ) {
        loop.assertInLoop()
        let multi = ensureMulti()
        let easy = idleHandles.popLast() ?? makeHandle()
        let transfer = Transfer(easy: easy, requestBody: request.body ?? [], maxResponseBytes: configuration.maxResponseBytes)
        transfer.completion = completion
        configure(transfer, for: request)
        let context = Unmanaged.passRetained(transfer).toOpaque()
        ccurl_easy_setopt_pointer(easy, CURLOPT_PRIVATE, context)
        ccurl_easy_setopt_pointer(easy, CURLOPT_WRITEDATA, context)
        ccurl_easy_setopt_pointer(easy, CURLOPT_HEADERDATA, context)
        let rc = curl_multi_add_handle(multi, easy)
        if rc != CURLM_OK {
            Unmanaged<Transfer>.fromOpaque(context).release()
            recycle(easy)
            completion(.failure(.unreachable("cannot start the upstream transfer: \(String(cString: curl_multi_strerror(rc)))")))
            return
        }
        active += 1
    }

    /// A new easy handle with the options that never change. Handles are
    /// reused without `curl_easy_reset`, so these are set once.
    private func makeHandle() -> UnsafeMutableRawPointer {
        let easy = curl_easy_init()!
        ccurl_easy_setopt_long(easy, CURLOPT_NOSIGNAL, 1)
        // Never through a proxy from the environment (http_proxy, https_proxy):
        // the upstream is exactly the configured one. (Also spares a getenv per request.)
        ccurl_easy_setopt_string(easy, CURLOPT_PROXY, "")
        ccurl_easy_setopt_string(easy, CURLOPT_PROTOCOLS_STR, "http,https")
        ccurl_easy_setopt_long(easy, CURLOPT_HTTP_VERSION, Int(CURL_HTTP_VERSION_1_1))
        ccurl_easy_setopt_long(easy, CURLOPT_PATH_AS_IS, 1)
        ccurl_easy_setopt_long(easy, CURLOPT_TCP_KEEPALIVE, 1)
        ccurl_easy_setopt_long(easy, CURLOPT_TIMEOUT_MS, configuration.timeoutMilliseconds)
        ccurl_easy_setopt_long(easy, CURLOPT_CONNECTTIMEOUT_MS, min(configuration.timeoutMilliseconds, 10_000))
        if let caFile = configuration.caFile { ccurl_easy_setopt_string(easy, CURLOPT_CAINFO, caFile) }
        ccurl_easy_setopt_data_callback(easy, CURLOPT_WRITEFUNCTION, Transfer.writeCallback)
        ccurl_easy_setopt_data_callback(easy, CURLOPT_HEADERFUNCTION, Transfer.headerCallback)
        ccurl_easy_setopt_closesocket_callback(easy, Self.closeSocketCallback)
        ccurl_easy_setopt_pointer(easy, CURLOPT_CLOSESOCKETDATA, Unmanaged.passUnretained(self).toOpaque())
        let errorBuffer = UnsafeMutablePointer<CChar>.allocate(capacity: Int(CURL_ERROR_SIZE) + 1)
        errorBuffer.initialize(repeating: 0, count: Int(CURL_ERROR_SIZE) + 1)
        errorBuffers[easy] = errorBuffer
        ccurl_easy_setopt_pointer(easy, CURLOPT_ERRORBUFFER, errorBuffer)
        return easy
    }

    /// The options of one request. Every option a previous request on the
    /// same handle may have set is set again here, in an order that matters:
    /// NOBODY survives POSTFIELDS, POSTFIELDS makes a request a POST, HTTPGET
    /// makes it a GET again (and clears NOBODY), and a POST must never be left
    /// without its fields (libcurl would then read the body from standard
    /// input). MethodTests alternates every method on the same handles.
    private func configure(_ transfer: Transfer, for request: UpstreamRequest) {
        let easy = transfer.easy
        // libcurl copies the URL: one scratch buffer serves every request.
        urlScratch.removeSubrange(baseURLLength...)
        urlScratch.append(contentsOf: request.pathAndQuery)
        urlScratch.append(0)
        urlScratch.withUnsafeBufferPointer { ptr in
            ptr.withMemoryRebound(to: CChar.self) { _ = ccurl_easy_setopt_string(easy, CURLOPT_URL, $0.baseAddress) }
        }
        errorBuffers[easy]?[0] = 0
        // libcurl re-sends a request by itself when a reused connection dies
        // before any byte of the answer, whatever the method. The API may
        // already have acted on it (a cancel, a billing-key payment), so only
        // safe methods travel on reused connections; the others get a fresh
        // connection of their own, closed afterwards so that they do not fill
        // the cache.
        let safe = request.method.isSafe
        ccurl_easy_setopt_long(easy, CURLOPT_FRESH_CONNECT, safe ? 0 : 1)
        ccurl_easy_setopt_long(easy, CURLOPT_FORBID_REUSE, safe ? 0 : 1)

        if request.body != nil || request.method == .post {
            // NOBODY outlives POSTFIELDS: clear it first, or a request after a HEAD
            // would go out as a HEAD.
            ccurl_easy_setopt_long(easy, CURLOPT_NOBODY, 0)
            ccurl_easy_setopt_off_t(easy, CURLOPT_POSTFIELDSIZE_LARGE, curl_off_t(transfer.requestBody.count))
            // Read-only access: the array is shared with the request kept for a
            // replay, so mutable access would copy the whole body first.
            // libcurl only reads POSTFIELDS.
            transfer.requestBody.withUnsafeBytes {
                let fields = $0.baseAddress.map { UnsafeMutableRawPointer(mutating: $0) } ?? UnsafeMutableRawPointer(bitPattern: 1)
                _ = ccurl_easy_setopt_pointer(easy, CURLOPT_POSTFIELDS, fields)
            }
            ccurl_easy_setopt_string(easy, CURLOPT_CUSTOMREQUEST, request.method == .post ? nil : request.methodName)
        } else {
            ccurl_easy_setopt_long(easy, CURLOPT_HTTPGET, 1)
            switch request.method {
            case .get:
                ccurl_easy_setopt_string(easy, CURLOPT_CUSTOMREQUEST, nil)
            case .head:
                ccurl_easy_setopt_string(easy, CURLOPT_CUSTOMREQUEST, nil)
                ccurl_easy_setopt_long(easy, CURLOPT_NOBODY, 1)
            default:
                ccurl_easy_setopt_string(easy, CURLOPT_CUSTOMREQUEST, request.methodName)
            }
        }
        let list = transfer.setHeaders(first: request.firstLine, lines: request.headerLines)
        ccurl_easy_setopt_slist(easy, CURLOPT_HTTPHEADER, list)
    }

    // MARK: - Driving libcurl

    /// Called with CURL_POLL_* for each socket curl wants watched.
    private static let socketCallback: ccurl_socket_callback = { _, fd, what, userp, _ in
        let client = Unmanaged<UpstreamClient>.fromOpaque(userp!).takeUnretainedValue()
        client.watch(fd, what: what)
        return 0
    }

    private static let timerCallback: ccurl_timer_callback = { _, timeoutMs, userp in
        let client = Unmanaged<UpstreamClient>.fromOpaque(userp!).takeUnretainedValue()
        client.setTimer(milliseconds: timeoutMs)
        return 0
    }

    /// libcurl closes a socket: forget it first, so its number can be reused.
    private static let closeSocketCallback: ccurl_closesocket_callback = { clientp, fd in
        let client = Unmanaged<UpstreamClient>.fromOpaque(clientp!).takeUnretainedValue()
        client.forget(fd)
        return Glibc.close(fd)
    }

    private func forget(_ fd: Int32) {
        if let socket = sockets.removeValue(forKey: fd), socket.events != nil { loop.unregister(fd) }
    }

    private func watch(_ fd: Int32, what: Int32) {
        if what == CURL_POLL_REMOVE {
            sockets[fd]?.park()  // stays registered
            return
        }
        var events: UInt32 = 0
        if what & CURL_POLL_IN != 0 { events |= EventLoop.readable }
        if what & CURL_POLL_OUT != 0 { events |= EventLoop.writable }
        if let socket = sockets[fd] {
            socket.wanted = true
            if socket.events == nil {
                do {
                    try loop.register(fd, events: events, handler: socket)
                    socket.events = events
                } catch {}
            } else if socket.events != events {
                loop.modify(fd, events: events)
                socket.events = events
            }
        } else {
            let socket = CurlSocket(fd: fd, client: self)
            do {
                try loop.register(fd, events: events, handler: socket)
                socket.events = events
                sockets[fd] = socket
            } catch {
                // curl then times the transfer out.
            }
        }
    }

    /// An event on a socket: for libcurl, unless it is parked. A parked one
    /// that fires (the server closed an idle connection) leaves the epoll set
    /// (a hang-up is reported whatever the mask) until libcurl wants it again
    /// or closes it.
    func socketEvent(_ fd: Int32, events: Int32) {
        guard let socket = sockets[fd] else { return }
        if !socket.wanted {
            if socket.events != nil {
                loop.unregister(fd)
                socket.events = nil
            }
            return
        }
        socketAction(fd, events: events)
    }

    /// Never calls back into curl from inside its callback: the loop calls
    /// `deadlineReached` once the time has come (0 ms: at the end of this iteration).
    private func setTimer(milliseconds: Int) {
        curlDeadline = milliseconds < 0 ? nil : MonotonicClock.now() &+ UInt64(milliseconds) &* 1_000_000
    }

    func socketAction(_ fd: Int32, events: Int32) {
        guard let multi else { return }
        var running: Int32 = 0
        curl_multi_socket_action(multi, fd, events, &running)
        collectCompleted(multi)
    }

    private func collectCompleted(_ multi: UnsafeMutableRawPointer) {
        var remaining: Int32 = 0
        while let message = curl_multi_info_read(multi, &remaining) {
            guard ccurl_msg_kind(message) == CURLMSG_DONE, let easy = ccurl_msg_easy(message) else { continue }
            let result = ccurl_msg_result(message)
            var context: UnsafeMutableRawPointer?
            ccurl_easy_getinfo_pointer(easy, CURLINFO_PRIVATE, &context)
            var connects = 0
            ccurl_easy_getinfo_long(easy, CURLINFO_NUM_CONNECTS, &connects)
            if connects > 0 { opened.add(connects, ordering: .relaxed) }
            curl_multi_remove_handle(multi, easy)
            active -= 1
            guard let context else { continue }
            let transfer = Unmanaged<Transfer>.fromOpaque(context).takeRetainedValue()
            let outcome = outcome(of: transfer, code: result)
            let completion = transfer.completion
            transfer.completion = nil
            recycle(easy)
            completion?(outcome)
        }
    }

    private func outcome(of transfer: Transfer, code: CURLcode) -> Result<UpstreamResponse, UpstreamError> {
        if code == CURLE_OK {
            if transfer.status < 100 || transfer.status > 999 {
                return .failure(.failed("malformed status line from the upstream"))
            }
            return .success(transfer.makeResponse())
        }
        let message = errorBuffers[transfer.easy].map { String(cString: $0) } ?? ""
        let detail = message.isEmpty ? String(cString: curl_easy_strerror(code)) : message
        switch code {
        case CURLE_OPERATION_TIMEDOUT:
            return .failure(.timeout)
        case CURLE_COULDNT_RESOLVE_HOST, CURLE_COULDNT_CONNECT, CURLE_SSL_CONNECT_ERROR, CURLE_PEER_FAILED_VERIFICATION,
            CURLE_SSL_CACERT_BADFILE, CURLE_SSL_CERTPROBLEM, CURLE_SSL_CIPHER, CURLE_SSL_ISSUER_ERROR,
            CURLE_URL_MALFORMAT:
            return .failure(.unreachable(detail))
        case CURLE_WRITE_ERROR where transfer.tooLarge:
            return .failure(.failed("upstream answer larger than \(configuration.maxResponseBytes) bytes"))
        default:
            return .failure(.failed(detail))
        }
    }

    private func recycle(_ easy: UnsafeMutableRawPointer) {
        // The header list and body belong to the finished transfer.
        ccurl_easy_setopt_slist(easy, CURLOPT_HTTPHEADER, nil)
        if idleHandles.count < 256 {
            idleHandles.append(easy)
        } else {
            destroy(easy)
        }
    }

    private func destroy(_ easy: UnsafeMutableRawPointer) {
        curl_easy_cleanup(easy)
        errorBuffers.removeValue(forKey: easy)?.deallocate()
    }

    /// Releases libcurl's resources; on the loop, once no transfer is running.
    public func close() {
        loop.assertInLoop()
        curlDeadline = nil
        if let multi {
            loop.removeDeadlineSource(self)
            curl_multi_cleanup(multi)  // closes cached connections; REMOVE callbacks run here
            self.multi = nil
        }
        for (fd, socket) in sockets where socket.events != nil { loop.unregister(fd) }
        sockets.removeAll()
        for easy in idleHandles { destroy(easy) }
        idleHandles.removeAll()
    }
}

extension UpstreamClient: DeadlineSource {
    public var nextDeadline: UInt64? { curlDeadline }

    public func deadlineReached() {
        curlDeadline = nil
        socketAction(CURL_SOCKET_TIMEOUT, events: 0)
    }
}

/// A socket of libcurl's in the loop's epoll set.
final class CurlSocket: EventHandler {
    let fd: Int32
    unowned let client: UpstreamClient
    /// Registered events; nil when out of the epoll set.
    var events: UInt32?
    /// Whether libcurl watches it now (false: parked between transfers).
    var wanted = true

    func park() { wanted = false }

    init(fd: Int32, client: UpstreamClient) {
        self.fd = fd
        self.client = client
    }

    func handleEvent(_ events: UInt32) {
        var bits: Int32 = 0
        if events & (EventLoop.readable | EventLoop.hangup) != 0 { bits |= CURL_CSELECT_IN }
        if events & EventLoop.writable != 0 { bits |= CURL_CSELECT_OUT }
        if events & EventLoop.error != 0 { bits |= CURL_CSELECT_ERR }
        client.socketEvent(fd, events: bits)
    }
}
