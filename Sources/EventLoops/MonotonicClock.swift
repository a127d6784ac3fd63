#if canImport(Glibc)
import Glibc
#endif

public enum MonotonicClock {
    /// Nanoseconds on CLOCK_MONOTONIC, which never jumps with the wall clock.
    @inline(__always)
    public static func now() -> UInt64 {
        var ts = timespec()
        clock_gettime(CLOCK_MONOTONIC, &ts)
        return UInt64(ts.tv_sec) &* 1_000_000_000 &+ UInt64(ts.tv_nsec)
    }
}
