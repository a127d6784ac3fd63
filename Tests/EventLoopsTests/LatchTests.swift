import Foundation
import Testing

@testable import EventLoops

@Suite struct LatchTests {
    @Test func theFirstValueSetIsTheOneEveryWaiterGets() {
        let latch = Latch<Int>()
        Thread {
            Thread.sleep(forTimeInterval: 0.05)
            latch.set(1)
            latch.set(2)
        }.start()
        #expect(latch.wait() == 1)
        #expect(latch.wait(timeout: 0) == 1, "a later wait returns at once")
    }

    @Test func aWaitWithATimeoutGivesUp() {
        let latch = Latch<Int>()
        let started = Date()
        #expect(latch.wait(timeout: .milliseconds(100)) == nil)
        #expect(Date().timeIntervalSince(started) >= 0.09)
    }
}
