import CoreMetrics
import EventLoops
import HTTP1
import Prometheus
import Synchronization

/// The proxy's metrics, through swift-metrics' API onto a swift-prometheus
/// registry of its own. Handles are made once and cached (making one takes
/// the registry's lock); recording is an atomic add or a histogram update.
public final class ProxyMetrics: Sendable {
    public let registry: PrometheusCollectorRegistry
    private let factory: PrometheusMetricsFactory
    let requestDuration: LatencyHistogram
    let upstreamDuration: LatencyHistogram
    let openConnections: CoreMetrics.Gauge
    let upstreamConnections: CoreMetrics.Gauge
    private let requestCounters = Mutex<[Int: CoreMetrics.Counter]>([:])
    private let tokenCounters = Mutex<[String: CoreMetrics.Counter]>([:])
    private let accountHandles = Mutex<[String: AccountMetrics]>([:])
    private let reloadCounters = Mutex<[String: CoreMetrics.Counter]>([:])
    /// Without a config file: the handles of the process's one account,
    /// with no `account` label. (A family is labelled or not, never both.)
    private let unlabelled: AccountMetrics?

    /// `labelsAccounts`: every account's series carry `account` (with a
    /// config file); otherwise there is one account and no such label.
    public init(labelsAccounts: Bool = false) {
        let registry = PrometheusCollectorRegistry()
        let factory = PrometheusMetricsFactory(registry: registry)
        let latencyBuckets: [Nanoseconds] = [
            .microseconds(250), .microseconds(500), .milliseconds(1), .milliseconds(2), .milliseconds(5),
            .milliseconds(10), .milliseconds(25), .milliseconds(50), .milliseconds(100), .milliseconds(250),
            .milliseconds(500), .seconds(1), .seconds(2), .seconds(5), .seconds(10), .seconds(30),
        ]
        self.registry = registry
        self.factory = factory
        // The latency histograms are the loops' own (LatencyHistogram), written beside the registry's series.
        requestDuration = LatencyHistogram(name: "iamport_proxy_request_duration_seconds", bounds: latencyBuckets)
        upstreamDuration = LatencyHistogram(name: "iamport_proxy_upstream_duration_seconds", bounds: latencyBuckets)
        openConnections = CoreMetrics.Gauge(label: "iamport_proxy_open_connections", factory: factory)
        upstreamConnections = CoreMetrics.Gauge(label: "iamport_proxy_upstream_connections_opened", factory: factory)
        unlabelled = labelsAccounts ? nil : AccountMetrics(
            slot: 0, label: nil,
            tokenValid: CoreMetrics.Gauge(label: "iamport_proxy_token_valid", factory: factory),
            tokenExpiresIn: CoreMetrics.Gauge(label: "iamport_proxy_token_expires_in_seconds", factory: factory),
            renewalsAfterUnauthorized: CoreMetrics.Counter(
                label: "iamport_proxy_token_renewals_after_401_total", factory: factory),
            replays: CoreMetrics.Counter(label: "iamport_proxy_replays_total", factory: factory))
    }

    /// An account's handles: labelled with its name (made once per name, so
    /// a reload keeps the series of an account it keeps), or the unlabelled
    /// ones without a config file.
    func account(_ name: String) -> AccountMetrics {
        if let unlabelled { return unlabelled }
        return accountHandles.withLock { handles in
            if let known = handles[name] { return known }
            let dimensions = [("account", name)]
            let handle = AccountMetrics(
                slot: handles.count + 1, label: name,
                tokenValid: CoreMetrics.Gauge(label: "iamport_proxy_token_valid", dimensions: dimensions, factory: factory),
                tokenExpiresIn: CoreMetrics.Gauge(
                    label: "iamport_proxy_token_expires_in_seconds", dimensions: dimensions, factory: factory),
                renewalsAfterUnauthorized: CoreMetrics.Counter(
                    label: "iamport_proxy_token_renewals_after_401_total", dimensions: dimensions, factory: factory),
                replays: CoreMetrics.Counter(label: "iamport_proxy_replays_total", dimensions: dimensions, factory: factory))
            handles[name] = handle
            return handle
        }
    }

    /// The cache key of a request counter: account, status, method.
    static func requestCounterKey(status: Int, method: Method, account: AccountMetrics) -> Int {
        account.slot << 24 | (status & 0xFFFF) << 8 | Int(method.rawValue)
    }

    /// The counter for one status and method (and account, when labelled);
    /// callers cache it per loop.
    /// A refusal that selected no account has no `account` label; with
    /// labels on, it gets `account=""` (a family is labelled or not).
    func requestCounter(status: Int, method: Method, account: AccountMetrics? = nil) -> CoreMetrics.Counter {
        let key = account.map { Self.requestCounterKey(status: status, method: method, account: $0) }
            ?? (status & 0xFFFF) << 8 | Int(method.rawValue)
        let label = unlabelled == nil ? account?.label ?? "" : nil
        return requestCounters.withLock { counters in
            if let counter = counters[key] { return counter }
            var dimensions = [("status", String(status)), ("method", method.label)]
            if let label { dimensions.append(("account", label)) }
            let counter = CoreMetrics.Counter(label: "iamport_proxy_requests_total", dimensions: dimensions, factory: factory)
            counters[key] = counter
            return counter
        }
    }

    func tokenFetch(result: String, reason: String, account: AccountMetrics? = nil) {
        let label = unlabelled == nil ? account?.label ?? "" : nil
        let key = result + "/" + reason + "/" + (label ?? "")
        let counter = tokenCounters.withLock { counters in
            if let counter = counters[key] { return counter }
            var dimensions = [("result", result), ("reason", reason)]
            if let label { dimensions.append(("account", label)) }
            let counter = CoreMetrics.Counter(label: "iamport_proxy_token_fetches_total", dimensions: dimensions, factory: factory)
            counters[key] = counter
            return counter
        }
        counter.increment()
    }

    /// `iamport_proxy_config_reloads_total{result="success"|"failure"}`.
    public func configReload(succeeded: Bool) {
        let result = succeeded ? "success" : "failure"
        let counter = reloadCounters.withLock { counters in
            if let counter = counters[result] { return counter }
            let counter = CoreMetrics.Counter(
                label: "iamport_proxy_config_reloads_total", dimensions: [("result", result)], factory: factory)
            counters[result] = counter
            return counter
        }
        counter.increment()
    }

    public func render() -> [UInt8] {
        var text = registry.emitToBuffer()
        requestDuration.render(into: &text)
        upstreamDuration.render(into: &text)
        return text
    }
}

/// One account's metric handles.
struct AccountMetrics: Sendable {
    /// Distinguishes the account in per-loop counter caches (0: unlabelled).
    let slot: Int
    /// The `account` label; nil without a config file.
    let label: String?
    let tokenValid: CoreMetrics.Gauge
    let tokenExpiresIn: CoreMetrics.Gauge
    let renewalsAfterUnauthorized: CoreMetrics.Counter
    let replays: CoreMetrics.Counter
}

extension Method {
    var label: String {
        switch self {
        case .get: return "GET"
        case .head: return "HEAD"
        case .post: return "POST"
        case .put: return "PUT"
        case .delete: return "DELETE"
        case .patch: return "PATCH"
        case .options: return "OPTIONS"
        case .trace: return "TRACE"
        case .connect: return "CONNECT"
        case .other: return "other"
        }
    }
}
