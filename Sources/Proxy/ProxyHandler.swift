import EventLoops
import HTTP1
import Iamport
import Logging
import Server
import Synchronization
import Upstream

/// The handler that joins the pieces: local endpoints, client
/// authentication, the allowlist, forwarding with the held token, the 401
/// renewal and single replay, error envelopes, metrics and the access log.
public final class ProxyHandler: HTTPHandler {
    let configuration: ProxyConfiguration
    let tokens: TokenCache
    let metrics: ProxyMetrics
    let logger: Logger
    private let accessLog: AccessLog
    let contexts: [LoopContext]
    private let authenticator: ClientAuthenticator
    private let upstreamAuthority: [UInt8]
    private let requestIDPrefix: [UInt8]
    private let server = Mutex<Server?>(nil)
    private let upstreamConnectionsOpened: @Sendable () -> Int

    init(configuration: ProxyConfiguration, tokens: TokenCache, metrics: ProxyMetrics, logger: Logger, contexts: [LoopContext],
         upstreamConnectionsOpened: @escaping @Sendable () -> Int) {
        self.upstreamConnectionsOpened = upstreamConnectionsOpened
        self.configuration = configuration
        self.tokens = tokens
        self.metrics = metrics
        self.logger = logger
        self.accessLog = AccessLog(logger: logger)
        self.contexts = contexts
        self.authenticator = ClientAuthenticator(clientToken: configuration.clientToken)
        self.upstreamAuthority = configuration.upstream.authority.map(ASCII.lower)
        var random = SystemRandomNumberGenerator()
        self.requestIDPrefix = (0..<12).map { _ in hexDigits[Int(random.next() % 16)] } + [UInt8(ascii: "-")]
    }

    func attach(_ server: Server) {
        self.server.withLock { $0 = server }
    }

    // MARK: - Before the body

    public func screen(_ head: RequestHead, clientAddress: String) -> Response? {
        let refusal: (ProxyError, String)?
        switch target(of: head) {
        case .failure(let error):
            refusal = (error.error, error.message)
        case .success(let path):
            if path.isLocalEndpoint {
                refusal = nil
            } else if path.isGetToken {
                // Never forwarded, whatever the method: the body holds imp_secret.
                let notPost = Self.getTokenNotPost
                refusal = head.method == .post ? nil : (notPost.error, notPost.message)
            } else if !authenticator.isAuthorized(head) {
                refusal = (.clientUnauthorized, "missing or wrong client token")
            } else if !configuration.allowList.allows(method: head[head.methodRange], canonicalPath: path.canonical) {
                refusal = (.forbidden, "this method and path are not in the allow list")
            } else {
                refusal = nil
            }
        }
        guard let (error, message) = refusal else { return nil }
        let requestID = requestID(for: head, on: nil)
        let response = error.response(message, requestID: requestID)
        record(status: response.status, method: head.method)
        logAccess(head: head, requestID: requestID, clientAddress: clientAddress, status: response.status,
                  upstreamStatus: nil, bytes: response.body.count, startedAt: nil, renewed: false, replayed: false,
                  error: error, message: message)
        return response
    }

    private static let getTokenNotPost = Refusal(
        .notAllowed, "/users/getToken is answered by the proxy for POST only and never forwarded")

    struct Refusal: Error {
        let error: ProxyError
        let message: String
        init(_ error: ProxyError, _ message: String) {
            self.error = error
            self.message = message
        }
    }

    /// The target as a checked path: origin form, or absolute form naming the
    /// upstream itself. The head parser made its canonical form already.
    private func target(of head: RequestHead) -> Result<RequestPath, Refusal> {
        if case .absolute(let authority, _) = head.targetForm {
            // Only the upstream itself may be named (as a client configured to use
            // the proxy as an HTTP proxy would): anything else is another host.
            guard head[authority].equalsIgnoringCase(upstreamAuthority) else {
                return .failure(Refusal(.notAllowed, "requests for other hosts are refused: this is not an open proxy"))
            }
        }
        switch RequestPath.of(head) {
        case .success(let path): return .success(path)
        case .failure(let why): return .failure(Refusal(.badRequest, why.message))
        }
    }

    // MARK: - Requests

    public func handle(_ request: Request, responder: Responder) {
        let context = contexts[request.loop.index]
        let head = request.head
        let requestID = requestID(for: head, on: context)
        guard case .success(let path) = target(of: head) else {
            // screen() refused these already; kept for safety.
            respond(ProxyError.badRequest.response("invalid request target", requestID: requestID), request, requestID,
                    responder, context: context)
            return
        }
        if path.isLocalEndpoint {
            respond(localEndpoint(head, path, requestID: requestID), request, requestID, responder, context: context)
        } else if path.isGetToken {
            let answer = head.method == .post
                ? LocalAnswers.getToken(body: request.body, clientToken: configuration.clientToken, requestID: requestID)
                : Self.getTokenNotPost.error.response(Self.getTokenNotPost.message, requestID: requestID)
            respond(answer, request, requestID, responder, context: context)
        } else {
            forward(request, path: path, requestID: requestID, context: context, responder: responder)
        }
    }

