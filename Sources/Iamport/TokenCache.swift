import EventLoops
import Synchronization

/// Gets access tokens; the real one calls `POST /users/getToken`.
public protocol TokenSource: Sendable {
    /// Fetches a token; `completion` runs once, on any thread.
    func fetchToken(_ completion: @escaping @Sendable (Result<IssuedToken, TokenError>) -> Void)
}

/// Instants on the monotonic clock, and a way to run work at one. Tests drive a manual one.
public protocol TokenClock: Sendable {
    func now() -> Nanoseconds
    func schedule(at deadline: Nanoseconds, _ work: @escaping @Sendable () -> Void)
}

/// Why a token fetch started.
public enum FetchReason: String, Sendable {
    case startup, demand, refresh, retry, unauthorized
}

/// What the cache did, for logs and metrics. Never carries a token value.
public enum TokenEvent: Sendable, Equatable {
    case fetched(reason: FetchReason, lifetime: Int64, newValue: Bool)
    /// A renewal returned the same expiry; another try comes closer to expiry.
    case notExtended(retryIn: Nanoseconds)
    case fetchFailed(reason: FetchReason, message: String, retryIn: Nanoseconds)
    /// A 401 for the cached token dropped it.
    case droppedAfterUnauthorized
    /// The renewal after a 401 returned the same token: the API holds it
    /// valid, so 401s for it go back to clients for a while, without a fetch.
    case confirmedAfterUnauthorized(window: Nanoseconds)
}

/// What to do with a request the API refused with 401.
public enum UnauthorizedOutcome: Sendable {
    /// Send it again, once, with this token (another value than the refused one).
    case replay(Token)
    /// The API still holds the token valid: its 401 was about the request,
    /// not the token. It goes back to the client as it is.
    case passThrough
    /// No token could be had.
    case failed(TokenError)
}

public struct TokenStatus: Sendable {
    public var valid: Bool
    /// The time until the held token expires (local monotonic estimate); 0 once it has.
    public var expiresIn: Nanoseconds?
    public var lastError: String?
    public var fetching: Bool
    public var generation: UInt64
}

/// The one token everybody shares.
///
/// A lock-protected state machine: at most one fetch is in flight; callers
/// that need a token while none is valid park as waiters and are answered
/// together. Expiry is judged by the server's clock (`expired_at - now`,
/// counted from when the fetch started, on the local monotonic clock), so a
/// skewed local wall clock changes nothing. A background renewal starts when
/// the remaining life falls below min(60 s, lifetime / 5); a renewal that
/// does not move `expired_at` is tried again closer to expiry; a failing token
/// endpoint is retried with exponential backoff up to 30 s, and in between
/// demands fail fast instead of each causing a fetch. A 401 drops the token
/// and renews it once, however many requests saw it; when the renewal
/// returns the same value, the token is confirmed, and for `confirmationWindow`
/// (10 s) 401s for it are passed through without a fetch, so a client that
/// provokes 401s on purpose cannot drive getToken traffic.
public final class TokenCache: Sendable {
    public typealias Waiter = @Sendable (Result<Token, TokenError>) -> Void

    private struct State {
        var current: Token?
        var fetching: FetchReason?
        var waiters: [Waiter] = []
        var generation: UInt64 = 0
        var failures = 0
        /// No fetch on demand before this time (backoff after failures).
        var retryAt: Nanoseconds = 0
        var lastError: String?
        /// When the next background fetch is due (refresh ahead or retry).
        var nextFetchAt: Nanoseconds = .max
        var timerSerial: UInt64 = 0
        /// Waiters are parked until a dying token has expired (see minimumUsefulLifetime).
        var parked = false
        /// The token a 401 dropped, until the renewal it started completes:
        /// a renewal returning the same value confirms it.
        var refused: Token?
        /// The token value a renewal after a 401 returned unchanged, and until when
        /// 401s for it pass through without a fetch.
        var confirmed: (value: Secret, until: Nanoseconds)?
        /// Replaced by a reload: no more background renewals or retries.
        var retired = false
    }

    static let maxBackoff: Nanoseconds = .seconds(30)
    /// A token issued with less life than this is not used: the cache waits
    /// for it to expire and fetches a new one, instead of fetching again and
    /// again while the API keeps returning the dying token.
    static let minimumUsefulLifetime: Nanoseconds = .seconds(2)
    /// How long a token confirmed after a 401 stays confirmed.
    public static let confirmationWindow: Nanoseconds = .seconds(10)

    private let state = Mutex(State())
    private let source: any TokenSource
    private let clock: any TokenClock
    private let observer: @Sendable (TokenEvent) -> Void

    public init(source: any TokenSource, clock: any TokenClock, observer: @escaping @Sendable (TokenEvent) -> Void = { _ in }) {
        self.source = source
        self.clock = clock
        self.observer = observer
    }

    /// Fetches the first token in the background.
    public func start() {
        let begin = state.withLock { s -> Bool in
            guard s.fetching == nil else { return false }
            s.fetching = .startup
            return true
        }
        if begin { fetch(.startup) }
    }

