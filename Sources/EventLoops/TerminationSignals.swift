#if canImport(Glibc)
import Glibc
#endif

/// SIGTERM, SIGINT and SIGHUP taken synchronously: blocked before any
/// thread starts (threads inherit the mask), then awaited with sigwait, so
/// SIGHUP (reload) never ends the process. SIGPIPE is ignored (a peer
/// closing mid-write, or OpenSSL, can raise it).
public struct TerminationSignals {
    private var set = sigset_t()

    /// Call first thing in main, before any thread exists.
    public static func block() -> TerminationSignals {
        signal(SIGPIPE, SIG_IGN)
        var signals = TerminationSignals()
        sigemptyset(&signals.set)
        sigaddset(&signals.set, SIGTERM)
        sigaddset(&signals.set, SIGINT)
        sigaddset(&signals.set, SIGHUP)
        pthread_sigmask(SIG_BLOCK, &signals.set, nil)
        return signals
    }

    /// Blocks until SIGTERM, SIGINT or SIGHUP; returns which.
    public func wait() -> Int32 {
        var copy = set
        var received: Int32 = 0
        sigwait(&copy, &received)
        return received
    }
}
