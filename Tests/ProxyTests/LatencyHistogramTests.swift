import EventLoops
import Foundation
@testable import Proxy
import Testing

@Suite struct LatencyHistogramTests {
    /// The series as Prometheus reads them: cumulative buckets, `+Inf` and
    /// `_count` equal, the sum in seconds, across the shards of several loops.
    @Test func shardsAddUpToCumulativeBuckets() {
        let histogram = LatencyHistogram(
            name: "t_seconds", bounds: [.microseconds(250), .milliseconds(1), .seconds(1)])
        let first = histogram.makeShard(for: nil)
        let second = histogram.makeShard(for: nil)
        first.record(.microseconds(100))  // le 0.00025
        first.record(.microseconds(250))  // on the bound: le 0.00025
        second.record(.microseconds(251))  // le 0.001
        second.record(.seconds(2))  // above every bound
        var out: [UInt8] = []
        histogram.render(into: &out)
        #expect(String(decoding: out, as: UTF8.self) == """
            # TYPE t_seconds histogram
            t_seconds_bucket{le="0.00025"} 2
            t_seconds_bucket{le="0.001"} 3
            t_seconds_bucket{le="1.0"} 3
            t_seconds_bucket{le="+Inf"} 4
            t_seconds_sum 2.000601
            t_seconds_count 4

            """)
    }

    @Test(arguments: [
        (0, "0.0"), (250_000, "0.00025"), (1_000_000_000, "1.0"), (30_000_000_000, "30.0"),
        (1_500_000_001, "1.500000001"), (12_345_678, "0.012345678"),
    ] as [(UInt64, String)])
    func secondsAreWrittenAsTheRegistryWroteThem(nanoseconds: UInt64, text: String) {
        #expect(LatencyHistogram.seconds(nanoseconds) == text)
    }

    /// Each loop writes its shard while the exposition reads: the totals
    /// are exact once the writers stop, and every reading is consistent.
    @Test func readingWhileLoopsRecordIsConsistent() throws {
        let histogram = LatencyHistogram(name: "t_seconds", bounds: [.milliseconds(1)])
        let group = try EventLoopGroup(count: 2)
        defer { group.shutdown() }
        let done = DispatchGroup()
        for loop in group.loops {
            done.enter()
            loop.execute {
                let shard = histogram.makeShard(for: loop)
                for n in 0..<50_000 { shard.record(n % 2 == 0 ? .microseconds(10) : .milliseconds(2)) }
                done.leave()
            }
        }
        while done.wait(timeout: .now()) == .timedOut {
            var out: [UInt8] = []
            histogram.render(into: &out)
            let lines = String(decoding: out, as: UTF8.self).split(separator: "\n")
            let value = { (prefix: String) in Int(lines.first { $0.hasPrefix(prefix) }!.split(separator: " ")[1])! }
            #expect(value("t_seconds_bucket{le=\"0.001\"}") <= value("t_seconds_bucket{le=\"+Inf\"}"))
            #expect(value("t_seconds_bucket{le=\"+Inf\"}") == value("t_seconds_count "))
        }
        var out: [UInt8] = []
        histogram.render(into: &out)
        let text = String(decoding: out, as: UTF8.self)
        #expect(text.contains("t_seconds_bucket{le=\"0.001\"} 50000\n"))
        #expect(text.contains("t_seconds_count 100000\n"))
        #expect(text.contains("t_seconds_sum 100.5\n"))
    }
}
