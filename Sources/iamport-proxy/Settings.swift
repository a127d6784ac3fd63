#if canImport(Glibc)
import Glibc
#endif
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

/// Resolves every setting: a flag wins over its environment variable, the
/// variable over the default. Secrets come from the environment or files only.
struct Settings {
    var listen: String
    var upstream: String
    var caFile: String?
    var apiKey: Secret
    var apiSecret: Secret
    var clientToken: Secret?
    var allow: [String]
    var upstreamTimeout: Double
    var upstreamIdleTimeout: Double
    /// Tests only (undocumented): makes libcurl close connections the pool
    /// holds, the history behind the stalls a soak once found.
    var testLibcurlMaxAge: Int? = nil
    var maxBodyBytes: Int
    var maxHeaderBytes: Int
    var maxConnections: Int
    var eventLoops: Int
    var logLevel: Logger.Level
    var logFormat: LineLogHandler.Format

    static let defaultListen = "127.0.0.1:8080"
    static let defaultUpstream = "https://api.iamport.kr"

    /// Settings that do not need the credentials (logging, check, healthcheck).
    static func logging(_ flags: CommonOptions, env: [String: String]) throws -> (Logger.Level, LineLogHandler.Format) {
        let levelText = flags.logLevel ?? env["IAMPORT_PROXY_LOG_LEVEL"] ?? "info"
        guard let level = Logger.Level(rawValue: levelText.lowercased()) else {
            throw ConfigurationError(
                "IAMPORT_PROXY_LOG_LEVEL / --log-level: '\(levelText)' is not one of trace, debug, info, notice, warning, error, critical")
        }
        let formatText = flags.logFormat ?? env["IAMPORT_PROXY_LOG_FORMAT"] ?? "text"
        guard let format = LineLogHandler.Format(rawValue: formatText.lowercased()) else {
            throw ConfigurationError("IAMPORT_PROXY_LOG_FORMAT / --log-format: '\(formatText)' is not text or json")
        }
        return (level, format)
    }

    static func resolve(_ flags: CommonOptions, env: [String: String]) throws -> Settings {
        let (level, format) = try logging(flags, env: env)
        let listen = flags.listen ?? env["IAMPORT_PROXY_LISTEN"] ?? defaultListen
        do {
            _ = try SocketAddress.resolve(listen)
        } catch {
            throw ConfigurationError("IAMPORT_PROXY_LISTEN / --listen: \(error)")
        }
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
        let timeout = try number(flags.upstreamTimeout, "IAMPORT_PROXY_UPSTREAM_TIMEOUT", "--upstream-timeout", env,
                                 default: 30.0, range: 0.1...600)
        let idleTimeout = try number(
            flags.upstreamIdleTimeout, "IAMPORT_PROXY_UPSTREAM_IDLE_TIMEOUT", "--upstream-idle-timeout", env,
            default: 50.0, range: 0.1...3600)
        let maxBody = try number(flags.maxBodyBytes, "IAMPORT_PROXY_MAX_BODY_BYTES", "--max-body-bytes", env,
                                 default: 1_048_576, range: 0...(1 << 30))
        let maxHeader = try number(flags.maxHeaderBytes, "IAMPORT_PROXY_MAX_HEADER_BYTES", "--max-header-bytes", env,
                                   default: 32768, range: 1024...(1 << 20))
        let maxConnections = try number(flags.maxConnections, "IAMPORT_PROXY_MAX_CONNECTIONS", "--max-connections", env,
                                        default: 4096, range: 1...1_000_000)
        let eventLoops = try number(flags.eventLoops, "IAMPORT_PROXY_EVENT_LOOPS", "--event-loops", env,
                                    default: 0, range: 0...256)
        var settings = Settings(
            listen: listen, upstream: upstream, caFile: caFile, apiKey: apiKey, apiSecret: apiSecret,
            clientToken: clientToken, allow: allow, upstreamTimeout: timeout, upstreamIdleTimeout: idleTimeout,
            maxBodyBytes: maxBody,
            maxHeaderBytes: maxHeader, maxConnections: maxConnections, eventLoops: eventLoops, logLevel: level,
            logFormat: format)
        settings.testLibcurlMaxAge = env["IAMPORT_PROXY_TEST_LIBCURL_MAXAGE"].flatMap(Int.init).flatMap { $0 > 0 ? $0 : nil }
        return settings
    }

