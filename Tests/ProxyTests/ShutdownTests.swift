import Foundation
import TestSupport
import Testing

/// SPEC: a connection arriving during shutdown gets 503 `shutting_down` or
/// is refused, never reset. The moments that matter are made to last: both
/// loops are held busy while clients connect and send, so their connections
/// wait in the listener's queue (or in a loop's task queue) when the
/// shutdown begins.
@Suite(.serialized) struct ShutdownTests {
    @Test func connectionsAcceptedAsShutdownBeginsGet503NeverAReset() throws {
        let h = try Harness()
        defer { h.fake.stop() }
        for loop in h.proxy.group.loops { loop.execute { usleep(500_000) } }
        var clients: [HTTPTestClient] = []
        for n in 0..<12 {
            let client = try HTTPTestClient(port: h.port, timeout: 5)
            try client.send("GET /payments/imp_shutdown_\(n) HTTP/1.1\r\nHost: a\r\n\r\n")
            clients.append(client)
        }
        let stopped = DispatchSemaphore(value: 0)
        Thread {
            h.proxy.shutdown(grace: .seconds(3))
            stopped.signal()
        }.start()
        for client in clients {
            do {
                let answer = try client.read()
                #expect(answer.status == 503)
                #expect(answer.header("X-Iamport-Proxy-Error") == "shutting_down")
            } catch {
                Issue.record("no answer but \(error)")
            }
        }
        #expect(stopped.wait(timeout: .now() + 6) == .success)
    }
}

extension ShutdownTests {
    @Test func aStuckExchangeDoesNotHoldTheShutdownPastItsGrace() throws {
        let h = try Harness(upstreamTimeoutMs: 30_000)
        defer { h.fake.stop() }
        let stuck = try HTTPTestClient(port: h.port, timeout: 5)
        try stuck.send("POST /payments/cancel HTTP/1.1\r\nHost: a\r\nX-Fake-Fault: hang\r\nContent-Length: 2\r\n\r\n{}")
        Thread.sleep(forTimeInterval: 0.3)
        let started = Date()
        let clean = h.proxy.shutdown(grace: .seconds(1))
        let took = Date().timeIntervalSince(started)
        #expect(!clean)
        #expect(took < 1.3, "shutdown took \(took) s with a 1 s grace")
        #expect(stuck.isClosedByPeer(within: 1))
    }
}
