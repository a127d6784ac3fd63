// libFuzzer target for the HTTP1 module: the request head parser fed in two
// pieces (the first input byte picks the split), then the chunked decoder on
// what follows the head; the same bytes as an upstream's answer head; and as
// a getToken answer, a request path for the path canonicaliser, and a JSON
// string for the JSON writer. Built by
// Tests/Fuzz/fuzz.sh with -sanitize=fuzzer,address together with Sources/HTTP1
// and the pure token files of Sources/Iamport (TokenAnswer, Token, Secret,
// with Sources/EventLoops/MonotonicClock.swift for their unit of time); any
// crash, overflow or broken invariant traps.

@_cdecl("LLVMFuzzerTestOneInput")
public func fuzzHTTP1(_ data: UnsafePointer<UInt8>, _ size: Int) -> CInt {
    guard size > 0 else { return 0 }
    let split = Int(data[0]) % size
    let input = Array(UnsafeBufferPointer(start: data + 1, count: size - 1))
    checkAnswerHead(input)
    checkTokenAnswer(input)
    checkCanonicalPath(input)
    checkJSONString(input)
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
    precondition(head.path.lowerBound >= head.target.lowerBound && head.path.upperBound <= head.target.upperBound)
    precondition(!head[head.path].contains(UInt8(ascii: "?")))
    precondition(head.canonicalPath == CanonicalPath.of(head[head.path]), "the parser's canonical form is the path's")
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

/// The answer-head parser: offsets stay inside the input and the head, and
/// the framing it reports is never ambiguous.
func checkAnswerHead(_ input: [UInt8]) {
    let outcome = input.withUnsafeBytes { ResponseHeadParser.parse($0, maxHeadBytes: 2048) }
    guard case .complete(let head) = outcome else { return }
    precondition(head.length <= input.count && head.length <= 2048)
    precondition(head.status >= 100 && head.status <= 999)
    precondition(head.reason.upperBound <= head.length)
    precondition(!(head.chunked && head.contentLength != nil))
    for field in head.fields {
        precondition(!field.name.isEmpty && field.value.upperBound <= head.length)
        for b in input[field.value] { precondition(b == 0x09 || b >= 0x20 && b != 0x7F) }
    }
    // The fields its Connection names are tokens of the head, and hop-by-hop.
    for name in head.connection.names {
        precondition(!name.isEmpty && name.upperBound <= head.length)
        precondition(input[name].allSatisfy { ASCII.isTokenChar[Int($0)] })
    }
    input.withUnsafeBytes { raw in
        for field in head.fields where head.connection.names.contains(where: { input[$0].equalsIgnoringCase(input[field.name]) }) {
            precondition(head.isHopByHop(field, in: raw))
        }
    }
}


/// The getToken answer decoder: whatever the bytes, a failure with a reason,
/// or a token every rule holds for, whose header line is one line.
func checkTokenAnswer(_ input: [UInt8]) {
    switch TokenAnswer.decode(status: 200, body: input) {
    case .success(let issued):
        issued.accessToken.reveal { value in
            precondition(!value.utf8.isEmpty && value.utf8.count <= TokenAnswer.maxTokenLength)
            precondition(value.utf8.allSatisfy { $0 >= 0x21 && $0 <= 0x7E })
        }
        precondition(TokenAnswer.lifetimes.contains(issued.lifetime))
        let lifetime = Nanoseconds.seconds(issued.lifetime)
        let token = Token(value: issued.accessToken, generation: 1, expiresAt: lifetime,
                          serverExpiredAt: issued.expiredAt, issuedLifetime: lifetime)
        precondition(!token.authorizationLine.contains(0x0D) && !token.authorizationLine.contains(0x0A))
        precondition(!token.authorizationLine.contains(0))
        precondition(token.refreshAt < token.expiresAt)
    case .failure(let error):
        precondition(!error.message.isEmpty)
    }
}

/// The JSON string writer: valid UTF-8 out, no control byte, no quote but
/// the two (each inner one escaped), at most 6 bytes per byte in, and bytes
/// that are not UTF-8 repaired exactly as `String` repairs them.
func checkJSONString(_ input: [UInt8]) {
    var out: [UInt8] = []
    appendJSONString(utf8: input, to: &out)
    precondition(out.count >= 2 && out.count <= 6 * input.count + 2)
    precondition(String(validating: out, as: UTF8.self) != nil, "not UTF-8")
    precondition(!out.contains { $0 < 0x20 }, "a control byte")
    var escaped = false
    for b in out.dropFirst().dropLast() {
        precondition(escaped || b != UInt8(ascii: "\""), "an unescaped quote")
        escaped = !escaped && b == UInt8(ascii: "\\")
    }
    precondition(!escaped, "a dangling backslash")
    var repaired: [UInt8] = []
    appendRepairedUTF8(utf8: input, to: &repaired)
    precondition(repaired == Array(String(decoding: input, as: UTF8.self).utf8), "repaired unlike String")
}

/// The path canonicaliser: an accepted path's canonical form is canonical
/// (canonicalising it again changes nothing), has no `//`, no dot segment,
/// no escaped unreserved character, no lower-case hex digit, and no byte
/// outside visible ASCII; and it means the same path: fully decoded with
/// slashes merged, it equals the input decoded the same way.
func checkCanonicalPath(_ input: [UInt8]) {
    let canonical: [UInt8]
    switch CanonicalPath.of(input[...]) {
    case .refused:
        return
    case .asSent:
        canonical = input
    case .rewritten(let bytes):
        precondition(bytes != input, "rewritten to itself")
        precondition(bytes.count <= max(input.count, 1))
        precondition(CanonicalPath.of(bytes[...]) == .asSent, "canonicalising twice changed the path")
        canonical = bytes
    }
    precondition(canonical.first == UInt8(ascii: "/"))
    var previous: UInt8 = 0
    var i = 0
    while i < canonical.count {
        let b = canonical[i]
        precondition(b > 0x20 && b < 0x7F && b != UInt8(ascii: "\\"))
        precondition(!(b == UInt8(ascii: "/") && previous == b), "// in a canonical path")
        if b == UInt8(ascii: "%") {
            precondition(i + 2 < canonical.count)
            let digits = canonical[(i + 1)...(i + 2)]
            precondition(digits.allSatisfy { ASCII.hexValue($0) != nil && !(0x61...0x66).contains($0) })
            let decoded = ASCII.hexValue(digits.first!)! << 4 | ASCII.hexValue(digits.last!)!
            precondition(!CanonicalPath.isUnreserved(decoded), "an escaped unreserved character")
            precondition(decoded != UInt8(ascii: "/") && decoded != UInt8(ascii: "\\") && decoded >= 0x20 && decoded != 0x7F)
            i += 3
            previous = b
            continue
        }
        previous = b
        i += 1
    }
    for segment in canonical.dropFirst().split(separator: UInt8(ascii: "/"), omittingEmptySubsequences: false) {
        var name = decoded(segment)
        if let end = name.firstIndex(of: UInt8(ascii: ";")) { name = Array(name[..<end]) }
        precondition(name != [0x2E] && name != [0x2E, 0x2E], "a dot segment in a canonical path")
    }
    precondition(mergedSlashes(decoded(canonical[...])) == mergedSlashes(decoded(input.isEmpty ? [0x2F] : input[...])),
                 "the canonical form means another path")
}

private func decoded(_ bytes: ArraySlice<UInt8>) -> [UInt8] {
    var out: [UInt8] = []
    var i = bytes.startIndex
    while i < bytes.endIndex {
        if bytes[i] == UInt8(ascii: "%"), i + 2 < bytes.endIndex, let hi = ASCII.hexValue(bytes[i + 1]),
            let lo = ASCII.hexValue(bytes[i + 2])
        {
            out.append(hi << 4 | lo)
            i += 3
        } else {
            out.append(bytes[i])
            i += 1
        }
    }
    return out
}

private func mergedSlashes(_ bytes: [UInt8]) -> [UInt8] {
    var out: [UInt8] = []
    for b in bytes where !(b == UInt8(ascii: "/") && out.last == b) { out.append(b) }
    return out
}
