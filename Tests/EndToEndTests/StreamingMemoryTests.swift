import FakeIamport
import Foundation
import TestSupport
import Testing

@Suite(.serialized) struct StreamingMemoryTests {
    /// SPEC: memory per exchange is bounded whatever the answer's size; a
    /// client that stops reading holds back the upstream connection, not the
    /// answer in memory.
    @Test func clientsThatNeverReadHoldBackTheUpstreamNotTheAnswerInMemory() throws {
        let size = 60_000_000
        _ = FakeIamport.bigBody(size)  // made before the clock starts
        let h = try BinaryHarness()
        #expect(h.waitUntilReady())
        var clients: [HTTPTestClient] = []
        for n in 0..<5 {
            let client = try HTTPTestClient(port: h.port)
            try client.send("GET /payments/imp_big_\(n) HTTP/1.1\r\nHost: a\r\nX-Fake-Fault: big=\(size)\r\n\r\n")
            clients.append(client)
        }
        Thread.sleep(forTimeInterval: 2)
        let rssKiB = ProcessStats.residentKiB(pid: h.proxy.pid)
        #expect(rssKiB < 64 * 1024, "RSS \(rssKiB) KiB with five 60 MB answers unread")
        // And a reader gets the whole answer meanwhile.
        let answer = try HTTPTestClient.get(port: h.port, "/payments/imp_reader", headers: ["X-Fake-Fault": "big=\(size)"])
        #expect(answer.status == 200)
        #expect(answer.body.count == size)
        #expect(answer.body == FakeIamport.bigBody(size) ? true : false, "the body, byte for byte (a Bool: a diff of megabytes would not end)")
        clients.removeAll()
        #expect(h.stop() == 0)
    }
}
