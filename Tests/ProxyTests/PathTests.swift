import FakeIamport
import Foundation
import TestSupport
import Testing

/// Paths through the whole proxy: every decision on one canonical form, the
/// upstream given the path as sent, getToken and `_token` in every spelling.
@Suite(.serialized) struct PathTests {
    /// Forwarded, and as sent: the allow list matched the canonical form.
    @Test(arguments: [
        "/echo//x", "//echo/x", "/echo/x//", "/%65cho/x", "/echo/%7euser", "/echo/%7Euser", "/echo/a%3ab",
        "/echo/x?a=1&b=%2F", "//echo//x?q=//",
    ])
    func forwardedAsSentAfterMatchingTheCanonicalForm(target: String) throws {
        let h = try Harness(allow: ["GET /echo/*", "GET /echo/*/"])
        defer { h.stop() }
        let answer = try h.raw("GET \(target) HTTP/1.1\r\nHost: a\r\n\r\n")
        #expect(answer.header("X-Iamport-Proxy-Error") == nil, "\(answer)")
        #expect(h.fake.recorded.last?.target == target, "the upstream receives the path as the client sent it")
    }

    /// Spellings that a Tomcat- or Spring-style server resolves to another
    /// path, encoded separators and control bytes: 400, never forwarded, even
    /// when the allow list would match them.
    @Test(arguments: [
        "/echo/..;/payments/imp_1", "/echo/.;/x", "/echo/%2e%2e;/x", "/echo/..;x/y", "/echo/%2E%2E%3Bx/y",
        "/echo/.%3b/x", "/echo/%2e;a=b/x", "/echo/..", "/echo/%2e%2E/x", "/echo/.%2E", "/echo/;x/y", "/echo/%3Bx/y",
        "/echo/a%2fb", "/echo/a%2Fb", "/echo/a%5cb", "/echo/a\\b", "/echo/a%00", "/echo/a%0a", "/echo/a%0D%0A",
        "/echo/a%7F", "/echo/a%1f", "/echo/%zz", "/echo/%2",
    ])
    func ambiguousPathsAreRefused(target: String) throws {
        let h = try Harness(allow: ["GET /echo/**"])
        defer { h.stop() }
        let calls = h.fake.apiCalls
        let answer = try h.raw("GET \(target) HTTP/1.1\r\nHost: a\r\n\r\n")
        #expect(answer.status == 400, "\(target): \(answer)")
        #expect(answer.header("X-Iamport-Proxy-Error") == "bad_request")
        #expect(h.fake.apiCalls == calls, "\(target) reached the upstream")
    }

    @Test func localEndpointsAreFoundByTheCanonicalForm() throws {
        let h = try Harness()
        defer { h.stop() }
        h.fake.clearRecorded()
        for target in ["//_proxy/healthz", "/_proxy//healthz", "/%5Fproxy/healthz", "/_proxy/%68ealthz", "///_proxy/metrics"] {
            let answer = try h.raw("GET \(target) HTTP/1.1\r\nHost: a\r\n\r\n")
            #expect(answer.status == 200, "\(target): \(answer)")
        }
        #expect(h.fake.recorded.isEmpty, "\(h.fake.recorded.map(\.target))")
        #expect(try h.get("/_PROXY/healthz").status != 200, "the canonical form keeps case")
    }

    static let getTokenSpellings = [
        "/users/getToken", "//users/getToken", "/users/gettoken", "/USERS/GETTOKEN", "/users/getToken/",
        "/users/getToken//", "/users//getToken", "///users/getToken", "/users/%67etToken", "/%75sers/getToken",
        "/users/%67%65%74%54%6f%6b%65%6e", "/users/getToken;jsessionid=1", "/users;x/getToken", "/users/getToken%3Bx",
        "/users/getToken%3bx", "/users/getToken;", "/users/getToken?imp_key=a", "//users/getToken/?x=1",
    ]

