#if canImport(Glibc)
import Glibc
#endif
import EventLoops
import Iamport
import Server
import Synchronization

/// A minimal blocking HTTP/1.1 client for `healthcheck`: one GET, the status code.
enum ReadinessProbe {
    static func status(of listen: String, timeoutSeconds: Int) throws -> Int {
        let address: SocketAddress
        do {
            address = try SocketAddress.resolve(listen)
        } catch {
            throw ConfigurationError("IAMPORT_PROXY_LISTEN / --listen: \(error)")
        }
        var buffer = [UInt8](repeating: 0, count: 512)
        var received = 0
        do {
            let socket = try Socket.stream(family: address.family, blocking: true)
            defer { socket.close() }
            try socket.setBlockingTimeouts(seconds: timeoutSeconds)
            try socket.connect(to: address)
            let request = Array("GET /_proxy/readyz HTTP/1.1\r\nHost: \(listen)\r\nConnection: close\r\n\r\n".utf8)
            var sent = 0
            while sent < request.count {
                let n = try request.withUnsafeBytes { try socket.send(UnsafeRawBufferPointer(rebasing: $0[sent...])) }
                guard n > 0 else { throw RuntimeFailure(description: "\(listen) did not take the request in \(timeoutSeconds) s") }
                sent += n
            }
            while received < 12 {
                let outcome = try buffer.withUnsafeMutableBytes {
                    try socket.read(into: UnsafeMutableRawBufferPointer(rebasing: $0[received...]))
                }
                guard case .bytes(let n) = outcome else { break }  // the end, or the timeout
                received += n
            }
        } catch let error as SystemError {
            throw RuntimeFailure(description: "cannot ask \(listen): \(error)")
        }
        guard received >= 12, buffer.starts(with: Array("HTTP/1.".utf8)),
            let code = Int(String(decoding: buffer[9..<12], as: UTF8.self))
        else { throw RuntimeFailure(description: "no valid answer from \(listen)") }
        return code
    }
}
