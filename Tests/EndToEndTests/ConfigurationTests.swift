import Dispatch
import FakeIamport
import Foundation
import Synchronization
import TestSupport
import Testing

@Suite(.serialized) struct ConfigurationTests {
    let base = ["IAMPORT_API_KEY": "k", "IAMPORT_API_SECRET": "s", "IAMPORT_PROXY_UPSTREAM": "http://127.0.0.1:9", "IAMPORT_PROXY_LISTEN": "127.0.0.1:0"]

    func without(_ key: String) -> [String: String] {
        var env = base
        env[key] = nil
        return env
    }

    @Test(arguments: [
        ([String](), "IAMPORT_API_SECRET", "IAMPORT_API_SECRET is not set"),
        ([String](), "IAMPORT_API_KEY", "IAMPORT_API_KEY is not set"),
        (["--listen", "nonsense"], "", "IAMPORT_PROXY_LISTEN / --listen"),
        (["--listen", "127.0.0.1:99999"], "", "IAMPORT_PROXY_LISTEN / --listen"),
        (["--upstream", "ftp://x"], "", "IAMPORT_PROXY_UPSTREAM / --upstream"),
        (["--upstream-timeout", "0"], "", "IAMPORT_PROXY_UPSTREAM_TIMEOUT / --upstream-timeout"),
        (["--max-body-bytes", "-1"], "", "IAMPORT_PROXY_MAX_BODY_BYTES"),
        (["--log-level", "loud"], "", "IAMPORT_PROXY_LOG_LEVEL / --log-level"),
        (["--log-format", "xml"], "", "IAMPORT_PROXY_LOG_FORMAT / --log-format"),
        (["--allow", "GET"], "", "IAMPORT_PROXY_ALLOW / --allow"),
        (["--allow", "get /payments/*"], "", "methods are case-sensitive; write 'GET'"),
        (["--upstream-ca-file", "/nonexistent/ca.pem"], "", "IAMPORT_PROXY_UPSTREAM_CA_FILE"),
        (["--api-secret-file", "/nonexistent/secret"], "", "--api-secret-file"),
        (["--no-such-flag"], "", "no-such-flag"),
    ])
    func configurationErrorsExitTwoAndNameTheSetting(arguments: [String], unset: String, expected: String) throws {
        let env = unset.isEmpty ? base : without(unset)
        let (status, output) = try runBinary(arguments, environment: env)
        #expect(status == 2, "\(arguments): \(output)")
        #expect(output.contains(expected), "\(arguments): \(output)")
    }

    @Test func aVariableAndItsFileTwinTogetherIsAnError() throws {
        var env = base
        env["IAMPORT_API_SECRET_FILE"] = "/etc/hostname"
        let (status, output) = try runBinary([], environment: env)
        #expect(status == 2)
        #expect(output.contains("IAMPORT_API_SECRET and IAMPORT_API_SECRET_FILE are both set"))
    }

    @Test func secretFilesIgnoreTheTrailingNewlineAndFlagsWinOverVariables() throws {
        let dir = Paths.temporaryDirectory()
        defer { try? FileManager.default.removeItem(atPath: dir) }
        try "\(BinaryHarness.apiKey)\n".write(toFile: dir + "/key", atomically: true, encoding: .utf8)
        try "\(BinaryHarness.apiSecret)\r\n".write(toFile: dir + "/secret", atomically: true, encoding: .utf8)
        let h = try BinaryHarness(arguments: ["--api-key-file", dir + "/key", "--api-secret-file", dir + "/secret", "--listen", "127.0.0.1:0"],
                                  environment: ["IAMPORT_API_KEY": "wrong", "IAMPORT_API_SECRET": "wrong", "IAMPORT_PROXY_LISTEN": "127.0.0.1:1"])
        #expect(h.port != 1, "--listen wins over IAMPORT_PROXY_LISTEN")
        #expect(h.waitUntilReady(), "the files win over the variables: \(h.proxy.text)")
        #expect(h.stop() == 0)
    }

    @Test func addressInUseIsARuntimeFailure() throws {
        let h = try BinaryHarness()
        defer { _ = h.stop() }
        var env = base
        env["IAMPORT_PROXY_LISTEN"] = "127.0.0.1:\(h.port)"
        let (status, output) = try runBinary([], environment: env)
        #expect(status == 1, "\(output)")
        #expect(output.contains("Address already in use"), "\(output)")
    }

    @Test func helpAndVersion() throws {
        let (status, help) = try runBinary(["--help"], environment: [:])
        #expect(status == 0)
        for flag in ["--listen", "--upstream", "--upstream-ca-file", "--api-key-file", "--api-secret-file", "--client-token-file",
                     "--allow", "--upstream-timeout", "--max-body-bytes", "--max-header-bytes", "--max-connections",
                     "--log-level", "--log-format", "--version", "check"] {
            #expect(help.contains(flag), "--help lacks \(flag)")
        }
        let (vstatus, version) = try runBinary(["--version"], environment: [:])
        #expect(vstatus == 0)
        #expect(version.trimmingCharacters(in: .whitespacesAndNewlines) == "0.1.0")
    }

    @Test func checkExitsZeroOrOneWithTheAPIsMessage() throws {
        let fake = FakeIamport(configuration: .init(apiKey: BinaryHarness.apiKey, apiSecret: BinaryHarness.apiSecret))
        let port = try fake.start().port
        defer { fake.stop() }
        let env = ["IAMPORT_API_KEY": BinaryHarness.apiKey, "IAMPORT_API_SECRET": BinaryHarness.apiSecret,
                   "IAMPORT_PROXY_UPSTREAM": "http://127.0.0.1:\(port)"]
        let (ok, okOutput) = try runBinary(["check"], environment: env)
        #expect(ok == 0, "\(okOutput)")
        #expect(okOutput.contains("ok"))
        #expect(!okOutput.contains(fake.currentToken ?? "no-token"))
        var wrong = env
        wrong["IAMPORT_API_SECRET"] = "not-the-secret"
        let (bad, badOutput) = try runBinary(["check"], environment: wrong)
        #expect(bad == 1)
        #expect(badOutput.contains("invalid imp_key or imp_secret"), "\(badOutput)")
        #expect(!badOutput.contains("not-the-secret"))
    }
}
