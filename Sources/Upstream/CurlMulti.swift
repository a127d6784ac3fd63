import CCurl
#if canImport(Glibc)
import Glibc
#endif
import EventLoops

/// libcurl on one loop: the multi handle, driven with
/// `curl_multi_socket_action` in the loop's epoll set, the easy handles
/// (each connect a CONNECT_ONLY transfer: resolve, TCP, TLS with peer and
/// host verification, no proxy), their error buffers, the TLS session share,
/// the callbacks, and every `Unmanaged` pointer handed to libcurl. It tells
/// its client when a connect finishes and when libcurl closes a socket.
///
/// The pointers are unretained: the client owns this object and every
/// connection for as long as its easy handle is in the multi handle, and
/// `remove` clears a connection's pointer as its handle leaves.
///
/// Confined to the client's loop.
final class CurlMulti {
    unowned let client: UpstreamClient
    let loop: EventLoop
    private let endpoint: Endpoint
    private let configuration: UpstreamConfiguration
    private var multi: UnsafeMutableRawPointer?
    /// libcurl's sockets while it connects them.
    private var sockets: [Socket: CurlSocket] = [:]
    /// The deadline libcurl asked for (its timer callback).
    private(set) var deadline: Nanoseconds?
    private var spareHandles: [UnsafeMutableRawPointer] = []
    /// The loop's TLS session cache, set on every easy handle: without it
    /// each handle keeps its own, and a handle that has never connected
    /// (every one the pool adds as concurrency grows) does a full handshake.
    /// Failure when it could not be made; every connect then fails with it.
    /// None for plain HTTP, and once closed.
    private var sessionShare: Result<UnsafeMutableRawPointer, UpstreamError>?
    private var errorBuffers: [UnsafeMutableRawPointer: UnsafeMutablePointer<CChar>] = [:]

    /// Easy handles kept for later connects.
    /// Handles `curl_multi_remove_handle` refused to take out: freed in `close`.
    private var stuckHandles: [UnsafeMutableRawPointer] = []
    static let maxSpareHandles = 64

