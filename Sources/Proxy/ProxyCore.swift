import EventLoops
import HTTP1
import Iamport
import Logging
import Server
import Synchronization
import Upstream

/// What the proxy's listeners share: the configuration in force, the
/// loops' contexts, metrics, logs, the servers.
final class ProxyCore: Sendable {
    let routing: RoutingState
    let metrics: ProxyMetrics
    let logger: Logger
    let accessLog: AccessLog
    let contexts: [LoopContext]
    let directory: UpstreamDirectory
    /// Whether accounts are named in readiness (with a config file).
    let labelsAccounts: Bool
    let requestIDPrefix: [UInt8]
    let servers = Mutex<[Server]>([])

    init(routing: RoutingState, metrics: ProxyMetrics, logger: Logger, contexts: [LoopContext],
         directory: UpstreamDirectory, labelsAccounts: Bool) {
        self.routing = routing
        self.metrics = metrics
        self.logger = logger
        self.accessLog = AccessLog(logger: logger)
        self.contexts = contexts
        self.directory = directory
        self.labelsAccounts = labelsAccounts
        var random = SystemRandomNumberGenerator()
        self.requestIDPrefix = (0..<12).map { _ in hexDigit(random.next()) } + [UInt8(ascii: "-")]
    }
}
