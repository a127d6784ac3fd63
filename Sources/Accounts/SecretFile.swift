#if canImport(Glibc)
import Glibc
#endif
import Iamport

/// Reads a secret from a file (Docker and Kubernetes secrets): one line,
/// a trailing newline ignored, never empty.
public enum SecretFile {
    /// What is wrong with a secret file; says the path, never the content.
    public struct Problem: Error, CustomStringConvertible, Sendable {
        public let description: String
        public init(description: String) { self.description = description }
    }

    public static let maxBytes = 65536

    public static func read(_ path: String) throws(Problem) -> Secret {
        guard let handle = fopen(path, "rb") else {
            throw Problem(description: "cannot read '\(path)': \(String(cString: strerror(errno)))")
        }
        defer { fclose(handle) }
        var bytes: [UInt8] = []
        var chunk = [UInt8](repeating: 0, count: 4096)
        while true {
            let n = fread(&chunk, 1, chunk.count, handle)
            if n <= 0 { break }
            bytes.append(contentsOf: chunk[0..<n])
            if bytes.count > maxBytes { throw Problem(description: "'\(path)' is too large for a secret") }
        }
        while let last = bytes.last, last == 0x0A || last == 0x0D { bytes.removeLast() }
        if bytes.isEmpty { throw Problem(description: "'\(path)' is empty") }
        if bytes.contains(where: { $0 < 0x20 || $0 == 0x7F }) {
            throw Problem(description: "'\(path)' holds control characters or more than one line")
        }
        return Secret(String(decoding: bytes, as: UTF8.self))
    }

    /// Whether the process may read `path` (a CA file is read by libcurl later).
    public static func isReadable(_ path: String) -> Bool {
        access(path, R_OK) == 0
    }
}
