import EventLoops
import HTTP1
import Iamport
import Proxy
import Server

/// How the resolver reaches files; tests substitute their own.
public struct FileAccess: Sendable {
    public var readSecret: @Sendable (String) throws(SecretFile.Problem) -> Secret
    public var isReadable: @Sendable (String) -> Bool

    public init(
        readSecret: @escaping @Sendable (String) throws(SecretFile.Problem) -> Secret,
        isReadable: @escaping @Sendable (String) -> Bool
    ) {
        self.readSecret = readSecret
        self.isReadable = isReadable
    }

    public static let system = FileAccess(
        readSecret: { path throws(SecretFile.Problem) in try SecretFile.read(path) },
        isReadable: { SecretFile.isReadable($0) })
}

extension ConfigFile {
    /// The accounts the file describes, with their secrets read from files
    /// and named variables, every default applied, and every ambiguity
    /// refused. `sharedListen` is the shared listener as finally resolved
    /// (a flag or variable wins over the file's `listen`).
    public func resolveAccounts(
        sharedListen: String, environment: [String: String], files: FileAccess = .system
    ) throws(ConfigFileError) -> [AccountConfiguration] {
        var accounts: [AccountConfiguration] = []
        for entry in self.accounts {
            accounts.append(try AccountEntryResolver(entry: entry, environment: environment, files: files).resolve())
        }
        try AccountSetRules(accounts: accounts, entries: self.accounts, sharedListen: sharedListen).check()
        return accounts
    }
}

/// One entry of `accounts` into an `AccountConfiguration`.
struct AccountEntryResolver {
    let entry: ConfigFile.Entry
    let environment: [String: String]
    let files: FileAccess

    func error(_ key: String?, _ problem: String) -> ConfigFileError {
        let line = key.flatMap { entry.values[$0]?.line } ?? (key == "allow" ? entry.allowLine : nil) ?? entry.line
        return ConfigFileError(line: line, account: entry.label, key: key, problem)
    }

    func resolve() throws(ConfigFileError) -> AccountConfiguration {
        guard let name = entry.values["name"]?.text else { throw error(nil, "name is missing") }
        guard AccountName.isValid(name) else {
            throw error("name", "'\(name)' must be 1 to 32 characters of a-z, 0-9 and -")
        }
        guard let apiText = entry.values["api"]?.text else { throw error(nil, "api is missing (v1 or v2)") }
        guard let api = AccountAPI(rawValue: apiText) else { throw error("api", "'\(apiText)' is not v1 or v2") }
        let upstream = entry.values["upstream"]?.text ?? api.defaultUpstream
        if let problem = UpstreamURL.problem(upstream) { throw error("upstream", problem) }
        let caFile = entry.values["upstream_ca_file"]?.text
        if let caFile, !files.isReadable(caFile) { throw error("upstream_ca_file", "cannot read '\(caFile)'") }
        let listen = entry.values["listen"]?.text
        if let listen {
            do { _ = try SocketAddress.resolve(listen) } catch { throw self.error("listen", "\(error)") }
        }
        let apiKey: Secret?
        switch api {
        case .v1:
            apiKey = try secret(plain: "api_key", file: "api_key_file", variable: "api_key_env")
            guard apiKey != nil else { throw error(nil, "a v1 account needs api_key, api_key_file or api_key_env") }
        case .v2:
            if let key = ["api_key", "api_key_file", "api_key_env"].first(where: { entry.values[$0] != nil }) {
                throw error(key, "a v2 account has no API key (its API secret is all it needs)")
            }
            apiKey = nil
        }
        guard let apiSecret = try secret(plain: nil, file: "api_secret_file", variable: "api_secret_env") else {
            throw error(nil, "a \(api.rawValue) account needs api_secret_file or api_secret_env")
        }
        let clientToken = try secret(plain: nil, file: "client_token_file", variable: "client_token_env")
        let allow: AllowList
        do {
            allow = try AllowList(entry.allow ?? [])
        } catch {
            throw self.error("allow", "\(error)")
        }
        let tier = entry.values["tier"]?.text
        if let tier, tier.utf8.count > 64 || !tier.utf8.allSatisfy({ ASCII.isTokenChar[Int($0)] }) {
            throw error("tier", "'\(tier)' must be 1 to 64 characters of a header token (letters, digits, -._~ and the like; no spaces)")
        }
        return AccountConfiguration(
            name: name, api: api, upstream: upstream, caFile: caFile, listen: listen, apiKey: apiKey,
            apiSecret: apiSecret, clientToken: clientToken, allow: allow, tier: tier)
    }

