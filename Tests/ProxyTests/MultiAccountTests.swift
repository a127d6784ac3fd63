import FakeIamport
import Foundation
import HTTP1
import Iamport
import Proxy
import TestSupport
import Testing

/// Several accounts, V1 and V2, in one proxy (SPEC.md, "Several accounts,
/// PortOne V1 and V2, in one proxy"): which account serves a request, what
/// each API's upstream receives, the proxy's errors in each API's shape.
@Suite(.serialized) final class MultiAccountTests {
    let h: MultiAccountHarness

    init() throws { h = try MultiAccountHarness(allowA: ["GET /payments/*", "POST /payments/cancel", "POST /echo"]) }
    deinit { h.stop() }

    // MARK: - Which account serves

    @Test func theClientTokenSelectsTheAccountOnTheSharedListener() throws {
        let a = try HTTPTestClient.post(
            port: h.sharedPort, "/echo", json: "{}", headers: ["Authorization": "Bearer \(MultiAccountHarness.tokenA)"])
        #expect(a.status == 200, "\(a)")
        let seenA = try #require(Harness.echoed(a))
        let token = try #require(h.v1.currentToken)
        #expect(seenA.headers.values("Authorization") == ["Bearer \(token)"])

        let b = try HTTPTestClient.post(
            port: h.sharedPort, "/echo", json: "{}", headers: ["Authorization": "PortOne \(MultiAccountHarness.tokenB)"])
        #expect(b.status == 200, "\(b)")
        let seenB = try #require(MultiAccountHarness.v2Echoed(b))
        // The client token is swapped for the account's API secret.
        #expect(seenB.headers.values("Authorization") == ["PortOne \(MultiAccountHarness.v2Secret)"])
        #expect(h.v1.recorded.allSatisfy { !$0.target.hasPrefix("/echo") || $0.header("Authorization") != "PortOne \(MultiAccountHarness.tokenB)" })
    }

    @Test(arguments: [
        [String: String](),
        ["Authorization": "Bearer not-a-client-token"],
        ["Authorization": "PortOne \(MultiAccountHarness.tokenA)"],  // V1's token in V2's form
        ["Authorization": "Bearer \(MultiAccountHarness.tokenB)"],  // V2's token in V1's form
        ["X-ImpTokenHeader": "client-token-shop-a-1"],
    ])
    func aRequestThatSelectsNoAccountIs401InTheV1Envelope(headers: [String: String]) throws {
        let before = h.v1.apiCalls + h.v2.arrivals
        let answer = try HTTPTestClient.get(port: h.sharedPort, "/payments/imp_1", headers: headers)
        #expect(answer.status == 401)
        #expect(answer.header("X-Iamport-Proxy-Error") == "client_unauthorized")
        #expect(answer.json?["code"] as? Int == -1, "\(answer)")
        #expect(h.v1.apiCalls + h.v2.arrivals == before)
    }

    @Test func anAccountWithItsOwnListenerIsServedOnlyThere() throws {
        // shop-c has no client token: on its listener anything goes, with its tier.
        let own = try HTTPTestClient.get(port: h.ownPort, "/echo")
        #expect(own.status == 200, "\(own)")
        let seen = try #require(Harness.echoed(own))
        #expect(seen.headers.values("Tier") == ["ABC"])
        // Its listener serves no other account, whatever the token.
        let other = try HTTPTestClient.get(
            port: h.ownPort, "/echo", headers: ["Authorization": "PortOne \(MultiAccountHarness.tokenB)"])
        #expect(other.status == 200)
        #expect(MultiAccountHarness.v2Echoed(other) == nil)
        #expect(Harness.echoed(other) != nil)
    }

    @Test func theTierIsAddedOnlyWhenTheClientSentNone() throws {
        let given = try HTTPTestClient.get(port: h.ownPort, "/echo", headers: ["tier": "XYZ"])
        let seen = try #require(Harness.echoed(given))
        #expect(seen.headers.values("Tier") == ["XYZ"])
    }

