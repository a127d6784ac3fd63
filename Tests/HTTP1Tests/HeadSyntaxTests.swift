import Testing
@testable import HTTP1

/// The syntax requests and answers share (`HeadSyntax`): the same field-line
/// defect is refused in both directions, each with its own typed error, and
/// the differences kept between the two (versions, field count, repeated
/// lengths, Connection options) are pinned here.
struct HeadSyntaxTests {
    private func answer(_ text: String, max: Int = 65536) -> ResponseHeadParser.Outcome {
        Array(text.utf8).withUnsafeBytes { ResponseHeadParser.parse($0, maxHeadBytes: max) }
    }

    private func answerError(_ text: String) -> AnswerHeadError? {
        if case .failure(let error) = answer(text) { return error }
        return nil
    }

    /// One field line, after a request line or a status line.
    @Test(arguments: [
        ("X-A: b\r\n c", FieldLineDefect.obsoleteLineFolding, "obsolete line folding"),
        ("\tX-A: b", .obsoleteLineFolding, "obsolete line folding"),
        ("X-A : b", .malformedName, "malformed header field name"),
        ("X-A\t: b", .malformedName, "malformed header field name"),
        ("X-A b", .malformedName, "malformed header field name"),
        ("X\u{0}A: b", .malformedName, "malformed header field name"),
        ("X(A): b", .malformedName, "malformed header field name"),
        (": b", .emptyName, "empty header field name"),
        ("X-A: b\u{0}c", .controlCharacter, "control character in header field value"),
        ("X-A: b\u{1}c", .controlCharacter, "control character in header field value"),
        ("X-A: b\u{7f}c", .controlCharacter, "control character in header field value"),
        ("X-A: b\u{1b}", .controlCharacter, "control character in header field value"),
    ] as [(String, FieldLineDefect, String)])
    func aFieldLineDefectIsRefusedInBothDirections(line: String, defect: FieldLineDefect, reason: String) {
        #expect(expectFailure("GET / HTTP/1.1\r\nHost: a\r\n\(line)\r\n\r\n") == .badRequest(reason), "\(line.debugDescription)")
        let error = answerError("HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\(line)\r\n\r\n")
        #expect(error == .malformedField(defect), "\(line.debugDescription)")
        #expect(error?.description == "malformed field line in the answer head")
    }

    @Test func valuesAreTrimmedAndObsTextKeptInBothDirections() throws {
        let line = "X-A: \t caf\u{e9} au lait \t"
        let request = try #require(expectHead("GET / HTTP/1.1\r\nHost: a\r\n\(line)\r\n\r\n"))
        #expect(String(decoding: request[request.fields[1].value], as: UTF8.self) == "caf\u{e9} au lait")
        let text = "HTTP/1.1 200 OK\r\n\(line)\r\n\r\n"
        guard case .complete(let head) = answer(text) else {
            Issue.record("answer refused")
            return
        }
        #expect(String(decoding: Array(text.utf8)[head.fields[0].value], as: UTF8.self) == "caf\u{e9} au lait")
        #expect(head.fields[0] == HeaderField(name: 17..<20, value: head.fields[0].value, kind: .other))
    }

    /// Kept as it was: a request has a field count limit (431), an answer
    /// only its head size limit.
    @Test func onlyRequestsHaveAFieldCountLimit() {
        let fields = String(repeating: "X-A: 1\r\n", count: 150)
        #expect(expectFailure("GET / HTTP/1.1\r\nHost: a\r\n\(fields)\r\n") == .headersTooLarge)
        guard case .complete(let head) = answer("HTTP/1.1 200 OK\r\n\(fields)\r\n") else {
            Issue.record("answer refused")
            return
        }
        #expect(head.fields.count == 150)
    }

