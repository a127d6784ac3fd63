import Foundation
import Testing

@testable import HTTP1

/// The one JSON string writer: its escapes, its repair of bytes that are
/// not UTF-8, and that what it writes is JSON a standard decoder reads back.
@Suite struct JSONStringTests {
    static func written(_ bytes: [UInt8]) -> [UInt8] {
        var out: [UInt8] = []
        appendJSONString(utf8: bytes, to: &out)
        return out
    }

    static func text(_ bytes: [UInt8]) -> String {
        String(decoding: written(bytes), as: UTF8.self)
    }

    /// The string JSONSerialization reads from `["…"]`.
    static func decoded(_ json: [UInt8]) throws -> String? {
        let array = try JSONSerialization.jsonObject(with: Data([UInt8(ascii: "[")] + json + [UInt8(ascii: "]")]))
        return (array as? [String])?.first
    }

    @Test func quotesAndBackslashesAreEscaped() {
        #expect(Self.text(Array(#"a"b\c"#.utf8)) == #""a\"b\\c""#)
        #expect(Self.text(Array(#"\""#.utf8)) == #""\\\"""#)
        #expect(Self.text([]) == #""""#)
    }

    @Test func everyControlByteIsEscaped() throws {
        for b in UInt8(0)..<0x20 {
            let expected: String
            switch b {
            case 0x0A: expected = #"\n"#
            case 0x0D: expected = #"\r"#
            case 0x09: expected = #"\t"#
            default: expected = "\\u00" + (b < 0x10 ? "0" : "") + String(b, radix: 16)
            }
            let out = Self.written([UInt8(ascii: "x"), b, UInt8(ascii: "y")])
            #expect(String(decoding: out, as: UTF8.self) == "\"x\(expected)y\"", "byte \(b)")
            #expect(!out.contains { $0 < 0x20 }, "byte \(b)")
            #expect(try Self.decoded(out) == String(decoding: [0x78, b, 0x79], as: UTF8.self), "byte \(b)")
        }
    }

    @Test func delAndPrintableASCIIPassUnchanged() {
        let printable = (UInt8(0x20)...0x7F).filter { $0 != UInt8(ascii: "\"") && $0 != UInt8(ascii: "\\") }
        #expect(Self.written(printable) == [0x22] + printable + [0x22])
    }

    @Test func utf8PassesUnchanged() throws {
        let samples = ["결제", "é", "€", "𝄞 and 😀", "\u{7FF}\u{800}\u{FFFF}\u{10000}\u{10FFFF}", "\u{FFFD}"]
        for sample in samples {
            let bytes = Array(sample.utf8)
            #expect(Self.written(bytes) == [0x22] + bytes + [0x22], "\(sample)")
            #expect(try Self.decoded(Self.written(bytes)) == sample)
        }
    }

    /// Not UTF-8: one U+FFFD per maximal invalid subpart, as `String` repairs.
    @Test func invalidUTF8BecomesReplacementCharacters() throws {
        let cases: [([UInt8], String)] = [
            ([0xFF], "\u{FFFD}"),
            ([0x80, 0xBF], "\u{FFFD}\u{FFFD}"),  // lone continuation bytes
            ([0xC0, 0xAF], "\u{FFFD}\u{FFFD}"),  // overlong
            ([0xC3, 0x28], "\u{FFFD}("),  // truncated, then ASCII
            ([0xE2, 0x82], "\u{FFFD}"),  // truncated at the end: one subpart
            ([0xE2, 0x82, 0x22], "\u{FFFD}\""),  // truncated, then a quote (escaped)
            ([0xED, 0xA0, 0x80], "\u{FFFD}\u{FFFD}\u{FFFD}"),  // a surrogate
            ([0xF4, 0x90, 0x80, 0x80], "\u{FFFD}\u{FFFD}\u{FFFD}\u{FFFD}"),  // above U+10FFFF
            ([0xF0, 0x9F, 0x98], "\u{FFFD}"),  // a 4-byte sequence cut short
            ([0xF5, 0x80], "\u{FFFD}\u{FFFD}"),
            ([0x2F, 0xFF, 0xFE, 0xC3, 0x28, 0xE2, 0x82, 0x2F, 0x22, 0x0A], "/\u{FFFD}\u{FFFD}\u{FFFD}(\u{FFFD}/\"\n"),
        ]
        for (bytes, expected) in cases {
            let out = Self.written(bytes)
            #expect(String(validating: out, as: UTF8.self) != nil, "\(bytes)")
            #expect(try Self.decoded(out) == expected, "\(bytes)")
            #expect(String(decoding: bytes, as: UTF8.self) == expected, "\(bytes): String repairs alike")
        }
    }

    /// Any bytes at all: valid UTF-8 out, JSON that reads back as the
    /// `String` of those bytes, at most 6 bytes per byte plus the quotes.
    @Test func anyBytesReadBackAsTheirString() throws {
        var random = SystemRandomNumberGenerator()
        // Weighted towards the interesting bytes: controls, quotes, UTF-8 leads and continuations.
        let pool: [UInt8] = Array(0...0xFF) + [0x22, 0x5C, 0x0A, 0x00, 0x7F] + Array(0x80...0xBF) + Array(0xC0...0xF7)
        for _ in 0..<2000 {
            let bytes = (0..<Int.random(in: 0...24, using: &random)).map { _ in pool.randomElement(using: &random)! }
            let out = Self.written(bytes)
            let valid = String(validating: out, as: UTF8.self) != nil
            #expect(valid, "\(bytes)")
            #expect(out.count <= 6 * bytes.count + 2)
            let matches = try Self.decoded(out) == String(decoding: bytes, as: UTF8.self)
            #expect(matches, "\(bytes)")
            if !valid || !matches { return }
        }
    }

    @Test func theOtherEntryPointsFollowTheSameRules() {
        let bytes: [UInt8] = Array(#"a "b"\"#.utf8) + [0x0A, 0xFF] + Array("é".utf8)
        var inner: [UInt8] = []
        appendJSONEscaped(utf8: bytes, to: &inner)
        #expect([0x22] + inner + [0x22] == Self.written(bytes))

        var fromString: [UInt8] = []
        appendJSONString(String(decoding: bytes, as: UTF8.self), to: &fromString)
        #expect(fromString == Self.written(bytes))

        var repaired: [UInt8] = []
        appendRepairedUTF8(utf8: bytes, to: &repaired)
        #expect(repaired == Array(String(decoding: bytes, as: UTF8.self).utf8))

        // A collection without contiguous storage takes the copying path.
        var fromLazy: [UInt8] = []
        appendJSONString(utf8: bytes.lazy.map { $0 }, to: &fromLazy)
        #expect(fromLazy == Self.written(bytes))
    }
}
