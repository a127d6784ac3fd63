#if canImport(Glibc)
import Glibc
#endif
import EventLoops
import HTTP1
import Server
import Synchronization

/// A faithful fake of the iamport REST API for tests and `make demo`, built
/// on the project's own server. It follows the API's token rules: a token
/// lives `tokenLifetime` seconds; asking again before expiry returns the same
/// token, and asking within the last `extensionWindow` seconds extends it by
/// `extensionSeconds`; unknown, expired or revoked tokens get 401. Its clock
/// can be offset from the machine's, as a real server's may be.
///
/// Faults are injected per request with an `X-Fake-Fault` header (which the
/// proxy forwards like any other): `delay=MS`, `hang`, `reset`, `garbage`,
/// `status=CODE`, `reason=TEXT` (a reason phrase of its own, `_` for spaces),
/// `chunked`, `close-delimited` and `ambiguous-length` (answers framed those
/// ways, written raw, then the connection closes),
/// `unauthorized` (answer 401 whatever the token), `gzip`,
/// `hop-headers` (an answer with hop-by-hop fields), `impersonate` (fields
/// in the proxy's name and an X-Request-Id of its own), `big=N` (a body of N
/// bytes with a Content-Length) and `big-chunked=N` (the same body chunked,
/// written raw, then the connection closes; both bodies are
/// `FakeIamport.bigBody(N)`), or
/// through the control endpoints under `/_fake/` (`revoke`, `fail-tokens`,
/// `heal-tokens`, `stats`, and `requests`: what was received and the tokens issued).
///
/// Hostile getToken answers: `Configuration.tokenAnswer`, or at run time
/// `POST /_fake/token-answer` with a JSON body or `overrideTokenAnswer(_:)`,
/// makes every getToken answer
/// `{"code":0,"message":null,"response":<that body>}`, byte for byte, whatever
/// it holds (`{"access_token":"t","now":-1,"expired_at":9223372036854775807}`,
/// a token with `\r\n`, a string for `now`, ...); the credentials are still
/// checked first. An empty body, or `nil`, restores the real answers.
public final class FakeIamport: HTTPHandler {
    public struct Configuration: Sendable {
        public var apiKey: String
        public var apiSecret: String
        public var tokenLifetime: Int
        public var extensionWindow: Int
        public var extensionSeconds: Int
        /// Seconds added to the machine's clock for `now` and `expired_at`.
        public var clockOffset: Int
        /// How long getToken takes to answer.
        public var getTokenDelayMilliseconds: Int
        /// When set, the `response` of every getToken answer, raw JSON written
        /// as it is, instead of a real token (hostile answers for tests).
        public var tokenAnswer: String?

        public init(apiKey: String = "test-key", apiSecret: String = "test-secret", tokenLifetime: Int = 1800,
                    extensionWindow: Int = 60, extensionSeconds: Int = 300, clockOffset: Int = 0,
                    getTokenDelayMilliseconds: Int = 0, tokenAnswer: String? = nil) {
            self.tokenAnswer = tokenAnswer
            self.getTokenDelayMilliseconds = getTokenDelayMilliseconds
            self.apiKey = apiKey
            self.apiSecret = apiSecret
            self.tokenLifetime = tokenLifetime
            self.extensionWindow = extensionWindow
            self.extensionSeconds = extensionSeconds
            self.clockOffset = clockOffset
        }
    }

    /// A request as the fake received it.
    public struct Recorded: Sendable {
        public var method: String
        public var target: String
        public var headers: [(name: String, value: String)]
        public var body: [UInt8]

        public func header(_ name: String) -> String? {
            headers.first { $0.name.lowercased() == name.lowercased() }?.value
        }

        public func headers(_ name: String) -> [String] {
            headers.filter { $0.name.lowercased() == name.lowercased() }.map(\.value)
        }
    }

    private struct IssuedToken {
        var value: String
        var expiredAt: Int
    }

    private struct State {
        var configuration: Configuration
        /// Secrets getToken accepts besides the configured one (a rotation).
        var extraSecrets: Set<String> = []
        /// The `imp_secret` of the last getToken, kept apart from `recorded`
        /// (which a long run trims).
        var lastSubmittedSecret: String?
        var current: IssuedToken?
        var valid: [String: Int] = [:]  // token -> expired_at
        var getTokenCalls = 0
        var extensions = 0
        var apiCalls = 0
        var unauthorizedAnswers = 0
        var tokenFailure: (status: Int, message: String)?
        var recorded: [Recorded] = []
        var issued: [String] = []
        var serial = 0
    }

