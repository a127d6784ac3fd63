/// An access token as the API issued it, with its times on the API's clock.
public struct IssuedToken: Sendable, Equatable {
    public var accessToken: Secret
    /// The API server's `now` when it answered.
    public var serverNow: Int64
    public var expiredAt: Int64

    public init(accessToken: Secret, serverNow: Int64, expiredAt: Int64) {
        self.accessToken = accessToken
        self.serverNow = serverNow
        self.expiredAt = expiredAt
    }

    /// Seconds of life, judged by the server's clock alone. Saturates
    /// instead of trapping when the two times are far apart (the decoder
    /// refuses such answers; other sources must not crash the cache either).
    public var lifetime: Int64 {
        let (difference, overflow) = expiredAt.subtractingReportingOverflow(serverNow)
        guard overflow else { return difference }
        return expiredAt > serverNow ? .max : .min
    }
}

/// The token the proxy holds, with its expiry on the local monotonic clock.
public struct Token: Sendable {
    public let value: Secret
    /// Changes whenever the token's value changes (not when its expiry is extended).
    public let generation: UInt64
    /// The header line added to forwarded requests, prepared once per token.
    public let authorizationLine: [UInt8]
    /// Monotonic seconds at which the token expires.
    public let expiresAt: Double
    /// The API's `expired_at`, to see whether a renewal extended it.
    public let serverExpiredAt: Int64
    /// The lifetime the token was issued with, in seconds.
    public let issuedLifetime: Double

    init(value: Secret, generation: UInt64, expiresAt: Double, serverExpiredAt: Int64, issuedLifetime: Double) {
        self.value = value
        self.generation = generation
        self.expiresAt = expiresAt
        self.serverExpiredAt = serverExpiredAt
        self.issuedLifetime = issuedLifetime
        self.authorizationLine = value.reveal { Array("Authorization: Bearer \($0)".utf8) }
    }

    /// Renew when the remaining lifetime falls below min(60 s, 1/5 of the issued lifetime).
    public var refreshAt: Double { expiresAt - min(60, issuedLifetime / 5) }

    /// Handed out until this close to expiry: 1 s, less for short-lived tokens.
    public var expiryMargin: Double { min(1, issuedLifetime / 10) }

    public func isUsable(at now: Double) -> Bool { now < expiresAt - expiryMargin }
}

public enum TokenError: Error, Sendable, Equatable {
    /// No valid token: the message says why (the API's message, never the secret).
    case unavailable(String)

    public var message: String {
        switch self { case .unavailable(let m): return m }
    }
}
