import Dispatch
import FakeIamport
import Foundation
import Synchronization
import TestSupport
import Testing

@Suite(.serialized) struct ForwardingTests {
    @Test func headerRulesOfTheSpec() throws {
        let h = try Harness()
        defer { h.stop() }
        let answer = try h.raw(
            "GET /echo/payments?a=1&_token=stale&b=2 HTTP/1.1\r\nHost: proxy.local\r\n"
                + "Authorization: client-sent-token\r\nX-ImpTokenHeader: other-token\r\n"
                + "Connection: keep-alive, X-Hop\r\nX-Hop: secret-hop\r\nKeep-Alive: timeout=5\r\n"
                + "Proxy-Authorization: Basic abc\r\nProxy-Connection: keep-alive\r\nTE: trailers\r\nTrailer: X-T\r\n"
                + "Upgrade: websocket\r\nTier: 007\r\nX-Forwarded-For: 10.1.2.3\r\nX-Request-Id: req-abc-123\r\n"
                + "X-Custom: kept\r\nX-Empty:\r\n\r\n")
        #expect(answer.status == 200)
        let seen = try #require(Harness.echoed(answer))
        let headers = seen.headers
        #expect(seen.target == "/echo/payments?a=1&b=2", "the _token parameter is dropped, the rest kept")
        #expect(headers.values("Authorization") == ["Bearer \(try #require(h.fake.currentToken))"])
        #expect(headers.values("X-ImpTokenHeader").isEmpty)
        for hop in ["Connection", "X-Hop", "Keep-Alive", "Proxy-Authorization", "Proxy-Connection", "TE", "Trailer", "Upgrade", "Transfer-Encoding"] {
            #expect(headers.values(hop).isEmpty, "\(hop) must not be forwarded")
        }
        #expect(headers.values("Host") == ["127.0.0.1:\(h.fakePort)"])
        #expect(headers.values("Tier") == ["007"])
        #expect(headers.values("X-Custom") == ["kept"])
        #expect(headers.values("X-Empty") == [""])
        #expect(headers.values("X-Forwarded-For") == ["10.1.2.3, 127.0.0.1"])
        #expect(headers.values("X-Request-Id") == ["req-abc-123"])
        #expect(headers.values("Accept").isEmpty, "nothing the client did not send")
        #expect(headers.values("Content-Type").isEmpty)
        #expect(answer.header("X-Request-Id") == "req-abc-123")
    }

    @Test func everyForwardedForValueIsKeptInOrderBeforeTheClient() throws {
        let h = try Harness()
        defer { h.stop() }
        let answer = try h.raw(
            "GET /echo/x HTTP/1.1\r\nHost: proxy.local\r\nX-Forwarded-For: 10.0.0.1\r\nX-Custom: a\r\n"
                + "x-forwarded-for: 10.0.0.2, 10.0.0.3\r\nX-Forwarded-For:\r\n\r\n")
        let seen = try #require(Harness.echoed(answer))
        #expect(seen.headers.values("X-Forwarded-For") == ["10.0.0.1, 10.0.0.2, 10.0.0.3, , 127.0.0.1"])
        #expect(seen.headers.values("X-Custom") == ["a"])
    }

    /// The forwarded lines are written into room reserved from the head's
    /// size: a head of the most fields allowed, each as short as a line can
    /// be (no space after the colon, empty values, empty X-Forwarded-For
    /// lines), is forwarded whole.
    @Test func aHeadOfTheShortestLinesIsForwardedWhole() throws {
        let h = try Harness()
        defer { h.stop() }
        var head = "GET /echo/x HTTP/1.1\r\nHost: proxy.local\r\n"
        for n in 0..<45 { head += "X\(n):v\r\n" }
        for n in 0..<45 { head += "E\(n):\r\n" }
        for _ in 0..<8 { head += "X-Forwarded-For:\r\n" }
        let answer = try h.raw(head + "\r\n")
        #expect(answer.status == 200)
        let seen = try #require(Harness.echoed(answer))
        #expect(seen.headers.values("X44") == ["v"])
        #expect(seen.headers.values("E44") == [""])
        #expect(seen.headers.values("X-Forwarded-For") == [String(repeating: ", ", count: 8) + "127.0.0.1"])
    }

