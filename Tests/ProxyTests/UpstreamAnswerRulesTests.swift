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
        let rig = try UpstreamTestLoop(UpstreamConfiguration(baseURL: "http://127.0.0.1:\(upstream.port)", timeout: .milliseconds(3000)))
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

    /// A field line a request would be refused for (here a tab before the
    /// colon) fails the answer too, with the reason the client's 502 gives.
    @Test func anAnswerFieldLineDefectFails() throws {
        let upstream = try ScriptedUpstream(answers: [["HTTP/1.1 200 OK\r\nX-A\t: 1\r\nContent-Length: 2\r\n\r\nok"], ["unused"]])
        defer { upstream.stop() }
        let rig = try UpstreamTestLoop(UpstreamConfiguration(baseURL: "http://127.0.0.1:\(upstream.port)", timeout: .milliseconds(3000)))
        defer { rig.stop() }
        guard case .failure(.failed(let why))? = rig.send(.get("/")) else {
            Issue.record("not refused")
            return
        }
        #expect(why == "malformed field line in the answer head", "\(why)")
    }

    /// The fields an answer's `Connection` names are dropped in any case,
    /// alongside the hop-by-hop ones; an option that is no token names nothing.
    @Test func fieldsTheAnswersConnectionNamesAreDropped() throws {
        let head = "HTTP/1.1 200 OK\r\nConnection: X-HOP, a b\r\nx-hop: 1\r\nX-Kept: yes\r\nTE: trailers\r\nContent-Length: 2\r\n\r\nok"
        let upstream = try ScriptedUpstream(answers: [[head]])
        defer { upstream.stop() }
        let rig = try UpstreamTestLoop(UpstreamConfiguration(baseURL: "http://127.0.0.1:\(upstream.port)", timeout: .milliseconds(3000)))
        defer { rig.stop() }
        guard case .success(let answer)? = rig.send(.get("/")) else {
            Issue.record("refused")
            return
        }
        #expect(String(decoding: answer.headerBlock, as: UTF8.self) == "X-Kept: yes\r\n")
        #expect(answer.body == Array("ok".utf8))
    }
}
