#if canImport(Glibc)
import Glibc
#endif
import Dispatch
import FakeIamport
import Foundation
import Synchronization
import TestSupport
import Testing

@Suite(.serialized) struct LifecycleTests {
    @Test func sigtermFinishesInFlightRequestsClosesIdleOnesAndExitsZero() throws {
        let h = try BinaryHarness()
        #expect(h.waitUntilReady())
        // An idle keep-alive connection, and one request in flight for 1.5 s.
        let idle = try HTTPTestClient(port: h.port)
        try idle.send("GET /payments/imp_idle HTTP/1.1\r\nHost: a\r\n\r\n")
        #expect(try idle.read().status == 200)
        let busy = try HTTPTestClient(port: h.port)
        try busy.send("POST /payments/cancel HTTP/1.1\r\nHost: a\r\nX-Fake-Fault: delay=1500\r\nContent-Length: 2\r\n\r\n{}")
        // A client that has sent half a head when the signal comes.
        let partial = try HTTPTestClient(port: h.port)
        try partial.send("GET /payments/imp_late HTTP/1.1\r\nHost: a\r\n")
        Thread.sleep(forTimeInterval: 0.3)
        h.proxy.signal(SIGTERM)
        Thread.sleep(forTimeInterval: 0.2)
        #expect(idle.isClosedByPeer(within: 2), "idle connections are closed at once")
        // New connections are refused.
        #expect((try? HTTPTestClient(port: h.port, timeout: 1)) == nil)
        // The half-sent request completes and is told the proxy is stopping.
        try? partial.send("\r\n")
        let late = try partial.read()
        #expect(late.status == 503)
        #expect(late.header("X-Iamport-Proxy-Error") == "shutting_down")
        // The request in flight gets its full answer.
        let answer = try busy.read()
        #expect(answer.status == 200)
        #expect(answer.header("Connection") == "close")
        #expect(h.proxy.wait(seconds: 12) == 0)
        h.fake.stop()
        #expect(h.proxy.text.contains("stopped clean=true"))
    }

    @Test func runningOutOfFileDescriptorsNeitherSpinsNorCrashes() throws {
        let fake = FakeIamport(configuration: .init(apiKey: BinaryHarness.apiKey, apiSecret: BinaryHarness.apiSecret))
        let fakePort = try fake.start().port
        defer { fake.stop() }
        let binary = Paths.executable("iamport-proxy")
        let proxy = try ProcessRunner("/bin/sh", arguments: ["-c", "ulimit -n 48; exec \(binary) --listen 127.0.0.1:0 --upstream http://127.0.0.1:\(fakePort)"],
                                      environment: ["IAMPORT_API_KEY": BinaryHarness.apiKey, "IAMPORT_API_SECRET": BinaryHarness.apiSecret])
        defer { _ = proxy.stop() }
        let port = try #require(proxy.listeningPort())
        Thread.sleep(forTimeInterval: 0.3)
        var held: [HTTPTestClient] = []
        for _ in 0..<80 { if let c = try? HTTPTestClient(port: port, timeout: 2) { held.append(c) } }
        Thread.sleep(forTimeInterval: 0.5)
        // While every descriptor is taken, the process must idle, not spin on accept.
        let before = cpuTicks(pid: proxy.pid)
        Thread.sleep(forTimeInterval: 2)
        let used = cpuTicks(pid: proxy.pid) - before
        #expect(used < 40, "\(used) ticks of CPU in 2 s while out of descriptors")
        held.removeAll()
        Thread.sleep(forTimeInterval: 0.5)
        let answer = try HTTPTestClient.get(port: port, "/payments/imp_after")
        #expect(answer.status == 200)
        #expect(proxy.text.contains("out of file descriptors"))
        #expect(proxy.stop() == 0)
    }

