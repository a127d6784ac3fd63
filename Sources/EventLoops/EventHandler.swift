#if canImport(Glibc)
import Glibc
#endif
import CSystem
import Synchronization

/// Something registered with an event loop for readiness of one descriptor.
public protocol EventHandler: AnyObject {
    /// Called on the loop's thread with the epoll event bits.
    func handleEvent(_ events: UInt32)
    /// Called about once a second with the loop's time, for timeouts.
    func checkDeadline(now: Nanoseconds)
}

/// Something with one deadline the loop watches without a timer entry (a
/// libcurl multi handle's timer changes with every request).
public protocol DeadlineSource: AnyObject {
    /// Monotonic nanoseconds, or nil for none.
    var nextDeadline: Nanoseconds? { get }
    /// Called on the loop once `nextDeadline` has passed.
    func deadlineReached()
}
