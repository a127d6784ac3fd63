import Iamport

/// Which PortOne API an account speaks (SPEC.md, "Several accounts").
public enum AccountAPI: String, Sendable, CaseIterable {
    /// iamport, api.iamport.kr: getToken and `Authorization: Bearer`.
    case v1
    /// PortOne V2, api.portone.io: `Authorization: PortOne <API secret>`.
    case v2

    /// The upstream an account of this API has unless it names another.
    public var defaultUpstream: String {
        switch self {
        case .v1: "https://api.iamport.kr"
        case .v2: "https://api.portone.io"
        }
    }
}

/// One account of a multi-account proxy, resolved: its secrets read, its
/// allow list parsed, every default applied. Immutable once built.
public struct AccountConfiguration: Sendable {
    /// `[a-z0-9-]{1,32}`, unique: names the account in logs, metrics, readiness.
    public var name: String
    public var api: AccountAPI
    public var upstream: String
    public var caFile: String?
    /// A listener of this account alone; nil: the shared listener.
    public var listen: String?
    /// V1 only (V2 has no key).
    public var apiKey: Secret?
    public var apiSecret: Secret
    /// What clients present; on the shared listener it also selects the account.
    public var clientToken: Secret?
    public var allow: AllowList
    /// The `Tier` header added when the client sent none.
    public var tier: String?

    public init(
        name: String, api: AccountAPI, upstream: String? = nil, caFile: String? = nil, listen: String? = nil,
        apiKey: Secret? = nil, apiSecret: Secret, clientToken: Secret? = nil,
        allow: AllowList = try! AllowList([]), tier: String? = nil
    ) {
        self.name = name
        self.api = api
        self.upstream = upstream ?? api.defaultUpstream
        self.caFile = caFile
        self.listen = listen
        self.apiKey = apiKey
        self.apiSecret = apiSecret
        self.clientToken = clientToken
        self.allow = allow
        self.tier = tier
    }

    /// Whether the account is served on the shared listener.
    public var isShared: Bool { listen == nil }
}
