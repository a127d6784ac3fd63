/// Incremental decoder of a chunked request body (RFC 9112 §7.1).
///
/// Feed it whatever bytes have arrived; it appends the data of each chunk to
/// `body` and reports how much input it consumed. Chunk extensions and
/// trailer fields are checked and discarded; their total size is limited so a
/// body of empty chunks cannot make the server read forever.
public struct ChunkedDecoder: Sendable {
    public enum Outcome: Sendable, Equatable {
        case needMore(consumed: Int)
        case done(consumed: Int)
        case failure(HTTPError)
    }

    private enum State: Sendable {
        case sizeStart
        case size
        case sizeWhitespace
        case ext
        case sizeLF
        case data
        case dataCR
        case dataLF
        case trailerLineStart
        case trailerLine
        case trailerLF
        case finalLF
        case done
    }

    private var state: State = .sizeStart
    private var chunkSize = 0
    private var sizeDigits = 0
    private var remaining = 0
    private var overhead = 0
    private let limits: Limits

    public init(limits: Limits) {
        self.limits = limits
    }

    public mutating func decode(_ input: UnsafeRawBufferPointer, into body: inout [UInt8]) -> Outcome {
        var i = 0
        let n = input.count
        while i < n {
            let b = input[i]
            switch state {
            case .sizeStart, .size:
                if let v = ASCII.hexValue(b) {
                    // At most 15 digits, and checked arithmetic whatever the count.
                    sizeDigits += 1
                    let (shifted, overflow) = chunkSize.multipliedReportingOverflow(by: 16)
                    if sizeDigits > 15 || overflow { return .failure(.badRequest("chunk size too long")) }
                    chunkSize = shifted | Int(v)
                    state = .size
                } else if state == .sizeStart {
                    return .failure(.badRequest("invalid chunk size"))
                } else if b == ASCII.cr {
                    state = .sizeLF
                } else if b == ASCII.semicolon {
                    state = .ext
                } else if ASCII.isOWS(b) {
                    state = .sizeWhitespace
                } else {
                    return .failure(.badRequest("invalid chunk size"))
                }
                i += 1
            case .sizeWhitespace:
                if b == ASCII.semicolon {
                    state = .ext
                } else if !ASCII.isOWS(b) {
                    return .failure(.badRequest("invalid chunk size"))
                }
                i += 1
            case .ext:
                if b == ASCII.cr {
                    state = .sizeLF
                } else if !ASCII.isFieldValueChar[Int(b)] {
                    return .failure(.badRequest("invalid chunk extension"))
                }
                overhead += 1
                if overhead > limits.maxChunkOverheadBytes { return .failure(.badRequest("chunk extensions too long")) }
                i += 1
            case .sizeLF:
                guard b == ASCII.lf else { return .failure(.badRequest("bare CR in chunk size line")) }
                i += 1
                if chunkSize == 0 {
                    state = .trailerLineStart
                } else {
                    // The first test keeps the subtraction from overflowing, whatever the limit.
                    if body.count > limits.maxBodyBytes || chunkSize > limits.maxBodyBytes - body.count {
                        return .failure(.bodyTooLarge)
                    }
                    remaining = chunkSize
                    state = .data
                }
                chunkSize = 0
                sizeDigits = 0
            case .data:
                let take = min(remaining, n - i)
                body.append(contentsOf: UnsafeRawBufferPointer(rebasing: input[i..<(i + take)]))
                i += take
                remaining -= take
                if remaining == 0 { state = .dataCR }
            case .dataCR:
                guard b == ASCII.cr else { return .failure(.badRequest("chunk data longer than its size")) }
                state = .dataLF
                i += 1
            case .dataLF:
                guard b == ASCII.lf else { return .failure(.badRequest("bare CR after chunk data")) }
                state = .sizeStart
                i += 1
            case .trailerLineStart:
                if b == ASCII.cr {
                    state = .finalLF
                } else if ASCII.isOWS(b) || b == ASCII.colon {
                    return .failure(.badRequest("malformed trailer field"))
                } else if !ASCII.isTokenChar[Int(b)] {
                    return .failure(.badRequest("malformed trailer field"))
                } else {
                    state = .trailerLine
                }
                overhead += 1
                i += 1
            case .trailerLine:
                if b == ASCII.cr {
                    state = .trailerLF
                } else if !ASCII.isFieldValueChar[Int(b)] {
                    return .failure(.badRequest("control character in trailer field"))
                }
                overhead += 1
                if overhead > limits.maxChunkOverheadBytes { return .failure(.headersTooLarge) }
                i += 1
            case .trailerLF:
                guard b == ASCII.lf else { return .failure(.badRequest("bare CR in trailer")) }
                state = .trailerLineStart
                i += 1
            case .finalLF:
                guard b == ASCII.lf else { return .failure(.badRequest("bare CR at end of chunked body")) }
                state = .done
                return .done(consumed: i + 1)
            case .done:
                return .done(consumed: i)
            }
        }
        return .needMore(consumed: i)
    }
}
