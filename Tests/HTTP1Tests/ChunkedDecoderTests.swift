import Testing
@testable import HTTP1

func decodeChunked(_ text: String, limits: Limits = Limits()) -> (ChunkedDecoder.Outcome, [UInt8]) {
    var decoder = ChunkedDecoder(limits: limits)
    var body: [UInt8] = []
    let outcome = Array(text.utf8).withUnsafeBytes { decoder.decode($0, into: &body) }
    return (outcome, body)
}

@Suite struct ChunkedDecoderTests {
    @Test func decodesChunksExtensionsAndTrailers() {
        let text = "5\r\nhello\r\n1;name=value\r\n \r\nA\r\n0123456789\r\n0\r\nX-Trailer: t\r\n\r\nNEXT"
        let (outcome, body) = decodeChunked(text)
        #expect(outcome == .done(consumed: text.utf8.count - 4))
        #expect(String(decoding: body, as: UTF8.self) == "hello 0123456789")
    }

    @Test func splitAtEveryByte() {
        let bytes = Array("4\r\nWiki\r\n6;x=1\r\npedia \r\nE\r\nin \r\n\r\nchunks.\r\n0\r\n\r\n".utf8)
        for split in 0...bytes.count {
            var decoder = ChunkedDecoder(limits: Limits())
            var body: [UInt8] = []
            var input = bytes[0..<split]
            var done = false
            for piece in [bytes[0..<split], bytes[split...]] {
                input = piece
                let outcome = Array(input).withUnsafeBytes { decoder.decode($0, into: &body) }
                switch outcome {
                case .needMore(let consumed): #expect(consumed == input.count)
                case .done: done = true
                case .failure(let e): Issue.record("split \(split): \(e)")
                }
            }
            #expect(done)
            #expect(String(decoding: body, as: UTF8.self) == "Wikipedia in \r\n\r\nchunks.")
        }
    }

    @Test(arguments: [
        ("not hex", "g\r\nabc\r\n0\r\n\r\n"),
        ("empty size", "\r\nabc\r\n0\r\n\r\n"),
        ("size overflow", "10000000000000000\r\n"),
        ("data longer than size", "2\r\nabc\r\n0\r\n\r\n"),
        ("bare LF after size", "3\nabc\r\n0\r\n\r\n"),
        ("bare CR after data", "3\r\nabc\rX"),
        ("junk after size", "3 x\r\nabc\r\n"),
        ("control in extension", "3;a\u{1}\r\nabc\r\n"),
        ("trailer starts with space", "0\r\n X: y\r\n\r\n"),
        ("trailer with NUL", "0\r\nX: \u{0}\r\n\r\n"),
        ("negative size", "-3\r\nabc\r\n"),
    ])
    func malformedBodiesAreRefused(name: String, text: String) {
        let (outcome, _) = decodeChunked(text)
        guard case .failure(let error) = outcome else {
            Issue.record("\(name): accepted")
            return
        }
        #expect(error.status == 400, "\(name)")
    }

    @Test func bodyLimitIsCheckedBeforeTheData() {
        let (outcome, body) = decodeChunked("400\r\n", limits: Limits(maxBodyBytes: 1000))
        #expect(outcome == .failure(.bodyTooLarge))
        #expect(body.isEmpty)
    }

    @Test func bodyLimitCountsAllChunks() {
        let chunk = "100\r\n" + String(repeating: "a", count: 256) + "\r\n"
        let (outcome, _) = decodeChunked(chunk + chunk + chunk + chunk + "0\r\n\r\n", limits: Limits(maxBodyBytes: 1000))
        #expect(outcome == .failure(.bodyTooLarge))
    }

    @Test func extensionsAreLimited() {
        var text = ""
        for _ in 0..<40 { text += "1;" + String(repeating: "e", count: 500) + "\r\na\r\n" }
        let (outcome, _) = decodeChunked(text, limits: Limits(maxChunkOverheadBytes: 16384))
        guard case .failure = outcome else {
            Issue.record("unbounded chunk extensions accepted")
            return
        }
    }
}

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
