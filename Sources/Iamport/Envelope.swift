import FoundationEssentials

/// The API's answer envelope: `{"code": 0, "message": null, "response": ...}`.
struct Envelope<Response: Decodable>: Decodable {
    var code: Int?
    var message: String?
    var response: Response?
}

struct TokenResponse: Decodable {
    var access_token: String
    var now: Int64
    var expired_at: Int64
}

struct TokenRequest: Encodable {
    var imp_key: String
    var imp_secret: String
}

enum TokenAnswer {
    /// Reads a getToken answer: the token, or the API's own message.
    static func decode(status: Int, body: [UInt8]) -> Result<IssuedToken, TokenError> {
        let envelope = try? JSONDecoder().decode(Envelope<TokenResponse>.self, from: Data(body))
        if status == 200, let envelope, envelope.code == 0, let r = envelope.response {
            return .success(IssuedToken(accessToken: Secret(r.access_token), serverNow: r.now, expiredAt: r.expired_at))
        }
        if let message = envelope?.message, !message.isEmpty {
            return .failure(.unavailable("getToken refused (HTTP \(status)): \(message)"))
        }
        return .failure(.unavailable("getToken answered HTTP \(status) without a token"))
    }
}
