import EventLoops
import Iamport
import Logging
import Server
import Synchronization
import Upstream

/// The assembled proxy: event loops, the upstream clients, each account's
/// token cache, the handlers and a server per listener (the shared one and
/// each account's own). Used by the executable and by tests.
public final class ProxyService: Sendable {
    public let group: EventLoopGroup
    /// The shared listener's server first, then each own listener's.
    public let servers: [Server]
    public let metrics: ProxyMetrics
    /// The shared listener's address.
    public let address: SocketAddress
    /// Each account with its own listener, by name: that listener's address.
    public let ownAddresses: [String: SocketAddress]
    let core: ProxyCore
    private let tokenSource: (any TokenSource)?
    /// Serialises reloads and numbers the generations.
    private let reloads = Mutex<UInt64>(1)

    /// The shared listener's server.
    public var server: Server { servers[0] }

    /// The token cache of the first V1 account in force (tests use it; a
    /// proxy of V2 accounts alone has none).
    public var tokens: TokenCache {
        guard let first = tokenCaches.first else { preconditionFailure("no V1 account is served") }
        return first
    }

    /// Builds and starts everything, and begins each V1 account's first
    /// token fetch in the background. `tokenSource` replaces the real
    /// getToken (tests only). `logSink`, when given, batches the loops'
    /// access lines (see `LogSink`).
    public init(configuration: ProxyConfiguration, logger: Logger, tokenSource: (any TokenSource)? = nil,
                logSink: LogSink? = nil) throws {
        let loops = configuration.loopCount > 0 ? configuration.loopCount : max(1, System.coreCount)
        let group = try EventLoopGroup(count: loops)
        let metrics = ProxyMetrics(labelsAccounts: configuration.labelsAccounts)
        let directory = UpstreamDirectory(template: configuration.upstream)
        let own = configuration.accounts.filter { !$0.isShared }
        // A placeholder until the accounts are made: they need the loops' contexts.
        let state = RoutingState(Routing(accounts: [], ownListenerAccounts: own.map(\.name), generation: 0))
        let contexts = group.loops.map { LoopContext(loop: $0, directory: directory, routing: state, metrics: metrics) }
        let core = ProxyCore(
            routing: state, metrics: metrics, logger: logger, contexts: contexts, directory: directory,
            labelsAccounts: configuration.labelsAccounts)
        self.group = group
        self.metrics = metrics
        self.core = core
        self.tokenSource = tokenSource
        let accounts = configuration.accounts.map { Self.serve($0, reusing: nil, core: core, group: group, source: tokenSource) }
        state.replace(Routing(accounts: accounts, ownListenerAccounts: own.map(\.name), generation: 1))
        if let logSink {
            for context in contexts {
                let started = Latch<Void>()
                context.loop.execute {
                    let batch = logSink.startBatching()
                    context.loop.addDeadlineSource(batch)
                    context.logBatch = batch
                    started.set()
                }
                started.wait()
            }
        }
        var servers: [Server] = []
        var ownAddresses: [String: SocketAddress] = [:]
        var shared: SocketAddress?
        // --max-connections bounds the process, whatever its listeners.
        let budget = ConnectionBudget(limit: configuration.server.maxConnections)
        do {
            let listeners = [(configuration.server.listen, nil as String?)] + own.map { ($0.listen!, $0.name) }
            for (index, (listen, name)) in listeners.enumerated() {
                var serverConfiguration = configuration.server
                serverConfiguration.listen = listen
                let handler = ProxyHandler(core: core, listener: ListenerID(index: index))
                let server = Server(configuration: serverConfiguration, group: group, handler: handler, budget: budget)
                let address = try server.start()
                servers.append(server)
                if let name { ownAddresses[name] = address } else { shared = address }
            }
        } catch {
            for server in servers { server.shutdown(grace: 0) }
            group.shutdown()
            throw error
        }
        core.servers.withLock { $0 = servers }
        self.servers = servers
        self.address = shared!
        self.ownAddresses = ownAddresses
        for account in accounts { account.tokens?.start() }
    }

