#if canImport(Glibc)
import Glibc
#endif
import Synchronization

/// Blocks a thread until another sets it; for start-up and shutdown only.
final class DoneFlag: Sendable {
    private let done = Atomic<Bool>(false)
    func set() { done.store(true, ordering: .releasing) }
    func wait() { while !done.load(ordering: .acquiring) { usleep(200) } }
}

public enum System {
    public static var coreCount: Int { Int(sysconf(Int32(_SC_NPROCESSORS_ONLN))) }
}