    @Test func localEndpointsAnswerOnEveryListenerWithoutAToken() throws {
        for port in [h.sharedPort, h.ownPort] {
            #expect(try HTTPTestClient.get(port: port, "/_proxy/healthz").status == 200)
            let ready = try HTTPTestClient.get(port: port, "/_proxy/readyz")
            #expect(ready.status == 200, "\(ready)")
            let accounts = try #require(ready.json?["accounts"] as? [String: Any])
            #expect(Set(accounts.keys) == ["shop-a", "shop-b", "shop-c"])
        }
        let one = try HTTPTestClient.get(port: h.sharedPort, "/_proxy/readyz?account=shop-b")
        let accounts = try #require(one.json?["accounts"] as? [String: Any])
        #expect(Set(accounts.keys) == ["shop-b"])
        #expect(try HTTPTestClient.get(port: h.sharedPort, "/_proxy/readyz?account=nobody").status == 404)
    }

    @Test func readinessNamesTheAccountThatIsNotReady() throws {
        h.v1.failTokens(status: 401, message: "invalid imp_key or imp_secret")
        h.v1.revokeTokens()
        // A 401 makes shop-a drop its token; its renewal fails.
        _ = try HTTPTestClient.get(
            port: h.sharedPort, "/payments/imp_1", headers: ["Authorization": MultiAccountHarness.tokenA])
        let ready = try HTTPTestClient.get(port: h.sharedPort, "/_proxy/readyz")
        #expect(ready.status == 503, "\(ready)")
        let reason = try #require(ready.json?["reason"] as? String)
        #expect(reason.hasPrefix("shop-a: "), "\(reason)")
        let accounts = try #require(ready.json?["accounts"] as? [String: [String: Any]])
        #expect(accounts["shop-b"]?["status"] as? String == "ready")
        #expect(accounts["shop-a"]?["status"] as? String == "not_ready")
    }

    // MARK: - V1 accounts

    @Test func theLocalGetTokenPicksTheV1AccountByItsSecret() throws {
        let good = try HTTPTestClient.post(
            port: h.sharedPort, "/users/getToken",
            json: #"{"imp_key":"any","imp_secret":"\#(MultiAccountHarness.tokenA)"}"#)
        #expect(good.status == 200, "\(good)")
        let response = try #require(good.json?["response"] as? [String: Any])
        #expect(response["access_token"] as? String == MultiAccountHarness.tokenA)
        // A V2 account's client token is no V1 account's.
        let v2 = try HTTPTestClient.post(
            port: h.sharedPort, "/users/getToken",
            json: #"{"imp_key":"any","imp_secret":"\#(MultiAccountHarness.tokenB)"}"#)
        #expect(v2.status == 401)
        #expect(v2.json?["code"] as? Int == -1)
        #expect(h.v1.recorded.allSatisfy { !$0.target.lowercased().contains("gettoken") || $0.body.isEmpty
            || !String(decoding: $0.body, as: UTF8.self).contains(MultiAccountHarness.tokenA) })
    }

    @Test func eachAccountHasItsOwnAllowList() throws {
        let refused = try HTTPTestClient.post(
            port: h.sharedPort, "/subscribe/payments/again", json: "{}",
            headers: ["Authorization": MultiAccountHarness.tokenA])
        #expect(refused.status == 403)
        #expect(refused.header("X-Iamport-Proxy-Error") == "forbidden")
        // shop-c has no allow list.
        let allowed = try HTTPTestClient.post(port: h.ownPort, "/echo/subscribe", json: "{}")
        #expect(allowed.status == 200)
    }

    // MARK: - V2 accounts

