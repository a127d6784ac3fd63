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
