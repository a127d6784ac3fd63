import Testing

@testable import HTTP1

@Suite struct ResponseSerializerTests {
    func head(_ response: Response, method: Method = .get, keepAlive: Bool = true, http10: Bool = false) -> (String, Bool) {
        var out: [UInt8] = []
        let written = ResponseSerializer.writeHead(response, requestMethod: method, keepAlive: keepAlive, http10Client: http10, into: &out)
        return (String(decoding: out, as: UTF8.self), written.sendsBody)
    }

    @Test func streamedBodiesAreFramedByTheirLengthChunkedOrTheClose() {
        var known = Response(status: 200, body: Array("abc".utf8))
        known.streamed = true
        known.declaredLength = 100_000
        var out: [UInt8] = []
        var written = ResponseSerializer.writeHead(known, requestMethod: .get, keepAlive: true, http10Client: false, into: &out)
        #expect(String(decoding: out, as: UTF8.self) == "HTTP/1.1 200 OK\r\nContent-Length: 100000\r\n\r\n")
        #expect(written == WrittenHead(sendsBody: true, chunked: false, closes: false))

        var unknown = Response(status: 200)
        unknown.streamed = true
        out = []
        written = ResponseSerializer.writeHead(unknown, requestMethod: .get, keepAlive: true, http10Client: false, into: &out)
        #expect(String(decoding: out, as: UTF8.self) == "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n")
        #expect(written == WrittenHead(sendsBody: true, chunked: true, closes: false))

        out = []
        written = ResponseSerializer.writeHead(unknown, requestMethod: .get, keepAlive: true, http10Client: true, into: &out)
        #expect(String(decoding: out, as: UTF8.self) == "HTTP/1.1 200 OK\r\nConnection: close\r\n\r\n",
                "an HTTP/1.0 client reads to the close")
        #expect(written == WrittenHead(sendsBody: true, chunked: false, closes: true))

        out = []
        written = ResponseSerializer.writeHead(known, requestMethod: .head, keepAlive: true, http10Client: false, into: &out)
        #expect(String(decoding: out, as: UTF8.self) == "HTTP/1.1 200 OK\r\nContent-Length: 100000\r\n\r\n")
        #expect(!written.sendsBody)
    }

    /// A relayed answer's request ID is written after its block by the
    /// serializer; the block itself (shared with the upstream's answer) is
    /// left as it is.
    @Test func theRequestIDFollowsTheHeaderBlock() {
        let block = Array("Content-Type: application/json\r\nX-Other: 1\r\n".utf8)
        var response = Response(status: 200, headerBlock: block, body: Array("{}".utf8))
        response.requestID = Array("req-123".utf8)
        #expect(head(response).0 == "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nX-Other: 1\r\n"
            + "X-Request-Id: req-123\r\nContent-Length: 2\r\n\r\n")
        #expect(response.headerBlock == block)
        response.requestID = nil
        #expect(head(response).0 == "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nX-Other: 1\r\nContent-Length: 2\r\n\r\n")
    }

    @Test func chunkSizeLines() {
        for (count, line) in [(1, "1"), (15, "f"), (16, "10"), (65536, "10000"), (0x7fff_ffff, "7fffffff")] {
            var out: [UInt8] = []
            ResponseSerializer.appendChunkSize(count, to: &out)
            #expect(String(decoding: out, as: UTF8.self) == line + "\r\n")
        }
    }

    @Test func okWithBody() {
        var r = Response(status: 200, body: Array("{}".utf8))
        r.addHeader("Content-Type", "application/json")
        let (text, body) = head(r)
        #expect(text == "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: 2\r\n\r\n")
        #expect(body)
    }

    @Test func upstreamReasonPhraseIsKept() {
        let (text, _) = head(Response(status: 207, reason: Array("Multi-Status".utf8)))
        #expect(text.hasPrefix("HTTP/1.1 207 Multi-Status\r\n"))
    }

    @Test func headKeepsTheDeclaredLengthWithoutABody() {
        var r = Response(status: 200, body: Array("ignored".utf8))
        r.declaredLength = 1330
        let (text, body) = head(r, method: .head)
        #expect(text.contains("Content-Length: 1330\r\n"))
        #expect(!body)
    }

    @Test func noContentHasNoLength() {
        for status in [204, 304] {
            let (text, body) = head(Response(status: status, body: Array("x".utf8)))
            #expect(!text.contains("Content-Length"))
            #expect(!body)
        }
    }

    @Test func persistenceFields() {
        #expect(head(Response(status: 200), keepAlive: false).0.contains("Connection: close\r\n"))
        #expect(head(Response(status: 200), keepAlive: true, http10: true).0.contains("Connection: keep-alive\r\n"))
        #expect(!head(Response(status: 200), keepAlive: true).0.contains("Connection"))
    }
}
