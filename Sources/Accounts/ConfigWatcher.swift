#if canImport(Glibc)
import Glibc
#endif
import Dispatch
import EventLoops
import Synchronization

/// Notices changes to the config file and the secret and CA files it names,
/// without a signal (SPEC.md, "Reload without a restart": within 2 s).
///
/// It polls: every `interval` (500 ms) it takes a fingerprint of each path
/// (`stat` following links, the resolved path, a hash of the content) and
/// compares it with the one seen at the last callback. Polling a handful of
/// paths costs nothing, and it sees every way a file is replaced: written in
/// place, renamed over, deleted and re-created, created where it was
/// missing, and Kubernetes' swap of the `..data` symlink of a projected
/// volume (the path's target changes, so its inode and resolved path do).
/// inotify would need a watch on every directory of every link chain, re-armed
/// after each swap, and still a poll after IN_Q_OVERFLOW: more code for the same
/// guarantee.
///
/// A change is reported once it has settled (two polls alike), or at the
/// third poll after it was first seen if it keeps changing: so a file caught
/// between its truncation and its new content is not reported as empty, a
/// burst of changes gives one callback, and the callback comes at most about
/// three intervals (1.5 s) after the change. A change after a callback, such
/// as the end of a write the callback saw the middle of, gives another.
///
/// The polls are timed by an event loop's timers, the process's one timer
/// mechanism, and run on the watcher's own serial queue: reading files
/// never blocks a loop. The handler runs on that queue, never twice at once;
/// it may call `replacePaths` and `stop`. Keep the watcher referenced while
/// it runs: its scheduled polls hold it weakly.
public final class ConfigWatcher: Sendable {
    /// Called with the paths whose fingerprint changed, in the order given.
    public typealias Handler = @Sendable (_ changed: [String]) -> Void

    private struct State: Sendable {
        var detector: ChangeDetector
        var running = false
        /// Bumped by start and stop: a poll scheduled before belongs to no run.
        var generation = 0
    }

    private let queue = DispatchQueue(label: "iamport-proxy.config-watcher")
    private let onQueueKey = DispatchSpecificKey<Bool>()
    private let interval: Nanoseconds
    private let loop: EventLoop
    private let handler: Handler
    private let state: Mutex<State>

    /// `interval` is clamped to 10 ms ... 10 s.
    public init(paths: [String], loop: EventLoop, interval: Nanoseconds = .milliseconds(500), handler: @escaping Handler) {
        self.loop = loop
        self.interval = min(max(interval, .milliseconds(10)), .seconds(10))
        self.handler = handler
        state = Mutex(State(detector: ChangeDetector(paths: Self.unique(paths))))
        queue.setSpecific(key: onQueueKey, value: true)
    }

    /// The paths watched now.
    public var paths: [String] { state.withLock { $0.detector.paths } }

    /// Takes the fingerprints every later change is compared with, then polls
    /// until `stop`. Changes made after it returns are reported. Does nothing
    /// if already running.
    public func start() {
        let generation: Int? = onQueue {
            let paths = state.withLock { $0.running ? nil : $0.detector.paths }
            guard let paths else { return nil }
            let current = Self.observe(paths)
            return state.withLock { state in
                state.detector.reset(to: current)
                state.running = true
                state.generation += 1
                return state.generation
            }
        }
        if let generation { schedule(generation) }
    }

    /// No handler call runs or starts once this returns (called from the
    /// handler: none after it). Bounded by the poll or handler in progress.
    public func stop() {
        onQueue {
            state.withLock { state in
                state.running = false
                state.generation += 1
            }
        }
    }

    /// Watches `paths` from now on: after a reload the config may name other
    /// files. Paths watched before keep their fingerprint (a change not
    /// reported yet still is); new ones are compared with how they are now.
    public func replacePaths(_ paths: [String]) {
        let paths = Self.unique(paths)
        onQueue {
            let known = Set(state.withLock { $0.detector.paths })
            let added = Self.observe(paths.filter { !known.contains($0) })
            state.withLock { $0.detector.replace(paths: paths, added: added) }
        }
    }

    private func schedule(_ generation: Int) {
        let (loop, interval, queue) = (self.loop, self.interval, self.queue)
        loop.execute {
            loop.schedule(after: interval) { [weak self] in
                queue.async { [weak self] in self?.poll(generation) }
            }
        }
    }

    /// One poll, on the queue.
    private func poll(_ generation: Int) {
        guard let paths = state.withLock({ $0.generation == generation ? $0.detector.paths : nil }) else { return }
        let current = Self.observe(paths)
        let changed = state.withLock { state -> [String]? in
            guard state.generation == generation else { return nil }
            return state.detector.observe(current)
        }
        if let changed { handler(changed) }
        // The handler may have stopped or restarted the watcher.
        if state.withLock({ $0.generation == generation }) { schedule(generation) }
    }

    /// Runs `body` on the queue, inline when already there (from the handler).
    private func onQueue<T>(_ body: () -> T) -> T {
        if DispatchQueue.getSpecific(key: onQueueKey) == true { return body() }
        return queue.sync(execute: body)
    }

