import FakeIamport
import Foundation
import TestSupport
import Testing

/// The V2 fake, talked to directly: it must be faithful enough to PortOne's
/// V2 API (auth scheme, error shape, Idempotency-Key) for the proxy's V2
/// tests to mean something.
@Suite(.serialized)
struct FakePortOneV2Tests {
    static let secret = "v2-test-secret-31c9e0"
    static let key = "0123456789abcdef0123456789abcdef"

    final class Fake {
        let fake: FakePortOneV2
        let port: Int

        init() throws {
            fake = FakePortOneV2(configuration: .init(apiSecret: FakePortOneV2Tests.secret))
            port = try fake.start().port
        }

        deinit { fake.stop() }

        func request(_ method: String, _ target: String, body: String? = nil, headers: [(String, String)] = [],
                     auth: String? = "PortOne " + FakePortOneV2Tests.secret) -> String {
            var text = "\(method) \(target) HTTP/1.1\r\nHost: api.portone.io\r\n"
            if let auth { text += "Authorization: \(auth)\r\n" }
            for (name, value) in headers { text += "\(name): \(value)\r\n" }
            if let body { text += "Content-Type: application/json\r\nContent-Length: \(body.utf8.count)\r\n" }
            return text + "Connection: close\r\n\r\n" + (body ?? "")
        }

        func send(_ method: String, _ target: String, body: String? = nil, headers: [(String, String)] = [],
                  auth: String? = "PortOne " + FakePortOneV2Tests.secret) throws -> HTTPTestClient.Answer {
            try HTTPTestClient.request(port: port, request(method, target, body: body, headers: headers, auth: auth))
        }

        func cancel(_ id: String, key: String?, reason: String = "customer asked", fault: String? = nil) throws -> HTTPTestClient.Answer {
            var headers: [(String, String)] = []
            if let key { headers.append(("Idempotency-Key", key)) }
            if let fault { headers.append(("X-Fake-Fault", fault)) }
            return try send("POST", "/payments/\(id)/cancel", body: #"{"reason":"\#(reason)"}"#, headers: headers)
        }

        /// Waits (bounded) until `count` requests carrying `key` have arrived.
        func waitForArrivals(key: String, count: Int) {
            for _ in 0..<400 where fake.arrivals(key: key) < count { usleep(5_000) }
        }
    }

    static func type(_ answer: HTTPTestClient.Answer) -> String? { answer.json?["type"] as? String }

    // MARK: - Auth

    @Test func acceptsThePortOneSchemeWithItsSecret() throws {
        let f = try Fake()
        let answer = try f.send("GET", "/payments/pay-1?storeId=store-1")
        #expect(answer.status == 200)
        #expect(answer.json?["status"] as? String == "PAID")
        #expect(answer.json?["id"] as? String == "pay-1")
        #expect((answer.json?["amount"] as? [String: Any])?["total"] as? Int == 1004)
        #expect(f.fake.unauthorizedAnswers == 0)
        #expect(f.fake.recorded.last?.header("Authorization") == "PortOne " + Self.secret)
    }

    @Test func refusesEveryOtherAuthorizationWithV2sErrorShape() throws {
        let f = try Fake()
        let refused: [[(String, String)]] = [
            [],
            [("Authorization", "PortOne wrong-secret")],
            [("Authorization", "Bearer " + Self.secret)],
            [("Authorization", "Basic " + Self.secret)],
            [("Authorization", Self.secret)],
            [("Authorization", "PortOne " + Self.secret.dropLast())],
            [("Authorization", "PortOne  " + Self.secret)],
            [("Authorization", "PortOne " + Self.secret), ("Authorization", "PortOne " + Self.secret)],
        ]
        for headers in refused {
            let answer = try f.send("GET", "/payments/pay-1", headers: headers, auth: nil)
            #expect(answer.status == 401, "\(headers)")
            #expect(Self.type(answer) == "UNAUTHORIZED", "\(headers)")
            #expect(answer.json?["message"] is String)
            #expect(answer.json?.keys.sorted() == ["message", "type"])
        }
        #expect(f.fake.unauthorizedAnswers == refused.count)
        #expect(f.fake.executions == 0)
    }

