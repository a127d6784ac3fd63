import FoundationEssentials

/// Reads and checks a getToken answer before anything uses it: the token
/// goes into a header line and its times into the cache's arithmetic, so a
/// value that could break either is a failed fetch here, and nowhere else.
/// Pure (Foundation's JSON decoder and this module's value types), so the
/// fuzz build compiles it on its own.
enum TokenAnswer {
    /// iamport's tokens are 40 hex digits; anything past this is not a token.
    static let maxTokenLength = 512
    /// `expired_at - now`, in seconds: iamport issues 30 minutes.
    static let lifetimes: ClosedRange<Int64> = 1...86_400

    /// The token, or why there is none: the API's own message for a
    /// refusal, "malformed getToken answer: <reason>" for a 200 that does
    /// not hold a usable one. Never carries the token's value.
    static func decode(status: Int, body: [UInt8]) -> Result<IssuedToken, TokenError> {
        let envelope = try? JSONDecoder().decode(AnswerEnvelope.self, from: Data(body))
        guard status == 200, envelope.map({ $0.code == 0 }) ?? true else {
            if let message = envelope?.message, !message.isEmpty {
                return .failure(.unavailable("getToken refused (HTTP \(status)): \(message)"))
            }
            return .failure(.unavailable("getToken answered HTTP \(status) without a token"))
        }
        guard let envelope else { return malformed("not a JSON envelope") }
        guard let fields = envelope.response else { return malformed("no token object in response") }
        guard let token = fields.accessToken else { return malformed("access_token missing or not a string") }
        guard let now = fields.now else { return malformed("now missing or not an integer") }
        guard let expiredAt = fields.expiredAt else { return malformed("expired_at missing or not an integer") }
        if let reason = problem(token: token, now: now, expiredAt: expiredAt) { return malformed(reason) }
        return .success(IssuedToken(accessToken: Secret(token), serverNow: now, expiredAt: expiredAt))
    }

    /// What is wrong with these values, or nil when they are usable. The
    /// reason names the rule broken, never the token.
    static func problem(token: String, now: Int64, expiredAt: Int64) -> String? {
        let bytes = token.utf8
        if bytes.isEmpty { return "empty access_token" }
        if bytes.count > maxTokenLength { return "access_token longer than \(maxTokenLength) characters" }
        // Visible ASCII only: no space, CR, LF, NUL or anything a header line could break on.
        if !bytes.allSatisfy({ $0 >= 0x21 && $0 <= 0x7E }) { return "access_token has a character other than visible ASCII" }
        let (lifetime, overflow) = expiredAt.subtractingReportingOverflow(now)
        if overflow { return "expired_at - now overflows" }
        if !lifetimes.contains(lifetime) { return "token lifetime of \(lifetime) s is not between 1 s and 24 h" }
        return nil
    }

    private static func malformed(_ reason: String) -> Result<IssuedToken, TokenError> {
        .failure(.unavailable("malformed getToken answer: \(reason)"))
    }
}

/// The API's envelope, `{"code": 0, "message": null, "response": ...}`, read
/// leniently: a field of the wrong type is absent, so the checks above can
/// say which one is wrong instead of failing the whole answer.
private struct AnswerEnvelope: Decodable {
    var code: Int?
    var message: String?
    var response: TokenFields?

    enum CodingKeys: String, CodingKey { case code, message, response }

    init(from decoder: any Decoder) throws {
        let c = try decoder.container(keyedBy: CodingKeys.self)
        code = try? c.decodeIfPresent(Int.self, forKey: .code)
        message = try? c.decodeIfPresent(String.self, forKey: .message)
        response = try? c.decodeIfPresent(TokenFields.self, forKey: .response)
    }
}

private struct TokenFields: Decodable {
    var accessToken: String?
    var now: Int64?
    var expiredAt: Int64?

    enum CodingKeys: String, CodingKey {
        case accessToken = "access_token", now, expiredAt = "expired_at"
    }

    init(from decoder: any Decoder) throws {
        let c = try decoder.container(keyedBy: CodingKeys.self)
        accessToken = try? c.decodeIfPresent(String.self, forKey: .accessToken)
        now = try? c.decodeIfPresent(Int64.self, forKey: .now)
        expiredAt = try? c.decodeIfPresent(Int64.self, forKey: .expiredAt)
    }
}
