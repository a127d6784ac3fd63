import HTTP1
import Testing
@testable import Upstream

@Suite struct RequestEncoderTests {
    private func post(_ body: [UInt8]) -> UpstreamRequest {
        UpstreamRequest(method: .post, methodName: "POST", pathAndQuery: Array("/payments/cancel".utf8),
                        headerLines: Array("Content-Type: application/json\0X-Forwarded-For: 10.0.0.1\0".utf8),
                        firstLine: Array("Authorization: Bearer t".utf8), body: body)
    }

    @Test func theHeadCarriesHostTheFirstLineTheFieldsAndTheLength() {
        let encoder = RequestEncoder(endpoint: Endpoint("http://127.0.0.1:8080/v1/"))
        let (head, bodyInHead) = encoder.encode(post(Array("{}".utf8)))
        #expect(String(decoding: head, as: UTF8.self) == "POST /v1/payments/cancel HTTP/1.1\r\nHost: 127.0.0.1:8080\r\n"
                + "Authorization: Bearer t\r\nContent-Type: application/json\r\nX-Forwarded-For: 10.0.0.1\r\n"
                + "Content-Length: 2\r\n\r\n")
        #expect(!bodyInHead, "plain HTTP writes head and body together without a copy")
    }

    @Test func aFirstLineGivenReplacesTheRequestsOwn() {
        let encoder = RequestEncoder(endpoint: Endpoint("http://127.0.0.1:8080/v1/"))
        let head = String(decoding: encoder.encode(post(Array("{}".utf8)), firstLine: Array("Authorization: Bearer fresh".utf8)).head,
                          as: UTF8.self)
        #expect(head.contains("\r\nAuthorization: Bearer fresh\r\nContent-Type: application/json\r\n"))
        #expect(!head.contains("Bearer t\r\n"))
    }

    @Test func aSmallBodyRidesInTheHeadOnTLS() {
        let encoder = RequestEncoder(endpoint: Endpoint("https://api.iamport.kr"))
        let (head, bodyInHead) = encoder.encode(post(Array("{}".utf8)))
        #expect(bodyInHead)
        #expect(String(decoding: head, as: UTF8.self).hasSuffix("Content-Length: 2\r\n\r\n{}"))
        let large = encoder.encode(post([UInt8](repeating: 0x61, count: RequestEncoder.tlsRecordBytes + 1)))
        #expect(!large.bodyInHead)
    }

    @Test func aPostWithoutABodySaysItsLengthIsZero() {
        let encoder = RequestEncoder(endpoint: Endpoint("http://h"))
        var request = post([])
        request.body = nil
        #expect(String(decoding: encoder.encode(request).head, as: UTF8.self).hasSuffix("Content-Length: 0\r\n\r\n"))
    }
}