    private let state: Mutex<State>
    private let runner = FakeServer()

    /// Answers written byte for byte, for the framings the server's own
    /// serializer never produces.
    public static let rawAnswers: [String: String] = [
        "chunked": "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nTransfer-Encoding: chunked\r\n\r\n"
            + "c\r\n{\"code\":0,\"m\r\n15;ext=1\r\nessage\":null,\"respons\r\n8\r\ne\":null}\r\n0\r\nX-Trailer: t\r\n\r\n",
        "close-delimited": "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nConnection: close\r\n\r\n"
            + "{\"code\":0,\"message\":null,\"response\":null}",
        "ambiguous-length": "HTTP/1.1 200 OK\r\nContent-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n"
            + "0\r\n\r\nhello",
    ]
    /// The body all three framed answers above carry.
    public static let rawAnswerBody = #"{"code":0,"message":null,"response":null}"#

    /// The faults both fakes answer alike, at the transport: `hang`, `reset`,
    /// `garbage`, the raw framings, `big=N` and `big-chunked=N`. True when
    /// `fault` was one of them (and is answered, or deliberately not).
    static func answeredTransportFault(_ fault: String, _ responder: Responder) -> Bool {
        if fault == "hang" { return true }
        if fault == "reset" { responder.abort(); return true }
        if fault == "garbage" { responder.respondRaw(Array("SPDY/9 what\r\n\r\n".utf8)); return true }
        if let raw = rawAnswers[fault] { responder.respondRaw(Array(raw.utf8)); return true }
        if fault.hasPrefix("big="), let n = Int(fault.dropFirst(4)), (0...(128 << 20)).contains(n) {
            var response = Response(status: 200)
            response.addHeader("Content-Type", "application/octet-stream")
            response.body = bigBody(n)
            responder.respond(response)
            return true
        }
        if fault.hasPrefix("big-chunked="), let n = Int(fault.dropFirst(12)), (0...(128 << 20)).contains(n) {
            responder.respondRaw(bigChunkedAnswer(n))
            return true
        }
        return false
    }

    private static let bigBodies = Mutex<[Int: [UInt8]]>([:])

    /// N bytes of a repeating, position-dependent pattern (so a byte out of
    /// place shows), made once per size and shared by every answer.
    public static func bigBody(_ n: Int) -> [UInt8] {
        bigBodies.withLock { cache in
            if let body = cache[n] { return body }
            let body = [UInt8](unsafeUninitializedCapacity: n) { buffer, count in
                for i in 0..<n { buffer[i] = UInt8(truncatingIfNeeded: i &* 31 &+ i >> 12) }
                count = n
            }
            cache[n] = body
            return body
        }
    }

    static func bigChunkedAnswer(_ n: Int) -> [UInt8] {
        let body = bigBody(n)
        var out = Array("HTTP/1.1 200 OK\r\nContent-Type: application/octet-stream\r\nTransfer-Encoding: chunked\r\n\r\n".utf8)
        out.reserveCapacity(n + n / 1000 + 64)
        var offset = 0
        while offset < n {
            let size = min(30_000, n - offset)
            out.append(contentsOf: String(size, radix: 16).utf8)
            out.append(contentsOf: "\r\n".utf8)
            out.append(contentsOf: body[offset..<(offset + size)])
            out.append(contentsOf: "\r\n".utf8)
            offset += size
        }
        out.append(contentsOf: "0\r\n\r\n".utf8)
        return out
    }

    public init(configuration: Configuration = Configuration()) {
        state = Mutex(State(configuration: configuration))
    }

    // MARK: - Running

    /// Starts listening; returns the bound address.
    /// `idleTimeout`: how long it keeps an idle keep-alive connection open.
    public func start(listen: String = "127.0.0.1:0", loops: Int = 1, idleTimeout: Nanoseconds = .seconds(60)) throws -> SocketAddress {
        try runner.start(self, listen: listen, loops: loops, idleTimeout: idleTimeout)
    }

