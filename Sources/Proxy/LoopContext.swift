import CoreMetrics
import EventLoops
import Upstream

typealias CoreMetricsCounter = CoreMetrics.Counter

/// The per-loop part of the proxy: the loop's upstream client and caches.
/// `@unchecked Sendable`: touched only on `loop`.
final class LoopContext: @unchecked Sendable {
    let loop: EventLoop
    let upstream: UpstreamClient
    var requestCounters: [Int: CoreMetricsCounter] = [:]
    var serial: UInt64 = 0

    init(loop: EventLoop, upstream: UpstreamClient) {
        self.loop = loop
        self.upstream = upstream
    }
}
