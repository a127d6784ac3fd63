import Accounts
import Glibc
import Iamport
import Proxy
import Testing

/// Secret files as a dictionary: path → content (missing: cannot read).
func fakeFiles(_ contents: [String: String], readable: Set<String> = ["/ca.pem"]) -> FileAccess {
    FileAccess(
        readSecret: { path throws(SecretFile.Problem) in
            guard let text = contents[path] else { throw SecretFile.Problem(description: "cannot read '\(path)'") }
            guard !text.isEmpty else { throw SecretFile.Problem(description: "'\(path)' is empty") }
            return Secret(text)
        },
        isReadable: { readable.contains($0) })
}

let files = fakeFiles([
    "/s/a-key": "key-a", "/s/a-secret": "secret-a", "/s/a-client": "client-a",
    "/s/b-secret": "secret-b", "/s/b-client": "client-b", "/s/empty": "",
])
let environment = ["C_SECRET": "secret-c", "C_CLIENT": "client-c", "EMPTY": ""]

func accounts(_ yaml: String, shared: String = "127.0.0.1:8080") throws(ConfigFileError) -> [AccountConfiguration] {
    try ConfigFile.parse(yaml).resolveAccounts(sharedListen: shared, environment: environment, files: files)
}

func revealed(_ secret: Secret?) -> String? { secret?.reveal { $0 } }

@Suite struct ConfigFileTests {
    @Test func theSpecsExampleResolvesWithItsDefaults() throws {
        let yaml = """
            listen: 127.0.0.1:8080            # the shared listener
            log_level: info
            accounts:
              - name: shop-a
                api: v1
                api_key_file: /s/a-key
                api_secret_file: /s/a-secret
                client_token_file: /s/a-client
                allow: ["GET /payments/*", "POST /payments/cancel"]
                tier: ABC
              - name: shop-b
                api: v2
                api_secret_file: /s/b-secret
                listen: 127.0.0.1:8082
                upstream_ca_file: /ca.pem
            """
        let file = try ConfigFile.parse(yaml)
        #expect(file.global["listen"]?.text == "127.0.0.1:8080")
        #expect(file.global["log_level"]?.text == "info")
        let result = try file.resolveAccounts(sharedListen: "127.0.0.1:8080", environment: [:], files: files)
        #expect(result.map(\.name) == ["shop-a", "shop-b"])
        let a = result[0], b = result[1]
        #expect(a.api == .v1 && a.upstream == "https://api.iamport.kr" && a.listen == nil && a.tier == "ABC")
        #expect(revealed(a.apiKey) == "key-a" && revealed(a.apiSecret) == "secret-a" && revealed(a.clientToken) == "client-a")
        #expect(a.allow.rules.map(\.description) == ["GET /payments/*", "POST /payments/cancel"])
        #expect(b.api == .v2 && b.upstream == "https://api.portone.io" && b.listen == "127.0.0.1:8082")
        #expect(b.apiKey == nil && revealed(b.apiSecret) == "secret-b" && b.clientToken == nil && b.caFile == "/ca.pem")
        #expect(b.allow.isEmpty)
    }

    @Test func jsonIsValidYAML() throws {
        let json = #"{"listen": "127.0.0.1:9000", "max_body_bytes": 2048, "accounts": [{"name": "j", "api": "v1", "api_key": "plain-key", "api_secret_env": "C_SECRET", "upstream": "http://127.0.0.1:1"}]}"#
        let file = try ConfigFile.parse(json)
        #expect(file.global["max_body_bytes"]?.text == "2048")
        let result = try file.resolveAccounts(sharedListen: "127.0.0.1:9000", environment: environment, files: files)
        #expect(result[0].upstream == "http://127.0.0.1:1")
        #expect(revealed(result[0].apiKey) == "plain-key" && revealed(result[0].apiSecret) == "secret-c")
    }

    @Test func secretsComeFromNamedVariables() throws {
        let result = try accounts("""
            accounts:
              - {name: c, api: v1, api_key_env: C_CLIENT, api_secret_env: C_SECRET, client_token_env: C_CLIENT}
            """)
        #expect(revealed(result[0].apiSecret) == "secret-c" && revealed(result[0].clientToken) == "client-c")
    }

