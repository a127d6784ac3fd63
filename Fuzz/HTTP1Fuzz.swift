// libFuzzer target for the HTTP1 module: the head parser fed in two pieces
// (the first input byte picks the split), then the chunked decoder on what
// follows the head. Built by scripts/fuzz.sh with -sanitize=fuzzer,address
// together with Sources/HTTP1; any crash, overflow or broken invariant traps.

@_cdecl("LLVMFuzzerTestOneInput")
public func fuzzHTTP1(_ data: UnsafePointer<UInt8>, _ size: Int) -> CInt {
    guard size > 0 else { return 0 }
    let split = Int(data[0]) % size
    let input = Array(UnsafeBufferPointer(start: data + 1, count: size - 1))
    let limits = Limits(maxHeadBytes: 2048, maxRequestLineBytes: 512, maxHeaderCount: 20, maxBodyBytes: 4096,
                        maxChunkOverheadBytes: 512)
    var parser = HeadParser(limits: limits)
    var outcome = HeadParser.Outcome.incomplete
    for end in [min(split, input.count), input.count] {
        outcome = input[0..<end].withUnsafeBytes { parser.parse($0) }
        if case .incomplete = outcome { continue }
        break
    }
    guard case .complete(let head, let consumed) = outcome else { return 0 }
    precondition(consumed <= input.count)
    precondition(head.bytes.count <= limits.maxHeadBytes)
    precondition(head.fields.count <= limits.maxHeaderCount)
    for field in head.fields {
        precondition(field.name.upperBound <= head.bytes.count && field.value.upperBound <= head.bytes.count)
        precondition(!field.name.isEmpty)
        for b in head.bytes[field.value] { precondition(b == 0x09 || b >= 0x20 && b != 0x7F) }
    }
    precondition(head.minorVersion == 0 || head.minorVersion == 1)
    if head.framing == .chunked {
        var decoder = ChunkedDecoder(limits: limits)
        var body: [UInt8] = []
        let rest = Array(input[consumed...])
        let result = rest.withUnsafeBytes { decoder.decode($0, into: &body) }
        switch result {
        case .needMore(let n), .done(let n): precondition(n <= rest.count)
        case .failure: break
        }
        precondition(body.count <= limits.maxBodyBytes)
    }
    return 0
}
