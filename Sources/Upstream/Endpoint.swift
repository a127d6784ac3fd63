import HTTP1

/// Where the upstream is, and how a request to it is written.
struct Endpoint {
    let tls: Bool
    /// `scheme://authority/`: what libcurl connects to.
    let connectURL: String
    /// `Host` field value.
    let authority: [UInt8]
    /// A path the base URL carries, put before every request's path.
    let pathPrefix: [UInt8]

    init(_ baseURL: String) {
        let bytes = Array(baseURL.utf8)
        var rest = bytes[...]
        var tls = false
        if let i = bytes.firstIndex(of: ASCII.colon), bytes[i...].starts(with: "://".utf8) {
            tls = bytes[..<i].equalsLowercased("https")
            rest = bytes[(i + 3)...]
        }
        let slash = rest.firstIndex(of: ASCII.slash) ?? rest.endIndex
        self.tls = tls
        authority = Array(rest[..<slash])
        var prefix = Array(rest[slash...])
        while prefix.last == ASCII.slash { prefix.removeLast() }
        pathPrefix = prefix
        connectURL = (tls ? "https://" : "http://") + String(decoding: authority, as: UTF8.self) + "/"
    }

    /// `METHOD target HTTP/1.1`, `Host`, the first line (the Authorization),
    /// the request's own lines, `Content-Length` when there is a body (or the
    /// method expects one), and the blank line.
    func requestHead(_ request: UpstreamRequest) -> [UInt8] {
        var head: [UInt8] = []
        head.reserveCapacity(64 + pathPrefix.count + request.pathAndQuery.count + authority.count
                             + request.firstLine.count + request.headerLines.count + 2 * 16)
        var method = request.methodName
        method.withUTF8 { head.append(contentsOf: $0) }
        head.append(ASCII.space)
        head.append(contentsOf: pathPrefix)
        head.append(contentsOf: request.pathAndQuery)
        head.append(contentsOf: " HTTP/1.1\r\nHost: ".utf8)
        head.append(contentsOf: authority)
        head.append(contentsOf: "\r\n".utf8)
        if !request.firstLine.isEmpty {
            head.append(contentsOf: request.firstLine)
            head.append(contentsOf: "\r\n".utf8)
        }
        var start = 0
        for (i, b) in request.headerLines.enumerated() where b == 0 {
            head.append(contentsOf: request.headerLines[start..<i])
            head.append(contentsOf: "\r\n".utf8)
            start = i + 1
        }
        if let body = request.body {
            head.append(contentsOf: "Content-Length: ".utf8)
            head.append(contentsOf: String(body.count).utf8)
            head.append(contentsOf: "\r\n".utf8)
        } else if request.method == .post || request.method == .put || request.method == .patch {
            head.append(contentsOf: "Content-Length: 0\r\n".utf8)
        }
        head.append(contentsOf: "\r\n".utf8)
        return head
    }
}
