import CoreMetrics
import HTTP1
import Prometheus
import Synchronization

/// The proxy's metrics, through swift-metrics' API onto a swift-prometheus
/// registry of its own. Handles are made once and cached (making one takes
/// the registry's lock); recording is an atomic add or a histogram update.
public final class ProxyMetrics: Sendable {
    public let registry: PrometheusCollectorRegistry
    private let factory: PrometheusMetricsFactory
    let requestDuration: CoreMetrics.Timer
    let upstreamDuration: CoreMetrics.Timer
    let renewalsAfterUnauthorized: CoreMetrics.Counter
    let replays: CoreMetrics.Counter
    let openConnections: CoreMetrics.Gauge
    let tokenExpiresIn: CoreMetrics.Gauge
    let tokenValid: CoreMetrics.Gauge
    let upstreamConnections: CoreMetrics.Gauge
    private let requestCounters = Mutex<[Int: CoreMetrics.Counter]>([:])
    private let tokenCounters = Mutex<[String: CoreMetrics.Counter]>([:])

    public init() {
        let registry = PrometheusCollectorRegistry()
        var factory = PrometheusMetricsFactory(registry: registry)
        let latencyBuckets: [Duration] = [
            .microseconds(250), .microseconds(500), .milliseconds(1), .milliseconds(2), .milliseconds(5),
            .milliseconds(10), .milliseconds(25), .milliseconds(50), .milliseconds(100), .milliseconds(250),
            .milliseconds(500), .seconds(1), .seconds(2), .seconds(5), .seconds(10), .seconds(30),
        ]
        factory.durationHistogramBuckets = [
            "iamport_proxy_request_duration_seconds": latencyBuckets,
            "iamport_proxy_upstream_duration_seconds": latencyBuckets,
        ]
        self.registry = registry
        self.factory = factory
        requestDuration = CoreMetrics.Timer(label: "iamport_proxy_request_duration_seconds", factory: factory)
        upstreamDuration = CoreMetrics.Timer(label: "iamport_proxy_upstream_duration_seconds", factory: factory)
        renewalsAfterUnauthorized = CoreMetrics.Counter(
            label: "iamport_proxy_token_renewals_after_401_total", factory: factory)
        replays = CoreMetrics.Counter(label: "iamport_proxy_replays_total", factory: factory)
        openConnections = CoreMetrics.Gauge(label: "iamport_proxy_open_connections", factory: factory)
        tokenExpiresIn = CoreMetrics.Gauge(label: "iamport_proxy_token_expires_in_seconds", factory: factory)
        tokenValid = CoreMetrics.Gauge(label: "iamport_proxy_token_valid", factory: factory)
        upstreamConnections = CoreMetrics.Gauge(label: "iamport_proxy_upstream_connections_opened", factory: factory)
    }

    /// The counter for one status and method; callers cache it per loop.
    func requestCounter(status: Int, method: Method) -> CoreMetrics.Counter {
        let key = status << 8 | Int(method.rawValue)
        return requestCounters.withLock { counters in
            if let counter = counters[key] { return counter }
            let counter = CoreMetrics.Counter(
                label: "iamport_proxy_requests_total",
                dimensions: [("status", String(status)), ("method", method.label)], factory: factory)
            counters[key] = counter
            return counter
        }
    }

    func tokenFetch(result: String, reason: String) {
        let key = result + "/" + reason
        let counter = tokenCounters.withLock { counters in
            if let counter = counters[key] { return counter }
            let counter = CoreMetrics.Counter(
                label: "iamport_proxy_token_fetches_total", dimensions: [("result", result), ("reason", reason)],
                factory: factory)
            counters[key] = counter
            return counter
        }
        counter.increment()
    }

    public func render() -> [UInt8] {
        registry.emitToBuffer()
    }
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
