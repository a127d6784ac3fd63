import EventLoops
import FakeIamport
import Foundation
import Synchronization
import Testing
@testable import Upstream

/// The upstream pool against libcurl's own connection cache, and the limits
/// on idle connections. Each test drives an `UpstreamClient` on a loop of its
/// own against FakeIamport (plain HTTP on 127.0.0.1).
@Suite(.serialized) struct UpstreamPoolTests {
    /// FakeIamport and a client of it on a loop of its own; `run` sends
    /// requests together, from one loop task.
    final class Rig: @unchecked Sendable {
        let fake: FakeIamport
        let upstream: UpstreamTestLoop
        var client: UpstreamClient { upstream.client }

        init(_ configure: (inout UpstreamConfiguration) -> Void) throws {
            fake = FakeIamport()
            let port = try fake.start().port
            var configuration = UpstreamConfiguration(baseURL: "http://127.0.0.1:\(port)", timeout: .milliseconds(3000))
            configure(&configuration)
            upstream = try UpstreamTestLoop(configuration)
        }

        /// Sends `count` GETs at once (each held `delayMs` by the fake, so that
        /// they overlap); returns their results and how long the slowest took.
        func run(_ count: Int, delayMs: Int = 300) -> (results: [Result<UpstreamResponse, UpstreamError>], seconds: Double) {
            let results = Mutex<[Result<UpstreamResponse, UpstreamError>]>([])
            let done = DispatchSemaphore(value: 0)
            let started = Date()
            upstream.loop.execute { [client] in
                for n in 0..<count {
                    client.send(.get("/echo/\(n)", headers: "X-Fake-Fault: delay=\(delayMs)\0")) { result in
                        results.withLock { $0.append(result) }
                        done.signal()
                    }
                }
            }
            for _ in 0..<count { _ = done.wait(timeout: .now() + 10) }
            return (results.withLock { $0 }, Date().timeIntervalSince(started))
        }

        func idleCount() -> Int { upstream.idleCount() }

        func stop() {
            upstream.stop()
            fake.stop()
        }
    }

    /// The soak's stall, as a sequence: connections opened, used, parked;
    /// time passes beyond libcurl's connection age limit; two requests take
    /// the pooled connections while a third makes libcurl open a connection,
    /// which prunes every connection in its cache older than the limit, the
    /// pooled ones included. Before the client heard of those closes, the two
    /// requests waited for answers on closed (and reused) descriptors until
    /// the upstream timeout.
    @Test func connectionsLibcurlClosesBehindThePoolAreNoticed() throws {
        let rig = try Rig { $0.libcurlMaxConnectionAge = .seconds(1) }
        defer { rig.stop() }
        let warm = rig.run(2)
        #expect(warm.results.count == 2)
        #expect(rig.idleCount() == 2)
        // libcurl compares whole seconds: more than 1 s idle in its eyes.
        Thread.sleep(forTimeInterval: 2.2)
        let after = rig.run(3)
        #expect(after.results.count == 3)
        for result in after.results {
            guard case .success(let answer) = result else {
                Issue.record("request failed: \(result)")
                continue
            }
            #expect(answer.status == 401, "the fake's answer (no token was sent)")
        }
        #expect(after.seconds < 2.5, "no request waits for the 3 s upstream timeout")
        #expect(rig.client.connectionsOpened == 5, "the two pooled connections were replaced by fresh ones")
    }

    @Test func idleConnectionsAreClosedByTheSweepAfterTheIdleTimeout() throws {
        let rig = try Rig { $0.idleTimeout = .milliseconds(300) }
        defer { rig.stop() }
        _ = rig.run(2, delayMs: 100)
        #expect(rig.idleCount() == 2)
        Thread.sleep(forTimeInterval: 0.8)
        #expect(rig.idleCount() == 0,
                "closed by the sweep, without another request taking them")
    }

    @Test func theServersKeepAliveTimeoutBoundsReuse() throws {
        // `Keep-Alive: timeout=2`: reuse stops a second before, at 1 s, not at
        // the 50 s idle timeout. (The upstream keeps the connection open: it
        // waits for a second request.)
        let upstream = try ScriptedUpstream(answers: [
            ["HTTP/1.1 200 OK\r\nKeep-Alive: timeout=2, max=100\r\nContent-Length: 2\r\n\r\nok"], ["unused"],
        ])
        defer { upstream.stop() }
        let rig = try UpstreamTestLoop(UpstreamConfiguration(baseURL: "http://127.0.0.1:\(upstream.port)"))
        defer { rig.stop() }
        guard case .success(let answer)? = rig.send(.get("/")) else {
            Issue.record("no answer")
            return
        }
        #expect(answer.status == 200)
        #expect(rig.idleCount() == 1)
        Thread.sleep(forTimeInterval: 1.4)
        #expect(rig.idleCount() == 0, "closed a second before the server's keep-alive timeout")
    }
}
