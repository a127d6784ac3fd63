import Dispatch
import FakeIamport
import Foundation
import Synchronization
import TestSupport
import Testing

@Suite(.serialized) struct TokenLifecycleTests {
    @Test func revokedTokenMeansOneRenewalAndAReplayedPostWithTheSameBody() throws {
        let h = try Harness()
        defer { h.stop() }
        let oldToken = try #require(h.fake.currentToken)
        let callsBefore = h.fake.getTokenCalls
        h.fake.revokeTokens()
        h.fake.clearRecorded()
        let body = #"{"imp_uid":"imp_77","merchant_uid":"order_77","amount":1004,"reason":"test"}"#
        let answer = try h.post("/payments/cancel", json: body)
        #expect(answer.status == 200)
        #expect(answer.header("X-Iamport-Proxy-Replayed") == "1")
        #expect((answer.json?["response"] as? [String: Any])?["status"] as? String == "cancelled")
        #expect(h.fake.getTokenCalls == callsBefore + 1)
        let attempts = h.fake.recorded.filter { $0.target == "/payments/cancel" }
        #expect(attempts.count == 2)
        #expect(attempts.allSatisfy { String(decoding: $0.body, as: UTF8.self) == body })
        #expect(attempts[0].header("Authorization") == "Bearer \(oldToken)")
        #expect(attempts[1].header("Authorization") == "Bearer \(try #require(h.fake.currentToken))")
        #expect(attempts[0].header("X-Request-Id") == attempts[1].header("X-Request-Id"))
        let log = h.logs.capturedText
        #expect(log.contains("renewed=true"))
        #expect(log.contains("replayed=true"))
    }

    @Test func manyRefusalsAtOnceCauseOneRenewal() throws {
        let h = try Harness()
        defer { h.stop() }
        let callsBefore = h.fake.getTokenCalls
        h.fake.revokeTokens()
        let statuses = Mutex<[Int]>([])
        DispatchQueue.concurrentPerform(iterations: 40) { n in
            let status = (try? h.get("/payments/imp_\(n)").status) ?? -1
            statuses.withLock { $0.append(status) }
        }
        #expect(statuses.withLock { $0 }.allSatisfy { $0 == 200 })
        #expect(h.fake.getTokenCalls == callsBefore + 1)
        let metrics = try h.get("/_proxy/metrics").text
        #expect(metrics.contains("iamport_proxy_token_renewals_after_401_total 1"))
    }

    @Test func aSecondUnauthorizedGoesBackToTheClientAsItIs() throws {
        let h = try Harness()
        defer { h.stop() }
        // Revoked: the renewal brings a new token, and the replay is refused too.
        h.fake.revokeTokens()
        let callsBefore = h.fake.apiCalls
        let answer = try h.get("/payments/imp_1", headers: ["X-Fake-Fault": "unauthorized"])
        #expect(answer.status == 401)
        #expect(answer.json?["message"] as? String == "Unauthorized")
        #expect(answer.header("X-Iamport-Proxy-Error") == nil)
        #expect(answer.header("X-Iamport-Proxy-Replayed") == "1")
        #expect(h.fake.apiCalls == callsBefore + 2, "one replay, not more")
    }

    @Test func deliberateUnauthorizedAnswersCannotDriveGetTokenTraffic() throws {
        let h = try Harness()
        defer { h.stop() }
        // A token the API revoked still gets its renewal and replay at once.
        h.fake.revokeTokens()
        let calls = h.fake.getTokenCalls
        let revoked = try h.get("/payments/imp_revoked")
        #expect(revoked.status == 200)
        #expect(revoked.header("X-Iamport-Proxy-Replayed") == "1")
        #expect(h.fake.getTokenCalls == calls + 1)

        // A client that makes the API answer 401 on purpose, in a loop: the
        // first 401 renews, gets the same token back, and passes through; the
        // rest pass through within the 10 s window without a fetch.
        let before = (getToken: h.fake.getTokenCalls, api: h.fake.apiCalls)
        for n in 0..<50 {
            let answer = try h.get("/payments/imp_\(n)", headers: ["X-Fake-Fault": "unauthorized"])
            #expect(answer.status == 401)
            #expect(answer.json?["message"] as? String == "Unauthorized")
            #expect(answer.header("X-Iamport-Proxy-Error") == nil)
            #expect(answer.header("X-Iamport-Proxy-Replayed") == nil, "same token: no replay")
        }
        #expect(h.fake.getTokenCalls - before.getToken <= 2, "getToken calls: \(h.fake.getTokenCalls - before.getToken)")
        #expect(h.fake.apiCalls - before.api == 50, "no replays")
        // Everyone else is still served with the same token.
        #expect(try h.get("/payments/imp_ok").status == 200)
        #expect(h.fake.issuedTokens.count == 2)
    }

    @Test func failingTokenEndpointGivesTokenUnavailableWithTheAPIsMessageAndNotReady() throws {
        let h = try Harness(
            fake: .init(apiKey: Harness.apiKey, apiSecret: "a-different-secret"), waitForToken: false)
        defer { h.stop() }
        Thread.sleep(forTimeInterval: 0.3)
        let answer = try h.get("/payments/imp_1")
        #expect(answer.status == 502)
        #expect(answer.header("X-Iamport-Proxy-Error") == "token_unavailable")
        let message = answer.json?["message"] as? String ?? ""
        #expect(message.contains("invalid imp_key or imp_secret"), "\(message)")
        #expect(answer.json?["code"] as? Int == -1)
        #expect(!message.contains(Harness.apiSecret))
        // Fail fast: requests during the backoff do not each call getToken.
        let calls = h.fake.getTokenCalls
        for _ in 0..<20 { _ = try h.get("/payments/imp_1") }
        #expect(h.fake.getTokenCalls <= calls + 1)
        let ready = try h.get("/_proxy/readyz")
        #expect(ready.status == 503)
        #expect(ready.text.contains("invalid imp_key or imp_secret"))
        #expect(try h.get("/_proxy/healthz").status == 200)
    }

    @Test func serverClockSkewChangesNothing() throws {
        for offset in [-3600, 3600] {
            let h = try Harness(fake: .init(apiKey: Harness.apiKey, apiSecret: Harness.apiSecret, clockOffset: offset))
            defer { h.stop() }
            #expect(h.proxy.tokens.status().valid)
            let expiresIn = h.proxy.tokens.status().expiresIn ?? 0
            #expect(expiresIn > .seconds(1790) && expiresIn <= .seconds(1800), "offset \(offset): \(expiresIn.inSeconds) s")
            #expect(try h.get("/payments/imp_1").status == 200)
            #expect(h.fake.getTokenCalls == 1)
        }
    }
}
