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
