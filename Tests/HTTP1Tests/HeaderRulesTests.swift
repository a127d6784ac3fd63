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

    private func read(_ value: String) -> ConnectionOptions {
        var options = ConnectionOptions()
        Array(value.utf8).withUnsafeBytes { options.read($0[...]) }
        return options
    }

    @Test func connectionOptionsAreRead() {
        #expect(read("keep-alive").keepAlive && !read("keep-alive").close)
        #expect(read("Keep-Alive").keepAlive && read("Keep-Alive").names.isEmpty)
        #expect(read("CLOSE").close && !read("CLOSE").keepAlive)
        #expect(!read("closed").close && read("closed").names == [0..<6])
        let both = read("close, keep-alive, X-Hop")
        #expect(both.close && both.keepAlive && both.names == [19..<24] && !both.sawInvalid)
        #expect(read("keep-alive, @bad").sawInvalid)
    }

    @Test func emptyConnectionOptionsAreSkipped() {
        #expect(options("") == [])
        #expect(options(" , ,") == [])
        #expect(options(",x,,") == ["x"])
    }
}
