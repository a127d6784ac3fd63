import Foundation

import HTTP1
@testable import Proxy
import TestSupport
import Testing

@Suite struct AllowListTests {
    func allows(_ rules: [String], _ method: String, _ target: String) throws -> Bool {
        let list = try AllowList(rules)
        guard case .success(let path) = RequestPath.parse(Array(target.utf8)[...]) else { return false }
        return list.allows(method: Array(method.utf8)[...], canonicalPath: path.canonical)
    }

    @Test func matchesMethodAndPattern() throws {
        let rules = ["GET /payments/*", "POST /payments/cancel", "GET /subscribe/customers/**"]
        #expect(try allows(rules, "GET", "/payments/imp_1"))
        #expect(try allows(rules, "GET", "/payments/imp_1?include=x"))
        #expect(try !allows(rules, "GET", "/payments/imp_1/balance"), "* is one segment")
        #expect(try !allows(rules, "GET", "/payments/"))
        #expect(try !allows(rules, "GET", "/payments"))
        #expect(try allows(rules, "POST", "/payments/cancel"))
        #expect(try !allows(rules, "POST", "/payments/imp_1"))
        #expect(try !allows(rules, "DELETE", "/payments/imp_1"))
        #expect(try allows(rules, "GET", "/subscribe/customers/c1/payments"))
        #expect(try !allows(rules, "GET", "/subscribe/customers"), "** needs one segment at least")
        #expect(try allows(["* /payments/*"], "DELETE", "/payments/x"))
        #expect(try allows([], "DELETE", "/anything"), "no rules: everything")
    }

    @Test func matchingIsExactOnTheCanonicalForm() throws {
        let rules = ["GET /payments/*", "POST /payments/cancel"]
        #expect(try allows(rules, "GET", "/%70ayments/imp_1"), "encoded letters decode to the same path")
        #expect(try allows(rules, "GET", "//payments//imp_1"), "repeated slashes are one")
        #expect(try allows(rules, "GET", "/payments/imp_1;v=1"), "parameters stay in the segment * matches")
        #expect(try !allows(rules, "get", "/payments/imp_1"), "methods are case-sensitive")
        #expect(try !allows(rules, "Post", "/payments/cancel"))
        #expect(try !allows(rules, "GET", "/PAYMENTS/imp_1"), "so are paths")
        #expect(try !allows(rules, "GET", "/%50ayments/imp_1"))
        #expect(try !allows(rules, "POST", "/%70ayments/cancel;x"), "a literal segment matches only itself")
        #expect(try !allows(rules, "POST", "/%70ayments/Cancel"))
        #expect(try allows(rules, "POST", "/%70ayments/%63ancel"))
        // Rules are put in canonical form too.
        #expect(try allows(["GET /%70ayments/a%3ab"], "GET", "/payments/a%3Ab"))
        #expect(try allows(["GET /payments/a%3Ab"], "GET", "/payments/a%3ab"))
        #expect(try !allows(["GET /payments/a%3Ab"], "GET", "/payments/a:b"), "a reserved character is not its escape")
        #expect(try allows(["GET /payments/"], "GET", "/payments//"))
        #expect(try !allows(["GET /payments/**"], "GET", "/payments/a/"), "** matches no empty segment")
    }

    @Test func pathsThatCouldBeReadTwoWaysAreRefusedBeforeMatching() {
        for target in ["/payments/../users/getToken", "/payments/%2e%2e/cancel", "/payments/%2E./cancel",
                       "/payments%2fcancel", "/payments%2Fcancel", "/payments/./x",
                       "/payments\\cancel", "/payments/%5ccancel", "/payments/%00", "/payments/%zz", "/payments/%2",
                       "/payments/.%2E/cancel", "/payments/%2e/x", "/payments/..", "/payments/%2e%2E",
                       "/payments/..;/x", "/payments/.;/x", "/payments/%2e%2e;/x", "/payments/..;x", "/payments/.%3Bx",
                       "/payments/%2E%3b", "/payments/;x/y", "/payments/%3B", "/payments/x%0a", "/payments/x%7f",
                       "/payments/x%1F", "payments/x", "/payments/x y"] {
            guard case .failure = RequestPath.parse(Array(target.utf8)[...]) else {
                Issue.record("\(target) accepted")
                continue
            }
        }
    }

    @Test func segmentsThatOnlyLookLikeDotsAreKept() {
        for target in ["/payments/...", "/payments/.x", "/payments/x.", "/payments/%2e%2ex", "/payments/%2e%2e%2e",
                       "/payments/%2d", "/payments/.well", "/payments/x;..", "/payments/x;.", "/payments/...;x",
                       "/payments//x", "/payments/x//"] {
            guard case .success = RequestPath.parse(Array(target.utf8)[...]) else {
                Issue.record("\(target) refused")
                continue
            }
        }
    }

