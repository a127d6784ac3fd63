import Dispatch
import FakeIamport
import Foundation
import Synchronization
import TestSupport
import Testing

@Suite(.serialized) struct BinaryTests {
    @Test func plainUpstreamAndCleanShutdown() throws {
        let h = try BinaryHarness()
        #expect(h.waitUntilReady())
        let answer = try HTTPTestClient.get(port: h.port, "/payments/imp_e2e")
        #expect(answer.status == 200)
        #expect((answer.json?["response"] as? [String: Any])?["imp_uid"] as? String == "imp_e2e")
        let cancel = try HTTPTestClient.post(port: h.port, "/payments/cancel", json: #"{"imp_uid":"imp_e2e"}"#)
        #expect(cancel.status == 200)
        #expect(h.stop() == 0)
        #expect(h.proxy.text.contains("stopped"))
        #expect(h.proxy.text.contains("method=GET path=/payments/imp_e2e"))
    }

    @Test func tlsUpstreamWithACAMadeAtTestTimeReusesConnections() throws {
        let t = try TLSUpstream(trustingItsCA: true)
        defer { t.stop() }
        let (fake, proxy, port) = (t.fake, t.proxy, t.port)
        let client = try HTTPTestClient(port: port)
        for n in 0..<50 {
            try client.send("GET /payments/imp_tls_\(n) HTTP/1.1\r\nHost: a\r\n\r\n")
            let answer = try client.read()
            #expect(answer.status == 200, "\(answer)")
            if answer.status != 200 { break }
        }
        // A small POST over TLS: head and body in one record, intact.
        try client.send("POST /echo/small HTTP/1.1\r\nHost: a\r\nContent-Type: application/json\r\nContent-Length: 23\r\n\r\n"
            + #"{"imp_uid":"imp_tls_x"}"#)
        let echoed = try client.read()
        #expect(echoed.status == 200)
        #expect(fake.recorded.last.map { String(decoding: $0.body, as: UTF8.self) } == #"{"imp_uid":"imp_tls_x"}"#)
        #expect(fake.getTokenCalls == 1)
        // Each TLS connection socat accepts is one connection to the fake.
        #expect(fake.connectionsAccepted <= 2, "50 requests over TLS opened \(fake.connectionsAccepted) connections")
        #expect(proxy.stop() == 0)
    }

    @Test func largeBodiesBothWaysOverTLS() throws {
        let t = try TLSUpstream(trustingItsCA: true)
        defer { t.stop() }
        let (fake, proxy, port) = (t.fake, t.proxy, t.port)
        // Many TLS records each way, more than one socket buffer: the request
        // waits for room, and the answer arrives in many reads.
        let text = String(repeating: "abcdefghijklmnopqrstuvwxyz", count: 34_000)
        let answer = try HTTPTestClient.post(port: port, "/echo/big", json: "{\"text\":\"\(text)\"}")
        #expect(answer.status == 200)
        let recorded = try #require(fake.recorded.last)
        #expect(recorded.body.count == text.utf8.count + 11)
        #expect(String(decoding: recorded.body, as: UTF8.self).hasSuffix(String(text.suffix(100)) + "\"}"))
        #expect(answer.body.count > text.utf8.count, "the echo carries the whole body back")
        #expect(String(decoding: answer.body, as: UTF8.self).contains(String(text.suffix(1000))))
        #expect(proxy.stop() == 0)
    }

    /// A streamed answer over TLS to a client that stops reading, then
    /// reads on: the proxy pauses its upstream reads and resumes them when
    /// the client drains. TLS reads ahead, so bytes can wait in OpenSSL
    /// rather than in the socket across the pause; none may be lost or stall.
    @Test func aStreamedAnswerOverTLSSurvivesAClientThatPauses() throws {
        let t = try TLSUpstream(trustingItsCA: true)
        defer { t.stop() }
        let size = 6_000_000
        let client = try HTTPTestClient(port: t.port, timeout: 20)
        try client.send("GET /payments/imp_big HTTP/1.1\r\nHost: a\r\nX-Fake-Fault: big=\(size)\r\n\r\n")
        // Long enough for the socket buffers on the way to fill and the
        // proxy to pause the stream.
        usleep(1_000_000)
        let answer = try client.read()
        #expect(answer.status == 200)
        #expect(answer.body.count == size)
        #expect(answer.body == FakeIamport.bigBody(size))
        // The connection served a whole answer: the next request on it works.
        try client.send("GET /payments/imp_after HTTP/1.1\r\nHost: a\r\n\r\n")
        #expect(try client.read().status == 200)
        #expect(t.proxy.stop() == 0)
    }

    @Test func tlsVerificationIsAlwaysOn() throws {
        // No CA file: the test CA is not trusted, so nothing reaches the fake.
        let t = try TLSUpstream(trustingItsCA: false)
        defer { t.stop() }
        let (fake, port) = (t.fake, t.port)
        let answer = try HTTPTestClient.get(port: port, "/payments/imp_1")
        #expect(answer.status == 502)
        #expect(answer.header("X-Iamport-Proxy-Error") == "token_unavailable")
        let message = answer.json?["message"] as? String ?? ""
        #expect(message.lowercased().contains("certificate"), "\(message)")
        #expect(fake.getTokenCalls == 0)
        // Readiness and the log name the cause an operator must look at: the
        // upstream's certificate and the CA, not the credentials.
        let readiness = try HTTPTestClient.get(port: port, "/_proxy/readyz")
        #expect(readiness.status == 503)
        let reason = readiness.json?["reason"] as? String ?? ""
        #expect(reason.contains("the upstream's TLS certificate was refused"), "\(reason)")
        #expect(reason.contains("--upstream-ca-file"), "\(reason)")
        let log = t.proxy.text
        #expect(log.contains("token fetch failed") && log.contains("TLS certificate was refused"), "\(log)")
    }

    @Test func noClientVisible401AcrossTokenRotationsUnderSteadyLoad() throws {
        // Tokens live 3 s and are never extended, so they rotate by expiry;
        // a revocation in the middle forces one more rotation through a 401.
        let h = try BinaryHarness(fake: .init(apiKey: BinaryHarness.apiKey, apiSecret: BinaryHarness.apiSecret,
                                               tokenLifetime: 3, extensionWindow: 0))
        #expect(h.waitUntilReady())
        let statuses = Mutex<[Int: Int]>([:])
        let deadline = Date().addingTimeInterval(10)
        let group = DispatchGroup()
        for worker in 0..<4 {
            DispatchQueue.global().async(group: group) {
                guard let client = try? HTTPTestClient(port: h.port) else { return }
                var n = 0
                while Date() < deadline && n < 20_000 {
                    n += 1
                    let status: Int
                    do {
                        try client.send("GET /payments/imp_\(worker)_\(n) HTTP/1.1\r\nHost: a\r\n\r\n")
                        status = try client.read().status
                    } catch {
                        status = -1
                    }
                    statuses.withLock { $0[status, default: 0] += 1 }
                    if status == -1 { return }
                    usleep(2_000)
                }
            }
        }
        Thread.sleep(forTimeInterval: 5)
        h.fake.revokeTokens()
        group.wait()
        let counts = statuses.withLock { $0 }
        #expect(counts.keys.sorted() == [200], "statuses seen: \(counts)")
        #expect((counts[200] ?? 0) > 500)
        #expect(h.fake.getTokenCalls >= 4, "rotations: \(h.fake.getTokenCalls) getToken calls")
        #expect(h.stop() == 0)
    }

    @Test func renewalsInsideTheExtensionWindowExtendTheToken() throws {
        // Tokens of 6 s, extended by 6 s when asked in their last 3 s: the
        // renewal ahead (at 1/5 of the lifetime left) falls inside that window.
        let h = try BinaryHarness(fake: .init(apiKey: BinaryHarness.apiKey, apiSecret: BinaryHarness.apiSecret,
                                               tokenLifetime: 6, extensionWindow: 3, extensionSeconds: 6))
        #expect(h.waitUntilReady())
        let deadline = Date().addingTimeInterval(9)
        var statuses: [Int] = []
        while Date() < deadline {
            statuses.append((try? HTTPTestClient.get(port: h.port, "/payments/imp_x").status) ?? -1)
            usleep(20_000)
        }
        #expect(statuses.allSatisfy { $0 == 200 }, "\(Dictionary(grouping: statuses, by: { $0 }).mapValues(\.count))")
        #expect(h.fake.extensions >= 1, "renewed ahead inside the window: extended, not replaced")
        #expect(h.fake.getTokenCalls >= 2)
        #expect(h.stop() == 0)
    }

    /// The path rules through the real binary: django-iamport's
    /// `//users/getToken` answered locally, look-alikes never forwarded,
    /// ambiguous paths refused, an exact allow list, `_token` spellings
    /// dropped, and every refusal counted.
    @Test func pathsAreDecidedOnTheirCanonicalForm() throws {
        let h = try BinaryHarness(arguments: ["--allow", "GET /payments/*", "--allow", "GET /echo/*"])
        #expect(h.waitUntilReady())
        let secret = "django-secret-4be1"
        let body = #"{"imp_key":"app","imp_secret":"\#(secret)"}"#
        let django = try HTTPTestClient.post(port: h.port, "//users/getToken", json: body)
        #expect(django.status == 200, "\(django)")
        #expect((django.json?["response"] as? [String: Any])?["access_token"] is String)
        let lookAlike = try HTTPTestClient.request(
            port: h.port, "PUT /Users/GETTOKEN/ HTTP/1.1\r\nHost: a\r\nContent-Length: \(body.utf8.count)\r\n\r\n\(body)")
        #expect(lookAlike.status == 405)
        #expect(lookAlike.header("X-Iamport-Proxy-Error") == "not_allowed")
        #expect(try HTTPTestClient.get(port: h.port, "/payments/..;/users/me").status == 400)
        #expect(try HTTPTestClient.request(port: h.port, "get /payments/imp_1 HTTP/1.1\r\nHost: a\r\n\r\n").status == 403)
        #expect(try HTTPTestClient.get(port: h.port, "/PAYMENTS/imp_1").status == 403)
        #expect(try HTTPTestClient.get(port: h.port, "//payments/imp_1").status != 403)
        #expect(h.fake.recorded.last?.target == "//payments/imp_1", "forwarded as sent")
        let echoed = try HTTPTestClient.get(port: h.port, "/echo/q?%5FTOKEN%5B%5D=x&a=1")
        #expect((echoed.json?["response"] as? [String: Any])?["target"] as? String == "/echo/q?a=1")
        let metrics = try HTTPTestClient.get(port: h.port, "/_proxy/metrics").text
        for line in [#"iamport_proxy_requests_total{status="405",method="PUT"} 1"#,
                     #"iamport_proxy_requests_total{status="400",method="GET"} 1"#,
                     #"iamport_proxy_requests_total{status="403",method="other"} 1"#,
                     #"iamport_proxy_requests_total{status="403",method="GET"} 1"#] {
            #expect(metrics.contains(line), "missing: \(line)")
        }
        #expect(h.fake.getTokenCalls == 1, "only the proxy's own fetch")
        #expect(h.fake.recorded.filter { $0.target.lowercased().contains("token") && !$0.target.contains("_token") }.count == 1)
        #expect(h.stop() == 0)
        #expect(!h.proxy.text.contains(secret))
    }
}
