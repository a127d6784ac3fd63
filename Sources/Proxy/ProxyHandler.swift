import EventLoops
import HTTP1
import Iamport
import Logging
import Server
import Synchronization
import Upstream

/// The handler of one listener, joining the pieces: local endpoints, the
/// choice of account, client authentication, the allow list, forwarding
/// with the account's credential (V1: the held token, renewed on a 401 with
/// a single replay; V2: its API secret), error answers in the account's
/// API's shape, metrics and the access log.
public final class ProxyHandler: HTTPHandler {
    let core: ProxyCore
    let listener: ListenerID
    var metrics: ProxyMetrics { core.metrics }
    var logger: Logger { core.logger }
    private var accessLog: AccessLog { core.accessLog }
    var contexts: [LoopContext] { core.contexts }

    init(core: ProxyCore, listener: ListenerID) {
        self.core = core
        self.listener = listener
    }

    // MARK: - Routing

    /// What becomes of a request, decided on its head alone.
    enum Route {
        /// Under `/_proxy/`: answered here, on every listener, for every account.
        case local(RequestPath)
        /// `POST /users/getToken`: answered here; the account is chosen by the
        /// body's `imp_secret` (see `localGetToken`).
        case getToken
        case forward(ServedAccount, RequestPath)
        case refused(Refusal, ServedAccount?)
    }

    /// What becomes of a request, with its path split for forwarding.
    func route(_ head: RequestHead, _ routing: Routing) -> Route {
        let path: RequestPath?
        let canonical: Result<ArraySlice<UInt8>, PathRefusal>
        switch RequestPath.of(head) {
        case .success(let checked):
            path = checked
            canonical = .success(checked.canonical)
        case .failure(let why):
            path = nil
            canonical = .failure(why)
        }
        // `decide` answers `.local` and `.forward` only for a path that was
        // split (a refused path is refused there, after the authority check).
        switch decide(head, canonical, routing) {
        case .local: return .local(path!)
        case .getToken: return .getToken
        case .forward(let account): return .forward(account, path!)
        case .refused(let refusal, let account): return .refused(refusal, account)
        }
    }

    /// The refusal a request gets on its head alone, if any: `route`'s
    /// decision without splitting the path (the screen of every request).
    func refusal(_ head: RequestHead, _ routing: Routing) -> (Refusal, ServedAccount?)? {
        guard case .refused(let refusal, let account) = decide(head, RequestPath.canonical(of: head), routing) else {
            return nil
        }
        return (refusal, account)
    }

    /// `Route` without the path's pieces.
    private enum Decision {
        case local
        case getToken
        case forward(ServedAccount)
        case refused(Refusal, ServedAccount?)
    }

    /// The decision on a request, taken on its head and its canonical path
    /// (or why its path is refused), in this order.
    private func decide(_ head: RequestHead, _ canonicalPath: Result<ArraySlice<UInt8>, PathRefusal>,
                        _ routing: Routing) -> Decision {
        // Refusals before the account is known still take the shape of the
        // account the request names, when it names one.
        var shape: AccountAPI {
            if let account = routing.select(head, on: listener), account.admits(head) { return account.api }
            return routing.shape(of: listener)
        }
        if case .absolute(let authority, _) = head.targetForm {
            // Only an upstream itself may be named (as a client configured to
            // use the proxy as an HTTP proxy would): anything else is another host.
            let named = head[authority]
            guard routing.accounts.contains(where: { named.equalsIgnoringCase($0.upstreamAuthority) }) else {
                return .refused(Refusal(.notAllowed, "requests for other hosts are refused: this is not an open proxy", shape), nil)
            }
        }
        let canonical: ArraySlice<UInt8>
        switch canonicalPath {
        case .success(let checked): canonical = checked
        case .failure(let why): return .refused(Refusal(.badRequest, why.message, shape), nil)
        }
        if RequestPath.isLocalEndpoint(canonical) { return .local }
        if RequestPath.isGetToken(canonical) {
            // Never forwarded, whatever the method: the body holds imp_secret.
            return head.method == .post ? .getToken : .refused(Refusal(
                .notAllowed, "/users/getToken is answered by the proxy for POST only and never forwarded", shape), nil)
        }
        guard let account = routing.select(head, on: listener) else {
            return .refused(Refusal(.clientUnauthorized, "missing or unknown client token: it selects the account", shape), nil)
        }
        guard account.admits(head) else {
            return .refused(Refusal(.clientUnauthorized, "missing or wrong client token", account.api), account)
        }
        if case .absolute(let authority, _) = head.targetForm, !head[authority].equalsIgnoringCase(account.upstreamAuthority) {
            return .refused(Refusal(
                .notAllowed, "requests for other hosts are refused: this is not an open proxy", account.api), account)
        }
        if account.api == .v2 && RequestPath.isV2CredentialEndpoint(canonical) {
            return .refused(Refusal(
                .forbidden, "/login/api-secret and /token/refresh are never forwarded: they would hand out a credential of the account",
                .v2), account)
        }
        if !account.configuration.allow.allows(method: head[head.methodRange], canonicalPath: canonical) {
            return .refused(Refusal(.forbidden, "this method and path are not in the allow list", account.api), account)
        }
        return .forward(account)
    }

