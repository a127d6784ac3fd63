import Testing
@testable import HTTP1

struct ResponseHeadParserTests {
    private func parse(_ text: String, max: Int = 65536) -> ResponseHeadParser.Outcome {
        Array(text.utf8).withUnsafeBytes { ResponseHeadParser.parse($0, maxHeadBytes: max) }
    }

    private func head(_ text: String, sourceLocation: SourceLocation = #_sourceLocation) -> UpstreamHead? {
        switch parse(text) {
        case .complete(let head): return head
        case .incomplete: Issue.record("incomplete", sourceLocation: sourceLocation)
        case .failure(let why): Issue.record("refused: \(why)", sourceLocation: sourceLocation)
        }
        return nil
    }

    @Test func aUsualAnswer() throws {
        let text = "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: 12\r\nX-Request-Id: a1\r\n\r\n{\"code\":0}"
        let h = try #require(head(text))
        #expect(h.status == 200)
        #expect(h.minorVersion == 1)
        #expect(h.contentLength == 12)
        #expect(!h.chunked && !h.closes)
        #expect(h.length == text.utf8.count - 10)
        #expect(h.fields.map(\.kind) == [.other, .contentLength, .requestID])
        let bytes = Array(text.utf8)
        #expect(String(decoding: bytes[h.reason], as: UTF8.self) == "OK")
        #expect(String(decoding: bytes[h.fields[0].value], as: UTF8.self) == "application/json")
    }

    @Test func framingAndPersistence() throws {
        #expect(try #require(head("HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n")).chunked)
        #expect(try #require(head("HTTP/1.1 200 OK\r\nConnection: close\r\n\r\n")).closes)
        #expect(try #require(head("HTTP/1.0 200 OK\r\nContent-Length: 0\r\n\r\n")).closes, "HTTP/1.0 closes by default")
        #expect(try !#require(head("HTTP/1.0 200 OK\r\nConnection: keep-alive\r\n\r\n")).closes)
        #expect(try #require(head("HTTP/1.1 204\r\n\r\n")).reason.isEmpty, "a missing reason phrase is accepted")
        #expect(try #require(head("HTTP/1.1 200 OK\r\nContent-Length: 7\r\nContent-Length: 7\r\n\r\n")).contentLength == 7)
        #expect(try #require(head("HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 200 OK\r\n\r\n")).status == 100, "one head at a time")
    }

    @Test(arguments: [
        ("HTTP/1.1 200 OK\r\nContent-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n", "both lengths"),
        ("HTTP/1.1 200 OK\r\nContent-Length: 5\r\nContent-Length: 6\r\n\r\n", "conflicting lengths"),
        ("HTTP/1.1 200 OK\r\nContent-Length: 5, 5\r\n\r\n", "a list as a length"),
        ("HTTP/1.1 200 OK\r\nContent-Length: -1\r\n\r\n", "a negative length"),
        ("HTTP/1.1 200 OK\r\nContent-Length: 1234567890123456\r\n\r\n", "an absurd length"),
        ("HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip\r\n\r\n", "a coding other than chunked"),
        ("HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\nTransfer-Encoding: chunked\r\n\r\n", "chunked twice"),
        ("HTTP/1.1 200 OK\r\nX-A: 1\r\n folded\r\n\r\n", "obs-fold"),
        ("HTTP/1.1 200 OK\r\nX-A : 1\r\n\r\n", "space before the colon"),
        ("HTTP/1.1 200 OK\r\n: 1\r\n\r\n", "an empty name"),
        ("HTTP/1.1 200 OK\r\nX-A: a\u{0}b\r\n\r\n", "NUL in a value"),
        ("HTTP/1.1 200 OK\nX-A: 1\r\n\r\n", "bare LF"),
        ("HTTP/2 200\r\n\r\n", "another version"),
        ("HTTP/1.1 20 OK\r\n\r\n", "a short status"),
        ("HTTP/1.1 099 Nope\r\n\r\n", "a status below 100"),
        ("SPDY/9 what\r\n\r\n", "not HTTP"),
    ])
    func refused(_ text: String, _ what: String) {
        guard case .failure = parse(text) else {
            Issue.record("accepted \(what)")
            return
        }
    }

    /// Bare line ends are refused as soon as they are seen: a server that
    /// ends its lines with LF alone never sends the CRLF CRLF a complete
    /// head needs, and the proxy must not wait for it until the timeout.
    @Test(arguments: [
        "HTTP/1.1 200 OK\n",
        "HTTP/1.1 200 OK\nContent-Length: 2\n\nok",
        "HTTP/1.1 200 OK\r\nX-A: 1\n",
        "HTTP/1.1 200 OK\rX",
        "HTTP/1.1 200 OK\r\nX-A: 1\r\n\n",
    ])
    func bareLineEndsAreRefusedBeforeTheHeadEnds(_ text: String) {
        guard case .failure = parse(text) else {
            Issue.record("not refused at once: \(text.debugDescription)")
            return
        }
    }

    @Test func incompleteAndTooLarge() {
        guard case .incomplete = parse("HTTP/1.1 200 OK\r\nContent-Le") else {
            Issue.record("a partial head is not complete")
            return
        }
        let big = "HTTP/1.1 200 OK\r\nX-Big: " + String(repeating: "a", count: 200) + "\r\n\r\n"
        guard case .failure = parse(big, max: 100) else {
            Issue.record("a head over the limit is refused")
            return
        }
        guard case .failure = parse(String(big.dropLast(4)), max: 100) else {
            Issue.record("a head over the limit is refused before it ends")
            return
        }
    }
}