    /// A credential from exactly one of its keys: the value itself (`plain`,
    /// the API key only), a file, or a named environment variable.
    func secret(plain: String?, file: String, variable: String) throws(ConfigFileError) -> Secret? {
        let given = [plain, file, variable].compactMap { $0 }.filter { entry.values[$0] != nil }
        if given.count > 1 {
            throw error(given[1], "\(given[0]) is set too; set only one")
        }
        if let plain, let value = entry.values[plain] { return Secret(value.text) }
        if let path = entry.values[file]?.text {
            do { return try files.readSecret(path) } catch { throw self.error(file, error.description) }
        }
        if let name = entry.values[variable]?.text {
            guard EnvironmentName.isValid(name) else {
                throw error(variable, "'\(name)' is not an environment variable name")
            }
            guard let value = environment[name], !value.isEmpty else { throw error(variable, "\(name) is not set") }
            return Secret(value)
        }
        return nil
    }
}

/// The rules across accounts: unique names, distinct listeners, and on the
/// shared listener a client token that tells the accounts apart.
struct AccountSetRules {
    let accounts: [AccountConfiguration]
    let entries: [ConfigFile.Entry]
    let sharedListen: String

    func check() throws(ConfigFileError) {
        for (i, account) in accounts.enumerated() {
            if let first = accounts[..<i].firstIndex(where: { $0.name == account.name }) {
                throw ConfigFileError(
                    line: entries[i].values["name"]?.line, account: "#\(i + 1)", key: "name",
                    "'\(account.name)' is also the name of account #\(first + 1): names must be unique")
            }
        }
        for (i, account) in accounts.enumerated() {
            guard let listen = account.listen else { continue }
            let line = entries[i].values["listen"]?.line
            if Listeners.overlap(listen, sharedListen) {
                throw ConfigFileError(
                    line: line, account: "'\(account.name)'", key: "listen",
                    "\(listen) is the shared listener (\(sharedListen)): leave listen out to serve the account there")
            }
            if let other = accounts[..<i].first(where: { $0.listen.map { Listeners.overlap($0, listen) } ?? false }) {
                throw ConfigFileError(
                    line: line, account: "'\(account.name)'", key: "listen",
                    "\(listen) is also the listener of account '\(other.name)': an account's own listener serves it alone")
            }
        }
        let shared = accounts.indices.filter { accounts[$0].isShared }
        guard shared.count > 1 else { return }
        let names = shared.map { "'\(accounts[$0].name)'" }.joined(separator: ", ")
        for i in shared where accounts[i].clientToken == nil {
            throw ConfigFileError(
                line: entries[i].line, account: "'\(accounts[i].name)'",
                "has no client token, but accounts \(names) share the listener \(sharedListen), where the client token selects the account: set client_token_file or client_token_env, or give it its own listen")
        }
        for (n, i) in shared.enumerated() {
            for j in shared[..<n] where accounts[i].clientToken == accounts[j].clientToken {
                throw ConfigFileError(
                    line: entries[i].line, account: "'\(accounts[i].name)'",
                    "has the same client token as account '\(accounts[j].name)' on the shared listener \(sharedListen): the token could not select the account; give each its own")
            }
        }
    }
}

/// Whether two listen addresses would take the same socket.
enum Listeners {
    static func overlap(_ a: String, _ b: String) -> Bool {
        guard let x = try? SocketAddress.resolve(a), let y = try? SocketAddress.resolve(b) else { return false }
        // Port 0 takes a free port: never the same one twice.
        guard x.port != 0, x.port == y.port else { return false }
        let wildcards: Set<String> = ["0.0.0.0", "::"]
        return x.host == y.host || wildcards.contains(x.host) || wildcards.contains(y.host)
    }
}

/// POSIX environment variable names: `[A-Za-z_][A-Za-z0-9_]*`.
enum EnvironmentName {
    static func isValid(_ name: String) -> Bool {
        guard let first = name.utf8.first, !(0x30...0x39).contains(first) else { return false }
        return name.utf8.allSatisfy {
            ($0 >= 0x41 && $0 <= 0x5A) || ($0 >= 0x61 && $0 <= 0x7A) || ($0 >= 0x30 && $0 <= 0x39) || $0 == 0x5F
        }
    }
}

/// An upstream base URL: `https://` (or `http://` for tests), a host, no
/// query, fragment or user part.
public enum UpstreamURL {
    public static func problem(_ url: String) -> String? {
        let lower = url.lowercased()
        let rest: Substring
        if lower.hasPrefix("https://") {
            rest = url.dropFirst(8)
        } else if lower.hasPrefix("http://") {
            rest = url.dropFirst(7)
        } else {
            return "'\(url)' must start with https:// or http://"
        }
        if rest.prefix(while: { $0 != "/" && $0 != ":" }).isEmpty { return "'\(url)' has no host" }
        if url.contains("?") || url.contains("#") || url.contains("@") || url.contains(" ") {
            return "'\(url)' must be a plain base URL"
        }
        return nil
    }
}
