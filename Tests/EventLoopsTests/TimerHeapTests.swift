import Synchronization
import Testing

@testable import EventLoops

@Suite struct TimerHeapTests {
    @Test func firesInDeadlineOrder() {
        var heap = TimerHeap()
        var fired: [Int] = []
        for (n, deadline) in [50, 10, 40, 20, 30].enumerated() {
            _ = heap.schedule(at: UInt64(deadline)) { fired.append(n) }
        }
        for task in heap.popDue(now: 35) { task() }
        #expect(fired == [1, 3, 4])
        #expect(heap.nextDeadline() == 40)
    }

    @Test func theNextDeadlineIsTheEarliestLiveOne() {
        var heap = TimerHeap()
        let first = heap.schedule(at: 10) {}
        let second = heap.schedule(at: 20) {}
        _ = heap.schedule(at: 30) {}
        #expect(heap.nextDeadline() == 10)
        heap.cancel(first)
        #expect(heap.nextDeadline() == 20)
        heap.cancel(second)
        _ = heap.schedule(at: 25) {}
        #expect(heap.nextDeadline() == 25)
    }

    /// Random schedules, cancels and pops against a plain list of the live deadlines.
    @Test func theNextDeadlineAgreesWithAListOfLiveTimers() {
        var random = SystemRandomNumberGenerator()
        var heap = TimerHeap()
        var live: [UInt64: UInt64] = [:]
        var now: UInt64 = 0
        for _ in 0..<20_000 {
            switch Int.random(in: 0..<10, using: &random) {
            case 0..<5:
                let deadline = now + UInt64.random(in: 1...1_000, using: &random)
                live[heap.schedule(at: deadline) {}] = deadline
            case 5..<8:
                if let id = live.keys.randomElement(using: &random) {
                    heap.cancel(id)
                    live[id] = nil
                }
            default:
                now += UInt64.random(in: 0...300, using: &random)
                _ = heap.popDue(now: now)
                live = live.filter { $0.value > now }
            }
            #expect(heap.nextDeadline() == live.values.min())
        }
    }

    @Test func cancellingOftenDoesNotGrowTheHeap() {
        var heap = TimerHeap()
        var live: [UInt64] = []
        for n in 0..<100_000 {
            let id = heap.schedule(at: UInt64(1_000_000 + n)) {}
            if n % 100 == 0 { live.append(id) } else { heap.cancel(id) }
        }
        #expect(heap.entryCount < 4 * live.count + 64, "\(heap.entryCount) entries for \(live.count) live timers")
        var count = 0
        for _ in heap.popDue(now: .max) { count += 1 }
        #expect(count == live.count)
    }
}

final class CountingSource: DeadlineSource, @unchecked Sendable {
    var nextDeadline: UInt64?
    let reached = Atomic<Int>(0)
    func deadlineReached() {
        nextDeadline = nil
        reached.add(1, ordering: .relaxed)
    }
}