    static func validateUpstream(_ url: String) throws {
        let lower = url.lowercased()
        let rest: Substring
        if lower.hasPrefix("https://") {
            rest = url.dropFirst(8)
        } else if lower.hasPrefix("http://") {
            rest = url.dropFirst(7)
        } else {
            throw ConfigurationError("IAMPORT_PROXY_UPSTREAM / --upstream: '\(url)' must start with https:// or http://")
        }
        let host = rest.prefix { $0 != "/" && $0 != ":" }
        if host.isEmpty {
            throw ConfigurationError("IAMPORT_PROXY_UPSTREAM / --upstream: '\(url)' has no host")
        }
        if url.contains("?") || url.contains("#") || url.contains("@") || url.contains(" ") {
            throw ConfigurationError("IAMPORT_PROXY_UPSTREAM / --upstream: '\(url)' must be a plain base URL")
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
        guard let handle = fopen(path, "rb") else {
            throw ConfigurationError("\(setting): cannot read '\(path)': \(String(cString: strerror(errno)))")
        }
        defer { fclose(handle) }
        var bytes: [UInt8] = []
        var chunk = [UInt8](repeating: 0, count: 4096)
        while true {
            let n = fread(&chunk, 1, chunk.count, handle)
            if n <= 0 { break }
            bytes.append(contentsOf: chunk[0..<n])
            if bytes.count > 65536 { throw ConfigurationError("\(setting): '\(path)' is too large for a secret") }
        }
        while let last = bytes.last, last == 0x0A || last == 0x0D { bytes.removeLast() }
        if bytes.isEmpty { throw ConfigurationError("\(setting): '\(path)' is empty") }
        if bytes.contains(where: { $0 < 0x20 || $0 == 0x7F }) {
            throw ConfigurationError("\(setting): '\(path)' holds control characters or more than one line")
        }
        return Secret(String(decoding: bytes, as: UTF8.self))
    }

    static func number<T: LosslessStringConvertible & Comparable>(
        _ flag: T?, _ variable: String, _ flagName: String, _ env: [String: String], default value: T,
        range: ClosedRange<T>
    ) throws -> T {
        let result: T
        if let flag {
            result = flag
        } else if let text = env[variable], !text.isEmpty {
            guard let parsed = T(text) else {
                throw ConfigurationError("\(variable): '\(text)' is not a number")
            }
            result = parsed
        } else {
            result = value
        }
        guard range.contains(result) else {
            throw ConfigurationError("\(variable) / \(flagName): \(result) is outside \(range.lowerBound)...\(range.upperBound)")
        }
        return result
    }

    func proxyConfiguration() throws -> ProxyConfiguration {
        let limits = Limits(maxHeadBytes: maxHeaderBytes, maxBodyBytes: maxBodyBytes)
        let server = Server.Configuration(listen: listen, limits: limits, maxConnections: maxConnections)
        var upstreamConfiguration = UpstreamConfiguration(
            baseURL: upstream, caFile: caFile, timeoutMilliseconds: Int(upstreamTimeout * 1000),
            idleTimeoutMilliseconds: Int(upstreamIdleTimeout * 1000))
        if let age = testLibcurlMaxAge { upstreamConfiguration.libcurlMaxConnectionAgeSeconds = age }
        return ProxyConfiguration(
            server: server, upstream: upstreamConfiguration, apiKey: apiKey, apiSecret: apiSecret,
            clientToken: clientToken, allowList: try AllowList(allow), loopCount: eventLoops)
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
