#if canImport(Glibc)
import Glibc
#endif
import CSystem
import Synchronization

extension EventHandler {
    public func checkDeadline(now: Nanoseconds) {}
}

/// A thread running epoll, in the manner of SwiftNIO's EventLoop: every
/// descriptor registered here, and all state of the objects handling them, is
/// touched only on this thread. Other threads reach it through `execute`,
/// which queues a task and wakes the loop through an eventfd.
///
/// `@unchecked Sendable`: everything but `pending`, `wakeFD` and `thread` is
/// confined to the loop's own thread (checked by `assertInLoop`).
public final class EventLoop: @unchecked Sendable {
    public let index: Int
    private let epfd: Int32
    private let wakeFD: Int32
    private var handlers: [EventHandler?] = []
    private var timers = TimerHeap()
    private let pending = Mutex<[@Sendable () -> Void]>([])
    private let wakePending = Atomic<Bool>(false)
    private var thread: pthread_t?
    private let stopped = Atomic<Bool>(false)
    private var iterationHooks: [() -> Void] = []
    private var deadlineSources: [DeadlineSource] = []
    /// The monotonic time at the start of the current iteration.
    public private(set) var now: Nanoseconds = MonotonicClock.now()

    // The epoll bits as literals (Linux's ABI; a test checks them against
    // <sys/epoll.h>): a constant is folded where it is used, where a value
    // read from C is a lazy global, a `swift_once` on every use in the loop.
    public static let readable: UInt32 = 0x001  // EPOLLIN
    public static let writable: UInt32 = 0x004  // EPOLLOUT
    public static let hangup: UInt32 = 0x010 | 0x2000  // EPOLLHUP | EPOLLRDHUP
    public static let error: UInt32 = 0x008  // EPOLLERR
    public static let edgeTriggered: UInt32 = 0x8000_0000  // EPOLLET

    public init(index: Int) throws(SystemError) {
        self.index = index
        epfd = try syscall("epoll_create1") { epoll_create1(Int32(EPOLL_CLOEXEC)) }
        wakeFD = try syscall("eventfd") { eventfd(0, Int32(EFD_NONBLOCK | EFD_CLOEXEC)) }
        var ev = epoll_event(events: Self.readable, data: epoll_data_t(fd: wakeFD))
        _ = try syscall("epoll_ctl") { epoll_ctl(epfd, EPOLL_CTL_ADD, wakeFD, &ev) }
    }

    deinit {
        close(wakeFD)
        close(epfd)
    }

    /// Starts the loop's thread.
    public func start() {
        let box = Unmanaged.passRetained(self).toOpaque()
        var tid = pthread_t()
        let rc = pthread_create(&tid, nil, { arg in
            let loop = Unmanaged<EventLoop>.fromOpaque(arg!).takeRetainedValue()
            loop.run()
            return nil
        }, box)
        precondition(rc == 0, "pthread_create failed: \(rc)")
        thread = tid
    }

    /// Stops the loop after the current iteration and waits for its thread.
    public func stopAndJoin() {
        stopped.store(true, ordering: .releasing)
        wake()
        if let thread { pthread_join(thread, nil) }
        thread = nil
    }

    public var inLoop: Bool {
        guard let thread else { return false }
        return pthread_equal(pthread_self(), thread) != 0
    }

    @inline(__always)
    public func assertInLoop(file: StaticString = #fileID, line: UInt = #line) {
        assert(inLoop, "not on event loop \(index)", file: file, line: line)
    }

    /// Runs `task` on the loop's thread, soon. Safe from any thread.
    public func execute(_ task: @escaping @Sendable () -> Void) {
        pending.withLock { $0.append(task) }
        if !wakePending.exchange(true, ordering: .acquiringAndReleasing) { wake() }
    }

    private func wake() {
        var one: UInt64 = 1
        // Fails only when the counter is at its maximum: the loop is awake then.
        let written = write(wakeFD, &one, 8)
        assert(written == 8 || errno == EAGAIN, "eventfd write: \(SystemError("write", errno: errno))")
    }

    // MARK: - Descriptors (on the loop only)

    public func register(_ socket: Socket, events: UInt32, handler: EventHandler) throws(SystemError) {
        assertInLoop()
        let fd = socket.descriptor
        var ev = epoll_event(events: events, data: epoll_data_t(fd: fd))
        _ = try syscall("epoll_ctl(ADD)") { epoll_ctl(epfd, EPOLL_CTL_ADD, fd, &ev) }
        let slot = Int(fd)
        assert(slot >= handlers.count || handlers[slot] == nil,
               "descriptor \(fd) was closed without being unregistered")
        if slot >= handlers.count { handlers.append(contentsOf: repeatElement(nil, count: slot + 1 - handlers.count + 64)) }
        handlers[slot] = handler
    }

    public func modify(_ socket: Socket, events: UInt32) throws(SystemError) {
        assertInLoop()
        var ev = epoll_event(events: events, data: epoll_data_t(fd: socket.descriptor))
        _ = try syscall("epoll_ctl(MOD)") { epoll_ctl(epfd, EPOLL_CTL_MOD, socket.descriptor, &ev) }
    }