    public func stop() {
        runner.stop()
    }

    /// Connections accepted since start: with a proxy in front, the number of
    /// upstream connections it opened.
    public var connectionsAccepted: Int { runner.connectionsAccepted }

    // MARK: - Controls and observations

    public var getTokenCalls: Int { state.withLock { $0.getTokenCalls } }
    /// getToken answers that extended the current token instead of replacing it.
    public var extensions: Int { state.withLock { $0.extensions } }
    public var apiCalls: Int { state.withLock { $0.apiCalls } }
    public var unauthorizedAnswers: Int { state.withLock { $0.unauthorizedAnswers } }
    public var recorded: [Recorded] { state.withLock { $0.recorded } }
    public var currentToken: String? { state.withLock { $0.current?.value } }
    /// Every token value it ever issued.
    public var issuedTokens: [String] { state.withLock { $0.issued } }

    /// Forget every token: the next call with one gets 401, the next getToken a new one.
    /// The secrets getToken accepts: `secrets` from now on (a rotation:
    /// both while it runs, then the new one alone). Tokens already issued
    /// stay valid, as the API's do.
    public func acceptSecrets(_ secrets: [String]) {
        state.withLock { s in
            if let first = secrets.first { s.configuration.apiSecret = first }
            s.extraSecrets = Set(secrets.dropFirst())
        }
    }

    /// The `imp_secret` the last getToken carried.
    public var lastSubmittedSecret: String? { state.withLock { $0.lastSubmittedSecret } }

    public func revokeTokens() {
        state.withLock {
            $0.valid.removeAll()
            $0.current = nil
        }
    }

    /// Make getToken fail (nil: work again).
    public func failTokens(status: Int?, message: String = "fake token endpoint failure") {
        state.withLock { s in s.tokenFailure = status.map { ($0, message) } }
    }

    /// Answer getToken with `response` (raw JSON, written as it is) instead
    /// of a real token; nil: real answers again.
    public func overrideTokenAnswer(_ response: String?) {
        state.withLock { $0.configuration.tokenAnswer = response }
    }

    public func clearRecorded() {
        state.withLock { $0.recorded.removeAll() }
    }

    private func serverNow(_ s: State) -> Int { Int(time(nil)) + s.configuration.clockOffset }

    // MARK: - HTTPHandler

    public func errorResponse(_ error: ServerError, head: RequestHead?) -> Response {
        let status: Int
        switch error {
        case .malformed(let e): status = e.status
        case .headerTimeout, .bodyTimeout: status = 408
        case .overloaded, .shuttingDown: status = 503
        }
        return Self.envelope(status: status, code: -1, message: "fake: error", response: "null")
    }

    public func handle(_ request: Request, responder: Responder) {
        let head = request.head
        let target = String(decoding: head[head.target], as: UTF8.self)
        // Repeated slashes are one, as the real API reads them (an SDK that
        // joins a base URL ending in `/` sends `//payments/...`).
        var path = String(target.prefix { $0 != "?" })
        while path.contains("//") { path = path.replacing("//", with: "/") }
        let method = String(decoding: head[head.methodRange], as: UTF8.self)
        let headers = head.fields.map {
            (name: String(decoding: head[$0.name], as: UTF8.self), value: String(decoding: head[$0.value], as: UTF8.self))
        }
        let recorded = Recorded(method: method, target: target, headers: headers, body: request.body)

        if path.hasPrefix("/_fake/") {
            responder.respond(control(path: path, target: target, body: request.body))
            return
        }
        state.withLock { s in
            s.recorded.append(recorded)
            if s.recorded.count > 2000 { s.recorded.removeFirst(1000) }
        }
        let fault = recorded.header("X-Fake-Fault") ?? ""
        if Self.answeredTransportFault(fault, responder) { return }

        let response: Response
        var delay = 0
        if method == "POST" && path == "/users/getToken" {
            response = getToken(body: request.body)
            delay = state.withLock { $0.configuration.getTokenDelayMilliseconds }
        } else {
            response = api(recorded, path: path, fault: fault)
        }
        if fault.hasPrefix("delay="), let ms = Int(fault.dropFirst(6)) { delay = ms }
        if delay > 0 {
            let ms = delay
            let loop = request.loop
            loop.execute { loop.schedule(after: .milliseconds(ms)) { responder.respond(response) } }
        } else {
            responder.respond(response)
        }
    }

