import Dispatch
import FakeIamport
import Foundation
import Synchronization
import TestSupport
import Testing

/// What a long-running process goes through, shortened: pooled upstream
/// connections outlive libcurl's own age limit for its connection cache
/// (118 s by default; 1 s here, through a test-only variable), and a burst
/// then needs new connections beside the pooled ones.
@Suite(.serialized) struct UpstreamHistoryTests {
    /// GETs sent at once, one thread each (not `concurrentPerform`, which
    /// runs only as many at once as there are cores), each held 300 ms by the
    /// fake so that they overlap.
    private func burst(_ count: Int, port: Int) -> [(status: Int, seconds: Double)] {
        let results = Mutex<[(status: Int, seconds: Double)]>([])
        let done = DispatchSemaphore(value: 0)
        for n in 0..<count {
            Thread {
                let started = Date()
                let status = (try? HTTPTestClient.get(
                    port: port, "/payments/imp_history_\(n)", headers: ["X-Fake-Fault": "delay=300"]).status) ?? -1
                results.withLock { $0.append((status, Date().timeIntervalSince(started))) }
                done.signal()
            }.start()
        }
        for _ in 0..<count { done.wait() }
        return results.withLock { $0 }
    }

    @Test func pooledConnectionsOlderThanLibcurlsAgeLimitNeverStallARequest() throws {
        let h = try BinaryHarness(
            arguments: ["--event-loops", "1", "--upstream-timeout", "4"],
            environment: ["IAMPORT_PROXY_TEST_LIBCURL_MAXAGE": "1"])
        #expect(h.waitUntilReady())
        let warm = burst(2, port: h.port)
        #expect(warm.allSatisfy { $0.status == 200 }, "\(warm)")
        Thread.sleep(forTimeInterval: 2.3)
        let after = burst(3, port: h.port)
        #expect(after.allSatisfy { $0.status == 200 }, "no 504 after the upstream timeout: \(after)")
        #expect(after.allSatisfy { $0.seconds < 2.5 }, "\(after)")
        // And the process is in a sound state: a fourth request goes through,
        // no client connection is left counted (only the one asking), and
        // SIGTERM stops it at once and clean.
        #expect(try HTTPTestClient.get(port: h.port, "/payments/imp_after").status == 200)
        let metrics = try HTTPTestClient.get(port: h.port, "/_proxy/metrics")
        let text = String(decoding: metrics.body, as: UTF8.self)
        #expect(text.contains("iamport_proxy_open_connections 1"), "\(text)")
        #expect(h.stop() == 0)
        #expect((h.proxy.lastStopSeconds ?? .infinity) < 3)
        #expect(h.proxy.text.contains("clean=true"))
    }
}
