import Dispatch
import FakeIamport
import Foundation
import Synchronization
import TestSupport
import Testing

@Suite(.serialized) struct UpstreamFaultTests {
    @Test func resetMidAnswerIs502AndNeverReplayed() throws {
        let h = try Harness()
        defer { h.stop() }
        let before = h.fake.apiCalls + h.fake.recorded.count
        let answer = try h.post("/payments/cancel", json: "{}", headers: ["X-Fake-Fault": "reset"])
        #expect(answer.status == 502)
        #expect(answer.header("X-Iamport-Proxy-Error") == "upstream_failed")
        #expect(answer.json?["code"] as? Int == -1)
        #expect((answer.json?["message"] as? String)?.hasPrefix("iamport-proxy: ") == true)
        #expect(h.fake.apiCalls + h.fake.recorded.count == before + 1, "the POST may have been processed: no replay")
    }

    @Test func garbageStatusLineIs502() throws {
        let h = try Harness()
        defer { h.stop() }
        let answer = try h.get("/payments/imp_1", headers: ["X-Fake-Fault": "garbage"])
        #expect(answer.status == 502)
        #expect(answer.header("X-Iamport-Proxy-Error") == "upstream_failed")
        #expect(h.logs.capturedText.contains("error=upstream_failed"))
    }

    @Test func hangIs504AfterTheUpstreamTimeout() throws {
        let h = try Harness(upstreamTimeoutMs: 500)
        defer { h.stop() }
        let started = Date()
        let answer = try h.get("/payments/imp_1", headers: ["X-Fake-Fault": "hang"])
        let elapsed = Date().timeIntervalSince(started)
        #expect(answer.status == 504)
        #expect(answer.header("X-Iamport-Proxy-Error") == "upstream_timeout")
        #expect(elapsed >= 0.4 && elapsed < 3)
        #expect(h.fake.recorded.filter { $0.target == "/payments/imp_1" }.count == 1, "a timeout is not replayed")
    }

    @Test func upstream5xxIsNotReplayed() throws {
        let h = try Harness()
        defer { h.stop() }
        let before = h.fake.apiCalls
        let answer = try h.post("/payments/cancel", json: "{}", headers: ["X-Fake-Fault": "status=500"])
        #expect(answer.status == 500)
        #expect(h.fake.apiCalls == before + 1)
    }

    @Test func upstreamGoneAfterTheTokenIs502Unreachable() throws {
        let h = try Harness()
        defer { h.stop() }
        #expect(try h.get("/payments/imp_1").status == 200)
        h.fake.stop()  // nothing listens any more: connection refused
        let answer = try h.get("/payments/imp_2")
        #expect(answer.status == 502)
        #expect(answer.header("X-Iamport-Proxy-Error") == "upstream_unreachable")
        let message: String = answer.json?["message"] as? String ?? ""
        #expect(message.hasPrefix("iamport-proxy: upstream unreachable"), "\(message)")
        #expect(h.logs.capturedText.contains("error=upstream_unreachable"))
        #expect(try h.get("/_proxy/healthz").status == 200, "still serving")
    }

    @Test func unreachableUpstreamIs502() throws {
        // A port with nothing listening: bind one, note it, close it.
        let h = try Harness(upstreamURL: "http://127.0.0.1:1", waitForToken: false)
        defer { h.stop() }
        let answer = try h.get("/payments/imp_1")
        #expect(answer.status == 502)
        // The token cannot be fetched either: the first failure is the token's.
        let code = answer.header("X-Iamport-Proxy-Error") ?? ""
        #expect(code == "token_unavailable")
        let message: String = answer.json?["message"] as? String ?? ""
        #expect(message.contains("getToken failed"), "\(message)")
    }
}
