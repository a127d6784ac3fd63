#if canImport(Glibc)
import Glibc
#endif

/// Byte constants and character classes of RFC 9110 / 9112, as tables so the
/// parser checks a byte with one load.
public enum ASCII {
    public static let cr: UInt8 = 0x0D
    public static let lf: UInt8 = 0x0A
    public static let space: UInt8 = 0x20
    public static let tab: UInt8 = 0x09
    public static let colon: UInt8 = 0x3A
    public static let comma: UInt8 = 0x2C
    public static let semicolon: UInt8 = 0x3B
    public static let slash: UInt8 = 0x2F
    public static let question: UInt8 = 0x3F
    public static let percent: UInt8 = 0x25
    public static let dot: UInt8 = 0x2E
    public static let equals: UInt8 = 0x3D
    public static let ampersand: UInt8 = 0x26
    public static let hash: UInt8 = 0x23
    public static let backslash: UInt8 = 0x5C

    /// `tchar` of RFC 9110 §5.6.2: the bytes of a token (method, header name).
    public static let isTokenChar: [Bool] = {
        var table = [Bool](repeating: false, count: 256)
        for b in UInt8(ascii: "0")...UInt8(ascii: "9") { table[Int(b)] = true }
        for b in UInt8(ascii: "a")...UInt8(ascii: "z") { table[Int(b)] = true }
        for b in UInt8(ascii: "A")...UInt8(ascii: "Z") { table[Int(b)] = true }
        for c in "!#$%&'*+-.^_`|~".utf8 { table[Int(c)] = true }
        return table
    }()

    /// Bytes allowed in a field value: HTAB, SP, VCHAR and obs-text; never CTLs or DEL.
    public static let isFieldValueChar: [Bool] = {
        var table = [Bool](repeating: false, count: 256)
        table[0x09] = true
        for b in 0x20...0x7E { table[b] = true }
        for b in 0x80...0xFF { table[b] = true }
        return table
    }()

    /// Bytes allowed in a request-target: visible ASCII only.
    public static let isTargetChar: [Bool] = {
        var table = [Bool](repeating: false, count: 256)
        for b in 0x21...0x7E { table[b] = true }
        return table
    }()

    @inlinable
    public static func hexValue(_ b: UInt8) -> UInt8? {
        switch b {
        case UInt8(ascii: "0")...UInt8(ascii: "9"): return b &- UInt8(ascii: "0")
        case UInt8(ascii: "a")...UInt8(ascii: "f"): return b &- UInt8(ascii: "a") &+ 10
        case UInt8(ascii: "A")...UInt8(ascii: "F"): return b &- UInt8(ascii: "A") &+ 10
        default: return nil
        }
    }

    /// 1*DIGIT as an Int, or nil: empty, anything but a digit (no sign, no
    /// space), or past Int.max. Checked arithmetic, so no input can trap it.
    static func decimal<Digits: Collection>(_ digits: Digits) -> Int? where Digits.Element == UInt8 {
        guard !digits.isEmpty else { return nil }
        var value = 0
        for b in digits {
            guard b >= 0x30 && b <= 0x39 else { return nil }
            let (shifted, o1) = value.multipliedReportingOverflow(by: 10)
            let (sum, o2) = shifted.addingReportingOverflow(Int(b &- 0x30))
            if o1 || o2 { return nil }
            value = sum
        }
        return value
    }

    @inlinable
    public static func isOWS(_ b: UInt8) -> Bool { b == space || b == tab }

    /// Lower-case ASCII letters only.
    @inlinable
    public static func lower(_ b: UInt8) -> UInt8 {
        (b >= 0x41 && b <= 0x5A) ? b | 0x20 : b
    }
}

