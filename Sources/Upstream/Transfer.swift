import CCurl
import HTTP1

/// The state of one exchange with the upstream while libcurl runs it. It is
/// reached from curl's callbacks through CURLOPT_PRIVATE (retained once when
/// added, released once after removal) and the WRITEDATA/HEADERDATA pointers
/// (unretained, valid while the private reference is held).
final class Transfer {
    let easy: UnsafeMutableRawPointer
    var headers: UnsafeMutablePointer<curl_slist>?
    /// The request body: libcurl reads it in place (CURLOPT_POSTFIELDS), so it
    /// must live as long as the transfer.
    var requestBody: [UInt8]
    var completion: ((Result<UpstreamResponse, UpstreamError>) -> Void)?
    var errorBuffer = [CChar](repeating: 0, count: Int(CURL_ERROR_SIZE) + 1)
    let maxResponseBytes: Int

    var status = 0
    var reason: [UInt8]?
    var headerLines: [[UInt8]] = []
    var body: [UInt8] = []
    var tooLarge = false

    init(easy: UnsafeMutableRawPointer, requestBody: [UInt8], maxResponseBytes: Int) {
        self.easy = easy
        self.requestBody = requestBody
        self.maxResponseBytes = maxResponseBytes
    }

    deinit {
        if let headers { curl_slist_free_all(headers) }
    }

    // MARK: - libcurl callbacks (context pointers, no captures)

    static let writeCallback: ccurl_data_callback = { ptr, size, count, userdata in
        let transfer = Unmanaged<Transfer>.fromOpaque(userdata!).takeUnretainedValue()
        let n = size * count
        if transfer.body.count + n > transfer.maxResponseBytes {
            transfer.tooLarge = true
            return 0  // aborts with CURLE_WRITE_ERROR
        }
        if let ptr { transfer.body.append(contentsOf: UnsafeRawBufferPointer(start: ptr, count: n)) }
        return n
    }

    static let headerCallback: ccurl_data_callback = { ptr, size, count, userdata in
        let transfer = Unmanaged<Transfer>.fromOpaque(userdata!).takeUnretainedValue()
        let n = size * count
        guard let ptr else { return n }
        transfer.receiveHeaderLine(UnsafeRawBufferPointer(start: ptr, count: n))
        return n
    }

    private func receiveHeaderLine(_ raw: UnsafeRawBufferPointer) {
        var end = raw.count
        while end > 0 && (raw[end - 1] == ASCII.lf || raw[end - 1] == ASCII.cr) { end -= 1 }
        let line = raw[0..<end]
        if line.starts(with: "HTTP/".utf8) {
            // A new status line (an interim 1xx answer came before): start over.
            headerLines.removeAll()
            parseStatusLine(line)
            return
        }
        if line.isEmpty { return }
        headerLines.append(Array(line))
        if line.count > 16, line.prefix(15).equalsLowercased("content-length:") {
            let digits = line.dropFirst(15).filter { $0 != ASCII.space && $0 != ASCII.tab }
            if let length = Int(String(decoding: digits, as: UTF8.self)), length <= maxResponseBytes {
                body.reserveCapacity(length)
            }
        }
    }

    private func parseStatusLine(_ line: Slice<UnsafeRawBufferPointer>) {
        // HTTP/1.1 200 OK | HTTP/2 200
        guard let firstSpace = line.firstIndex(of: ASCII.space) else { return }
        let rest = line[(firstSpace + 1)...]
        let code = rest.prefix(3)
        status = Int(String(decoding: code, as: UTF8.self)) ?? 0
        let afterCode = rest.dropFirst(4)
        reason = afterCode.isEmpty || line.starts(with: "HTTP/2".utf8) ? nil : Array(afterCode)
    }

    /// The answer as the proxy returns it: hop-by-hop fields, those named by
    /// `Connection`, and Content-Length (written again by the serializer) removed.
    func makeResponse() -> UpstreamResponse {
        var connectionNamed: [[UInt8]] = []
        for line in headerLines {
            guard let colon = line.firstIndex(of: ASCII.colon) else { continue }
            if FieldKind.classify(line[..<colon]) == .connection {
                connectionNamed += HeaderRules.connectionOptions(trimmed(line[(colon + 1)...]))
            }
        }
        var block: [UInt8] = []
        block.reserveCapacity(headerLines.reduce(0) { $0 + $1.count + 2 })
        var declared: Int?
        var hasRequestID = false
        for line in headerLines {
            guard let colon = line.firstIndex(of: ASCII.colon) else { continue }
            let name = line[..<colon]
            let kind = FieldKind.classify(name)
            if kind == .contentLength {
                declared = Int(String(decoding: trimmed(line[(colon + 1)...]), as: UTF8.self))
                continue
            }
            if kind.isHopByHop { continue }
            if kind == .requestID { hasRequestID = true }
            if !connectionNamed.isEmpty && connectionNamed.contains(where: { name.equalsIgnoringCase($0) }) { continue }
            block.append(contentsOf: line)
            block.append(ASCII.cr)
            block.append(ASCII.lf)
        }
        var response = UpstreamResponse(status: status, reason: reason, headerBlock: block, body: body, declaredLength: declared)
        response.hasRequestID = hasRequestID
        return response
    }

    private func trimmed(_ value: ArraySlice<UInt8>) -> ArraySlice<UInt8> {
        var s = value.startIndex
        var e = value.endIndex
        while s < e && ASCII.isOWS(value[s]) { s += 1 }
        while e > s && ASCII.isOWS(value[e - 1]) { e -= 1 }
        return value[s..<e]
    }

    var errorMessage: String {
        let text = errorBuffer.withUnsafeBufferPointer { String(cString: $0.baseAddress!) }
        return text
    }
}
