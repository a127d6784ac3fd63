import Foundation
import HTTP1
import Synchronization
import TestSupport
import Testing
import Upstream

/// An upstream that answers the first request on each connection and keeps
/// it open, then closes it as the second request arrives (reading it first,
/// or not): a server closing a kept-alive connection at the moment the proxy
/// takes it from its pool. It counts what arrives, by path.
private final class ClosingUpstream: @unchecked Sendable {
    let port: Int
    private let listener: Int32
    let arrivals = Mutex<[String: Int]>([:])
    private let readsSecond: Bool

    init(readsSecond: Bool) throws {
        self.readsSecond = readsSecond
        let (fd, port) = TestListener.open()
        self.port = port
        listener = fd
        Thread { [self] in
            while true {
                let client = accept(fd, nil, nil)
                guard client >= 0 else { return }
                Thread { self.serve(client) }.start()
            }
        }.start()
    }

    /// One request's head (and its Content-Length body); nil at the close.
    private func readRequest(_ client: Int32, _ pending: inout [UInt8]) -> String? {
        let end = Array("\r\n\r\n".utf8)
        while pending.firstRange(of: end) == nil {
            var chunk = [UInt8](repeating: 0, count: 4096)
            let n = chunk.withUnsafeMutableBytes { recv(client, $0.baseAddress, $0.count, 0) }
            if n <= 0 { return nil }
            pending += chunk[0..<n]
        }
        let headEnd = pending.firstRange(of: end)!.upperBound
        let head = String(decoding: pending[..<headEnd], as: UTF8.self)
        let length = head.split(separator: "\r\n").first { $0.lowercased().hasPrefix("content-length:") }
            .flatMap { Int($0.split(separator: ":")[1].trimmingCharacters(in: .whitespaces)) } ?? 0
        while pending.count < headEnd + length {
            var chunk = [UInt8](repeating: 0, count: 4096)
            let n = chunk.withUnsafeMutableBytes { recv(client, $0.baseAddress, $0.count, 0) }
            if n <= 0 { return nil }
            pending += chunk[0..<n]
        }
        pending.removeFirst(headEnd + length)
        let path = String(head.split(separator: " ")[1])
        arrivals.withLock { $0[path, default: 0] += 1 }
        return path
    }

    private func serve(_ client: Int32) {
        var pending: [UInt8] = []
        guard readRequest(client, &pending) != nil else { close(client); return }
        let answer = Array("HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok".utf8)
        _ = answer.withUnsafeBytes { send(client, $0.baseAddress, $0.count, Int32(MSG_NOSIGNAL)) }
        if readsSecond {
            _ = readRequest(client, &pending)  // counted, never answered
        } else {
            Thread.sleep(forTimeInterval: 0.2)  // closed while idle, before the request
        }
        close(client)
    }

    func count(_ path: String) -> Int { arrivals.withLock { $0[path] ?? 0 } }

    func stop() {
        shutdown(listener, Int32(SHUT_RDWR))
        close(listener)
    }
}

/// SPEC (Forwarding): every method reuses kept-alive connections; a
/// non-idempotent request whose reused connection fails before any answer
/// byte gets 502 upstream_failed and is never re-sent; GET, HEAD and OPTIONS
/// are retried once on a fresh connection.
@Suite(.serialized) struct PaymentReuseTests {
    private func send(_ rig: UpstreamTestLoop, _ method: HTTP1.Method, _ path: String)
        -> Result<UpstreamResponse, UpstreamError>?
    {
        let body: [UInt8]? = method == .post ? Array(#"{"imp_uid":"imp_1"}"#.utf8) : nil
        return rig.send(UpstreamRequest(
            method: method, methodName: method == .post ? "POST" : "GET", pathAndQuery: Array(path.utf8),
            headerLines: [], body: body))
    }

    @Test(arguments: [true, false])
    func aPaymentCallOnAConnectionTheServerClosesIsNeverSentTwice(serverReadsIt: Bool) throws {
        let upstream = try ClosingUpstream(readsSecond: serverReadsIt)
        defer { upstream.stop() }
        let rig = try UpstreamTestLoop(UpstreamConfiguration(baseURL: "http://127.0.0.1:\(upstream.port)", timeout: .milliseconds(3000)))
        defer { rig.stop() }

        // A POST's connection goes back to the pool, and the next POST takes it.
        guard case .success(let first)? = send(rig, .post, "/payments/prepare") else {
            Issue.record("the first POST failed")
            return
        }
        #expect(first.status == 200)
        if !serverReadsIt { Thread.sleep(forTimeInterval: 0.05) }  // taken just before the server's close
        let second = send(rig, .post, "/payments/cancel")
        guard case .failure(.failed(let why))? = second else {
            Issue.record("expected 502 upstream_failed, got \(String(describing: second))")
            return
        }
        #expect(why.contains("not re-sent"), "\(why)")
        #expect(upstream.count("/payments/cancel") == (serverReadsIt ? 1 : 0), "a POST never arrives twice")
        #expect(rig.client.connectionsOpened == 1, "the POST took the pooled connection, and no other")

        // A GET in the same spot goes again, once, on a fresh connection.
        Thread.sleep(forTimeInterval: 0.3)
        guard case .success? = send(rig, .get, "/payments/warm") else {
            Issue.record("the warm-up GET failed")
            return
        }
        if !serverReadsIt { Thread.sleep(forTimeInterval: 0.05) }
        guard case .success(let retried)? = send(rig, .get, "/payments/imp_1") else {
            Issue.record("the GET was not retried")
            return
        }
        #expect(retried.status == 200)
        #expect(upstream.count("/payments/imp_1") == (serverReadsIt ? 2 : 1))
    }
}

extension PaymentReuseTests {
    @Test func paymentCallsThroughTheProxyReuseUpstreamConnections() throws {
        let h = try Harness()
        defer { h.stop() }
        func opened() throws -> Int {
            let text = String(decoding: try h.get("/_proxy/metrics").body, as: UTF8.self)
            let line = text.split(separator: "\n").first { $0.hasPrefix("iamport_proxy_upstream_connections_opened ") }
            return Int(Double(line?.split(separator: " ").last ?? "") ?? -1)
        }
        let before = try opened()
        let client = try HTTPTestClient(port: h.port)
        for n in 0..<20 {
            try client.send("POST /payments/cancel HTTP/1.1\r\nHost: a\r\nContent-Type: application/json\r\n"
                + "Content-Length: 19\r\n\r\n{\"imp_uid\":\"imp_\(n % 10)\"}")
            #expect(try client.read().status == 200)
        }
        let new = try opened() - before
        #expect(new <= 1, "20 POSTs on one client connection opened \(new) upstream connections")
        #expect(h.fake.recorded.filter { $0.target == "/payments/cancel" }.count == 20, "each arrived once")
    }
}
