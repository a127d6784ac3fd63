import Testing
@testable import Iamport

/// A getToken answer with `response` as written, status 200 and code 0.
private func answer(_ response: String, status: Int = 200) -> Result<IssuedToken, TokenError> {
    TokenAnswer.decode(status: status, body: Array(#"{"code":0,"message":null,"response":\#(response)}"#.utf8))
}

@Suite struct TokenAnswerTests {
    @Test(arguments: [
        ("lifetime overflows Int64", #"{"access_token":"t","now":-1,"expired_at":9223372036854775807}"#),
        ("lifetime from the smallest now", #"{"access_token":"t","now":-9223372036854775808,"expired_at":9223372036854775807}"#),
        ("expiry far in the future", #"{"access_token":"t","now":0,"expired_at":9223372036854775807}"#),
        ("lifetime of a day and a second", #"{"access_token":"t","now":1700000000,"expired_at":1700086401}"#),
        ("lifetime zero", #"{"access_token":"t","now":1700000000,"expired_at":1700000000}"#),
        ("expired before now", #"{"access_token":"t","now":1700000000,"expired_at":1699998200}"#),
        ("expiry below the smallest now", #"{"access_token":"t","now":9223372036854775807,"expired_at":-9223372036854775808}"#),
        ("now beyond Int64", #"{"access_token":"t","now":99999999999999999999,"expired_at":1700001800}"#),
        ("expired_at beyond Double", #"{"access_token":"t","now":1700000000,"expired_at":1e400}"#),
        ("now with a fraction", #"{"access_token":"t","now":1700000000.5,"expired_at":1700001800}"#),
        ("now as a string", #"{"access_token":"t","now":"1700000000","expired_at":1700001800}"#),
        ("now missing", #"{"access_token":"t","expired_at":1700001800}"#),
        ("expired_at null", #"{"access_token":"t","now":1700000000,"expired_at":null}"#),
        ("token missing", #"{"now":1700000000,"expired_at":1700001800}"#),
        ("token a number", #"{"access_token":12345,"now":1700000000,"expired_at":1700001800}"#),
        ("token empty", #"{"access_token":"","now":1700000000,"expired_at":1700001800}"#),
        ("token of 513 characters", #"{"access_token":"\#(String(repeating: "a", count: 513))","now":1700000000,"expired_at":1700001800}"#),
        ("token with CR LF", #"{"access_token":"qz\r\nX-Evil: injected","now":1700000000,"expired_at":1700001800}"#),
        ("token with a bare LF", #"{"access_token":"qz\nX-Evil: injected","now":1700000000,"expired_at":1700001800}"#),
        ("token with a space", #"{"access_token":"qz en","now":1700000000,"expired_at":1700001800}"#),
        ("token with NUL", #"{"access_token":"qz\u0000en","now":1700000000,"expired_at":1700001800}"#),
        ("token with a tab", #"{"access_token":"qz\ten","now":1700000000,"expired_at":1700001800}"#),
        ("token with DEL", #"{"access_token":"qz\u007fen","now":1700000000,"expired_at":1700001800}"#),
        ("token not ASCII", #"{"access_token":"토큰","now":1700000000,"expired_at":1700001800}"#),
        ("response null", "null"),
        ("response a string", #""token""#),
        ("response an array", "[]"),
    ])
    func malformedAnswersAreAFailedFetch(name: String, response: String) {
        guard case .failure(let error) = answer(response) else {
            Issue.record("\(name): accepted")
            return
        }
        #expect(error.message.hasPrefix("malformed getToken answer: "), "\(name): \(error.message)")
        // The reason is short and never carries the token's value.
        #expect(error.message.count < 120, "\(name): \(error.message)")
        #expect(!error.message.contains("qz"), "\(name): \(error.message)")
        #expect(!error.message.contains("Evil"), "\(name): \(error.message)")
    }

    @Test func aBodyThatIsNotJSONWithStatus200IsMalformed() {
        let result = TokenAnswer.decode(status: 200, body: Array("<html>gateway</html>".utf8))
        guard case .failure(let error) = result else {
            Issue.record("accepted")
            return
        }
        #expect(error.message.hasPrefix("malformed getToken answer"), "\(error.message)")
    }

    @Test(arguments: [
        ("one second", "t", Int64(1_700_000_000), Int64(1_700_000_001)),
        ("a whole day", "t", 1_700_000_000, 1_700_086_400),
        ("negative clock, sane lifetime", "t", -100, 1700),
        ("512 characters", String(repeating: "~", count: 512), 0, 1800),
        ("every visible ASCII character", String(decoding: Array(0x21...0x7E), as: UTF8.self), 0, 1800),
        ("a real-looking token", "b0e2c3d1a4f5e6a7b8c9d0e1f2a3b4c5d6e7f8a9", 1_700_000_000, 1_700_001_800),
    ])
    func validAnswersAtTheEdgesAreAccepted(name: String, token: String, now: Int64, expiredAt: Int64) {
        var escaped = ""
        for c in token { escaped += c == "\"" ? "\\\"" : c == "\\" ? "\\\\" : String(c) }
        let result = answer(#"{"access_token":"\#(escaped)","now":\#(now),"expired_at":\#(expiredAt)}"#)
        guard case .success(let issued) = result else {
            Issue.record("\(name): \(result)")
            return
        }
        #expect(issued.accessToken == Secret(token), "\(name)")
        #expect(issued.serverNow == now && issued.expiredAt == expiredAt, "\(name)")
    }

    @Test func refusalsStillCarryTheAPIsMessage() {
        let refused = TokenAnswer.decode(
            status: 401, body: Array(#"{"code":-1,"message":"invalid imp_key","response":null}"#.utf8))
        #expect(refused == .failure(.unavailable("getToken refused (HTTP 401): invalid imp_key")))
        let silent = TokenAnswer.decode(status: 500, body: Array("oops".utf8))
        #expect(silent == .failure(.unavailable("getToken answered HTTP 500 without a token")))
        let codeRefused = TokenAnswer.decode(
            status: 200, body: Array(#"{"code":1,"message":"no such key","response":null}"#.utf8))
        #expect(codeRefused == .failure(.unavailable("getToken refused (HTTP 200): no such key")))
    }

    @Test(arguments: [
        (Int64(-1), Int64.max, Int64.max),
        (Int64.min, Int64.max, Int64.max),
        (Int64.max, Int64.min, Int64.min),
        (Int64(1), Int64.min, Int64.min),
        (Int64(1_700_000_000), Int64(1_700_001_800), Int64(1800)),
    ])
    func lifetimeSaturatesInsteadOfTrapping(now: Int64, expiredAt: Int64, lifetime: Int64) {
        #expect(IssuedToken(accessToken: Secret("t"), serverNow: now, expiredAt: expiredAt).lifetime == lifetime)
    }
}
