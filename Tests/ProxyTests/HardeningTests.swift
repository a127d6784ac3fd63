import Dispatch
import FakeIamport
import Foundation
import HTTP1
import Server
import Synchronization
import TestSupport
import Testing

@Suite(.serialized) struct HardeningTests {
    /// Hostile heads through the whole server: the right status, the envelope, a
    /// closed connection, and nothing reaching the upstream.
    @Test(arguments: [
        ("POST /payments/cancel HTTP/1.1\r\nHost: a\r\nContent-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n", 400, "bad_request"),
        ("POST /payments/cancel HTTP/1.1\r\nHost: a\r\nContent-Length: 5\r\nContent-Length: 6\r\n\r\nhello", 400, "bad_request"),
        ("GET /payments/x HTTP/1.1\r\nHost: a\r\nX-A: b\r\n  folded\r\n\r\n", 400, "bad_request"),
        ("GET /payments/x HTTP/1.1\r\nHost : a\r\n\r\n", 400, "bad_request"),
        ("GET /payments/x HTTP/1.1\nHost: a\n\n", 400, "bad_request"),
        ("GET /payments/x HTTP/1.1\r\nHost: a\r\nX: \u{1}\r\n\r\n", 400, "bad_request"),
        ("POST /payments/cancel HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: gzip, chunked\r\n\r\n", 501, "not_implemented"),
        ("POST /payments/cancel HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n", 400, "bad_request"),
        ("PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n", 505, "version_not_supported"),
        ("GET /payments/x HTTP/1.2\r\nHost: a\r\n\r\n", 505, "version_not_supported"),
        ("CONNECT 127.0.0.1:22 HTTP/1.1\r\nHost: 127.0.0.1:22\r\n\r\n", 405, "not_allowed"),
        ("GET http://evil.example/payments/x HTTP/1.1\r\nHost: evil.example\r\n\r\n", 405, "not_allowed"),
    ])
    func hostileRequestsAreRefusedAndNeverForwarded(request: String, status: Int, error: String) throws {
        let h = try Harness()
        defer { h.stop() }
        let client = try HTTPTestClient(port: h.port)
        try client.send(request)
        let answer = try client.read()
        #expect(answer.status == status, "\(answer)")
        #expect(answer.header("X-Iamport-Proxy-Error") == error)
        #expect(answer.json?["code"] as? Int == -1)
        #expect(answer.header("X-Request-Id") != nil)
        #expect(h.fake.apiCalls == 0, "nothing reached the upstream")
        #expect(client.isClosedByPeer(), "closed after a malformed or refused request")
    }

    /// A refused path: 400 and the envelope, nothing forwarded, and the
    /// connection stays open (SPEC's error table): the next request on it is
    /// served.
    @Test(arguments: [
        "/payments/../users/getToken", "/payments/%2e%2e/x", "/payments/..;/x", "/payments/x%00", "/payments%2Fx",
        "/payments\\x",
    ])
    func refusedPathsAre400AndTheConnectionStaysOpen(path: String) throws {
        let h = try Harness()
        defer { h.stop() }
        let client = try HTTPTestClient(port: h.port)
        try client.send("GET \(path) HTTP/1.1\r\nHost: a\r\n\r\n")
        let answer = try client.read()
        #expect(answer.status == 400, "\(answer)")
        #expect(answer.header("X-Iamport-Proxy-Error") == "bad_request")
        #expect(answer.header("Connection") == nil)
        #expect(h.fake.apiCalls == 0, "nothing reached the upstream")
        try client.send("GET /payments/imp_next HTTP/1.1\r\nHost: a\r\n\r\n")
        #expect(try client.read().status == 200)
    }

    @Test func neverAnOpenProxy() throws {
        // A second server stands for "any other host": it must receive nothing.
        let other = FakeIamport()
        let otherPort = try other.start().port
        defer { other.stop() }
        let h = try Harness()
        defer { h.stop() }
        for request in [
            "GET http://127.0.0.1:\(otherPort)/payments/x HTTP/1.1\r\nHost: 127.0.0.1:\(otherPort)\r\n\r\n",
            "GET https://127.0.0.1:\(otherPort)/x HTTP/1.1\r\nHost: 127.0.0.1:\(h.port)\r\n\r\n",
            "CONNECT 127.0.0.1:\(otherPort) HTTP/1.1\r\nHost: 127.0.0.1:\(otherPort)\r\n\r\n",
            "GET 127.0.0.1:\(otherPort) HTTP/1.1\r\nHost: 127.0.0.1:\(otherPort)\r\n\r\n",
        ] {
            let answer = try h.raw(request)
            #expect(answer.status == 405, "\(request): \(answer)")
        }
        // A Host header naming the other server changes nothing either.
        let viaHost = try h.raw("GET /echo/h HTTP/1.1\r\nHost: 127.0.0.1:\(otherPort)\r\n\r\n")
        #expect(viaHost.status == 200)
        #expect(Harness.echoed(viaHost)?.headers.values("Host") == ["127.0.0.1:\(h.fakePort)"])
        #expect(other.connectionsAccepted == 0)
        // Absolute form naming the upstream itself is served.
        let own = try h.raw("GET http://127.0.0.1:\(h.fakePort)/payments/imp_abs HTTP/1.1\r\nHost: 127.0.0.1:\(h.fakePort)\r\n\r\n")
        #expect(own.status == 200)
    }

