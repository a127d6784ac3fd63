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

let version = "0.1.0"

/// Flags shared by every subcommand. The API key and secret have no flag
/// (a flag would show in `ps`): they come from the environment or files.
struct CommonOptions: ParsableArguments {
    @Option(name: .long, help: ArgumentHelp("Address to listen on, HOST:PORT (port 0: any free port). Env: IAMPORT_PROXY_LISTEN. Default: 127.0.0.1:8080.", valueName: "host:port"))
    var listen: String?

    @Option(name: .long, help: ArgumentHelp("YAML (or JSON) file of several accounts, PortOne V1 and V2 (docs/configuration.md); excludes the single-account settings. Env: IAMPORT_PROXY_CONFIG. Default: none, one account from the settings here.", valueName: "path"))
    var config: String?

    @Option(name: .long, help: ArgumentHelp("Base URL of the iamport API. Env: IAMPORT_PROXY_UPSTREAM. Default: https://api.iamport.kr.", valueName: "url"))
    var upstream: String?

    @Option(name: .customLong("upstream-ca-file"), help: ArgumentHelp("PEM bundle to trust for the upstream instead of the system store. Env: IAMPORT_PROXY_UPSTREAM_CA_FILE.", valueName: "path"))
    var upstreamCAFile: String?

    @Option(name: .customLong("api-key-file"), help: ArgumentHelp("File holding the REST API key. Env: IAMPORT_API_KEY_FILE, or IAMPORT_API_KEY with the key itself.", valueName: "path"))
    var apiKeyFile: String?

    @Option(name: .customLong("api-secret-file"), help: ArgumentHelp("File holding the REST API secret. Env: IAMPORT_API_SECRET_FILE, or IAMPORT_API_SECRET with the secret itself.", valueName: "path"))
    var apiSecretFile: String?

    @Option(name: .customLong("client-token-file"), help: ArgumentHelp("File holding the token clients must present. Env: IAMPORT_PROXY_CLIENT_TOKEN_FILE, or IAMPORT_PROXY_CLIENT_TOKEN. Default: none (no inbound authentication).", valueName: "path"))
    var clientTokenFile: String?

    @Option(name: .long, help: ArgumentHelp("Allow only these calls, 'METHOD /path/pattern' (* one segment, ** the rest); repeatable. Env: IAMPORT_PROXY_ALLOW (comma-separated). Default: every call allowed.", valueName: "rule"))
    var allow: [String] = []

    @Option(name: .customLong("upstream-timeout"), help: ArgumentHelp("Seconds to wait for the upstream's answer. Env: IAMPORT_PROXY_UPSTREAM_TIMEOUT. Default: 30.", valueName: "seconds"))
    var upstreamTimeout: Double?

    @Option(name: .customLong("upstream-idle-timeout"), help: ArgumentHelp("Seconds an idle upstream connection is kept for reuse before it is closed (below the server's own limit). Env: IAMPORT_PROXY_UPSTREAM_IDLE_TIMEOUT. Default: 50.", valueName: "seconds"))
    var upstreamIdleTimeout: Double?

    @Option(name: .customLong("max-body-bytes"), help: ArgumentHelp("Largest request body. Env: IAMPORT_PROXY_MAX_BODY_BYTES. Default: 1048576.", valueName: "n"))
    var maxBodyBytes: Int?

    @Option(name: .customLong("max-header-bytes"), help: ArgumentHelp("Largest request head. Env: IAMPORT_PROXY_MAX_HEADER_BYTES. Default: 32768.", valueName: "n"))
    var maxHeaderBytes: Int?

    @Option(name: .customLong("max-connections"), help: ArgumentHelp("Most client connections open at once. Env: IAMPORT_PROXY_MAX_CONNECTIONS. Default: 4096.", valueName: "n"))
    var maxConnections: Int?

