#if canImport(Glibc)
import Glibc
#endif
import Foundation

/// A TLS terminator in front of a plain server: a CA and a certificate for
/// 127.0.0.1/localhost made with openssl at test time, and socat listening.
public final class TLSFront {
    public let directory: String
    public let caFile: String
    public let port: Int
    private let socat: ProcessRunner

    public enum Failure: Error { case tool(String) }

    public init(backendPort: Int) throws {
        directory = Paths.temporaryDirectory()
        caFile = try Self.makeCertificates(in: directory)
        port = try Self.freePort()
        socat = try ProcessRunner(
            "/usr/bin/socat",
            arguments: ["-d", "OPENSSL-LISTEN:\(port),bind=127.0.0.1,reuseaddr,fork,cert=\(directory)/server.pem,key=\(directory)/server.key,verify=0",
                        "TCP:127.0.0.1:\(backendPort)"],
            environment: [:])
        // Wait until it accepts.
        for _ in 0..<100 {
            if (try? HTTPTestClient(port: port, timeout: 1)) != nil { return }
            usleep(20_000)
        }
        throw Failure.tool("socat did not start: \(socat.text)")
    }

    public func stop() {
        _ = socat.stop()
        try? FileManager.default.removeItem(atPath: directory)
    }

    /// A CA (`ca.pem`, returned) and a certificate it signed for
    /// 127.0.0.1/localhost (`server.pem`, `server.key`) in `directory`.
    static func makeCertificates(in directory: String) throws -> String {
        let caFile = directory + "/ca.pem"
        try run("openssl", ["req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2",
                            "-keyout", directory + "/ca.key", "-out", caFile, "-subj", "/CN=iamport-proxy test CA"])
        try run("openssl", ["req", "-newkey", "rsa:2048", "-nodes", "-keyout", directory + "/server.key",
                            "-out", directory + "/server.csr", "-subj", "/CN=localhost"])
        try "subjectAltName=DNS:localhost,IP:127.0.0.1\n".write(toFile: directory + "/san.ext", atomically: true, encoding: .utf8)
        try run("openssl", ["x509", "-req", "-in", directory + "/server.csr", "-CA", caFile, "-CAkey", directory + "/ca.key",
                            "-CAcreateserial", "-days", "2", "-extfile", directory + "/san.ext", "-out", directory + "/server.pem"])
        return caFile
    }

    static func run(_ tool: String, _ arguments: [String]) throws {
        let runner = try ProcessRunner("/usr/bin/" + tool, arguments: arguments, environment: [:])
        let status = runner.wait(seconds: 60)
        if status != 0 { throw Failure.tool("\(tool) failed: \(runner.text)") }
    }

    /// A port that was free a moment ago.
    public static func freePort() throws -> Int {
        let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        defer { close(fd) }
        var addr = sockaddr_in()
        addr.sin_family = sa_family_t(AF_INET)
        addr.sin_addr.s_addr = inet_addr("127.0.0.1")
        addr.sin_port = 0
        var length = socklen_t(MemoryLayout<sockaddr_in>.size)
        _ = withUnsafeMutablePointer(to: &addr) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(fd, $0, length) }
        }
        _ = withUnsafeMutablePointer(to: &addr) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { getsockname(fd, $0, &length) }
        }
        return Int(UInt16(bigEndian: addr.sin_port))
    }
}
