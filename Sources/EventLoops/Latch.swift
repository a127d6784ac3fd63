import Dispatch
import Synchronization

/// A value handed once from one thread to another that waits for it: a loop
/// task's completion at start-up and shutdown, the outcome of `check`. The
/// first `set` wins; `wait` blocks (no polling) until it, or the timeout.
public final class Latch<Value: Sendable>: Sendable {
    private let value = Mutex<Value?>(nil)
    private let arrived = DispatchSemaphore(value: 0)

    public init() {}

    public func set(_ newValue: Value) {
        let first = value.withLock { current -> Bool in
            guard current == nil else { return false }
            current = newValue
            return true
        }
        if first { arrived.signal() }
    }

    /// The value, once set; nil when `timeout` passes first.
    @discardableResult
    public func wait(timeout: Nanoseconds? = nil) -> Value? {
        if let timeout {
            guard arrived.wait(timeout: .now() + .nanoseconds(Int(min(timeout, .seconds(86_400))))) == .success
            else { return value.withLock { $0 } }
        } else {
            arrived.wait()
        }
        arrived.signal()  // later waits return at once
        return value.withLock { $0 }
    }
}

extension Latch where Value == Void {
    public func set() { set(()) }
}