    /// An account as served: a V1 account keeps `old`'s token cache when
    /// its credentials and upstream are the same, else gets a new one (not
    /// started).
    private static func serve(_ account: AccountConfiguration, reusing old: ServedAccount?, core: ProxyCore,
                              group: EventLoopGroup, source: (any TokenSource)?) -> ServedAccount {
        let slot = core.directory.slot(for: UpstreamKey(baseURL: account.upstream, caFile: account.caFile))
        let accountMetrics = core.metrics.account(account.name)
        var tokens: TokenCache?
        if account.api == .v1, let apiKey = account.apiKey {
            if let old, let kept = old.tokens, old.sharesCredentials(with: account) {
                tokens = kept
            } else {
                let contexts = core.contexts
                let fetcher = source ?? GetTokenClient(
                    loop: group.loops[0], upstream: { contexts[0].upstream(slot) }, apiKey: apiKey,
                    apiSecret: account.apiSecret)
                var accountLogger = core.logger
                if core.labelsAccounts { accountLogger[metadataKey: "account"] = "\(account.name)" }
                let logger = accountLogger
                let metrics = core.metrics
                tokens = TokenCache(source: fetcher, clock: SystemTokenClock(loop: group.loops[0])) { event in
                    ProxyService.report(event, logger: logger, metrics: metrics, account: accountMetrics)
                }
            }
        }
        return ServedAccount(configuration: account, tokens: tokens, upstreamSlot: slot, metrics: accountMetrics)
    }

    // MARK: - Reload

    /// Why a new configuration was not applied.
    public struct ReloadRefusal: Error, CustomStringConvertible, Sendable {
        public let description: String
    }

    /// What a reload changed, by account name.
    public struct ReloadSummary: Sendable, Equatable {
        public var added: [String] = []
        public var removed: [String] = []
        /// Accounts whose credentials changed: their token was dropped.
        public var newCredentials: [String] = []
        /// Accounts whose other settings (client token, allow list, tier) changed.
        public var changed: [String] = []

        public var isEmpty: Bool { added.isEmpty && removed.isEmpty && newCredentials.isEmpty && changed.isEmpty }
    }

    /// Applies a new set of accounts to requests that arrive from now on;
    /// requests in flight finish with the accounts they started with. The
    /// listeners are fixed at start: a set of accounts whose own listeners
    /// differ is refused and the old one stays.
    public func reload(_ accounts: [AccountConfiguration]) -> Result<ReloadSummary, ReloadRefusal> {
        reloads.withLock { generation in
            let current = core.routing.routing
            let own = accounts.filter { !$0.isShared }
            let before = current.ownListenerAccounts.map { name in (name, current.account(named: name)?.configuration.listen ?? "") }
            let after = own.map { ($0.name, $0.listen ?? "") }
            guard before.map(\.0) == after.map(\.0), before.map(\.1) == after.map(\.1) else {
                let describe = { (pairs: [(String, String)]) in
                    pairs.isEmpty ? "none" : pairs.map { "\($0.0) on \($0.1)" }.joined(separator: ", ")
                }
                return .failure(ReloadRefusal(description:
                    "the accounts' own listeners changed (from \(describe(before)) to \(describe(after))): listeners change only with a restart"))
            }
            if !core.labelsAccounts && accounts.count != 1 {
                return .failure(ReloadRefusal(description: "without a config file the proxy serves one account"))
            }
            var summary = ReloadSummary()
            var served: [ServedAccount] = []
            for account in accounts {
                let old = current.account(named: account.name)
                let next = Self.serve(account, reusing: old, core: core, group: group, source: tokenSource)
                served.append(next)
                if old == nil {
                    summary.added.append(account.name)
                } else if let old, old.tokens !== next.tokens || !old.sharesCredentials(with: account) {
                    summary.newCredentials.append(account.name)
                } else if let old, !Self.sameSettings(old.configuration, account) {
                    summary.changed.append(account.name)
                }
            }
            summary.removed = current.accounts.map(\.name).filter { name in !accounts.contains { $0.name == name } }
            generation += 1
            core.routing.replace(Routing(accounts: served, ownListenerAccounts: own.map(\.name), generation: generation))
            // Caches no account uses any more stop their background renewals;
            // new ones fetch their first token now.
            let kept = Set(served.compactMap { $0.tokens.map(ObjectIdentifier.init) })
            for old in current.accounts {
                if let tokens = old.tokens, !kept.contains(ObjectIdentifier(tokens)) { tokens.retire() }
            }
            let previous = Set(current.accounts.compactMap { $0.tokens.map(ObjectIdentifier.init) })
            for account in served {
                if let tokens = account.tokens, !previous.contains(ObjectIdentifier(tokens)) { tokens.start() }
            }
            return .success(summary)
        }
    }

