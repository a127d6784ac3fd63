#if canImport(Glibc)
import Glibc
#endif
import CSystem
import Dispatch
import Synchronization

/// Something registered with an event loop for readiness of one descriptor.
public protocol EventHandler: AnyObject {
    /// Called on the loop's thread with the epoll event bits.
    func handleEvent(_ events: UInt32)
    /// Called about once a second with the loop's time, for timeouts.
    func checkDeadline(now: UInt64)
}

extension EventHandler {
    public func checkDeadline(now: UInt64) {}
}

/// Something with one deadline the loop watches without a timer entry (a
/// libcurl multi handle's timer changes with every request).
public protocol DeadlineSource: AnyObject {
    /// Monotonic nanoseconds, or nil for none.
    var nextDeadline: UInt64? { get }
    /// Called on the loop once `nextDeadline` has passed.
    func deadlineReached()
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
    public private(set) var now: UInt64 = MonotonicClock.now()

    /// Which driver runs the loop (see `EventLoopEngine`).
    public let engine: EventLoopEngine
    // The Dispatch driver's parts: a serial queue, a read source on `epfd`, one
    // timer for the nearest deadline, and the thread draining the queue now
    // (pthread_t as UInt, 0 outside a drain) so that `inLoop` stays a cheap check.
    private var queue: DispatchQueue?
    private var readSource: DispatchSourceRead?
    private var timerSource: DispatchSourceTimer?
    private var armedDeadline: UInt64 = .max
    private let drainingThread = Atomic<UInt>(0)
    private var finished = false
    private var events = [epoll_event](repeating: epoll_event(), count: 256)
    private var socketSources: [Int32: SocketSources] = [:]

    /// Values kept per loop rather than per thread (a Dispatch-driven loop
    /// moves between threads); touched on the loop only, released at its stop.
    public var locals: [ObjectIdentifier: AnyObject] = [:]

    private static let currentKey: pthread_key_t = {
        var key = pthread_key_t()
        pthread_key_create(&key, nil)
        return key
    }()

    /// The loop running on the calling thread, if any.
    public static var current: EventLoop? {
        guard let raw = pthread_getspecific(currentKey) else { return nil }
        return Unmanaged<EventLoop>.fromOpaque(raw).takeUnretainedValue()
    }

    private func setCurrent(_ loop: EventLoop?) {
        pthread_setspecific(Self.currentKey, loop.map { Unmanaged.passUnretained($0).toOpaque() })
    }

    public static let readable = csystem_epollin
    public static let writable = csystem_epollout
    public static let hangup = csystem_epollhup | csystem_epollrdhup
    public static let error = csystem_epollerr
    public static let edgeTriggered = csystem_epollet

    public convenience init(index: Int) throws(SystemError) {
        try self.init(index: index, engine: .selected)
    }

    public init(index: Int, engine: EventLoopEngine) throws(SystemError) {
        self.index = index
        self.engine = engine
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
        if engine != .epoll {
            startDispatch()
            return
        }
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
        if engine != .epoll {
            stopDispatch()
            return
        }
        stopped.store(true, ordering: .releasing)
        wake()
        if let thread { pthread_join(thread, nil) }
        thread = nil
    }

    public var inLoop: Bool {
        if engine != .epoll {
            return drainingThread.load(ordering: .relaxed) == UInt(pthread_self())
        }
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
        if !wakePending.exchange(true, ordering: .acquiringAndReleasing) {
            // One queue item per batch of tasks, not one per task.
            if let queue { queue.async { self.drain { self.runPending() } } } else { wake() }
        }
    }

    private func wake() {
        var one: UInt64 = 1
        _ = write(wakeFD, &one, 8)
    }

    // MARK: - Descriptors (on the loop only)

    public func register(_ fd: Int32, events: UInt32, handler: EventHandler) throws(SystemError) {
        assertInLoop()
        if engine == .dispatchSockets {
            try addSocketSources(fd, events: events, handler: handler)
        } else {
            var ev = epoll_event(events: events, data: epoll_data_t(fd: fd))
            _ = try syscall("epoll_ctl(ADD)") { epoll_ctl(epfd, EPOLL_CTL_ADD, fd, &ev) }
        }
        let slot = Int(fd)
        assert(slot >= handlers.count || handlers[slot] == nil,
               "descriptor \(fd) was closed without being unregistered")
        if slot >= handlers.count { handlers.append(contentsOf: repeatElement(nil, count: slot + 1 - handlers.count + 64)) }
        handlers[slot] = handler
    }

    public func modify(_ fd: Int32, events: UInt32) throws(SystemError) {
        assertInLoop()
        if engine == .dispatchSockets {
            socketSources[fd]?.arm(events)
            return
        }
        var ev = epoll_event(events: events, data: epoll_data_t(fd: fd))
        _ = try syscall("epoll_ctl(MOD)") { epoll_ctl(epfd, EPOLL_CTL_MOD, fd, &ev) }
    }