    // MARK: - Before the body

    public func screen(_ head: RequestHead, clientAddress: String, loop: EventLoop) -> Response? {
        let context = contexts[loop.index]
        guard let (refusal, account) = refusal(head, context.routing) else { return nil }
        let requestID = requestID(for: head, on: context)
        let response = refusal.response(requestID: requestID)
        record(status: response.status, method: head.method, account: account)
        logAccess(head: head, requestID: requestID, clientAddress: clientAddress, context: context, account: account,
                  status: response.status, upstreamStatus: nil, bytes: response.body.count, startedAt: nil,
                  renewed: false, replayed: false, error: refusal.error, message: refusal.message)
        return response
    }

    // MARK: - Requests

    public func handle(_ request: Request, responder: Responder) {
        let context = contexts[request.loop.index]
        let head = request.head
        let requestID = requestID(for: head, on: context)
        let routing = context.routing
        switch route(head, routing) {
        case .local(let path):
            respond(localEndpoint(head, path, routing, requestID: requestID), request, requestID, responder,
                    context: context, account: nil)
        case .getToken:
            let (answer, account) = localGetToken(request.body, routing, requestID: requestID)
            respond(answer, request, requestID, responder, context: context, account: account)
        case .forward(let account, let path):
            forward(request, account: account, path: path, requestID: requestID, context: context, responder: responder)
        case .refused(let refusal, let account):
            // screen() refused these already, unless a reload came in between.
            respond(refusal.response(requestID: requestID), request, requestID,
                    responder, context: context, account: account,
                    error: (refusal.error, refusal.message))
        }
    }

    /// `POST /users/getToken` for the V1 account whose client token is the
    /// body's `imp_secret` (with one account on the listener, that one, as
    /// in single-account mode).
    private func localGetToken(_ body: [UInt8], _ routing: Routing, requestID: [UInt8]) -> (Response, ServedAccount?) {
        let candidates: [ServedAccount]
        if let where_ = routing.selectorListener(listener), case .own(let index) = where_ {
            candidates = [routing.accounts[index]]
        } else if listener.index > 0 {
            candidates = []
        } else {
            candidates = routing.selector.sharedIndexes.map { routing.accounts[$0] }
        }
        if candidates.count == 1, let account = candidates.first {
            guard account.api == .v1 else {
                return (Refusal(
                    .forbidden, "a v2 account has no /users/getToken: give its client token to the V2 SDK as its API secret",
                    .v2).response(requestID: requestID), account)
            }
            return (LocalAnswers.getToken(body: body, clientToken: account.configuration.clientToken, requestID: requestID),
                    account)
        }
        let submitted = LocalAnswers.submittedSecret(body)
        var match: ServedAccount?
        for account in candidates where account.api == .v1 {
            // Every candidate is compared, so timing does not tell which matched.
            if let token = account.configuration.clientToken, let submitted, token.constantTimeEquals(submitted) {
                match = account
            }
        }
        guard let match else {
            return (Refusal(.clientUnauthorized, "imp_secret is the client token of no v1 account on this listener")
                .response(requestID: requestID), nil)
        }
        return (LocalAnswers.getToken(body: body, clientToken: match.configuration.clientToken, requestID: requestID),
                match)
    }

    private func localEndpoint(_ head: RequestHead, _ path: RequestPath, _ routing: Routing, requestID: [UInt8]) -> Response {
        guard head.method == .get || head.method == .head else {
            return Refusal(.notAllowed, "local endpoints answer GET and HEAD only").response(requestID: requestID)
        }
        if path.canonicalEquals("/_proxy/healthz") { return LocalAnswers.health(requestID: requestID) }
        if path.canonicalEquals("/_proxy/readyz") { return readiness(path, routing, requestID: requestID) }
        if path.canonicalEquals("/_proxy/metrics") { return LocalAnswers.metrics(renderMetrics(), requestID: requestID) }
        return Refusal(.notFound, "no such local endpoint").response(requestID: requestID)
    }

