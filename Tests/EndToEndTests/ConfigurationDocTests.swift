import Accounts
import Foundation
import TestSupport
import Testing

@Suite struct ConfigurationDocTests {
    /// Every flag and variable in `--help` is in docs/configuration.md, and
    /// every flag the page names exists.
    @Test func configurationPageMatchesHelp() throws {
        let (status, help) = try runBinary(["--help"], environment: [:])
        #expect(status == 0)
        let page = try String(contentsOfFile: Paths.packageRoot + "/docs/configuration.md", encoding: .utf8)
        let flagPattern = try Regex(#"--[a-z][a-z-]+"#)
        let variablePattern = try Regex(#"IAMPORT_[A-Z_]+"#)
        let helpFlags = Set(help.matches(of: flagPattern).map { String(help[$0.range]) })
        let helpVariables = Set(help.matches(of: variablePattern).map { String(help[$0.range]) })
        let pageFlags = Set(page.matches(of: flagPattern).map { String(page[$0.range]) })
        let pageVariables = Set(page.matches(of: variablePattern).map { String(page[$0.range]) })
        #expect(helpFlags.count >= 14)
        #expect(helpFlags.subtracting(pageFlags).isEmpty, "missing from the page: \(helpFlags.subtracting(pageFlags))")
        #expect(helpVariables.subtracting(pageVariables).isEmpty, "missing from the page: \(helpVariables.subtracting(pageVariables))")
        let unknown = pageFlags.subtracting(helpFlags)
        #expect(unknown.isEmpty, "the page names flags that do not exist: \(unknown)")
        let unknownVariables = pageVariables.subtracting(helpVariables).subtracting(["IAMPORT_API_KEY", "IAMPORT_API_SECRET"])
        #expect(unknownVariables.isEmpty, "the page names variables --help does not: \(unknownVariables)")
    }

    /// Every key of the config file the code knows is documented in the
    /// page's "Config file" section, and every key documented there exists.
    @Test func configFileKeysMatchTheCode() throws {
        let page = try String(contentsOfFile: Paths.packageRoot + "/docs/configuration.md", encoding: .utf8)
        let section = try #require(page.components(separatedBy: "## Config file").dropFirst().first)
            .components(separatedBy: "\n## ").first ?? ""
        let keyPattern = try Regex(#"(?m)^\| `([a-z_]+)`"#)
        let pageKeys = section.matches(of: keyPattern).map { String(section[$0.range]).dropFirst(3).dropLast() }
        let codeKeys = ["accounts"] + ConfigFile.globalKeys + ConfigFile.accountKeys
        #expect(pageKeys.count == Set(pageKeys).count + 1, "listen is documented twice, global and per account: \(pageKeys)")
        #expect(Set(pageKeys.map(String.init)) == Set(codeKeys),
                "missing from the page: \(Set(codeKeys).subtracting(pageKeys.map(String.init))); not in the code: \(Set(pageKeys.map(String.init)).subtracting(codeKeys))")
    }

    @Test func healthcheckSubcommand() throws {
        let h = try BinaryHarness()
        defer { _ = h.stop() }
        #expect(h.waitUntilReady())
        let (ok, output) = try runBinary(["healthcheck", "--listen", "127.0.0.1:\(h.port)"], environment: [:])
        #expect(ok == 0, "\(output)")
        #expect(output.contains("ready"))
        let (down, _) = try runBinary(["healthcheck"], environment: ["IAMPORT_PROXY_LISTEN": "127.0.0.1:\(try TLSFront.freePort())"])
        #expect(down == 1)
        // Not ready (token endpoint refusing): 1 as well.
        h.fake.revokeTokens()
        h.fake.failTokens(status: 401)
        _ = try? HTTPTestClient.get(port: h.port, "/payments/imp_1")
        let (notReady, _) = try runBinary(["healthcheck", "--listen", "0.0.0.0:\(h.port)"], environment: [:])
        #expect(notReady == 1)
    }
}
