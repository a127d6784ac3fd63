import EventLoops
import Foundation
import Synchronization
import Testing
import TestSupport
import Upstream

/// New upstream connections resume the loop's cached TLS session (SPEC
/// "Forwarding"), whichever of the loop's easy handles makes them.
@Suite(.serialized) struct TLSSessionResumptionTests {
    private func rig(_ server: SessionReportingTLSServer) throws -> UpstreamTestLoop {
        try UpstreamTestLoop(
            UpstreamConfiguration(baseURL: "https://localhost:\(server.port)", caFile: server.caFile, timeout: .milliseconds(10_000)))
    }

    /// Sends `count` GETs at once; each goes out on a new connection (the
    /// server answers HTTP/1.0 and closes). What the server reports for each.
    private func burst(_ rig: UpstreamTestLoop, count: Int) -> [SessionReportingTLSServer.Handshake] {
        let results = Mutex<[Result<UpstreamResponse, UpstreamError>]>([])
        let done = DispatchSemaphore(value: 0)
        rig.loop.execute { [client = rig.client] in
            for _ in 0..<count {
                client.send(.get("/")) { result in
                    results.withLock { $0.append(result) }
                    done.signal()
                }
            }
        }
        for _ in 0..<count { #expect(done.wait(timeout: .now() + 15) == .success) }
        return results.withLock { $0 }.map { result in
            switch result {
            case .success(let answer):
                return SessionReportingTLSServer.handshake(of: answer.body)
            case .failure(let error):
                Issue.record("exchange failed: \(error)")
                return .unknown
            }
        }
    }

    @Test func newConnectionsOneAfterAnotherResume() throws {
        let server = try SessionReportingTLSServer()
        defer { server.stop() }
        let rig = try rig(server)
        defer { rig.stop() }
        // The first connection has no session to resume.
        #expect(burst(rig, count: 1) == [.full])
        for _ in 0..<4 {
            #expect(burst(rig, count: 1) == [.resumed])
        }
        #expect(rig.client.connectionsOpened == 5)
    }

    /// Connections made at once need easy handles that have never connected:
    /// they resume only if the session cache is the loop's, not each handle's.
    /// TLS 1.2, whose sessions OpenSSL lets several connections resume (a
    /// TLS 1.3 one serves one resumption; see docs/architecture.md).
    @Test func handlesThatNeverConnectedResumeTheLoopsSession() throws {
        let server = try SessionReportingTLSServer(tls12Only: true)
        defer { server.stop() }
        let rig = try rig(server)
        defer { rig.stop() }
        #expect(burst(rig, count: 1) == [.full])
        // One handle is the first one's, kept as a spare; three are new.
        #expect(burst(rig, count: 4) == [.resumed, .resumed, .resumed, .resumed])
        #expect(rig.client.connectionsOpened == 5)
    }
}
