import HTTP1
import Testing
@testable import Upstream

@Suite struct AnswerHeadTests {
    private func response(_ text: String) throws -> (UpstreamResponse, Int?) {
        let bytes = Array(text.utf8)
        return try bytes.withUnsafeBytes { raw in
            guard case .complete(let head) = ResponseHeadParser.parse(raw, maxHeadBytes: 65536) else {
                throw ParseFailure()
            }
            return AnswerHead.response(head, raw)
        }
    }

    private struct ParseFailure: Error {}

    @Test func onlyEndToEndFieldsOfTheUpstreamsOwnArePassedOn() throws {
        let (answer, keepAlive) = try response(
            "HTTP/1.1 207 Partly\r\nContent-Type: a\r\nConnection: keep-alive, X-Drop\r\nX-Drop: 1\r\nKeep-Alive: timeout=7\r\n"
                + "X-Request-Id: theirs\r\nX-Iamport-Proxy-Error: forged\r\nContent-Length: 0\r\nTier: t1\r\n\r\n")
        #expect(answer.status == 207)
        #expect(answer.reason == Array("Partly".utf8))
        #expect(String(decoding: answer.headerBlock, as: UTF8.self) == "Content-Type: a\r\nTier: t1\r\n")
        #expect(answer.declaredLength == 0)
        #expect(keepAlive == 7)
    }

    @Test func keepAliveTimeoutParameter() {
        #expect(AnswerHead.keepAliveTimeout(Array("timeout=5".utf8)) == 5)
        #expect(AnswerHead.keepAliveTimeout(Array("timeout=5, max=100".utf8)) == 5)
        #expect(AnswerHead.keepAliveTimeout(Array("max=100,  TIMEOUT=60".utf8)) == 60)
        #expect(AnswerHead.keepAliveTimeout(Array("max=100".utf8)) == nil)
        #expect(AnswerHead.keepAliveTimeout(Array("timeout=-1".utf8)) == nil)
        #expect(AnswerHead.keepAliveTimeout(Array("timeout=99999999999999999999".utf8)) == nil)
        #expect(AnswerHead.keepAliveTimeout(Array("timeout=".utf8)) == nil)
    }
}