    @Test(arguments: [
        ("POST", "/login/api-secret"), ("POST", "/token/refresh"), ("GET", "/LOGIN/API-SECRET/"),
        ("POST", "/token/refresh;x=1"), ("POST", "//token//refresh"), ("POST", "/%74oken/refresh"),
    ])
    func v2CredentialEndpointsAreNeverForwarded(method: String, path: String) throws {
        let before = h.v2.arrivals
        let body = #"{"apiSecret":"\#(MultiAccountHarness.tokenB)"}"#
        let answer = try HTTPTestClient.request(port: h.sharedPort, """
            \(method) \(path) HTTP/1.1\r
            Host: 127.0.0.1\r
            Authorization: PortOne \(MultiAccountHarness.tokenB)\r
            Content-Type: application/json\r
            Content-Length: \(body.utf8.count)\r
            Connection: close\r
            \r
            \(body)
            """)
        #expect(answer.status == 403, "\(answer)")
        #expect(answer.header("X-Iamport-Proxy-Error") == "forbidden")
        #expect(answer.json?["type"] as? String == "FORBIDDEN", "\(answer)")
        #expect((answer.json?["message"] as? String)?.hasPrefix("iamport-proxy: ") == true)
        #expect(h.v2.arrivals == before)
    }

    @Test func theProxysErrorsOnAV2AccountHaveV2sShape() throws {
        // An unreachable V2 upstream: the error in V2's shape, upper snake case.
        let down = try MultiAccountDown()
        defer { down.stop() }
        let answer = try HTTPTestClient.get(
            port: down.proxy.address.port, "/payments/p1", headers: ["Authorization": "PortOne tok"])
        #expect(answer.status == 502, "\(answer)")
        #expect(answer.header("X-Iamport-Proxy-Error") == "upstream_unreachable")
        #expect(answer.json?["type"] as? String == "UPSTREAM_UNREACHABLE")
        #expect(answer.json?["code"] == nil)
        // A wrong client token on a V2-only listener: V2's UNAUTHORIZED.
        let wrong = try HTTPTestClient.get(
            port: down.proxy.address.port, "/payments/p1", headers: ["Authorization": "PortOne nope"])
        #expect(wrong.status == 401)
        #expect(wrong.json?["type"] as? String == "UNAUTHORIZED", "\(wrong)")
    }

    @Test func aV2PaymentCallWithoutAKeyGetsOne() throws {
        let answer = try HTTPTestClient.post(
            port: h.sharedPort, "/echo", json: #"{"reason":"x"}"#,
            headers: ["Authorization": "PortOne \(MultiAccountHarness.tokenB)"])
        let seen = try #require(MultiAccountHarness.v2Echoed(answer))
        let keys = seen.headers.values("Idempotency-Key")
        #expect(keys.count == 1)
        let key = try #require(keys.first)
        // An RFC 8941 string of 32 hex digits.
        #expect(key.count == 34 && key.hasPrefix("\"") && key.hasSuffix("\""), "\(key)")
        #expect(key.dropFirst().dropLast().allSatisfy { $0.isHexDigit && !$0.isUppercase }, "\(key)")
        // Another call, another key.
        let again = try HTTPTestClient.post(
            port: h.sharedPort, "/echo", json: #"{"reason":"x"}"#,
            headers: ["Authorization": "PortOne \(MultiAccountHarness.tokenB)"])
        #expect(MultiAccountHarness.v2Echoed(again)?.headers.values("Idempotency-Key") != keys)
        // A read gets none; a client's own key is kept as it is.
        let read = try HTTPTestClient.get(
            port: h.sharedPort, "/echo", headers: ["Authorization": "PortOne \(MultiAccountHarness.tokenB)"])
        #expect(MultiAccountHarness.v2Echoed(read)?.headers.values("Idempotency-Key") == [])
        let own = try HTTPTestClient.post(
            port: h.sharedPort, "/echo", json: "{}",
            headers: ["Authorization": "PortOne \(MultiAccountHarness.tokenB)", "Idempotency-Key": "\"client-key-0123456789\""])
        #expect(MultiAccountHarness.v2Echoed(own)?.headers.values("Idempotency-Key") == ["\"client-key-0123456789\""])
        // V1 payment calls get none.
        let v1 = try HTTPTestClient.post(
            port: h.sharedPort, "/echo", json: "{}", headers: ["Authorization": MultiAccountHarness.tokenA])
        #expect(Harness.echoed(v1)?.headers.values("Idempotency-Key") == [])
    }

