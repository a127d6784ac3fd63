@testable import HTTP1
import Testing

/// Literals written or compared as bytes, in both of StaticString's forms:
/// a one-character literal is stored as its scalar and has no `utf8Start`.
@Suite struct ByteLiteralTests {
    @Test func literalsOfEveryLengthAreWrittenAndCompared() {
        let written = bytesWritten(capacity: 16) { cursor in
            cursor.put("/" as StaticString)
            cursor.put("é" as StaticString)
            cursor.put("\r\n" as StaticString)
            cursor.put("ab" as StaticString)
            cursor.put("" as StaticString)
        }
        #expect(written == Array("/é\r\nab".utf8))
        let slice = ArraySlice(Array("/path".utf8))
        #expect(slice.hasPrefix("/"))
        #expect(slice.hasPrefix("/pa"))
        #expect(slice.hasPrefix(""))
        #expect(!slice.hasPrefix("x"))
        #expect(!slice.hasPrefix("/path/"))
        #expect(ArraySlice(Array("/".utf8)).equals("/"))
        #expect(!slice.equals("/pat"))
        var appended: [UInt8] = []
        appended.append(literal: "x")
        appended.append(literal: "yz")
        #expect(appended == Array("xyz".utf8))
        #expect(Array("A".utf8).withUnsafeBytes { $0.isLowercased("a") })
    }

    /// The byte-by-byte reading `ASCII.equalsFolded` replaced.
    private func referenceEqualsFolded(_ bytes: [UInt8], _ text: [UInt8]) -> Bool {
        bytes.count == text.count && zip(bytes, text).allSatisfy { ASCII.lower($0) == $1 }
    }

    private func equalsFolded(_ bytes: [UInt8], _ text: [UInt8]) -> Bool {
        bytes.withUnsafeBytes { b in
            text.withUnsafeBytes { t in ASCII.equalsFolded(b.baseAddress!, t.baseAddress!, count: t.count) }
        }
    }

    /// Every length up to 24 (the byte loop, the 4-byte and the 8-byte
    /// words, overlapping tails), texts of lower-case ASCII drawn mostly
    /// from the bytes beside the letters' bounds ('@', '[', '`', '{'), and
    /// names that are the text, its case changed per letter, one byte
    /// flipped by a bit or replaced by anything.
    @Test func foldedComparisonAgreesWithTheByteByByteReading() {
        var random = SystemRandomNumberGenerator()
        let edges: [UInt8] = Array("@[`{azAZ-09_~!".utf8) + [0x00, 0x0D, 0x7F]
        for _ in 0..<20_000 {
            let count = Int.random(in: 1...24, using: &random)
            let text: [UInt8] = (0..<count).map { _ in
                let b = Bool.random(using: &random)
                    ? edges.randomElement(using: &random)! : UInt8.random(in: 0...0x7F, using: &random)
                return ASCII.lower(b)
            }
            var name = text.map { b in
                (b >= 0x61 && b <= 0x7A && Bool.random(using: &random)) ? b & ~0x20 : b
            }
            switch Int.random(in: 0..<4, using: &random) {
            case 0: break
            case 1: name[Int.random(in: 0..<count, using: &random)] ^= 1 << UInt8.random(in: 0..<8, using: &random)
            case 2: name[Int.random(in: 0..<count, using: &random)] = UInt8.random(in: 0...255, using: &random)
            default: name[Int.random(in: 0..<count, using: &random)] ^= 0x20
            }
            #expect(equalsFolded(name, text) == referenceEqualsFolded(name, text), "\(name) against \(text)")
        }
    }

    @Test func foldedComparisonOfFieldNames() {
        let lengths = Array("Content-Length".utf8)
        #expect(lengths.withUnsafeBytes { $0.isLowercased("content-length") })
        #expect(lengths[...].equalsLowercased("content-length"))
        #expect(!Array("Content-Lengti".utf8).withUnsafeBytes { $0.isLowercased("content-length") })
        // 'M' (0x4D) | 0x20 is '-' (0x2D)'s neighbour 'm', never '-': only letters fold.
        #expect(!Array("contentMlength".utf8).withUnsafeBytes { $0.isLowercased("content-length") })
        #expect(!Array("\r".utf8).withUnsafeBytes { $0.isLowercased("-") })
        #expect(Array("TE".utf8).withUnsafeBytes { $0.isLowercased("te") })
        #expect([UInt8]().withUnsafeBytes { $0.isLowercased("") })
        #expect(EmptyCollection<UInt8>().equalsLowercased(""))
    }

    @Test func decimalsAreWrittenAsStringWritesThem() {
        var random = SystemRandomNumberGenerator()
        var values: [UInt64] = [0, 9, 10, 99, 100, 999, 1000, 9999, 10_000, 99_999, 100_000, .max, .max - 1]
        for digits in 1...19 {
            let power = (0..<digits).reduce(UInt64(1)) { p, _ in p * 10 }
            values += [power - 1, power, power + 1]
        }
        for _ in 0..<5000 { values.append(random.next() >> UInt64.random(in: 0..<64, using: &random)) }
        for value in values {
            #expect(bytesWritten(capacity: 20) { $0.put(decimal: value) } == Array(String(value).utf8))
        }
        for value in [0, -1, -10, 42, Int.min, Int.max] {
            #expect(bytesWritten(capacity: 20) { $0.put(decimal: value) } == Array(String(value).utf8))
        }
    }

    @Test func aWriteBeyondTheReservedRoomTraps() async {
        await #expect(processExitsWith: .failure) {
            _ = bytesWritten(capacity: 2) { $0.put("abc" as StaticString) }
        }
    }
}
