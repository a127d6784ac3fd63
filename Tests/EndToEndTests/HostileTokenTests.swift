import FakeIamport
import Foundation
import TestSupport
import Testing

/// The real binary against getToken answers that once crashed it or could
/// have become a header.
@Suite(.serialized) struct HostileTokenTests {
    /// Waits for readiness to answer 503 with a reason other than the first fetch.
    private func notReadyReason(_ h: BinaryHarness) throws -> HTTPTestClient.Answer {
        let deadline = Date().addingTimeInterval(10)
        var ready = try HTTPTestClient.get(port: h.port, "/_proxy/readyz")
        while ready.text.contains("fetching the first token") && Date() < deadline {
            usleep(50_000)
            ready = try HTTPTestClient.get(port: h.port, "/_proxy/readyz")
        }
        return ready
    }

    @Test func anOverflowingExpiryLeavesTheBinaryUpAndNotReady() throws {
        let h = try BinaryHarness(fake: .init(
            apiKey: BinaryHarness.apiKey, apiSecret: BinaryHarness.apiSecret,
            tokenAnswer: #"{"access_token":"e2e-overflow","now":-1,"expired_at":9223372036854775807}"#))
        let ready = try notReadyReason(h)
        #expect(ready.status == 503)
        #expect(ready.text.contains("malformed getToken answer"), "\(ready.text)")
        let answer = try HTTPTestClient.get(port: h.port, "/payments/imp_1")
        #expect(answer.status == 502)
        #expect(answer.header("X-Iamport-Proxy-Error") == "token_unavailable")
        let message = answer.json?["message"] as? String ?? ""
        #expect(message.contains("malformed getToken answer"), "\(answer)")
        #expect(try HTTPTestClient.get(port: h.port, "/_proxy/healthz").status == 200)
        #expect(h.fake.getTokenCalls >= 1)
        #expect(h.stop() == 0, "still running, and stops cleanly: \(h.proxy.text.suffix(2000))")
        #expect(!h.proxy.text.contains("e2e-overflow"))
    }

    @Test func aTokenWithCRLFNeverBecomesAHeader() throws {
        let h = try BinaryHarness(fake: .init(
            apiKey: BinaryHarness.apiKey, apiSecret: BinaryHarness.apiSecret,
            tokenAnswer: #"{"access_token":"e2e-crlf\r\nX-Evil: injected","now":1700000000,"expired_at":1700001800}"#))
        let ready = try notReadyReason(h)
        #expect(ready.status == 503)
        #expect(ready.text.contains("malformed getToken answer"), "\(ready.text)")
        let answer = try HTTPTestClient.get(port: h.port, "/payments/imp_1")
        #expect(answer.status == 502)
        #expect(answer.header("X-Iamport-Proxy-Error") == "token_unavailable")
        // The fake saw getToken and nothing else: no request carried the token.
        #expect(h.fake.recorded.allSatisfy { $0.target == "/users/getToken" }, "\(h.fake.recorded.map(\.target))")
        #expect(!h.fake.recorded.contains { $0.header("X-Evil") != nil })
        #expect(h.stop() == 0)
        #expect(!h.proxy.text.contains("e2e-crlf"))
    }
}
