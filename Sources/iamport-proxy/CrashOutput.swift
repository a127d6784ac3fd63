#if canImport(Glibc)
import Glibc
#endif
import Iamport

/// What a crash may print. The Swift runtime reads `SWIFT_BACKTRACE` once,
/// before `main`; unset, a run without a terminal gets the `full` preset,
/// which prints the crashed thread's registers and the memory they point at,
/// where the access token and the API secret can be. So the process
/// re-executes itself once with settings that keep a symbolicated backtrace
/// of every thread and print no registers, memory or images. A value the
/// operator set is kept: that is how full dumps are turned on.
enum CrashOutput {
    static let variable = "SWIFT_BACKTRACE"

    /// `format=text` is spelled out: the JSON format prints registers and
    /// memory whatever `registers` says. `interactive=no`: no debugger prompt.
    static let safeSettings =
        "preset=full,registers=none,images=none,format=text,interactive=no,color=no,sanitize=yes,output-to=stderr"

    enum Mode: Sendable, Equatable {
        /// Running under `safeSettings`, which this process set before it re-executed itself.
        case safe
        /// The operator's own `SWIFT_BACKTRACE`; `showsRegisters` when a crash would print registers or memory.
        case operatorSettings(showsRegisters: Bool)
        /// Re-executing failed (the errno): the runtime's crash handlers were
        /// removed instead, so a crash prints no backtrace (a fatal error still its one line).
        case handlersRemoved(errno: Int32)
    }

    /// Settled by the first read, which `main` does before anything else
    /// runs (no thread started, no secret read). Without a `SWIFT_BACKTRACE`
    /// that read does not return: the process is replaced by itself with the
    /// same arguments and environment plus `safeSettings`.
    static let mode: Mode = secure()

    private static func secure() -> Mode {
        forbidCoreFiles()
        if let value = getenv(variable) {
            let settings = String(cString: value)
            guard settings == safeSettings else { return .operatorSettings(showsRegisters: showsRegisters(settings)) }
            restoreProcessName()
            return .safe
        }
        // /proc/self/exe is the running file even if it was replaced on disk
        // since. The arguments come from /proc/self/cmdline: none without /proc.
        var failure = ENOENT
        if CommandLine.argc > 0 {
            if setenv(variable, safeSettings, 1) == 0 {
                execv("/proc/self/exe", CommandLine.unsafeArgv)
            }
            failure = errno
        }
        unsetenv(variable)
        removeCrashHandlers()
        return .handlersRemoved(errno: failure)
    }

    /// Executing /proc/self/exe named the process `exe` (in `ps`, `top`,
    /// `pgrep`): give it back the name it started with, the first 15 bytes of
    /// its program's file name. Threads started later inherit it.
    private static func restoreProcessName() {
        guard let program = CommandLine.arguments.first?.split(separator: "/").last else { return }
        let name = Array(program.utf8.prefix(15))
        let fd = open("/proc/self/comm", O_WRONLY)
        guard fd >= 0 else { return }
        _ = name.withUnsafeBytes { write(fd, $0.baseAddress, $0.count) }
        close(fd)
    }

    /// Core files hold all memory. The soft limit only: the operator can still
    /// raise it on a running process (`prlimit --pid PID --core=unlimited`).
    /// Not PR_SET_DUMPABLE 0: it makes /proc/PID root-owned, which leaves the
    /// backtracer (running as the same user) unable to read the process's
    /// images, so it prints no symbols, and hides the descriptors from monitoring.
    private static func forbidCoreFiles() {
        var limit = rlimit()
        guard getrlimit(__rlimit_resource_t(RLIMIT_CORE.rawValue), &limit) == 0 else { return }
        limit.rlim_cur = 0
        _ = setrlimit(__rlimit_resource_t(RLIMIT_CORE.rawValue), &limit)
    }

    /// The signals the runtime catches to start its backtracer.
    private static func removeCrashHandlers() {
        for crash in [SIGQUIT, SIGILL, SIGTRAP, SIGABRT, SIGFPE, SIGBUS, SIGSEGV] {
            signal(crash, SIG_DFL)
        }
    }

    /// Whether `SWIFT_BACKTRACE` settings let a crash print registers or the
    /// memory they point at. Read as the runtime reads them: `key=value`
    /// pairs cut at the first `=` and the next `,`, nothing trimmed, case
    /// ignored, the last of a key winning. Errs towards yes where the outcome
    /// depends on a terminal (`enable=tty`, the default preset).
    static func showsRegisters(_ settings: String) -> Bool {
        var values: [String: String] = [:]
        var rest = Substring(settings)
        while let equals = rest.firstIndex(of: "=") {
            let value = rest[rest.index(after: equals)...]
            let comma = value.firstIndex(of: ",") ?? value.endIndex
            values[rest[..<equals].lowercased()] = value[..<comma].lowercased()
            rest = comma == value.endIndex ? "" : value[value.index(after: comma)...]
        }
        if let enable = values["enable"], !["on", "true", "yes", "y", "t", "1", "tty", "auto"].contains(enable) {
            return false
        }
        if values["format"] == "json" { return true }
        switch values["registers"] {
        case "none": return false
        case "all", "crashed": return true
        default: return values["preset"] != "friendly"  // left to the preset: the others show the crashed thread's
        }
    }
}

/// Test only (`IAMPORT_PROXY_TEST_CRASH_AFTER_TOKEN=1`, not in `--help`):
/// crashes on purpose once a token is held, with its bytes in registers and
/// on the stack, so the end-to-end tests can read what a crash prints.
enum DeliberateCrash {
    static let variable = "IAMPORT_PROXY_TEST_CRASH_AFTER_TOKEN"

    static func arm(_ tokens: TokenCache) {
        tokens.withToken { result in
            guard case .success(let token) = result else { return }
            token.value.reveal { value in
                var bytes = Array(value.utf8)
                bytes.append(contentsOf: repeatElement(0, count: max(0, 16 - bytes.count)))
                bytes.withUnsafeMutableBufferPointer { crash(holding: $0.baseAddress!) }
            }
        }
    }

    /// The token's first 16 bytes as two words, and a pointer to them, all
    /// live when the store to an unmapped page faults.
    @inline(never)
    static func crash(holding token: UnsafeMutablePointer<UInt8>) -> Never {
        let raw = UnsafeRawPointer(token)
        let first = raw.loadUnaligned(as: UInt64.self)
        let second = raw.loadUnaligned(fromByteOffset: 8, as: UInt64.self)
        let unmapped = UnsafeMutablePointer<UInt64>(bitPattern: 8)!
        unmapped.pointee = first
        unmapped[1] = second
        withExtendedLifetime(token) {}
        fatalError("a store to page zero returned")
    }
}
