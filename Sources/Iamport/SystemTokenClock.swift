import EventLoops

/// The proxy's token clock: instants on `MonotonicClock`, and timers on one
/// event loop, so renewals and retries need no thread of their own.
public struct SystemTokenClock: TokenClock {
    private let loop: EventLoop

    public init(loop: EventLoop) {
        self.loop = loop
    }

    public func now() -> Nanoseconds { MonotonicClock.now() }

    /// From any thread: the timer is set on the loop, where its timers live.
    public func schedule(at deadline: Nanoseconds, _ work: @escaping @Sendable () -> Void) {
        let loop = self.loop
        loop.execute { loop.schedule(at: deadline) { work() } }
    }
}