    @Test func requestIDIsGeneratedForwardedAndReturned() throws {
        let h = try Harness()
        defer { h.stop() }
        let answer = try h.get("/echo/x", headers: ["X-Request-Id": "bad id with spaces"])
        let id = try #require(answer.header("X-Request-Id"))
        #expect(id != "bad id with spaces")
        #expect(!id.isEmpty)
        #expect(Harness.echoed(answer)?.headers.values("X-Request-Id") == [id])
        #expect(h.logs.capturedText.contains("request_id=\(id)"))
        let other = try h.get("/echo/x")
        #expect(other.header("X-Request-Id") != id)
        // A per-process prefix of 12 hex digits, a dash, then at least 8 hex digits.
        for generated in [id, try #require(other.header("X-Request-Id"))] {
            let parts = generated.split(separator: "-")
            #expect(parts.count == 2 && parts[0].count == 12 && parts[1].count >= 8, "\(generated)")
            #expect(generated.allSatisfy { $0.isHexDigit || $0 == "-" }, "\(generated)")
        }
        let otherID = try #require(other.header("X-Request-Id"))
        #expect(id.prefix(13) == otherID.prefix(13))
    }

    @Test func bodiesAreForwardedByteForByte() throws {
        let h = try Harness()
        defer { h.stop() }
        let body = (0..<4096).map { UInt8($0 % 251) }
        let client = try HTTPTestClient(port: h.port)
        try client.send(Array("POST /echo/bin HTTP/1.1\r\nHost: a\r\nContent-Type: application/octet-stream\r\nContent-Length: \(body.count)\r\n\r\n".utf8) + body)
        let answer = try client.read()
        #expect(answer.status == 200)
        let recorded = try #require(h.fake.recorded.last)
        #expect(recorded.body == body)
        #expect(recorded.header("Content-Length") == "\(body.count)")
        #expect(recorded.header("Content-Type") == "application/octet-stream")
    }

    @Test func chunkedBodiesGoUpstreamWithAContentLength() throws {
        let h = try Harness()
        defer { h.stop() }
        let answer = try h.raw("POST /echo/chunked HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\nContent-Type: application/json\r\n\r\n"
            + "7\r\n{\"imp_u\r\n8;ext=1\r\nid\":\"x\"}\r\n0\r\nX-Trailer: t\r\n\r\n")
        #expect(answer.status == 200)
        let recorded = try #require(h.fake.recorded.last)
        #expect(String(decoding: recorded.body, as: UTF8.self) == #"{"imp_uid":"x"}"#)
        #expect(recorded.header("Content-Length") == "15")
        #expect(recorded.header("Transfer-Encoding") == nil)
    }

    @Test func answersPassThroughUnchanged() throws {
        let h = try Harness()
        defer { h.stop() }
        let multi = try h.get("/payments/imp_1", headers: ["X-Fake-Fault": "status=207"])
        #expect(multi.status == 207)
        #expect(multi.json?["message"] as? String == "fake status 207")
        let missing = try h.get("/payments/imp_missing")
        #expect(missing.status == 404)
        #expect(missing.json?["code"] as? Int == 1)
        let server = try h.get("/payments/imp_1", headers: ["X-Fake-Fault": "status=503"])
        #expect(server.status == 503)
        #expect(server.header("X-Iamport-Proxy-Error") == nil, "the upstream's own 503 is not the proxy's")
        let gzip = try h.get("/payments/imp_1", headers: ["X-Fake-Fault": "gzip", "Accept-Encoding": "gzip"])
        #expect(gzip.status == 200)
        #expect(gzip.header("Content-Encoding") == "gzip")
        #expect(gzip.body == FakeIamport.gzipBody, "compressed bytes are not decompressed")
        let ownReason = try h.get("/payments/imp_1", headers: ["X-Fake-Fault": "reason=Fine_Thanks"])
        #expect(ownReason.status == 200)
        #expect(ownReason.reason == "Fine Thanks", "the upstream's own reason phrase passes through")
        let usualReason = try h.get("/payments/imp_1")
        #expect(usualReason.reason == "OK")
        let head = try HTTPTestClient.request(port: h.port, "HEAD /payments/imp_1 HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n", headRequest: true)
        #expect(head.status == 200)
        let get = try h.get("/payments/imp_1")
        #expect(head.header("Content-Length") == "\(get.body.count)")
    }

