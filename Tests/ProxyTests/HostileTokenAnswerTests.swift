import FakeIamport
import Foundation
import TestSupport
import Testing

/// getToken answers that must never crash the proxy nor become a header.
@Suite(.serialized) struct HostileTokenAnswerTests {
    static let hostileAnswers = [
        #"{"access_token":"hostile-overflow","now":-1,"expired_at":9223372036854775807}"#,
        #"{"access_token":"hostile-far-future","now":0,"expired_at":9223372036854775807}"#,
        #"{"access_token":"hostile-crlf\r\nX-Evil: injected","now":1700000000,"expired_at":1700001800}"#,
        #"{"access_token":"hostile-expired","now":1700000000,"expired_at":1699990000}"#,
        #"{"access_token":"hostile-float","now":1.5e300,"expired_at":1700001800}"#,
    ]

    @Test(arguments: hostileAnswers)
    func aMalformedAnswerIsTokenUnavailableAndNothingIsForwarded(hostile: String) throws {
        let h = try Harness(
            fake: .init(apiKey: Harness.apiKey, apiSecret: Harness.apiSecret, tokenAnswer: hostile), waitForToken: false)
        defer { h.stop() }
        let deadline = Date().addingTimeInterval(5)
        while h.proxy.tokens.status().lastError == nil && Date() < deadline { usleep(5_000) }

        let ready = try h.get("/_proxy/readyz")
        #expect(ready.status == 503)
        #expect(ready.text.contains("malformed getToken answer"), "\(ready.text)")
        let answer = try h.get("/payments/imp_1")
        #expect(answer.status == 502)
        #expect(answer.header("X-Iamport-Proxy-Error") == "token_unavailable")
        let message = answer.json?["message"] as? String ?? ""
        #expect(message.contains("malformed getToken answer"), "\(message)")
        #expect(try h.get("/_proxy/healthz").status == 200, "still serving")

        // Nothing but getToken reached the fake: no header was built from the answer.
        let forwarded = h.fake.recorded.filter { $0.target != "/users/getToken" }
        #expect(forwarded.isEmpty, "\(forwarded.map(\.target))")
        #expect(!h.fake.recorded.contains { $0.header("X-Evil") != nil })
        #expect(!h.logs.capturedText.contains("hostile-"), "the token value is never logged")
        #expect(!message.contains("hostile-") && !ready.text.contains("hostile-"))
        let metrics = try h.get("/_proxy/metrics").text
        #expect(metrics.contains("iamport_proxy_token_valid 0"), "\(metrics)")
    }

    @Test func theProxyRecoversWhenTheAnswersAreSaneAgain() throws {
        let h = try Harness(
            fake: .init(apiKey: Harness.apiKey, apiSecret: Harness.apiSecret, tokenAnswer: Self.hostileAnswers[0]),
            waitForToken: false)
        defer { h.stop() }
        let deadline = Date().addingTimeInterval(5)
        while h.proxy.tokens.status().lastError == nil && Date() < deadline { usleep(5_000) }
        #expect(try h.get("/payments/imp_1").status == 502)
        h.fake.overrideTokenAnswer(nil)
        h.waitForToken(seconds: 5)  // the retry after the first backoff (1 s)
        let answer = try h.get("/payments/imp_1")
        #expect(answer.status == 200)
        #expect(answer.header("X-Iamport-Proxy-Replayed") == nil)
        #expect(try h.get("/_proxy/readyz").status == 200)
    }

    @Test func theControlEndpointSetsAndClearsTheHostileAnswer() throws {
        let h = try Harness()
        defer { h.stop() }
        let set = try HTTPTestClient.post(port: h.fakePort, "/_fake/token-answer", json: Self.hostileAnswers[0])
        #expect(set.status == 200)
        let hostile = try HTTPTestClient.post(
            port: h.fakePort, "/users/getToken",
            json: #"{"imp_key":"\#(Harness.apiKey)","imp_secret":"\#(Harness.apiSecret)"}"#)
        #expect(hostile.text == #"{"code":0,"message":null,"response":\#(Self.hostileAnswers[0])}"#)
        let clear = try HTTPTestClient.request(
            port: h.fakePort, "POST /_fake/token-answer HTTP/1.1\r\nHost: a\r\nContent-Length: 0\r\n\r\n")
        #expect(clear.status == 200)
        let sane = try HTTPTestClient.post(
            port: h.fakePort, "/users/getToken",
            json: #"{"imp_key":"\#(Harness.apiKey)","imp_secret":"\#(Harness.apiSecret)"}"#)
        let token = (sane.json?["response"] as? [String: Any])?["access_token"] as? String
        #expect(token?.hasPrefix("fake_") == true, "\(sane.text)")
    }
}
