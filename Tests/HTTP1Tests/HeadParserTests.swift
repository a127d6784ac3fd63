import Testing
@testable import HTTP1

/// Parses `text` as one head, feeding it whole.
func parse(_ text: String, limits: Limits = Limits()) -> HeadParser.Outcome {
    var parser = HeadParser(limits: limits)
    let bytes = Array(text.utf8)
    return bytes.withUnsafeBytes { parser.parse($0) }
}

func parseBytes(_ bytes: [UInt8], limits: Limits = Limits()) -> HeadParser.Outcome {
    var parser = HeadParser(limits: limits)
    return bytes.withUnsafeBytes { parser.parse($0) }
}

func expectHead(_ text: String, sourceLocation: SourceLocation = #_sourceLocation) -> RequestHead? {
    switch parse(text) {
    case .complete(let head, let consumed):
        #expect(consumed == text.utf8.count, sourceLocation: sourceLocation)
        return head
    case .incomplete:
        Issue.record("incomplete", sourceLocation: sourceLocation)
    case .failure(let error):
        Issue.record("failed: \(error)", sourceLocation: sourceLocation)
    }
    return nil
}

func expectFailure(_ text: String) -> HTTPError? {
    if case .failure(let error) = parse(text) { return error }
    return nil
}

@Suite struct HeadParserTests {
    @Test func simpleGet() throws {
        let head = try #require(expectHead("GET /payments/imp_123?x=1 HTTP/1.1\r\nHost: a\r\nAccept: */*\r\n\r\n"))
        #expect(head.method == .get)
        #expect(String(decoding: head[head.target], as: UTF8.self) == "/payments/imp_123?x=1")
        #expect(head.minorVersion == 1)
        #expect(head.keepAlive)
        #expect(head.framing == .none)
        #expect(head.fields.count == 2)
        #expect(head.fields[0].kind == .host)
        #expect(head.targetForm == .origin)
    }

    @Test func fieldValuesAreTrimmed() throws {
        let head = try #require(expectHead("GET / HTTP/1.1\r\nHost:   a  \r\nX-Empty:\r\nTier:\t007 \t\r\n\r\n"))
        #expect(String(decoding: head[head.fields[0].value], as: UTF8.self) == "a")
        #expect(head[head.fields[1].value].isEmpty)
        #expect(String(decoding: head[head.fields[2].value], as: UTF8.self) == "007")
    }

    @Test func contentLengthAndChunked() throws {
        let post = try #require(expectHead("POST /p HTTP/1.1\r\nHost: a\r\nContent-Length: 12\r\n\r\n"))
        #expect(post.framing == .contentLength(12))
        let zero = try #require(expectHead("POST /p HTTP/1.1\r\nHost: a\r\nContent-Length: 0\r\n\r\n"))
        #expect(zero.framing == .none)
        let chunked = try #require(expectHead("POST /p HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: Chunked\r\n\r\n"))
        #expect(chunked.framing == .chunked)
    }

    @Test func persistence() throws {
        #expect(try #require(expectHead("GET / HTTP/1.0\r\n\r\n")).keepAlive == false)
        #expect(try #require(expectHead("GET / HTTP/1.0\r\nConnection: keep-alive\r\n\r\n")).keepAlive)
        #expect(try #require(expectHead("GET / HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n")).keepAlive == false)
        let named = try #require(expectHead("GET / HTTP/1.1\r\nHost: a\r\nConnection: X-Drop, keep-alive\r\nX-Drop: 1\r\n\r\n"))
        #expect(named.keepAlive)
        #expect(named.isHopByHop(named.fields[2]))
        #expect(named.isHopByHop(named.fields[1]))
        #expect(!named.isHopByHop(named.fields[0]))
    }

    @Test func expectContinue() throws {
        let head = try #require(expectHead("POST / HTTP/1.1\r\nHost: a\r\nExpect: 100-continue\r\nContent-Length: 3\r\n\r\n"))
        #expect(head.expectContinue)
        // No body, nothing to continue.
        let none = try #require(expectHead("GET / HTTP/1.1\r\nHost: a\r\nExpect: 100-continue\r\n\r\n"))
        #expect(!none.expectContinue)
    }

    @Test func leadingEmptyLinesAreSkipped() throws {
        let head = try #require(expectHead("\r\n\r\nGET / HTTP/1.1\r\nHost: a\r\n\r\n"))
        #expect(head.method == .get)
    }

