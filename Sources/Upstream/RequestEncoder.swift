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
    func encode(_ request: UpstreamRequest) -> (head: [UInt8], bodyInHead: Bool) {
        var head = requestHead(request)
        let bodyInHead = endpoint.tls && (request.body?.count ?? Int.max) <= Self.tlsRecordBytes
        if bodyInHead, let body = request.body { head.append(contentsOf: body) }
        return (head, bodyInHead)
    }

    /// `METHOD target HTTP/1.1`, `Host`, the first line (the Authorization),
    /// the request's own lines, `Content-Length` when there is a body (or the
    /// method expects one), and the blank line.
    func requestHead(_ request: UpstreamRequest) -> [UInt8] {
        let pathPrefix = endpoint.pathPrefix
        let authority = endpoint.authority
        var head: [UInt8] = []
        head.reserveCapacity(64 + pathPrefix.count + request.pathAndQuery.count + authority.count
                             + request.firstLine.count + request.headerLines.count + 2 * 16)
        var method = request.methodName
        method.withUTF8 { head.append(contentsOf: $0) }
        head.append(ASCII.space)
        head.append(contentsOf: pathPrefix)
        head.append(contentsOf: request.pathAndQuery)
        head.append(literal: " HTTP/1.1\r\nHost: ")
        head.append(contentsOf: authority)
        head.append(literal: "\r\n")
        if !request.firstLine.isEmpty {
            head.append(contentsOf: request.firstLine)
            head.append(literal: "\r\n")
        }
        var start = 0
        for (i, b) in request.headerLines.enumerated() where b == 0 {
            head.append(contentsOf: request.headerLines[start..<i])
            head.append(literal: "\r\n")
            start = i + 1
        }
        if let body = request.body {
            head.append(literal: "Content-Length: ")
            ResponseSerializer.appendDecimal(body.count, to: &head)
            head.append(literal: "\r\n")
        } else if request.method == .post || request.method == .put || request.method == .patch {
            head.append(literal: "Content-Length: 0\r\n")
        }
        head.append(literal: "\r\n")
        return head
    }
}
