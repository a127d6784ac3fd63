import Testing
@testable import HTTP1

/// Numbers from the socket at and past every integer boundary: each is
/// either read exactly or refused, and none traps.
@Suite struct ExtremeValueTests {
    @Test(arguments: [
        ("0", 0),
        ("7", 7),
        ("000000000000007", 7),
        ("999999999999999", 999_999_999_999_999),
        ("1000000000000000", nil),
        ("0000000000000007", nil),
        ("2147483648", 2_147_483_648),
        ("4294967296", 4_294_967_296),
        ("9223372036854775807", nil),
        ("9223372036854775808", nil),
        ("18446744073709551615", nil),
        ("18446744073709551616", nil),
        ("99999999999999999999", nil),
        (String(repeating: "9", count: 400), nil),
        ("-9223372036854775808", nil),
        ("1e3", nil),
        ("", nil),
    ] as [(String, Int?)])
    func requestContentLength(value: String, expected: Int?) {
        #expect(HeadParser.parseContentLength(ArraySlice(value.utf8)) == expected, "\(value)")
        let outcome = parse("POST / HTTP/1.1\r\nHost: a\r\nContent-Length: \(value)\r\n\r\n")
        switch (outcome, expected) {
        case (.complete(let head, _), let n?):
            #expect(head.framing == (n == 0 ? .none : .contentLength(n)), "\(value)")
        case (.failure(let error), nil):
            #expect(error.status == 400, "\(value)")
        default:
            Issue.record("Content-Length \(value): \(outcome)")
        }
    }

    @Test(arguments: [
        ("ffffffffffffffffff", 400),
        ("7fffffffffffffff", 400),
        ("8000000000000000", 400),
        ("10000000000000000", 400),
        ("0000000000000001", 400),
        ("fffffffffffffff", 413),
        ("FFFFFFFFFFFFFFF", 413),
        ("100001", 413),
    ])
    func chunkSizesPastTheLimits(size: String, status: Int) {
        let (outcome, body) = decodeChunked("\(size)\r\nabc", limits: Limits(maxBodyBytes: 1 << 16))
        #expect(outcome == .failure(status == 413 ? .bodyTooLarge : .badRequest("chunk size too long")), "\(size)")
        #expect(body.isEmpty)
    }

    @Test func theLargestChunkSizeWithNoBodyLimitDoesNotTrap() {
        // maxBodyBytes at Int.max: the size is read, the data awaited.
        var decoder = ChunkedDecoder(limits: Limits(maxBodyBytes: .max))
        var body: [UInt8] = []
        let input = Array("fffffffffffffff\r\nabc".utf8)
        let outcome = input.withUnsafeBytes { decoder.decode($0, into: &body) }
        #expect(outcome == .needMore(consumed: input.count))
        #expect(body == Array("abc".utf8))
    }

    @Test func aChunkAfterDataNearTheLimitIsRefusedNotWrapped() {
        let first = "ffff\r\n" + String(repeating: "a", count: 0xffff) + "\r\n"
        let (outcome, _) = decodeChunked(first + "fffffffffffffff\r\n", limits: Limits(maxBodyBytes: 1 << 16))
        #expect(outcome == .failure(.bodyTooLarge))
    }

    private func answerHead(_ text: String) -> ResponseHeadParser.Outcome {
        Array(text.utf8).withUnsafeBytes { ResponseHeadParser.parse($0, maxHeadBytes: 65536) }
    }

    @Test(arguments: [
        "HTTP/1.1 99999999999999999999 OK\r\n\r\n",
        "HTTP/1.1 18446744073709551616 OK\r\n\r\n",
        "HTTP/1.1 2000 OK\r\n\r\n",
        "HTTP/1.1 -200 OK\r\n\r\n",
        "HTTP/1.1 0x1 OK\r\n\r\n",
        "HTTP/1.1 \(String(repeating: "9", count: 3000)) OK\r\n\r\n",
    ])
    func hugeStatusesAreRefused(text: String) {
        guard case .failure = answerHead(text) else {
            Issue.record("accepted \(text.prefix(40))")
            return
        }
    }

    @Test func theLargestThreeDigitStatusIsRead() {
        guard case .complete(let head) = answerHead("HTTP/1.1 999 Odd\r\n\r\n") else {
            Issue.record("refused")
            return
        }
        #expect(head.status == 999)
    }

    @Test(arguments: [
        ("999999999999999", 999_999_999_999_999),
        ("000000000000042", 42),
        ("1000000000000000", nil),
        ("9223372036854775807", nil),
        ("9223372036854775808", nil),
        ("18446744073709551616", nil),
        ("99999999999999999999", nil),
        (String(repeating: "9", count: 400), nil),
    ] as [(String, Int?)])
    func answerContentLength(value: String, expected: Int?) {
        let outcome = answerHead("HTTP/1.1 200 OK\r\nContent-Length: \(value)\r\n\r\n")
        switch (outcome, expected) {
        case (.complete(let head), let n?):
            #expect(head.contentLength == n, "\(value)")
        case (.failure, nil):
            break
        default:
            Issue.record("Content-Length \(value): \(outcome)")
        }
    }

    @Test(arguments: [
        ("0", 0), ("9", 9), ("123", 123), ("9223372036854775807", Int.max),
        ("9223372036854775808", nil), ("99999999999999999999", nil), ("", nil), ("1a", nil), ("+1", nil),
    ] as [(String, Int?)])
    func checkedDecimal(text: String, expected: Int?) {
        #expect(ASCII.decimal(ArraySlice(text.utf8)) == expected, "\(text)")
    }
}
