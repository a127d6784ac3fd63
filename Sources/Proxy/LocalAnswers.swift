#if canImport(Glibc)
import Glibc
#endif
import FoundationEssentials
import HTTP1
import Iamport
import Server

/// Answers the proxy gives without the upstream: its own endpoints and the
/// getToken that SDKs call.
struct LocalAnswers: Sendable {
    /// Returned by the local getToken when no client token is configured.
    static let placeholderToken = "iamport-proxy-placeholder-token"

    static func json(_ status: Int, _ body: String, requestID: [UInt8]) -> Response {
        var response = Response(status: status)
        response.addHeader("Content-Type", "application/json; charset=utf-8")
        response.addHeader("X-Request-Id", bytes: requestID)
        response.addHeader("Cache-Control", "no-store")
        response.body = Array(body.utf8)
        return response
    }

    static func health(requestID: [UInt8]) -> Response {
        json(200, #"{"status":"ok"}"#, requestID: requestID)
    }

    /// The process's one account (no config file): ready while it holds a
    /// valid token.
    static func readiness(_ status: TokenStatus?, requestID: [UInt8]) -> Response {
        guard let status else { return json(200, #"{"status":"ready"}"#, requestID: requestID) }
        if status.valid {
            let seconds = wholeSeconds(status.expiresIn ?? 0)
            return json(200, #"{"status":"ready","token_expires_in":\#(seconds)}"#, requestID: requestID)
        }
        var body: [UInt8] = Array(#"{"status":"not_ready","reason":"#.utf8)
        appendJSONString(notReadyReason(status), to: &body)
        body.append(UInt8(ascii: "}"))
        var response = json(503, "", requestID: requestID)
        response.body = body
        return response
    }

    private static func notReadyReason(_ status: TokenStatus) -> String {
        status.lastError ?? (status.fetching ? "fetching the first token" : "no valid token")
    }

    /// Several accounts: 200 when every one is ready, else 503 naming those
    /// that are not and why. A V1 account (with a token status) is ready
    /// while it holds a valid token; a V2 account (nil) has none to hold.
    /// `{"status":"not_ready","reason":"shop-a: ...","accounts":{"shop-a":{"status":"not_ready","reason":"..."},...}}`
    static func readiness(_ accounts: [(name: String, status: TokenStatus?)], requestID: [UInt8]) -> Response {
        var details: [UInt8] = []
        var notReady: [String] = []
        for (offset, account) in accounts.enumerated() {
            if offset > 0 { details.append(UInt8(ascii: ",")) }
            appendJSONString(account.name, to: &details)
            if let status = account.status, !status.valid {
                let reason = notReadyReason(status)
                notReady.append("\(account.name): \(reason)")
                details.append(contentsOf: #":{"status":"not_ready","reason":"#.utf8)
                appendJSONString(reason, to: &details)
                details.append(UInt8(ascii: "}"))
            } else if let status = account.status {
                details.append(contentsOf: #":{"status":"ready","token_expires_in":\#(wholeSeconds(status.expiresIn ?? 0))}"#.utf8)
            } else {
                details.append(contentsOf: #":{"status":"ready"}"#.utf8)
            }
        }
        var body: [UInt8]
        if notReady.isEmpty {
            body = Array(#"{"status":"ready","accounts":{"#.utf8)
        } else {
            body = Array(#"{"status":"not_ready","reason":"#.utf8)
            appendJSONString(notReady.joined(separator: "; "), to: &body)
            body.append(contentsOf: #","accounts":{"#.utf8)
        }
        body.append(contentsOf: details)
        body.append(contentsOf: "}}".utf8)
        var response = json(notReady.isEmpty ? 200 : 503, "", requestID: requestID)
        response.body = body
        return response
    }

    static func metrics(_ text: [UInt8], requestID: [UInt8]) -> Response {
        var response = Response(status: 200)
        response.addHeader("Content-Type", "text/plain; version=0.0.4; charset=utf-8")
        response.addHeader("X-Request-Id", bytes: requestID)
        response.body = text
        return response
    }

    private struct Credentials: Decodable {
        var imp_key: String?
        var imp_secret: String?
    }

    /// The `imp_secret` of a getToken body, JSON or form-encoded.
    static func submittedSecret(_ body: [UInt8]) -> [UInt8]? {
        if let parsed = try? JSONDecoder().decode(Credentials.self, from: Data(body)) {
            return parsed.imp_secret.map { Array($0.utf8) }
        }
        for pair in body.split(separator: ASCII.ampersand) {
            let parts = pair.split(separator: ASCII.equals, maxSplits: 1, omittingEmptySubsequences: false)
            if parts.count == 2, formDecoded(parts[0]) == Array("imp_secret".utf8) {
                return formDecoded(parts[1])
            }
        }
        return nil
    }

    private static func formDecoded(_ bytes: ArraySlice<UInt8>) -> [UInt8] {
        RequestPath.percentDecoded(bytes).map { $0 == UInt8(ascii: "+") ? ASCII.space : $0 }
    }

    /// `POST /users/getToken`, answered here and never forwarded.
    static func getToken(body: [UInt8], clientToken: Secret?, requestID: [UInt8]) -> Response {
        let token: String
        if let clientToken {
            guard let secret = submittedSecret(body), clientToken.constantTimeEquals(secret) else {
                return ProxyError.clientUnauthorized.response(
                    "imp_secret does not match the client token", requestID: requestID)
            }
            token = clientToken.reveal { $0 }
        } else {
            token = placeholderToken
        }
        let now = Int(time(nil))
        var out: [UInt8] = Array(#"{"code":0,"message":null,"response":{"access_token":"#.utf8)
        appendJSONString(token, to: &out)
        out.append(contentsOf: #","now":\#(now),"expired_at":\#(now + 1800)}}"#.utf8)
        var response = json(200, "", requestID: requestID)
        response.body = out
        return response
    }
}