    @Test func invalidRulesAreConfigurationErrors() {
        for rule in ["GET", "GET payments/*", "GET /a/**/b", "GET /a//b", "GET /a/x*", "G(T /a", "GET /a/..",
                     "get /payments/*", "Get /a", "GET /a/..;x", "GET /a/%2e", "GET /a/%2F", "GET /a/%zz"] {
            #expect(throws: AllowList.InvalidRule.self, "\(rule)") { try AllowList([rule]) }
        }
        let lowercase = #expect(throws: AllowList.InvalidRule.self) { try AllowList(["get /payments/*"]) }
        #expect(lowercase?.description.contains("write 'GET'") == true, "\(String(describing: lowercase))")
    }

    @Test(arguments: [
        ("/payments/imp_1", "/payments/imp_1"), ("//users//getToken/", "/users/getToken/"),
        ("/%70ayments/%7e%2D%2e%5F", "/payments/~-._"), ("/a/%3a%3B%e2%82%ac", "/a/%3A%3B%E2%82%AC"),
        ("/a/b;c=%2d", "/a/b;c=-"), ("///", "/"),
    ])
    func canonicalForm(target: String, canonical: String) throws {
        guard case .success(let path) = RequestPath.parse(Array(target.utf8)[...]) else {
            Issue.record("\(target) refused")
            return
        }
        #expect(String(decoding: path.canonical, as: UTF8.self) == canonical)
        #expect(String(decoding: path.path, as: UTF8.self) == target, "the path as sent is kept for the upstream")
    }

    /// The screen's canonical path is the one `RequestPath.of` splits out,
    /// and a refused path is refused for the same reason.
    @Test func theScreensCanonicalPathIsTheSplitPathsOne() {
        for target in ["/payments/imp_1?x=1", "/payments/../x", "//payments//imp_1", "/pay%6Dents", "/a/%2e%2e/b",
                       "http://api.iamport.kr", "http://api.iamport.kr/users/getToken?q", "/a\\b", "/a/./b/"] {
            var parser = HeadParser(limits: Limits())
            let bytes = Array("GET \(target) HTTP/1.1\r\nHost: x\r\n\r\n".utf8)
            guard case .complete(let head, _) = bytes.withUnsafeBytes({ parser.parse($0) }) else { continue }
            switch (RequestPath.of(head), RequestPath.canonical(of: head)) {
            case (.success(let path), .success(let canonical)): #expect(path.canonical == canonical, "\(target)")
            case (.failure(let a), .failure(let b)): #expect(a == b, "\(target)")
            default: Issue.record("\(target): the two disagree on whether the path is refused")
            }
        }
    }

    @Test func getTokenIsRecognisedInAnySpelling() {
        func isGetToken(_ target: String) -> Bool {
            guard case .success(let path) = RequestPath.parse(Array(target.utf8)[...]) else { return false }
            return path.isGetToken
        }
        for target in ["/users/getToken", "/users/GETTOKEN", "//users//getToken//", "/users/getToke%6E",
                       "/users/getToken;a=b", "/users;a/getToken", "/users/getToken%3Bx", "/users/getToken%3bx",
                       "/Users/gEtToKeN/", "/users/getToken?x=1"] {
            #expect(isGetToken(target), "\(target)")
        }
        for target in ["/users/getTokens", "/users/getToken/x", "/user/getToken", "/users/x/getToken",
                       "/api/users/getToken", "/users/get%54oken2", "/users", "/", "/users/getToken%3Ax"] {
            #expect(!isGetToken(target), "\(target)")
        }
    }

    @Test func tokenQueryParameterIsDropped() {
        func forwarded(_ target: String) -> String {
            guard case .success(let p) = RequestPath.parse(Array(target.utf8)[...]) else { return "invalid" }
            return String(decoding: p.forwardedPathAndQuery(), as: UTF8.self)
        }
        #expect(forwarded("/payments/x?_token=abc") == "/payments/x")
        #expect(forwarded("/payments/x?a=1&_token=abc&b=2") == "/payments/x?a=1&b=2")
        #expect(forwarded("/payments/x?%5Ftoken=abc&b=2") == "/payments/x?b=2")
        #expect(forwarded("/payments/x?a=1&b=%2F") == "/payments/x?a=1&b=%2F")
        #expect(forwarded("/payments/x?_tokens=1") == "/payments/x?_tokens=1")
        #expect(forwarded("/payments/x?a=1&_token") == "/payments/x?a=1", "a _token without a value is dropped too")
        #expect(forwarded("/payments/x?_token=a&_token=b") == "/payments/x")
        #expect(forwarded("/payments/x?") == "/payments/x?", "an empty query is kept as sent")
    }
}
