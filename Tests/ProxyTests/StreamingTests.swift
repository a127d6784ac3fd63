import FakeIamport
import Foundation
import TestSupport
import Testing

/// Answers too large to hold stream through the proxy: the head first, then
/// the body as it arrives, framed for the client by its length, in chunks, or
/// by the close for an HTTP/1.0 client.
@Suite(.serialized) struct StreamingTests {
    init() {
        // The fake's bodies, made before any clock runs.
        for size in [3_000_000, 2_000_000, 500_000, 60_000, 20_000_000] { _ = FakeIamport.bigBody(size) }
    }

    @Test func aLargeAnswerArrivesWholeWithItsLength() throws {
        let h = try Harness()
        defer { h.stop() }
        let size = 3_000_000
        let client = try HTTPTestClient(port: h.port)
        for _ in 0..<2 {  // twice on one connection: it stays usable after a streamed answer
            try client.send("GET /payments/imp_big HTTP/1.1\r\nHost: a\r\nX-Fake-Fault: big=\(size)\r\n\r\n")
            let answer = try client.read()
            #expect(answer.status == 200)
            #expect(answer.header("Content-Length") == "\(size)")
            #expect(answer.header("Transfer-Encoding") == nil)
            #expect(answer.body == FakeIamport.bigBody(size) ? true : false, "the body, byte for byte (a Bool: a diff of megabytes would not end)")
        }
    }

    @Test func aLargeChunkedAnswerIsStreamedChunked() throws {
        let h = try Harness()
        defer { h.stop() }
        let size = 2_000_000
        let client = try HTTPTestClient(port: h.port)
        try client.send("GET /payments/imp_big HTTP/1.1\r\nHost: a\r\nX-Fake-Fault: big-chunked=\(size)\r\n\r\n")
        let answer = try client.read()
        #expect(answer.status == 200)
        #expect(answer.header("Transfer-Encoding") == "chunked")
        #expect(answer.header("Content-Length") == nil)
        #expect(answer.body == FakeIamport.bigBody(size) ? true : false, "the body, byte for byte (a Bool: a diff of megabytes would not end)")
        // The connection carries the next request.
        try client.send("GET /payments/imp_small HTTP/1.1\r\nHost: a\r\n\r\n")
        #expect(try client.read().status == 200)
    }

    @Test func anHTTP10ClientReadsAStreamedAnswerToTheClose() throws {
        let h = try Harness()
        defer { h.stop() }
        let size = 500_000
        let answer = try h.raw("GET /payments/imp_big HTTP/1.0\r\nHost: a\r\nX-Fake-Fault: big-chunked=\(size)\r\n\r\n")
        #expect(answer.status == 200)
        #expect(answer.header("Connection") == "close")
        #expect(answer.header("Transfer-Encoding") == nil)
        #expect(answer.body == FakeIamport.bigBody(size) ? true : false, "the body, byte for byte (a Bool: a diff of megabytes would not end)")
    }

    @Test func smallAnswersAreNotStreamed() throws {
        let h = try Harness()
        defer { h.stop() }
        let size = 60_000  // under the 64 KiB threshold, even chunked
        let answer = try h.get("/payments/imp_small", headers: ["X-Fake-Fault": "big-chunked=\(size)"])
        #expect(answer.header("Content-Length") == "\(size)", "whole answers keep a Content-Length")
        #expect(answer.body == FakeIamport.bigBody(size) ? true : false, "the body, byte for byte (a Bool: a diff of megabytes would not end)")
    }

    @Test func aClientLeavingMidAnswerFreesTheUpstreamAndThePoolRecovers() throws {
        let h = try Harness()
        defer { h.stop() }
        for _ in 0..<3 {
            let client = try HTTPTestClient(port: h.port)
            try client.send("GET /payments/imp_big HTTP/1.1\r\nHost: a\r\nX-Fake-Fault: big=20000000\r\n\r\n")
            Thread.sleep(forTimeInterval: 0.1)
        }  // each client closes with most of its answer unread
        Thread.sleep(forTimeInterval: 0.3)
        let answer = try h.get("/payments/imp_after")
        #expect(answer.status == 200)
        #expect(h.proxy.server.openConnections <= 1)
    }
}