    /// Ends background work: a reload replaced this cache (the account's
    /// credentials changed, or the account is gone). Requests that still
    /// hold it finish as they started; nothing is fetched ahead any more.
    public func retire() {
        state.withLock { s in
            s.retired = true
            s.nextFetchAt = .max
            s.timerSerial &+= 1
        }
    }

    /// The valid token, without waiting; nil when there is none. Starts a
    /// background renewal when one is due.
    public func validToken() -> Token? {
        let now = clock.now()
        var renew: FetchReason?
        let token = state.withLock { s -> Token? in
            guard let t = s.current, t.isUsable(at: now) else { return nil }
            renew = Self.backgroundFetchDue(&s, now: now)
            return t
        }
        if let renew { fetch(renew) }
        return token
    }

    /// Calls `completion` with a valid token: at once when one is held,
    /// after the single fetch in flight otherwise, or at once with an error
    /// while the token endpoint is backing off.
    public func withToken(_ completion: @escaping Waiter) {
        if let token = validToken() {
            completion(.success(token))
            return
        }
        let now = clock.now()
        let next = state.withLock { s -> Next in
            if let t = s.current, t.isUsable(at: now) { return .deliver(t) }
            s.current = nil
            return Self.joinOrStartFetch(&s, now: now, reason: .demand, completion)
        }
        proceed(next, reason: .demand, completion)
    }

    /// The API answered 401 to a request made with `used`. Replay with a
    /// token of another value when there is one (fetching once, however
    /// many callers, after dropping `used` if it is still the cached token);
    /// pass the 401 through when the API holds `used` valid: the renewal
    /// returned it again, now or within the confirmation window.
    public func renewAfterUnauthorized(used: Token, _ completion: @escaping @Sendable (UnauthorizedOutcome) -> Void) {
        let now = clock.now()
        var dropped = false
        let waiter: Waiter = { result in
            switch result {
            case .success(let token) where token.value == used.value: completion(.passThrough)
            case .success(let token): completion(.replay(token))
            case .failure(let error): completion(.failed(error))
            }
        }
        let next = state.withLock { s -> Next in
            if let t = s.current, t.isUsable(at: now) {
                if t.value != used.value { return .deliver(t) }
                if let c = s.confirmed, c.value == used.value, now < c.until { return .deliver(t) }
            }
            if let t = s.current, t.value == used.value {
                s.current = nil
                s.refused = t
                dropped = true
            }
            return Self.joinOrStartFetch(&s, now: now, reason: .unauthorized, waiter)
        }
        if dropped { observer(.droppedAfterUnauthorized) }
        proceed(next, reason: .unauthorized, waiter)
    }

    private enum Next { case deliver(Token), wait, fetch, fail(String) }

    /// With no usable token: join the fetch in flight, fail fast while the
    /// endpoint backs off, or start the one fetch. Under the lock.
    private static func joinOrStartFetch(_ s: inout State, now: Nanoseconds, reason: FetchReason, _ completion: @escaping Waiter) -> Next {
        if s.fetching != nil {
            s.waiters.append(completion)
            return .wait
        }
        if now < s.retryAt { return .fail(s.lastError ?? "token endpoint unavailable") }
        s.fetching = reason
        s.waiters.append(completion)
        return .fetch
    }

    /// Outside the lock: what `joinOrStartFetch` decided.
    private func proceed(_ next: Next, reason: FetchReason, _ completion: @escaping Waiter) {
        switch next {
        case .deliver(let t): completion(.success(t))
        case .wait: break
        case .fetch: fetch(reason)
        case .fail(let message): completion(.failure(.unavailable(message)))
        }
    }

    public func status() -> TokenStatus {
        let now = clock.now()
        return state.withLock { s in
            let valid = s.current.map { $0.isUsable(at: now) } ?? false
            return TokenStatus(
                valid: valid, expiresIn: s.current.map { now.timeLeft(until: $0.expiresAt) }, lastError: s.lastError,
                fetching: s.fetching != nil, generation: s.generation)
        }
    }

    // MARK: - Fetching

    /// Starts a background fetch when one is due and none runs.
    private static func backgroundFetchDue(_ s: inout State, now: Nanoseconds) -> FetchReason? {
        guard s.fetching == nil, !s.retired, now >= s.nextFetchAt else { return nil }
        let reason: FetchReason = s.current == nil ? .retry : .refresh
        s.fetching = reason
        s.nextFetchAt = .max
        return reason
    }

    private func fetch(_ reason: FetchReason) {
        let startedAt = clock.now()
        source.fetchToken { [self] result in
            self.fetchCompleted(result, reason: reason, startedAt: startedAt)
        }
    }