    /// Removes `socket` from the loop; the caller closes it afterwards. Only
    /// the handler registered for it can remove it: a handler holding a
    /// number that was closed under it and reused (a descriptor of another
    /// owner now) must not take that owner's registration away.
    /// - Returns: whether `handler` was the one registered.
    @discardableResult
    public func unregister(_ socket: Socket, handler: EventHandler) -> Bool {
        assertInLoop()
        let slot = Int(socket.descriptor)
        guard slot < handlers.count, handlers[slot] === handler else { return false }
        handlers[slot] = nil
        // Every caller unregisters before the descriptor is closed, so the
        // kernel still knows it: a failure here is a bug of ours.
        let rc = epoll_ctl(epfd, EPOLL_CTL_DEL, socket.descriptor, nil)
        assert(rc == 0, "epoll_ctl(DEL) of \(socket): \(SystemError("epoll_ctl", errno: errno))")
        return true
    }

    /// Drops `handler`'s registration of a number the kernel no longer
    /// knows as it was (closed without being unregistered, and perhaps
    /// reused since): the epoll entry went with the old file, so only the
    /// slot is cleared. For libcurl's sockets, which it may close on its own.
    public func forget(_ socket: Socket, handler: EventHandler) {
        assertInLoop()
        let slot = Int(socket.descriptor)
        guard slot < handlers.count, handlers[slot] === handler else { return }
        handlers[slot] = nil
        _ = epoll_ctl(epfd, EPOLL_CTL_DEL, socket.descriptor, nil)  // ENOENT or EBADF: already gone
    }

    /// Every registered handler, for sweeps such as timeouts and shutdown.
    public func forEachHandler(_ body: (EventHandler) -> Void) {
        assertInLoop()
        for case let handler? in handlers { body(handler) }
    }

    // MARK: - Timers (on the loop only)

    public struct TimerID: Sendable, Hashable { let raw: UInt64 }

    @discardableResult
    public func schedule(at deadline: Nanoseconds, _ task: @escaping () -> Void) -> TimerID {
        assertInLoop()
        return TimerID(raw: timers.schedule(at: deadline, task))
    }

    @discardableResult
    public func schedule(after delay: Nanoseconds, _ task: @escaping () -> Void) -> TimerID {
        let (deadline, overflow) = MonotonicClock.now().addingReportingOverflow(delay)
        return schedule(at: overflow ? .max : deadline, task)
    }

    public func cancel(_ timer: TimerID) {
        assertInLoop()
        timers.cancel(timer.raw)
    }

    /// Watches `source`'s deadline from now on; on the loop.
    public func addDeadlineSource(_ source: DeadlineSource) {
        assertInLoop()
        deadlineSources.append(source)
    }

    public func removeDeadlineSource(_ source: DeadlineSource) {
        assertInLoop()
        deadlineSources.removeAll { $0 === source }
    }

    /// Work to run at the end of every iteration (batching writes such as logs).
    public func addIterationHook(_ hook: @escaping () -> Void) {
        assertInLoop()
        iterationHooks.append(hook)
    }

    // MARK: - The loop

    private func run() {
        var events = [epoll_event](repeating: epoll_event(), count: 256)
        while !stopped.load(ordering: .acquiring) {
            var timeout: Int32 = -1
            var next = timers.nextDeadline()
            for source in deadlineSources {
                if let d = source.nextDeadline, d < (next ?? .max) { next = d }
            }
            if let deadline = next {
                let current = MonotonicClock.now()
                timeout = deadline <= current ? 0 : Int32(min((deadline - current + 999_999) / 1_000_000, 60_000))
            }
            let count = events.withUnsafeMutableBufferPointer { buf in
                epoll_wait(epfd, buf.baseAddress, Int32(buf.count), timeout)
            }
            now = MonotonicClock.now()
            if count > 0 {
                for i in 0..<Int(count) {
                    let ev = events[i]
                    let fd = ev.data.fd
                    if fd == wakeFD {
                        var value: UInt64 = 0
                        // Resets the counter; EAGAIN when another wake-up already did.
                        let n = read(wakeFD, &value, 8)
                        assert(n == 8 || errno == EAGAIN, "eventfd read: \(SystemError("read", errno: errno))")
                        continue
                    }
                    if Int(fd) < handlers.count, let handler = handlers[Int(fd)] {
                        handler.handleEvent(ev.events)
                    }
                }
            }
            runPending()
            let current = MonotonicClock.now()
            if !timers.isEmpty {
                for task in timers.popDue(now: current) { task() }
            }
            for source in deadlineSources {
                if let d = source.nextDeadline, d <= current { source.deadlineReached() }
            }
            for hook in iterationHooks { hook() }
        }
        runPending()
    }

    private func runPending() {
        wakePending.store(false, ordering: .releasing)
        let tasks = pending.withLock { tasks -> [@Sendable () -> Void] in
            if tasks.isEmpty { return [] }
            let taken = tasks
            tasks.removeAll(keepingCapacity: true)
            return taken
        }
        for task in tasks { task() }
    }
}
