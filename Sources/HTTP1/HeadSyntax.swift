#if canImport(Glibc)
import Glibc
#endif

/// The syntax both kinds of head share (RFC 9112 §2 to §5), parsed in one
/// place as picohttpparser's `parse_request` and `parse_response` share
/// `parse_headers`: the scan for the end of the head with its line-end checks,
/// the field lines, the `HTTP/x.y` version and decimal numbers. What a head
/// means (the request line, the status line, framing, persistence) is left
/// to `HeadParser` and `ResponseHeadParser`, each with its own typed errors.
enum HeadSyntax {
    // MARK: - Line ends and the end of the head

    enum Scan: Equatable {
        /// Offset just past the blank line that ends the head.
        case end(Int)
        /// Not there yet; scanning resumes at `resume` when more bytes arrive.
        case incomplete(resume: Int)
        /// An LF without the CR before it.
        case bareLF
        /// A CR not followed by an LF.
        case bareCR
    }

    /// Scans `buffer` from `from` for the blank line ending a head that
    /// starts at `start`, checking every line end on the way, so a bare CR
    /// or LF is refused as soon as it is seen rather than after a timeout.
    /// `firstLineEnd` is set to the offset past the first line's LF, if it
    /// was not set before. A CR as the last byte is looked at again on the
    /// next call, when its successor is there.
    ///
    /// A line at a time: `memchr` finds its LF and any CR before the CR that
    /// must precede it, each in one vectorised pass (a loop over the bytes
    /// testing each for both was a third of an answer head's parse).
    @inline(__always)
    static func scan(
        _ buffer: UnsafeRawBufferPointer, start: Int, from: Int, firstLineEnd: inout Int?
    ) -> Scan {
        let n = buffer.count
        guard from < n, let base = buffer.baseAddress else { return .incomplete(resume: from) }
        var i = from
        while i < n {
            let lf = memchr(base + i, Int32(ASCII.lf), n - i).map { base.distance(to: UnsafeRawPointer($0)) } ?? n
            // A CR is allowed only just before the LF; with no LF yet, a CR
            // as the last byte waits for its successor.
            let crAllowedAt = lf < n ? lf - 1 : n - 1
            if crAllowedAt > i, memchr(base + i, Int32(ASCII.cr), crAllowedAt - i) != nil { return .bareCR }
            guard lf < n else {
                return .incomplete(resume: buffer[n - 1] == ASCII.cr ? n - 1 : n)
            }
            if lf == start || buffer[lf - 1] != ASCII.cr { return .bareLF }
            if firstLineEnd == nil { firstLineEnd = lf + 1 }
            if lf - start >= 3 && buffer[lf - 2] == ASCII.lf && buffer[lf - 3] == ASCII.cr { return .end(lf + 1) }
            i = lf + 1
        }
        return .incomplete(resume: i)
    }

    // MARK: - Field lines

