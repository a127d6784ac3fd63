#if canImport(Glibc)
import Glibc
#endif
import Accounts
import EventLoops
import HTTP1
import Iamport
import Logging
import Proxy
import Server
import Upstream

/// A configuration mistake: the message names the setting. Exit status 2.
struct ConfigurationError: Error, CustomStringConvertible {
    let description: String
    init(_ description: String) { self.description = description }
}

/// The process environment as a dictionary.
enum Environment {
    static func current() -> [String: String] {
        var result: [String: String] = [:]
        var pointer = environ
        while let entry = pointer.pointee {
            let text = String(cString: entry)
            if let eq = text.firstIndex(of: "=") {
                result[String(text[..<eq])] = String(text[text.index(after: eq)...])
            }
            pointer += 1
        }
        return result
    }
}

/// The settings every mode shares: the shared listener, limits, timeouts,
/// logging. A flag wins over its variable, the variable over the config
/// file, the file over the default.
struct GlobalSettings {
    var listen: String
    var upstreamTimeout: Nanoseconds
    var upstreamIdleTimeout: Nanoseconds
    var maxBodyBytes: Int
    var maxHeaderBytes: Int
    var maxConnections: Int
    var eventLoops: Int
    var logLevel: Logger.Level
    var logFormat: LineLogHandler.Format

    static func resolve(_ flags: CommonOptions, env: [String: String], file: LoadedConfigFile? = nil) throws -> GlobalSettings {
        let levelText = text(flags.logLevel, "IAMPORT_PROXY_LOG_LEVEL", env, file, "log_level")
            ?? Origin(value: "info", file: nil)
        guard let level = Logger.Level(rawValue: levelText.value.lowercased()) else {
            throw ConfigurationError(
                "\(levelText.setting(or: "IAMPORT_PROXY_LOG_LEVEL / --log-level")): '\(levelText.value)' is not one of trace, debug, info, notice, warning, error, critical")
        }
        let formatText = text(flags.logFormat, "IAMPORT_PROXY_LOG_FORMAT", env, file, "log_format")
            ?? Origin(value: "text", file: nil)
        guard let format = LineLogHandler.Format(rawValue: formatText.value.lowercased()) else {
            throw ConfigurationError(
                "\(formatText.setting(or: "IAMPORT_PROXY_LOG_FORMAT / --log-format")): '\(formatText.value)' is not text or json")
        }
        // An empty IAMPORT_PROXY_LISTEN is an error, as it always was.
        let listenText = flags.listen.map { Origin(value: $0, file: nil) }
            ?? env["IAMPORT_PROXY_LISTEN"].map { Origin(value: $0, file: nil) }
            ?? text(nil, "", [:], file, "listen") ?? Origin(value: Settings.defaultListen, file: nil)
        do {
            _ = try SocketAddress.resolve(listenText.value)
        } catch {
            throw ConfigurationError("\(listenText.setting(or: "IAMPORT_PROXY_LISTEN / --listen")): \(error)")
        }
        return GlobalSettings(
            listen: listenText.value,
            upstreamTimeout: .seconds(
                try number(flags.upstreamTimeout, "IAMPORT_PROXY_UPSTREAM_TIMEOUT", "--upstream-timeout", env,
                           file, "upstream_timeout", default: 30.0, range: 0.1...600)),
            upstreamIdleTimeout: .seconds(
                try number(
                    flags.upstreamIdleTimeout, "IAMPORT_PROXY_UPSTREAM_IDLE_TIMEOUT", "--upstream-idle-timeout", env,
                    file, "upstream_idle_timeout", default: 50.0, range: 0.1...3600)),
            maxBodyBytes: try number(flags.maxBodyBytes, "IAMPORT_PROXY_MAX_BODY_BYTES", "--max-body-bytes", env,
                                     file, "max_body_bytes", default: 1_048_576, range: 0...(1 << 30)),
            maxHeaderBytes: try number(flags.maxHeaderBytes, "IAMPORT_PROXY_MAX_HEADER_BYTES", "--max-header-bytes", env,
                                       file, "max_header_bytes", default: 32768, range: 1024...(1 << 20)),
            maxConnections: try number(flags.maxConnections, "IAMPORT_PROXY_MAX_CONNECTIONS", "--max-connections", env,
                                       file, "max_connections", default: 4096, range: 1...1_000_000),
            eventLoops: try number(flags.eventLoops, "IAMPORT_PROXY_EVENT_LOOPS", "--event-loops", env,
                                   file, "event_loops", default: 0, range: 0...256),
            logLevel: level, logFormat: format)
    }

