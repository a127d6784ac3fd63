// The fuzz build compiles this file with MonotonicClock.swift in one module.
#if canImport(EventLoops)
import EventLoops
#endif

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
    /// The instant on `MonotonicClock` at which the token expires.
    public let expiresAt: Nanoseconds
    /// The API's `expired_at`, to see whether a renewal extended it.
    public let serverExpiredAt: Int64
    /// The lifetime the token was issued with.
    public let issuedLifetime: Nanoseconds

    init(value: Secret, generation: UInt64, expiresAt: Nanoseconds, serverExpiredAt: Int64, issuedLifetime: Nanoseconds) {
        self.value = value
        self.generation = generation
        self.expiresAt = expiresAt
        self.serverExpiredAt = serverExpiredAt
        self.issuedLifetime = issuedLifetime
        self.authorizationLine = value.reveal { Array("Authorization: Bearer \($0)".utf8) }
    }

    /// Renew when the remaining lifetime falls below min(60 s, 1/5 of the issued lifetime).
    public var refreshAt: Nanoseconds {
        let lead = min(.seconds(60), issuedLifetime / 5)
        return expiresAt - min(lead, expiresAt)  // no underflow, whatever the token
    }

    /// Handed out until this close to expiry: 1 s, less for short-lived tokens.
    public var expiryMargin: Nanoseconds { min(.seconds(1), issuedLifetime / 10) }

    public func isUsable(at now: Nanoseconds) -> Bool { now + expiryMargin < expiresAt }
}

extension Nanoseconds {
    /// The time from this instant until `deadline`; 0 once it has passed.
    func timeLeft(until deadline: Nanoseconds) -> Nanoseconds { deadline > self ? deadline - self : 0 }
}

public enum TokenError: Error, Sendable, Equatable {
    /// No valid token: the message says why (the API's message, never the secret).
    case unavailable(String)

    public var message: String {
        switch self { case .unavailable(let m): return m }
    }
}
