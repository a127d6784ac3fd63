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