    private func localEndpoint(_ head: RequestHead, _ path: RequestPath, requestID: [UInt8]) -> Response {
        guard head.method == .get || head.method == .head else {
            return ProxyError.notAllowed.response("local endpoints answer GET and HEAD only", requestID: requestID)
        }
        if path.canonicalEquals("/_proxy/healthz") { return LocalAnswers.health(requestID: requestID) }
        if path.canonicalEquals("/_proxy/readyz") { return LocalAnswers.readiness(tokens.status(), requestID: requestID) }
        if path.canonicalEquals("/_proxy/metrics") { return LocalAnswers.metrics(renderMetrics(), requestID: requestID) }
        return ProxyError.notFound.response("no such local endpoint", requestID: requestID)
    }

    func renderMetrics() -> [UInt8] {
        let status = tokens.status()
        metrics.tokenValid.record(status.valid ? 1 : 0)
        metrics.tokenExpiresIn.record(wholeSeconds(status.expiresIn ?? 0))
        metrics.openConnections.record(server.withLock { $0?.openConnections ?? 0 })
        metrics.upstreamConnections.record(upstreamConnectionsOpened())
        return metrics.render()
    }

    /// A request's way to the upstream and back.
    private struct Exchange {
        var request: UpstreamRequest
        let clientRequest: Request
        let requestID: [UInt8]
        let path: ArraySlice<UInt8>
        let responder: Responder
        var renewed = false
        var replayed = false
    }

    private func forward(_ request: Request, path: RequestPath, requestID: [UInt8], context: LoopContext, responder: Responder) {
        let head = request.head
        // One buffer of NUL-terminated lines, built in one pass.
        var lines: [UInt8] = []
        lines.reserveCapacity(head.bytes.count + request.clientAddress.utf8.count + 96)
        var forwardedFor: ArraySlice<UInt8>?
        var extraForwardedFor: [UInt8] = []
        for field in head.fields {
            if head.isHopByHop(field) { continue }
            switch field.kind {
            case .host, .contentLength, .authorization, .impTokenHeader, .expect, .requestID:
                continue
            case .forwardedFor:
                if forwardedFor == nil {
                    forwardedFor = head[field.value]
                } else {
                    extraForwardedFor.append(contentsOf: ", ".utf8)
                    extraForwardedFor.append(contentsOf: head[field.value])
                }
                continue
            default: break
            }
            lines.append(contentsOf: head[field.name])
            lines.append(ASCII.colon)
            let value = head[field.value]
            if !value.isEmpty {
                lines.append(ASCII.space)
                lines.append(contentsOf: value)
            }
            lines.append(0)
        }
        lines.append(contentsOf: "X-Forwarded-For: ".utf8)
        if let forwardedFor {
            lines.append(contentsOf: forwardedFor)
            lines.append(contentsOf: extraForwardedFor)
            lines.append(contentsOf: ", ".utf8)
        }
        lines.append(contentsOf: request.clientAddress.utf8)
        lines.append(0)
        lines.append(contentsOf: "X-Request-Id: ".utf8)
        lines.append(contentsOf: requestID)
        lines.append(0)

        let sendsBody = head.framing != .none || head.method == .post || head.method == .put || head.method == .patch
        let upstreamRequest = UpstreamRequest(
            method: head.method,
            methodName: head.method == .other ? String(decoding: head[head.methodRange], as: UTF8.self) : head.method.label,
            pathAndQuery: path.forwardedPathAndQuery(), headerLines: lines, body: sendsBody ? request.body : nil)
        let exchange = Exchange(
            request: upstreamRequest, clientRequest: request, requestID: requestID, path: path.path, responder: responder)

        if let token = tokens.validToken() {
            send(exchange, token: token, context: context)
            return
        }
        tokens.withToken { [self] result in
            onLoop(context.loop) {
                switch result {
                case .success(let token):
                    self.send(exchange, token: token, context: context)
                case .failure(let error):
                    self.fail(exchange, .tokenUnavailable, error.message, context: context)
                }
            }
        }
    }