    /// Ready when every account is (`?account=NAME`: that one). A V1 account
    /// is ready while it holds a valid token; a V2 account has no token to
    /// hold and is ready once configured.
    private func readiness(_ path: RequestPath, _ routing: Routing, requestID: [UInt8]) -> Response {
        guard core.labelsAccounts else {
            return LocalAnswers.readiness(routing.accounts[0].tokens?.status(), requestID: requestID)
        }
        var accounts = routing.accounts
        if let wanted = path.queryValue("account") {
            accounts = accounts.filter { $0.name.utf8.elementsEqual(wanted) }
            guard !accounts.isEmpty else {
                return Refusal(.notFound, "no account of that name").response(requestID: requestID)
            }
        }
        return LocalAnswers.readiness(accounts.map { ($0.name, $0.tokens?.status()) }, requestID: requestID)
    }

    func renderMetrics() -> [UInt8] {
        for account in core.routing.routing.accounts {
            guard let status = account.tokens?.status() else { continue }
            account.metrics.tokenValid.record(status.valid ? 1 : 0)
            account.metrics.tokenExpiresIn.record(wholeSeconds(status.expiresIn ?? 0))
        }
        metrics.openConnections.record(core.servers.withLock { $0.reduce(0) { $0 + $1.openConnections } })
        metrics.upstreamConnections.record(core.directory.connectionsOpened)
        return metrics.render()
    }

    /// A request's way to the upstream and back. A class: the completion
    /// closures capture it, and a struct of this many references was copied
    /// field by field (a retain and a release each) at every capture and
    /// call, about 3,000 instructions per request. Unchecked Sendable: it is
    /// read and changed on its loop only; the token callbacks, which run
    /// elsewhere, carry it back with `onLoop` before touching it.
    private final class Exchange: @unchecked Sendable {
        /// Never changed (each send gives its Authorization line apart), so
        /// it is lent to the upstream client without a copy.
        let request: UpstreamRequest
        let clientRequest: Request
        let account: ServedAccount
        let requestID: [UInt8]
        let path: ArraySlice<UInt8>
        let responder: Responder
        let renewed: Bool
        let replayed: Bool

        init(request: UpstreamRequest, clientRequest: Request, account: ServedAccount, requestID: [UInt8],
             path: ArraySlice<UInt8>, responder: Responder, renewed: Bool = false, replayed: Bool = false) {
            self.request = request
            self.clientRequest = clientRequest
            self.account = account
            self.requestID = requestID
            self.path = path
            self.responder = responder
            self.renewed = renewed
            self.replayed = replayed
        }

        /// The same exchange with other flags (the replay after a 401).
        func with(renewed: Bool, replayed: Bool) -> Exchange {
            Exchange(request: request, clientRequest: clientRequest, account: account, requestID: requestID,
                     path: path, responder: responder, renewed: renewed, replayed: replayed)
        }
    }