    /// Removes `fd` from the loop; the caller closes it afterwards. Only
    /// the handler registered for `fd` can remove it: a handler holding a
    /// number that was closed under it and reused (a descriptor of another
    /// owner now) must not take that owner's registration away.
    /// - Returns: whether `handler` was the one registered.
    @discardableResult
    public func unregister(_ fd: Int32, handler: EventHandler) -> Bool {
        assertInLoop()
        guard fd >= 0, Int(fd) < handlers.count, handlers[Int(fd)] === handler else { return false }
        handlers[Int(fd)] = nil
        if engine == .dispatchSockets {
            socketSources.removeValue(forKey: fd)?.cancel()
            return true
        }
        _ = epoll_ctl(epfd, EPOLL_CTL_DEL, fd, nil)
        return true
    }

    /// The handler registered for `fd`, if any (for tests and assertions).
    public func handler(for fd: Int32) -> EventHandler? {
        assertInLoop()
        guard fd >= 0, Int(fd) < handlers.count else { return nil }
        return handlers[Int(fd)]
    }

    /// Every registered handler, for sweeps such as timeouts and shutdown.
    public func forEachHandler(_ body: (EventHandler) -> Void) {
        assertInLoop()
        for case let handler? in handlers { body(handler) }
    }

    // MARK: - Timers (on the loop only)

    public struct TimerID: Sendable, Hashable { let raw: UInt64 }

    @discardableResult
    public func schedule(at deadline: UInt64, _ task: @escaping () -> Void) -> TimerID {
        assertInLoop()
        return TimerID(raw: timers.schedule(at: deadline, task))
    }

