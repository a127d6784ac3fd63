#if canImport(Glibc)
import Glibc
#endif
import Accounts
import Iamport
import HTTP1
import Proxy
import Server
import Upstream

/// What the command line, environment and config file resolve to.
enum ResolvedSettings {
    /// No config file: one V1 account from the flags and variables.
    case single(Settings)
    /// `--config`: the accounts of the file.
    case accounts(AccountsSettings)

    var global: GlobalSettings {
        switch self {
        case .single(let settings): settings.global
        case .accounts(let settings): settings.global
        }
    }

    /// Every file the configuration was read from, for the reload on a
    /// change: the config file and the files it names, or the single
    /// account's secret and CA files.
    func watchedPaths(_ flags: CommonOptions, env: [String: String]) -> [String] {
        switch self {
        case .accounts(let settings):
            return settings.configFile.file.watchedPaths(configPath: settings.configFile.path)
        case .single:
            let named: [String?] = [
                flags.apiKeyFile ?? env["IAMPORT_API_KEY_FILE"], flags.apiSecretFile ?? env["IAMPORT_API_SECRET_FILE"],
                flags.clientTokenFile ?? env["IAMPORT_PROXY_CLIENT_TOKEN_FILE"],
                flags.upstreamCAFile ?? env["IAMPORT_PROXY_UPSTREAM_CA_FILE"],
            ]
            return named.compactMap { $0 }.filter { !$0.isEmpty }
        }
    }
}

/// The config file named by `--config` or IAMPORT_PROXY_CONFIG, parsed.
struct LoadedConfigFile {
    /// `--config` or `IAMPORT_PROXY_CONFIG`: whichever named the file.
    let setting: String
    let path: String
    let file: ConfigFile

    /// How an error names a place in the file.
    func place(line: Int?, key: String) -> String {
        "\(setting) '\(path)': " + (line.map { "line \($0): " } ?? "") + key
    }

    static func named(by flags: CommonOptions, env: [String: String]) throws -> LoadedConfigFile? {
        let setting: String
        let path: String
        if let flag = flags.config {
            (setting, path) = ("--config", flag)
        } else if let variable = env["IAMPORT_PROXY_CONFIG"], !variable.isEmpty {
            (setting, path) = ("IAMPORT_PROXY_CONFIG", variable)
        } else {
            return nil
        }
        guard !path.isEmpty else { throw ConfigurationError("\(setting): the path is empty") }
        let bytes = try read(path, setting: setting)
        guard let text = String(validating: bytes, as: UTF8.self) else {
            throw ConfigurationError("\(setting) '\(path)': is not UTF-8 text")
        }
        do {
            return LoadedConfigFile(setting: setting, path: path, file: try ConfigFile.parse(text))
        } catch {
            throw ConfigurationError("\(setting) '\(path)': \(error)")
        }
    }

    static func read(_ path: String, setting: String) throws -> [UInt8] {
        guard let handle = fopen(path, "rb") else {
            throw ConfigurationError("\(setting): cannot read '\(path)': \(String(cString: strerror(errno)))")
        }
        defer { fclose(handle) }
        var bytes: [UInt8] = []
        var chunk = [UInt8](repeating: 0, count: 16384)
        while true {
            let n = fread(&chunk, 1, chunk.count, handle)
            if n <= 0 { break }
            bytes.append(contentsOf: chunk[0..<n])
            if bytes.count > ConfigFile.maxBytes {
                throw ConfigurationError("\(setting) '\(path)': larger than \(ConfigFile.maxBytes) bytes")
            }
        }
        return bytes
    }
}

/// The settings of a multi-account proxy: the global ones (flags and
/// variables win over the file) and the file's accounts.
struct AccountsSettings {
    var global: GlobalSettings
    var accounts: [AccountConfiguration]
    var configFile: LoadedConfigFile