    private func send(_ exchange: Exchange, token: Token, context: LoopContext) {
        var exchange = exchange
        exchange.request.firstLine = token.authorizationLine
        let started = MonotonicClock.now()
        context.upstream.send(exchange.request) { [self] result in
            metrics.upstreamDuration.recordNanoseconds(Int64(MonotonicClock.now() &- started))
            switch result {
            case .success(let answer) where answer.status == 401 && !exchange.replayed && answer.stream == nil:
                // The token was refused: renew once (shared by every request that
                // saw it refused) and replay this request once, with the same body,
                // unless the API still holds the token valid (TokenCache decides).
                // (A 401 too large to hold goes back as it is, streamed, below.)
                var replay = exchange
                replay.renewed = true
                replay.replayed = true
                let renewed = replay
                let refused = exchange
                tokens.renewAfterUnauthorized(used: token) { outcome in
                    onLoop(context.loop) {
                        switch outcome {
                        case .replay(let fresh):
                            self.metrics.replays.increment()
                            self.send(renewed, token: fresh, context: context)
                        case .passThrough:
                            self.relay(answer, refused, context: context)
                        case .failed(let error):
                            var failed = renewed
                            failed.replayed = false
                            self.fail(failed, .tokenUnavailable, error.message, context: context, upstreamStatus: 401)
                        }
                    }
                }
            case .success(let answer):
                relay(answer, exchange, context: context)
            case .failure(.timeout):
                fail(exchange, .upstreamTimeout, UpstreamError.timeout.message, context: context)
            case .failure(.unreachable(let message)):
                fail(exchange, .upstreamUnreachable, "upstream unreachable: \(message)", context: context)
            case .failure(.failed(let message)):
                fail(exchange, .upstreamFailed, "upstream exchange failed: \(message)", context: context)
            }
        }
    }

    /// The upstream's answer, to the client as it is (streamed when too
    /// large to hold).
    private func relay(_ answer: UpstreamResponse, _ exchange: Exchange, context: LoopContext) {
        var response = Response(status: answer.status, reason: answer.reason, headerBlock: answer.headerBlock,
                                body: answer.body)
        response.declaredLength = answer.declaredLength
        response.addHeader("X-Request-Id", bytes: exchange.requestID)
        if exchange.replayed { response.addHeader("X-Iamport-Proxy-Replayed", "1") }
        response.streamed = answer.stream != nil
        finish(exchange, response, upstreamStatus: answer.status, context: context, streamingFrom: answer.stream)
    }

    private func fail(_ exchange: Exchange, _ error: ProxyError, _ message: String, context: LoopContext, upstreamStatus: Int? = nil) {
        var response = error.response(message, requestID: exchange.requestID)
        if exchange.replayed { response.addHeader("X-Iamport-Proxy-Replayed", "1") }
        finish(exchange, response, upstreamStatus: upstreamStatus, context: context, error: (error, message))
    }

    /// Counts, logs and sends the answer. With `stream`, the answer is too
    /// large to hold: its head and first bytes go now, the rest as it
    /// arrives, at the pace the client reads.
    private func finish(_ exchange: Exchange, _ response: Response, upstreamStatus: Int?, context: LoopContext,
                        error: (ProxyError, String)? = nil, streamingFrom stream: UpstreamBodyStream? = nil) {
        record(exchange.clientRequest, status: response.status, context: context)
        logAccess(head: exchange.clientRequest.head, requestID: exchange.requestID,
                  clientAddress: exchange.clientRequest.clientAddress, status: response.status,
                  upstreamStatus: upstreamStatus,
                  bytes: stream == nil ? response.body.count : response.declaredLength ?? response.body.count,
                  startedAt: exchange.clientRequest.receivedAt, renewed: exchange.renewed, replayed: exchange.replayed,
                  error: error?.0, message: error?.1)
        guard let stream else {
            exchange.responder.respond(response)
            return
        }
        let bridge = StreamBridge(stream)
        if let writer = exchange.responder.respond(response, streamingFrom: bridge) {
            bridge.writer = writer
            stream.start(bridge)
        } else {
            stream.cancel()
        }
    }

    private func respond(_ response: Response, _ request: Request, _ requestID: [UInt8], _ responder: Responder,
                         context: LoopContext) {
        record(request, status: response.status, context: context)
        logAccess(head: request.head, requestID: requestID, clientAddress: request.clientAddress,
                  status: response.status, upstreamStatus: nil, bytes: response.body.count,
                  startedAt: request.receivedAt, renewed: false, replayed: false, error: nil, message: nil)
        responder.respond(response)
    }

    // MARK: - Server's own answers

    public func errorResponse(_ error: ServerError, head: RequestHead?) -> Response {
        let requestID = head.map { self.requestID(for: $0, on: nil) } ?? generatedRequestID(nil)
        let (kind, message) = Self.describe(error)
        return kind.response(message, requestID: requestID)
    }

