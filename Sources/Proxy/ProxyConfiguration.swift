import Iamport
import Server
import Upstream

/// Everything the proxy is told at start.
public struct ProxyConfiguration: Sendable {
    /// The shared listener and the limits every listener has.
    public var server: Server.Configuration
    /// Timeouts and limits of every upstream client; each account's base
    /// URL and CA file replace this one's.
    public var upstream: UpstreamConfiguration
    public var accounts: [AccountConfiguration]
    /// With a config file: accounts are named in logs, metrics and readiness.
    public var labelsAccounts: Bool
    /// Event loops; 0 means one per core.
    public var loopCount: Int

    /// One V1 account from the single-account settings (no config file).
    public init(
        server: Server.Configuration, upstream: UpstreamConfiguration, apiKey: Secret, apiSecret: Secret,
        clientToken: Secret? = nil, allowList: AllowList = try! AllowList([]), loopCount: Int = 0
    ) {
        self.server = server
        self.upstream = upstream
        self.accounts = [AccountConfiguration(
            name: "default", api: .v1, upstream: upstream.baseURL, caFile: upstream.caFile, apiKey: apiKey,
            apiSecret: apiSecret, clientToken: clientToken, allow: allowList)]
        self.labelsAccounts = false
        self.loopCount = loopCount
    }

    /// The accounts of a config file.
    public init(server: Server.Configuration, upstream: UpstreamConfiguration, accounts: [AccountConfiguration],
                loopCount: Int = 0) {
        self.server = server
        self.upstream = upstream
        self.accounts = accounts
        self.labelsAccounts = true
        self.loopCount = loopCount
    }
}