    @Option(name: .customLong("event-loops"), help: ArgumentHelp("Event-loop threads; 0: one per core. Set it to the CPU share where the core count seen is not the process's (a container CPU limit). Env: IAMPORT_PROXY_EVENT_LOOPS. Default: 0.", valueName: "n"))
    var eventLoops: Int?

    @Option(name: .customLong("log-level"), help: ArgumentHelp("trace, debug, info, notice, warning, error or critical. Env: IAMPORT_PROXY_LOG_LEVEL. Default: info.", valueName: "level"))
    var logLevel: String?

    @Option(name: .customLong("log-format"), help: ArgumentHelp("text or json. Env: IAMPORT_PROXY_LOG_FORMAT. Default: text.", valueName: "format"))
    var logFormat: String?
}

@main
struct IamportProxy: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "iamport-proxy",
        abstract: "An authenticating reverse proxy for the iamport (PortOne V1) REST API.",
        discussion: """
            The proxy holds the REST API key and secret, gets and caches the access token, adds \
            'Authorization: Bearer <token>' to each request and forwards it to the API. \
            Exit status: 0 after a clean shutdown, 1 for a runtime failure, 2 for a configuration error.
            """,
        version: version,
        subcommands: [Check.self, HealthCheck.self])

    @OptionGroup var options: CommonOptions

    func run() throws {
        try serve(options)
    }

    static func main() {
        // Before anything else: this may re-execute the process (see CrashOutput).
        _ = CrashOutput.mode
        do {
            var command = try parseAsRoot()
            try command.run()
        } catch let error as ConfigurationError {
            printError("iamport-proxy: configuration error: \(error)")
            Glibc.exit(2)
        } catch let error as RuntimeFailure {
            printError("iamport-proxy: \(error)")
            Glibc.exit(1)
        } catch {
            let code = exitCode(for: error)
            if code == .success {
                exit(withError: error)
            }
            printError(fullMessage(for: error))
            Glibc.exit(2)  // usage errors are configuration errors
        }
    }
}

/// One line to standard error, in one write.
func printError(_ text: String) {
    var line = Array(text.utf8)
    line.append(0x0A)
    _ = line.withUnsafeBytes { write(2, $0.baseAddress, $0.count) }
}

struct RuntimeFailure: Error, CustomStringConvertible {
    let description: String
}

func makeLogger(level: Logger.Level, format: LineLogHandler.Format) -> Logger {
    var logger = Logger(label: "iamport-proxy") { label in
        LineLogHandler(label: label, level: level, format: format)
    }
    logger.logLevel = level
    return logger
}

