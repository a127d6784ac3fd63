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
            loop.schedule(after: .milliseconds(10)) { ran.add(1, ordering: .relaxed) }
        }
        for _ in 0..<200 where source.reached.load(ordering: .relaxed) == 0 { usleepShim(5_000) }
        #expect(ran.load(ordering: .relaxed) == 1)
        #expect(source.reached.load(ordering: .relaxed) == 1)
        #expect(!loop.inLoop)
    }

    @Test func timersRunInDeadlineOrderBesideDeadlineSources() throws {
        let loop = try EventLoop(index: 0)
        loop.start()
        defer { loop.stopAndJoin() }
        let source = CountingSource()
        let order = Mutex<[String]>([])
        let inLoop = Atomic<Bool>(false)
        let done = Latch<Void>()
        loop.execute {
            inLoop.store(loop.inLoop, ordering: .relaxed)
            loop.addDeadlineSource(source)
            source.nextDeadline = MonotonicClock.now() + 30_000_000
            loop.schedule(after: .milliseconds(40)) { order.withLock { $0.append("40") } }
            loop.schedule(after: .milliseconds(10)) { order.withLock { $0.append("10") } }
            loop.schedule(after: .milliseconds(60)) {
                order.withLock { $0.append("60") }
                done.set()
            }
        }
        #expect(done.wait(timeout: .seconds(5)) != nil)
        #expect(order.withLock { $0 } == ["10", "40", "60"])
        #expect(source.reached.load(ordering: .relaxed) == 1)
        let wasInLoop = inLoop.load(ordering: .relaxed)
        #expect(wasInLoop)
        #expect(!loop.inLoop)
    }

    /// A delay past the clock's range is "never", not a wrapped deadline in the past.
    @Test func aDelayPastTheClocksRangeNeverFires() throws {
        let group = try EventLoopGroup(count: 1)
        defer { group.shutdown() }
        let loop = group.loops[0]
        let early = Atomic<Bool>(false)
        let done = Latch<Void>()
        loop.execute {
            loop.schedule(after: .max) { early.store(true, ordering: .relaxed) }
            loop.schedule(after: .milliseconds(30)) { done.set() }
        }
        #expect(done.wait(timeout: .seconds(5)) != nil)
        let firedEarly = early.load(ordering: .relaxed)
        #expect(!firedEarly)
    }

    /// A socket closed under its registration (as libcurl may close its
    /// own) is forgotten without an epoll error, and its number can be
    /// registered again by the next owner.
    @Test func aRegistrationWhoseSocketIsGoneIsForgotten() throws {
        let group = try EventLoopGroup(count: 1)
        defer { group.shutdown() }
        let loop = group.loops[0]
        let reRegistered = Latch<Bool>()
        loop.execute {
            do {
                let first = try Socket.stream(family: AF_INET)
                let handler = NoEvents()
                try loop.register(first, events: EventLoop.readable, handler: handler)
                first.close()
                loop.forget(first, handler: handler)
                let next = try Socket.stream(family: AF_INET)  // usually the same number
                defer { next.close() }
                let owner = NoEvents()
                try loop.register(next, events: EventLoop.readable, handler: owner)
                // The old handler cannot take the new owner's registration away.
                let staleRemoved = loop.unregister(next, handler: handler)
                reRegistered.set(!staleRemoved && loop.unregister(next, handler: owner))
            } catch {
                reRegistered.set(false)
            }
        }
        #expect(reRegistered.wait(timeout: .seconds(5)) == true)
    }
}

final class NoEvents: EventHandler {
    func handleEvent(_ events: UInt32) {}
}

#if canImport(Glibc)
import Glibc
#endif
func usleepShim(_ micros: UInt32) { usleep(micros) }
