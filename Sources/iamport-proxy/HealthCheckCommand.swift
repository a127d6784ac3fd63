#if canImport(Glibc)
import Glibc
#endif
import Accounts
import ArgumentParser
import EventLoops
import FoundationEssentials
import Iamport
import Logging
import Proxy
import Server
import Synchronization
import Upstream

struct HealthCheck: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "healthcheck",
        abstract: "Probe a running proxy's /_proxy/readyz on the listen address; exit 0 when ready (for container health checks).")

    @OptionGroup var options: CommonOptions

    func run() throws {
        let env = Environment.current()
        var listen = try options.listen ?? env["IAMPORT_PROXY_LISTEN"]
            ?? LoadedConfigFile.named(by: options, env: env)?.file.global["listen"]?.text ?? Settings.defaultListen
        if listen.hasPrefix("0.0.0.0:") { listen = "127.0.0.1:" + listen.dropFirst(8) }
        if listen.hasPrefix("[::]:") { listen = "[::1]:" + listen.dropFirst(5) }
        let status = try ReadinessProbe.status(of: listen, timeoutSeconds: 3)
        guard status == 200 else {
            throw RuntimeFailure(description: "not ready (HTTP \(status))")
        }
        print("ready")
    }
}
