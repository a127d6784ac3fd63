import Foundation
import TestSupport
import Testing

@Suite(.serialized) struct MethodTests {
    /// Methods in turn on one client connection (so on the same loop and the
    /// same reused libcurl handles): each goes out with its own method and body.
    @Test func everyMethodKeepsItsOwnVerbAndBody() throws {
        let h = try Harness()
        defer { h.stop() }
        let client = try HTTPTestClient(port: h.port)
        let cases: [(String, String?)] = [
            ("DELETE", nil), ("GET", nil), ("PUT", #"{"a":1}"#), ("GET", nil), ("POST", "x=1"), ("HEAD", nil),
            ("PATCH", #"{"b":2}"#), ("DELETE", #"{"c":3}"#), ("OPTIONS", nil), ("POST", nil), ("GET", nil),
        ]
        for (n, (method, body)) in cases.enumerated() {
            var request = "\(method) /echo/\(n) HTTP/1.1\r\nHost: a\r\n"
            if let body { request += "Content-Length: \(body.utf8.count)\r\n\r\n\(body)" } else { request += "\r\n" }
            try client.send(request)
            let answer = try client.read(headRequest: method == "HEAD")
            #expect(answer.status == 200, "\(method): \(answer)")
            if method != "HEAD" {
                #expect(Harness.echoed(answer)?.method == method, "\(method): the answer's body came back")
            }
            let seen = try #require(h.fake.recorded.last { $0.target == "/echo/\(n)" })
            #expect(seen.method == method)
            #expect(String(decoding: seen.body, as: UTF8.self) == (body ?? ""), "\(method) body")
            let length = seen.header("Content-Length")
            if body != nil {
                #expect(length == "\(body!.utf8.count)")
            } else if method == "POST" {
                #expect(length == "0")
            } else {
                #expect(length == nil, "\(method) without a body sends no Content-Length")
            }
        }
    }
}