    /// The single-account settings: with a config file they belong to the
    /// accounts, so setting one as well is refused, naming both.
    static func singleAccountFlags(_ flags: CommonOptions) -> [String] {
        let set: [(String, Bool)] = [
            ("--upstream", flags.upstream != nil), ("--upstream-ca-file", flags.upstreamCAFile != nil),
            ("--api-key-file", flags.apiKeyFile != nil), ("--api-secret-file", flags.apiSecretFile != nil),
            ("--client-token-file", flags.clientTokenFile != nil), ("--allow", !flags.allow.isEmpty),
        ]
        return set.filter(\.1).map(\.0)
    }
    static let singleAccountVariables = [
        "IAMPORT_API_KEY", "IAMPORT_API_KEY_FILE", "IAMPORT_API_SECRET", "IAMPORT_API_SECRET_FILE",
        "IAMPORT_PROXY_CLIENT_TOKEN", "IAMPORT_PROXY_CLIENT_TOKEN_FILE", "IAMPORT_PROXY_ALLOW",
        "IAMPORT_PROXY_UPSTREAM", "IAMPORT_PROXY_UPSTREAM_CA_FILE",
    ]

    static func resolve(_ flags: CommonOptions, env: [String: String], file: LoadedConfigFile) throws -> AccountsSettings {
        let conflicting = singleAccountFlags(flags).first
            ?? singleAccountVariables.first { env[$0].map { !$0.isEmpty } ?? false }
        if let conflicting {
            throw ConfigurationError(
                "\(file.setting) and \(conflicting) cannot be combined: with a config file, every account's credentials, client token, allow list, upstream and CA file are in the file")
        }
        let global = try GlobalSettings.resolve(flags, env: env, file: file)
        do {
            let accounts = try file.file.resolveAccounts(sharedListen: global.listen, environment: env)
            return AccountsSettings(global: global, accounts: accounts, configFile: file)
        } catch {
            throw ConfigurationError("\(file.setting) '\(file.path)': \(error)")
        }
    }

    /// One line per account for `check`, with no secret in it.
    func summary(_ account: AccountConfiguration) -> String {
        var parts = [account.api.rawValue, "upstream \(account.upstream)"]
        if account.caFile != nil { parts.append("own CA file") }
        parts.append(account.listen.map { "own listener \($0)" } ?? "shared listener \(global.listen)")
        parts.append("client token \(account.clientToken == nil ? "off" : "on")")
        parts.append(account.allow.isEmpty ? "every call allowed" : "\(account.allow.rules.count) allow rules")
        if let tier = account.tier { parts.append("tier \(tier)") }
        return "account \(account.name): " + parts.joined(separator: ", ")
    }

    func proxyConfiguration() -> ProxyConfiguration {
        ProxyConfiguration(
            server: global.serverConfiguration(), upstream: global.upstreamConfiguration(baseURL: Settings.defaultUpstream, caFile: nil),
            accounts: accounts, loopCount: global.eventLoops)
    }
}

extension GlobalSettings {
    func serverConfiguration() -> Server.Configuration {
        let limits = Limits(maxHeadBytes: maxHeaderBytes, maxBodyBytes: maxBodyBytes)
        return Server.Configuration(listen: listen, limits: limits, maxConnections: maxConnections)
    }

    /// The settings that differ from `other` and change only with a restart
    /// (the listener, the loops, limits, timeouts, logging), by name.
    func restartOnlyDifferences(from other: GlobalSettings) -> [String] {
        var names: [String] = []
        if listen != other.listen { names.append("listen") }
        if upstreamTimeout != other.upstreamTimeout { names.append("upstream_timeout") }
        if upstreamIdleTimeout != other.upstreamIdleTimeout { names.append("upstream_idle_timeout") }
        if maxBodyBytes != other.maxBodyBytes { names.append("max_body_bytes") }
        if maxHeaderBytes != other.maxHeaderBytes { names.append("max_header_bytes") }
        if maxConnections != other.maxConnections { names.append("max_connections") }
        if eventLoops != other.eventLoops { names.append("event_loops") }
        if logLevel != other.logLevel { names.append("log_level") }
        if logFormat != other.logFormat { names.append("log_format") }
        return names
    }

    func upstreamConfiguration(baseURL: String, caFile: String?) -> UpstreamConfiguration {
        UpstreamConfiguration(
            baseURL: baseURL, caFile: caFile, timeout: upstreamTimeout, idleTimeout: upstreamIdleTimeout)
    }
}