    @Test func absoluteForm() throws {
        let head = try #require(expectHead("GET http://api.iamport.kr/payments/x HTTP/1.1\r\nHost: api.iamport.kr\r\n\r\n"))
        guard case .absolute(let authority, let path) = head.targetForm else {
            Issue.record("not absolute")
            return
        }
        #expect(String(decoding: head[authority], as: UTF8.self) == "api.iamport.kr")
        #expect(String(decoding: head[path], as: UTF8.self) == "/payments/x")
    }

    @Test func splitAtEveryByteGivesTheSameHead() throws {
        let text = "POST /payments/cancel?a=b HTTP/1.1\r\nHost: localhost\r\nContent-Type: application/json\r\nContent-Length: 10\r\nX-Request-Id: abc\r\n\r\n"
        let bytes = Array(text.utf8)
        for split in 1..<bytes.count {
            var parser = HeadParser(limits: Limits())
            let first = Array(bytes[0..<split])
            let firstOutcome = first.withUnsafeBytes { parser.parse($0) }
            guard case .incomplete = firstOutcome else {
                Issue.record("split \(split): expected incomplete, got \(firstOutcome)")
                continue
            }
            let whole = bytes.withUnsafeBytes { parser.parse($0) }
            guard case .complete(let head, let consumed) = whole else {
                Issue.record("split \(split): \(whole)")
                continue
            }
            #expect(consumed == bytes.count)
            #expect(head.framing == .contentLength(10))
            #expect(head.fields.count == 4)
        }
    }

    @Test func bodyBytesAfterTheHeadAreNotConsumed() {
        let text = "POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 4\r\n\r\nbody"
        guard case .complete(_, let consumed) = parse(text) else {
            Issue.record("not complete")
            return
        }
        #expect(consumed == text.utf8.count - 4)
    }