    @Test func sizeLimits() throws {
        let h = try Harness(limits: Limits(maxHeadBytes: 4096, maxBodyBytes: 1000))
        defer { h.stop() }
        // Body over the limit: refused from the Content-Length, before it is sent.
        let client = try HTTPTestClient(port: h.port)
        try client.send("POST /payments/cancel HTTP/1.1\r\nHost: a\r\nContent-Length: 1001\r\nExpect: 100-continue\r\n\r\n")
        let big = try client.read(interim: true)
        #expect(big.status == 413)
        #expect(big.header("X-Iamport-Proxy-Error") == "body_too_large")
        #expect(client.isClosedByPeer())
        let chunked = try h.raw("POST /payments/cancel HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n3E9\r\n" + String(repeating: "a", count: 1001) + "\r\n0\r\n\r\n")
        #expect(chunked.status == 413)
        let head = try h.raw("GET /payments/x HTTP/1.1\r\nHost: a\r\nX-Big: " + String(repeating: "b", count: 5000) + "\r\n\r\n")
        #expect(head.status == 431)
        #expect(head.header("X-Iamport-Proxy-Error") == "headers_too_large")
        var many = "GET /payments/x HTTP/1.1\r\nHost: a\r\n"
        for n in 0..<120 { many += "X-\(n): 1\r\n" }
        #expect(try h.raw(many + "\r\n").status == 431)
        let line = try h.raw("GET /payments/" + String(repeating: "a", count: 9000) + " HTTP/1.1\r\nHost: a\r\n\r\n")
        #expect(line.status == 414)
        #expect(h.fake.apiCalls == 0)
        #expect(try h.get("/payments/imp_ok").status == 200, "still serving")
    }

    @Test func overMaxConnectionsIs503AndOthersAreStillServed() throws {
        let h = try Harness(server: { $0.maxConnections = 5 })
        defer { h.stop() }
        var held: [HTTPTestClient] = []
        for _ in 0..<5 { held.append(try HTTPTestClient(port: h.port)) }
        Thread.sleep(forTimeInterval: 0.1)
        let refused = try HTTPTestClient.request(port: h.port, "GET /payments/x HTTP/1.1\r\nHost: a\r\n\r\n")
        #expect(refused.status == 503)
        #expect(refused.header("X-Iamport-Proxy-Error") == "overloaded")
        // The held connections work.
        try held[0].send("GET /payments/imp_held HTTP/1.1\r\nHost: a\r\n\r\n")
        #expect(try held[0].read().status == 200)
        held.removeAll()
        Thread.sleep(forTimeInterval: 0.2)
        #expect(try h.get("/payments/imp_after").status == 200)
    }

    @Test func slowLorisConnectionsCostNothingAndGet408() throws {
        let h = try Harness(server: { $0.headTimeout = .seconds(2) })
        defer { h.stop() }
        var loris: [HTTPTestClient] = []
        for n in 0..<200 {
            let c = try HTTPTestClient(port: h.port)
            try c.send("GET /payments/slow_\(n) HTTP/1.1\r\nHost: a\r\nX-Slow: ")
            loris.append(c)
        }
        // Others are served while the 200 are held open, dripping bytes.
        for n in 0..<20 {
            #expect(try h.get("/payments/imp_fast_\(n)").status == 200)
            if n % 5 == 0 { for c in loris.prefix(50) { try? c.send("x") } }
        }
        Thread.sleep(forTimeInterval: 2.5)
        var timedOut = 0
        for c in loris.prefix(20) {
            if let answer = try? c.read(), answer.status == 408, answer.header("X-Iamport-Proxy-Error") == "header_timeout" {
                timedOut += 1
            }
        }
        #expect(timedOut == 20)
        // Answered, half-closed, then dropped after the lingering close (2 s).
        let deadline = Date().addingTimeInterval(6)
        while h.proxy.server.openConnections > 0 && Date() < deadline { usleep(50_000) }
        #expect(h.proxy.server.openConnections == 0, "all dropped")
        #expect(h.fake.apiCalls == 20)
    }

    @Test func idleKeepAliveConnectionsAreClosed() throws {
        let h = try Harness(server: { $0.idleTimeout = .seconds(1) })
        defer { h.stop() }
        let client = try HTTPTestClient(port: h.port)
        try client.send("GET /payments/imp_1 HTTP/1.1\r\nHost: a\r\n\r\n")
        #expect(try client.read().status == 200)
        #expect(client.isClosedByPeer(within: 3))
    }

    @Test func aClientThatStopsReadingIsDropped() throws {
        let h = try Harness(limits: Limits(maxBodyBytes: 16 << 20), server: { $0.writeTimeout = .seconds(1) })
        defer { h.stop() }
        let client = try HTTPTestClient(port: h.port)
        var small: Int32 = 4096
        setsockopt(client.fd, SOL_SOCKET, SO_RCVBUF, &small, socklen_t(MemoryLayout<Int32>.size))
        let body = String(repeating: "z", count: 12 << 20)
        // The echo answer is larger than every socket buffer on the way; never read it.
        try client.send("POST /echo/big HTTP/1.1\r\nHost: a\r\nContent-Length: \(body.utf8.count)\r\n\r\n" + body)
        let deadline = Date().addingTimeInterval(8)
        while h.proxy.server.openConnections > 0 && Date() < deadline { usleep(50_000) }
        #expect(h.proxy.server.openConnections == 0, "the stalled reader was dropped")
        #expect(try h.get("/payments/imp_1").status == 200)
    }

    @Test func defaultsAreTheSpecs() {
        let c = Server.Configuration()
        #expect(c.headTimeout == .seconds(10))
        #expect(c.idleTimeout == .seconds(60))
        #expect(c.maxConnections == 4096)
        #expect(Limits().maxHeadBytes == 32768)
        #expect(Limits().maxBodyBytes == 1_048_576)
    }
}
