import EventLoops
import Testing

/// The one unit of time: conversions from what people write, clamped.
@Suite struct NanosecondsTests {
    @Test func conversionsFromSecondsAndMilliseconds() {
        #expect(Nanoseconds.seconds(1.5) == 1_500_000_000)
        #expect(Nanoseconds.seconds(10) == 10_000_000_000)
        #expect(Nanoseconds.milliseconds(250) == 250_000_000)
        #expect(Nanoseconds.seconds(2).inSeconds == 2.0)
    }

    @Test func negativeAndHugeValuesAreClamped() {
        #expect(Nanoseconds.seconds(-3.0) == 0)
        #expect(Nanoseconds.seconds(Int64.min) == 0)
        #expect(Nanoseconds.milliseconds(-1) == 0)
        let century = Nanoseconds.seconds(100 * 365 * 86_400)
        #expect(Nanoseconds.seconds(Double.infinity) == century)
        #expect(Nanoseconds.seconds(Int64.max) == century)
        #expect(Nanoseconds.milliseconds(Int.max) == century)
        #expect(Nanoseconds.seconds(Double.nan) == 0)
    }

    @Test func millisecondsRoundUp() {
        #expect(Nanoseconds(1).inMilliseconds == 1)
        #expect(Nanoseconds(2_000_000).inMilliseconds == 2)
        #expect(Nanoseconds(2_000_001).inMilliseconds == 3)
        #expect(Nanoseconds.max.inMilliseconds > 0)
    }
}