    private func fetchCompleted(_ result: Result<IssuedToken, TokenError>, reason: FetchReason, startedAt: Nanoseconds) {
        let now = clock.now()
        var events: [TokenEvent] = []
        var timer: (Nanoseconds, UInt64)?
        let (waiters, outcome) = state.withLock { s -> ([Waiter], Result<Token, TokenError>) in
            s.fetching = nil
            let waiters = s.waiters
            s.waiters = []
            var result = result
            if case .success(let issued) = result, issued.lifetime <= 0 {
                result = .failure(.unavailable("the token endpoint returned an expired token"))
            }
            if case .success(let issued) = result, Nanoseconds.seconds(issued.lifetime) < Self.minimumUsefulLifetime,
                s.current.map({ !$0.isUsable(at: now) }) ?? true
            {
                // The API handed back a token about to expire: keep the waiters
                // parked and ask again just after it has expired.
                s.fetching = .retry
                s.parked = true
                s.waiters = waiters
                s.timerSerial += 1
                let refetchAt = startedAt + .seconds(issued.lifetime) + .milliseconds(50)
                s.nextFetchAt = refetchAt
                timer = (refetchAt, s.timerSerial)
                events.append(.notExtended(retryIn: now.timeLeft(until: refetchAt)))
                return ([], .failure(.unavailable("")))
            }
            let refused = s.refused
            s.refused = nil
            switch result {
            case .success(let issued):
                s.failures = 0
                s.retryAt = 0
                s.lastError = nil
                let lifetime = Nanoseconds.seconds(issued.lifetime)  // clamped: it comes from the network
                let token: Token
                if let refused, refused.value == issued.accessToken {
                    // Same value after a 401: the API holds it valid. Keep it (its
                    // expiry too, unless this extended it), without a replay.
                    if issued.expiredAt <= refused.serverExpiredAt {
                        token = refused
                    } else {
                        token = Token(
                            value: refused.value, generation: refused.generation, expiresAt: startedAt + lifetime,
                            serverExpiredAt: issued.expiredAt, issuedLifetime: lifetime)
                    }
                    s.confirmed = (refused.value, now + Self.confirmationWindow)
                    events.append(.fetched(reason: reason, lifetime: issued.lifetime, newValue: false))
                    events.append(.confirmedAfterUnauthorized(window: Self.confirmationWindow))
                } else if let old = s.current, old.value == issued.accessToken {
                    if issued.expiredAt <= old.serverExpiredAt {
                        // Not extended (asked before the API's last minute): keep it and
                        // try again halfway to expiry, at most once a second.
                        let retryIn = max(.seconds(1), now.timeLeft(until: old.expiresAt) / 2)
                        s.nextFetchAt = now + retryIn
                        events.append(.notExtended(retryIn: retryIn))
                        s.timerSerial += 1
                        timer = (s.nextFetchAt, s.timerSerial)
                        return (waiters, .success(old))
                    }
                    token = Token(
                        value: old.value, generation: old.generation, expiresAt: startedAt + lifetime,
                        serverExpiredAt: issued.expiredAt, issuedLifetime: lifetime)
                    events.append(.fetched(reason: reason, lifetime: issued.lifetime, newValue: false))
                } else {
                    s.generation += 1
                    token = Token(
                        value: issued.accessToken, generation: s.generation, expiresAt: startedAt + lifetime,
                        serverExpiredAt: issued.expiredAt, issuedLifetime: lifetime)
                    events.append(.fetched(reason: reason, lifetime: issued.lifetime, newValue: true))
                }
                s.current = token
                s.nextFetchAt = max(token.refreshAt, now + .seconds(1))
                s.timerSerial += 1
                timer = (s.nextFetchAt, s.timerSerial)
                return (waiters, .success(token))
            case .failure(let error):
                s.failures += 1
                var backoff = Self.maxBackoff
                if s.failures < 6 { backoff = min(Self.maxBackoff, .seconds(1 << (s.failures - 1))) }
                s.retryAt = now + backoff
                s.lastError = error.message
                s.nextFetchAt = s.retryAt
                if let t = s.current, !t.isUsable(at: now) { s.current = nil }
                s.timerSerial += 1
                timer = (s.nextFetchAt, s.timerSerial)
                events.append(.fetchFailed(reason: reason, message: error.message, retryIn: backoff))
                return (waiters, .failure(error))
            }
        }
        for event in events { observer(event) }
        if let (at, serial) = timer {
            clock.schedule(at: at) { [self] in self.timerFired(serial) }
        }
        for waiter in waiters { waiter(outcome) }
    }

    private func timerFired(_ serial: UInt64) {
        let now = clock.now()
        var reschedule: Nanoseconds?
        let reason = state.withLock { s -> FetchReason? in
            guard serial == s.timerSerial, !s.retired, s.nextFetchAt != .max else { return nil }
            if now < s.nextFetchAt {
                reschedule = s.nextFetchAt  // fired early
                return nil
            }
            if s.parked {
                s.parked = false
                s.nextFetchAt = .max
                return .retry  // the parked re-fetch after a dying token
            }
            return Self.backgroundFetchDue(&s, now: now)
        }
        if let reschedule {
            clock.schedule(at: reschedule) { [self] in self.timerFired(serial) }
        }
        if let reason { fetch(reason) }
    }
}
