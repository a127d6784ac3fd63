import Yams

/// A mistake in the config file. The message names the line, the account,
/// the key and the problem; it never holds a secret (values of secret keys
/// are never repeated, and YAML's own errors are reduced to their position).
public struct ConfigFileError: Error, CustomStringConvertible, Equatable, Sendable {
    public let line: Int?
    /// `'shop-a'`, or `#2` for an account whose name is missing or invalid.
    public let account: String?
    public let key: String?
    public let problem: String

    public init(line: Int? = nil, account: String? = nil, key: String? = nil, _ problem: String) {
        self.line = line
        self.account = account
        self.key = key
        self.problem = problem
    }

    public var description: String {
        var text = ""
        if let line { text += "line \(line): " }
        if let account { text += "account \(account): " }
        if let key { text += "\(key): " }
        return text + problem
    }
}

/// The config file as written (SPEC.md, "Several accounts"): every key known,
/// every value a string or a list of strings, nothing resolved yet. Parsing
/// is pure: no files, no environment.
public struct ConfigFile: Sendable {
    /// A scalar value and the line it is on.
    public struct Value: Sendable, Equatable {
        public let text: String
        public let line: Int?
    }

    /// One entry of `accounts`, by key.
    public struct Entry: Sendable {
        /// 1-based position in `accounts`.
        public let position: Int
        public let line: Int?
        public var values: [String: Value]
        /// `allow`: nil when absent.
        public var allow: [String]?
        public var allowLine: Int?

        /// How messages name the account: its name when it has a valid one.
        public var label: String {
            if let name = values["name"]?.text, AccountName.isValid(name) { return "'\(name)'" }
            return "#\(position)"
        }
    }

    public var global: [String: Value]
    public var accounts: [Entry]

    public static let globalKeys: [String] = [
        "listen", "log_level", "log_format", "upstream_timeout", "upstream_idle_timeout", "max_body_bytes",
        "max_header_bytes", "max_connections", "event_loops",
    ]
    public static let accountKeys: [String] = [
        "name", "api", "upstream", "upstream_ca_file", "listen", "api_key", "api_key_file", "api_key_env",
        "api_secret_file", "api_secret_env", "client_token_file", "client_token_env", "allow", "tier",
    ]
    /// Keys someone may write to put a secret in the file: refused with a hint.
    static let secretKeys: [String: String] = [
        "api_secret": "api_secret_file or api_secret_env",
        "client_token": "client_token_file or client_token_env",
    ]

    /// The largest config file read: far above any real one.
    public static let maxBytes = 1 << 20

    public static func parse(_ text: String) throws(ConfigFileError) -> ConfigFile {
        guard text.utf8.count <= maxBytes else { throw ConfigFileError("larger than \(maxBytes) bytes") }
        let root: Node?
        do {
            root = try Yams.compose(yaml: text)
        } catch {
            throw yamlError(error)
        }
        guard let root, case .mapping(let top) = root else {
            throw ConfigFileError(line: root?.mark?.line, "must be a mapping of settings with a list of accounts")
        }
        var file = ConfigFile(global: [:], accounts: [])
        var accountsNode: Node?
        for (keyNode, value) in top {
            let key = try keyText(keyNode, account: nil)
            if key == "accounts" {
                accountsNode = value
            } else if globalKeys.contains(key) {
                file.global[key] = try scalar(value, key: key, account: nil)
            } else if accountKeys.contains(key) || secretKeys[key] != nil {
                throw ConfigFileError(line: keyNode.mark?.line, key: key, "is a key of an account: write it in an entry of accounts")
            } else {
                throw ConfigFileError(
                    line: keyNode.mark?.line, key: key,
                    "unknown key (known: accounts, \(globalKeys.joined(separator: ", ")))")
            }
        }
        guard let accountsNode else { throw ConfigFileError(key: "accounts", "is missing: list at least one account") }
        guard case .sequence(let list) = accountsNode, !list.isEmpty else {
            throw ConfigFileError(line: accountsNode.mark?.line, key: "accounts", "must be a list of at least one account")
        }
        for (offset, node) in list.enumerated() {
            file.accounts.append(try entry(node, position: offset + 1))
        }
        return file
    }

