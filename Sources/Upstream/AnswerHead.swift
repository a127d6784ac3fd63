import HTTP1

/// What of an answer's head the proxy relays: the status, the reason phrase
/// when it is not the usual one, and the end-to-end fields. Pure.
enum AnswerHead {
    /// The answer `head` (parsed from `bytes`) as the caller sees it, and the
    /// server's `Keep-Alive: timeout=N` when it sent one. The body and its
    /// framing are the exchange's.
    static func response(_ head: UpstreamHead, _ bytes: UnsafeRawBufferPointer) -> (UpstreamResponse, keepAliveSeconds: Int?) {
        var answer = UpstreamResponse(status: head.status)
        var keepAliveSeconds: Int?
        if !head.reason.isEmpty {
            let phrase = UnsafeRawBufferPointer(rebasing: bytes[head.reason])
            // The usual phrase is written by the serializer byte for byte.
            let standard = ResponseSerializer.reasonPhrase(head.status)
            if !standard.withUTF8Buffer({ phrase.elementsEqual($0) }) { answer.reason = Array(phrase) }
        }
        // Room for the lines the proxy adds (`X-Request-Id`, the replay's
        // mark), so adding them does not move the block; the relayed lines,
        // never longer than the head, written with a cursor.
        answer.headerBlock = bytesWritten(capacity: head.length + 96) { block in
            keepAliveSeconds = relayedLines(head, bytes, into: &block)
        }
        answer.declaredLength = head.contentLength
        return (answer, keepAliveSeconds)
    }

    /// Writes the fields relayed to the client; returns the server's
    /// `Keep-Alive: timeout=N`, if it sent one.
    private static func relayedLines(_ head: UpstreamHead, _ bytes: UnsafeRawBufferPointer,
                                     into block: inout ByteCursor) -> Int? {
        var keepAliveSeconds: Int?
        for field in head.fields {
            switch field.kind {
            case .contentLength:
                continue  // written again by the serializer
            case .requestID:
                continue  // the proxy's own is added: the upstream cannot speak for the proxy
            case .keepAlive:
                if let seconds = keepAliveTimeout(bytes[field.value]) { keepAliveSeconds = seconds }
                continue
            case .other:
                // Nor may it speak in the proxy's name (`X-Iamport-Proxy-Error`,
                // `X-Iamport-Proxy-Replayed`, …).
                if isProxyField(bytes[field.name]) { continue }
            default:
                break
            }
            // Hop-by-hop, or named in the answer's `Connection`: decided as for requests.
            if head.isHopByHop(field, in: bytes) { continue }
            block.put(UnsafeRawBufferPointer(rebasing: bytes[field.name.lowerBound..<field.value.upperBound]))
            block.put("\r\n" as StaticString)
        }
        return keepAliveSeconds
    }

    /// A field name starting with `X-Iamport-Proxy-`, in any case.
    static func isProxyField<Name: Collection>(_ name: Name) -> Bool where Name.Element == UInt8 {
        name.count > 16 && name.prefix(16).equalsLowercased("x-iamport-proxy-")
    }

    /// `timeout=N` of a `Keep-Alive` field value, N being at most 9 digits.
    static func keepAliveTimeout<Bytes: Collection>(_ value: Bytes) -> Int? where Bytes.Element == UInt8 {
        var seconds: Int?
        for parameter in value.split(separator: UInt8(ascii: ",")) {
            let trimmed = parameter.drop { $0 == ASCII.space || $0 == ASCII.tab }
            guard trimmed.count > 8, trimmed.prefix(8).equalsLowercased("timeout=") else { continue }
            let digits = trimmed.dropFirst(8).prefix { $0 != ASCII.space && $0 != ASCII.tab }
            guard !digits.isEmpty, digits.count <= 9, digits.allSatisfy({ $0 >= 0x30 && $0 <= 0x39 }) else { return nil }
            seconds = digits.reduce(0) { $0 * 10 + Int($1 - 0x30) }
        }
        return seconds
    }
}
