import FakeIamport
import Foundation
import TestSupport
import Testing

/// The real iamport-proxy binary against an in-process FakeIamport.
final class BinaryHarness: @unchecked Sendable {
    static let apiKey = "e2e-key-41"
    static let apiSecret = "e2e-secret-d81f6a"
    let fake: FakeIamport
    let fakePort: Int
    let proxy: ProcessRunner
    let port: Int

    init(fake configuration: FakeIamport.Configuration = .init(apiKey: BinaryHarness.apiKey, apiSecret: BinaryHarness.apiSecret),
         upstream: ((Int) -> String)? = nil, arguments: [String] = [], environment: [String: String] = [:],
         fakeIdleTimeout: Double = 60) throws {
        fake = FakeIamport(configuration: configuration)
        fakePort = try fake.start(idleTimeout: .seconds(fakeIdleTimeout)).port
        var env = [
            "IAMPORT_API_KEY": BinaryHarness.apiKey, "IAMPORT_API_SECRET": BinaryHarness.apiSecret,
            "IAMPORT_PROXY_UPSTREAM": upstream?(fakePort) ?? "http://127.0.0.1:\(fakePort)",
            "IAMPORT_PROXY_LISTEN": "127.0.0.1:0",
        ]
        env.merge(environment) { _, new in new }
        let binary = Paths.executable("iamport-proxy")
        guard FileManager.default.isExecutableFile(atPath: binary) else {
            fake.stop()
            throw HarnessError.missingBinary(binary)
        }
        proxy = try ProcessRunner(binary, arguments: arguments, environment: env)
        guard let port = proxy.listeningPort() else {
            _ = proxy.stop()
            fake.stop()
            throw HarnessError.didNotStart(proxy.text)
        }
        self.port = port
    }

    enum HarnessError: Error { case missingBinary(String), didNotStart(String) }

    func waitUntilReady(seconds: Double = 10) -> Bool {
        let deadline = Date().addingTimeInterval(seconds)
        while Date() < deadline {
            if (try? HTTPTestClient.get(port: port, "/_proxy/readyz").status) == 200 { return true }
            usleep(50_000)
        }
        return false
    }

    /// Stops the proxy with SIGTERM; returns its exit status.
    func stop() -> Int32 {
        let status = proxy.stop()
        fake.stop()
        return status
    }
}

/// Runs the binary to completion (for configuration errors, --help, check).
func runBinary(_ arguments: [String], environment: [String: String], seconds: Double = 20) throws -> (status: Int32, output: String) {
    let runner = try ProcessRunner(Paths.executable("iamport-proxy"), arguments: arguments, environment: environment)
    let status = runner.wait(seconds: seconds)
    return (status, runner.text)
}