    /// The same version syntax; a request of another version gets 505, an
    /// answer of another version is malformed (a 502 for the client).
    @Test(arguments: [
        ("HTTP/1.2", 505), ("HTTP/2.0", 505), ("HTTP/0.9", 505), ("HTTP/1.x", 400), ("http/1.1", 400),
        ("HTTP/11", 400), ("HTTPS/1.1", 400),
    ])
    func otherVersions(version: String, requestStatus: Int) {
        #expect(expectFailure("GET / \(version)\r\nHost: a\r\n\r\n")?.status == requestStatus, "\(version)")
        #expect(answerError("\(version) 200 OK\r\n\r\n") == .malformedStatusLine, "\(version)")
    }

    /// Kept as it was: a request with a Content-Length twice is refused even
    /// with equal values, an answer only with differing ones.
    @Test func repeatedContentLength() {
        #expect(expectFailure("POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 3\r\nContent-Length: 3\r\n\r\n")?.status == 400)
        #expect(answerError("HTTP/1.1 200 OK\r\nContent-Length: 3\r\nContent-Length: 4\r\n\r\n") == .conflictingContentLength)
        #expect(answerError("HTTP/1.1 200 OK\r\nContent-Length: 3\r\nContent-Length: 3\r\n\r\n") == nil)
    }

    @Test func answerErrorsAreTyped() {
        #expect(answerError("HTTP/1.1 200 OK\nX: 1\n\n") == .bareLineEnd)
        #expect(answerError("HTTP/1.1 200 OK\r\nX: 1\rY") == .bareLineEnd)
        #expect(answerError("HTTP/1.1 200 OK\r\nContent-Length: x\r\n\r\n") == .invalidContentLength)
        #expect(answerError("HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip, chunked\r\n\r\n") == .unsupportedTransferEncoding)
        #expect(answerError("HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\nContent-Length: 1\r\n\r\n") == .bothLengths)
        #expect(answerError("HTTP/1.1 2x0 OK\r\n\r\n") == .malformedStatusLine)
        #expect(answerError("HTTP/1.1 200 O\u{1}K\r\n\r\n") == .malformedStatusLine)
        let big = "HTTP/1.1 200 OK\r\nX-Big: " + String(repeating: "a", count: 200)
        if case .failure(let error) = answer(big, max: 100) {
            #expect(error == .tooLarge(limit: 100))
            #expect(error.description == "answer head larger than 100 bytes")
        } else {
            Issue.record("a head over the limit is refused before it ends")
        }
        #expect(AnswerHeadError.bareLineEnd.description == "bare LF or CR in the answer head")
    }

    /// One reading of `Connection` for both directions: the same options
    /// close, keep alive, or name hop-by-hop fields (in any case).
    @Test func connectionNamesTheSameFieldsInBothDirections() throws {
        let fields = "Connection: keep-alive, X-HOP\r\nConnection: x-other\r\nx-hop: 1\r\nX-Other: 2\r\nX-Kept: 3\r\nUpgrade: h2c\r\n"
        let request = try #require(expectHead("GET / HTTP/1.1\r\nHost: a\r\n\(fields)\r\n"))
        let dropped = request.fields.filter { request.isHopByHop($0) }.map { String(decoding: request[$0.name], as: UTF8.self) }
        #expect(dropped == ["Connection", "Connection", "x-hop", "X-Other", "Upgrade"])
        #expect(request.connection.keepAlive && !request.connection.close)
        #expect(request.keepAlive)

        let text = "HTTP/1.1 200 OK\r\n\(fields)\r\n"
        let bytes = Array(text.utf8)
        guard case .complete(let head) = answer(text) else {
            Issue.record("answer refused")
            return
        }
        let answerDropped = bytes.withUnsafeBytes { raw in
            head.fields.filter { head.isHopByHop($0, in: raw) }.map { String(decoding: bytes[$0.name], as: UTF8.self) }
        }
        #expect(answerDropped == dropped)
        #expect(head.connection.names.map { String(decoding: bytes[$0], as: UTF8.self) } == ["X-HOP", "x-other"])
        #expect(!head.closes)
    }

