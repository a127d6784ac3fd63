#if canImport(Glibc)
import Glibc
#endif
import Foundation

/// Runs a program with a given environment, collects its output, and stops it.
public final class ProcessRunner: @unchecked Sendable {
    public let process: Process
    private let lock = NSLock()
    private var output = Data()
    /// The pipe's end was read: the program and its children wrote their last.
    private var endOfOutput = false
    private let pipe = Pipe()
    private var exitedAt: Date?
    private var secondsToStop: Double?

    public init(_ path: String, arguments: [String], environment: [String: String], currentDirectory: String? = nil) throws {
        process = Process()
        process.executableURL = URL(fileURLWithPath: path)
        process.arguments = arguments
        var env = environment
        env["PATH"] = ProcessInfo.processInfo.environment["PATH"]
        process.environment = env
        if let currentDirectory { process.currentDirectoryURL = URL(fileURLWithPath: currentDirectory) }
        process.standardOutput = pipe
        process.standardError = pipe
        pipe.fileHandleForReading.readabilityHandler = { [weak self] handle in
            let data = handle.availableData
            guard let self else { return }
            self.lock.lock()
            if data.isEmpty { self.endOfOutput = true } else { self.output.append(data) }
            self.lock.unlock()
        }
        try process.run()
    }

    public var text: String {
        lock.lock()
        defer { lock.unlock() }
        return String(decoding: output, as: UTF8.self)
    }

    /// Waits for a line matching `predicate` in the output.
    public func waitFor(_ needle: String, seconds: Double = 15) -> Bool {
        let deadline = Date().addingTimeInterval(seconds)
        while Date() < deadline {
            if text.contains(needle) { return true }
            if !process.isRunning { return text.contains(needle) }
            usleep(20_000)
        }
        return false
    }

    /// The port from the `listening on HOST:PORT` line.
    public func listeningPort(seconds: Double = 15) -> Int? {
        guard waitFor("listening on ", seconds: seconds) else { return nil }
        let line = text.components(separatedBy: "\n").first { $0.contains("listening on ") }!
        let after = line.components(separatedBy: "listening on ")[1]
        let address = after.split(separator: " ")[0]
        return Int(address.split(separator: ":").last!)
    }

    public func signal(_ sig: Int32) {
        if process.isRunning { kill(process.processIdentifier, sig) }
    }

    /// Waits for exit; kills after `seconds`. Returns the exit status.
    @discardableResult
    public func wait(seconds: Double = 15) -> Int32 {
        let deadline = Date().addingTimeInterval(seconds)
        while process.isRunning && Date() < deadline { usleep(10_000) }
        if process.isRunning {
            kill(process.processIdentifier, SIGKILL)
            process.waitUntilExit()
        }
        process.waitUntilExit()
        lock.withLock { exitedAt = Date() }
        // Everything written before the exit, however busy the machine: wait
        // (a bounded while) for the reader to reach the pipe's end.
        let drained = Date().addingTimeInterval(5)
        while Date() < drained && !lock.withLock({ endOfOutput }) { usleep(5_000) }
        pipe.fileHandleForReading.readabilityHandler = nil
        return process.terminationStatus
    }

    public func stop() -> Int32 {
        let signalled = Date()
        signal(SIGTERM)
        let status = wait()
        lock.withLock { secondsToStop = exitedAt.map { $0.timeIntervalSince(signalled) } }
        return status
    }

    /// From the last `stop()`'s SIGTERM to the exit, without the wait for
    /// the output pipe's end (which a child of another test that inherited
    /// the pipe can hold open for a while).
    public var lastStopSeconds: Double? { lock.withLock { secondsToStop } }

    public var pid: Int32 { process.processIdentifier }
}

public enum Paths {
    /// The package root, from this file's place in it.
    public static let packageRoot: String = {
        var url = URL(fileURLWithPath: #filePath)
        for _ in 0..<3 { url.deleteLastPathComponent() }
        return url.path
    }()

    /// A built executable of the package (debug unless IAMPORT_PROXY_BUILD_DIR says otherwise).
    public static func executable(_ name: String) -> String {
        let dir = ProcessInfo.processInfo.environment["IAMPORT_PROXY_BUILD_DIR"] ?? packageRoot + "/.build/debug"
        return dir + "/" + name
    }

    public static func temporaryDirectory() -> String {
        let path = NSTemporaryDirectory() + "iamport-proxy-test-" + UUID().uuidString
        try? FileManager.default.createDirectory(atPath: path, withIntermediateDirectories: true)
        return path
    }
}

/// Open file descriptors and resident memory of a process, from /proc.
public enum ProcessStats {
    public static func openFileDescriptors(pid: Int32) -> Int {
        (try? FileManager.default.contentsOfDirectory(atPath: "/proc/\(pid)/fd").count) ?? -1
    }

    public static func residentKiB(pid: Int32) -> Int {
        guard let status = try? String(contentsOfFile: "/proc/\(pid)/status", encoding: .utf8) else { return -1 }
        for line in status.split(separator: "\n") where line.hasPrefix("VmRSS:") {
            return Int(line.split(separator: " ").dropFirst().first ?? "") ?? -1
        }
        return -1
    }
}
