import EventLoops
import HTTP1
import Iamport
import Synchronization
import Upstream

/// One account as the proxy serves it: its configuration and what lives
/// with it. Immutable; a reload makes new ones (keeping the token cache of
/// an account whose credentials did not change).
final class ServedAccount: Sendable {
    let configuration: AccountConfiguration
    /// V1: the account's access token. V2 has none (its secret is sent as it is).
    let tokens: TokenCache?
    /// V2: `Authorization: PortOne <API secret>`. Empty for V1.
    let secretAuthorizationLine: [UInt8]
    /// `Tier: <tier>`, added when the client sent none.
    let tierLine: [UInt8]?
    /// The account's upstream client on each loop (`LoopContext.upstream`).
    let upstreamSlot: Int
    /// `host[:port]` of the upstream: an absolute-form target must name it.
    let upstreamAuthority: [UInt8]
    let metrics: AccountMetrics

    var api: AccountAPI { configuration.api }
    var name: String { configuration.name }
    /// The name in logs; nil without a config file.
    var label: String? { metrics.label }

    init(configuration: AccountConfiguration, tokens: TokenCache?, upstreamSlot: Int, metrics: AccountMetrics) {
        self.configuration = configuration
        self.tokens = tokens
        self.upstreamSlot = upstreamSlot
        self.metrics = metrics
        self.upstreamAuthority = UpstreamConfiguration(baseURL: configuration.upstream).authority.map(ASCII.lower)
        self.secretAuthorizationLine = configuration.api == .v2
            ? configuration.apiSecret.reveal { Array("Authorization: PortOne \($0)".utf8) } : []
        self.tierLine = configuration.tier.map { Array("Tier: \($0)".utf8) }
    }

    /// Whether the request may be served for this account: it carries the
    /// client token when the account has one.
    func admits(_ head: RequestHead) -> Bool {
        guard let token = configuration.clientToken else { return true }
        return ClientCredential.presents(token, in: head, api: api)
    }

    /// Whether a reload can keep this account's token cache for `other`:
    /// the same credentials at the same upstream.
    func sharesCredentials(with other: AccountConfiguration) -> Bool {
        let mine = configuration
        return mine.api == other.api && mine.apiKey == other.apiKey && mine.apiSecret == other.apiSecret
            && mine.upstream == other.upstream && mine.caFile == other.caFile
    }
}

/// Where an upstream client is: its base URL and CA file.
struct UpstreamKey: Hashable, Sendable {
    var baseURL: String
    var caFile: String?
}

/// Every upstream the process has reached, each with a slot number that
/// indexes the loops' clients. Slots are never reused, so a request that
/// started before a reload still finds its client.
final class UpstreamDirectory: Sendable {
    private struct State {
        var keys: [UpstreamKey] = []
        var clients: [UpstreamClient] = []
    }

    /// Timeouts and limits every upstream client shares.
    let template: UpstreamConfiguration
    private let state = Mutex(State())

    init(template: UpstreamConfiguration) {
        self.template = template
    }

    func slot(for key: UpstreamKey) -> Int {
        state.withLock { s in
            if let slot = s.keys.firstIndex(of: key) { return slot }
            s.keys.append(key)
            return s.keys.count - 1
        }
    }

    func configuration(slot: Int) -> UpstreamConfiguration {
        let key = state.withLock { $0.keys[slot] }
        var configuration = template
        configuration.baseURL = UpstreamConfiguration(baseURL: key.baseURL).baseURL
        configuration.caFile = key.caFile
        return configuration
    }

    /// Records a client a loop made, for the metrics and for shutdown.
    func made(_ client: UpstreamClient) {
        state.withLock { $0.clients.append(client) }
    }

    var clients: [UpstreamClient] { state.withLock { $0.clients } }

    var connectionsOpened: Int { clients.reduce(0) { $0 + $1.connectionsOpened } }
}

/// Which listener a handler serves: the shared one (0) or an account's own.
/// Listeners are fixed at start; reloads keep them.
struct ListenerID: Hashable, Sendable {
    let index: Int
    static let shared = ListenerID(index: 0)
}

/// One generation of the configuration: the accounts and who serves what.
final class Routing: Sendable {
    let accounts: [ServedAccount]
    let selector: AccountSelector
    /// For each own listener (by `ListenerID.index - 1`), the name of its account.
    let ownListenerAccounts: [String]
    /// The same as indexes into `accounts`, found once, not per request.
    private let ownListenerIndexes: [Int?]
    let generation: UInt64

    init(accounts: [ServedAccount], ownListenerAccounts: [String], generation: UInt64) {
        self.accounts = accounts
        self.selector = AccountSelector(accounts.map(\.configuration))
        self.ownListenerAccounts = ownListenerAccounts
        self.ownListenerIndexes = ownListenerAccounts.map { name in accounts.firstIndex { $0.name == name } }
        self.generation = generation
    }

    func account(named name: String) -> ServedAccount? {
        accounts.first { $0.name == name }
    }

    /// The listener as the selector knows it.
    func selectorListener(_ listener: ListenerID) -> AccountListener? {
        guard listener.index > 0 else { return .shared }
        return ownListenerIndexes[listener.index - 1].map { .own($0) }
    }

    /// The account that serves a request arriving on `listener` (its client
    /// token not yet checked), or nil when none does.
    func select(_ head: RequestHead, on listener: ListenerID) -> ServedAccount? {
        guard let where_ = selectorListener(listener) else { return nil }
        let index = selector.select(listener: where_) { account in
            guard let token = account.clientToken else { return false }
            return ClientCredential.presents(token, in: head, api: account.api)
        }
        return index.map { accounts[$0] }
    }

    /// The API whose error shape a listener's answers take before an
    /// account is chosen: its one account's, else V1's (SPEC: "a request
    /// that selects no account: 401 in the V1 envelope").
    func shape(of listener: ListenerID) -> AccountAPI {
        if listener.index > 0 {
            return ownListenerIndexes[listener.index - 1].map { accounts[$0].api } ?? .v1
        }
        return selector.sharedCount == 1 ? accounts[selector.sharedIndexes[0]].api : .v1
    }
}

/// The configuration in force, replaced whole by a reload. Loops keep the
/// generation they last saw and take the new one when it changes: one
/// relaxed atomic load per request.
final class RoutingState: Sendable {
    private let current: Mutex<Routing>
    private let generation: Atomic<UInt64>

    init(_ routing: Routing) {
        current = Mutex(routing)
        generation = Atomic(routing.generation)
    }

    var routing: Routing { current.withLock { $0 } }
    var currentGeneration: UInt64 { generation.load(ordering: .acquiring) }

    func replace(_ routing: Routing) {
        current.withLock { $0 = routing }
        generation.store(routing.generation, ordering: .releasing)
    }
}
