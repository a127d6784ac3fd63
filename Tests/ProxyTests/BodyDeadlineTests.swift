import Foundation
import Synchronization
import TestSupport
import Testing

/// SPEC: a request body must be complete within 30 s of its head and may not
/// go 10 s without a byte (here 2 s and 1 s, so that the test is short).
@Suite(.serialized) struct BodyDeadlineTests {
    @Test func aBodyDrippedFasterThanTheProgressTimeoutStillMeetsTheTotalDeadline() throws {
        let h = try Harness(server: {
            $0.bodyTimeout = .seconds(1)
            $0.bodyTotalTimeout = .seconds(2)
        })
        defer { h.stop() }
        let client = try HTTPTestClient(port: h.port, timeout: 6)
        try client.send("POST /payments/cancel HTTP/1.1\r\nHost: a\r\nContent-Length: 100\r\n\r\n{")
        let started = Date()
        // A byte every 0.4 s: never 1 s without progress.
        let fd = client.fd
        let stop = Atomic<Bool>(false)
        let stopped = DispatchSemaphore(value: 0)
        let dripper = Thread {
            defer { stopped.signal() }
            var byte = UInt8(ascii: "x")
            for _ in 0..<15 where !stop.load(ordering: .acquiring) {
                Thread.sleep(forTimeInterval: 0.4)
                if send(fd, &byte, 1, Int32(MSG_NOSIGNAL)) != 1 { return }
            }
        }
        dripper.start()
        // The descriptor stays the client's until the dripper is done with it.
        defer {
            stop.store(true, ordering: .releasing)
            stopped.wait()
        }
        let answer = try client.read()
        #expect(answer.status == 408)
        #expect(answer.header("X-Iamport-Proxy-Error") == "body_timeout")
        #expect(Date().timeIntervalSince(started) < 4)
        #expect(h.fake.recorded.allSatisfy { $0.target != "/payments/cancel" }, "an incomplete body is never forwarded")
    }
}
