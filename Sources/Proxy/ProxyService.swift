import EventLoops
import Iamport
import Logging
import Server
import Upstream

/// The assembled proxy: event loops, one upstream client per loop, the token
/// cache, the handler and the server. Used by the executable and by tests.
public final class ProxyService: Sendable {
    public let group: EventLoopGroup
    public let server: Server
    public let tokens: TokenCache
    public let metrics: ProxyMetrics
    public let address: SocketAddress
    let handler: ProxyHandler
    private let upstreams: [UpstreamClient]

    /// Builds and starts everything, and begins the first token fetch in the
    /// background. `tokenSource` replaces the real getToken (tests only).
    /// `logSink`, when given, batches the loops' access lines (see `LogSink`).
    public init(configuration: ProxyConfiguration, logger: Logger, tokenSource: (any TokenSource)? = nil,
                logSink: LogSink? = nil) throws {
        let loops = configuration.loopCount > 0 ? configuration.loopCount : max(1, System.coreCount)
        let group = try EventLoopGroup(count: loops)
        let upstreams = group.loops.map { UpstreamClient(loop: $0, configuration: configuration.upstream) }
        let metrics = ProxyMetrics()
        let source = tokenSource ?? GetTokenClient(
            upstream: upstreams[0], apiKey: configuration.apiKey, apiSecret: configuration.apiSecret)
        let tokenLogger = logger
        let tokens = TokenCache(source: source, clock: SystemTokenClock()) { event in
            ProxyService.report(event, logger: tokenLogger, metrics: metrics)
        }
        let contexts = zip(group.loops, upstreams).map { LoopContext(loop: $0, upstream: $1) }
        if let logSink {
            for loop in group.loops {
                let started = Latch<Void>()
                loop.execute {
                    loop.addDeadlineSource(logSink.startBatching())
                    started.set()
                }
                started.wait()
            }
        }
        let handler = ProxyHandler(
            configuration: configuration, tokens: tokens, metrics: metrics, logger: logger, contexts: contexts,
            upstreamConnectionsOpened: { upstreams.reduce(0) { $0 + $1.connectionsOpened } })
        let server = Server(configuration: configuration.server, group: group, handler: handler)
        handler.attach(server)
        do {
            address = try server.start()
        } catch {
            group.shutdown()
            throw error
        }
        self.group = group
        self.server = server
        self.tokens = tokens
        self.metrics = metrics
        self.handler = handler
        self.upstreams = upstreams
        tokens.start()
    }

    /// Graceful stop: no new connections, in-flight answers finish (up to
    /// `grace` seconds), then the loops and libcurl are released.
    @discardableResult
    public func shutdown(grace: Double = 10) -> Bool {
        let clean = server.shutdown(grace: grace)
        for upstream in upstreams {
            let done = Latch<Void>()
            upstream.loop.execute {
                upstream.close()
                done.set()
            }
            done.wait()
        }
        group.shutdown()
        return clean
    }

    static func report(_ event: TokenEvent, logger: Logger, metrics: ProxyMetrics) {
        switch event {
        case .fetched(let reason, let lifetime, let newValue):
            metrics.tokenFetch(result: "success", reason: reason.rawValue)
            logger.info("token obtained", metadata: [
                "reason": "\(reason.rawValue)", "lifetime_s": "\(lifetime)", "new_token": "\(newValue)",
            ])
        case .notExtended(let retryIn):
            metrics.tokenFetch(result: "not_extended", reason: FetchReason.refresh.rawValue)
            logger.notice("token renewal did not extend the expiry; trying again closer to it", metadata: [
                "retry_in_s": "\(wholeSeconds(retryIn))"
            ])
        case .fetchFailed(let reason, let message, let retryIn):
            metrics.tokenFetch(result: "failure", reason: reason.rawValue)
            logger.error("token fetch failed", metadata: [
                "reason": "\(reason.rawValue)", "error": "\(message)", "retry_in_s": "\(wholeSeconds(retryIn))",
            ])
        case .droppedAfterUnauthorized:
            metrics.renewalsAfterUnauthorized.increment()
            logger.notice("the API refused the token (401); renewing it")
        case .confirmedAfterUnauthorized(let window):
            logger.notice("the renewal after a 401 returned the same token: 401s for it go back to clients as they are", metadata: [
                "for_s": "\(wholeSeconds(window))"
            ])
        }
    }
}
