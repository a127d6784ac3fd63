import FakeIamport
import Foundation
import TestSupport
import Testing

/// `--config` through the real binary: conflicts with the single-account
/// settings, precedence over the file, several accounts served, `check`.
@Suite(.serialized) final class ConfigFileBinaryTests {
    let dir = Paths.temporaryDirectory()

    deinit { try? FileManager.default.removeItem(atPath: dir) }

    func file(_ yaml: String) throws -> String {
        let path = dir + "/proxy-\(UUID().uuidString).yaml"
        try yaml.write(toFile: path, atomically: true, encoding: .utf8)
        return path
    }

    static let oneAccount = """
        accounts:
          - name: shop-a
            api: v1
            api_key_env: SHOP_A_KEY
            api_secret_env: SHOP_A_SECRET
            upstream: http://127.0.0.1:9
        """
    /// The listen address too: a proxy that started by mistake binds no fixed port.
    let credentials = ["SHOP_A_KEY": "k", "SHOP_A_SECRET": "s", "IAMPORT_PROXY_LISTEN": "127.0.0.1:0"]

    @Test(arguments: [
        ([String](), "IAMPORT_API_KEY", "--config and IAMPORT_API_KEY cannot be combined"),
        ([], "IAMPORT_API_SECRET_FILE", "--config and IAMPORT_API_SECRET_FILE cannot be combined"),
        ([], "IAMPORT_PROXY_CLIENT_TOKEN", "--config and IAMPORT_PROXY_CLIENT_TOKEN cannot be combined"),
        ([], "IAMPORT_PROXY_ALLOW", "--config and IAMPORT_PROXY_ALLOW cannot be combined"),
        ([], "IAMPORT_PROXY_UPSTREAM", "--config and IAMPORT_PROXY_UPSTREAM cannot be combined"),
        ([], "IAMPORT_PROXY_UPSTREAM_CA_FILE", "--config and IAMPORT_PROXY_UPSTREAM_CA_FILE cannot be combined"),
        (["--allow", "GET /payments/*"], "", "--config and --allow cannot be combined"),
        (["--api-key-file", "/etc/hostname"], "", "--config and --api-key-file cannot be combined"),
        (["--client-token-file", "/etc/hostname"], "", "--config and --client-token-file cannot be combined"),
        (["--upstream", "http://127.0.0.1:9"], "", "--config and --upstream cannot be combined"),
        (["--upstream-ca-file", "/etc/hostname"], "", "--config and --upstream-ca-file cannot be combined"),
    ])
    func singleAccountSettingsConflictWithTheConfigFile(arguments: [String], variable: String, expected: String) throws {
        let path = try file(Self.oneAccount)
        var env = credentials
        if !variable.isEmpty { env[variable] = "/etc/hostname" }
        for command in [[String](), ["check"]] {
            let (status, output) = try runBinary(command + ["--config", path] + arguments, environment: env)
            #expect(status == 2, "\(output)")
            #expect(output.contains(expected), "\(output)")
        }
    }

    @Test func theVariableNamesTheFileToo() throws {
        let path = try file(Self.oneAccount)
        var env = credentials
        env["IAMPORT_PROXY_CONFIG"] = path
        let (status, output) = try runBinary(["--api-secret-file", "/etc/hostname"], environment: env)
        #expect(status == 2)
        #expect(output.contains("IAMPORT_PROXY_CONFIG and --api-secret-file cannot be combined"), "\(output)")
    }

