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

    @Test func aWriteBeyondTheReservedRoomTraps() async {
        await #expect(processExitsWith: .failure) {
            _ = bytesWritten(capacity: 2) { $0.put("abc" as StaticString) }
        }
    }
}
