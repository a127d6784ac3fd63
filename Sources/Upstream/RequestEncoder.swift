#if canImport(Glibc)
import Glibc
#endif
import HTTP1

/// Writes a request for the upstream: request line, `Host`, the first line
/// (the Authorization), the request's own lines, `Content-Length`. Pure.
struct RequestEncoder {
    let endpoint: Endpoint

    /// The most plaintext one TLS record carries.
    static let tlsRecordBytes = 16384

    /// The bytes to write before the body. TLS sends one buffer per call: a
    /// body that fits one record is copied behind the head (`bodyInHead`),
    /// so the request is one record, one write. (Plain HTTP sends head and
    /// body together without a copy.)
    /// `firstLine`, when given, is written instead of the request's own.
    func encode(_ request: UpstreamRequest, firstLine: [UInt8]? = nil) -> (head: [UInt8], bodyInHead: Bool) {
        let body = request.body
        let bodyInHead = endpoint.tls && (body?.count ?? Int.max) <= Self.tlsRecordBytes
        let head = requestHead(request, firstLine: firstLine ?? request.firstLine, then: bodyInHead ? body : nil)
        return (head, bodyInHead)
    }

    /// `METHOD target HTTP/1.1`, `Host`, the first line (the Authorization),
    /// the request's own lines, `Content-Length` when there is a body (or the
    /// method expects one), and the blank line; then `body`, if given.
    /// Written into one buffer of the largest size it can take (each NUL of
    /// the lines becomes a CRLF, one byte more), with memory copies.
    func requestHead(_ request: UpstreamRequest, firstLine: [UInt8], then body: [UInt8]? = nil) -> [UInt8] {
        // The parts the closure below reads, taken here: a closure reading
        // `request` made it copy the whole request (five retains and releases).
        var method = request.methodName
        let lines = request.headerLines
        let pathAndQuery = request.pathAndQuery
        let bodyLength = request.body?.count
        let expectsBody = request.method == .post || request.method == .put || request.method == .patch
        let capacity = method.utf8.count + endpoint.pathPrefix.count + pathAndQuery.count
            + endpoint.authority.count + firstLine.count + 2 * lines.count + 96
        // The body, when it rides here, is appended into the room reserved
        // for it: one copy of it.
        var head = bytesWritten(capacity: capacity, reserving: body?.count ?? 0) { out in
            method.withUTF8 { out.put(UnsafeRawBufferPointer($0)) }
            out.put(ASCII.space)
            out.put(endpoint.pathPrefix)
            out.put(pathAndQuery)
            out.put(" HTTP/1.1\r\nHost: " as StaticString)
            out.put(endpoint.authority)
            out.put("\r\n" as StaticString)
            if !firstLine.isEmpty {
                out.put(firstLine)
                out.put("\r\n" as StaticString)
            }
            lines.withUnsafeBytes { all in
                guard let base = all.baseAddress else { return }
                var start = 0
                while start < all.count,
                      let nul = memchr(base + start, 0, all.count - start).map({ base.distance(to: UnsafeRawPointer($0)) }) {
                    out.put(UnsafeRawBufferPointer(rebasing: all[start..<nul]))
                    out.put("\r\n" as StaticString)
                    start = nul + 1
                }
            }
            if let length = bodyLength {
                out.put("Content-Length: " as StaticString)
                out.put(decimal: length)
                out.put("\r\n" as StaticString)
            } else if expectsBody {
                out.put("Content-Length: 0\r\n" as StaticString)
            }
            out.put("\r\n" as StaticString)
        }
        if let body { head.append(contentsOf: body) }
        return head
    }
}