    private static func observe(_ paths: [String]) -> [String: FileFingerprint] {
        var result: [String: FileFingerprint] = [:]
        for path in paths { result[path] = FileFingerprint(of: path) }
        return result
    }

    private static func unique(_ paths: [String]) -> [String] {
        var seen = Set<String>()
        return paths.filter { seen.insert($0).inserted }
    }

}

/// Decides, from one poll's fingerprints after another, when to report a
/// change (ConfigWatcher's rules, without files or time: tested alone).
struct ChangeDetector: Sendable {
    /// A change still moving is reported at this poll after it was first seen.
    static let maxPendingPolls = 3

    private(set) var paths: [String]
    /// As at the last report (or start): what a change is measured against.
    private(set) var baseline: [String: FileFingerprint] = [:]
    private var previous: [String: FileFingerprint] = [:]
    private var pendingPolls = 0

    init(paths: [String]) {
        self.paths = paths
    }

    mutating func reset(to current: [String: FileFingerprint]) {
        baseline = current
        previous = current
        pendingPolls = 0
    }

    /// The changed paths when a change is to be reported now, else nil.
    mutating func observe(_ current: [String: FileFingerprint]) -> [String]? {
        let changed = paths.filter { current[$0] != baseline[$0] }
        let settled = current == previous
        previous = current
        guard !changed.isEmpty else {
            pendingPolls = 0
            return nil
        }
        pendingPolls += 1
        // The first poll that sees a change never reports it: it may be half done.
        guard pendingPolls >= Self.maxPendingPolls || (settled && pendingPolls > 1) else { return nil }
        baseline = current
        pendingPolls = 0
        return changed
    }

    mutating func replace(paths: [String], added: [String: FileFingerprint]) {
        self.paths = paths
        let kept = Set(paths)
        baseline = baseline.filter { kept.contains($0.key) }.merging(added) { old, _ in old }
        previous = previous.filter { kept.contains($0.key) }.merging(added) { old, _ in old }
    }
}

/// What a path is now, as far as a reload cares: alike twice only if the
/// file read through the path is the same file with the same content.
struct FileFingerprint: Sendable, Equatable {
    /// errno of `stat`, 0 when the path leads to a file.
    var error: Int32 = 0
    var device: UInt64 = 0
    var inode: UInt64 = 0
    var mode: UInt32 = 0
    var size: Int64 = 0
    var modified: Int64 = 0
    var changed: Int64 = 0
    /// The path with every link resolved: a swapped link shows here even if
    /// the new target were the same inode.
    var resolved: String?
    /// Of a regular file's content (read whole, at most `maxHashedBytes`):
    /// catches a rewrite of the same size within one tick of the file
    /// system's clock. The hasher's seed is per process, so it says nothing
    /// of a secret outside it.
    var content: Int?

    /// Larger than any config or secret file the proxy accepts.
    static let maxHashedBytes = ConfigFile.maxBytes + 1

    init(error: Int32) {
        self.error = error
    }

    init(of path: String) {
        var info = stat()
        guard stat(path, &info) == 0 else {
            error = errno
            return
        }
        device = UInt64(info.st_dev)
        inode = UInt64(info.st_ino)
        mode = UInt32(info.st_mode)
        size = Int64(info.st_size)
        modified = Int64(info.st_mtim.tv_sec) * 1_000_000_000 + Int64(info.st_mtim.tv_nsec)
        changed = Int64(info.st_ctim.tv_sec) * 1_000_000_000 + Int64(info.st_ctim.tv_nsec)
        if let real = realpath(path, nil) {
            resolved = String(cString: real)
            free(real)
        }
        if (info.st_mode & S_IFMT) == S_IFREG { content = Self.hash(path) }
    }

    /// Non-blocking, and only if what was opened is still a regular file: a
    /// FIFO swapped in must not stall the watcher.
    static func hash(_ path: String) -> Int? {
        let fd = open(path, O_RDONLY | O_NONBLOCK | O_CLOEXEC)
        guard fd >= 0 else { return nil }
        defer { close(fd) }
        var info = stat()
        guard fstat(fd, &info) == 0, (info.st_mode & S_IFMT) == S_IFREG else { return nil }
        var hasher = Hasher()
        var buffer = [UInt8](repeating: 0, count: 16384)
        var total = 0
        defer { buffer.withUnsafeMutableBytes { _ = $0.initializeMemory(as: UInt8.self, repeating: 0) } }
        while total < maxHashedBytes {
            let n = buffer.withUnsafeMutableBytes { read(fd, $0.baseAddress, $0.count) }
            if n < 0 && errno == EINTR { continue }
            guard n > 0 else { break }
            buffer.withUnsafeBytes { hasher.combine(bytes: UnsafeRawBufferPointer(rebasing: $0[0..<n])) }
            total += n
        }
        hasher.combine(total)
        return hasher.finalize()
    }
}
