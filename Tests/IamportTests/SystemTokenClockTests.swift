import EventLoops
import Testing
@testable import Iamport

@Suite struct SystemTokenClockTests {
    @Test func workScheduledFromAnyThreadRunsOnTheLoopNotBeforeItsDeadline() throws {
        let group = try EventLoopGroup(count: 1)
        defer { group.shutdown() }
        let loop = group.loops[0]
        let clock = SystemTokenClock(loop: loop)
        let deadline = clock.now() + .milliseconds(20)
        let ran = Latch<(onLoop: Bool, at: Nanoseconds)>()
        clock.schedule(at: deadline) { ran.set((loop.inLoop, MonotonicClock.now())) }
        let run = try #require(ran.wait(timeout: .seconds(5)), "the timer never fired")
        #expect(run.onLoop)
        #expect(run.at >= deadline)
    }
}
