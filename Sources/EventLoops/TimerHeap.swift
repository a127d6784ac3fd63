/// One event loop's timers: a binary min-heap of deadlines. Cancelled timers
/// are dropped lazily when they reach the top. Touched only on its loop.
struct TimerHeap {
    private struct Entry {
        var deadline: Nanoseconds
        var id: UInt64
    }

    private var heap: [Entry] = []
    private var tasks: [UInt64: () -> Void] = [:]
    private var nextID: UInt64 = 1

    var isEmpty: Bool { tasks.isEmpty }

    mutating func schedule(at deadline: Nanoseconds, _ task: @escaping () -> Void) -> UInt64 {
        let id = nextID
        nextID += 1
        tasks[id] = task
        heap.append(Entry(deadline: deadline, id: id))
        siftUp(heap.count - 1)
        return id
    }

    mutating func cancel(_ id: UInt64) {
        guard tasks.removeValue(forKey: id) != nil else { return }
        // Cancelled entries leave the heap lazily; rebuild when they outnumber
        // the live ones, so that cancelling often cannot grow the heap.
        if heap.count > 64 && heap.count > 2 * tasks.count {
            heap.removeAll { tasks[$0.id] == nil }
            heap.sort { $0.deadline < $1.deadline }  // a sorted array is a valid heap
        }
    }

    var entryCount: Int { heap.count }

    /// The earliest live deadline.
    mutating func nextDeadline() -> Nanoseconds? {
        // Every live task has one entry and a cancelled one leaves its entry
        // behind, so equal counts mean the top is live: no lookup (a hash of
        // the id) on every turn of the loop.
        if heap.count == tasks.count { return heap.first?.deadline }
        while let top = heap.first {
            if tasks[top.id] != nil { return top.deadline }
            popTop()
        }
        return nil
    }

    /// Removes and returns the tasks due at `now`.
    mutating func popDue(now: Nanoseconds) -> [() -> Void] {
        var due: [() -> Void] = []
        while let top = heap.first, top.deadline <= now {
            popTop()
            if let task = tasks.removeValue(forKey: top.id) { due.append(task) }
        }
        return due
    }

    private mutating func popTop() {
        let last = heap.removeLast()
        if !heap.isEmpty {
            heap[0] = last
            siftDown(0)
        }
    }

    private mutating func siftUp(_ index: Int) {
        var i = index
        while i > 0 {
            let parent = (i - 1) / 2
            if heap[parent].deadline <= heap[i].deadline { break }
            heap.swapAt(parent, i)
            i = parent
        }
    }

    private mutating func siftDown(_ index: Int) {
        var i = index
        let n = heap.count
        while true {
            let l = 2 * i + 1
            let r = l + 1
            var smallest = i
            if l < n && heap[l].deadline < heap[smallest].deadline { smallest = l }
            if r < n && heap[r].deadline < heap[smallest].deadline { smallest = r }
            if smallest == i { return }
            heap.swapAt(i, smallest)
            i = smallest
        }
    }
}
