import CoreMetrics
import EventLoops
import Upstream

typealias CoreMetricsCounter = CoreMetrics.Counter

/// The per-loop part of the proxy: the loop's upstream clients (one per
/// upstream the accounts reach), the routing it last saw, and caches.
/// `@unchecked Sendable`: touched only on `loop`.
final class LoopContext: @unchecked Sendable {
    let loop: EventLoop
    private let directory: UpstreamDirectory
    private let routingState: RoutingState
    /// By `ServedAccount.upstreamSlot`; made on first use.
    private var upstreams: [UpstreamClient?] = []
    private var cachedRouting: Routing
    var requestCounters: [Int: CoreMetricsCounter] = [:]
    /// The counter `requestCounters` gave last, by its key.
    var lastRequestCounter: (key: Int, counter: CoreMetricsCounter?) = (-1, nil)
    /// The loop thread's access-log batch, when lines are batched.
    var logBatch: LogBatch?
    var serial: UInt64 = 0
    /// This loop's shards of the latency histograms.
    let requestDurations: LatencyHistogram.Shard
    let upstreamDurations: LatencyHistogram.Shard

    init(loop: EventLoop, directory: UpstreamDirectory, routing: RoutingState, metrics: ProxyMetrics) {
        self.loop = loop
        self.directory = directory
        self.routingState = routing
        self.cachedRouting = routing.routing
        requestDurations = metrics.requestDuration.makeShard(for: loop)
        upstreamDurations = metrics.upstreamDuration.makeShard(for: loop)
    }

    /// The configuration in force: the one this loop saw last, unless a
    /// reload replaced it since.
    var routing: Routing {
        if routingState.currentGeneration != cachedRouting.generation { cachedRouting = routingState.routing }
        return cachedRouting
    }

    func upstream(_ slot: Int) -> UpstreamClient {
        if slot < upstreams.count, let client = upstreams[slot] { return client }
        if slot >= upstreams.count { upstreams.append(contentsOf: repeatElement(nil, count: slot + 1 - upstreams.count)) }
        let client = UpstreamClient(loop: loop, configuration: directory.configuration(slot: slot))
        directory.made(client)
        upstreams[slot] = client
        return client
    }

    /// Closes every upstream client of the loop; on the loop.
    func closeUpstreams() {
        for case let client? in upstreams { client.close() }
        upstreams.removeAll()
    }
}
