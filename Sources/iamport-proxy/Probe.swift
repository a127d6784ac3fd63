#if canImport(Glibc)
import Glibc
#endif
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
        let fd = socket(address.family, Int32(SOCK_STREAM.rawValue), 0)
        guard fd >= 0 else { throw RuntimeFailure(description: "socket failed") }
        defer { close(fd) }
        var tv = timeval(tv_sec: timeoutSeconds, tv_usec: 0)
        setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, socklen_t(MemoryLayout<timeval>.size))
        setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, socklen_t(MemoryLayout<timeval>.size))
        let connected = address.withSockaddr { connect(fd, $0, $1) }
        guard connected == 0 else {
            throw RuntimeFailure(description: "cannot connect to \(listen): \(String(cString: strerror(errno)))")
        }
        let request = Array("GET /_proxy/readyz HTTP/1.1\r\nHost: \(listen)\r\nConnection: close\r\n\r\n".utf8)
        _ = request.withUnsafeBytes { send(fd, $0.baseAddress, $0.count, 0) }
        var buffer = [UInt8](repeating: 0, count: 512)
        var received = 0
        while received < 12 {
            let n = buffer.withUnsafeMutableBytes { recv(fd, $0.baseAddress! + received, $0.count - received, 0) }
            if n <= 0 { break }
            received += n
        }
        guard received >= 12, buffer.starts(with: Array("HTTP/1.".utf8)),
            let code = Int(String(decoding: buffer[9..<12], as: UTF8.self))
        else { throw RuntimeFailure(description: "no valid answer from \(listen)") }
        return code
    }
}