    /// Parses the field lines of `head` from `from` up to its blank line,
    /// appending each to `fields` with its value trimmed of whitespace and its
    /// kind recognised. `head` must be one whole head whose line ends `scan`
    /// has checked: every CR is followed by an LF, and it ends with CRLF CRLF.
    /// The field lines are `token ":" OWS *field-vchar OWS CRLF`, nothing else.
    @inline(__always)
    static func parseFields(
        _ head: UnsafeRawBufferPointer, from: Int, maxCount: Int, into fields: inout [HeaderField]
    ) -> FieldLineDefect? {
        let n = head.count
        guard let base = head.baseAddress else { return nil }
        // The tables once, without a bounds check per byte (a byte indexes
        // 256 entries); each global's access checks its lazy initialisation.
        return ASCII.isTokenChar.withUnsafeBufferPointer { isTokenChar in
            ASCII.isFieldValueChar.withUnsafeBufferPointer { isFieldValueChar -> FieldLineDefect? in
                var i = from
                while i < n {
                    if head[i] == ASCII.cr { break }  // the blank line
                    if ASCII.isOWS(head[i]) { return .obsoleteLineFolding }
                    let nameStart = i
                    while i < n && isTokenChar[Int(head[i])] { i += 1 }
                    guard i < n, head[i] == ASCII.colon else { return .malformedName }
                    if i == nameStart { return .emptyName }
                    let name = nameStart..<i
                    i += 1
                    while i < n && ASCII.isOWS(head[i]) { i += 1 }
                    let valueStart = i
                    // The value's bytes are checked up to the line's CR,
                    // which ends it (the scan saw a CR before every LF, and
                    // no CR elsewhere), in one pass that also finds the CR:
                    // eight bytes at a time while none is below 0x20 or DEL
                    // (reading on past the line is reading the head), then
                    // from the word with one (the CR, a tab, or a byte
                    // refused) byte by byte through the table.
                    while i &+ 8 <= n {
                        let word = (base + i).loadUnaligned(as: UInt64.self)
                        let control = (word &- 0x2020_2020_2020_2020) & ~word & 0x8080_8080_8080_8080
                        let notDEL = word ^ 0x7F7F_7F7F_7F7F_7F7F
                        let del = (notDEL &- 0x0101_0101_0101_0101) & ~notDEL & 0x8080_8080_8080_8080
                        if control | del != 0 { break }
                        i &+= 8
                    }
                    while i < n && head[i] != ASCII.cr {
                        guard isFieldValueChar[Int(head[i])] else { return .controlCharacter }
                        i += 1
                    }
                    let lineEnd = i
                    var valueEnd = lineEnd
                    while valueEnd > valueStart && ASCII.isOWS(head[valueEnd - 1]) { valueEnd -= 1 }
                    i += 2  // CRLF, checked by the scan
                    if fields.count == maxCount { return .tooMany }
                    let kind = FieldKind.classify(UnsafeRawBufferPointer(rebasing: head[name]))
                    fields.append(HeaderField(name: name, value: valueStart..<valueEnd, kind: kind))
                }
                return nil
            }
        }
    }

    // MARK: - Version and numbers

    /// `"HTTP/" DIGIT "." DIGIT` at `at`, ending before `limit`: its major
    /// and minor digits, or nil. Which versions are served is the caller's
    /// choice (a request's other versions get 505, an answer's are malformed).
    @inline(__always)
    static func version(_ b: UnsafeRawBufferPointer, at i: Int, limit: Int) -> (major: Int, minor: Int)? {
        guard i + 8 <= limit, b[i] == UInt8(ascii: "H"), b[i + 1] == UInt8(ascii: "T"),
            b[i + 2] == UInt8(ascii: "T"), b[i + 3] == UInt8(ascii: "P"), b[i + 4] == ASCII.slash,
            let major = digit(b[i + 5]), b[i + 6] == ASCII.dot, let minor = digit(b[i + 7])
        else { return nil }
        return (major, minor)
    }

    @inline(__always)
    static func digit(_ b: UInt8) -> Int? {
        b >= 0x30 && b <= 0x39 ? Int(b &- 0x30) : nil
    }

    /// A Content-Length value, in a request or an answer: 1*DIGIT with no
    /// sign, space or list, at most 15 digits (and the read itself is
    /// checked, whatever the length).
    static func contentLength<Digits: Collection>(_ value: Digits) -> Int? where Digits.Element == UInt8 {
        guard value.count <= 15 else { return nil }
        return ASCII.decimal(value)
    }
}

/// Why a field line was refused; the same rules for requests and answers.
public enum FieldLineDefect: Error, Equatable, Sendable {
    /// A line starting with whitespace (obs-fold, RFC 9112 §5.2).
    case obsoleteLineFolding
    /// A name that is not a token, or not followed by a colon at once
    /// (whitespace before the colon included).
    case malformedName
    case emptyName
    /// A control byte (NUL, DEL, ...) in a value.
    case controlCharacter
    /// More fields than the limit.
    case tooMany
}

/// One field line of a head, request or answer: name and value as ranges of
/// the head's bytes (the value without surrounding whitespace), and the kind
/// recognised while parsing so no later step compares names again.
public struct HeaderField: Sendable, Equatable {
    public var name: Range<Int>
    public var value: Range<Int>
    public var kind: FieldKind
}
