import Testing
@testable import HTTP1

@Suite struct CanonicalPathTests {
    func canonical(_ path: String) -> CanonicalPath { CanonicalPath.of(Array(path.utf8)[...]) }

    @Test(arguments: ["/", "/payments/imp_1", "/a/b/", "/a/%3A%2B%E2%82%AC", "/a;b=c/d", "/...", "/a/.x", "/a/x.",
                       "/a/%25", "/a/%252e%252e", "/a/x;..", "/a/~"])
    func canonicalPathsAreKeptAsSent(path: String) {
        #expect(canonical(path) == .asSent, "\(path)")
    }

    @Test(arguments: [
        ("//users/getToken", "/users/getToken"), ("/a//b///c//", "/a/b/c/"), ("///", "/"),
        ("/%70ayments/%7e%7E%2d%2E%5f", "/payments/~~-._"), ("/a/%3a%2b", "/a/%3A%2B"), ("/a/%e2%82%ac", "/a/%E2%82%AC"),
        ("/%2e%2e%2e", "/..."), ("/a;%61=1", "/a;a=1"),
    ])
    func rewrittenOnlyWhereRFC3986SaysTheSame(path: String, expected: String) {
        #expect(canonical(path) == .rewritten(Array(expected.utf8)), "\(path)")
        #expect(canonical(expected) == .asSent, "canonicalising twice changes nothing")
    }

    @Test(arguments: [
        ("/a/..", PathRefusal.dotSegment), ("/a/./b", .dotSegment), ("/a/%2e%2E/b", .dotSegment), ("/.%2e", .dotSegment),
        ("/a/..;/b", .dotSegment), ("/a/.;/b", .dotSegment), ("/a/%2e%2e;/b", .dotSegment), ("/a/..;x", .dotSegment),
        ("/a/.%3b/b", .dotSegment), ("/a/..%3Bx/b", .dotSegment), ("/a//../b", .dotSegment),
        ("/a/;x/b", .parametersOnEmptySegment), ("/;", .parametersOnEmptySegment), ("/a/%3Bx", .parametersOnEmptySegment),
        ("/a%2fb", .encodedSeparator), ("/a%2Fb", .encodedSeparator), ("/a%5cb", .encodedSeparator),
        ("/a\\b", .backslash), ("/a%", .malformedEscape), ("/a%4", .malformedEscape), ("/a%g1", .malformedEscape),
        ("/a%00", .controlByte), ("/a%0A", .controlByte), ("/a%1f", .controlByte), ("/a%7F", .controlByte),
        ("/a b", .controlByte), ("/a\u{7F}", .controlByte), ("/a\u{1}", .controlByte), ("/é", .controlByte),
        ("a/b", .notAbsolute), ("*", .notAbsolute),
    ])
    func ambiguousPathsAreRefused(path: String, refusal: PathRefusal) {
        #expect(canonical(path) == .refused(refusal), "\(path)")
    }

    @Test func theHeadParserCanonicalisesThePathOnce() throws {
        let plain = try #require(expectHead("GET /payments/imp_1?x=//a HTTP/1.1\r\nHost: a\r\n\r\n"))
        #expect(String(decoding: plain[plain.path], as: UTF8.self) == "/payments/imp_1")
        #expect(plain.canonicalPath == .asSent)
        let merged = try #require(expectHead("POST //users/getToken?a=1 HTTP/1.1\r\nHost: a\r\n\r\n"))
        #expect(String(decoding: merged[merged.path], as: UTF8.self) == "//users/getToken")
        #expect(merged.canonicalPath == .rewritten(Array("/users/getToken".utf8)))
        let absolute = try #require(expectHead("GET http://api.example//a/%7e?b HTTP/1.1\r\nHost: a\r\n\r\n"))
        #expect(String(decoding: absolute[absolute.path], as: UTF8.self) == "//a/%7e")
        #expect(absolute.canonicalPath == .rewritten(Array("/a/~".utf8)))
        let bare = try #require(expectHead("GET http://api.example?b HTTP/1.1\r\nHost: a\r\n\r\n"))
        #expect(bare.path.isEmpty)
        #expect(bare.canonicalPath == .rewritten(Array("/".utf8)))
        let refused = try #require(expectHead("GET /a/..;/b HTTP/1.1\r\nHost: a\r\n\r\n"))
        #expect(refused.canonicalPath == .refused(.dotSegment), "refusing is the proxy's decision, not the parser's")
    }
}
