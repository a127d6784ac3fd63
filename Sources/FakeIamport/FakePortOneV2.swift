#if canImport(Glibc)
import Glibc
#endif
import EventLoops
import HTTP1
import Server
import Synchronization

/// A fake of PortOne's V2 REST API (`https://api.portone.io`), on the
/// project's own server, for the tests of the proxy's V2 accounts and for
/// `fake-iamport --v2-secret`. A server of its own (a V2 account's upstream
/// is another host than a V1 one), sharing the V1 fake's record type and raw
/// answers. It follows what PortOne documents and its server SDKs expect:
///
/// - Auth: every API call needs `Authorization: PortOne <API secret>`, or
///   `Bearer <access token>` with a token it issued through
///   `POST /login/api-secret` or `POST /token/refresh` (which need no
///   Authorization: their body carries `apiSecret` / `refreshToken`; a
///   refresh retires the refresh token used, as the API's does). Anything
///   else (no field, another scheme, a wrong secret, two Authorization fields):
///   401 `{"type":"UNAUTHORIZED","message":"..."}`. Errors are V2's shape,
///   `{"type": "...", "message": "..."}`, with the types the SDKs map.
/// - Endpoints: `GET /payments/{paymentId}` (a `PAID` payment, `CANCELLED`
///   once cancelled; ids beginning with `missing` do not exist: 404
///   `PAYMENT_NOT_FOUND`), `POST /payments/{paymentId}/cancel` (`reason`
///   required, else 400 `INVALID_REQUEST`; a second cancel: 409
///   `PAYMENT_ALREADY_CANCELLED`), `/echo...` (what it received, as JSON),
///   anything else 404 `NOT_FOUND`.
/// - `Idempotency-Key` on POST, PUT, PATCH and DELETE (ignored on others, as
///   the API does): 16 to 256 of `A-Z a-z 0-9 - _`, bare or as an RFC 8941
///   string in double quotes (the same key either way); two fields or another
///   value: 400 `INVALID_REQUEST`. A key's first request runs; a repeat gets
///   the first answer byte for byte without running again; a repeat while the
///   first still runs (see `delay=MS`) gets 409 `IDEMPOTENCY_OUTSTANDING_REQUEST`;
///   a repeat with another method, target or body gets 422 `INVALID_REQUEST`
///   (PortOne only says a key must not be reused for another request; 422 is
///   what the IETF idempotency-key draft it points to prescribes). Keys are
///   checked after auth; at most `keyCapacity` are remembered.
///
/// Faults, per request with `X-Fake-Fault` as on the V1 fake: `delay=MS`
/// (the answer, and the key's completion, come MS later), `hang` (no answer,
/// key untouched), `reset` (TCP reset, before anything runs), `garbage`,
/// `chunked`, `close-delimited`, `ambiguous-length`, `big=N`, `big-chunked=N`
/// (the V1 fake's raw answers and bodies, before auth), `unauthorized` (401
/// whatever the credentials), `status=CODE` (a V2 error of that status, in
/// place of running the request; it becomes the key's answer), and two for
/// a re-send's safety: `drop` (the request runs and its answer becomes the
/// key's, then the connection closes without an answer, every time) and
/// `drop-first` (the same, but only for the run of a key's first request:
/// a re-send with the key gets the stored answer; without a key, as `drop`).
///
/// Observations: `arrivals`, `arrivals(method:path:)`, `arrivals(key:)`,
/// `executions`, `executions(key:)`, `replays`, `outstandingConflicts`,
/// `keyMismatches`, `unauthorizedAnswers`, `recorded`; over HTTP (no auth)
/// `/_fake/stats` and `/_fake/requests`, in plain JSON.
public final class FakePortOneV2: HTTPHandler {
    public struct Configuration: Sendable {
        public var apiSecret: String
        public var storeId: String
        /// Idempotency keys remembered at most, the oldest forgotten first
        /// (the API keeps a key 3 hours).
        public var keyCapacity: Int

        public init(apiSecret: String = "test-v2-secret", storeId: String = "store-4f1b2c3d-fake-v2",
                    keyCapacity: Int = 10_000) {
            self.apiSecret = apiSecret
            self.storeId = storeId
            self.keyCapacity = keyCapacity
        }
    }