    init(client: UpstreamClient, loop: EventLoop, endpoint: Endpoint, configuration: UpstreamConfiguration) {
        self.client = client
        self.loop = loop
        self.endpoint = endpoint
        self.configuration = configuration
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

    /// The multi handle, made on first use; the client then watches its deadlines.
    @discardableResult
    func start() -> UnsafeMutableRawPointer {
        if let multi { return multi }
        let m = curl_multi_init()!
        let me = Unmanaged.passUnretained(self).toOpaque()
        // These options exist in every libcurl with a multi socket API: a
        // failure is a broken build, not a condition to recover from.
        for rc in [
            ccurl_multi_setopt_socket_callback(m, Self.socketCallback),
            ccurl_multi_setopt_pointer(m, CURLMOPT_SOCKETDATA, me),
            ccurl_multi_setopt_timer_callback(m, Self.timerCallback),
            ccurl_multi_setopt_pointer(m, CURLMOPT_TIMERDATA, me),
        ] {
            precondition(rc == CURLM_OK, "curl_multi_setopt: \(String(cString: curl_multi_strerror(rc)))")
        }
        multi = m
        loop.addDeadlineSource(client)
        return m
    }

    // MARK: - Connects

    /// Starts connecting a new connection; libcurl reports its end through
    /// `client.connectFinished`.
    func connect() -> Result<UpstreamConnection, UpstreamError> {
        let multi = start()
        let easy: UnsafeMutableRawPointer
        if let spare = spareHandles.popLast() {
            easy = spare
        } else {
            switch makeHandle() {
            case .success(let made): easy = made
            case .failure(let error): return .failure(error)
            }
        }
        errorBuffers[easy]?[0] = 0
        let connection = UpstreamConnection(easy: easy, tls: endpoint.tls, client: client)
        let rc = ccurl_easy_setopt_pointer(easy, CURLOPT_PRIVATE, Unmanaged.passUnretained(connection).toOpaque())
        if rc == CURLE_OK {
            let added = curl_multi_add_handle(multi, easy)
            if added == CURLM_OK { return .success(connection) }
            recycle(easy)
            return .failure(.unreachable("cannot start connecting: \(String(cString: curl_multi_strerror(added)))"))
        }
        recycle(easy)
        return .failure(.unreachable("cannot start connecting: CURLOPT_PRIVATE: \(String(cString: curl_easy_strerror(rc)))"))
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
        setup.long(CURLOPT_MAXAGE_CONN, Int(clamping: configuration.libcurlMaxConnectionAge / 1_000_000_000))
        // libcurl's own receive buffer is never used (answers are read into
        // the client's buffer), but libcurl allocates it for every handle,
        // and its size caps every curl_easy_recv. Over TLS, 16 KiB, a TLS
        // record's largest plaintext, lets one call take a whole record (at
        // 1 KiB, an answer of 1.5 KB took two calls, each through libcurl's
        // filters and OpenSSL's ERR_clear_error). Plain HTTP reads the
        // socket itself: the smallest size spares 15 KiB a connection.
        setup.long(CURLOPT_BUFFERSIZE, endpoint.tls ? 16_384 : 1024)
        // OpenSSL reads ahead: one recv for a record, not two (its header,
        // then its body). Bytes read ahead wait in OpenSSL, not the socket,
        // so an answer is read until libcurl says EAGAIN (UpstreamClient.read),
        // never left for an epoll event that would not come.
        if endpoint.tls { setup.check(CURLOPT_SSL_CTX_FUNCTION, ccurl_easy_setopt_ssl_read_ahead(easy)) }
        setup.long(CURLOPT_CONNECTTIMEOUT_MS, max(1, min(configuration.timeout.inMilliseconds, 10_000)))
        if let caFile = configuration.caFile { setup.string(CURLOPT_CAINFO, caFile) }
        // One source of trust: the CA file given, or else the system bundle.
        // Debian's libcurl also searches a CA directory (/etc/ssl/certs) by
        // default, which would trust the system's CAs beside a configured
        // file, and which keeps libcurl from caching the parsed store: every
        // new TLS connection parsed its CA file again, on the loop.
        setup.unset(CURLOPT_CAPATH)
        // The parsed store is kept per loop for a minute, so a CA file
        // replaced in place is used by new connections within a minute.
        setup.long(CURLOPT_CA_CACHE_TIMEOUT, 60)
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

    /// The connected socket, or the error a failed connect is reported as.
    func connectedSocket(_ connection: UpstreamConnection, code: CURLcode) -> Result<Socket, UpstreamError> {
        var fd: curl_socket_t = -1
        if code == CURLE_OK { ccurl_easy_getinfo_socket(connection.easy, CURLINFO_ACTIVESOCKET, &fd) }
        guard code == CURLE_OK, fd >= 0 else {
            if code == CURLE_OPERATION_TIMEDOUT { return .failure(.timeout) }
            return .failure(.unreachable(Self.connectFailure(code, errorText(connection.easy, code))))
        }
        // The socket is the connection's now, no longer watched as libcurl's.
        let socket = Socket(adopting: fd)
        if let watched = sockets.removeValue(forKey: socket) { loop.unregister(socket, handler: watched) }
        return .success(socket)
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

    /// The connection's handle leaves the multi handle, which closes its
    /// connection (libcurl closes the socket), and is kept for a later connect.
    func remove(_ connection: UpstreamConnection) {
        var detached = true
        if let multi { detached = curl_multi_remove_handle(multi, connection.easy) == CURLM_OK }
        if detached {
            recycle(connection.easy)
        } else {
            // Still in the multi handle: it must no longer lead to the
            // connection (a late message for it is then skipped), and it is
            // freed in `close`, after the multi handle and before the share.
            let cleared = ccurl_easy_setopt_pointer(connection.easy, CURLOPT_PRIVATE, nil)
            assert(cleared == CURLE_OK, "CURLOPT_PRIVATE takes any pointer")
            stuckHandles.append(connection.easy)
        }
    }

    /// Keeps a handle out of the multi handle for a later connect, once it
    /// points at no connection; frees it when that fails or enough are kept.
    private func recycle(_ easy: UnsafeMutableRawPointer) {
        let cleared = ccurl_easy_setopt_pointer(easy, CURLOPT_PRIVATE, nil) == CURLE_OK
        if cleared && spareHandles.count < Self.maxSpareHandles {
            spareHandles.append(easy)
        } else {
            curl_easy_cleanup(easy)
            errorBuffers.removeValue(forKey: easy)?.deallocate()
        }
    }

    /// Releases everything, once every connection is removed.
    func close() {
        deadline = nil
        if let multi {
            loop.removeDeadlineSource(client)
            curl_multi_cleanup(multi)
            self.multi = nil
        }
        for (socket, watched) in sockets { loop.unregister(socket, handler: watched) }
        sockets.removeAll()
        for easy in spareHandles + stuckHandles {
            curl_easy_cleanup(easy)
            errorBuffers.removeValue(forKey: easy)?.deallocate()
        }
        spareHandles.removeAll()
        stuckHandles.removeAll()
        // Last: libcurl refuses to free a share some easy handle still uses.
        if case .success(let share)? = sessionShare {
            let rc = curl_share_cleanup(share)
            assert(rc == CURLSHE_OK, "TLS session share still in use: \(String(cString: curl_share_strerror(rc)))")
            sessionShare = nil
        }
    }

    // MARK: - Driving libcurl

    private static let socketCallback: ccurl_socket_callback = { _, fd, what, userp, _ in
        let curl = Unmanaged<CurlMulti>.fromOpaque(userp!).takeUnretainedValue()
        curl.watch(Socket(adopting: fd), what: what)
        return 0
    }

    private static let timerCallback: ccurl_timer_callback = { _, timeoutMs, userp in
        let curl = Unmanaged<CurlMulti>.fromOpaque(userp!).takeUnretainedValue()
        curl.deadline = timeoutMs < 0 ? nil : MonotonicClock.now() &+ Nanoseconds(timeoutMs) &* 1_000_000
        return 0
    }

    /// libcurl closes a socket: forget it first, so its number can be reused.
    private static let closeSocketCallback: ccurl_closesocket_callback = { clientp, fd in
        let curl = Unmanaged<CurlMulti>.fromOpaque(clientp!).takeUnretainedValue()
        let socket = Socket(adopting: fd)
        if let watched = curl.sockets.removeValue(forKey: socket) { curl.loop.unregister(socket, handler: watched) }
        curl.client.socketClosing(socket)
        socket.close()
        return 0
    }

    private func watch(_ socket: Socket, what: Int32) {
        if what == CURL_POLL_REMOVE {
            if let watched = sockets.removeValue(forKey: socket) { loop.unregister(socket, handler: watched) }
            return
        }
        var events: UInt32 = 0
        if what & CURL_POLL_IN != 0 { events |= EventLoop.readable }
        if what & CURL_POLL_OUT != 0 { events |= EventLoop.writable }
        if let watched = sockets[socket] {
            guard watched.events != events else { return }
            do {
                try loop.modify(socket, events: events)
                watched.events = events
                return
            } catch {
                // The number was closed without libcurl's close-socket
                // callback (its resolver's socket pair) and is a new socket
                // now: register that one.
                sockets.removeValue(forKey: socket)
                loop.forget(socket, handler: watched)
            }
        }
        do {
            let watched = CurlSocket(socket: socket, curl: self)
            try loop.register(socket, events: events, handler: watched)
            watched.events = events
            sockets[socket] = watched
        } catch {
            // libcurl then times the connect out.
        }
    }

    /// libcurl's timer is due.
    func deadlineReached(now: Nanoseconds) {
        if let d = deadline, d <= now {
            deadline = nil
            socketAction(CURL_SOCKET_TIMEOUT, events: 0)
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
            client.connectFinished(Unmanaged<UpstreamConnection>.fromOpaque(context).takeUnretainedValue(), code: code)
        }
    }
}
