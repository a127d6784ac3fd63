import CCurl
import HTTP1

/// The state of one exchange with the upstream while libcurl runs it. It is
/// reached from curl's callbacks through CURLOPT_PRIVATE (retained once when
/// added, released once after removal) and the WRITEDATA/HEADERDATA pointers
/// (unretained, valid while the private reference is held).
final class Transfer {
    let easy: UnsafeMutableRawPointer
    /// The request's header list: curl_slist nodes followed by the lines they
    /// point at, in one allocation that lives as long as the transfer.
    private var headerList: UnsafeMutableRawPointer?
    /// The request body: libcurl reads it in place (CURLOPT_POSTFIELDS). The
    /// array is never mutated while the transfer runs, so its storage stays put.
    let requestBody: [UInt8]
    var completion: ((Result<UpstreamResponse, UpstreamError>) -> Void)?
    let maxResponseBytes: Int

    var status = 0
    var reason: [UInt8]?
    /// End-to-end header lines of the answer, filtered as they arrive.
    var headerBlock: [UInt8] = []
    var declaredLength: Int?
    var hasRequestID = false
    /// Names a `Connection` field listed: dropped from the block at the end (rare).
    var connectionOptions: [[UInt8]] = []
    var body: [UInt8] = []
    var tooLarge = false

    init(easy: UnsafeMutableRawPointer, requestBody: [UInt8], maxResponseBytes: Int) {
        self.easy = easy
        self.requestBody = requestBody
        self.maxResponseBytes = maxResponseBytes
        headerBlock.reserveCapacity(512)
    }

    deinit {
        headerList?.deallocate()
    }

    /// Builds the request's header list: `first` (the Authorization line)
    /// then the NUL-terminated lines of `lines`.
    func setHeaders(first: [UInt8], lines: [UInt8]) -> UnsafeMutablePointer<curl_slist>? {
        var count = first.isEmpty ? 0 : 1
        for b in lines where b == 0 { count += 1 }
        guard count > 0 else { return nil }
        let nodeBytes = count * MemoryLayout<curl_slist>.stride
        let raw = UnsafeMutableRawPointer.allocate(
            byteCount: nodeBytes + first.count + 1 + lines.count, alignment: MemoryLayout<curl_slist>.alignment)
        headerList = raw
        let nodes = raw.bindMemory(to: curl_slist.self, capacity: count)
        let text = (raw + nodeBytes).assumingMemoryBound(to: CChar.self)
        var offset = 0
        var node = 0
        func link(_ start: Int) {
            nodes[node] = curl_slist(data: text + start, next: nil)
            if node > 0 { nodes[node - 1].next = nodes + node }
            node += 1
        }
        if !first.isEmpty {
            first.withUnsafeBytes { UnsafeMutableRawPointer(text).copyMemory(from: $0.baseAddress!, byteCount: first.count) }
            text[first.count] = 0
            link(0)
            offset = first.count + 1
        }
        if !lines.isEmpty {
            lines.withUnsafeBytes { UnsafeMutableRawPointer(text + offset).copyMemory(from: $0.baseAddress!, byteCount: lines.count) }
            var start = offset
            for i in offset..<(offset + lines.count) where text[i] == 0 {
                link(start)
                start = i + 1
            }
        }
        return nodes
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

    /// One line of the answer's head, as libcurl hands them over.
    private func receiveHeaderLine(_ raw: UnsafeRawBufferPointer) {
        var end = raw.count
        while end > 0 && (raw[end - 1] == ASCII.lf || raw[end - 1] == ASCII.cr) { end -= 1 }
        if end == 0 { return }
        let line = UnsafeRawBufferPointer(rebasing: raw[0..<end])
        if line.count >= 5 && line[0] == UInt8(ascii: "H") && line[1] == UInt8(ascii: "T") && line[2] == UInt8(ascii: "T")
            && line[3] == UInt8(ascii: "P") && line[4] == ASCII.slash
        {
            // A new status line (after an interim 1xx answer): start over.
            headerBlock.removeAll(keepingCapacity: true)
            declaredLength = nil
            hasRequestID = false
            connectionOptions = []
            parseStatusLine(line)
            return
        }
        guard let colon = line.firstIndex(of: ASCII.colon) else { return }
        let kind = FieldKind.classify(UnsafeRawBufferPointer(rebasing: line[0..<colon]))
        switch kind {
        case .contentLength:
            var value = 0
            var digits = 0
            for b in line[(colon + 1)...] where b != ASCII.space && b != ASCII.tab {
                guard b >= 0x30 && b <= 0x39, digits < 15 else { return }
                value = value * 10 + Int(b - 0x30)
                digits += 1
            }
            if digits > 0 {
                declaredLength = value
                if value <= maxResponseBytes { body.reserveCapacity(value) }
            }
            return  // written again by the serializer
        case .connection:
            // Usually just `keep-alive` or `close`: those name no field, and are
            // checked without allocating.
            HeaderRules.forEachConnectionOption(line[(colon + 1)...]) { option in
                if !option.equalsLowercased("close") && !option.equalsLowercased("keep-alive") {
                    connectionOptions.append(option.map(ASCII.lower))
                }
            }
            return
        case .requestID:
            hasRequestID = true
        default:
            if kind.isHopByHop { return }
        }
        headerBlock.append(contentsOf: line)
        headerBlock.append(ASCII.cr)
        headerBlock.append(ASCII.lf)
    }

    private func parseStatusLine(_ line: UnsafeRawBufferPointer) {
        // HTTP/1.1 200 OK | HTTP/2 200
        guard let firstSpace = line.firstIndex(of: ASCII.space), firstSpace + 4 <= line.count else { return }
        var code = 0
        for i in (firstSpace + 1)..<(firstSpace + 4) {
            let b = line[i]
            guard b >= 0x30 && b <= 0x39 else { status = 0; return }
            code = code * 10 + Int(b - 0x30)
        }
        status = code
        let reasonStart = firstSpace + 5
        guard reasonStart < line.count && line[5] != UInt8(ascii: "2") else {
            reason = nil
            return
        }
        let phrase = UnsafeRawBufferPointer(rebasing: line[reasonStart...])
        // The usual phrase is written by the serializer byte for byte; only
        // another one needs keeping.
        let standard = ResponseSerializer.reasonPhrase(code)
        reason = standard.withUTF8Buffer { phrase.elementsEqual($0) } ? nil : Array(phrase)
    }

    /// The answer as the proxy returns it.
    func makeResponse() -> UpstreamResponse {
        if !connectionOptions.isEmpty { dropConnectionOptions() }
        var response = UpstreamResponse(
            status: status, reason: reason, headerBlock: headerBlock, body: body, declaredLength: declaredLength)
        response.hasRequestID = hasRequestID
        return response
    }

    /// Removes the lines whose names the answer's `Connection` field listed.
    private func dropConnectionOptions() {
        var kept: [UInt8] = []
        kept.reserveCapacity(headerBlock.count)
        var start = 0
        while start < headerBlock.count {
            var end = start
            while end + 1 < headerBlock.count && !(headerBlock[end] == ASCII.cr && headerBlock[end + 1] == ASCII.lf) { end += 1 }
            let line = headerBlock[start..<end]
            let name = line.prefix { $0 != ASCII.colon }
            if !connectionOptions.contains(where: { name.equalsIgnoringCase($0) }) {
                kept.append(contentsOf: headerBlock[start..<min(end + 2, headerBlock.count)])
            }
            start = end + 2
        }
        headerBlock = kept
    }
}