    /// What makes a repeat "the same request" for its key.
    private struct Fingerprint: Equatable {
        var method: String
        var target: String
        var body: [UInt8]
    }

    private struct KeyRecord {
        var fingerprint: Fingerprint
        /// Nil while the key's first request still runs.
        var answer: Response?
    }

    private struct Cancellation {
        var id: String
        /// The reason as it came, still JSON-escaped (written back as it is).
        var reason: String
        var at: String
    }

    private struct State {
        var configuration: Configuration
        /// Secrets accepted besides the configured one (a rotation).
        var extraSecrets: Set<String> = []
        var recorded: [FakeIamport.Recorded] = []
        var arrivals = 0
        var arrivalsByRequest: [String: Int] = [:]
        var arrivalsByKey: [String: Int] = [:]
        var executions = 0
        var executionsByKey: [String: Int] = [:]
        var replays = 0
        var outstandingConflicts = 0
        var keyMismatches = 0
        var unauthorizedAnswers = 0
        var keys: [String: KeyRecord] = [:]
        var keyOrder: [String] = []
        var cancelled: [String: Cancellation] = [:]
        var accessTokens: Set<String> = []
        var refreshTokens: Set<String> = []
        var serial = 0
    }

    private let state: Mutex<State>
    private let runner = FakeServer()

    public init(configuration: Configuration = Configuration()) {
        state = Mutex(State(configuration: configuration))
    }

    // MARK: - Running

    /// Starts listening; returns the bound address.
    public func start(listen: String = "127.0.0.1:0", loops: Int = 1, idleTimeout: Nanoseconds = .seconds(60)) throws -> SocketAddress {
        try runner.start(self, listen: listen, loops: loops, idleTimeout: idleTimeout)
    }

    public func stop() {
        runner.stop()
    }

    public var connectionsAccepted: Int { runner.connectionsAccepted }

    // MARK: - Observations

    /// Requests received (control calls aside), whatever became of them.
    public var arrivals: Int { state.withLock { $0.arrivals } }
    /// Requests received with this method and path (query aside).
    /// The API secrets accepted from now on (a rotation: both while it
    /// runs, then the new one alone).
    public func acceptSecrets(_ secrets: [String]) {
        state.withLock { s in
            if let first = secrets.first { s.configuration.apiSecret = first }
            s.extraSecrets = Set(secrets.dropFirst())
        }
    }

    public func arrivals(method: String, path: String) -> Int {
        state.withLock { $0.arrivalsByRequest[method + " " + path] ?? 0 }
    }
    /// Requests received carrying this Idempotency-Key (quotes aside).
    public func arrivals(key: String) -> Int { state.withLock { $0.arrivalsByKey[key] ?? 0 } }
    /// Requests an endpoint ran (not replayed, refused or answered by a fault).
    public var executions: Int { state.withLock { $0.executions } }
    public func executions(key: String) -> Int { state.withLock { $0.executionsByKey[key] ?? 0 } }
    /// Repeats answered with their key's stored answer.
    public var replays: Int { state.withLock { $0.replays } }
    /// 409 IDEMPOTENCY_OUTSTANDING_REQUEST answers.
    public var outstandingConflicts: Int { state.withLock { $0.outstandingConflicts } }
    /// 422 answers to a key reused for another request.
    public var keyMismatches: Int { state.withLock { $0.keyMismatches } }
    public var unauthorizedAnswers: Int { state.withLock { $0.unauthorizedAnswers } }
    public var recorded: [FakeIamport.Recorded] { state.withLock { $0.recorded } }
    /// Access tokens it issued through login or refresh.
    public var issuedAccessTokens: Set<String> { state.withLock { $0.accessTokens } }

    public func clearRecorded() {
        state.withLock { $0.recorded.removeAll() }
    }

    // MARK: - HTTPHandler

    public func errorResponse(_ error: ServerError, head: RequestHead?) -> Response {
        switch error {
        case .malformed(let e): return Self.error(status: e.status, type: "INVALID_REQUEST", message: "fake: malformed request")
        case .headerTimeout, .bodyTimeout: return Self.error(status: 408, type: "INVALID_REQUEST", message: "fake: timeout")
        case .overloaded, .shuttingDown: return Self.error(status: 503, type: "UNAVAILABLE", message: "fake: unavailable")
        }
    }