    private func forward(_ request: Request, account: ServedAccount, path: RequestPath, requestID: [UInt8],
                         context: LoopContext, responder: Responder) {
        let head = request.head
        let method = head.method
        let paymentCall = method == .post || method == .put || method == .patch || method == .delete
        // A V2 payment call without a key of its own gets one: the API
        // answers a repeated key with the first answer, so the request may
        // be re-sent once if its connection fails.
        let mayAddKey = account.api == .v2 && paymentCall
        var clientAddress = request.clientAddress
        let tierLine = account.tierLine
        // One buffer of NUL-terminated lines, written in one pass over the
        // head's bytes (slices of the head would retain its buffer each)
        // into room reserved for the most it can take: a field's line is
        // never longer than it was in the head (`name: value` and a NUL
        // against `name:` OWS value OWS CRLF), and an X-Forwarded-For value
        // and its `, ` never longer than its line.
        let room = head.bytes.count + 18 + clientAddress.utf8.count + 1 + 14 + requestID.count + 1
            + (tierLine.map { $0.count + 1 } ?? 0) + (mayAddKey ? IdempotencyKey.lineBytes + 1 : 0)
        var sawIdempotencyKey = false
        let lines = bytesWritten(capacity: room) { out in
            var sawTier = false
            head.bytes.withUnsafeBytes { bytes in
                var forwardedFor: [Range<Int>] = []
                for field in head.fields {
                    if head.isHopByHop(field) { continue }
                    switch field.kind {
                    case .host, .contentLength, .authorization, .impTokenHeader, .expect, .requestID:
                        continue
                    case .forwardedFor:
                        forwardedFor.append(field.value)
                        continue
                    case .tier: sawTier = true
                    case .idempotencyKey: sawIdempotencyKey = true
                    default: break
                    }
                    out.put(UnsafeRawBufferPointer(rebasing: bytes[field.name]))
                    out.put(ASCII.colon)
                    if !field.value.isEmpty {
                        out.put(ASCII.space)
                        out.put(UnsafeRawBufferPointer(rebasing: bytes[field.value]))
                    }
                    out.put(0)
                }
                // The client's X-Forwarded-For values, in order, then the client.
                out.put("X-Forwarded-For: " as StaticString)
                for value in forwardedFor {
                    out.put(UnsafeRawBufferPointer(rebasing: bytes[value]))
                    out.put(", " as StaticString)
                }
            }
            clientAddress.withUTF8 { out.put(UnsafeRawBufferPointer($0)) }
            out.put(0)
            out.put("X-Request-Id: " as StaticString)
            requestID.withUnsafeBytes { out.put($0) }
            out.put(0)
            if let tierLine, !sawTier {
                tierLine.withUnsafeBytes { out.put($0) }
                out.put(0)
            }
            if mayAddKey && !sawIdempotencyKey {
                IdempotencyKey.putNewLine(into: &out)
                out.put(0)
                sawIdempotencyKey = true
            }
        }

        let sendsBody = head.framing != .none || method == .post || method == .put || method == .patch
        // The request made in the call: a local passed on was copied, then destroyed.
        let exchange = Exchange(
            request: UpstreamRequest(
                method: method,
                methodName: method == .other ? String(decoding: head[head.methodRange], as: UTF8.self) : method.label,
                pathAndQuery: path.forwardedPathAndQuery(), headerLines: lines, body: sendsBody ? request.body : nil,
                alsoResendable: account.api == .v2 && sawIdempotencyKey),
            clientRequest: request, account: account, requestID: requestID, path: path.path, responder: responder)

        guard let tokens = account.tokens else {
            send(exchange, authorization: account.secretAuthorizationLine, token: nil, context: context)
            return
        }
        if let token = tokens.validToken() {
            send(exchange, authorization: token.authorizationLine, token: token, context: context)
            return
        }
        tokens.withToken { [self] result in
            onLoop(context.loop) {
                switch result {
                case .success(let token):
                    self.send(exchange, authorization: token.authorizationLine, token: token, context: context)
                case .failure(let error):
                    self.fail(exchange, .tokenUnavailable, error.message, context: context)
                }
            }
        }
    }

