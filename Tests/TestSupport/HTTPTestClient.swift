#if canImport(Glibc)
import Glibc
#endif
import Foundation

/// A blocking HTTP/1.1 client over a raw socket, for sending exactly the
/// bytes a test means (hostile ones included) and reading answers.
public final class HTTPTestClient {
    public struct Answer: CustomStringConvertible {
        public var status: Int
        public var reason: String
        public var headers: [(name: String, value: String)]
        public var body: [UInt8]

        public func header(_ name: String) -> String? {
            headers.first { $0.name.lowercased() == name.lowercased() }?.value
        }
        public var text: String { String(decoding: body, as: UTF8.self) }
        public var json: [String: Any]? {
            (try? JSONSerialization.jsonObject(with: Data(body))) as? [String: Any]
        }
        public var description: String { "\(status) \(reason) \(headers) \(text.prefix(300))" }
    }

    public enum Failure: Error { case connect(Int32), closed, reset, timeout, malformed(String) }

    public let fd: Int32
    private var buffer: [UInt8] = []

    public init(port: Int, timeout: Double = 10) throws {
        // `self.fd` is set only once connected: a throw after every stored
        // property is set runs `deinit`, which would close the number a
        // second time, by then perhaps another thread's descriptor.
        let descriptor = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        var addr = sockaddr_in()
        addr.sin_family = sa_family_t(AF_INET)
        addr.sin_port = in_port_t(UInt16(port).bigEndian)
        addr.sin_addr.s_addr = inet_addr("127.0.0.1")
        let rc = withUnsafePointer(to: &addr) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { connect(descriptor, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) }
        }
        if rc != 0 {
            let e = errno
            if descriptor >= 0 { close(descriptor) }
            throw Failure.connect(e)
        }
        fd = descriptor
        setTimeout(timeout)
    }

    public func setTimeout(_ seconds: Double) {
        var tv = timeval(tv_sec: Int(seconds), tv_usec: Int((seconds - Double(Int(seconds))) * 1e6))
        setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, socklen_t(MemoryLayout<timeval>.size))
        setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, socklen_t(MemoryLayout<timeval>.size))
    }

    deinit { close(fd) }

    public func send(_ text: String) throws { try send(Array(text.utf8)) }

    public func send(_ bytes: [UInt8]) throws {
        var offset = 0
        while offset < bytes.count {
            let n = bytes.withUnsafeBytes { Glibc.send(fd, $0.baseAddress! + offset, bytes.count - offset, Int32(MSG_NOSIGNAL)) }
            if n <= 0 { throw Failure.closed }
            offset += n
        }
    }

    /// Reads more bytes; false at end of stream.
    private func fill() throws -> Bool {
        var chunk = [UInt8](repeating: 0, count: 65536)
        let n = chunk.withUnsafeMutableBytes { recv(fd, $0.baseAddress, $0.count, 0) }
        if n > 0 {
            buffer.append(contentsOf: chunk[0..<n])
            return true
        }
        if n == 0 { return false }
        if errno == EAGAIN || errno == EWOULDBLOCK { throw Failure.timeout }
        if errno == ECONNRESET { throw Failure.reset }
        throw Failure.closed
    }

    /// Reads one answer (skipping 1xx interim answers unless `interim`).
    public func read(headRequest: Bool = false, interim: Bool = false) throws -> Answer {
        while true {
            let answer = try readOne(headRequest: headRequest)
            if interim || !(100..<200).contains(answer.status) { return answer }
        }
    }

    private func readOne(headRequest: Bool) throws -> Answer {
        let terminator: [UInt8] = [13, 10, 13, 10]
        var headEnd: Int?
        while headEnd == nil {
            if let range = buffer.firstRange(of: terminator) { headEnd = range.upperBound; break }
            guard try fill() else { throw Failure.closed }
        }
        let head = String(decoding: buffer[0..<headEnd!], as: UTF8.self)
        buffer.removeFirst(headEnd!)
        var lines = head.components(separatedBy: "\r\n").filter { !$0.isEmpty }
        let statusLine = lines.removeFirst()
        let parts = statusLine.split(separator: " ", maxSplits: 2, omittingEmptySubsequences: false)
        guard parts.count >= 2, parts[0].hasPrefix("HTTP/1."), let status = Int(parts[1]) else {
            throw Failure.malformed(statusLine)
        }
        let headers = lines.map { line -> (name: String, value: String) in
            let colon = line.firstIndex(of: ":")!
            return (String(line[..<colon]), line[line.index(after: colon)...].trimmingCharacters(in: .whitespaces))
        }
        var answer = Answer(status: status, reason: parts.count > 2 ? String(parts[2]) : "", headers: headers, body: [])
        if headRequest || status == 204 || status == 304 || (100..<200).contains(status) { return answer }
        if answer.header("Transfer-Encoding")?.lowercased() == "chunked" {
            answer.body = try readChunked()
        } else if let length = answer.header("Content-Length").flatMap(Int.init) {
            while buffer.count < length { guard try fill() else { throw Failure.closed } }
            answer.body = Array(buffer[0..<length])
            buffer.removeFirst(length)
        } else {
            while try fill() {}
            answer.body = buffer
            buffer = []
        }
        return answer
    }

    /// A chunked body (the test's own simple decoder: size lines, data,
    /// the last chunk and an empty trailer).
    private func readChunked() throws -> [UInt8] {
        var body: [UInt8] = []
        let crlf: [UInt8] = [13, 10]
        while true {
            var lineEnd = buffer.firstRange(of: crlf)
            while lineEnd == nil {
                guard try fill() else { throw Failure.closed }
                lineEnd = buffer.firstRange(of: crlf)
            }
            let line = String(decoding: buffer[0..<lineEnd!.lowerBound], as: UTF8.self)
            buffer.removeFirst(lineEnd!.upperBound)
            guard let size = Int(line.prefix { $0 != ";" }, radix: 16) else { throw Failure.malformed("chunk size \(line)") }
            while buffer.count < size + 2 { guard try fill() else { throw Failure.closed } }
            if size == 0 {
                guard buffer[0] == 13, buffer[1] == 10 else { throw Failure.malformed("trailer") }
                buffer.removeFirst(2)
                return body
            }
            body.append(contentsOf: buffer[0..<size])
            guard buffer[size] == 13, buffer[size + 1] == 10 else { throw Failure.malformed("chunk end") }
            buffer.removeFirst(size + 2)
        }
    }

    /// Whether the server closed the connection (waits up to `seconds`).
    public func isClosedByPeer(within seconds: Double = 2) -> Bool {
        setTimeout(seconds)
        do {
            while try fill() {}
            return true
        } catch Failure.timeout {
            return false
        } catch {
            return true
        }
    }

    /// One request on a fresh connection.
    public static func request(port: Int, _ text: String, headRequest: Bool = false) throws -> Answer {
        let client = try HTTPTestClient(port: port)
        try client.send(text)
        return try client.read(headRequest: headRequest)
    }

    public static func get(port: Int, _ path: String, headers: [String: String] = [:]) throws -> Answer {
        var text = "GET \(path) HTTP/1.1\r\nHost: 127.0.0.1\r\n"
        for (k, v) in headers { text += "\(k): \(v)\r\n" }
        text += "Connection: close\r\n\r\n"
        return try request(port: port, text)
    }

    public static func post(port: Int, _ path: String, json: String, headers: [String: String] = [:]) throws -> Answer {
        var text = "POST \(path) HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\nContent-Length: \(json.utf8.count)\r\n"
        for (k, v) in headers { text += "\(k): \(v)\r\n" }
        text += "Connection: close\r\n\r\n" + json
        return try request(port: port, text)
    }
}

extension Array where Element == UInt8 {
    func firstRange(of pattern: [UInt8]) -> Range<Int>? {
        guard count >= pattern.count else { return nil }
        for i in 0...(count - pattern.count) where self[i] == pattern[0] {
            if Array(self[i..<(i + pattern.count)]) == pattern { return i..<(i + pattern.count) }
        }
        return nil
    }
}