    public func handle(_ request: Request, responder: Responder) {
        let head = request.head
        let target = String(decoding: head[head.target], as: UTF8.self)
        let path = String(target.prefix { $0 != "?" })
        let method = String(decoding: head[head.methodRange], as: UTF8.self)
        let headers = head.fields.map {
            (name: String(decoding: head[$0.name], as: UTF8.self), value: String(decoding: head[$0.value], as: UTF8.self))
        }
        let r = FakeIamport.Recorded(method: method, target: target, headers: headers, body: request.body)
        if path.hasPrefix("/_fake/") {
            responder.respond(control(path: path))
            return
        }
        let keyFields = r.headers("Idempotency-Key")
        state.withLock { s in
            s.recorded.append(r)
            if s.recorded.count > 2000 { s.recorded.removeFirst(1000) }
            s.arrivals += 1
            s.arrivalsByRequest[method + " " + path, default: 0] += 1
            for field in keyFields where s.arrivalsByKey.count < 100_000 || s.arrivalsByKey[Self.unquoted(field)] != nil {
                s.arrivalsByKey[Self.unquoted(field), default: 0] += 1
            }
        }

        // Faults in place of any processing: the API never saw the request.
        let fault = r.header("X-Fake-Fault") ?? ""
        if FakeIamport.answeredTransportFault(fault, responder) { return }

        if method == "POST" && (path == "/login/api-secret" || path == "/token/refresh") {
            responder.respond(path == "/login/api-secret" ? login(body: request.body) : refresh(body: request.body))
            return
        }
        guard fault != "unauthorized", authorized(r) else {
            state.withLock { $0.unauthorizedAnswers += 1 }
            responder.respond(Self.error(status: 401, type: "UNAUTHORIZED", message: "fake: invalid authorization"))
            return
        }

        var claimedKey: String?
        if ["POST", "PUT", "PATCH", "DELETE"].contains(method) && !keyFields.isEmpty {
            guard keyFields.count == 1, let key = Self.idempotencyKey(keyFields[0]) else {
                responder.respond(Self.error(status: 400, type: "INVALID_REQUEST",
                                             message: "Idempotency-Key: one value of 16 to 256 of A-Z a-z 0-9 - _"))
                return
            }
            switch claim(key, Fingerprint(method: method, target: target, body: request.body)) {
            case .mismatch:
                responder.respond(Self.error(status: 422, type: "INVALID_REQUEST",
                                             message: "fake: this Idempotency-Key was used for another request"))
                return
            case .outstanding:
                responder.respond(Self.error(status: 409, type: "IDEMPOTENCY_OUTSTANDING_REQUEST",
                                             message: "fake: a request with this Idempotency-Key is still running"))
                return
            case .replay(let answer):
                if fault == "drop" { responder.respondRaw([]) } else { responder.respond(answer) }
                return
            case .run:
                claimedKey = key
            }
        }

        let answer: Response
        if fault.hasPrefix("status="), let status = Int(fault.dropFirst(7)), (200...599).contains(status) {
            answer = Self.statusAnswer(status)
        } else {
            answer = execute(r, path: path, key: claimedKey)
        }
        let drop = fault == "drop" || fault == "drop-first"
        let finish: @Sendable () -> Void = { [self, claimedKey] in
            if let key = claimedKey {
                state.withLock { s in if s.keys[key] != nil { s.keys[key]!.answer = answer } }
            }
            if drop { responder.respondRaw([]) } else { responder.respond(answer) }
        }
        if fault.hasPrefix("delay="), let ms = Int(fault.dropFirst(6)), ms > 0 {
            let loop = request.loop
            loop.execute { loop.schedule(after: .milliseconds(min(ms, 600_000))) { finish() } }
        } else {
            finish()
        }
    }

    // MARK: - Auth