    @Test func loginIssuesTokensThatWorkAsBearerAndRefreshRetiresTheOldOne() throws {
        let f = try Fake()
        let wrong = try f.send("POST", "/login/api-secret", body: #"{"apiSecret":"nope"}"#, auth: nil)
        #expect(wrong.status == 401 && Self.type(wrong) == "UNAUTHORIZED")
        let login = try f.send("POST", "/login/api-secret", body: #"{"apiSecret":"\#(Self.secret)"}"#, auth: nil)
        #expect(login.status == 200)
        let access = try #require(login.json?["accessToken"] as? String)
        let refresh = try #require(login.json?["refreshToken"] as? String)
        #expect(try f.send("GET", "/payments/pay-1", auth: "Bearer " + access).status == 200)

        let renewed = try f.send("POST", "/token/refresh", body: #"{"refreshToken":"\#(refresh)"}"#, auth: nil)
        #expect(renewed.status == 200 && renewed.json?["accessToken"] is String)
        let again = try f.send("POST", "/token/refresh", body: #"{"refreshToken":"\#(refresh)"}"#, auth: nil)
        #expect(again.status == 401 && Self.type(again) == "UNAUTHORIZED")
        #expect(try f.send("POST", "/login/api-secret", body: "{}", auth: nil).status == 400)
    }

    // MARK: - Endpoints

    @Test func cancelChangesThePaymentAndASecondCancelIsRefused() throws {
        let f = try Fake()
        let first = try f.cancel("pay-2", key: nil, reason: "고객 요청")
        #expect(first.status == 200)
        let cancellation = try #require(first.json?["cancellation"] as? [String: Any])
        #expect(cancellation["status"] as? String == "SUCCEEDED")
        #expect(cancellation["reason"] as? String == "고객 요청")
        let payment = try f.send("GET", "/payments/pay-2")
        #expect(payment.json?["status"] as? String == "CANCELLED")
        #expect((payment.json?["cancellations"] as? [Any])?.count == 1)

        let second = try f.cancel("pay-2", key: nil)
        #expect(second.status == 409 && Self.type(second) == "PAYMENT_ALREADY_CANCELLED")
        #expect(f.fake.executions == 3)
        #expect(f.fake.arrivals(method: "POST", path: "/payments/pay-2/cancel") == 2)
    }

    @Test func unknownPaymentsAndBadBodiesGetV2Errors() throws {
        let f = try Fake()
        let missing = try f.send("GET", "/payments/missing-1")
        #expect(missing.status == 404 && Self.type(missing) == "PAYMENT_NOT_FOUND")
        let noReason = try f.send("POST", "/payments/pay-3/cancel", body: #"{"amount":100}"#)
        #expect(noReason.status == 400 && Self.type(noReason) == "INVALID_REQUEST")
        let decoded = try f.send("GET", "/payments/pay%2F4")
        #expect(decoded.json?["id"] as? String == "pay/4")
        let nowhere = try f.send("GET", "/nowhere")
        #expect(nowhere.status == 404 && Self.type(nowhere) == "NOT_FOUND")
    }

    // MARK: - Idempotency-Key

    @Test func aRepeatedKeyGetsTheFirstAnswerWithoutRunningAgain() throws {
        let f = try Fake()
        let first = try f.cancel("pay-5", key: Self.key)
        let second = try f.cancel("pay-5", key: "\"\(Self.key)\"")  // the RFC 8941 spelling is the same key
        #expect(first.status == 200 && second.status == 200)
        #expect(first.body == second.body)
        #expect(f.fake.executions(key: Self.key) == 1)
        #expect(f.fake.arrivals(key: Self.key) == 2)
        #expect(f.fake.replays == 1)
        // Run again, it would have been refused: the payment is cancelled.
        let fresh = try f.cancel("pay-5", key: "another-key-0000000000")
        #expect(fresh.status == 409 && Self.type(fresh) == "PAYMENT_ALREADY_CANCELLED")
    }

    @Test func aRepeatWhileTheFirstRunsGets409AndTheFirstAnswerAfterwards() throws {
        let f = try Fake()
        let slow = try HTTPTestClient(port: f.port)
        try slow.send(f.request("POST", "/payments/pay-6/cancel", body: #"{"reason":"r"}"#,
                                headers: [("Idempotency-Key", Self.key), ("X-Fake-Fault", "delay=1500")]))
        f.waitForArrivals(key: Self.key, count: 1)
        let concurrent = try f.cancel("pay-6", key: Self.key, reason: "r")
        #expect(concurrent.status == 409)
        #expect(Self.type(concurrent) == "IDEMPOTENCY_OUTSTANDING_REQUEST")
        let first = try slow.read()
        #expect(first.status == 200)
        let later = try f.cancel("pay-6", key: Self.key, reason: "r")
        #expect(later.status == 200 && later.body == first.body)
        #expect(f.fake.executions(key: Self.key) == 1)
        #expect(f.fake.outstandingConflicts == 1)
    }

    @Test func aKeyReusedForAnotherRequestIsRefused() throws {
        let f = try Fake()
        #expect(try f.cancel("pay-7", key: Self.key, reason: "one").status == 200)
        let otherBody = try f.cancel("pay-7", key: Self.key, reason: "two")
        #expect(otherBody.status == 422 && Self.type(otherBody) == "INVALID_REQUEST")
        let otherTarget = try f.cancel("pay-8", key: Self.key, reason: "one")
        #expect(otherTarget.status == 422)
        #expect(f.fake.executions(key: Self.key) == 1)
        #expect(f.fake.keyMismatches == 2)
    }

    @Test func malformedKeysAreRefusedAndReadsIgnoreKeys() throws {
        let f = try Fake()
        for bad in ["short-key", String(repeating: "k", count: 257), "has space in the key 0000", "\"unterminated-key-0000", "key.with.dots.000000"] {
            let answer = try f.cancel("pay-9", key: bad)
            #expect(answer.status == 400 && Self.type(answer) == "INVALID_REQUEST", "\(bad)")
        }
        let two = try f.send("POST", "/payments/pay-9/cancel", body: #"{"reason":"r"}"#,
                             headers: [("Idempotency-Key", Self.key), ("Idempotency-Key", Self.key)])
        #expect(two.status == 400)
        #expect(try f.cancel("pay-9", key: String(repeating: "k", count: 256)).status == 200)
        #expect(try f.send("GET", "/payments/pay-9", headers: [("Idempotency-Key", "short")]).status == 200)
        #expect(try f.send("GET", "/payments/pay-9", headers: [("Idempotency-Key", Self.key)]).status == 200)
        #expect(f.fake.replays == 0)
    }

    // MARK: - Faults

    @Test func dropRunsTheRequestThenClosesWithoutAnAnswer() throws {
        let f = try Fake()
        #expect(throws: HTTPTestClient.Failure.self) { try f.cancel("pay-10", key: Self.key, fault: "drop") }
        // It ran: the single safe re-send with the same key gets its answer.
        let resend = try f.cancel("pay-10", key: Self.key)
        #expect(resend.status == 200 && resend.json?["cancellation"] != nil)
        #expect(f.fake.executions(key: Self.key) == 1)
        #expect(try f.send("GET", "/payments/pay-10").json?["status"] as? String == "CANCELLED")
        // `drop` drops every time, replays included.
        #expect(throws: HTTPTestClient.Failure.self) { try f.cancel("pay-10", key: Self.key, fault: "drop") }
    }

    @Test func dropFirstDropsOnlyTheFirstRequestOfAKey() throws {
        let f = try Fake()
        #expect(throws: HTTPTestClient.Failure.self) { try f.cancel("pay-11", key: Self.key, fault: "drop-first") }
        let resend = try f.cancel("pay-11", key: Self.key, fault: "drop-first")
        #expect(resend.status == 200)
        #expect(f.fake.executions(key: Self.key) == 1)
        #expect(f.fake.arrivals(key: Self.key) == 2)
    }

    @Test func theV1FaultsWorkOnV2() throws {
        let f = try Fake()
        let status = try f.send("GET", "/payments/pay-12", headers: [("X-Fake-Fault", "status=500")])
        #expect(status.status == 500 && Self.type(status) != nil)
        let forbidden = try f.send("GET", "/payments/pay-12", headers: [("X-Fake-Fault", "status=403")])
        #expect(forbidden.status == 403 && Self.type(forbidden) == "FORBIDDEN")
        let unauthorized = try f.send("GET", "/payments/pay-12", headers: [("X-Fake-Fault", "unauthorized")])
        #expect(unauthorized.status == 401 && Self.type(unauthorized) == "UNAUTHORIZED")
        #expect(throws: HTTPTestClient.Failure.self) {
            try f.send("GET", "/payments/pay-12", headers: [("X-Fake-Fault", "reset")])
        }
        #expect(throws: HTTPTestClient.Failure.self) {
            try f.send("GET", "/payments/pay-12", headers: [("X-Fake-Fault", "garbage")])
        }
        let big = try f.send("GET", "/payments/pay-12", headers: [("X-Fake-Fault", "big=70000")])
        #expect(big.body == FakeIamport.bigBody(70000))
        let hung = try HTTPTestClient(port: f.port, timeout: 0.3)
        try hung.send(f.request("GET", "/payments/pay-12", headers: [("X-Fake-Fault", "hang")]))
        let timedOut = #expect(throws: HTTPTestClient.Failure.self) { try hung.read() }
        #expect(timedOut.map { if case .timeout = $0 { true } else { false } } == true)
        // A status fault's answer becomes its key's answer.
        let failed = try f.cancel("pay-12", key: Self.key, fault: "status=502")
        #expect(failed.status == 502 && Self.type(failed) == "PG_PROVIDER")
        #expect(try f.cancel("pay-12", key: Self.key).body == failed.body)
        #expect(f.fake.executions(key: Self.key) == 0)
    }

    @Test func controlEndpointsReportCounters() throws {
        let f = try Fake()
        _ = try f.cancel("pay-13", key: Self.key)
        _ = try f.cancel("pay-13", key: Self.key)
        let stats = try f.send("POST", "/_fake/stats", auth: nil)
        #expect(stats.json?["executions"] as? Int == 1)
        #expect(stats.json?["replays"] as? Int == 1)
        #expect((stats.json?["arrivals_by_key"] as? [String: Int])?[Self.key] == 2)
        #expect((stats.json?["arrivals_by_request"] as? [String: Int])?["POST /payments/pay-13/cancel"] == 2)
        let requests = try f.send("POST", "/_fake/requests", auth: nil)
        let seen = try #require(requests.json?["requests"] as? [[String: Any]])
        #expect(seen.count == 2)
        #expect(seen.first?["idempotency_key"] as? [String] == [Self.key])
    }
}
