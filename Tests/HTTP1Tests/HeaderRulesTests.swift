import Testing
@testable import HTTP1

struct HeaderRulesTests {
    private func options(_ value: String) -> [String] {
        var found: [String] = []
        Array(value.utf8).withUnsafeBytes { raw in
            HeaderRules.forEachConnectionOption(raw[...]) { found.append(String(decoding: $0, as: UTF8.self)) }
        }
        return found
    }

    @Test func connectionOptionsAreSplitAndTrimmed() {
        #expect(options("keep-alive") == ["keep-alive"])
        #expect(options(" close ") == ["close"])
        #expect(options("keep-alive, X-Upstream-Hop") == ["keep-alive", "X-Upstream-Hop"])
        #expect(options("a,\tb ,c") == ["a", "b", "c"])
    }

    @Test func emptyConnectionOptionsAreSkipped() {
        #expect(options("") == [])
        #expect(options(" , ,") == [])
        #expect(options(",x,,") == ["x"])
    }
}
