import Testing

@testable import Proxy

@Suite struct HexDigitTests {
    @Test func everyNibbleIsItsLowerCaseHexDigit() {
        let expected = Array("0123456789abcdef".utf8)
        for value in 0..<64 as Range<UInt64> {
            #expect(hexDigit(value) == expected[Int(value & 0xF)])
        }
        #expect(hexDigit(UInt64.max) == UInt8(ascii: "f"))
    }
}
