import Dispatch
import FakeIamport
import Foundation
import Synchronization
import TestSupport
import Testing

/// What the proxy's own HTTP/1.1 exchange with the upstream must get right
/// (libcurl only connects).
@Suite(.serialized) struct UpstreamExchangeTests {
    /// Chunked, or ended by the close: relayed whole, with a Content-Length.
    @Test(arguments: ["chunked", "close-delimited"])
    func answersFramedOtherwiseAreRelayedWithALength(_ framing: String) throws {
        let h = try Harness()
        defer { h.stop() }
        let answer = try h.get("/payments/imp_1", headers: ["X-Fake-Fault": framing])
        #expect(answer.status == 200)
        #expect(String(decoding: answer.body, as: UTF8.self) == FakeIamport.rawAnswerBody)
        #expect(answer.header("Content-Length") == "\(FakeIamport.rawAnswerBody.utf8.count)")
        #expect(answer.header("Transfer-Encoding") == nil)
        #expect(answer.header("X-Trailer") == nil, "trailer fields are not relayed")
        #expect(try h.get("/payments/imp_2").status == 200, "the next request still works")
    }

    @Test func anAnswerWithTwoLengthsIsRefused() throws {
        let h = try Harness()
        defer { h.stop() }
        let answer = try h.get("/payments/imp_1", headers: ["X-Fake-Fault": "ambiguous-length"])
        #expect(answer.status == 502)
        #expect(answer.header("X-Iamport-Proxy-Error") == "upstream_failed")
        #expect(!String(decoding: answer.body, as: UTF8.self).contains("hello"), "nothing of the ambiguous answer is relayed")
    }

    @Test func anIdleConnectionTheServerClosedIsReplacedUnseen() throws {
        let h = try Harness(fakeIdleTimeout: 0.5)
        defer { h.stop() }
        #expect(try h.get("/payments/imp_1").status == 200)
        let before = h.fake.connectionsAccepted
        Thread.sleep(forTimeInterval: 2.5)  // the fake closes its idle connections (1 s sweep)
        #expect(try h.get("/payments/imp_2").status == 200)
        #expect(h.fake.connectionsAccepted == before + 1, "a new connection replaced the closed one")
    }

    @Test func aSafeRequestIsRetriedOnceWhenAReusedConnectionFailsBeforeAnswering() throws {
        let h = try Harness()
        defer { h.stop() }
        let client = try HTTPTestClient(port: h.port)
        try client.send("GET /payments/warm HTTP/1.1\r\nHost: a\r\n\r\n")
        #expect(try client.read().status == 200)  // a kept-alive upstream connection now waits
        try client.send("GET /payments/imp_reset HTTP/1.1\r\nHost: a\r\nX-Fake-Fault: reset\r\n\r\n")
        let answer = try client.read()
        #expect(answer.status == 502)
        #expect(answer.header("X-Iamport-Proxy-Error") == "upstream_failed")
        #expect(h.fake.recorded.filter { $0.target == "/payments/imp_reset" }.count == 2,
                "once on the reused connection, once more on a fresh one, and no more")
    }
}
