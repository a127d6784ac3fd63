import Dispatch
import FakeIamport
import Foundation
import Synchronization
import TestSupport
import Testing

/// The fake behind socat's TLS (a CA made at test time), and the binary in
/// front of it.
struct TLSUpstream {
    let fake: FakeIamport
    let tls: TLSFront
    let proxy: ProcessRunner
    let port: Int

    init(trustingItsCA: Bool) throws {
        fake = FakeIamport(configuration: .init(apiKey: BinaryHarness.apiKey, apiSecret: BinaryHarness.apiSecret))
        let fakePort = try fake.start().port
        do {
            tls = try TLSFront(backendPort: fakePort)
        } catch {
            fake.stop()
            throw error
        }
        var arguments = ["--upstream", "https://localhost:\(tls.port)", "--listen", "127.0.0.1:0"]
        if trustingItsCA { arguments += ["--upstream-ca-file", tls.caFile] }
        let runner: ProcessRunner
        do {
            runner = try ProcessRunner(Paths.executable("iamport-proxy"), arguments: arguments,
                                       environment: ["IAMPORT_API_KEY": BinaryHarness.apiKey, "IAMPORT_API_SECRET": BinaryHarness.apiSecret])
        } catch {
            tls.stop()
            fake.stop()
            throw error
        }
        proxy = runner
        guard let listening = runner.listeningPort() else {
            _ = runner.stop()
            tls.stop()
            fake.stop()
            throw TLSUpstreamFailure.notListening(runner.text)
        }
        port = listening
    }

    enum TLSUpstreamFailure: Error { case notListening(String) }

    func stop() {
        _ = proxy.stop()
        tls.stop()
        fake.stop()
    }
}