    @Test func mistakesInTheFileExitTwoNamingFileLineAccountAndKey() throws {
        let path = try file("""
            accounts:
              - name: shop-a
                api: v1
                api_key: k
                api_secret: hunter2
            """)
        let (status, output) = try runBinary(["--config", path], environment: [:])
        #expect(status == 2)
        #expect(output.contains(
            "configuration error: --config '\(path)': line 5: account 'shop-a': api_secret: a secret is never written in the config file"),
                "\(output)")
        #expect(!output.contains("hunter2"))
        let global = try file("max_header_bytes: 10\n" + Self.oneAccount)
        let (badStatus, bad) = try runBinary(["--config", global], environment: credentials)
        #expect(badStatus == 2)
        #expect(bad.contains("--config '\(global)': line 1: max_header_bytes: 10 is outside 1024...1048576"), "\(bad)")
    }

    /// Flags and variables win over the file's global keys; one V1 account
    /// on the shared listener is served, with its secrets from the named
    /// variables.
    @Test func flagsAndVariablesWinOverTheFileAndOneV1AccountIsServed() throws {
        let fake = FakeIamport(configuration: .init(apiKey: BinaryHarness.apiKey, apiSecret: BinaryHarness.apiSecret))
        let fakePort = try fake.start().port
        defer { fake.stop() }
        let path = try file("""
            listen: nowhere
            max_header_bytes: 10
            log_level: loud
            accounts:
              - name: shop-a
                api: v1
                api_key_env: SHOP_A_KEY
                api_secret_env: SHOP_A_SECRET
                upstream: http://127.0.0.1:\(fakePort)
            """)
        let env = [
            "SHOP_A_KEY": BinaryHarness.apiKey, "SHOP_A_SECRET": BinaryHarness.apiSecret,
            "IAMPORT_PROXY_LISTEN": "127.0.0.1:0", "IAMPORT_PROXY_MAX_HEADER_BYTES": "4096",
        ]
        let proxy = try ProcessRunner(
            Paths.executable("iamport-proxy"), arguments: ["--config", path, "--log-level", "info"], environment: env)
        guard let port = proxy.listeningPort() else {
            _ = proxy.stop()
            Issue.record("did not start: \(proxy.text)")
            return
        }
        let answer = try HTTPTestClient.get(port: port, "/payments/imp_1")
        #expect(answer.status == 200, "\(answer)")
        #expect(proxy.stop() == 0)
    }

    /// A V1 and a V2 account on the shared listener, told apart by their
    /// client tokens (from files), and a V2 account on its own listener.
    @Test func severalAccountsV1AndV2AreServed() throws {
        let v1 = FakeIamport(configuration: .init(apiKey: BinaryHarness.apiKey, apiSecret: BinaryHarness.apiSecret))
        let v1Port = try v1.start().port
        defer { v1.stop() }
        let v2 = FakePortOneV2(configuration: .init(apiSecret: "v2-secret-e2e-31"))
        let v2Port = try v2.start().port
        defer { v2.stop() }
        for (name, value) in [("a-client", "client-a-e2e"), ("b-client", "client-b-e2e"), ("b-secret", "v2-secret-e2e-31")] {
            try (value + "\n").write(toFile: dir + "/" + name, atomically: true, encoding: .utf8)
        }
        let path = try file("""
            accounts:
              - name: shop-a
                api: v1
                api_key: \(BinaryHarness.apiKey)
                api_secret_env: SHOP_A_SECRET
                client_token_file: \(dir)/a-client
                upstream: http://127.0.0.1:\(v1Port)
                allow: ["GET /payments/*"]
                tier: T1
              - name: shop-b
                api: v2
                api_secret_file: \(dir)/b-secret
                client_token_file: \(dir)/b-client
                upstream: http://127.0.0.1:\(v2Port)
              - name: shop-c
                api: v2
                api_secret_file: \(dir)/b-secret
                upstream: http://127.0.0.1:\(v2Port)
                listen: 127.0.0.1:0
            """)
        let proxy = try ProcessRunner(
            Paths.executable("iamport-proxy"), arguments: ["--config", path, "--listen", "127.0.0.1:0"],
            environment: ["SHOP_A_SECRET": BinaryHarness.apiSecret])
        defer { _ = proxy.stop() }
        guard let port = proxy.listeningPort(), proxy.waitFor("for account shop-c") else {
            Issue.record("did not start: \(proxy.text)")
            return
        }
        let ownLine = try #require(proxy.text.components(separatedBy: "\n").first { $0.contains("for account shop-c") })
        let ownPort = try #require(Int(ownLine.components(separatedBy: "listening on ")[1].split(separator: " ")[0].split(separator: ":").last!))
        let a = try HTTPTestClient.get(port: port, "/payments/imp_1", headers: ["Authorization": "Bearer client-a-e2e"])
        #expect(a.status == 200, "\(a)")
        let b = try HTTPTestClient.get(port: port, "/payments/pay-1", headers: ["Authorization": "PortOne client-b-e2e"])
        #expect(b.status == 200, "\(b)")
        #expect(b.json?["id"] as? String == "pay-1", "\(b)")
        let none = try HTTPTestClient.get(port: port, "/payments/pay-1")
        #expect(none.status == 401)
        #expect(none.json?["code"] as? Int == -1)
        let c = try HTTPTestClient.get(port: ownPort, "/payments/pay-2")
        #expect(c.status == 200, "\(c)")
        let login = try HTTPTestClient.post(port: ownPort, "/login/api-secret", json: #"{"apiSecret":"x"}"#)
        #expect(login.status == 403)
        #expect(login.json?["type"] as? String == "FORBIDDEN")
        #expect(v2.arrivals(method: "POST", path: "/login/api-secret") == 0)
        let ready = try HTTPTestClient.get(port: ownPort, "/_proxy/readyz")
        #expect(ready.status == 200, "\(ready)")
        #expect(Set((ready.json?["accounts"] as? [String: Any] ?? [:]).keys) == ["shop-a", "shop-b", "shop-c"], "\(ready)")
        let one = try HTTPTestClient.get(port: port, "/_proxy/readyz?account=shop-a")
        #expect(Set((one.json?["accounts"] as? [String: Any] ?? [:]).keys) == ["shop-a"], "\(one)")
        // shop-a's tier and allow list.
        #expect(v1.recorded.last { $0.target == "/payments/imp_1" }?.header("Tier") == "T1")
        let refused = try HTTPTestClient.post(
            port: port, "/payments/cancel", json: "{}", headers: ["Authorization": "Bearer client-a-e2e"])
        #expect(refused.status == 403)
        #expect(refused.json?["code"] as? Int == -1)
        let metrics = try HTTPTestClient.get(port: port, "/_proxy/metrics").text
        #expect(metrics.contains(#"iamport_proxy_requests_total{status="200",method="GET",account="shop-b"}"#), "\(metrics)")
        #expect(metrics.contains(#"iamport_proxy_token_valid{account="shop-a"} 1"#), "\(metrics)")
        #expect(proxy.stop() == 0)
        // The access lines (written at shutdown at the latest) name the account.
        #expect(proxy.text.contains("account=shop-b method=GET path=/payments/pay-1"), "\(proxy.text)")
        #expect(!proxy.text.contains("v2-secret-e2e-31") && !proxy.text.contains("client-b-e2e"))
    }

    @Test func checkPrintsEveryAccountAndFetchesATokenForEachV1Account() throws {
        let fake = FakeIamport(configuration: .init(apiKey: BinaryHarness.apiKey, apiSecret: BinaryHarness.apiSecret))
        let fakePort = try fake.start().port
        defer { fake.stop() }
        let path = try file("""
            accounts:
              - name: shop-a
                api: v1
                api_key: \(BinaryHarness.apiKey)
                api_secret_env: SHOP_SECRET
                upstream: http://127.0.0.1:\(fakePort)
                allow: ["GET /payments/*"]
              - name: shop-b
                api: v1
                api_key: \(BinaryHarness.apiKey)
                api_secret_env: SHOP_SECRET
                upstream: http://127.0.0.1:\(fakePort)
                listen: 127.0.0.1:0
                tier: ABC
            """)
        let (status, output) = try runBinary(["check", "--config", path], environment: ["SHOP_SECRET": BinaryHarness.apiSecret])
        #expect(status == 0, "\(output)")
        #expect(output.contains(
            "account shop-a: v1, upstream http://127.0.0.1:\(fakePort), shared listener 127.0.0.1:8080, client token off, 1 allow rules"),
                "\(output)")
        #expect(output.contains("account shop-b: v1, upstream http://127.0.0.1:\(fakePort), own listener 127.0.0.1:0"), "\(output)")
        #expect(output.contains("shop-a: ok: a token was issued"), "\(output)")
        #expect(output.contains("shop-b: ok: a token was issued"), "\(output)")
        #expect(!output.contains(BinaryHarness.apiSecret))
    }

    /// A V2 account's check is an authenticated read: it passes with the
    /// right secret and fails, naming the account, with a wrong one.
    @Test func checkReadsWithEachV2AccountsSecret() throws {
        let v2 = FakePortOneV2(configuration: .init(apiSecret: "v2-check-secret"))
        let v2Port = try v2.start().port
        defer { v2.stop() }
        let path = try file("""
            accounts:
              - {name: good, api: v2, api_secret_env: GOOD, upstream: "http://127.0.0.1:\(v2Port)"}
              - {name: bad, api: v2, api_secret_env: BAD, upstream: "http://127.0.0.1:\(v2Port)", listen: "127.0.0.1:0"}
            """)
        let (status, output) = try runBinary(["check", "--config", path], environment: ["GOOD": "v2-check-secret", "BAD": "wrong-one"])
        #expect(status == 1, "\(output)")
        #expect(output.contains("good: ok: the API accepted the secret"), "\(output)")
        #expect(output.contains("bad: check failed: the API refused the secret (HTTP 401)"), "\(output)")
        #expect(output.contains("check failed for bad"), "\(output)")
        #expect(!output.contains("wrong-one") && !output.contains("v2-check-secret"))
        #expect(v2.recorded.allSatisfy { $0.method == "GET" })
    }
}
