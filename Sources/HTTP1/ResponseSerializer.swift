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
    /// without copying it here).
    @discardableResult
    public static func writeHead(
        _ response: Response, requestMethod: Method, keepAlive: Bool, http10Client: Bool, into out: inout [UInt8]
    ) -> WrittenHead {
        var written = WrittenHead(closes: !keepAlive)
        out.append(literal: "HTTP/1.1 ")
        appendStatus(response.status, to: &out)
        out.append(ASCII.space)
        if let reason = response.reason {
            out.append(contentsOf: reason)
        } else {
            reasonPhrase(response.status).withUTF8Buffer { out.append(contentsOf: $0) }
        }
        out.append(literal: "\r\n")
        out.append(contentsOf: response.headerBlock)
        if !Response.statusHasNoBody(response.status) {
            if requestMethod == .head {
                // The length a GET would have: declared by the origin, or that of
                // the body a local handler built.
                if let declared = response.declaredLength ?? (response.body.isEmpty ? nil : response.body.count) {
                    out.append(literal: "Content-Length: ")
                    appendDecimal(declared, to: &out)
                    out.append(literal: "\r\n")
                }
            } else if response.streamed {
                written.sendsBody = true
                if let total = response.declaredLength {
                    out.append(literal: "Content-Length: ")
                    appendDecimal(total, to: &out)
                    out.append(literal: "\r\n")
                } else if http10Client {
                    written.closes = true
                } else {
                    out.append(literal: "Transfer-Encoding: chunked\r\n")
                    written.chunked = true
                }
            } else {
                out.append(literal: "Content-Length: ")
                appendDecimal(response.body.count, to: &out)
                out.append(literal: "\r\n")
                written.sendsBody = !response.body.isEmpty
            }
        }
        if written.closes {
            out.append(literal: "Connection: close\r\n")
        } else if http10Client {
            out.append(literal: "Connection: keep-alive\r\n")
        }
        out.append(literal: "\r\n")
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

    static func appendStatus(_ status: Int, to out: inout [UInt8]) {
        let s = (status >= 100 && status <= 999) ? status : 500
        out.append(UInt8(ascii: "0") + UInt8(s / 100))
        out.append(UInt8(ascii: "0") + UInt8(s / 10 % 10))
        out.append(UInt8(ascii: "0") + UInt8(s % 10))
    }

    public static func appendDecimal(_ value: Int, to out: inout [UInt8]) {
        if value == 0 { out.append(UInt8(ascii: "0")); return }
        var digits: (UInt8, UInt8, UInt8, UInt8, UInt8, UInt8, UInt8, UInt8, UInt8, UInt8,
                     UInt8, UInt8, UInt8, UInt8, UInt8, UInt8, UInt8, UInt8, UInt8, UInt8) =
            (0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0)
        var v = value.magnitude
        var count = 0
        withUnsafeMutableBytes(of: &digits) { d in
            while v > 0 {
                d[count] = UInt8(ascii: "0") + UInt8(v % 10)
                v /= 10
                count += 1
            }
            if value < 0 { out.append(UInt8(ascii: "-")) }
            for k in stride(from: count - 1, through: 0, by: -1) { out.append(d[k]) }
        }
    }

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