    /// Every smuggling and malformation vector of SPEC.md, with the answer it must get.
    @Test(arguments: [
        ("both CL and TE", "POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 3\r\nTransfer-Encoding: chunked\r\n\r\n", 400),
        ("TE then CL", "POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\nContent-Length: 3\r\n\r\n", 400),
        ("repeated CL, same value", "POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 3\r\nContent-Length: 3\r\n\r\n", 400),
        ("repeated CL, differing", "POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 3\r\nContent-Length: 4\r\n\r\n", 400),
        ("comma-listed CL", "POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 3, 3\r\n\r\n", 400),
        ("negative CL", "POST / HTTP/1.1\r\nHost: a\r\nContent-Length: -1\r\n\r\n", 400),
        ("signed CL", "POST / HTTP/1.1\r\nHost: a\r\nContent-Length: +3\r\n\r\n", 400),
        ("hex CL", "POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 0x10\r\n\r\n", 400),
        ("huge CL", "POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 99999999999999999999\r\n\r\n", 400),
        ("empty CL", "POST / HTTP/1.1\r\nHost: a\r\nContent-Length: \r\n\r\n", 400),
        ("TE not ending in chunked", "POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked, gzip\r\n\r\n", 400),
        ("TE chunked twice", "POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\nTransfer-Encoding: chunked\r\n\r\n", 400),
        ("TE gzip then chunked", "POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: gzip, chunked\r\n\r\n", 501),
        ("TE identity", "POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: identity\r\n\r\n", 501),
        ("TE empty", "POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: \r\n\r\n", 400),
        ("TE in HTTP/1.0", "POST / HTTP/1.0\r\nTransfer-Encoding: chunked\r\n\r\n", 400),
        ("obs-fold", "GET / HTTP/1.1\r\nHost: a\r\nX-A: b\r\n c\r\n\r\n", 400),
        ("space before colon", "GET / HTTP/1.1\r\nHost: a\r\nContent-Length : 3\r\n\r\n", 400),
        ("tab before colon", "GET / HTTP/1.1\r\nHost: a\r\nX-A\t: b\r\n\r\n", 400),
        ("empty header name", "GET / HTTP/1.1\r\nHost: a\r\n: b\r\n\r\n", 400),
        ("no colon", "GET / HTTP/1.1\r\nHost: a\r\nX-A b\r\n\r\n", 400),
        ("bare LF line end", "GET / HTTP/1.1\nHost: a\n\n", 400),
        ("bare LF in field", "GET / HTTP/1.1\r\nHost: a\nX: b\r\n\r\n", 400),
        ("bare CR in field", "GET / HTTP/1.1\r\nHost: a\rX: b\r\n\r\n", 400),
        ("NUL in value", "GET / HTTP/1.1\r\nHost: a\r\nX-A: b\u{0}c\r\n\r\n", 400),
        ("control in value", "GET / HTTP/1.1\r\nHost: a\r\nX-A: b\u{1}c\r\n\r\n", 400),
        ("DEL in value", "GET / HTTP/1.1\r\nHost: a\r\nX-A: b\u{7f}c\r\n\r\n", 400),
        ("NUL in name", "GET / HTTP/1.1\r\nHost: a\r\nX\u{0}A: b\r\n\r\n", 400),
        ("NUL in target", "GET /a\u{0}b HTTP/1.1\r\nHost: a\r\n\r\n", 400),
        ("space in target", "GET /a b HTTP/1.1\r\nHost: a\r\n\r\n", 400),
        ("double space in request line", "GET  / HTTP/1.1\r\nHost: a\r\n\r\n", 400),
        ("lower-case version", "GET / http/1.1\r\nHost: a\r\n\r\n", 400),
        ("HTTP/0.9 request line", "GET /\r\n\r\n", 400),
        ("missing Host", "GET / HTTP/1.1\r\n\r\n", 400),
        ("two Hosts", "GET / HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n", 400),
        ("bad method char", "G(T / HTTP/1.1\r\nHost: a\r\n\r\n", 400),
        ("asterisk form", "OPTIONS * HTTP/1.1\r\nHost: a\r\n\r\n", 400),
        ("fragment", "GET /a#b HTTP/1.1\r\nHost: a\r\n\r\n", 400),
        ("relative target", "GET a/b HTTP/1.1\r\nHost: a\r\n\r\n", 405),
        ("userinfo in absolute form", "GET http://u@h/ HTTP/1.1\r\nHost: h\r\n\r\n", 400),
        ("CONNECT", "CONNECT api.iamport.kr:443 HTTP/1.1\r\nHost: api.iamport.kr:443\r\n\r\n", 405),
        ("HTTP/2 preface", "PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n", 505),
        ("HTTP/1.2", "GET / HTTP/1.2\r\nHost: a\r\n\r\n", 505),
        ("HTTP/3.0", "GET / HTTP/3.0\r\nHost: a\r\n\r\n", 505),
        ("invalid Connection option", "GET / HTTP/1.1\r\nHost: a\r\nConnection: a b\r\n\r\n", 400),
    ])
    func hostileHeadsAreRefused(name: String, text: String, status: Int) {
        let error = expectFailure(text)
        #expect(error?.status == status, "\(name): got \(String(describing: error))")
    }

    @Test func requestLineLimit() {
        let long = "GET /" + String(repeating: "a", count: 9000) + " HTTP/1.1\r\nHost: a\r\n\r\n"
        #expect(expectFailure(long) == .uriTooLong)
        // Detected before the line ends, so a client cannot hold the buffer open.
        var parser = HeadParser(limits: Limits())
        let partial = Array(("GET /" + String(repeating: "a", count: 9000)).utf8)
        guard case .failure(.uriTooLong) = partial.withUnsafeBytes({ parser.parse($0) }) else {
            Issue.record("an endless request line must fail early")
            return
        }
    }

    @Test func headLimit() {
        let limits = Limits(maxHeadBytes: 1024)
        let big = "GET / HTTP/1.1\r\nHost: a\r\nX-Big: " + String(repeating: "b", count: 2000) + "\r\n\r\n"
        guard case .failure(.headersTooLarge) = parse(big, limits: limits) else {
            Issue.record("head over the limit must be refused")
            return
        }
        // Also while incomplete.
        let partial = "GET / HTTP/1.1\r\nHost: a\r\nX-Big: " + String(repeating: "b", count: 2000)
        guard case .failure(.headersTooLarge) = parse(partial, limits: limits) else {
            Issue.record("an endless head must fail early")
            return
        }
    }

    @Test func headerCountLimit() {
        var text = "GET / HTTP/1.1\r\nHost: a\r\n"
        for i in 0..<101 { text += "X-\(i): v\r\n" }
        text += "\r\n"
        #expect(expectFailure(text) == .headersTooLarge)
    }