    @Test func secretsAreReadFromRealFilesWithoutTheTrailingNewline() throws {
        let dir = "/tmp/accounts-tests-\(getpid())"
        mkdir(dir, 0o700)
        defer { _ = ["secret", "empty"].map { unlink("\(dir)/\($0)") }; rmdir(dir) }
        try write("\(dir)/secret", "real-secret\r\n")
        try write("\(dir)/empty", "\n")
        let yaml = "accounts: [{name: r, api: v2, api_secret_file: \(dir)/secret}]"
        let result = try ConfigFile.parse(yaml).resolveAccounts(sharedListen: "127.0.0.1:8080", environment: [:])
        #expect(revealed(result[0].apiSecret) == "real-secret")
        let empty = "accounts: [{name: r, api: v2, api_secret_file: \(dir)/empty}]"
        #expect(throws: ConfigFileError(line: 1, account: "'r'", key: "api_secret_file", "'\(dir)/empty' is empty")) {
            try ConfigFile.parse(empty).resolveAccounts(sharedListen: "127.0.0.1:8080", environment: [:])
        }
    }

    func write(_ path: String, _ text: String) throws {
        let handle = try #require(fopen(path, "wb"))
        _ = Array(text.utf8).withUnsafeBytes { fwrite($0.baseAddress, 1, $0.count, handle) }
        fclose(handle)
    }

    @Test func oneAccountOnTheSharedListenerNeedsNoClientToken() throws {
        let result = try accounts("""
            accounts:
              - {name: a, api: v1, api_key: k, api_secret_file: /s/a-secret}
              - {name: b, api: v2, api_secret_file: /s/b-secret, listen: "127.0.0.1:8082"}
              - {name: c, api: v2, api_secret_env: C_SECRET, listen: "127.0.0.1:0"}
              - {name: d, api: v2, api_secret_env: C_SECRET, listen: "127.0.0.1:0"}
            """)
        #expect(result.count == 4)
    }

    /// Every refused file: the message names the line, the account, the key
    /// and the problem.
    static let invalid: [(yaml: String, expected: String)] = [
        ("accounts: [", "line 2: is not valid YAML"),
        ("- a\n- b", "line 1: must be a mapping of settings with a list of accounts"),
        ("listen: 127.0.0.1:1", "accounts: is missing: list at least one account"),
        ("accounts: []", "line 1: accounts: must be a list of at least one account"),
        ("colour: red\naccounts: []", "line 1: colour: unknown key (known: accounts, listen, log_level"),
        ("api_secret: s\naccounts: []", "line 1: api_secret: is a key of an account"),
        ("listen: 127.0.0.1:1\nlisten: 127.0.0.1:2\naccounts: []", "line 1: listen: written twice in one mapping"),
        ("accounts: [{name: a, api: v1, api_key: k, api_secret_file: /s/a-secret, colour: red}]",
         "line 1: account 'a': colour: unknown key (known: name, api,"),
        ("accounts:\n  - name: a\n    api: v1\n    api_key: k\n    api_secret: hunter2",
         "line 5: account 'a': api_secret: a secret is never written in the config file: use api_secret_file or api_secret_env"),
        ("accounts: [{name: a, api: v2, api_secret_file: /s/b-secret, client_token: t}]",
         "line 1: account 'a': client_token: a secret is never written in the config file: use client_token_file or client_token_env"),
        ("accounts: [{api: v1}]", "line 1: account #1: name is missing"),
        ("accounts: [{name: Shop_A, api: v1}]",
         "line 1: account #1: name: 'Shop_A' must be 1 to 32 characters of a-z, 0-9 and -"),
        ("accounts: [{name: \(String(repeating: "a", count: 33)), api: v1}]", "line 1: account #1: name: 'aaaa"),
        ("accounts: [{name: a}]", "line 1: account 'a': api is missing (v1 or v2)"),
        ("accounts: [{name: a, api: v3}]", "line 1: account 'a': api: 'v3' is not v1 or v2"),
        ("accounts: [{name: a, api: v1, api_secret_file: /s/a-secret}]",
         "line 1: account 'a': a v1 account needs api_key, api_key_file or api_key_env"),
        ("accounts: [{name: a, api: v1, api_key: k}]", "line 1: account 'a': a v1 account needs api_secret_file or api_secret_env"),
        ("accounts: [{name: a, api: v2}]", "line 1: account 'a': a v2 account needs api_secret_file or api_secret_env"),
        ("accounts: [{name: a, api: v2, api_key: k, api_secret_file: /s/b-secret}]",
         "line 1: account 'a': api_key: a v2 account has no API key"),
        ("accounts: [{name: a, api: v1, api_key: k, api_key_file: /s/a-key, api_secret_file: /s/a-secret}]",
         "line 1: account 'a': api_key_file: api_key is set too; set only one"),
        ("accounts: [{name: a, api: v2, api_secret_file: /s/b-secret, api_secret_env: C_SECRET}]",
         "line 1: account 'a': api_secret_env: api_secret_file is set too; set only one"),
        ("accounts: [{name: a, api: v2, api_secret_file: /s/empty}]", "line 1: account 'a': api_secret_file: '/s/empty' is empty"),
        ("accounts: [{name: a, api: v2, api_secret_file: /s/missing}]",
         "line 1: account 'a': api_secret_file: cannot read '/s/missing'"),
        ("accounts: [{name: a, api: v2, api_secret_env: NOT_SET}]", "line 1: account 'a': api_secret_env: NOT_SET is not set"),
        ("accounts: [{name: a, api: v2, api_secret_env: EMPTY}]", "line 1: account 'a': api_secret_env: EMPTY is not set"),
        ("accounts: [{name: a, api: v2, api_secret_env: 'A-B'}]",
         "line 1: account 'a': api_secret_env: 'A-B' is not an environment variable name"),
        ("accounts: [{name: a, api: v2, api_secret_env: C_SECRET, client_token_file: /s/a-client, client_token_env: C_CLIENT}]",
         "line 1: account 'a': client_token_env: client_token_file is set too; set only one"),
        ("accounts: [{name: a, api: v2, api_secret_env: C_SECRET, api_secret_file: }]",
         "line 1: account 'a': api_secret_file: has no value"),
        ("accounts: [{name: a, api: v2, api_secret_env: C_SECRET, upstream: ftp://x}]",
         "line 1: account 'a': upstream: 'ftp://x' must start with https:// or http://"),
        ("accounts: [{name: a, api: v2, api_secret_env: C_SECRET, upstream_ca_file: /nope.pem}]",
         "line 1: account 'a': upstream_ca_file: cannot read '/nope.pem'"),
        ("accounts: [{name: a, api: v2, api_secret_env: C_SECRET, listen: nowhere}]",
         "line 1: account 'a': listen: expected HOST:PORT"),
        ("accounts: [{name: a, api: v2, api_secret_env: C_SECRET, allow: 'GET /x'}]",
         "line 1: account 'a': allow: must be a list"),
        ("accounts:\n  - name: a\n    api: v2\n    api_secret_env: C_SECRET\n    allow: [get /payments/*]",
         "line 5: account 'a': allow: allow rule 'get /payments/*': methods are case-sensitive; write 'GET'"),
        ("accounts: [{name: a, api: v2, api_secret_env: C_SECRET, tier: 'A B'}]",
         "line 1: account 'a': tier: 'A B' must be 1 to 64 characters of a header token"),
        ("accounts: [{name: a, api: v2, api_secret_env: C_SECRET, name2: x}]", "line 1: account 'a': name2: unknown key"),
        ("accounts:\n  - {name: a, api: v2, api_secret_env: C_SECRET, listen: \"127.0.0.1:9001\"}\n  - {name: a, api: v2, api_secret_env: C_SECRET}",
         "line 3: account #2: name: 'a' is also the name of account #1: names must be unique"),
        ("accounts: [{name: a, api: v2, api_secret_env: C_SECRET, listen: \"127.0.0.1:8080\"}]",
         "line 1: account 'a': listen: 127.0.0.1:8080 is the shared listener (127.0.0.1:8080)"),
        ("accounts: [{name: a, api: v2, api_secret_env: C_SECRET, listen: \"0.0.0.0:8080\"}]",
         "line 1: account 'a': listen: 0.0.0.0:8080 is the shared listener (127.0.0.1:8080)"),
        ("accounts:\n  - {name: a, api: v2, api_secret_env: C_SECRET, listen: \"127.0.0.1:9001\"}\n  - {name: b, api: v2, api_secret_env: C_SECRET, listen: \"127.0.0.1:9001\"}",
         "line 3: account 'b': listen: 127.0.0.1:9001 is also the listener of account 'a'"),
        ("accounts:\n  - {name: a, api: v1, api_key: k, api_secret_env: C_SECRET, client_token_env: C_CLIENT}\n  - {name: b, api: v2, api_secret_env: C_SECRET}",
         "line 3: account 'b': has no client token, but accounts 'a', 'b' share the listener 127.0.0.1:8080"),
        ("accounts:\n  - {name: a, api: v1, api_key: k, api_secret_env: C_SECRET, client_token_env: C_CLIENT}\n  - {name: b, api: v2, api_secret_env: C_SECRET, client_token_env: C_CLIENT}",
         "line 3: account 'b': has the same client token as account 'a' on the shared listener 127.0.0.1:8080"),
    ]

    @Test(arguments: invalid)
    func invalidFilesAreRefusedNamingTheProblem(yaml: String, expected: String) {
        do {
            let result = try accounts(yaml)
            Issue.record("accepted: \(result.map(\.name))")
        } catch {
            #expect(error.description.hasPrefix(expected), "\(error.description)")
        }
    }

    /// No message repeats the value of a secret key or of a secret.
    @Test func messagesNeverHoldASecret() {
        for yaml in [
            "accounts: [{name: a, api: v1, api_key: k, api_secret: hunter2}]",
            "accounts: [{name: a, api: v2, api_secret_env: C_SECRET, client_token: hunter2}]",
            "accounts: [{name: a, api: v2, api_secret: hunter2, api_secret: hunter2}]",
            "accounts: [{name: a, api: v2, api_secret: 'hunter2\n",
        ] {
            #expect(throws: ConfigFileError.self) { try accounts(yaml) }
            do { _ = try accounts(yaml) } catch { #expect(!error.description.contains("hunter2"), "\(error)") }
        }
    }
}
