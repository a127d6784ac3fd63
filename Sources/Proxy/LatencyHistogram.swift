import CSystem
import EventLoops
import Synchronization

/// A Prometheus histogram of durations that the event loops record into
/// without a lock. Each loop records into a shard of its own (`makeShard`,
/// once per loop): a bucket found by comparing integers, and three counters
/// that only that loop writes. The exposition sums the shards.
///
/// swift-prometheus's histogram took a lock per record and compared the
/// value with every bucket as a `Duration` (a 128-bit compare, called out
/// of line): about 850 instructions per record, two records per request.
/// The text is the one it wrote: cumulative `_bucket` series with `le` in
/// seconds, `_sum` in seconds, `_count`.
final class LatencyHistogram: Sendable {
    let name: String
    /// Upper bounds of the buckets, ascending.
    let bounds: [Nanoseconds]
    private let shards = Mutex<[Shard]>([])

    init(name: String, bounds: [Nanoseconds]) {
        precondition(zip(bounds, bounds.dropFirst()).allSatisfy { $0 < $1 }, "bounds ascend")
        self.name = name
        self.bounds = bounds
    }

    /// A shard for the loop that records into it. It is kept for the
    /// histogram's life: what it counted stays in the sums.
    func makeShard(for loop: EventLoop?) -> Shard {
        let shard = Shard(bounds: bounds, loop: loop)
        shards.withLock { $0.append(shard) }
        return shard
    }

    /// Written by one thread, read by the exposition.
    final class Shard: @unchecked Sendable {  // one writer; readers load with csystem_load
        let bounds: [Nanoseconds]
        /// The one thread that writes (checked in debug builds); nil in tests that record from one thread.
        private let loop: EventLoop?
        /// Per bucket (not cumulative), then above the last bound, the sum
        /// of the durations in nanoseconds, and the count.
        private let slots: UnsafeMutablePointer<UInt64>
        private var sumSlot: Int { bounds.count + 1 }
        private var countSlot: Int { bounds.count + 2 }

        init(bounds: [Nanoseconds], loop: EventLoop?) {
            self.bounds = bounds
            self.loop = loop
            slots = .allocate(capacity: bounds.count + 3)
            slots.initialize(repeating: 0, count: bounds.count + 3)
        }

        deinit { slots.deallocate() }

        /// From the shard's own thread only: another writer would lose counts.
        func record(_ duration: Nanoseconds) {
            loop?.assertInLoop()
            var bucket = 0
            while bucket < bounds.count && bounds[bucket] < duration { bucket += 1 }
            csystem_owner_add(slots + bucket, 1)
            csystem_owner_add(slots + sumSlot, duration)
            csystem_owner_add(slots + countSlot, 1)
        }

        fileprivate func load(_ slot: Int) -> UInt64 { csystem_load(slots + slot) }
    }

    /// The `# TYPE` line and the series, summed over the shards.
    func render(into out: inout [UInt8]) {
        let shards = self.shards.withLock { $0 }
        var perBucket = [UInt64](repeating: 0, count: bounds.count + 1)
        var sum: UInt64 = 0
        var count: UInt64 = 0
        for shard in shards {
            for i in 0...bounds.count { perBucket[i] &+= shard.load(i) }
            sum &+= shard.load(bounds.count + 1)
            count &+= shard.load(bounds.count + 2)
        }
        out.append(contentsOf: "# TYPE \(name) histogram\n".utf8)
        var cumulative: UInt64 = 0
        for (i, bound) in bounds.enumerated() {
            cumulative &+= perBucket[i]
            out.append(contentsOf: "\(name)_bucket{le=\"\(Self.seconds(bound))\"} \(cumulative)\n".utf8)
        }
        // Read while recording goes on, a shard's count may be ahead of its
        // buckets: +Inf is the count, and the buckets never exceed it.
        out.append(contentsOf: "\(name)_bucket{le=\"+Inf\"} \(max(count, cumulative &+ perBucket[bounds.count]))\n".utf8)
        out.append(contentsOf: "\(name)_sum \(Self.seconds(sum))\n".utf8)
        out.append(contentsOf: "\(name)_count \(max(count, cumulative &+ perBucket[bounds.count]))\n".utf8)
    }

    /// Seconds with the fraction's trailing zeros dropped, at least one
    /// digit after the point: 250 µs is `0.00025`, 1 s is `1.0`.
    static func seconds(_ duration: Nanoseconds) -> String {
        let whole = duration / 1_000_000_000
        var fraction = duration % 1_000_000_000
        guard fraction > 0 else { return "\(whole).0" }
        var digits = 9
        while fraction % 10 == 0 {
            fraction /= 10
            digits -= 1
        }
        let text = String(fraction)
        return "\(whole)." + String(repeating: "0", count: digits - text.count) + text
    }
}
