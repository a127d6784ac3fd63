import Foundation
import TestSupport
import Testing
import Upstream

/// What the upstream's answer may not do: speak for the proxy, or stall it
/// with a head that is not HTTP/1.1.
@Suite(.serialized) struct UpstreamAnswerRulesTests {
    @Test func theUpstreamCannotSpeakForTheProxy() throws {
        let h = try Harness()
        defer { h.stop() }
        let answer = try h.get("/payments/imp_1", headers: ["X-Fake-Fault": "impersonate", "X-Request-Id": "client-id-7"])
        #expect(answer.status == 200)
        #expect(answer.header("X-Kept") == "yes")
        #expect(answer.headers.filter { $0.name.lowercased().hasPrefix("x-iamport-proxy-") }.isEmpty, "\(answer.headers)")
        #expect(answer.headers.filter { $0.name.lowercased() == "x-request-id" }.map(\.value) == ["client-id-7"],
                "the request id is the proxy's (here the client's, which it kept)")
    }

    /// A head with bare LF line ends on a connection the server keeps open:
    /// refused at once, not after the upstream timeout.
    @Test func anAnswerHeadWithBareLineEndsFailsAtOnce() throws {
        let upstream = try ScriptedUpstream(answers: [["HTTP/1.1 200 OK\nContent-Length: 2\n\nok"], ["unused"]])
        defer { upstream.stop() }
        let rig = try UpstreamTestLoop(UpstreamConfiguration(baseURL: "http://127.0.0.1:\(upstream.port)", timeoutMilliseconds: 3000))
        defer { rig.stop() }
        let started = Date()
        let outcome = rig.send(.get("/"))
        let took = Date().timeIntervalSince(started)
        guard case .failure(.failed(let why))? = outcome else {
            Issue.record("not refused: \(String(describing: outcome))")
            return
        }
        #expect(why.contains("bare LF"), "\(why)")
        #expect(took < 1, "refused after \(took) s")
    }
}
