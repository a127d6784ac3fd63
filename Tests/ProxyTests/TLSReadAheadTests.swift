import EventLoops
import FakeIamport
import Testing
import TestSupport
import Upstream

/// TLS connections to the upstream read ahead (one `recv` per record, not
/// two), and an answer whose records arrive together, so that some of them
/// wait in OpenSSL rather than in the socket, is still read whole.
@Suite(.serialized) struct TLSReadAheadTests {
    @Test func tlsConnectionsReadAheadAndAnswersInManyRecordsArriveWhole() throws {
        let fake = FakeIamport()
        let fakePort = try fake.start().port
        defer { fake.stop() }
        let tls = try TLSFront(backendPort: fakePort)
        defer { tls.stop() }
        let rig = try UpstreamTestLoop(
            UpstreamConfiguration(baseURL: "https://localhost:\(tls.port)", caFile: tls.caFile, timeout: .seconds(10)))
        defer { rig.stop() }

        // Bodies held whole (below the streaming threshold), each more than
        // one TLS record (socat writes what it reads, up to 8 KiB, as one
        // record): read-ahead takes several records in one recv.
        for size in [1, 20_000, 60_000] {
            let answer = try #require(rig.send(.get("/payments/imp_big", headers: "X-Fake-Fault: big=\(size)\u{0}"), seconds: 10))
            guard case .success(let response) = answer else {
                Issue.record("exchange failed: \(answer)")
                return
            }
            #expect(response.status == 200)
            #expect(response.body == FakeIamport.bigBody(size), "a body of \(size) bytes")
        }
        // One connection served them all, and it reads ahead.
        #expect(rig.client.connectionsOpened == 1)
        #expect(rig.idleCount() == 1)
        let readingAhead: Int = rig.onLoop { [client = rig.client] in client.idleConnectionsReadingAhead }
        #expect(readingAhead == 1)
    }
}
