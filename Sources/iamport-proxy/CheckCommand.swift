#if canImport(Glibc)
import Glibc
#endif
import Accounts
import ArgumentParser
import EventLoops
import FoundationEssentials
import Iamport
import Logging
import Proxy
import Server
import Synchronization
import Upstream

struct Check: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "check",
        abstract: "Fetch a token with the configured credentials; exit 0, or 1 with the API's message.")

    @OptionGroup var options: CommonOptions

    func run() throws {
        switch try Settings.load(options, env: Environment.current()) {
        case .single(let settings):
            let configuration = try settings.proxyConfiguration()
            switch TokenCheck.run(upstream: configuration.upstream, apiKey: settings.apiKey, apiSecret: settings.apiSecret,
                                  timeout: settings.global.upstreamTimeout + .seconds(5)) {
            case .success(let line): print(line)
            case .failure(let failure): throw RuntimeFailure(description: "check failed: \(failure.description)")
            }
        case .accounts(let settings):
            try checkAccounts(settings)
        }
    }

    /// One line per account: a V1 account fetches a token; a V2 account
    /// makes an authenticated read that changes nothing.
    func checkAccounts(_ settings: AccountsSettings) throws {
        var failed: [String] = []
        for account in settings.accounts {
            print(settings.summary(account))
        }
        for account in settings.accounts {
            let upstream = settings.global.upstreamConfiguration(baseURL: account.upstream, caFile: account.caFile)
            let timeout = settings.global.upstreamTimeout + .seconds(5)
            let outcome: Result<String, RuntimeFailure>
            switch account.api {
            case .v1:
                guard let apiKey = account.apiKey else { continue }
                outcome = TokenCheck.run(upstream: upstream, apiKey: apiKey, apiSecret: account.apiSecret, timeout: timeout)
            case .v2:
                outcome = SecretCheck.run(upstream: upstream, apiSecret: account.apiSecret, timeout: timeout)
            }
            switch outcome {
            case .success(let line):
                print("\(account.name): \(line)")
            case .failure(let failure):
                print("\(account.name): check failed: \(failure.description)")
                failed.append(account.name)
            }
        }
        if !failed.isEmpty {
            throw RuntimeFailure(description: "check failed for \(failed.joined(separator: ", "))")
        }
    }
}

/// One event loop with an upstream client on it, for `check`: made, used
/// for one call, then released (the client closed on its loop first).
struct CheckLoop {
    let group: EventLoopGroup
    let upstream: UpstreamClient

    init(_ configuration: UpstreamConfiguration) throws(SystemError) {
        signal(SIGPIPE, SIG_IGN)
        _ = UpstreamClient.globalInit
        group = try EventLoopGroup(count: 1)
        upstream = UpstreamClient(loop: group.loops[0], configuration: configuration)
    }

    func close() {
        let done = Latch<Void>()
        group.loops[0].execute { [upstream] in
            upstream.close()
            done.set()
        }
        _ = done.wait(timeout: .seconds(5))
        group.shutdown()
    }
}

/// One exchange on a loop of its own, for `check`.
enum OneExchange {
    static func run(upstream configuration: UpstreamConfiguration, _ request: UpstreamRequest,
                    timeout: Nanoseconds) -> Result<UpstreamResponse, UpstreamError>? {
        guard let check = try? CheckLoop(configuration) else { return .failure(.unreachable("cannot start an event loop")) }
        defer { check.close() }
        let outcome = Latch<Result<UpstreamResponse, UpstreamError>>()
        check.group.loops[0].execute { [upstream = check.upstream] in
            upstream.send(request) { outcome.set($0) }
        }
        return outcome.wait(timeout: timeout)
    }
}

/// A V2 account's check: `GET /payments/<an id no payment has>` with its
/// secret. Any answer but 401 or 403 shows the API accepted the secret (a
/// 404 is the expected one); nothing is changed.
enum SecretCheck {
    static func run(upstream: UpstreamConfiguration, apiSecret: Secret, timeout: Nanoseconds) -> Result<String, RuntimeFailure> {
        var path = Array("/payments/iamport-proxy-check-".utf8)
        var random = SystemRandomNumberGenerator()
        path.append(contentsOf: String(random.next() as UInt64, radix: 16).utf8)
        let request = UpstreamRequest(
            method: .get, methodName: "GET", pathAndQuery: path, headerLines: Array("Accept: application/json\0".utf8),
            firstLine: apiSecret.reveal { Array("Authorization: PortOne \($0)".utf8) }, body: nil)
        switch OneExchange.run(upstream: upstream, request, timeout: timeout) {
        case nil:
            return .failure(RuntimeFailure(description: "no answer from the API in time"))
        case .failure(let error):
            return .failure(RuntimeFailure(description: error.message))
        case .success(let answer) where answer.status == 401 || answer.status == 403:
            let message = v2Message(answer.body) ?? "HTTP \(answer.status)"
            let clean = apiSecret.reveal { message.replacing($0, with: "<redacted>") }
            return .failure(RuntimeFailure(description: "the API refused the secret (HTTP \(answer.status)): \(clean)"))
        case .success(let answer) where answer.status >= 500:
            return .failure(RuntimeFailure(description: "the API answered HTTP \(answer.status)"))
        case .success(let answer):
            return .success("ok: the API accepted the secret (an authenticated read answered HTTP \(answer.status))")
        }
    }

    /// `message` of a V2 error answer, if it is one.
    static func v2Message(_ body: [UInt8]) -> String? {
        struct V2Error: Decodable { var message: String? }
        return (try? JSONDecoder().decode(V2Error.self, from: Data(body)))?.message
    }
}

/// Fetches one token with a key and secret: what `check` does per V1 account.
enum TokenCheck {
    static func run(upstream configuration: UpstreamConfiguration, apiKey: Secret, apiSecret: Secret,
                    timeout: Nanoseconds) -> Result<String, RuntimeFailure> {
        let check: CheckLoop
        do {
            check = try CheckLoop(configuration)
        } catch {
            return .failure(RuntimeFailure(description: "cannot start an event loop: \(error)"))
        }
        let client = GetTokenClient(upstream: check.upstream, apiKey: apiKey, apiSecret: apiSecret)
        let outcome = Latch<Result<IssuedToken, TokenError>>()
        client.fetchToken { outcome.set($0) }
        let result = outcome.wait(timeout: timeout)
        check.close()
        switch result {
        case .success(let token):
            return .success("ok: a token was issued, valid for \(token.lifetime) s (by the API's clock)")
        case .failure(let error):
            return .failure(RuntimeFailure(description: error.message))
        case nil:
            return .failure(RuntimeFailure(description: "no answer from the token endpoint in time"))
        }
    }
}