    static func sameSettings(_ a: AccountConfiguration, _ b: AccountConfiguration) -> Bool {
        a.api == b.api && a.upstream == b.upstream && a.caFile == b.caFile && a.listen == b.listen
            && a.apiKey == b.apiKey && a.apiSecret == b.apiSecret && a.clientToken == b.clientToken
            && a.allow.rules.map(\.description) == b.allow.rules.map(\.description) && a.tier == b.tier
    }

    /// The names of the accounts in force.
    public var accountNames: [String] { core.routing.routing.accounts.map(\.name) }

    /// The token caches of the V1 accounts in force.
    public var tokenCaches: [TokenCache] { core.routing.routing.accounts.compactMap(\.tokens) }

    // MARK: - Shutdown

    /// Graceful stop: no new connections on any listener, in-flight answers
    /// finish (up to `grace` seconds in all), then the loops and libcurl are
    /// released.
    @discardableResult
    public func shutdown(grace: Nanoseconds = .seconds(10)) -> Bool {
        let started = MonotonicClock.now()
        for server in servers { server.beginShutdown() }
        var clean = true
        for server in servers {
            let spent = MonotonicClock.now() &- started
            if !server.finishShutdown(grace: grace > spent ? grace - spent : 0) { clean = false }
        }
        for routing in [core.routing.routing] {
            for account in routing.accounts { account.tokens?.retire() }
        }
        for context in core.contexts {
            let done = Latch<Void>()
            context.loop.execute {
                context.closeUpstreams()
                done.set()
            }
            done.wait()
        }
        group.shutdown()
        return clean
    }

    static func report(_ event: TokenEvent, logger: Logger, metrics: ProxyMetrics, account: AccountMetrics) {
        switch event {
        case .fetched(let reason, let lifetime, let newValue):
            metrics.tokenFetch(result: "success", reason: reason.rawValue, account: account)
            logger.info("token obtained", metadata: [
                "reason": "\(reason.rawValue)", "lifetime_s": "\(lifetime)", "new_token": "\(newValue)",
            ])
        case .notExtended(let retryIn):
            metrics.tokenFetch(result: "not_extended", reason: FetchReason.refresh.rawValue, account: account)
            logger.notice("token renewal did not extend the expiry; trying again closer to it", metadata: [
                "retry_in_s": "\(wholeSeconds(retryIn))"
            ])
        case .fetchFailed(let reason, let message, let retryIn):
            metrics.tokenFetch(result: "failure", reason: reason.rawValue, account: account)
            logger.error("token fetch failed", metadata: [
                "reason": "\(reason.rawValue)", "error": "\(message)", "retry_in_s": "\(wholeSeconds(retryIn))",
            ])
        case .droppedAfterUnauthorized:
            account.renewalsAfterUnauthorized.increment()
            logger.notice("the API refused the token (401); renewing it")
        case .confirmedAfterUnauthorized(let window):
            logger.notice("the renewal after a 401 returned the same token: 401s for it go back to clients as they are", metadata: [
                "for_s": "\(wholeSeconds(window))"
            ])
        }
    }
}