    public func didRespondOnItsOwn(_ error: ServerError, status: Int, head: RequestHead?, clientAddress: String) {
        let (kind, message) = Self.describe(error)
        if let head {
            logAccess(head: head, requestID: requestID(for: head, on: nil), clientAddress: clientAddress, status: status,
                      upstreamStatus: nil, bytes: 0, startedAt: nil, renewed: false, replayed: false, error: kind,
                      message: message)
        } else {
            logger.info("request refused", metadata: [
                "status": "\(status)", "error": "\(kind.rawValue)", "reason": "\(message)", "client": "\(clientAddress)",
            ])
        }
        record(status: status, method: head?.method ?? .other)
    }

    public func serverNotice(_ message: String) {
        logger.warning("\(message)")
    }

    static func describe(_ error: ServerError) -> (ProxyError, String) {
        switch error {
        case .malformed(let http): return ProxyError.from(http)
        case .headerTimeout: return (.headerTimeout, "request head not complete within the header timeout")
        case .bodyTimeout: return (.bodyTimeout, "request body not received in time")
        case .overloaded: return (.overloaded, "too many open connections")
        case .shuttingDown: return (.shuttingDown, "the proxy is shutting down")
        }
    }

    // MARK: - Request IDs, metrics and the access log

    /// The client's X-Request-Id when it is sane (1–128 visible characters of
    /// a safe set), otherwise a new one: a per-process random prefix and a
    /// per-loop counter.
    private func requestID(for head: RequestHead, on context: LoopContext?) -> [UInt8] {
        if let field = head.first(.requestID) {
            let value = head[field.value]
            if !value.isEmpty && value.count <= 128 && value.allSatisfy(Self.isRequestIDChar) { return Array(value) }
        }
        return generatedRequestID(context)
    }

    private static func isRequestIDChar(_ b: UInt8) -> Bool {
        switch b {
        case UInt8(ascii: "a")...UInt8(ascii: "z"), UInt8(ascii: "A")...UInt8(ascii: "Z"), UInt8(ascii: "0")...UInt8(ascii: "9"):
            return true
        case UInt8(ascii: "-"), UInt8(ascii: "_"), UInt8(ascii: "."), UInt8(ascii: ":"), UInt8(ascii: "/"),
            UInt8(ascii: "+"), UInt8(ascii: "="), UInt8(ascii: "@"):
            return true
        default:
            return false
        }
    }

    private static let fallbackSerial = Atomic<UInt64>(0)

    private func generatedRequestID(_ context: LoopContext?) -> [UInt8] {
        var id = requestIDPrefix
        let serial: UInt64
        if let context {
            context.serial &+= 1
            serial = context.serial << 8 | UInt64(context.loop.index & 0xFF)
        } else {
            serial = Self.fallbackSerial.wrappingAdd(1, ordering: .relaxed).newValue << 8 | 0xFF
        }
        // At least 8 hex digits, most significant first, written in place.
        var width = 8
        while width < 16 && serial >> (4 * UInt64(width)) != 0 { width += 1 }
        id.reserveCapacity(id.count + width)
        for shift in stride(from: 4 * (width - 1), through: 0, by: -4) {
            id.append(hexDigits[Int(serial >> UInt64(shift) & 0xF)])
        }
        return id
    }

    private func record(_ request: Request, status: Int, context: LoopContext) {
        let key = status << 8 | Int(request.head.method.rawValue)
        let counter: CoreMetricsCounter
        if let cached = context.requestCounters[key] {
            counter = cached
        } else {
            counter = metrics.requestCounter(status: status, method: request.head.method)
            context.requestCounters[key] = counter
        }
        counter.increment()
        metrics.requestDuration.recordNanoseconds(Int64(MonotonicClock.now() &- request.receivedAt))
    }

    /// Counts an answer given before the request reached a loop's handler
    /// (a refusal): no per-loop cache, no duration.
    private func record(status: Int, method: Method) {
        metrics.requestCounter(status: status, method: method).increment()
    }

    private func logAccess(
        head: RequestHead, requestID: [UInt8], clientAddress: String, status: Int, upstreamStatus: Int?, bytes: Int,
        startedAt: UInt64?, renewed: Bool, replayed: Bool, error: ProxyError?, message: String?
    ) {
        guard accessLog.isOn else { return }
        let target = head[head.target]
        accessLog.record(AccessEntry(
            requestID: requestID, method: head[head.methodRange],
            path: target.prefix { $0 != ASCII.question }, status: status, upstreamStatus: upstreamStatus,
            bytes: bytes, durationMicros: startedAt.map { (MonotonicClock.now() &- $0) / 1000 }, client: clientAddress,
            renewed: renewed, replayed: replayed, error: error, reason: message))
    }
}

/// Runs `body` on `loop`: at once when already there.
func onLoop(_ loop: EventLoop, _ body: @escaping @Sendable () -> Void) {
    if loop.inLoop { body() } else { loop.execute(body) }
}