    private func getToken(body: [UInt8]) -> Response {
        let text = String(decoding: body, as: UTF8.self)
        return state.withLock { s -> Response in
            s.getTokenCalls += 1
            if let failure = s.tokenFailure {
                return Self.envelope(status: failure.status, code: -1, message: failure.message, response: "null")
            }
            let secret = Self.field("imp_secret", in: text)
            s.lastSubmittedSecret = secret
            guard Self.field("imp_key", in: text) == s.configuration.apiKey,
                secret == s.configuration.apiSecret || secret.map(s.extraSecrets.contains) == true
            else {
                return Self.envelope(status: 401, code: -1, message: "invalid imp_key or imp_secret", response: "null")
            }
            if let hostile = s.configuration.tokenAnswer {
                return Self.envelope(status: 200, code: 0, message: nil, response: hostile)
            }
            let now = serverNow(s)
            if var token = s.current, token.expiredAt > now {
                if token.expiredAt - now <= s.configuration.extensionWindow {
                    s.extensions += 1
                    token.expiredAt += s.configuration.extensionSeconds
                    s.current = token
                    s.valid[token.value] = token.expiredAt
                }
            } else {
                s.serial += 1
                var random = SystemRandomNumberGenerator()
                let value = "fake_" + String(random.next(), radix: 16) + "_" + String(s.serial)
                let token = IssuedToken(value: value, expiredAt: now + s.configuration.tokenLifetime)
                s.current = token
                s.valid[value] = token.expiredAt
                s.issued.append(value)
            }
            let token = s.current!
            return Self.envelope(
                status: 200, code: 0, message: nil,
                response: #"{"access_token":"\#(token.value)","now":\#(now),"expired_at":\#(token.expiredAt)}"#)
        }
    }

    /// The token a request carries, in any of the forms the API accepts.
    private static func presentedToken(_ r: Recorded) -> String? {
        if let auth = r.header("Authorization") {
            return auth.lowercased().hasPrefix("bearer ") ? String(auth.dropFirst(7)) : auth
        }
        if let header = r.header("X-ImpTokenHeader") { return header }
        if let range = r.target.firstRange(of: "_token=") {
            return String(r.target[range.upperBound...].prefix { $0 != "&" })
        }
        return nil
    }

    private func api(_ r: Recorded, path: String, fault: String) -> Response {
        let authorized = state.withLock { s -> Bool in
            s.apiCalls += 1
            guard fault != "unauthorized", let token = Self.presentedToken(r), let expiry = s.valid[token],
                expiry > serverNow(s)
            else {
                s.unauthorizedAnswers += 1
                return false
            }
            return true
        }
        guard authorized else {
            return Self.envelope(status: 401, code: -1, message: "Unauthorized", response: "null")
        }
        if fault.hasPrefix("status="), let status = Int(fault.dropFirst(7)) {
            return Self.envelope(status: status, code: status == 207 ? 0 : -1, message: "fake status \(status)",
                                 response: status == 207 ? "[]" : "null")
        }
        if fault.hasPrefix("reason=") {
            // A reason phrase of the upstream's own (spaces as `_`).
            var response = Self.envelope(status: 200, code: 0, message: nil, response: "null")
            response.reason = Array(fault.dropFirst(7).utf8).map { $0 == UInt8(ascii: "_") ? UInt8(ascii: " ") : $0 }
            return response
        }
        if fault == "gzip" {
            var response = Response(status: 200)
            response.addHeader("Content-Type", "application/json")
            response.addHeader("Content-Encoding", "gzip")
            response.body = Self.gzipBody
            return response
        }
        if fault == "impersonate" {
            // Fields in the proxy's name, and a request id of its own: none may reach the client.
            var response = Self.envelope(status: 200, code: 0, message: nil, response: "null")
            response.addHeader("X-Iamport-Proxy-Error", "upstream_timeout")
            response.addHeader("x-iamport-proxy-replayed", "1")
            response.addHeader("X-Request-Id", "chosen-by-the-upstream")
            response.addHeader("X-Kept", "yes")
            return response
        }
        if fault == "hop-headers" {
            // Hop-by-hop fields and one named by Connection: none may reach the client.
            var response = Self.envelope(status: 200, code: 0, message: nil, response: "null")
            response.addHeader("Connection", "keep-alive, X-Upstream-Hop")
            response.addHeader("X-Upstream-Hop", "private")
            response.addHeader("Keep-Alive", "timeout=5")
            response.addHeader("Proxy-Connection", "keep-alive")
            response.addHeader("Upgrade", "h2c")
            response.addHeader("Trailer", "X-Checksum")
            response.addHeader("X-Kept", "yes")
            return response
        }
        if path.hasPrefix("/echo") {
            return echo(r)
        }
        if r.method == "GET" || r.method == "HEAD", path.hasPrefix("/payments/find/") {
            return Self.envelope(status: 200, code: 0, message: nil,
                                 response: Self.payment(impUID: "imp_found", merchantUID: String(path.dropFirst(15)), status: "paid"))
        }
        if r.method == "POST" && path == "/payments/cancel" {
            let body = String(decoding: r.body, as: UTF8.self)
            let imp = Self.field("imp_uid", in: body) ?? "imp_unknown"
            let merchant = Self.field("merchant_uid", in: body) ?? "merchant_unknown"
            return Self.envelope(status: 200, code: 0, message: nil,
                                 response: Self.payment(impUID: imp, merchantUID: merchant, status: "cancelled"))
        }
        if r.method == "GET" || r.method == "HEAD", path.hasPrefix("/payments/") {
            let imp = String(path.dropFirst(10))
            if imp == "imp_missing" {
                return Self.envelope(status: 404, code: 1, message: "존재하지 않는 결제정보입니다.", response: "null")
            }
            return Self.envelope(status: 200, code: 0, message: nil,
                                 response: Self.payment(impUID: imp, merchantUID: "order_" + imp, status: "paid"))
        }
        return Self.envelope(status: 404, code: -1, message: "fake: no such endpoint", response: "null")
    }

    /// What was received, for tests of the forwarding rules.
    private func echo(_ r: Recorded) -> Response {
        var json = #"{"code":0,"message":null,"response":{"method":"\#(Self.escape(r.method))","target":"\#(Self.escape(r.target))","headers":["#
        json += r.headers.map { #"["\#(Self.escape($0.name))","\#(Self.escape($0.value))"]"# }.joined(separator: ",")
        json += #"],"body":"\#(Self.escape(String(decoding: r.body, as: UTF8.self)))","body_length":\#(r.body.count)}}"#
        var response = Response(status: 200)
        response.addHeader("Content-Type", "application/json; charset=utf-8")
        response.addHeader("X-Fake-Echo", "1")
        response.body = Array(json.utf8)
        return response
    }

    private func control(path: String, target: String, body: [UInt8]) -> Response {
        switch path {
        case "/_fake/token-answer":
            overrideTokenAnswer(body.isEmpty ? nil : String(decoding: body, as: UTF8.self))
        case "/_fake/revoke":
            revokeTokens()
        case "/_fake/fail-tokens":
            failTokens(status: 500)
        case "/_fake/heal-tokens":
            failTokens(status: nil)
        case "/_fake/stats":
            break
        case "/_fake/requests":
            return requestsReport()
        default:
            return Self.envelope(status: 404, code: -1, message: "fake: no such control", response: "null")
        }
        let (calls, api, unauthorized) = state.withLock { ($0.getTokenCalls, $0.apiCalls, $0.unauthorizedAnswers) }
        return Self.envelope(status: 200, code: 0, message: nil, response:
            #"{"get_token_calls":\#(calls),"api_calls":\#(api),"unauthorized_answers":\#(unauthorized),"connections":\#(connectionsAccepted)}"#)
    }

    /// What reached the API (control calls aside) and every token issued,
    /// so tests in other processes can check which tokens and calls came through.
    private func requestsReport() -> Response {
        let (recorded, issued) = state.withLock { ($0.recorded, $0.issued) }
        func strings(_ values: [String]) -> String { "[" + values.map { "\"\(Self.escape($0))\"" }.joined(separator: ",") + "]" }
        let requests = recorded.map { r in
            #"{"method":"\#(Self.escape(r.method))","target":"\#(Self.escape(r.target))","authorization":\#(strings(r.headers("Authorization"))),"#
                + #""x_imp_token_header":\#(strings(r.headers("X-ImpTokenHeader"))),"body":"\#(Self.escape(String(decoding: r.body, as: UTF8.self)))"}"#
        }
        return Self.envelope(status: 200, code: 0, message: nil, response:
            #"{"issued_tokens":\#(strings(issued)),"requests":[\#(requests.joined(separator: ","))]}"#)
    }

    // MARK: - Bodies

    static func envelope(status: Int, code: Int, message: String?, response: String) -> Response {
        var r = Response(status: status)
        r.addHeader("Content-Type", "application/json; charset=utf-8")
        let messageJSON = message.map { "\"\(escape($0))\"" } ?? "null"
        r.body = Array(#"{"code":\#(code),"message":\#(messageJSON),"response":\#(response)}"#.utf8)
        return r
    }

    /// An answer about the size of the API's payment object.
    static func payment(impUID: String, merchantUID: String, status: String) -> String {
        #"{"amount":1004,"apply_num":"30016493","bank_code":null,"bank_name":null,"buyer_addr":"서울특별시 강남구 삼성동","buyer_email":"buyer@example.com","buyer_name":"홍길동","buyer_postcode":"123-456","buyer_tel":"010-1234-5678","cancel_amount":0,"cancel_history":[],"cancel_reason":null,"cancel_receipt_urls":[],"cancelled_at":0,"card_code":"361","card_name":"BC카드","card_number":"910020*********5","card_quota":0,"card_type":0,"cash_receipt_issued":false,"channel":"pc","currency":"KRW","custom_data":null,"customer_uid":null,"customer_uid_usage":null,"emb_pg_provider":null,"escrow":false,"fail_reason":null,"failed_at":0,"imp_uid":"\#(escape(impUID))","merchant_uid":"\#(escape(merchantUID))","name":"노르웨이 회전 의자","paid_at":1700000000,"pay_method":"card","pg_id":"INIpayTest","pg_provider":"html5_inicis","pg_tid":"StdpayCARDINIpayTest20231115000000123456","receipt_url":"https://iniweb.inicis.com/DefaultWebApp/mall/cr/cm/mCmReceipt_head.jsp?noTid=StdpayCARDINIpayTest20231115000000123456&noMethod=1","started_at":1699999990,"status":"\#(status)","user_agent":"Mozilla/5.0 (Macintosh; Intel Mac OS X 10_15_7) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/119.0.0.0 Safari/537.36","vbank_code":null,"vbank_date":0,"vbank_holder":null,"vbank_issued_at":0,"vbank_name":null,"vbank_num":null}"#
    }

    /// Bytes that must pass through untouched (they are not decompressed).
    public static let gzipBody: [UInt8] = [
        0x1f, 0x8b, 0x08, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x03, 0xab, 0x56, 0x4a, 0xce, 0x4f, 0x49, 0x55, 0xb2,
        0x32, 0xa8, 0x05, 0x00, 0x97, 0x4e, 0x2d, 0x5c, 0x0a, 0x00, 0x00, 0x00,
    ]

    /// `text` escaped for the inside of a JSON string (HTTP1's writer).
    static func escape(_ text: String) -> String {
        var out: [UInt8] = []
        out.reserveCapacity(text.utf8.count)
        appendJSONEscaped(utf8: text.utf8, to: &out)
        return String(decoding: out, as: UTF8.self)
    }

    /// A string field of a small JSON or form-encoded body (enough for the fake).
    static func field(_ name: String, in body: String) -> String? {
        if let range = body.firstRange(of: "\"\(name)\"") {
            var rest = body[range.upperBound...].drop { $0 == " " || $0 == ":" }
            if rest.first == "\"" {
                rest = rest.dropFirst()
                return String(rest.prefix { $0 != "\"" })
            }
            return String(rest.prefix { $0 != "," && $0 != "}" && $0 != " " })
        }
        for pair in body.split(separator: "&") {
            let parts = pair.split(separator: "=", maxSplits: 1)
            if parts.count == 2 && parts[0] == name { return String(parts[1]) }
        }
        return nil
    }
}
