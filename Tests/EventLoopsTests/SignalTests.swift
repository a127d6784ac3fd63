#if canImport(Glibc)
import Glibc
#endif
import Testing

@testable import EventLoops

@Suite struct SignalTests {
    @Test func aSubscriptionSeesItsSignal() {
        // Until libdispatch installs its own action (on its manager thread,
        // soon after the source starts) a signal meets this no-op one
        // rather than the default, which would end the test process.
        signal(SIGUSR2) { _ in }
        let seen = Latch<Void>()
        let subscription = ProcessSignals.subscribe(SIGUSR2) { seen.set() }
        defer { subscription.cancel() }
        var arrived = false
        for _ in 0..<100 where !arrived {
            kill(getpid(), SIGUSR2)
            arrived = seen.wait(seconds: 0.05) != nil
        }
        #expect(arrived)
    }
}
