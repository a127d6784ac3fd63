#if canImport(Glibc)
import Glibc
#endif
import Foundation

/// A TLS server that says, in each answer, whether the connection resumed a
/// TLS session: `openssl s_server -www` answers every GET with a status page
/// (HTTP/1.0, then it closes the connection) holding a line `New, TLSv1.3, …`
/// or `Reused, TLSv1.3, …`. socat cannot tell. It serves one connection at a
/// time; concurrent connections wait in its backlog.
public final class SessionReportingTLSServer {
    public let directory: String
    public let caFile: String
    public let port: Int
    private let server: ProcessRunner

    /// Whether an answer's page reports a resumed session, a full handshake,
    /// or neither (not a status page).
    public enum Handshake: Equatable, Sendable { case resumed, full, unknown }

    /// `tls12Only`: TLS 1.2 at most. OpenSSL makes a TLS 1.3 session single
    /// use on the client side, a TLS 1.2 one is not.
    public init(tls12Only: Bool = false) throws {
        directory = Paths.temporaryDirectory()
        caFile = try TLSFront.makeCertificates(in: directory)
        port = try TLSFront.freePort()
        server = try ProcessRunner(
            "/usr/bin/openssl",
            arguments: ["s_server", "-accept", "127.0.0.1:\(port)", "-cert", directory + "/server.pem",
                        "-key", directory + "/server.key", "-www", "-quiet"] + (tls12Only ? ["-no_tls1_3"] : []),
            environment: [:])
        // Wait until it listens (a bare connect would take its one connection slot).
        // Up to 10 s: it starts slowly on a machine busy with other tests.
        for _ in 0..<500 {
            if Self.listening(port) { return }
            if !server.process.isRunning { break }
            usleep(20_000)
        }
        server.signal(SIGKILL)
        server.wait()
        throw TLSFront.Failure.tool("openssl s_server did not start: \(server.text)")
    }

    public static func handshake(of page: [UInt8]) -> Handshake {
        let text = String(decoding: page, as: UTF8.self)
        if text.contains("\nReused, ") { return .resumed }
        if text.contains("\nNew, ") { return .full }
        return .unknown
    }

    public func stop() {
        // SIGKILL: under the test runner s_server outlives SIGTERM (the
        // runner's 15 s wait ran out every time); it has nothing to flush.
        server.signal(SIGKILL)
        server.wait()
        try? FileManager.default.removeItem(atPath: directory)
    }

    /// Whether something listens on the port, from /proc/net/tcp (LISTEN is
    /// state 0A), without connecting to it.
    private static func listening(_ port: Int) -> Bool {
        guard let table = try? String(contentsOfFile: "/proc/net/tcp", encoding: .utf8) else { return false }
        let local = String(format: "0100007F:%04X", port)
        return table.split(separator: "\n").contains { line in
            let fields = line.split(separator: " ")
            return fields.count > 3 && fields[1] == local && fields[3] == "0A"
        }
    }
}