/// Runs the proxy until SIGTERM or SIGINT; SIGHUP reloads.
func serve(_ options: CommonOptions) throws {
    let env = Environment.current()
    let resolved = try Settings.load(options, env: env)
    let configuration: ProxyConfiguration
    switch resolved {
    case .single(let single): configuration = try single.proxyConfiguration()
    case .accounts(let accounts): configuration = accounts.proxyConfiguration()
    }
    let signals = TerminationSignals.block()

    let logger = makeLogger(level: resolved.global.logLevel, format: resolved.global.logFormat)
    _ = UpstreamClient.globalInit
    let service: ProxyService
    do {
        service = try ProxyService(configuration: configuration, logger: logger, logSink: .standardError)
    } catch {
        logger.critical("cannot start: \(error)")
        throw RuntimeFailure(description: "cannot start: \(error)")
    }
    switch CrashOutput.mode {
    case .safe, .operatorSettings(showsRegisters: false):
        break
    case .operatorSettings(showsRegisters: true):
        logger.warning("SWIFT_BACKTRACE lets a crash print registers and memory, which can hold the access token and the API secret: set it so for debugging only")
    case .handlersRemoved(let errno):
        logger.warning("cannot re-execute with safe SWIFT_BACKTRACE settings (errno \(errno)): a crash prints no backtrace")
    }
    for account in configuration.accounts where account.upstream.lowercased().hasPrefix("http://") {
        logger.warning("the upstream is plain HTTP: use https:// outside tests", metadata: ["upstream": "\(account.upstream)"])
    }
    // The start and stop lines show at any log level: scripts wait for this one.
    var lifecycle = logger
    lifecycle.logLevel = min(logger.logLevel, .notice)
    switch resolved {
    case .single(let settings):
        lifecycle.notice("listening on \(service.address)", metadata: [
            "upstream": "\(settings.upstream)", "version": "\(version)",
            "client_token": "\(settings.clientToken == nil ? "off" : "on")",
            "allow_rules": "\(settings.allow.count)", "loops": "\(service.group.loops.count)",
        ])
    case .accounts(let settings):
        let shared = settings.accounts.filter(\.isShared).map(\.name)
        lifecycle.notice("listening on \(service.address)", metadata: [
            "accounts": "\(shared.joined(separator: ","))", "version": "\(version)",
            "loops": "\(service.group.loops.count)",
        ])
        for account in settings.accounts {
            guard let address = service.ownAddresses[account.name] else { continue }
            lifecycle.notice("listening on \(address) for account \(account.name)", metadata: ["account": "\(account.name)"])
        }
    }
    if env[DeliberateCrash.variable] == "1", let tokens = service.tokenCaches.first {
        DeliberateCrash.arm(tokens)
    }
    let reloader = Reloader(options: options, env: env, service: service, logger: lifecycle, initial: resolved.global)
    let watcher = ConfigWatcher(paths: resolved.watchedPaths(options, env: env), loop: service.group.loops[0]) { changed in
        reloader.reload(trigger: "file change (\(changed.joined(separator: ", ")))")
    }
    reloader.watch(with: watcher)
    watcher.start()
    defer { watcher.stop() }
    var received = signals.wait()
    while received == SIGHUP {
        reloader.reload(trigger: "SIGHUP")
        received = signals.wait()
    }
    lifecycle.notice("shutting down", metadata: ["signal": "\(received == SIGTERM ? "SIGTERM" : "SIGINT")"])
    let clean = service.shutdown(grace: .seconds(10))
    lifecycle.notice("stopped", metadata: ["clean": "\(clean)"])
}

/// Reads the configuration and secret files again and applies them
/// (SPEC.md, "Reload without a restart"): a valid new configuration serves
/// the requests that arrive after it; an invalid one is refused, logged and
/// counted, and the old one stays.
final class Reloader: Sendable {
    let options: CommonOptions
    let env: [String: String]
    let service: ProxyService
    let logger: Logger
    let initial: GlobalSettings
    /// One reload at a time (a signal and a file change can coincide).
    private let running = Mutex<Void>(())
    /// Told which files the configuration reads after each reload.
    private let watcher = Mutex<ConfigWatcher?>(nil)

    func watch(with watcher: ConfigWatcher) {
        self.watcher.withLock { $0 = watcher }
    }

    init(options: CommonOptions, env: [String: String], service: ProxyService, logger: Logger, initial: GlobalSettings) {
        self.options = options
        self.env = env
        self.service = service
        self.logger = logger
        self.initial = initial
    }

