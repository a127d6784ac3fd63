#if canImport(Glibc)
import Glibc
#endif
import ArgumentParser
import EventLoops
import FakeIamport

/// Runs the fake iamport API (for `make demo` and manual tests), or with
/// `--v2-secret` the fake PortOne V2 API instead. Its credentials are test
/// values, so unlike the proxy's they may be flags.
@main
struct FakeIamportCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "fake-iamport", abstract: "A fake of the iamport REST API (or PortOne V2's), for tests and demos.")

    @Option(help: "Address to listen on, HOST:PORT.") var listen = "127.0.0.1:9090"
    @Option(help: "The REST API key it accepts.") var apiKey = "demo-key"
    @Option(help: "The REST API secret it accepts.") var apiSecret = "demo-secret"
    @Option(help: "Token lifetime in seconds.") var tokenLifetime = 1800
    @Option(help: "Seconds added to this machine's clock.") var clockOffset = 0
    @Option(help: "Serve PortOne's V2 API instead, accepting `Authorization: PortOne <this secret>`.")
    var v2Secret: String?

    func run() throws {
        let signals = TerminationSignals.block()
        if let v2Secret {
            let fake = FakePortOneV2(configuration: .init(apiSecret: v2Secret))
            let address = try fake.start(listen: listen)
            print("fake PortOne V2 listening on \(address)")
            fflush(nil)
            _ = signals.wait()
            fake.stop()
            return
        }
        let fake = FakeIamport(configuration: .init(
            apiKey: apiKey, apiSecret: apiSecret, tokenLifetime: tokenLifetime, clockOffset: clockOffset))
        let address = try fake.start(listen: listen)
        print("fake iamport listening on \(address)")
        fflush(nil)
        _ = signals.wait()
        fake.stop()
    }
}
