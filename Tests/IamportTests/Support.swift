import EventLoops
import Synchronization
@testable import Iamport

/// A clock the test moves by hand; scheduled work runs when the time comes.
final class ManualClock: TokenClock {
    private struct State {
        var now: Nanoseconds = .seconds(1000)
        var tasks: [(at: Nanoseconds, work: @Sendable () -> Void)] = []
    }
    private let state = Mutex(State())

    func now() -> Nanoseconds { state.withLock { $0.now } }

    func schedule(at deadline: Nanoseconds, _ work: @escaping @Sendable () -> Void) {
        state.withLock { $0.tasks.append((deadline, work)) }
    }

    var scheduledCount: Int { state.withLock { $0.tasks.count } }

    /// Moves time forward, running what falls due on the way, in order. The
    /// step is in seconds, as the tests read; a negative one moves the clock
    /// back (a test undoing a step past a deadline) and runs nothing.
    func advance(by seconds: Double) {
        let step = Nanoseconds.seconds(abs(seconds))
        let target = seconds < 0 ? now() - step : now() + step
        while true {
            let next = state.withLock { s -> (@Sendable () -> Void)? in
                guard let index = s.tasks.indices.min(by: { s.tasks[$0].at < s.tasks[$1].at }),
                    s.tasks[index].at <= target
                else { return nil }
                let task = s.tasks.remove(at: index)
                s.now = max(s.now, task.at)
                return task.work
            }
            guard let next else { break }
            next()
        }
        state.withLock { $0.now = target }
    }
}

/// A token source the test answers by hand, or automatically by a rule.
final class ScriptedSource: TokenSource {
    typealias Completion = @Sendable (Result<IssuedToken, TokenError>) -> Void
    private struct State {
        var pending: [Completion] = []
        var calls = 0
        var rule: (@Sendable (Int) -> Result<IssuedToken, TokenError>)?
    }
    private let state = Mutex(State())

    init(rule: (@Sendable (Int) -> Result<IssuedToken, TokenError>)? = nil) {
        state.withLock { $0.rule = rule }
    }

    func fetchToken(_ completion: @escaping Completion) {
        let rule = state.withLock { s -> (@Sendable (Int) -> Result<IssuedToken, TokenError>)? in
            s.calls += 1
            if s.rule == nil { s.pending.append(completion) }
            return s.rule
        }
        if let rule { completion(rule(calls)) }
    }

    var calls: Int { state.withLock { $0.calls } }
    var pendingCount: Int { state.withLock { $0.pending.count } }

    func setRule(_ rule: (@Sendable (Int) -> Result<IssuedToken, TokenError>)?) {
        state.withLock { $0.rule = rule }
    }

    /// Answers every fetch in flight.
    func complete(_ result: Result<IssuedToken, TokenError>) {
        let pending = state.withLock { s -> [Completion] in
            defer { s.pending = [] }
            return s.pending
        }
        for completion in pending { completion(result) }
    }
}

final class Collector<T: Sendable>: Sendable {
    private let items = Mutex<[T]>([])
    func add(_ item: T) { items.withLock { $0.append(item) } }
    var all: [T] { items.withLock { $0 } }
    var count: Int { items.withLock { $0.count } }
}

func issued(_ value: String, now: Int64 = 1_700_000_000, lifetime: Int64 = 1800) -> IssuedToken {
    IssuedToken(accessToken: Secret(value), serverNow: now, expiredAt: now + lifetime)
}

extension UnauthorizedOutcome {
    var isPassThrough: Bool { if case .passThrough = self { true } else { false } }
    var replayToken: Secret? { if case .replay(let token) = self { token.value } else { nil } }
}