    func reload(trigger: String) {
        running.withLock { _ in
            let accounts: [AccountConfiguration]
            let global: GlobalSettings
            do {
                let resolved = try Settings.load(options, env: env)
                // A new file may name other secret files: watch those from now on.
                let paths = resolved.watchedPaths(options, env: env)
                watcher.withLock { $0?.replacePaths(paths) }
                switch resolved {
                case .single(let settings):
                    accounts = [try settings.account()]
                    global = settings.global
                case .accounts(let settings):
                    accounts = settings.accounts
                    global = settings.global
                }
            } catch {
                refused("\(error)", trigger: trigger)
                return
            }
            switch service.reload(accounts) {
            case .failure(let refusal):
                refused(refusal.description, trigger: trigger)
            case .success(let summary):
                service.metrics.configReload(succeeded: true)
                var metadata: Logger.Metadata = ["trigger": "\(trigger)"]
                if !summary.added.isEmpty { metadata["added"] = "\(summary.added.joined(separator: ","))" }
                if !summary.removed.isEmpty { metadata["removed"] = "\(summary.removed.joined(separator: ","))" }
                if !summary.newCredentials.isEmpty {
                    metadata["new_credentials"] = "\(summary.newCredentials.joined(separator: ","))"
                }
                if !summary.changed.isEmpty { metadata["changed"] = "\(summary.changed.joined(separator: ","))" }
                logger.notice(summary.isEmpty ? "configuration reloaded: no change" : "configuration reloaded", metadata: metadata)
                let restartOnly = global.restartOnlyDifferences(from: initial)
                if !restartOnly.isEmpty {
                    logger.warning("these settings change only with a restart; still serving with the old values", metadata: [
                        "settings": "\(restartOnly.joined(separator: ","))"
                    ])
                }
            }
        }
    }

    private func refused(_ why: String, trigger: String) {
        service.metrics.configReload(succeeded: false)
        logger.error("configuration reload refused: \(why); the previous configuration stays in force", metadata: [
            "trigger": "\(trigger)"
        ])
    }
}

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

/// One exchange on a loop of its own, for `check`.
enum OneExchange {
    static func run(upstream configuration: UpstreamConfiguration, _ request: UpstreamRequest,
                    timeout: Nanoseconds) -> Result<UpstreamResponse, UpstreamError>? {
        signal(SIGPIPE, SIG_IGN)
        _ = UpstreamClient.globalInit
        guard let group = try? EventLoopGroup(count: 1) else { return .failure(.unreachable("cannot start an event loop")) }
        let upstream = UpstreamClient(loop: group.loops[0], configuration: configuration)
        let outcome = Latch<Result<UpstreamResponse, UpstreamError>>()
        group.loops[0].execute {
            upstream.send(request) { outcome.set($0) }
        }
        let result = outcome.wait(timeout: timeout)
        let done = Latch<Void>()
        group.loops[0].execute {
            upstream.close()
            done.set()
        }
        _ = done.wait(timeout: .seconds(5))
        group.shutdown()
        return result
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
        signal(SIGPIPE, SIG_IGN)
        _ = UpstreamClient.globalInit
        let group: EventLoopGroup
        do {
            group = try EventLoopGroup(count: 1)
        } catch {
            return .failure(RuntimeFailure(description: "cannot start an event loop: \(error)"))
        }
        let upstream = UpstreamClient(loop: group.loops[0], configuration: configuration)
        let client = GetTokenClient(upstream: upstream, apiKey: apiKey, apiSecret: apiSecret)
        let outcome = Latch<Result<IssuedToken, TokenError>>()
        client.fetchToken { outcome.set($0) }
        let result = outcome.wait(timeout: timeout)
        let done = Latch<Void>()
        group.loops[0].execute {
            upstream.close()
            done.set()
        }
        _ = done.wait(timeout: .seconds(5))
        group.shutdown()
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

struct HealthCheck: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "healthcheck",
        abstract: "Probe a running proxy's /_proxy/readyz on the listen address; exit 0 when ready (for container health checks).")

    @OptionGroup var options: CommonOptions

    func run() throws {
        let env = Environment.current()
        var listen = try options.listen ?? env["IAMPORT_PROXY_LISTEN"]
            ?? LoadedConfigFile.named(by: options, env: env)?.file.global["listen"]?.text ?? Settings.defaultListen
        if listen.hasPrefix("0.0.0.0:") { listen = "127.0.0.1:" + listen.dropFirst(8) }
        if listen.hasPrefix("[::]:") { listen = "[::1]:" + listen.dropFirst(5) }
        let status = try ReadinessProbe.status(of: listen, timeoutSeconds: 3)
        guard status == 200 else {
            throw RuntimeFailure(description: "not ready (HTTP \(status))")
        }
        print("ready")
    }
}