    /// POST in any spelling is the local getToken; the fake sees nothing.
    @Test(arguments: getTokenSpellings)
    func getTokenInAnySpellingIsAnsweredLocally(target: String) throws {
        let h = try Harness()
        defer { h.stop() }
        h.fake.clearRecorded()
        let calls = h.fake.getTokenCalls
        let secret = "look-alike-secret-5d1e"
        let answer = try h.post(target, json: #"{"imp_key":"app-key","imp_secret":"\#(secret)"}"#)
        #expect(answer.status == 200, "\(target): \(answer)")
        #expect((answer.json?["response"] as? [String: Any])?["access_token"] as? String == "iamport-proxy-placeholder-token")
        #expect(h.fake.recorded.isEmpty, "\(target) reached the upstream")
        #expect(h.fake.getTokenCalls == calls)
        #expect(!h.logs.capturedText.contains(secret))
    }

    /// Any other method, spelled however: 405, and the body never leaves.
    @Test(arguments: ["GET", "PUT", "DELETE", "PATCH", "post", "Post", "OPTIONS"])
    func getTokenWithAnotherMethodIs405(method: String) throws {
        let h = try Harness()
        defer { h.stop() }
        h.fake.clearRecorded()
        let calls = h.fake.getTokenCalls
        let secret = "look-alike-secret-93c0"
        let body = #"{"imp_key":"app-key","imp_secret":"\#(secret)"}"#
        for target in Self.getTokenSpellings {
            let answer = try h.raw("\(method) \(target) HTTP/1.1\r\nHost: a\r\nContent-Type: application/json\r\nContent-Length: \(body.utf8.count)\r\n\r\n\(body)")
            #expect(answer.status == 405, "\(method) \(target): \(answer)")
            #expect(answer.header("X-Iamport-Proxy-Error") == "not_allowed")
        }
        #expect(h.fake.recorded.isEmpty, "\(h.fake.recorded.map { "\($0.method) \($0.target)" })")
        #expect(h.fake.getTokenCalls == calls)
        #expect(!h.logs.capturedText.contains(secret))
    }

    @Test func getTokenInAbsoluteFormIsLocalToo() throws {
        let h = try Harness()
        defer { h.stop() }
        h.fake.clearRecorded()
        let body = #"{"imp_key":"k","imp_secret":"s"}"#
        let answer = try h.raw("POST http://127.0.0.1:\(h.fakePort)//users/GetToken HTTP/1.1\r\nHost: a\r\nContent-Length: \(body.utf8.count)\r\n\r\n\(body)")
        #expect(answer.status == 200, "\(answer)")
        #expect(h.fake.recorded.isEmpty)
    }

    /// Methods are case-sensitive tokens, and the API's paths are case-sensitive.
    @Test func theAllowListMatchesMethodAndPathExactly() throws {
        let h = try Harness(allow: ["GET /payments/*"])
        defer { h.stop() }
        let calls = h.fake.apiCalls
        for request in ["get /payments/imp_1", "Get /payments/imp_1", "GET /PAYMENTS/imp_1", "GET /Payments/imp_1",
                        "GET /%50ayments/imp_1"] {
            let answer = try h.raw("\(request) HTTP/1.1\r\nHost: a\r\n\r\n")
            #expect(answer.status == 403, "\(request): \(answer)")
            #expect(answer.header("X-Iamport-Proxy-Error") == "forbidden")
        }
        #expect(h.fake.apiCalls == calls, "nothing reached the upstream")
        #expect(try h.get("/payments/imp_1").status == 200)
        #expect(try h.get("/%70ayments/imp_1").status != 403, "an escaped unreserved letter is the same path")
        #expect(h.fake.recorded.last?.target == "/%70ayments/imp_1")
    }

    /// Each spelling of `_token` a server might read as `_token` is dropped;
    /// look-alikes are kept.
    @Test(arguments: [
        ("a=1&_TOKEN=x&b=2", "a=1&b=2"), ("_Token=x", ""), ("%5ftoken=x&b=2", "b=2"), ("%5Ftoken=x", ""),
        ("_%74oken=x", ""), ("%5F%54%4F%4B%45%4E=x", ""), ("%5f%74%6f%6b%65%6e=x", ""), ("_token[]=x&b=2", "b=2"),
        ("_token%5B%5D=x", ""), ("_token%5b0%5d=x", ""), ("_token[a]=x", ""), ("+_token=x", ""), ("_token+=x", ""),
        ("%20_token%20=x", ""), ("++_token++[]=x", ""), (".token=x", ""), ("a=1;_token=x", "a=1"),
        ("_token=x;b=2&c=3", "b=2&c=3"), ("a=1&_token", "a=1"),
        ("_tokens=1&x_token=2&token=3&a=_token&_to%6Ben2=4", "_tokens=1&x_token=2&token=3&a=_token&_to%6Ben2=4"),
    ])
    func tokenParameterInEverySpellingIsDropped(query: String, kept: String) throws {
        let h = try Harness()
        defer { h.stop() }
        let answer = try h.raw("GET /echo/q?\(query) HTTP/1.1\r\nHost: a\r\n\r\n")
        #expect(answer.status == 200, "\(answer)")
        let expected = kept.isEmpty ? "/echo/q" : "/echo/q?" + kept
        #expect(Harness.echoed(answer)?.target == expected, "\(query)")
    }

    /// Refusals are answers too: every one is counted by status and method.
    @Test func everyAnswerIsCounted() throws {
        let token = "client-token-count-77"
        let h = try Harness(clientToken: token, allow: ["GET /payments/*"])
        defer { h.stop() }
        let auth = "Authorization: Bearer \(token)\r\n"
        let requests = [
            "GET /payments/imp_1 HTTP/1.1\r\nHost: a\r\n\r\n",  // 401
            "GET /payments/..;/x HTTP/1.1\r\nHost: a\r\n\(auth)\r\n",  // 400
            "DELETE /payments/imp_1 HTTP/1.1\r\nHost: a\r\n\(auth)\r\n",  // 403
            "get /payments/imp_1 HTTP/1.1\r\nHost: a\r\n\(auth)\r\n",  // 403
            "GET /users/getToken HTTP/1.1\r\nHost: a\r\n\r\n",  // 405
            "GET http://other.example/payments/imp_1 HTTP/1.1\r\nHost: a\r\n\r\n",  // 405
            "GET /payments/imp_1 HTTP/1.1\r\nHost: a\r\n\(auth)\r\n",  // 200
        ]
        for request in requests { _ = try h.raw(request) }
        let metrics = try h.get("/_proxy/metrics").text
        for line in [
            #"iamport_proxy_requests_total{status="401",method="GET"} 1"#,
            #"iamport_proxy_requests_total{status="400",method="GET"} 1"#,
            #"iamport_proxy_requests_total{status="403",method="DELETE"} 1"#,
            #"iamport_proxy_requests_total{status="403",method="other"} 1"#,
            #"iamport_proxy_requests_total{status="405",method="GET"} 2"#,
            #"iamport_proxy_requests_total{status="200",method="GET"} 1"#,
        ] {
            #expect(metrics.split(separator: "\n").contains { $0 == line }, "missing: \(line)")
        }
    }
}