    /// A value and, when it came from the config file, where in it.
    struct Origin {
        let value: String
        let file: (loaded: LoadedConfigFile, key: String, line: Int?)?

        /// How an error names the setting the value came from.
        func setting(or flagAndVariable: String) -> String {
            guard let file else { return flagAndVariable }
            return file.loaded.place(line: file.line, key: file.key)
        }
    }

    /// A flag, else a non-empty variable, else the file's key.
    static func text(_ flag: String?, _ variable: String, _ env: [String: String], _ file: LoadedConfigFile?,
                     _ key: String) -> Origin? {
        if let flag { return Origin(value: flag, file: nil) }
        if let value = env[variable], !value.isEmpty { return Origin(value: value, file: nil) }
        if let file, let value = file.file.global[key] {
            return Origin(value: value.text, file: (file, key, value.line))
        }
        return nil
    }

    static func number<T: LosslessStringConvertible & Comparable>(
        _ flag: T?, _ variable: String, _ flagName: String, _ env: [String: String], _ file: LoadedConfigFile?,
        _ key: String, default value: T, range: ClosedRange<T>
    ) throws -> T {
        let result: T
        var setting = "\(variable) / \(flagName)"
        if let flag {
            result = flag
        } else if let text = env[variable], !text.isEmpty {
            guard let parsed = T(text) else {
                throw ConfigurationError("\(variable): '\(text)' is not a number")
            }
            result = parsed
        } else if let file, let text = file.file.global[key] {
            setting = file.place(line: text.line, key: key)
            guard let parsed = T(text.text) else {
                throw ConfigurationError("\(setting): '\(text.text)' is not a number")
            }
            result = parsed
        } else {
            result = value
        }
        guard range.contains(result) else {
            throw ConfigurationError("\(setting): \(result) is outside \(range.lowerBound)...\(range.upperBound)")
        }
        return result
    }
}

/// Resolves every setting of the single-account mode: a flag wins over its
/// environment variable, the variable over the default. Secrets come from
/// the environment or files only.
struct Settings {
    var global: GlobalSettings
    var upstream: String
    var caFile: String?
    var apiKey: Secret
    var apiSecret: Secret
    var clientToken: Secret?
    var allow: [String]
    /// Tests only (undocumented): makes libcurl close connections the pool
    /// holds, the history behind the stalls a soak once found.
    var testLibcurlMaxAge: Int? = nil

    static let defaultListen = "127.0.0.1:8080"
    static let defaultUpstream = "https://api.iamport.kr"

    /// One V1 account from the flags and variables, or the accounts of the
    /// config file when `--config` or IAMPORT_PROXY_CONFIG names one.
    static func load(_ flags: CommonOptions, env: [String: String]) throws -> ResolvedSettings {
        if let file = try LoadedConfigFile.named(by: flags, env: env) {
            return .accounts(try AccountsSettings.resolve(flags, env: env, file: file))
        }
        return .single(try resolve(flags, env: env))
    }