    @Test func hopByHopFieldsOfTheAnswerAreDropped() throws {
        let h = try Harness()
        defer { h.stop() }
        let answer = try h.get("/payments/imp_1", headers: ["X-Fake-Fault": "hop-headers"])
        #expect(answer.status == 200)
        #expect(answer.header("X-Kept") == "yes")
        for name in ["X-Upstream-Hop", "Keep-Alive", "Proxy-Connection", "Upgrade", "Trailer"] {
            #expect(answer.header(name) == nil, "\(name) must not reach the client")
        }
        // The only Connection field is the proxy's own (the request asked to close).
        #expect(answer.headers.filter { $0.name.lowercased() == "connection" }.map(\.value) == ["close"])
    }

    @Test func keepAlivePipeliningAndHTTP10() throws {
        let h = try Harness()
        defer { h.stop() }
        let client = try HTTPTestClient(port: h.port)
        try client.send("GET /echo/1 HTTP/1.1\r\nHost: a\r\n\r\nGET /echo/2 HTTP/1.1\r\nHost: a\r\n\r\nPOST /echo/3 HTTP/1.1\r\nHost: a\r\nContent-Length: 3\r\n\r\nabc")
        for n in 1...3 {
            let answer = try client.read()
            #expect(Harness.echoed(answer)?.target == "/echo/\(n)", "answers in order")
        }
        try client.send("GET /echo/4 HTTP/1.1\r\nHost: a\r\n\r\n")
        #expect(Harness.echoed(try client.read())?.target == "/echo/4", "still alive")

        let old = try HTTPTestClient(port: h.port)
        try old.send("GET /payments/imp_1 HTTP/1.0\r\n\r\n")
        let answer = try old.read()
        #expect(answer.status == 200)
        #expect(answer.header("Connection") == "close")
        #expect(old.isClosedByPeer())

        let kept = try HTTPTestClient(port: h.port)
        try kept.send("GET /payments/imp_1 HTTP/1.0\r\nConnection: keep-alive\r\n\r\n")
        #expect(try kept.read().header("Connection") == "keep-alive")
        try kept.send("GET /payments/imp_2 HTTP/1.0\r\n\r\n")
        #expect(try kept.read().status == 200)
    }

    @Test func expectContinue() throws {
        let h = try Harness()
        defer { h.stop() }
        let client = try HTTPTestClient(port: h.port)
        try client.send("POST /echo/c HTTP/1.1\r\nHost: a\r\nExpect: 100-continue\r\nContent-Length: 5\r\n\r\n")
        let interim = try client.read(interim: true)
        #expect(interim.status == 100)
        try client.send("hello")
        let answer = try client.read()
        #expect(answer.status == 200)
        #expect(Harness.echoed(answer)?.body == "hello")
        #expect(h.fake.recorded.last?.header("Expect") == nil)
    }

    @Test func upstreamConnectionsAreReused() throws {
        let h = try Harness()
        defer { h.stop() }
        let before = h.fake.connectionsAccepted
        let client = try HTTPTestClient(port: h.port)
        for n in 0..<50 {
            try client.send("GET /payments/imp_\(n) HTTP/1.1\r\nHost: a\r\n\r\n")
            #expect(try client.read().status == 200)
        }
        // Also over separate client connections.
        for n in 0..<10 { #expect(try h.get("/payments/imp_c\(n)").status == 200) }
        let opened = h.fake.connectionsAccepted - before
        #expect(opened <= 2, "60 requests opened \(opened) upstream connections")
    }

    @Test func oneGetTokenForTwoHundredConcurrentFirstRequests() throws {
        let h = try Harness(
            fake: .init(apiKey: Harness.apiKey, apiSecret: Harness.apiSecret, getTokenDelayMilliseconds: 400),
            waitForToken: false)
        defer { h.stop() }
        let statuses = Mutex<[Int]>([])
        DispatchQueue.concurrentPerform(iterations: 200) { n in
            let status = (try? h.get("/payments/imp_\(n)").status) ?? -1
            statuses.withLock { $0.append(status) }
        }
        let all = statuses.withLock { $0 }
        #expect(all.count == 200)
        #expect(all.allSatisfy { $0 == 200 }, "\(Dictionary(grouping: all, by: { $0 }).mapValues(\.count))")
        #expect(h.fake.getTokenCalls == 1)
    }
}
