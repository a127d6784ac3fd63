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
