import Synchronization
import Testing

@testable import EventLoops

@Suite struct EventLoopTests {
    @Test func executeTimersAndDeadlineSources() throws {
        let group = try EventLoopGroup(count: 1)
        defer { group.shutdown() }
        let loop = group.loops[0]
        let ran = Atomic<Int>(0)
        let source = CountingSource()
        loop.execute {
            loop.addDeadlineSource(source)
            source.nextDeadline = MonotonicClock.now() + 20_000_000
            loop.schedule(afterMilliseconds: 10) { ran.add(1, ordering: .relaxed) }
        }
        for _ in 0..<200 where source.reached.load(ordering: .relaxed) == 0 { usleepShim(5_000) }
        #expect(ran.load(ordering: .relaxed) == 1)
        #expect(source.reached.load(ordering: .relaxed) == 1)
        #expect(!loop.inLoop)
    }
}

#if canImport(Glibc)
import Glibc
#endif
func usleepShim(_ micros: UInt32) { usleep(micros) }
