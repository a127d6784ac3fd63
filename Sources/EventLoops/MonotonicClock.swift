#if canImport(Glibc)
import Glibc
#endif

/// The project's one unit of time: a count of nanoseconds, for instants on
/// `MonotonicClock` and for lengths of time alike (timeouts, grace periods,
/// token lifetimes, backoff). Seconds appear only where people read or write
/// them: flags, the config file, logs and status answers.
public typealias Nanoseconds = UInt64

extension Nanoseconds {
    // Inlinable, so each use is specialised where it is written: a generic
    // call across modules went through the BinaryInteger witnesses, some 600
    // instructions for `.seconds(1)` on the request path.

    /// `count` seconds; negative counts are 0, and counts past a century are
    /// a century (values from flags, files and the network stay in range).
    @inlinable
    public static func seconds(_ count: Double) -> Nanoseconds {
        guard count > 0 else { return 0 }
        return count >= Self.centurySeconds ? Self.century : Nanoseconds(count * 1e9)
    }

    /// `count` seconds, clamped as `seconds(_: Double)`.
    @inlinable
    public static func seconds<I: BinaryInteger>(_ count: I) -> Nanoseconds {
        guard count > 0 else { return 0 }
        return count >= Int64(Self.centurySeconds) ? Self.century : Nanoseconds(count) * 1_000_000_000
    }

    /// `count` milliseconds, clamped as `seconds(_: Double)`.
    @inlinable
    public static func milliseconds<I: BinaryInteger>(_ count: I) -> Nanoseconds {
        guard count > 0 else { return 0 }
        return count >= Int64(Self.centurySeconds) * 1000 ? Self.century : Nanoseconds(count) * 1_000_000
    }

    /// `count` microseconds, clamped as `seconds(_: Double)`.
    @inlinable
    public static func microseconds<I: BinaryInteger>(_ count: I) -> Nanoseconds {
        guard count > 0 else { return 0 }
        return count >= Int64(Self.centurySeconds) * 1_000_000 ? Self.century : Nanoseconds(count) * 1_000
    }

    /// In seconds, for people (logs, status answers, flags' defaults).
    public var inSeconds: Double { Double(self) / 1e9 }

    /// In whole milliseconds, rounded up (for APIs counted in them: epoll, libcurl).
    public var inMilliseconds: Int { Int(clamping: self / 1_000_000 + (self % 1_000_000 == 0 ? 0 : 1)) }

    @usableFromInline static var centurySeconds: Double { 100 * 365 * 86_400 }
    @usableFromInline static var century: Nanoseconds { 100 * 365 * 86_400 * 1_000_000_000 }
}

public enum MonotonicClock {
    /// Now on CLOCK_MONOTONIC, which never jumps with the wall clock.
    @inline(__always)
    public static func now() -> Nanoseconds {
        var ts = timespec()
        clock_gettime(CLOCK_MONOTONIC, &ts)
        return UInt64(ts.tv_sec) &* 1_000_000_000 &+ UInt64(ts.tv_nsec)
    }
}
