import EventLoops
import FoundationEssentials
import HTTP1
import Upstream

/// The real token source: `POST /users/getToken` through the upstream
/// client of one loop. The credentials go only into the request body.
public final class GetTokenClient: TokenSource {
    private let loop: EventLoop
    /// The upstream client to use, looked up on `loop` when a fetch starts.
    private let upstream: @Sendable () -> UpstreamClient
    private let body: [UInt8]
    private let secretText: Secret

    public convenience init(upstream: UpstreamClient, apiKey: Secret, apiSecret: Secret) {
        self.init(loop: upstream.loop, upstream: { upstream }, apiKey: apiKey, apiSecret: apiSecret)
    }

    public init(loop: EventLoop, upstream: @escaping @Sendable () -> UpstreamClient, apiKey: Secret, apiSecret: Secret) {
        self.loop = loop
        self.upstream = upstream
        self.secretText = apiSecret
        let request = apiKey.reveal { key in apiSecret.reveal { secret in TokenRequest(imp_key: key, imp_secret: secret) } }
        self.body = (try? Array(JSONEncoder().encode(request))) ?? []
    }

    public func fetchToken(_ completion: @escaping @Sendable (Result<IssuedToken, TokenError>) -> Void) {
        let upstreamOnLoop = self.upstream
        let body = self.body
        let secret = self.secretText
        loop.execute {
            let upstream = upstreamOnLoop()
            let request = UpstreamRequest(
                method: .post, methodName: "POST", pathAndQuery: Array("/users/getToken".utf8),
                headerLines: Array("Content-Type: application/json\0Accept: application/json\0".utf8),
                body: body)
            upstream.send(request) { result in
                switch result {
                case .success(let response):
                    completion(Self.redacting(secret, TokenAnswer.decode(status: response.status, body: response.body)))
                case .failure(let error):
                    completion(.failure(.unavailable("getToken failed: \(error.message)")))
                }
            }
        }
    }

    /// Whatever the API says, its message never carries the secret onwards.
    static func redacting(_ secret: Secret, _ result: Result<IssuedToken, TokenError>) -> Result<IssuedToken, TokenError> {
        guard case .failure(.unavailable(let message)) = result else { return result }
        let clean = secret.reveal { s in s.isEmpty ? message : message.replacing(s, with: "<redacted>") }
        return .failure(.unavailable(clean))
    }
}

/// The body of `POST /users/getToken`.
struct TokenRequest: Encodable {
    var imp_key: String
    var imp_secret: String
}