    static func entry(_ node: Node, position: Int) throws(ConfigFileError) -> Entry {
        guard case .mapping(let mapping) = node else {
            throw ConfigFileError(line: node.mark?.line, account: "#\(position)", "must be a mapping of keys")
        }
        var entry = Entry(position: position, line: node.mark?.line, values: [:])
        // The name first, so that every later message can use it.
        if let nameNode = mapping["name"] {
            entry.values["name"] = try scalar(nameNode, key: "name", account: "#\(position)")
        }
        for (keyNode, value) in mapping {
            let key = try keyText(keyNode, account: entry.label)
            if let instead = secretKeys[key] {
                throw ConfigFileError(
                    line: keyNode.mark?.line, account: entry.label, key: key,
                    "a secret is never written in the config file: use \(instead)")
            }
            guard accountKeys.contains(key) else {
                throw ConfigFileError(
                    line: keyNode.mark?.line, account: entry.label, key: key,
                    "unknown key (known: \(accountKeys.joined(separator: ", ")))")
            }
            if key == "allow" {
                entry.allow = try strings(value, key: key, account: entry.label)
                entry.allowLine = value.mark?.line
            } else if key != "name" {
                entry.values[key] = try scalar(value, key: key, account: entry.label)
            }
        }
        return entry
    }

    static func keyText(_ node: Node, account: String?) throws(ConfigFileError) -> String {
        guard case .scalar(let scalar) = node else {
            throw ConfigFileError(line: node.mark?.line, account: account, "a key must be a plain word")
        }
        return scalar.string
    }

    static func scalar(_ node: Node, key: String, account: String?) throws(ConfigFileError) -> Value {
        guard case .scalar(let scalar) = node else {
            throw ConfigFileError(line: node.mark?.line, account: account, key: key, "must be a single value, not a list or a mapping")
        }
        if node.null != nil || scalar.string.isEmpty {
            throw ConfigFileError(line: node.mark?.line, account: account, key: key, "has no value")
        }
        return Value(text: scalar.string, line: node.mark?.line)
    }

    static func strings(_ node: Node, key: String, account: String?) throws(ConfigFileError) -> [String] {
        guard case .sequence(let sequence) = node else {
            throw ConfigFileError(line: node.mark?.line, account: account, key: key, "must be a list, e.g. [\"GET /payments/*\"]")
        }
        var result: [String] = []
        for item in sequence {
            result.append(try scalar(item, key: key, account: account).text)
        }
        return result
    }

    /// YAML's error, by position and problem only: its own text quotes the
    /// file, which is not repeated.
    static func yamlError(_ error: any Error) -> ConfigFileError {
        guard let error = error as? YamlError else { return ConfigFileError("is not valid YAML") }
        switch error {
        case .scanner(_, let problem, let mark, _), .parser(_, let problem, let mark, _),
            .composer(_, let problem, let mark, _):
            return ConfigFileError(line: mark.line, "is not valid YAML: \(problem)")
        case .duplicatedKeysInMapping(let duplicates, let context):
            return ConfigFileError(
                line: context.mark.line, key: duplicates.joined(separator: ", "), "written twice in one mapping")
        case .reader:
            return ConfigFileError("is not valid UTF-8 text")
        default:
            return ConfigFileError("is not valid YAML")
        }
    }
}

extension ConfigFile {
    /// The account keys that name a file the proxy reads (secrets, CA bundle).
    public static let fileKeys = ["api_key_file", "api_secret_file", "client_token_file", "upstream_ca_file"]

    /// Every path the configuration depends on, for the reload watcher: the
    /// config file, then each file its accounts name, once, in file order.
    /// Pure: nothing is read or resolved (a relative path stays relative).
    public func watchedPaths(configPath: String) -> [String] {
        var paths = [configPath]
        for entry in accounts {
            for key in Self.fileKeys {
                if let path = entry.values[key]?.text, !paths.contains(path) { paths.append(path) }
            }
        }
        return paths
    }
}

/// `[a-z0-9-]{1,32}`: safe in logs, metric labels and URLs as it is.
public enum AccountName {
    public static func isValid(_ name: String) -> Bool {
        let bytes = name.utf8
        return (1...32).contains(bytes.count)
            && bytes.allSatisfy { ($0 >= 0x61 && $0 <= 0x7A) || ($0 >= 0x30 && $0 <= 0x39) || $0 == 0x2D }
    }
}
