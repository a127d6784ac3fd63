import Testing
@testable import Upstream

final class FakeConnection: PoolableConnection, CustomStringConvertible {
    let name: String
    var isOpen = true
    init(_ name: String) { self.name = name }
    var description: String { name }
}

@Suite struct ConnectionPoolTests {
    private func pool(idleTimeout: UInt64 = 50 * second, capacity: Int = 8) -> ConnectionPool<FakeConnection> {
        ConnectionPool(idleTimeout: idleTimeout, capacity: capacity)
    }

    @Test func theMostRecentlyUsedConnectionIsTakenFirst() {
        var pool = pool()
        let a = FakeConnection("a"), b = FakeConnection("b"), c = FakeConnection("c")
        #expect(pool.park(a, now: 0, serverIdleLimit: nil) == nil)
        #expect(pool.park(b, now: 1, serverIdleLimit: nil) == nil)
        #expect(pool.park(c, now: 2, serverIdleLimit: nil) == nil)
        var closed: [FakeConnection] = []
        #expect(pool.take(now: 3, closing: { closed.append($0) }) === c)
        #expect(pool.take(now: 3, closing: { closed.append($0) }) === b)
        #expect(pool.take(now: 3, closing: { closed.append($0) }) === a)
        #expect(pool.take(now: 3, closing: { closed.append($0) }) == nil)
        #expect(closed.isEmpty)
    }

    @Test func aConnectionIsNotReusedPastTheIdleTimeout() {
        var pool = pool(idleTimeout: 50 * second)
        let a = FakeConnection("a")
        _ = pool.park(a, now: 10 * second, serverIdleLimit: nil)
        var closed: [FakeConnection] = []
        #expect(pool.take(now: 60 * second - 1, closing: { closed.append($0) }) === a)
        _ = pool.park(a, now: 10 * second, serverIdleLimit: nil)
        #expect(pool.take(now: 60 * second, closing: { closed.append($0) }) == nil)
        #expect(closed.map(\.name) == ["a"])
        #expect(pool.count == 0)
    }

    @Test func theServersKeepAliveTimeoutLessASecondBoundsReuse() {
        #expect(ConnectionPool<FakeConnection>.serverIdleLimit(keepAliveSeconds: 5) == 4 * second)
        #expect(ConnectionPool<FakeConnection>.serverIdleLimit(keepAliveSeconds: 1) == 0)
        #expect(ConnectionPool<FakeConnection>.serverIdleLimit(keepAliveSeconds: 0) == 0)
        #expect(ConnectionPool<FakeConnection>.serverIdleLimit(keepAliveSeconds: 999_999) == 3599 * second)
        var pool = pool(idleTimeout: 50 * second)
        let a = FakeConnection("a")
        let limit = ConnectionPool<FakeConnection>.serverIdleLimit(keepAliveSeconds: 5)
        _ = pool.park(a, now: 0, serverIdleLimit: limit)
        #expect(pool.nextSweep == 4 * second)
        #expect(pool.take(now: 4 * second - 1, closing: { _ in }) === a)
        _ = pool.park(a, now: 0, serverIdleLimit: limit)
        #expect(pool.take(now: 4 * second, closing: { _ in }) == nil)
        // A longer server limit than the idle timeout: the idle timeout rules.
        _ = pool.park(a, now: 0, serverIdleLimit: 3600 * second)
        #expect(pool.nextSweep == 4 * second, "the first due sweep stays until it runs")
        pool.sweep(now: 4 * second, closing: { _ in })
        #expect(pool.nextSweep == 50 * second)
    }

    @Test func aClosedConnectionIsNeverTaken() {
        var pool = pool()
        let a = FakeConnection("a"), b = FakeConnection("b")
        _ = pool.park(a, now: 0, serverIdleLimit: nil)
        _ = pool.park(b, now: 0, serverIdleLimit: nil)
        b.isOpen = false
        var closed: [FakeConnection] = []
        #expect(pool.take(now: 1, closing: { closed.append($0) }) === a)
        #expect(closed.map(\.name) == ["b"])
    }

    @Test func theSweepClosesTheConnectionsPastTheirLimitAndSaysWhenItIsNextDue() {
        var pool = pool(idleTimeout: 10 * second)
        let a = FakeConnection("a"), b = FakeConnection("b"), c = FakeConnection("c")
        #expect(pool.nextSweep == nil)
        _ = pool.park(a, now: 0, serverIdleLimit: nil)
        _ = pool.park(b, now: 5 * second, serverIdleLimit: nil)
        _ = pool.park(c, now: 7 * second, serverIdleLimit: nil)
        #expect(pool.nextSweep == 10 * second)
        var closed: [FakeConnection] = []
        pool.sweep(now: 10 * second, closing: { closed.append($0) })
        #expect(closed.map(\.name) == ["a"])
        #expect(pool.nextSweep == 15 * second)
        pool.sweep(now: 20 * second, closing: { closed.append($0) })
        #expect(closed.map(\.name) == ["a", "b", "c"])
        #expect(pool.nextSweep == nil)
        #expect(pool.count == 0)
    }

    @Test func theOldestConnectionLeavesAFullPool() {
        var pool = pool(capacity: 2)
        let a = FakeConnection("a"), b = FakeConnection("b"), c = FakeConnection("c")
        #expect(pool.park(a, now: 0, serverIdleLimit: nil) == nil)
        #expect(pool.park(b, now: 1, serverIdleLimit: nil) == nil)
        #expect(pool.park(c, now: 2, serverIdleLimit: nil) === a)
        #expect(pool.count == 2)
    }

    @Test func aConnectionTheServerClosedLeavesThePool() {
        var pool = pool()
        let a = FakeConnection("a"), b = FakeConnection("b")
        _ = pool.park(a, now: 0, serverIdleLimit: nil)
        _ = pool.park(b, now: 0, serverIdleLimit: nil)
        let removed = pool.remove(b)
        let removedAgain = pool.remove(b)
        #expect(removed)
        #expect(!removedAgain)
        #expect(pool.take(now: 1, closing: { _ in }) === a)
    }

    @Test func removeAllClosesEveryConnection() {
        var pool = pool()
        _ = pool.park(FakeConnection("a"), now: 0, serverIdleLimit: nil)
        _ = pool.park(FakeConnection("b"), now: 0, serverIdleLimit: nil)
        var closed: [String] = []
        pool.removeAll(closing: { closed.append($0.name) })
        #expect(closed == ["a", "b"])
        #expect(pool.count == 0)
        #expect(pool.nextSweep == nil)
    }
}
