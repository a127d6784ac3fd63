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

public enum EnvelopeJSON {
    /// A JSON string literal, quoted and escaped.
    public static func quote(_ text: String) -> String {
        var out = "\""
        for scalar in text.unicodeScalars {
            switch scalar {
            case "\"": out += "\\\""
            case "\\": out += "\\\\"
            case "\n": out += "\\n"
            case "\r": out += "\\r"
            case "\t": out += "\\t"
            case _ where scalar.value < 0x20:
                let hex = String(scalar.value, radix: 16)
                out += "\\u" + String(repeating: "0", count: 4 - hex.count) + hex
            default: out.unicodeScalars.append(scalar)
            }
        }
        return out + "\""
    }

    /// `{"code": -1, "message": "...", "response": null}`
    public static func error(_ message: String) -> [UInt8] {
        Array("{\"code\":-1,\"message\":\(quote(message)),\"response\":null}".utf8)
    }
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