    /// The one re-send SPEC allows a V2 payment call: its reused connection
    /// failed before any answer byte, and it carries a key, so the API
    /// answers the second arrival with the first one's answer.
    @Test func aV2PaymentCallOnAFailedReusedConnectionIsResentOnceWithItsKey() throws {
        let auth = ["Authorization": "PortOne \(MultiAccountHarness.tokenB)"]
        // A pooled connection to the V2 upstream on each loop.
        for _ in 0..<4 { #expect(try HTTPTestClient.get(port: h.sharedPort, "/payments/warm", headers: auth).status == 200) }
        let key = "\"resend-key-\(UUID().uuidString.prefix(8))\""
        var headers = auth
        headers["Idempotency-Key"] = key
        headers["X-Fake-Fault"] = "drop-first"
        let answer = try HTTPTestClient.post(port: h.sharedPort, "/payments/p-77/cancel", json: #"{"reason":"test"}"#, headers: headers)
        #expect(answer.status == 200, "\(answer)")
        let unquoted = String(key.dropFirst().dropLast())
        #expect(h.v2.arrivals(key: unquoted) == 2)
        #expect(h.v2.executions(key: unquoted) == 1)

        // The same without a key from the client: the proxy's key makes it safe too.
        for _ in 0..<4 { #expect(try HTTPTestClient.get(port: h.sharedPort, "/payments/warm", headers: auth).status == 200) }
        var noKey = auth
        noKey["X-Fake-Fault"] = "drop-first"
        let before = h.v2.executions
        let second = try HTTPTestClient.post(port: h.sharedPort, "/payments/p-78/cancel", json: #"{"reason":"test"}"#, headers: noKey)
        #expect(second.status == 200, "\(second)")
        #expect(h.v2.executions == before + 1)
    }

    // MARK: - Observability

    @Test func logsAndMetricsCarryTheAccount() throws {
        _ = try HTTPTestClient.get(port: h.sharedPort, "/payments/imp_1", headers: ["Authorization": MultiAccountHarness.tokenA])
        _ = try HTTPTestClient.get(port: h.sharedPort, "/payments/p1", headers: ["Authorization": "PortOne \(MultiAccountHarness.tokenB)"])
        let metrics = try HTTPTestClient.get(port: h.sharedPort, "/_proxy/metrics").text
        #expect(metrics.contains(#"account="shop-a""#), "\(metrics)")
        #expect(metrics.contains(#"account="shop-b""#))
        #expect(metrics.contains("iamport_proxy_token_valid{account=\"shop-a\"} 1"), "\(metrics)")
        let lines = h.logs.capturedText.split(separator: "\n").map(String.init)
        #expect(lines.contains { $0.contains("account=shop-a") && $0.contains("path=/payments/imp_1") }, "\(lines)")
        #expect(lines.contains { $0.contains("account=shop-b") && $0.contains("path=/payments/p1") })
        #expect(lines.contains { $0.contains("token obtained") && $0.contains("account=shop-c") })
        for line in lines + [metrics] {
            #expect(!line.contains(MultiAccountHarness.v2Secret) && !line.contains(MultiAccountHarness.v1Secret)
                    && !line.contains(MultiAccountHarness.tokenA) && !line.contains(MultiAccountHarness.tokenB))
        }
    }

    // MARK: - Reload

    @Test func aReloadAppliesToTheRequestsAfterIt() throws {
        let newSecret = "multi-v2-secret-rotated-55"
        let newToken = "client-token-shop-b-rotated"
        h.v2.acceptSecrets([MultiAccountHarness.v2Secret, newSecret])
        let accounts = MultiAccountHarness.accounts(
            v1Port: h.v1Port, v2Port: h.v2Port, allowA: ["GET /payments/*"], v2Secret: newSecret, tokenB: newToken)
        let summary = try h.proxy.reload(accounts).get()
        #expect(summary.newCredentials == ["shop-b"])
        #expect(summary.changed == ["shop-a"])
        h.v2.acceptSecrets([newSecret])
        let old = try HTTPTestClient.get(port: h.sharedPort, "/echo", headers: ["Authorization": "PortOne \(MultiAccountHarness.tokenB)"])
        #expect(old.status == 401)
        let answer = try HTTPTestClient.get(port: h.sharedPort, "/echo", headers: ["Authorization": "PortOne \(newToken)"])
        #expect(answer.status == 200, "\(answer)")
        #expect(MultiAccountHarness.v2Echoed(answer)?.headers.values("Authorization") == ["PortOne \(newSecret)"])
        // shop-a's new allow list is in force.
        let refused = try HTTPTestClient.post(
            port: h.sharedPort, "/payments/cancel", json: "{}", headers: ["Authorization": MultiAccountHarness.tokenA])
        #expect(refused.status == 403)
    }

    @Test func aV1AccountWhoseCredentialsChangedFetchesANewToken() throws {
        let rotated = "multi-v1-secret-rotated-99"
        h.v1.acceptSecrets([MultiAccountHarness.v1Secret, rotated])
        let calls = h.v1.getTokenCalls
        var accounts = MultiAccountHarness.accounts(v1Port: h.v1Port, v2Port: h.v2Port)
        accounts[0].apiSecret = Secret(rotated)
        let summary = try h.proxy.reload(accounts).get()
        #expect(summary.newCredentials == ["shop-a"])
        h.v1.acceptSecrets([rotated])
        let answer = try HTTPTestClient.get(port: h.sharedPort, "/payments/imp_1", headers: ["Authorization": MultiAccountHarness.tokenA])
        #expect(answer.status == 200, "\(answer)")
        #expect(h.v1.getTokenCalls == calls + 1)
        let fetch = try #require(h.v1.recorded.last { $0.target.lowercased().hasPrefix("/users/gettoken") })
        #expect(String(decoding: fetch.body, as: UTF8.self).contains(rotated))
    }

    @Test func aReloadThatChangesTheListenersIsRefused() throws {
        var accounts = MultiAccountHarness.accounts(v1Port: h.v1Port, v2Port: h.v2Port)
        accounts[2].listen = nil
        accounts[2].clientToken = Secret("c-token")
        guard case .failure(let refusal) = h.proxy.reload(accounts) else {
            Issue.record("a reload that moves an account off its own listener was applied")
            return
        }
        #expect(refusal.description.contains("listeners change only with a restart"), "\(refusal)")
        // The old configuration still serves.
        #expect(try HTTPTestClient.get(port: h.ownPort, "/echo").status == 200)
    }
}

/// One V2 account alone, on the shared listener, with an upstream that
/// refuses connections.
final class MultiAccountDown {
    let proxy: ProxyService

    init() throws {
        proxy = try ProxyService(
            configuration: ProxyConfiguration(
                server: .init(listen: "127.0.0.1:0"),
                upstream: .init(baseURL: "http://127.0.0.1:9", timeout: .milliseconds(2000)),
                accounts: [AccountConfiguration(
                    name: "only-v2", api: .v2, upstream: "http://127.0.0.1:9", apiSecret: Secret("s"),
                    clientToken: Secret("tok"))],
                loopCount: 1),
            logger: .init(label: "test"))
    }

    func stop() { proxy.shutdown(grace: .seconds(1)) }
}