    /// Kept as it was: an option that is not a token refuses a request (400)
    /// but not an answer, where it names no field (field names are tokens).
    @Test func anInvalidConnectionOption() throws {
        #expect(expectFailure("GET / HTTP/1.1\r\nHost: a\r\nConnection: close, a b\r\n\r\n") == .badRequest("invalid Connection option"))
        guard case .complete(let head) = answer("HTTP/1.1 200 OK\r\nConnection: a b, close\r\na: 1\r\n\r\n") else {
            Issue.record("answer refused")
            return
        }
        #expect(head.closes)
        #expect(head.connection.sawInvalid && head.connection.names.isEmpty)
    }

    @Test func persistenceIsDecidedAlikeInBothDirections() throws {
        for (version, connection, persists) in [
            ("1.1", "", true), ("1.1", "close", false), ("1.1", "keep-alive, close", false),
            ("1.0", "", false), ("1.0", "keep-alive", true), ("1.0", "Keep-Alive, Close", false),
        ] {
            let field = connection.isEmpty ? "" : "Connection: \(connection)\r\n"
            let request = try #require(expectHead("GET / HTTP/\(version)\r\nHost: a\r\n\(field)\r\n"))
            #expect(request.keepAlive == persists, "request \(version) \(connection)")
            guard case .complete(let head) = answer("HTTP/\(version) 200 OK\r\n\(field)\r\n") else {
                Issue.record("answer refused")
                continue
            }
            #expect(head.closes == !persists, "answer \(version) \(connection)")
        }
    }

    @Test func theScanResumesAndRefusesBareLineEnds() {
        func scan(_ text: String, start: Int = 0, from: Int = 0, first: Int? = nil) -> (HeadSyntax.Scan, Int?) {
            var first = first
            let scan = Array(text.utf8).withUnsafeBytes { HeadSyntax.scan($0, start: start, from: from, firstLineEnd: &first) }
            return (scan, first)
        }
        #expect(scan("A\r\nB: c\r\n\r\nbody") == (.end(11), 3))
        #expect(scan("A\r\nB: c\r") == (.incomplete(resume: 7), 3), "a CR at the end is looked at again")
        #expect(scan("A\r\nB: c\r\n\r\n", from: 7, first: 3) == (.end(11), 3), "resumed; the first line end was seen before")
        #expect(scan("A\nB").0 == .bareLF)
        #expect(scan("\n").0 == .bareLF)
        #expect(scan("A\rB").0 == .bareCR)
        #expect(scan("\r\n\r\nA\r\n\r\n", start: 4, from: 4) == (.end(9), 7))
    }

    /// The scan finds line ends with memchr; this is the byte-at-a-time
    /// reading it must agree with, on every input and from every resume point.
    @Test func theScanAgreesWithAByteAtATimeReading() {
        func reference(_ b: [UInt8], start: Int, from: Int, first: inout Int?) -> HeadSyntax.Scan {
            var i = from
            while i < b.count {
                if b[i] == ASCII.lf {
                    if i == start || b[i - 1] != ASCII.cr { return .bareLF }
                    if first == nil { first = i + 1 }
                    if i - start >= 3 && b[i - 2] == ASCII.lf && b[i - 3] == ASCII.cr { return .end(i + 1) }
                } else if b[i] == ASCII.cr {
                    if i + 1 >= b.count { break }
                    if b[i + 1] != ASCII.lf { return .bareCR }
                }
                i += 1
            }
            return .incomplete(resume: i)
        }
        let alphabet: [UInt8] = Array("a:\r\n\r\n \r\n".utf8)
        var random = SystemRandomNumberGenerator()
        for _ in 0..<20_000 {
            let bytes = (0..<Int.random(in: 0...24, using: &random)).map { _ in alphabet.randomElement(using: &random)! }
            let start = bytes.isEmpty ? 0 : Int.random(in: 0..<bytes.count, using: &random)
            // Every prefix first, then the whole, resuming where each left off, as bytes arrive.
            var first: Int?
            var expectedFirst: Int?
            var resume = start
            var expectedResume = start
            for end in start...bytes.count {
                let prefix = Array(bytes[..<end])
                let got = prefix.withUnsafeBytes { HeadSyntax.scan($0, start: start, from: resume, firstLineEnd: &first) }
                let expected = reference(prefix, start: start, from: expectedResume, first: &expectedFirst)
                #expect(got == expected && first == expectedFirst, "\(bytes) start \(start) end \(end)")
                guard case .incomplete(let next) = expected, got == expected else { break }
                resume = next
                expectedResume = next
            }
        }
    }

