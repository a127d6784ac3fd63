import Iamport
import Server
import Upstream

/// Everything the proxy is told at start.
public struct ProxyConfiguration: Sendable {
    public var server: Server.Configuration
    public var upstream: UpstreamConfiguration
    public var apiKey: Secret
    public var apiSecret: Secret
    /// When set, clients must present it (SPEC.md, "Drop-in for existing iamport SDKs").
    public var clientToken: Secret?
    public var allowList: AllowList
    /// Event loops; 0 means one per core.
    public var loopCount: Int

    public init(
        server: Server.Configuration, upstream: UpstreamConfiguration, apiKey: Secret, apiSecret: Secret,
        clientToken: Secret? = nil, allowList: AllowList = try! AllowList([]), loopCount: Int = 0
    ) {
        self.server = server
        self.upstream = upstream
        self.apiKey = apiKey
        self.apiSecret = apiSecret
        self.clientToken = clientToken
        self.allowList = allowList
        self.loopCount = loopCount
    }
}