    static func resolve(_ flags: CommonOptions, env: [String: String]) throws -> Settings {
        let global = try GlobalSettings.resolve(flags, env: env)
        let upstream = flags.upstream ?? env["IAMPORT_PROXY_UPSTREAM"] ?? defaultUpstream
        try validateUpstream(upstream)
        let caFile = flags.upstreamCAFile ?? env["IAMPORT_PROXY_UPSTREAM_CA_FILE"].flatMap { $0.isEmpty ? nil : $0 }
        if let caFile, access(caFile, R_OK) != 0 {
            throw ConfigurationError("IAMPORT_PROXY_UPSTREAM_CA_FILE / --upstream-ca-file: cannot read '\(caFile)'")
        }
        let apiKey = try secret(
            flagFile: flags.apiKeyFile, variable: "IAMPORT_API_KEY", fileVariable: "IAMPORT_API_KEY_FILE",
            flagName: "--api-key-file", env: env)
        let apiSecret = try secret(
            flagFile: flags.apiSecretFile, variable: "IAMPORT_API_SECRET", fileVariable: "IAMPORT_API_SECRET_FILE",
            flagName: "--api-secret-file", env: env)
        guard let apiKey else { throw ConfigurationError("IAMPORT_API_KEY is not set (or IAMPORT_API_KEY_FILE / --api-key-file)") }
        guard let apiSecret else {
            throw ConfigurationError("IAMPORT_API_SECRET is not set (or IAMPORT_API_SECRET_FILE / --api-secret-file)")
        }
        let clientToken = try secret(
            flagFile: flags.clientTokenFile, variable: "IAMPORT_PROXY_CLIENT_TOKEN",
            fileVariable: "IAMPORT_PROXY_CLIENT_TOKEN_FILE", flagName: "--client-token-file", env: env)
        let allow: [String]
        if !flags.allow.isEmpty {
            allow = flags.allow
        } else if let list = env["IAMPORT_PROXY_ALLOW"], !list.isEmpty {
            allow = list.split(separator: ",").map { $0.trimmingSpaces() }.filter { !$0.isEmpty }
        } else {
            allow = []
        }
        do {
            _ = try AllowList(allow)
        } catch {
            throw ConfigurationError("IAMPORT_PROXY_ALLOW / --allow: \(error)")
        }
        var settings = Settings(
            global: global, upstream: upstream, caFile: caFile, apiKey: apiKey, apiSecret: apiSecret,
            clientToken: clientToken, allow: allow)
        settings.testLibcurlMaxAge = env["IAMPORT_PROXY_TEST_LIBCURL_MAXAGE"].flatMap(Int.init).flatMap { $0 > 0 ? $0 : nil }
        return settings
    }

    /// The one account these settings describe, as a reload applies it.
    func account() throws -> AccountConfiguration {
        AccountConfiguration(
            name: "default", api: .v1, upstream: UpstreamConfiguration(baseURL: upstream).baseURL, caFile: caFile,
            apiKey: apiKey, apiSecret: apiSecret, clientToken: clientToken, allow: try AllowList(allow))
    }

    static func validateUpstream(_ url: String) throws {
        if let problem = UpstreamURL.problem(url) {
            throw ConfigurationError("IAMPORT_PROXY_UPSTREAM / --upstream: \(problem)")
        }
    }

    /// A secret from a file named by a flag, from a variable, or from a file
    /// named by a variable. Setting both the variable and its _FILE twin is
    /// an error, so an operator never wonders which one won.
    static func secret(flagFile: String?, variable: String, fileVariable: String, flagName: String,
                       env: [String: String]) throws -> Secret? {
        if let flagFile { return try readSecretFile(flagFile, setting: flagName) }
        let direct = env[variable].flatMap { $0.isEmpty ? nil : $0 }
        let file = env[fileVariable].flatMap { $0.isEmpty ? nil : $0 }
        if direct != nil && file != nil {
            throw ConfigurationError("\(variable) and \(fileVariable) are both set; set only one")
        }
        if let direct { return Secret(direct) }
        if let file { return try readSecretFile(file, setting: fileVariable) }
        return nil
    }

    static func readSecretFile(_ path: String, setting: String) throws -> Secret {
        do {
            return try SecretFile.read(path)
        } catch {
            throw ConfigurationError("\(setting): \(error)")
        }
    }

    func proxyConfiguration() throws -> ProxyConfiguration {
        let server = global.serverConfiguration()
        var upstreamConfiguration = global.upstreamConfiguration(baseURL: upstream, caFile: caFile)
        if let age = testLibcurlMaxAge { upstreamConfiguration.libcurlMaxConnectionAge = .seconds(age) }
        return ProxyConfiguration(
            server: server, upstream: upstreamConfiguration, apiKey: apiKey, apiSecret: apiSecret,
            clientToken: clientToken, allowList: try AllowList(allow), loopCount: global.eventLoops)
    }
}

extension Substring {
    func trimmingSpaces() -> String {
        var s = self
        while let f = s.first, f == " " || f == "\t" { s = s.dropFirst() }
        while let l = s.last, l == " " || l == "\t" { s = s.dropLast() }
        return String(s)
    }
}
