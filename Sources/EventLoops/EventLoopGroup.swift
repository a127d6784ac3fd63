import Synchronization

/// A fixed set of event loops, about one per core.
public final class EventLoopGroup: Sendable {
    public let loops: [EventLoop]
    private let nextIndex = Atomic<Int>(0)

    public init(count: Int) throws(SystemError) {
        var loops: [EventLoop] = []
        for i in 0..<max(1, count) { loops.append(try EventLoop(index: i)) }
        self.loops = loops
        for loop in loops { loop.start() }
    }

    /// Round-robin choice, for spreading connections.
    public func next() -> EventLoop {
        let i = nextIndex.wrappingAdd(1, ordering: .relaxed).oldValue
        return loops[i % loops.count]
    }

    public func shutdown() {
        for loop in loops { loop.stopAndJoin() }
    }
}