    @Test func soakLeavesNoDescriptorsAndLittleMemoryBehind() throws {
        let h = try BinaryHarness(environment: ["IAMPORT_PROXY_LOG_LEVEL": "warning"])
        #expect(h.waitUntilReady())
        // Warm up, then measure.
        for n in 0..<200 { _ = try? HTTPTestClient.get(port: h.port, "/payments/warm_\(n)") }
        Thread.sleep(forTimeInterval: 0.3)
        let fdsBefore = ProcessStats.openFileDescriptors(pid: h.proxy.pid)
        let rssBefore = ProcessStats.residentKiB(pid: h.proxy.pid)
        let failures = Atomic<Int>(0)
        let group = DispatchGroup()
        for worker in 0..<4 {
            DispatchQueue.global().async(group: group) {
                // Keep-alive runs of 250 requests, on new connections each time: churn.
                for round in 0..<10 {
                    guard let client = try? HTTPTestClient(port: h.port) else { failures.add(1, ordering: .relaxed); continue }
                    for n in 0..<250 {
                        let body = n % 5 == 0 ? #"{"imp_uid":"imp_\#(n)"}"# : ""
                        let request = body.isEmpty
                            ? "GET /payments/imp_\(worker)_\(round)_\(n) HTTP/1.1\r\nHost: a\r\n\r\n"
                            : "POST /payments/cancel HTTP/1.1\r\nHost: a\r\nContent-Length: \(body.utf8.count)\r\n\r\n\(body)"
                        guard (try? client.send(request)) != nil, (try? client.read().status) == 200 else {
                            failures.add(1, ordering: .relaxed)
                            break
                        }
                    }
                }
                // And short connections, closed by the client.
                for n in 0..<100 { if (try? HTTPTestClient.get(port: h.port, "/payments/short_\(worker)_\(n)").status) != 200 { failures.add(1, ordering: .relaxed) } }
            }
        }
        group.wait()
        #expect(failures.load(ordering: .relaxed) == 0)
        // Let lingering closes and idle upstream connections settle.
        var fdsAfter = 0
        for _ in 0..<50 {
            Thread.sleep(forTimeInterval: 0.1)
            fdsAfter = ProcessStats.openFileDescriptors(pid: h.proxy.pid)
            if fdsAfter <= fdsBefore { break }
        }
        let rssAfter = ProcessStats.residentKiB(pid: h.proxy.pid)
        #expect(fdsAfter <= fdsBefore + 4, "descriptors: \(fdsBefore) before, \(fdsAfter) after")
        #expect(rssAfter - rssBefore < 8 * 1024, "RSS grew from \(rssBefore) KiB to \(rssAfter) KiB over 10,400 requests")
        #expect(h.stop() == 0)
    }
}

extension LifecycleTests {
    /// The upstream closes idle kept-alive connections: the proxy neither
    /// spins on the dead sockets nor fails the next request.
    @Test func upstreamClosingIdleConnectionsIsHarmless() throws {
        let h = try BinaryHarness(fakeIdleTimeout: 0.5)
        #expect(h.waitUntilReady())
        for n in 0..<6 { #expect(try HTTPTestClient.get(port: h.port, "/payments/imp_\(n)").status == 200) }
        Thread.sleep(forTimeInterval: 2)  // the fake has closed every idle connection by now
        let before = cpuTicks(pid: h.proxy.pid)
        Thread.sleep(forTimeInterval: 1.5)
        let used = cpuTicks(pid: h.proxy.pid) - before
        #expect(used < 20, "\(used) ticks of CPU in 1.5 s of idling")
        for n in 0..<6 { #expect(try HTTPTestClient.get(port: h.port, "/payments/imp_again_\(n)").status == 200) }
        #expect(h.fake.recorded.filter { $0.target.hasPrefix("/payments/imp_again_") }.count == 6, "each sent once")
        #expect(h.stop() == 0)
    }
}

/// User and system CPU time of a process, in clock ticks, from /proc.
func cpuTicks(pid: Int32) -> Int {
    guard let stat = try? String(contentsOfFile: "/proc/\(pid)/stat", encoding: .utf8),
        let close = stat.lastIndex(of: ")")
    else { return 0 }
    let fields = stat[stat.index(after: close)...].split(separator: " ")
    return (Int(fields[11]) ?? 0) + (Int(fields[12]) ?? 0)
}
