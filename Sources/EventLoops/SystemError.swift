#if canImport(Glibc)
import Glibc
#endif

/// A failed system call: its name and errno.
public struct SystemError: Error, CustomStringConvertible, Sendable {
    public let call: String
    public let errno: Int32

    public init(_ call: String, errno: Int32 = Glibc.errno) {
        self.call = call
        self.errno = errno
    }

    public var description: String {
        "\(call) failed: \(String(cString: strerror(errno))) (errno \(errno))"
    }
}

/// Runs a system call, retrying EINTR; -1 becomes a thrown SystemError.
@inline(__always)
public func syscall<T: BinaryInteger>(_ name: String, _ body: () -> T) throws(SystemError) -> T {
    while true {
        let result = body()
        if result >= 0 { return result }
        let code = errno
        if code == EINTR { continue }
        throw SystemError(name, errno: code)
    }
}

public enum MonotonicClock {
    /// Nanoseconds on CLOCK_MONOTONIC, which never jumps with the wall clock.
    @inline(__always)
    public static func now() -> UInt64 {
        var ts = timespec()
        clock_gettime(CLOCK_MONOTONIC, &ts)
        return UInt64(ts.tv_sec) &* 1_000_000_000 &+ UInt64(ts.tv_nsec)
    }
}

/// SIGTERM and SIGINT taken synchronously: blocked before any thread starts
/// (threads inherit the mask), then awaited with sigwait. SIGPIPE is ignored
/// (a peer closing mid-write, or OpenSSL, can raise it).
public struct TerminationSignals {
    private var set = sigset_t()

    /// Call first thing in main, before any thread exists.
    public static func block() -> TerminationSignals {
        signal(SIGPIPE, SIG_IGN)
        var signals = TerminationSignals()
        sigemptyset(&signals.set)
        sigaddset(&signals.set, SIGTERM)
        sigaddset(&signals.set, SIGINT)
        pthread_sigmask(SIG_BLOCK, &signals.set, nil)
        return signals
    }

    /// Blocks until SIGTERM or SIGINT; returns which.
    public func wait() -> Int32 {
        var copy = set
        var received: Int32 = 0
        sigwait(&copy, &received)
        return received
    }
}