    /// The field values are checked eight bytes at a time, the line's CR
    /// found in the same pass; this is the byte-at-a-time reading they must
    /// agree with, fields and defects.
    @Test func fieldLinesAgreeWithAByteAtATimeReading() {
        func reference(_ head: [UInt8], maxCount: Int, into fields: inout [HeaderField]) -> FieldLineDefect? {
            let n = head.count
            var i = 0
            while i < n {
                if head[i] == ASCII.cr { break }
                if ASCII.isOWS(head[i]) { return .obsoleteLineFolding }
                let nameStart = i
                while i < n && ASCII.isTokenChar[Int(head[i])] { i += 1 }
                guard i < n, head[i] == ASCII.colon else { return .malformedName }
                if i == nameStart { return .emptyName }
                let name = nameStart..<i
                i += 1
                while i < n && ASCII.isOWS(head[i]) { i += 1 }
                let valueStart = i
                var valueEnd = i
                while i < n && head[i] != ASCII.cr {
                    let b = head[i]
                    guard ASCII.isFieldValueChar[Int(b)] else { return .controlCharacter }
                    i += 1
                    if !ASCII.isOWS(b) { valueEnd = i }
                }
                i += 2
                if fields.count == maxCount { return .tooMany }
                let kind = head.withUnsafeBytes { FieldKind.classify(UnsafeRawBufferPointer(rebasing: $0[name])) }
                fields.append(HeaderField(name: name, value: valueStart..<valueEnd, kind: kind))
            }
            return nil
        }
        let pieces = ["a", "Host", ":", " ", "\t", "v", "x-y", "\u{01}", "\u{7F}", "\u{80}", "@", "keep-alive", "  "]
        var random = SystemRandomNumberGenerator()
        for _ in 0..<20_000 {
            // Lines of random pieces, each ended by CRLF as the scan guarantees, then the blank line.
            var text = ""
            for _ in 0..<Int.random(in: 0...4, using: &random) {
                // Up to 14 pieces: values long enough for the eight-byte reading, with a refused byte anywhere.
                for _ in 0..<Int.random(in: 0...14, using: &random) { text += pieces.randomElement(using: &random)! }
                text += "\r\n"
            }
            text += "\r\n"
            let head = Array(text.utf8)
            let maxCount = Int.random(in: 1...4, using: &random)
            var got: [HeaderField] = []
            var expected: [HeaderField] = []
            let defect = head.withUnsafeBytes { HeadSyntax.parseFields($0, from: 0, maxCount: maxCount, into: &got) }
            let expectedDefect = reference(head, maxCount: maxCount, into: &expected)
            #expect(defect == expectedDefect && got == expected, "\(text.debugDescription)")
        }
    }

    @Test(arguments: [
        ("0", 0), ("42", 42), ("000000000000042", 42), ("999999999999999", 999_999_999_999_999),
        ("1000000000000000", nil), ("", nil), (" 1", nil), ("1 ", nil), ("+1", nil), ("1,1", nil),
    ] as [(String, Int?)])
    func oneContentLengthReader(value: String, expected: Int?) {
        #expect(HeadSyntax.contentLength(Array(value.utf8)) == expected, "\(value)")
        #expect(HeadParser.parseContentLength(ArraySlice(value.utf8)) == expected, "\(value)")
    }
}
