/// How the body that follows a serialized head is framed on the wire.
public struct WrittenHead: Sendable, Equatable {
    /// Body bytes follow the head.
    public var sendsBody = false
    /// They go in chunked coding (a streamed body of unknown length).
    public var chunked = false
    /// The connection closes after this answer (asked for, or the body's end
    /// is the close).
    public var closes = false
}

public enum ResponseSerializer {
    /// Writes the status line, the header block and the framing fields of
    /// `response` into `out`. The body is written by the caller (with writev,
    /// without copying it here). The head is composed with `ByteCursor` in
    /// room of its largest size and appended to `out` at once: a dozen
    /// `append` calls cost more than the bytes they copied.
    @discardableResult
    public static func writeHead(
        _ response: Response, requestMethod: Method, keepAlive: Bool, http10Client: Bool, into out: inout [UInt8]
    ) -> WrittenHead {
        var written = WrittenHead(closes: !keepAlive)
        // Status line, the block, one framing line and one connection line at most, the blank line.
        let reasonBytes = response.reason?.count ?? reasonPhrase(response.status).utf8CodeUnitCount
        let room = 16 + reasonBytes + response.headerBlock.count + (response.requestID.map { $0.count + 16 } ?? 0) + 96
        withUnsafeTemporaryAllocation(of: UInt8.self, capacity: room) { buffer in
            var head = ByteCursor(buffer)
            head.put("HTTP/1.1 " as StaticString)
            let status = (response.status >= 100 && response.status <= 999) ? response.status : 500
            head.put(UInt8(ascii: "0") + UInt8(status / 100))
            head.put(UInt8(ascii: "0") + UInt8(status / 10 % 10))
            head.put(UInt8(ascii: "0") + UInt8(status % 10))
            head.put(ASCII.space)
            if let reason = response.reason {
                head.put(reason)
            } else {
                head.put(reasonPhrase(response.status))
            }
            head.put("\r\n" as StaticString)
            head.put(response.headerBlock)
            if let requestID = response.requestID {
                head.put("X-Request-Id: " as StaticString)
                head.put(requestID)
                head.put("\r\n" as StaticString)
            }
            if !Response.statusHasNoBody(response.status) {
                if requestMethod == .head {
                    // The length a GET would have: declared by the origin, or that of
                    // the body a local handler built.
                    if let declared = response.declaredLength ?? (response.body.isEmpty ? nil : response.body.count) {
                        head.put("Content-Length: " as StaticString)
                        head.put(decimal: declared)
                        head.put("\r\n" as StaticString)
                    }
                } else if response.streamed {
                    written.sendsBody = true
                    if let total = response.declaredLength {
                        head.put("Content-Length: " as StaticString)
                        head.put(decimal: total)
                        head.put("\r\n" as StaticString)
                    } else if http10Client {
                        written.closes = true
                    } else {
                        head.put("Transfer-Encoding: chunked\r\n" as StaticString)
                        written.chunked = true
                    }
                } else {
                    head.put("Content-Length: " as StaticString)
                    head.put(decimal: response.body.count)
                    head.put("\r\n" as StaticString)
                    written.sendsBody = !response.body.isEmpty
                }
            }
            if written.closes {
                head.put("Connection: close\r\n" as StaticString)
            } else if http10Client {
                head.put("Connection: keep-alive\r\n" as StaticString)
            }
            head.put("\r\n" as StaticString)
            out.append(contentsOf: UnsafeBufferPointer(rebasing: buffer[0..<head.count]))
        }
        return written
    }

    /// The size line of a chunk of `count` bytes (`count` > 0).
    public static func appendChunkSize(_ count: Int, to out: inout [UInt8]) {
        let digits: StaticString = "0123456789abcdef"
        var shift = (Int.bitWidth - count.leadingZeroBitCount + 3) / 4 * 4
        while shift > 0 {
            shift -= 4
            out.append(digits.utf8Start[(count >> shift) & 0xF])
        }
        out.append(ASCII.cr)
        out.append(ASCII.lf)
    }

    public static let lastChunk: [UInt8] = Array("0\r\n\r\n".utf8)

    public static let continueLine: [UInt8] = Array("HTTP/1.1 100 Continue\r\n\r\n".utf8)

    public static func reasonPhrase(_ status: Int) -> StaticString {
        switch status {
        case 100: return "Continue"
        case 200: return "OK"
        case 201: return "Created"
        case 202: return "Accepted"
        case 204: return "No Content"
        case 206: return "Partial Content"
        case 207: return "Multi-Status"
        case 301: return "Moved Permanently"
        case 302: return "Found"
        case 304: return "Not Modified"
        case 400: return "Bad Request"
        case 401: return "Unauthorized"
        case 403: return "Forbidden"
        case 404: return "Not Found"
        case 405: return "Method Not Allowed"
        case 408: return "Request Timeout"
        case 409: return "Conflict"
        case 413: return "Content Too Large"
        case 414: return "URI Too Long"
        case 415: return "Unsupported Media Type"
        case 417: return "Expectation Failed"
        case 422: return "Unprocessable Content"
        case 429: return "Too Many Requests"
        case 431: return "Request Header Fields Too Large"
        case 500: return "Internal Server Error"
        case 501: return "Not Implemented"
        case 502: return "Bad Gateway"
        case 503: return "Service Unavailable"
        case 504: return "Gateway Timeout"
        case 505: return "HTTP Version Not Supported"
        default: return "Unknown"
        }
    }
}
