#if canImport(Glibc)
import Glibc
#endif
import Synchronization
import Testing

@testable import EventLoops

@Suite struct SignalTests {
    static let kept = Mutex<[SignalSubscription]>([])

    @Test func aSubscriptionSeesItsSignal() {
        // Until libdispatch installs its own action (on its manager thread,
        // soon after the source starts) a signal meets this no-op one
        // rather than the default, which would end the test process.
        signal(SIGUSR2) { _ in }
        let seen = Latch<Void>()
        // Kept for the test process's life, as the proxy keeps its own:
        // cancelling a signal source while other tests' Dispatch sources are
        // busy is a path the product never takes.
        Self.kept.withLock { $0.append(ProcessSignals.subscribe(SIGUSR2) { seen.set() }) }
        var arrived = false
        for _ in 0..<100 where !arrived {
            kill(getpid(), SIGUSR2)
            arrived = seen.wait(timeout: .milliseconds(50)) != nil
        }
        #expect(arrived)
    }
}
