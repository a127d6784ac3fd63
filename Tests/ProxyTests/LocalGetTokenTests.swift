import Foundation

@testable import Proxy
import TestSupport
import Testing

@Suite(.serialized) struct LocalGetTokenTests {
    @Test func answeredLocallyWithAPlaceholderAndNeverForwarded() throws {
        let h = try Harness()
        defer { h.stop() }
        let calls = h.fake.getTokenCalls
        let answer = try h.post("/users/getToken", json: #"{"imp_key":"app-key","imp_secret":"app-secret-xyz"}"#)
        #expect(answer.status == 200)
        let json = try #require(answer.json)
        #expect(json["code"] as? Int == 0)
        let response = try #require(json["response"] as? [String: Any])
        #expect(response["access_token"] as? String == LocalAnswers.placeholderToken)
        let now = try #require(response["now"] as? Int)
        #expect(response["expired_at"] as? Int == now + 1800)
        #expect(abs(now - Int(Date().timeIntervalSince1970)) < 5)
        #expect(h.fake.getTokenCalls == calls)
        #expect(!h.logs.capturedText.contains("app-secret-xyz"))
        // Whatever token the SDK then sends is replaced.
        let later = try h.get("/echo/p", headers: ["Authorization": LocalAnswers.placeholderToken])
        #expect(Harness.echoed(later)?.headers.values("Authorization") == ["Bearer \(try #require(h.fake.currentToken))"])
        // Form-encoded bodies work too.
        let form = try h.raw("POST /users/getToken HTTP/1.1\r\nHost: a\r\nContent-Type: application/x-www-form-urlencoded\r\nContent-Length: 29\r\n\r\nimp_key=k&imp_secret=whatever")
        #expect(form.status == 200)
    }

    @Test func withAClientTokenOnlyItsHolderGetsIt() throws {
        let token = "client-token-3f9e2a"
        let h = try Harness(clientToken: token)
        defer { h.stop() }
        let ok = try h.post("/users/getToken", json: #"{"imp_key":"app","imp_secret":"\#(token)"}"#)
        #expect(ok.status == 200)
        #expect((ok.json?["response"] as? [String: Any])?["access_token"] as? String == token)
        let form = try h.raw("POST /users/getToken HTTP/1.1\r\nHost: a\r\nContent-Length: \(27 + token.utf8.count)\r\n\r\nimp_key=app&imp_secret=\(token)&x=1")
        #expect(form.status == 200)
        for bad in [#"{"imp_key":"app","imp_secret":"wrong"}"#, #"{"imp_key":"app"}"#, "not json"] {
            let refused = try h.post("/users/getToken", json: bad)
            #expect(refused.status == 401)
            #expect(refused.header("X-Iamport-Proxy-Error") == "client_unauthorized")
            #expect(refused.json?["code"] as? Int == -1)
        }
        // Every proxied call needs it; local endpoints do not.
        #expect(try h.get("/payments/imp_1").status == 401)
        #expect(try h.get("/payments/imp_1", headers: ["Authorization": "Bearer \(token)"]).status == 200)
        #expect(try h.get("/payments/imp_1", headers: ["Authorization": token]).status == 200)
        #expect(try h.get("/payments/imp_1", headers: ["X-ImpTokenHeader": token]).status == 200)
        #expect(try h.get("/payments/imp_1", headers: ["Authorization": "Bearer \(token)x"]).status == 401)
        #expect(try h.get("/_proxy/healthz").status == 200)
        #expect(try h.get("/_proxy/readyz").status == 200)
        #expect(!h.logs.capturedText.contains(token))
        // The client token is never forwarded.
        let echoed = try h.get("/echo/x", headers: ["X-ImpTokenHeader": token])
        #expect(Harness.echoed(echoed)?.headers.contains { $0.1.contains(token) } == false)
    }

    @Test func refusedCallsNeverReachTheUpstream() throws {
        let h = try Harness(allow: ["GET /payments/*"])
        defer { h.stop() }
        #expect(try h.get("/payments/imp_1").status == 200)
        let calls = h.fake.apiCalls
        let refused = try h.post("/payments/cancel", json: #"{"imp_uid":"imp_1"}"#)
        #expect(refused.status == 403)
        #expect(refused.header("X-Iamport-Proxy-Error") == "forbidden")
        #expect(try h.get("/payments/imp_1/balance").status == 403)
        #expect(try h.get("/payments/..%2Fcancel").status == 400)
        #expect(h.fake.apiCalls == calls)
    }
}
