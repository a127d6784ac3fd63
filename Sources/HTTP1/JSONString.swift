/// The project's one JSON string writer (RFC 8259), for every JSON the
/// program writes by hand: error envelopes, local answers, log lines, the
/// access log, the fakes' answers.
///
/// The rules, in one place (`writeJSONUTF8`):
/// - `"` and `\` are escaped; so is every byte below 0x20, as `\n`, `\r`,
///   `\t` or `\u00XX` (lower-case hex). DEL (0x7F) needs no escape.
/// - UTF-8 passes through as it is.
/// - Bytes that are not UTF-8 become U+FFFD, one for each maximal invalid
///   subpart, exactly as `String(decoding:as: UTF8.self)` repairs them: a
///   value written from raw bytes reads the same as one written from the
///   `String` of those bytes, and the output is always valid UTF-8.
///
/// At most 6 bytes out per byte in, plus the 2 quotes. The functions are
/// `@inlinable` so that each caller gets a copy specialised for its input
/// and output types (the access log writes straight into reserved memory).

/// Where the writer puts bytes: a `[UInt8]`, or a cursor into memory
/// reserved ahead.
public protocol JSONOutput {
    mutating func writeByte(_ byte: UInt8)
    /// Bytes that go out as they are, in one piece.
    mutating func writeBytes(_ run: UnsafeBufferPointer<UInt8>)
}

extension Array: JSONOutput where Element == UInt8 {
    @inlinable
    public mutating func writeByte(_ byte: UInt8) {
        append(byte)
    }

    @inlinable
    public mutating func writeBytes(_ run: UnsafeBufferPointer<UInt8>) {
        append(contentsOf: run)
    }
}

/// `"…"`: `bytes` as a JSON string.
@inlinable
public func appendJSONString<Bytes: Collection<UInt8>, Output: JSONOutput>(utf8 bytes: Bytes, to out: inout Output) {
    out.writeByte(UInt8(ascii: "\""))
    withContiguousBytes(bytes) { writeJSONUTF8($0, escaping: true, to: &out) }
    out.writeByte(UInt8(ascii: "\""))
}

/// `"…"`: `text` as a JSON string.
@inlinable
public func appendJSONString<Output: JSONOutput>(_ text: String, to out: inout Output) {
    appendJSONString(utf8: text.utf8, to: &out)
}

/// What goes between the quotes of a JSON string, without them.
@inlinable
public func appendJSONEscaped<Bytes: Collection<UInt8>, Output: JSONOutput>(utf8 bytes: Bytes, to out: inout Output) {
    withContiguousBytes(bytes) { writeJSONUTF8($0, escaping: true, to: &out) }
}

/// `bytes` with what is not UTF-8 replaced as in a JSON string, and nothing
/// escaped: for a bare value in a text log line.
@inlinable
public func appendRepairedUTF8<Bytes: Collection<UInt8>, Output: JSONOutput>(utf8 bytes: Bytes, to out: inout Output) {
    withContiguousBytes(bytes) { writeJSONUTF8($0, escaping: false, to: &out) }
}

/// The bytes in one piece: their own storage when they have it (arrays,
/// slices, a native `String`'s UTF-8), a copy otherwise.
@inlinable
func withContiguousBytes<Bytes: Collection<UInt8>>(_ bytes: Bytes, _ body: (UnsafeBufferPointer<UInt8>) -> Void) {
    if bytes.withContiguousStorageIfAvailable(body) == nil {
        Array(bytes).withUnsafeBufferPointer(body)
    }
}

/// The rules. Runs of bytes that need nothing (ASCII other than the
/// escaped ones, and whole valid UTF-8 sequences) go out with one
/// `writeBytes` each.
@inlinable
func writeJSONUTF8<Output: JSONOutput>(_ p: UnsafeBufferPointer<UInt8>, escaping: Bool, to out: inout Output) {
    let n = p.count
    var i = 0
    while i < n {
        var j = i
        scan: while j < n {
            let b = p[j]
            if b < 0x80 {
                if escaping && (b < 0x20 || b == UInt8(ascii: "\"") || b == UInt8(ascii: "\\")) { break scan }
                j += 1
            } else {
                let length = utf8SequenceLength(p, at: j)
                if length < 0 { break scan }
                j += length
            }
        }
        if j > i { out.writeBytes(UnsafeBufferPointer(rebasing: p[i..<j])) }
        if j == n { return }
        let b = p[j]
        if b < 0x80 {
            writeJSONEscape(b, to: &out)
            i = j + 1
        } else {
            // U+FFFD for the maximal invalid subpart.
            out.writeByte(0xEF)
            out.writeByte(0xBF)
            out.writeByte(0xBD)
            i = j - utf8SequenceLength(p, at: j)
        }
    }
}

/// `\"`, `\\`, `\n`, `\r`, `\t`, or `\u00XX` for the other control bytes.
@inlinable
func writeJSONEscape<Output: JSONOutput>(_ b: UInt8, to out: inout Output) {
    out.writeByte(UInt8(ascii: "\\"))
    switch b {
    case UInt8(ascii: "\""), UInt8(ascii: "\\"): out.writeByte(b)
    case 0x0A: out.writeByte(UInt8(ascii: "n"))
    case 0x0D: out.writeByte(UInt8(ascii: "r"))
    case 0x09: out.writeByte(UInt8(ascii: "t"))
    default:
        out.writeByte(UInt8(ascii: "u"))
        out.writeByte(UInt8(ascii: "0"))
        out.writeByte(UInt8(ascii: "0"))
        out.writeByte(lowerHexDigit(b >> 4))
        out.writeByte(lowerHexDigit(b & 0xF))
    }
}

@inlinable
func lowerHexDigit(_ nibble: UInt8) -> UInt8 {
    nibble < 10 ? UInt8(ascii: "0") + nibble : UInt8(ascii: "a") - 10 + nibble
}

/// At `p[i]` (0x80 or above): the length of the valid UTF-8 sequence that
/// starts there, or minus the length of its maximal invalid subpart (the
/// longest start of a valid sequence, at least the one byte), per the
/// Unicode Standard's table of well-formed sequences (3-7): no overlong
/// forms, no surrogates, nothing above U+10FFFF.
@inlinable
func utf8SequenceLength(_ p: UnsafeBufferPointer<UInt8>, at i: Int) -> Int {
    let lead = p[i]
    let continuations: Int
    var low: UInt8 = 0x80
    var high: UInt8 = 0xBF
    switch lead {
    case 0xC2...0xDF: continuations = 1
    case 0xE0: continuations = 2; low = 0xA0
    case 0xE1...0xEC, 0xEE...0xEF: continuations = 2
    case 0xED: continuations = 2; high = 0x9F
    case 0xF0: continuations = 3; low = 0x90
    case 0xF1...0xF3: continuations = 3
    case 0xF4: continuations = 3; high = 0x8F
    default: return -1
    }
    var k = 1
    while k <= continuations {
        guard i + k < p.count else { return -k }
        let c = p[i + k]
        // Only the second byte has a narrower range than 0x80...0xBF.
        guard c >= low && c <= high else { return -k }
        low = 0x80
        high = 0xBF
        k += 1
    }
    return continuations + 1
}
