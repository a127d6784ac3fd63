#if canImport(Glibc)
import Glibc
#endif
import Dispatch

/// Signals taken through Dispatch signal sources (a signalfd under Linux's
/// libdispatch). A signalfd sees a signal only while no thread would take it
/// itself, so a signal is blocked in the main thread before any other thread
/// exists (threads inherit the mask): its default action, such as ending the
/// process, then never runs, and the sources alone see it.
public enum ProcessSignals {
    /// Blocks `signals` in the calling thread and in the threads it starts
    /// from now on. Call first thing in main.
    public static func block(_ signals: [Int32]) {
        var set = sigset_t()
        sigemptyset(&set)
        for signal in signals { sigaddset(&set, signal) }
        pthread_sigmask(SIG_BLOCK, &set, nil)
    }

    /// Calls `handler` every time `signal` arrives, on a serial queue of
    /// its own; `signal` must have been blocked (`block`) first. Keep the
    /// subscription as long as it is wanted; `cancel` ends it.
    public static func subscribe(_ signal: Int32, handler: @escaping @Sendable () -> Void) -> SignalSubscription {
        SignalSubscription(signal, handler: handler)
    }
}

/// One `ProcessSignals.subscribe`: a Dispatch signal source.
public final class SignalSubscription: Sendable {
    public let signal: Int32
    // Set once in init, then only cancelled (DispatchSource is thread-safe).
    nonisolated(unsafe) private let source: DispatchSourceSignal

    init(_ signal: Int32, handler: @escaping @Sendable () -> Void) {
        self.signal = signal
        source = DispatchSource.makeSignalSource(
            signal: signal, queue: DispatchQueue(label: "iamport-proxy.signal.\(signal)"))
        source.setEventHandler(handler: handler)
        source.activate()
    }

    public func cancel() {
        source.cancel()
    }

    deinit {
        source.cancel()
    }
}

/// SIGTERM and SIGINT, the signals that stop the process: blocked before
/// any thread starts, then taken by Dispatch signal sources that `wait`
/// waits on. SIGPIPE is ignored (a peer closing mid-write, or OpenSSL, can
/// raise it).
public struct TerminationSignals: Sendable {
    private let received = Latch<Int32>()
    private let subscriptions: [SignalSubscription]

    /// Call first thing in main, before any thread exists. `also` are
    /// further signals to block now, for `ProcessSignals.subscribe` later
    /// (a signal must be blocked before threads start).
    public static func block(also: [Int32] = []) -> TerminationSignals {
        signal(SIGPIPE, SIG_IGN)
        ProcessSignals.block([SIGTERM, SIGINT] + also)
        return TerminationSignals()
    }

    private init() {
        let received = self.received
        subscriptions = [SIGTERM, SIGINT].map { signal in
            ProcessSignals.subscribe(signal) { received.set(signal) }
        }
    }

    /// Blocks until SIGTERM or SIGINT; returns which (the first, if both).
    public func wait() -> Int32 {
        // Waiting for a signal is this thread's whole job: no deadline.
        received.wait() ?? SIGTERM
    }
}