    @discardableResult
    public func schedule(afterMilliseconds ms: Int, _ task: @escaping () -> Void) -> TimerID {
        schedule(at: MonotonicClock.now() &+ UInt64(max(0, ms)) &* 1_000_000, task)
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
        setCurrent(self)
        defer { setCurrent(nil) }
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
            if count > 0 { handle(events, count: Int(count)) }
            runPending()
            endIteration()
        }
        runPending()
    }

    private func handle(_ events: [epoll_event], count: Int) {
        for i in 0..<count {
            let ev = events[i]
            let fd = ev.data.fd
            if fd == wakeFD {
                var value: UInt64 = 0
                _ = read(wakeFD, &value, 8)
                continue
            }
            if Int(fd) < handlers.count, let handler = handlers[Int(fd)] {
                handler.handleEvent(ev.events)
            }
        }
    }

    /// Due timers, due deadline sources, then the hooks.
    private func endIteration() {
        let current = MonotonicClock.now()
        if !timers.isEmpty {
            for task in timers.popDue(now: current) { task() }
        }
        for source in deadlineSources {
            if let d = source.nextDeadline, d <= current { source.deadlineReached() }
        }
        for hook in iterationHooks { hook() }
    }

    private func nearestDeadline() -> UInt64? {
        var next = timers.nextDeadline()
        for source in deadlineSources {
            if let d = source.nextDeadline, d < (next ?? .max) { next = d }
        }
        return next
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

// MARK: - The Dispatch driver

extension EventLoop {
    private func startDispatch() {
        // A serial queue over a target of its own, so loops do not share one.
        let target = DispatchQueue(label: "iamport-proxy.loop-target.\(index)", qos: .userInitiated)
        let queue = DispatchQueue(label: "iamport-proxy.loop.\(index)", target: target)
        let read = DispatchSource.makeReadSource(fileDescriptor: epfd, queue: queue)
        read.setEventHandler { [unowned self] in self.drain { self.pollBatch() } }
        let timer = DispatchSource.makeTimerSource(flags: .strict, queue: queue)
        timer.setEventHandler { [unowned self] in
            self.drain { self.armedDeadline = .max }
        }
        self.queue = queue
        readSource = read
        timerSource = timer
        read.activate()
        timer.activate()
    }

    /// Runs `body` as the loop: marks the thread for `inLoop`, then ends the
    /// iteration as the epoll thread does and re-arms the timer.
    private func drain(_ body: () -> Void) {
        guard !finished else { return }
        drainingThread.store(UInt(pthread_self()), ordering: .relaxed)
        setCurrent(self)
        now = MonotonicClock.now()
        body()
        endIteration()
        rearm()
        setCurrent(nil)
        drainingThread.store(0, ordering: .relaxed)
    }

    /// Drains epoll without waiting; the read source fires again while more is ready.
    private func pollBatch() {
        var rounds = 0
        while rounds < 4 {
            rounds += 1
            let count = events.withUnsafeMutableBufferPointer { buf in
                epoll_wait(epfd, buf.baseAddress, Int32(buf.count), 0)
            }
            guard count > 0 else { return }
            handle(events, count: Int(count))
            if count < Int32(events.count) { return }
        }
    }

    /// Only an earlier deadline re-arms the timer: a later one (a libcurl
    /// timeout moving on with every request) waits for the armed one to fire,
    /// which then re-arms, so a busy loop does not reprogram its timer per request.
    private func rearm() {
        guard let next = nearestDeadline(), next < armedDeadline else { return }
        armedDeadline = next
        let current = MonotonicClock.now()
        let delay = next > current ? next - current : 0
        timerSource?.schedule(deadline: .now() + .nanoseconds(Int(min(delay, 3_600_000_000_000))),
                              leeway: .microseconds(200))
    }

    private func addSocketSources(_ fd: Int32, events: UInt32, handler: EventHandler) throws(SystemError) {
        // Sources watch a duplicate, closed when Dispatch lets go of it: the
        // caller closes `fd` right after unregistering, and a reused number
        // must not meet the old registration inside libdispatch.
        let watched = try syscall("dup") { dup(fd) }
        let sources = SocketSources(watched, queue: queue!)
        sources.read.setEventHandler { [unowned self] in
            self.drain { handler.handleEvent(Self.readable) }
        }
        sources.write.setEventHandler { [unowned self, unowned sources] in
            // Edge-triggered registrations want one writable event per arming.
            if sources.edge { sources.disarmWrite() }
            self.drain { handler.handleEvent(Self.writable) }
        }
        sources.read.activate()
        sources.arm(events)
        socketSources[fd] = sources
    }

    private func stopDispatch() {
        guard let queue, let readSource else { return }
        let done = Latch<Void>()
        readSource.setCancelHandler { done.set() }
        queue.async { [self] in
            drainingThread.store(UInt(pthread_self()), ordering: .relaxed)
            setCurrent(self)
            runPending()
            finished = true
            // What a thread would release at its exit (a log batch writes its lines).
            deadlineSources.removeAll()
            locals.removeAll()
            setCurrent(nil)
            drainingThread.store(0, ordering: .relaxed)
            self.timerSource?.cancel()
            self.readSource?.cancel()
        }
        // epfd closes in deinit: only after Dispatch has let go of it.
        if done.wait(seconds: 30) == nil {
            assertionFailure("event loop \(index) did not stop within 30 s")
        }
    }
}

/// How event loops are driven. The epoll threads are the product's engine;
/// the Dispatch driver is here to be measured beside them, chosen for a whole
/// process by the hidden variable IAMPORT_PROXY_TEST_LOOP_ENGINE=dispatch.
public enum EventLoopEngine: Sendable {
    /// A thread of our own per loop blocking in epoll_wait.
    case epoll
    /// A serial DispatchQueue per loop, with a read source on the epoll descriptor.
    case dispatch
    /// A prototype: the same queue, with a read and a write source per socket.
    case dispatchSockets

    public static let selected: EventLoopEngine = {
        guard let value = getenv("IAMPORT_PROXY_TEST_LOOP_ENGINE") else { return .epoll }
        switch String(cString: value) {
        case "dispatch": return .dispatch
        case "dispatch-sockets": return .dispatchSockets
        default: return .epoll
        }
    }()
}

/// One socket's read and write sources under the per-socket prototype.
private final class SocketSources {
    let read: DispatchSourceRead
    let write: DispatchSourceWrite
    private var writeArmed = false
    private var writeActivated = false
    private(set) var edge = false

    init(_ fd: Int32, queue: DispatchQueue) {
        read = DispatchSource.makeReadSource(fileDescriptor: fd, queue: queue)
        write = DispatchSource.makeWriteSource(fileDescriptor: fd, queue: queue)
        // The two share one registration inside libdispatch: the descriptor
        // closes after both have let go.
        var left = 2
        let release = { left -= 1; if left == 0 { close(fd) } }
        read.setCancelHandler(handler: release)
        write.setCancelHandler(handler: release)
    }

    /// Write interest follows the registration's writable bit.
    func arm(_ events: UInt32) {
        edge = events & EventLoop.edgeTriggered != 0
        let wanted = events & EventLoop.writable != 0
        if wanted && !writeArmed {
            writeArmed = true
            if writeActivated { write.resume() } else { writeActivated = true; write.activate() }
        } else if !wanted && writeArmed {
            disarmWrite()
        }
    }

    func disarmWrite() {
        guard writeArmed else { return }
        writeArmed = false
        write.suspend()
    }

    func cancel() {
        if !writeActivated { write.activate() }
        if !writeArmed && writeActivated { write.resume() }
        write.cancel()
        read.cancel()
    }
}
