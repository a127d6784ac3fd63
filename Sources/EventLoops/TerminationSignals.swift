#if canImport(Glibc)
import Glibc
#endif
import Dispatch
import Synchronization

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

/// SIGTERM and SIGINT, which stop the process, and SIGHUP, which reloads
/// it: blocked before any thread starts, so that SIGHUP never ends the
/// process, then taken by Dispatch signal sources and handed to `wait` in
/// the order they came. SIGPIPE is ignored (a peer closing mid-write, or
/// OpenSSL, can raise it).
public struct TerminationSignals: Sendable {
    private let arrived = Arrivals()
    private let subscriptions: [SignalSubscription]

    /// Call first thing in main, before any thread exists.
    public static func block() -> TerminationSignals {
        signal(SIGPIPE, SIG_IGN)
        ProcessSignals.block(handled)
        return TerminationSignals()
    }

    private static let handled = [SIGTERM, SIGINT, SIGHUP]

    private init() {
        let arrived = self.arrived
        subscriptions = Self.handled.map { signal in
            ProcessSignals.subscribe(signal) { arrived.add(signal) }
        }
    }

    /// Blocks until SIGTERM, SIGINT or SIGHUP; returns which.
    public func wait() -> Int32 {
        arrived.next()
    }
}

/// Signals received and not yet returned by `wait`; one of a kind waits at
/// a time, as a blocked signal stays pending once however often it is sent.
private final class Arrivals: Sendable {
    private let queue = Mutex<[Int32]>([])
    private let ready = DispatchSemaphore(value: 0)

    func add(_ signal: Int32) {
        let added = queue.withLock { queue -> Bool in
            if queue.contains(signal) { return false }
            queue.append(signal)
            return true
        }
        if added { ready.signal() }
    }

    func next() -> Int32 {
        // Waiting for a signal is the calling thread's whole job: no deadline.
        ready.wait()
        return queue.withLock { $0.removeFirst() }
    }
}