    private func authorized(_ r: FakeIamport.Recorded) -> Bool {
        let fields = r.headers("Authorization")
        guard fields.count == 1 else { return false }
        let value = fields[0]
        guard let space = value.firstIndex(of: " ") else { return false }
        let scheme = value[..<space].lowercased()
        let credential = String(value[value.index(after: space)...])
        return state.withLock { s in
            switch scheme {
            case "portone": return credential == s.configuration.apiSecret || s.extraSecrets.contains(credential)
            case "bearer": return s.accessTokens.contains(credential)
            default: return false
            }
        }
    }

    private func login(body: [UInt8]) -> Response {
        let text = String(decoding: body, as: UTF8.self)
        guard Self.isJSONObject(text), let secret = Self.string("apiSecret", in: text) else {
            return Self.error(status: 400, type: "INVALID_REQUEST", message: "fake: apiSecret is required")
        }
        return state.withLock { s in
            guard secret == s.configuration.apiSecret else {
                s.unauthorizedAnswers += 1
                return Self.error(status: 401, type: "UNAUTHORIZED", message: "fake: invalid API secret")
            }
            return Self.issueTokens(&s)
        }
    }

    private func refresh(body: [UInt8]) -> Response {
        let text = String(decoding: body, as: UTF8.self)
        guard Self.isJSONObject(text), let token = Self.string("refreshToken", in: text) else {
            return Self.error(status: 400, type: "INVALID_REQUEST", message: "fake: refreshToken is required")
        }
        return state.withLock { s in
            guard s.refreshTokens.remove(token) != nil else {
                s.unauthorizedAnswers += 1
                return Self.error(status: 401, type: "UNAUTHORIZED", message: "fake: invalid refresh token")
            }
            return Self.issueTokens(&s)
        }
    }