    @Test func fieldKindsAreRecognisedInAnyCase() {
        #expect(FieldKind.classify(Array("AUTHORIZATION".utf8)) == .authorization)
        #expect(FieldKind.classify(Array("x-imptokenheader".utf8)) == .impTokenHeader)
        #expect(FieldKind.classify(Array("X-ImpTokenHeader".utf8)) == .impTokenHeader)
        #expect(FieldKind.classify(Array("Proxy-Connection".utf8)) == .proxyConnection)
        #expect(FieldKind.classify(Array("Tier".utf8)) == .tier)
        #expect(FieldKind.classify(Array("IDEMPOTENCY-KEY".utf8)) == .idempotencyKey)
        #expect(FieldKind.classify(Array("Idempotency-Ke".utf8)) == .other)
        #expect(FieldKind.classify(Array("Content-Lengt".utf8)) == .other)
        #expect(FieldKind.classify(Array("Keep-Alive".utf8)).isHopByHop)
        #expect(FieldKind.classify(Array("TE".utf8)).isHopByHop)
        #expect(!FieldKind.classify(Array("Authorization".utf8)).isHopByHop)
    }
}

/// A parser refills the last head's box for the next head once nothing else
/// holds it; a head still held is never touched.
@Suite struct HeadParserReuseTests {
    private func next(_ parser: inout HeadParser, _ text: String) -> RequestHead? {
        let bytes = Array(text.utf8)
        guard case .complete(let head, _) = bytes.withUnsafeBytes({ parser.parse($0) }) else { return nil }
        return head
    }

    private let first = "POST /payments/cancel HTTP/1.0\r\nHost: a\r\nConnection: close, x-drop\r\nX-Drop: 1\r\n"
        + "Content-Length: 5\r\nExpect: 100-continue\r\nX-Padding: " + String(repeating: "p", count: 300) + "\r\n\r\n"
    private let second = "GET /payments/imp_2 HTTP/1.1\r\nHost: b\r\n\r\n"

    @Test func aHeadStillHeldIsNotTouchedByTheNext() throws {
        var parser = HeadParser(limits: Limits())
        let a = try #require(next(&parser, first))
        let b = try #require(next(&parser, second))
        #expect(String(decoding: a.bytes, as: UTF8.self) == first)
        #expect(a.fields.count == 6 && a.method == .post && a.framing == .contentLength(5) && !a.keepAlive)
        #expect(String(decoding: b.bytes, as: UTF8.self) == second)
    }

    @Test func aReleasedHeadsBoxCarriesTheNextWithNothingOfItsOwn() throws {
        var parser = HeadParser(limits: Limits())
        do {
            let released = try #require(next(&parser, first))
            #expect(released.fields.count == 6)
        }
        let b = try #require(next(&parser, second))
        // The first head's buffer (400 bytes) carries the 42-byte second
        // head, and every part is the second's, none left of the first.
        #expect(b.bytes.capacity >= first.utf8.count, "the first head's buffer, kept")
        #expect(String(decoding: b.bytes, as: UTF8.self) == second)
        #expect(b.method == .get && b.minorVersion == 1 && b.keepAlive && !b.expectContinue)
        #expect(b.framing == .none && b.targetForm == .origin)
        #expect(b.fields.count == 1 && b.first(.host) != nil && b.first(.connection) == nil)
        #expect(!b.connection.sawInvalid && !b.isHopByHop(b.fields[0]))
        #expect(String(decoding: b[b.path], as: UTF8.self) == "/payments/imp_2")
    }

    @Test func aLargeHeadsBufferIsNotKeptForTheNext() throws {
        var parser = HeadParser(limits: Limits())
        let large = "GET / HTTP/1.1\r\nHost: a\r\nX-Padding: " + String(repeating: "p", count: HeadParser.maxSpareBytes) + "\r\n\r\n"
        do {
            let released = try #require(next(&parser, large))
            #expect(released.bytes.count > HeadParser.maxSpareBytes)
        }
        let b = try #require(next(&parser, second))
        #expect(b.bytes.capacity < HeadParser.maxSpareBytes, "an idle connection does not hold a large head's memory")
        #expect(String(decoding: b.bytes, as: UTF8.self) == second)
    }
}