extension ASCII {
    /// Whether the `count` bytes at `bytes` are the lower-case ASCII text at
    /// `lowercased` (no upper-case letters, nothing above 0x7F), ignoring the
    /// case of letters only. Eight bytes at a time: a letter of the text
    /// lets its byte match with bit 0x20 set; every other byte must match
    /// exactly. Field names are compared this way several times a request,
    /// where a byte-by-byte loop cost about ten instructions a byte.
    @inlinable
    public static func equalsFolded(_ bytes: UnsafeRawPointer, _ lowercased: UnsafeRawPointer, count: Int) -> Bool {
        if count >= 8 {
            var i = 0
            while i + 8 < count {
                guard wordEqualsFolded(bytes.loadUnaligned(fromByteOffset: i, as: UInt64.self),
                                       lowercased.loadUnaligned(fromByteOffset: i, as: UInt64.self))
                else { return false }
                i += 8
            }
            // The last eight bytes, overlapping those already compared.
            return wordEqualsFolded(bytes.loadUnaligned(fromByteOffset: count - 8, as: UInt64.self),
                                    lowercased.loadUnaligned(fromByteOffset: count - 8, as: UInt64.self))
        }
        if count >= 4 {
            return wordEqualsFolded(UInt64(bytes.loadUnaligned(as: UInt32.self)),
                                    UInt64(lowercased.loadUnaligned(as: UInt32.self)))
                && wordEqualsFolded(UInt64(bytes.loadUnaligned(fromByteOffset: count - 4, as: UInt32.self)),
                                    UInt64(lowercased.loadUnaligned(fromByteOffset: count - 4, as: UInt32.self)))
        }
        for i in 0..<count where lower(bytes.load(fromByteOffset: i, as: UInt8.self))
            != lowercased.load(fromByteOffset: i, as: UInt8.self) {
            return false
        }
        return true
    }

    /// `word` against eight bytes of lower-case ASCII text. A text byte `t`
    /// (below 0x80, so no sum carries into the next byte) is a letter when
    /// `t + 0x1F` reaches 0x80 (t ≥ 0x61) and `t + 0x05` does not (t ≤ 0x7A).
    @inlinable @inline(__always)
    static func wordEqualsFolded(_ word: UInt64, _ text: UInt64) -> Bool {
        let letters = (text &+ 0x1F1F_1F1F_1F1F_1F1F) & ~(text &+ 0x0505_0505_0505_0505) & 0x8080_8080_8080_8080
        return word | (letters >> 2) == text
    }
}

extension Collection where Element == UInt8 {
    /// Case-insensitive ASCII comparison with a lower-case literal.
    @inlinable
    public func equalsLowercased(_ literal: StaticString) -> Bool {
        guard count == literal.utf8CodeUnitCount else { return false }
        if isEmpty { return true }
        return literal.withUTF8Buffer { lit in
            let contiguous = withContiguousStorageIfAvailable {
                ASCII.equalsFolded(UnsafeRawPointer($0.baseAddress!), UnsafeRawPointer(lit.baseAddress!),
                                   count: lit.count)
            }
            if let contiguous { return contiguous }
            var i = 0
            for b in self {
                if ASCII.lower(b) != lit[i] { return false }
                i += 1
            }
            return true
        }
    }

    /// Case-insensitive ASCII comparison of two byte sequences.
    @inlinable
    public func equalsIgnoringCase<Other: Collection>(_ other: Other) -> Bool where Other.Element == UInt8 {
        guard count == other.count else { return false }
        return zip(self, other).allSatisfy { ASCII.lower($0) == ASCII.lower($1) }
    }
}

extension ArraySlice where Element == UInt8 {
    /// Byte-for-byte equality with a literal, through one `memcmp`.
    /// (`elementsEqual("…".utf8)` walks String's UTF-8 view generically,
    /// a few hundred instructions for a method name.)
    @inlinable
    public func equals(_ literal: StaticString) -> Bool {
        count == literal.utf8CodeUnitCount && hasPrefix(literal)
    }

    /// Whether these bytes start with a literal's.
    @inlinable
    public func hasPrefix(_ literal: StaticString) -> Bool {
        let n = literal.utf8CodeUnitCount
        guard n > 0 else { return true }
        guard count >= n else { return false }
        // withUTF8Buffer: a one-character literal has no utf8Start.
        return literal.withUTF8Buffer { lit in withUnsafeBytes { memcmp($0.baseAddress!, lit.baseAddress!, n) == 0 } }
    }
}

extension UnsafeRawBufferPointer {
    /// Case-insensitive ASCII comparison with a lower-case literal of the same length.
    @inlinable
    public func isLowercased(_ literal: StaticString) -> Bool {
        guard count == literal.utf8CodeUnitCount else { return false }
        if count == 0 { return true }
        return literal.withUTF8Buffer { lit in
            ASCII.equalsFolded(baseAddress!, UnsafeRawPointer(lit.baseAddress!), count: lit.count)
        }
    }
}

extension Array where Element == UInt8 {
    /// Appends a literal's bytes with one copy. `append(contentsOf: "…".utf8)`
    /// goes through String's generic UTF-8 path, about a hundred instructions
    /// per call, several times per proxied request.
    @inlinable
    public mutating func append(literal: StaticString) {
        literal.withUTF8Buffer { append(contentsOf: $0) }
    }
}