    private static func issueTokens(_ s: inout State) -> Response {
        s.serial += 1
        var random = SystemRandomNumberGenerator()
        let access = "fake-v2-access-" + String(random.next(), radix: 16) + "-" + String(s.serial)
        let refresh = "fake-v2-refresh-" + String(random.next(), radix: 16) + "-" + String(s.serial)
        s.accessTokens.insert(access)
        s.refreshTokens.insert(refresh)
        return json(200, #"{"accessToken":"\#(access)","refreshToken":"\#(refresh)"}"#)
    }

    // MARK: - Idempotency

    private enum Claim {
        case run
        case replay(Response)
        case outstanding
        case mismatch
    }

    private func claim(_ key: String, _ fingerprint: Fingerprint) -> Claim {
        state.withLock { s in
            if let existing = s.keys[key] {
                guard existing.fingerprint == fingerprint else {
                    s.keyMismatches += 1
                    return .mismatch
                }
                guard let answer = existing.answer else {
                    s.outstandingConflicts += 1
                    return .outstanding
                }
                s.replays += 1
                return .replay(answer)
            }
            s.keys[key] = KeyRecord(fingerprint: fingerprint, answer: nil)
            s.keyOrder.append(key)
            if s.keyOrder.count > max(1, s.configuration.keyCapacity) {
                let forgotten = s.keyOrder.removeFirst()
                s.keys[forgotten] = nil
            }
            return .run
        }
    }

    /// The key inside an Idempotency-Key field (an RFC 8941 string's quotes
    /// removed), or nil when it is not one the API accepts.
    static func idempotencyKey(_ field: String) -> String? {
        let key = unquoted(field)
        guard (16...256).contains(key.utf8.count),
            key.utf8.allSatisfy(isKeyByte)
        else { return nil }
        return key
    }

    private static func isKeyByte(_ b: UInt8) -> Bool {
        switch b {
        case UInt8(ascii: "A")...UInt8(ascii: "Z"), UInt8(ascii: "a")...UInt8(ascii: "z"), UInt8(ascii: "0")...UInt8(ascii: "9"),
            UInt8(ascii: "-"), UInt8(ascii: "_"):
            return true
        default:
            return false
        }
    }

    static func unquoted(_ field: String) -> String {
        if field.utf8.count >= 2 && field.hasPrefix("\"") && field.hasSuffix("\"") {
            return String(field.dropFirst().dropLast())
        }
        return field
    }

    // MARK: - Endpoints

    private func execute(_ r: FakeIamport.Recorded, path: String, key: String?) -> Response {
        let storeId = state.withLock { s -> String in
            s.executions += 1
            if let key { s.executionsByKey[key, default: 0] += 1 }
            return s.configuration.storeId
        }
        if path.hasPrefix("/echo") { return echo(r) }
        let segments = path.split(separator: "/", omittingEmptySubsequences: false).dropFirst()
        guard segments.first == "payments", segments.count >= 2, let id = Self.percentDecoded(segments.dropFirst().first!),
            !id.isEmpty
        else {
            return Self.error(status: 404, type: "NOT_FOUND", message: "fake: no such endpoint")
        }
        let isRead = r.method == "GET" || r.method == "HEAD"
        if segments.count == 2 && isRead {
            if id.hasPrefix("missing") { return Self.error(status: 404, type: "PAYMENT_NOT_FOUND", message: "결제 건이 존재하지 않습니다.") }
            let cancellation = state.withLock { $0.cancelled[id] }
            return Self.json(200, Self.payment(id: id, storeId: storeId, cancellation: cancellation))
        }
        if segments.count == 3 && segments.last == "cancel" && r.method == "POST" {
            return cancel(id: id, body: r.body)
        }
        return Self.error(status: 404, type: "NOT_FOUND", message: "fake: no such endpoint")
    }

    private func cancel(id: String, body: [UInt8]) -> Response {
        let text = String(decoding: body, as: UTF8.self)
        guard Self.isJSONObject(text), let reason = Self.string("reason", in: text) else {
            return Self.error(status: 400, type: "INVALID_REQUEST", message: "fake: reason is required")
        }
        if id.hasPrefix("missing") { return Self.error(status: 404, type: "PAYMENT_NOT_FOUND", message: "결제 건이 존재하지 않습니다.") }
        return state.withLock { s in
            if s.cancelled[id] != nil {
                return Self.error(status: 409, type: "PAYMENT_ALREADY_CANCELLED", message: "결제가 이미 취소되었습니다.")
            }
            s.serial += 1
            let cancellation = Cancellation(id: "fake-cancellation-\(s.serial)", reason: reason, at: Self.timestamp(Int(time(nil))))
            s.cancelled[id] = cancellation
            return Self.json(200, #"{"cancellation":\#(Self.cancellation(cancellation))}"#)
        }
    }

    /// What was received, for tests of the forwarding rules.
    private func echo(_ r: FakeIamport.Recorded) -> Response {
        let e = FakeIamport.escape
        var text = #"{"method":"\#(e(r.method))","target":"\#(e(r.target))","headers":["#
        text += r.headers.map { #"["\#(e($0.name))","\#(e($0.value))"]"# }.joined(separator: ",")
        text += #"],"body":"\#(e(String(decoding: r.body, as: UTF8.self)))","bodyLength":\#(r.body.count)}"#
        var response = Self.json(200, text)
        response.addHeader("X-Fake-Echo", "1")
        return response
    }

    private func control(path: String) -> Response {
        let e = FakeIamport.escape
        func object(_ counts: [String: Int]) -> String {
            "{" + counts.sorted { $0.key < $1.key }.map { #""\#(e($0.key))":\#($0.value)"# }.joined(separator: ",") + "}"
        }
        func strings(_ values: [String]) -> String { "[" + values.map { "\"\(e($0))\"" }.joined(separator: ",") + "]" }
        switch path {
        case "/_fake/stats":
            let s = state.withLock { $0 }
            return Self.json(200, #"{"arrivals":\#(s.arrivals),"executions":\#(s.executions),"replays":\#(s.replays),"#
                + #""outstanding_conflicts":\#(s.outstandingConflicts),"key_mismatches":\#(s.keyMismatches),"#
                + #""unauthorized_answers":\#(s.unauthorizedAnswers),"connections":\#(connectionsAccepted),"#
                + #""arrivals_by_request":\#(object(s.arrivalsByRequest)),"arrivals_by_key":\#(object(s.arrivalsByKey)),"#
                + #""executions_by_key":\#(object(s.executionsByKey))}"#)
        case "/_fake/requests":
            let requests = recorded.map { r in
                #"{"method":"\#(e(r.method))","target":"\#(e(r.target))","authorization":\#(strings(r.headers("Authorization"))),"#
                    + #""idempotency_key":\#(strings(r.headers("Idempotency-Key"))),"#
                    + #""body":"\#(e(String(decoding: r.body, as: UTF8.self)))"}"#
            }
            return Self.json(200, #"{"requests":[\#(requests.joined(separator: ","))]}"#)
        default:
            return Self.error(status: 404, type: "NOT_FOUND", message: "fake: no such control")
        }
    }

    // MARK: - Bodies

    static func json(_ status: Int, _ text: String) -> Response {
        var r = Response(status: status)
        r.addHeader("Content-Type", "application/json")
        r.body = Array(text.utf8)
        return r
    }

    /// V2's error shape.
    static func error(status: Int, type: String, message: String) -> Response {
        json(status, #"{"type":"\#(FakeIamport.escape(type))","message":"\#(FakeIamport.escape(message))"}"#)
    }

    /// A `status=CODE` fault's answer: the V2 error the API gives with that status.
    static func statusAnswer(_ status: Int) -> Response {
        switch status {
        case 200..<300: return json(status, "{}")
        case 400: return error(status: status, type: "INVALID_REQUEST", message: "fake status 400")
        case 401: return error(status: status, type: "UNAUTHORIZED", message: "fake status 401")
        case 403: return error(status: status, type: "FORBIDDEN", message: "fake status 403")
        case 404: return error(status: status, type: "PAYMENT_NOT_FOUND", message: "fake status 404")
        case 409: return error(status: status, type: "PAYMENT_ALREADY_CANCELLED", message: "fake status 409")
        case 502:
            return json(status, #"{"type":"PG_PROVIDER","message":"fake status 502","pgCode":"F999","pgMessage":"fake PG failure"}"#)
        default: return error(status: status, type: "INTERNAL_SERVER_ERROR", message: "fake status \(status)")
        }
    }

    /// A payment as `GET /payments/{paymentId}` gives it: PAID, or CANCELLED
    /// once cancelled (the fields the SDKs require, and the usual others).
    private static func payment(id: String, storeId: String, cancellation: Cancellation?) -> String {
        let e = FakeIamport.escape
        let status = cancellation == nil ? "PAID" : "CANCELLED"
        let cancelled = cancellation == nil ? 0 : 1004
        var text = #"{"status":"\#(status)","id":"\#(e(id))","transactionId":"0193c0d4-fake-v2-\#(e(id).utf8.count)","#
        text += #""merchantId":"merchant-4f1b2c3d-fake","storeId":"\#(e(storeId))","#
        text += #""method":{"type":"PaymentMethodCard","card":{"publisher":"361","issuer":"361","brand":"LOCAL","type":"CREDIT","ownerType":"PERSONAL","bin":"910020","name":"BC카드","number":"91002000****5000"},"approvalNumber":"30016493","installment":{"month":0,"isInterestFree":false},"pointUsed":false},"#
        text += #""channel":{"type":"TEST","id":"channel-id-fake","key":"channel-key-fake","name":"이니시스 테스트","pgProvider":"INICIS_V2","pgMerchantId":"INIpayTest"},"#
        text += #""version":"V2","requestedAt":"2023-11-14T22:13:10Z","updatedAt":"\#(cancellation?.at ?? "2023-11-14T22:13:20Z")","#
        text += #""statusChangedAt":"\#(cancellation?.at ?? "2023-11-14T22:13:20Z")","orderName":"노르웨이 회전 의자","#
        text += #""amount":{"total":1004,"taxFree":0,"vat":91,"supply":913,"discount":0,"paid":\#(1004 - cancelled),"cancelled":\#(cancelled),"cancelledTaxFree":0},"#
        text += #""currency":"KRW","customer":{"name":"홍길동","email":"buyer@example.com","phoneNumber":"01012345678"},"#
        text += #""origin":{"platformType":"PC","ipAddress":"203.0.113.7","userAgent":"Mozilla/5.0 (Macintosh; Intel Mac OS X 10_15_7)","url":"https://shop.example.com/checkout"},"#
        text += #""isCulturalExpense":false,"paidAt":"2023-11-14T22:13:20Z","pgTxId":"StdpayCARDINIpayTest20231115000000123456","#
        text += #""receiptUrl":"https://iniweb.inicis.com/receipt/StdpayCARDINIpayTest20231115000000123456","#
        if let cancellation {
            text += #""cancellations":[\#(Self.cancellation(cancellation))],"cancelledAt":"\#(cancellation.at)"}"#
        } else {
            text += #""disputes":[]}"#
        }
        return text
    }

    private static func cancellation(_ c: Cancellation) -> String {
        #"{"status":"SUCCEEDED","id":"\#(c.id)","pgCancellationId":"pg-\#(c.id)","totalAmount":1004,"taxFreeAmount":0,"vatAmount":91,"#
            + #""easyPayDiscountAmount":0,"reason":"\#(c.reason)","cancelledAt":"\#(c.at)","requestedAt":"\#(c.at)","trigger":"API"}"#
    }

    /// RFC 3339 in UTC, as the API writes times.
    static func timestamp(_ seconds: Int) -> String {
        var t = time_t(seconds)
        var parts = tm()
        gmtime_r(&t, &parts)
        func two(_ n: Int32) -> String { n < 10 ? "0\(n)" : "\(n)" }
        return "\(parts.tm_year + 1900)-\(two(parts.tm_mon + 1))-\(two(parts.tm_mday))T"
            + "\(two(parts.tm_hour)):\(two(parts.tm_min)):\(two(parts.tm_sec))Z"
    }

    // MARK: - Small JSON reading (enough for the fake)

    static func isJSONObject(_ text: String) -> Bool {
        let trimmed = text.utf8.drop { $0 == 0x20 || $0 == 0x0A || $0 == 0x0D || $0 == 0x09 }
        return trimmed.first == UInt8(ascii: "{") && text.utf8.reversed().first { $0 > 0x20 } == UInt8(ascii: "}")
    }

    /// A string member of a flat JSON object, still escaped as it came (so
    /// it can be written back as it is); nil when absent or not a string.
    static func string(_ name: String, in text: String) -> String? {
        let bytes = Array(text.utf8)
        let needle = Array("\"\(name)\"".utf8)
        guard let range = bytes.firstRange(of: needle) else { return nil }
        var i = range.upperBound
        while i < bytes.count, bytes[i] == 0x20 || bytes[i] == 0x0A || bytes[i] == 0x0D || bytes[i] == 0x09 { i += 1 }
        guard i < bytes.count, bytes[i] == UInt8(ascii: ":") else { return nil }
        i += 1
        while i < bytes.count, bytes[i] == 0x20 || bytes[i] == 0x0A || bytes[i] == 0x0D || bytes[i] == 0x09 { i += 1 }
        guard i < bytes.count, bytes[i] == UInt8(ascii: "\"") else { return nil }
        let start = i + 1
        i = start
        while i < bytes.count {
            if bytes[i] == UInt8(ascii: "\\") { i += 2; continue }
            if bytes[i] == UInt8(ascii: "\"") { return String(decoding: bytes[start..<i], as: UTF8.self) }
            if bytes[i] < 0x20 { return nil }
            i += 1
        }
        return nil
    }

    /// A path segment with its %XX escapes decoded; nil if one is broken.
    static func percentDecoded(_ segment: Substring) -> String? {
        var out: [UInt8] = []
        var bytes = Array(segment.utf8)[...]
        while let byte = bytes.popFirst() {
            guard byte == UInt8(ascii: "%") else { out.append(byte); continue }
            guard bytes.count >= 2, let high = ASCII.hexValue(bytes.popFirst()!), let low = ASCII.hexValue(bytes.popFirst()!) else {
                return nil
            }
            out.append(high << 4 | low)
        }
        return String(decoding: out, as: UTF8.self)
    }
}

extension Array where Element == UInt8 {
    fileprivate func firstRange(of pattern: [UInt8]) -> Range<Int>? {
        guard !pattern.isEmpty, count >= pattern.count else { return nil }
        for i in 0...(count - pattern.count) where self[i] == pattern[0] {
            if self[i..<(i + pattern.count)].elementsEqual(pattern) { return i..<(i + pattern.count) }
        }
        return nil
    }
}