    /// Sends with `authorization` as the first line: a V1 account's token
    /// (`token`, renewed on a 401), or a V2 account's secret.
    private func send(_ exchange: Exchange, authorization: [UInt8], token: Token?, context: LoopContext) {
        let started = MonotonicClock.now()
        context.upstream(exchange.account.upstreamSlot).send(exchange.request, firstLine: authorization) { [self] result in
            context.upstreamDurations.record(MonotonicClock.now() &- started)
            switch result {
            case .success(let answer) where answer.status == 401 && !exchange.replayed && answer.stream == nil:
                guard let token, let tokens = exchange.account.tokens else {
                    relay(answer, exchange, context: context)
                    return
                }
                // The token was refused: renew once (shared by every request that
                // saw it refused) and replay this request once, with the same body,
                // unless the API still holds the token valid (TokenCache decides).
                // (A 401 too large to hold goes back as it is, streamed, below.)
                let renewed = exchange.with(renewed: true, replayed: true)
                let refused = exchange
                tokens.renewAfterUnauthorized(used: token) { outcome in
                    onLoop(context.loop) {
                        switch outcome {
                        case .replay(let fresh):
                            renewed.account.metrics.replays.increment()
                            self.send(renewed, authorization: fresh.authorizationLine, token: fresh, context: context)
                        case .passThrough:
                            self.relay(answer, refused, context: context)
                        case .failed(let error):
                            let failed = renewed.with(renewed: true, replayed: false)
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
        response.requestID = exchange.requestID
        if exchange.replayed { response.addHeader("X-Iamport-Proxy-Replayed", "1") }
        response.streamed = answer.stream != nil
        finish(exchange, response, upstreamStatus: answer.status, context: context, streamingFrom: answer.stream)
    }

    private func fail(_ exchange: Exchange, _ error: ProxyError, _ message: String, context: LoopContext, upstreamStatus: Int? = nil) {
        var response = error.response(message, requestID: exchange.requestID, api: exchange.account.api)
        if exchange.replayed { response.addHeader("X-Iamport-Proxy-Replayed", "1") }
        finish(exchange, response, upstreamStatus: upstreamStatus, context: context, error: (error, message))
    }

    /// Counts, logs and sends the answer. With `stream`, the answer is too
    /// large to hold: its head and first bytes go now, the rest as it
    /// arrives, at the pace the client reads.
    private func finish(_ exchange: Exchange, _ response: Response, upstreamStatus: Int?, context: LoopContext,
                        error: (ProxyError, String)? = nil, streamingFrom stream: UpstreamBodyStream? = nil) {
        record(exchange.clientRequest, status: response.status, context: context, account: exchange.account)
        logAccess(head: exchange.clientRequest.head, requestID: exchange.requestID,
                  clientAddress: exchange.clientRequest.clientAddress, context: context, account: exchange.account,
                  status: response.status, upstreamStatus: upstreamStatus,
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
                         context: LoopContext, account: ServedAccount?, error: (ProxyError, String)? = nil) {
        record(request, status: response.status, context: context, account: account)
        logAccess(head: request.head, requestID: requestID, clientAddress: request.clientAddress, context: context,
                  account: account,
                  status: response.status, upstreamStatus: nil, bytes: response.body.count,
                  startedAt: request.receivedAt, renewed: false, replayed: false, error: error?.0, message: error?.1)
        responder.respond(response)
    }

    // MARK: - Server's own answers

    public func errorResponse(_ error: ServerError, head: RequestHead?) -> Response {
        let requestID = head.map { self.requestID(for: $0, on: nil) } ?? generatedRequestID(nil)
        return Refusal(error, core.routing.routing.shape(of: listener)).response(requestID: requestID)
    }

    public func didRespondOnItsOwn(_ error: ServerError, status: Int, head: RequestHead?, clientAddress: String) {
        let refusal = Refusal(error)
        if let head {
            logAccess(head: head, requestID: requestID(for: head, on: nil), clientAddress: clientAddress, account: nil,
                      status: status, upstreamStatus: nil, bytes: 0, startedAt: nil, renewed: false, replayed: false,
                      error: refusal.error, message: refusal.message)
        } else {
            logger.info("request refused", metadata: [
                "status": "\(status)", "error": "\(refusal.error.rawValue)", "reason": "\(refusal.message)",
                "client": "\(clientAddress)",
            ])
        }
        record(status: status, method: head?.method ?? .other, account: nil)
    }

    public func serverNotice(_ message: String) {
        logger.warning("\(message)")
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
        var id = core.requestIDPrefix
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
            id.append(hexDigit(serial >> UInt64(shift)))
        }
        return id
    }

    private func record(_ request: Request, status: Int, context: LoopContext, account: ServedAccount?) {
        let method = request.head.method
        let key = account.map { ProxyMetrics.requestCounterKey(status: status, method: method, account: $0.metrics) }
            ?? (status & 0xFFFF) << 8 | Int(method.rawValue)
        let counter: CoreMetricsCounter
        if key == context.lastRequestCounter.key, let last = context.lastRequestCounter.counter {
            // Most answers repeat the last one's status and method: no hash.
            counter = last
        } else {
            if let cached = context.requestCounters[key] {
                counter = cached
            } else {
                counter = metrics.requestCounter(status: status, method: method, account: account?.metrics)
                context.requestCounters[key] = counter
            }
            context.lastRequestCounter = (key, counter)
        }
        counter.increment()
        context.requestDurations.record(MonotonicClock.now() &- request.receivedAt)
    }

    /// Counts an answer given before the request reached a loop's handler
    /// (a refusal): no per-loop cache, no duration.
    private func record(status: Int, method: Method, account: ServedAccount?) {
        metrics.requestCounter(status: status, method: method, account: account?.metrics).increment()
    }

    private func logAccess(
        head: RequestHead, requestID: [UInt8], clientAddress: String, context: LoopContext? = nil,
        account: ServedAccount?, status: Int,
        upstreamStatus: Int?, bytes: Int, startedAt: Nanoseconds?, renewed: Bool, replayed: Bool, error: ProxyError?,
        message: String?
    ) {
        guard accessLog.isOn else { return }
        let target = head[head.target]
        accessLog.record(AccessEntry(
            requestID: requestID, account: account?.label, method: head[head.methodRange],
            path: target.prefix { $0 != ASCII.question }, status: status, upstreamStatus: upstreamStatus,
            bytes: bytes, durationMicros: startedAt.map { (MonotonicClock.now() &- $0) / 1000 }, client: clientAddress,
            renewed: renewed, replayed: replayed, error: error, reason: message), batch: context?.logBatch)
    }
}

/// Runs `body` on `loop`: at once when already there.
func onLoop(_ loop: EventLoop, _ body: @escaping @Sendable () -> Void) {
    if loop.inLoop { body() } else { loop.execute(body) }
}
